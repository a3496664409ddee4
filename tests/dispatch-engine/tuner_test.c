/* AckBasedTuner against the v2 document: defaults, the config form (an
 * invalid config is refused, naming the field), and the rule: ack rate below
 * low_threshold -> availability weight + step_up, above high_threshold ->
 * - step_down, always within [min_weight, max_weight]; only the weights
 * passed in change. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/dispatch-engine/tuner.h"

static struct disp_weights some_weights(double availability)
{
	return (struct disp_weights){ .soc = 0.3,
		                      .time = 0.1,
		                      .priority = 0.2,
		                      .price = 0.15,
		                      .availability = availability,
		                      .wear = 0.05,
		                      .participation = 0.07 };
}

/* Every weight but availability equal. */
static int others_equal(const struct disp_weights *a, const struct disp_weights *b)
{
	return a->soc == b->soc && a->time == b->time && a->priority == b->priority &&
	       a->price == b->price && a->wear == b->wear && a->participation == b->participation;
}

static void test_defaults(void)
{
	struct disp_ack_tuner_cfg d = disp_ack_tuner_defaults();
	CHECK_NEAR(d.step_up, 0.05, 1e-12);
	CHECK_NEAR(d.step_down, 0.05, 1e-12);
	CHECK_NEAR(d.low_threshold, 0.8, 1e-12);
	CHECK_NEAR(d.high_threshold, 0.95, 1e-12);
	CHECK_NEAR(d.min_weight, 0.0, 1e-12);
	CHECK_NEAR(d.max_weight, 1.0, 1e-12);
	char err[128] = "";
	struct disp_tuner *t = disp_ack_tuner_new(&d, err, sizeof(err));
	CHECK(t != NULL);
	CHECK_STR(err, "");
	if (t)
		t->free(t);
	/* NULL config = the defaults (NewAckBasedTuner) */
	t = disp_ack_tuner_new(NULL, err, sizeof(err));
	CHECK(t != NULL);
	if (t) {
		struct disp_weights w = some_weights(0.5);
		t->observe(t, 0, 0.5, &w);
		CHECK_NEAR(w.availability, 0.55, 1e-12);
		t->free(t);
	}
}

/* One invalid config: NULL, and err names field. */
static void refused(struct disp_ack_tuner_cfg c, const char *field, int line)
{
	char err[160] = "";
	struct disp_tuner *t = disp_ack_tuner_new(&c, err, sizeof(err));
	if (t) {
		harness_fail(__FILE__, line, "config accepted, expected refusal naming %s", field);
		t->free(t);
		return;
	}
	if (strncmp(err, field, strlen(field)) != 0 || err[strlen(field)] != ':')
		harness_fail(__FILE__, line, "err \"%s\" does not start with \"%s:\"", err, field);
	if (strchr(err, '\n'))
		harness_fail(__FILE__, line, "err \"%s\" is more than one line", err);
}

#define REFUSED(field, stmt)                                             \
	do {                                                             \
		struct disp_ack_tuner_cfg c = disp_ack_tuner_defaults(); \
		stmt;                                                    \
		refused(c, field, __LINE__);                             \
	} while (0)

static void test_invalid_configs(void)
{
	REFUSED("step_up", c.step_up = 0);
	REFUSED("step_up", c.step_up = -0.05);
	REFUSED("step_up", c.step_up = NAN);
	REFUSED("step_up", c.step_up = INFINITY);
	REFUSED("step_down", c.step_down = 0);
	REFUSED("step_down", c.step_down = -1);
	REFUSED("step_down", c.step_down = NAN);
	REFUSED("low_threshold", c.low_threshold = -0.1);
	REFUSED("low_threshold", c.low_threshold = 1.1);
	REFUSED("low_threshold", c.low_threshold = NAN);
	REFUSED("high_threshold", c.high_threshold = 1.01);
	REFUSED("high_threshold", c.high_threshold = -0.5);
	REFUSED("high_threshold", c.high_threshold = NAN);
	REFUSED("low_threshold", (c.low_threshold = 0.9, c.high_threshold = 0.9));
	REFUSED("low_threshold", (c.low_threshold = 0.95, c.high_threshold = 0.8));
	REFUSED("min_weight", c.min_weight = -0.01);
	REFUSED("min_weight", c.min_weight = NAN);
	REFUSED("min_weight", (c.min_weight = 0.7, c.max_weight = 0.6));
	REFUSED("max_weight", c.max_weight = INFINITY);
	REFUSED("max_weight", (c.min_weight = 0, c.max_weight = NAN));

	/* err may be NULL or tiny: still refused, no overflow */
	struct disp_ack_tuner_cfg c = disp_ack_tuner_defaults();
	c.step_up = 0;
	CHECK(disp_ack_tuner_new(&c, NULL, 0) == NULL);
	char tiny[4];
	CHECK(disp_ack_tuner_new(&c, tiny, sizeof(tiny)) == NULL);
	CHECK_STR(tiny, "ste");
}

static void test_valid_edges_accepted(void)
{
	struct disp_ack_tuner_cfg c = disp_ack_tuner_defaults();
	c.low_threshold = 0;
	c.high_threshold = 1;
	c.min_weight = c.max_weight = 0.4; /* min == max is a fixed weight */
	char err[128];
	struct disp_tuner *t = disp_ack_tuner_new(&c, err, sizeof(err));
	CHECK(t != NULL);
	if (t) {
		struct disp_weights w = some_weights(0.9);
		t->observe(t, 1, 0.5, &w); /* between: only the clamp */
		CHECK_NEAR(w.availability, 0.4, 1e-12);
		t->free(t);
	}
}

static void test_rule_default(void)
{
	struct disp_tuner *t = disp_ack_tuner_new(NULL, NULL, 0);
	CHECK(t != NULL);
	if (!t)
		return;
	struct disp_weights w = some_weights(0.5), ref = w;

	t->observe(t, 0, 0.5, &w); /* poor acks: availability matters more */
	CHECK_NEAR(w.availability, 0.55, 1e-12);
	t->observe(t, 0, 0.79, &w);
	CHECK_NEAR(w.availability, 0.60, 1e-12);
	t->observe(t, 0, 0.8, &w); /* at the threshold: nothing */
	CHECK_NEAR(w.availability, 0.60, 1e-12);
	t->observe(t, 0, 0.9, &w); /* inside the band: nothing */
	CHECK_NEAR(w.availability, 0.60, 1e-12);
	t->observe(t, 0, 0.95, &w); /* at the threshold: nothing */
	CHECK_NEAR(w.availability, 0.60, 1e-12);
	t->observe(t, 0, 0.96, &w); /* excellent acks: less weight */
	CHECK_NEAR(w.availability, 0.55, 1e-12);
	t->observe(t, 0, 1.0, &w);
	CHECK_NEAR(w.availability, 0.50, 1e-12);
	CHECK(others_equal(&w, &ref));

	/* nonsense rates change nothing */
	t->observe(t, 0, NAN, &w);
	t->observe(t, 0, -0.1, &w);
	t->observe(t, 0, 1.5, &w);
	CHECK_NEAR(w.availability, 0.50, 1e-12);
	t->observe(t, 0, 0.5, NULL); /* no weights: no crash */
	t->free(t);
}

static void test_clamped(void)
{
	struct disp_tuner *t = disp_ack_tuner_new(NULL, NULL, 0);
	CHECK(t != NULL);
	if (!t)
		return;
	struct disp_weights w = some_weights(0.98);
	t->observe(t, 2, 0.0, &w);
	CHECK_NEAR(w.availability, 1.0, 1e-12);
	for (int i = 0; i < 100; i++)
		t->observe(t, 2, 0.1, &w);
	CHECK(w.availability == 1.0);
	w.availability = 0.02;
	t->observe(t, 2, 1.0, &w);
	CHECK(w.availability == 0.0);
	for (int i = 0; i < 100; i++)
		t->observe(t, 2, 0.99, &w);
	CHECK(w.availability == 0.0);
	t->free(t);
}

static void test_custom_config(void)
{
	struct disp_ack_tuner_cfg c = { .step_up = 0.1,
		                        .step_down = 0.25,
		                        .low_threshold = 0.5,
		                        .high_threshold = 0.7,
		                        .min_weight = 0.2,
		                        .max_weight = 0.6 };
	char err[128];
	struct disp_tuner *t = disp_ack_tuner_new(&c, err, sizeof(err));
	CHECK(t != NULL);
	if (!t)
		return;
	struct disp_weights w = some_weights(0.3);
	t->observe(t, 0, 0.6, &w); /* between 0.5 and 0.7 */
	CHECK_NEAR(w.availability, 0.3, 1e-12);
	t->observe(t, 0, 0.49, &w);
	CHECK_NEAR(w.availability, 0.4, 1e-12);
	t->observe(t, 0, 0.49, &w);
	t->observe(t, 0, 0.49, &w);
	CHECK_NEAR(w.availability, 0.6, 1e-12); /* 0.6 capped */
	t->observe(t, 0, 0.71, &w);
	CHECK_NEAR(w.availability, 0.35, 1e-12);
	t->observe(t, 0, 0.71, &w);
	CHECK_NEAR(w.availability, 0.2, 1e-12); /* 0.10 floored */
	/* a weight set outside the range by hand comes back into it */
	w.availability = 5;
	t->observe(t, 0, 0.6, &w);
	CHECK_NEAR(w.availability, 0.6, 1e-12);
	t->free(t);
}

/* The tuner keeps no state per type: weights of one signal type move only
 * with that type's outcomes, as the caller passes them. */
static void test_per_signal_type(void)
{
	struct disp_tuner *t = disp_ack_tuner_new(NULL, NULL, 0);
	CHECK(t != NULL);
	if (!t)
		return;
	struct disp_weights w[3] = { some_weights(0.5), some_weights(0.5), some_weights(0.5) };
	t->observe(t, 0, 0.2, &w[0]);
	t->observe(t, 0, 0.2, &w[0]);
	t->observe(t, 1, 0.99, &w[1]);
	CHECK_NEAR(w[0].availability, 0.6, 1e-12);
	CHECK_NEAR(w[1].availability, 0.45, 1e-12);
	CHECK_NEAR(w[2].availability, 0.5, 1e-12);
	t->free(t);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults),
		HCASE(test_invalid_configs),
		HCASE(test_valid_edges_accepted),
		HCASE(test_rule_default),
		HCASE(test_clamped),
		HCASE(test_custom_config),
		HCASE(test_per_signal_type),
	};
	return harness_main("tuner", cases, HARNESS_N(cases));
}
