/* Load shedding against the DLM guide 1.5: thresholds 0.95 / 0.85, the band
 * in between holds the level (no flapping), one level per evaluation, the
 * five levels and their priority rules, the actions (reduce / stop /
 * restore), the pace of escalations (escalate_hold_ms), the hysteresis
 * update and its validation, and the status. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/shedding.h"
#include "v2g/err.h"

/* One station per priority class the levels tell apart. */
static const struct dlm_shed_station ST[] = {
	{ "low", 2, 10 },      /* priority <= 3 */
	{ "normal", 4, 10 },   /* 4..5 */
	{ "high", 6, 10 },     /* 6..8 */
	{ "critical", 9, 10 }, /* 9..10 */
	{ "critical2", 10, 22 },
};
#define NST (sizeof(ST) / sizeof(ST[0]))

/* The action for station id in res, or NULL. */
static const struct dlm_shed_action *action_for(const struct dlm_shed_result *r, const char *id)
{
	for (size_t i = 0; i < r->n_actions; i++)
		if (strcmp(r->actions[i].station, id) == 0)
			return &r->actions[i];
	return NULL;
}

static void check_action(const struct dlm_shed_result *r, const char *id,
                         enum dlm_shed_action_kind kind, double kw, int line)
{
	const struct dlm_shed_action *a = action_for(r, id);
	if (!a) {
		harness_fail(__FILE__, line, "no action for %s", id);
		return;
	}
	if (a->action != kind || fabs(a->new_power_kw - kw) > 1e-9)
		harness_fail(__FILE__, line, "%s: %s %.3f kW, expected %s %.3f kW", id,
		             dlm_shed_action_name(a->action), a->new_power_kw,
		             dlm_shed_action_name(kind), kw);
}
#define ACTION(r, id, kind, kw) check_action(r, id, kind, kw, __LINE__)

/* Evaluate at load/capacity = ratio (capacity 100 kW). */
static struct dlm_shed_result eval(struct dlm_shed *sh, double ratio, int64_t now)
{
	struct dlm_shed_result r;
	memset(&r, 0, sizeof(r));
	int rc = dlm_shed_evaluate(sh, ratio * 100, 100, ST, NST, now, &r);
	CHECK_INT(rc, 0);
	return r;
}

/* Escalations not paced: for the tests of the levels themselves. */
static struct dlm_shed *new_unpaced(void)
{
	struct dlm_shed_cfg c = dlm_shed_defaults();
	c.escalate_hold_ms = 0;
	struct dlm_shed *sh = dlm_shed_new(&c);
	CHECK(sh != NULL);
	return sh;
}

static void test_defaults(void)
{
	struct dlm_shed_cfg c = dlm_shed_defaults();
	CHECK_NEAR(c.upper_threshold, 0.95, 0);
	CHECK_NEAR(c.lower_threshold, 0.85, 0);
	CHECK_INT(c.enabled, 1);
	CHECK_INT(c.mode, DLM_SHED_STEP);
	CHECK_INT(c.min_hold_ms, 0);
	CHECK_INT(c.escalate_hold_ms, 2000);
	struct dlm_shed *sh = dlm_shed_new(NULL);
	CHECK(sh != NULL);
	struct dlm_shed_status st;
	dlm_shed_get_status(sh, &st);
	CHECK_INT(st.active, 0);
	CHECK_INT(st.level, 0);
	dlm_shed_free(sh);
}

static void test_level_factors(void)
{
	/* level 0: nothing */
	for (int p = 1; p <= 10; p++)
		CHECK_NEAR(dlm_shed_factor(0, p), 1, 0);
	/* 1: priority <= 3 by 20 % */
	CHECK_NEAR(dlm_shed_factor(1, 1), 0.8, 1e-12);
	CHECK_NEAR(dlm_shed_factor(1, 3), 0.8, 1e-12);
	CHECK_NEAR(dlm_shed_factor(1, 4), 1, 0);
	CHECK_NEAR(dlm_shed_factor(1, 10), 1, 0);
	/* 2: priority <= 5 by 40 % */
	CHECK_NEAR(dlm_shed_factor(2, 3), 0.6, 1e-12);
	CHECK_NEAR(dlm_shed_factor(2, 5), 0.6, 1e-12);
	CHECK_NEAR(dlm_shed_factor(2, 6), 1, 0);
	/* 3: all by 50 % */
	for (int p = 1; p <= 10; p++)
		CHECK_NEAR(dlm_shed_factor(3, p), 0.5, 1e-12);
	/* 4: stop priority <= 5 (the rest keep level 3's 50 %) */
	CHECK_NEAR(dlm_shed_factor(4, 1), 0, 0);
	CHECK_NEAR(dlm_shed_factor(4, 5), 0, 0);
	CHECK_NEAR(dlm_shed_factor(4, 6), 0.5, 1e-12);
	CHECK_NEAR(dlm_shed_factor(4, 10), 0.5, 1e-12);
	/* 5: stop all but critical 9-10 */
	CHECK_NEAR(dlm_shed_factor(5, 8), 0, 0);
	CHECK_NEAR(dlm_shed_factor(5, 9), 0.5, 1e-12);
	CHECK_NEAR(dlm_shed_factor(5, 10), 0.5, 1e-12);
	/* escalating never raises anyone */
	for (int p = 1; p <= 10; p++)
		for (int l = 1; l <= 5; l++)
			CHECK(dlm_shed_factor(l, p) <= dlm_shed_factor(l - 1, p));
	/* out-of-range priorities are clamped */
	CHECK_NEAR(dlm_shed_factor(1, 0), 0.8, 1e-12);
	CHECK_NEAR(dlm_shed_factor(5, 11), 0.5, 1e-12);
	CHECK_STR(dlm_shed_level_name(0), "normal");
	CHECK_STR(dlm_shed_level_name(5), "emergency_stop_noncritical");
}

static void test_escalation_one_level_at_a_time(void)
{
	struct dlm_shed *sh = new_unpaced();
	struct dlm_shed_result r = eval(sh, 0.94, 0);
	CHECK_INT(r.changed, 0);
	CHECK_INT(r.n_actions, 0);

	/* 0.95: start shedding at level 1: priority <= 3 to 80 % */
	r = eval(sh, 0.95, 1000);
	CHECK_INT(r.changed, 1);
	CHECK_INT(r.old_level, 0);
	CHECK_INT(r.new_level, 1);
	CHECK_NEAR(r.ratio, 0.95, 1e-12);
	CHECK_INT(r.n_actions, 1);
	ACTION(&r, "low", DLM_SHED_REDUCE, 8);
	CHECK_INT(r.actions[0].priority, 2);

	/* still over: level 2, priority <= 5 to 60 % */
	r = eval(sh, 1.10, 2000);
	CHECK_INT(r.new_level, 2);
	CHECK_INT(r.n_actions, 2);
	ACTION(&r, "low", DLM_SHED_REDUCE, 6);
	ACTION(&r, "normal", DLM_SHED_REDUCE, 6);

	/* level 3: all to 50 % */
	r = eval(sh, 1.10, 3000);
	CHECK_INT(r.new_level, 3);
	CHECK_INT(r.n_actions, 5);
	ACTION(&r, "low", DLM_SHED_REDUCE, 5);
	ACTION(&r, "normal", DLM_SHED_REDUCE, 5);
	ACTION(&r, "high", DLM_SHED_REDUCE, 5);
	ACTION(&r, "critical", DLM_SHED_REDUCE, 5);
	ACTION(&r, "critical2", DLM_SHED_REDUCE, 11);

	/* level 4: stop priority <= 5 */
	r = eval(sh, 0.99, 4000);
	CHECK_INT(r.new_level, 4);
	CHECK_INT(r.n_actions, 2);
	ACTION(&r, "low", DLM_SHED_STOP, 0);
	ACTION(&r, "normal", DLM_SHED_STOP, 0);

	/* level 5: emergency, stop all but priority 9-10 */
	r = eval(sh, 0.99, 5000);
	CHECK_INT(r.new_level, 5);
	CHECK_INT(r.n_actions, 1);
	ACTION(&r, "high", DLM_SHED_STOP, 0);
	CHECK(action_for(&r, "critical") == NULL);

	/* no level above 5 */
	r = eval(sh, 2.0, 6000);
	CHECK_INT(r.changed, 0);
	CHECK_INT(r.new_level, 5);
	CHECK_INT(r.n_actions, 0);

	struct dlm_shed_status st;
	dlm_shed_get_status(sh, &st);
	CHECK_INT(st.active, 1);
	CHECK_INT(st.level, 5);
	CHECK_INT(st.since_ms, 5000);
	CHECK_INT(st.changes, 5);
	CHECK_NEAR(st.last_ratio, 2.0, 1e-12);
	dlm_shed_free(sh);
}

/* The "hysteresis band respected (no flapping)". */
static void test_no_flapping_in_band(void)
{
	struct dlm_shed *sh = dlm_shed_new(NULL); /* paced: 2 s */
	/* inactive: the band does not start shedding */
	for (int i = 0; i < 50; i++) {
		struct dlm_shed_result r = eval(sh, i % 2 ? 0.86 : 0.94, i * 1000);
		CHECK_INT(r.changed, 0);
		CHECK_INT(r.n_actions, 0);
	}
	eval(sh, 0.96, 100000);
	eval(sh, 0.96, 101000); /* held: 1 s after the first */
	eval(sh, 0.96, 102000); /* level 2 */
	/* active: the band neither escalates nor de-escalates */
	for (int i = 0; i < 100; i++) {
		double ratio = 0.86 + 0.08 * (i % 5) / 4.0; /* 0.86 .. 0.94 */
		struct dlm_shed_result r = eval(sh, ratio, 103000 + i * 1000);
		CHECK_INT(r.changed, 0);
		CHECK_INT(r.new_level, 2);
		CHECK_INT(r.n_actions, 0);
	}
	struct dlm_shed_status st;
	dlm_shed_get_status(sh, &st);
	CHECK_INT(st.level, 2);
	CHECK_INT(st.since_ms, 102000);
	CHECK_INT(st.changes, 2);
	dlm_shed_free(sh);
}

static void test_deescalation_and_restore(void)
{
	struct dlm_shed *sh = new_unpaced();
	for (int i = 0; i < 4; i++)
		eval(sh, 1.0, i);
	struct dlm_shed_status st;
	dlm_shed_get_status(sh, &st);
	CHECK_INT(st.level, 4);
	/* 0.85 exactly: stop shedding one level at a time */
	struct dlm_shed_result r = eval(sh, 0.85, 10);
	CHECK_INT(r.changed, 1);
	CHECK_INT(r.new_level, 3);
	/* the stopped priority <= 5 come back at level 3's 50 % */
	CHECK_INT(r.n_actions, 2);
	ACTION(&r, "low", DLM_SHED_REDUCE, 5);
	ACTION(&r, "normal", DLM_SHED_REDUCE, 5);
	r = eval(sh, 0.50, 20);
	CHECK_INT(r.new_level, 2);
	CHECK_INT(r.n_actions, 5);
	ACTION(&r, "low", DLM_SHED_REDUCE, 6);
	ACTION(&r, "normal", DLM_SHED_REDUCE, 6);
	ACTION(&r, "high", DLM_SHED_RESTORE, 10);
	ACTION(&r, "critical", DLM_SHED_RESTORE, 10);
	ACTION(&r, "critical2", DLM_SHED_RESTORE, 22);
	r = eval(sh, 0.50, 30);
	CHECK_INT(r.new_level, 1);
	ACTION(&r, "low", DLM_SHED_REDUCE, 8);
	ACTION(&r, "normal", DLM_SHED_RESTORE, 10);
	CHECK_INT(r.n_actions, 2);
	r = eval(sh, 0.50, 40);
	CHECK_INT(r.new_level, 0);
	CHECK_INT(r.n_actions, 1);
	ACTION(&r, "low", DLM_SHED_RESTORE, 10);
	dlm_shed_get_status(sh, &st);
	CHECK_INT(st.active, 0);
	CHECK_INT(st.since_ms, 40);
	r = eval(sh, 0.10, 50);
	CHECK_INT(r.changed, 0);
	dlm_shed_free(sh);
}

static void test_hysteresis_update(void)
{
	struct dlm_shed *sh = dlm_shed_new(NULL);
	CHECK_INT(dlm_shed_set_hysteresis(sh, 0.90, 0.90), V2G_ERR_INVAL);
	CHECK_INT(dlm_shed_set_hysteresis(sh, 0.80, 0.90), V2G_ERR_INVAL);
	CHECK_INT(dlm_shed_set_hysteresis(sh, 1.10, 0.80), V2G_ERR_INVAL);
	CHECK_INT(dlm_shed_set_hysteresis(sh, 0.90, 0), V2G_ERR_INVAL);
	CHECK_INT(dlm_shed_set_hysteresis(sh, 0.90, -0.1), V2G_ERR_INVAL);
	CHECK_INT(dlm_shed_set_hysteresis(sh, NAN, 0.5), V2G_ERR_INVAL);
	CHECK_NEAR(dlm_shed_config(sh)->upper_threshold, 0.95, 0); /* unchanged */
	CHECK_INT(dlm_shed_set_hysteresis(sh, 1.0, 0.5), 0);       /* upper <= 1 */
	CHECK_INT(dlm_shed_set_hysteresis(sh, 0.90, 0.80), 0);
	struct dlm_shed_status st;
	dlm_shed_get_status(sh, &st);
	CHECK_NEAR(st.upper_threshold, 0.90, 0);
	CHECK_NEAR(st.lower_threshold, 0.80, 0);
	/* the new thresholds apply */
	struct dlm_shed_result r = eval(sh, 0.91, 0);
	CHECK_INT(r.new_level, 1);
	r = eval(sh, 0.84, 1);
	CHECK_INT(r.changed, 0);
	r = eval(sh, 0.80, 2);
	CHECK_INT(r.new_level, 0);
	/* a config with bad thresholds is refused at creation */
	struct dlm_shed_cfg c = dlm_shed_defaults();
	c.lower_threshold = 0.97;
	CHECK(dlm_shed_new(&c) == NULL);
	c = dlm_shed_defaults();
	c.min_hold_ms = -1;
	CHECK_INT(dlm_shed_configure(sh, &c), V2G_ERR_INVAL);
	c = dlm_shed_defaults();
	c.escalate_hold_ms = -1;
	CHECK_INT(dlm_shed_configure(sh, &c), V2G_ERR_INVAL);
	CHECK(dlm_shed_new(&c) == NULL);
	dlm_shed_free(sh);
}

static void test_jump_mode(void)
{
	struct dlm_shed_cfg c = dlm_shed_defaults();
	c.mode = DLM_SHED_JUMP;
	struct dlm_shed *sh = dlm_shed_new(&c);
	struct dlm_shed_result r;
	CHECK_INT(dlm_shed_evaluate(sh, 62, 50, ST, NST, 0, &r), 0);
	/* 62 kW: level 2 leaves 56 (1.12), level 3 leaves 62 - 31 = 31 (0.62) */
	CHECK_INT(r.new_level, 3);
	CHECK_INT(r.n_actions, 5);
	ACTION(&r, "critical2", DLM_SHED_REDUCE, 11);
	dlm_shed_free(sh);

	/* 52 kW on 50 kW (1.04): level 1 takes 2 kW (50: 1.00), level 2 takes
	 * 8 (44: 0.88 < 0.95) */
	sh = dlm_shed_new(&c);
	CHECK_INT(dlm_shed_evaluate(sh, 52, 50, ST, NST, 0, &r), 0);
	CHECK_INT(r.new_level, 2);
	/* beyond what any level can take: 5 */
	struct dlm_shed *sh2 = dlm_shed_new(&c);
	CHECK_INT(dlm_shed_evaluate(sh2, 500, 50, ST, NST, 0, &r), 0);
	CHECK_INT(r.new_level, 5);
	/* de-escalation stays one level at a time */
	CHECK_INT(dlm_shed_evaluate(sh2, 10, 50, ST, NST, 1, &r), 0);
	CHECK_INT(r.new_level, 4);
	dlm_shed_free(sh2);
	dlm_shed_free(sh);
}

static void test_min_hold(void)
{
	struct dlm_shed_cfg c = dlm_shed_defaults();
	c.min_hold_ms = 10000;
	struct dlm_shed *sh = dlm_shed_new(&c);
	struct dlm_shed_result r = eval(sh, 0.99, 1000);
	CHECK_INT(r.new_level, 1);
	r = eval(sh, 0.50, 5000); /* held */
	CHECK_INT(r.changed, 0);
	r = eval(sh, 0.99, 6000); /* escalation is never held */
	CHECK_INT(r.new_level, 2);
	r = eval(sh, 0.50, 15999);
	CHECK_INT(r.changed, 0);
	r = eval(sh, 0.50, 16000);
	CHECK_INT(r.new_level, 1);
	dlm_shed_free(sh);
}

/* The issue: at a 200 ms cycle a load sitting at 0.98 of the limit (the
 * chargers slow to follow) climbed to level 5 in about a second. Paced:
 * the first escalation at once, then one per escalate_hold_ms. */
static void test_escalation_paced(void)
{
	struct dlm_shed *sh = dlm_shed_new(NULL); /* 2000 ms */
	struct dlm_shed_result r = eval(sh, 0.98, 10000);
	CHECK_INT(r.new_level, 1); /* the first: immediate */
	int64_t up_at[DLM_SHED_MAX_LEVEL + 1] = { 0 };
	up_at[1] = 10000;
	for (int64_t t = 10200; t <= 20000; t += 200) {
		r = eval(sh, 0.98, t);
		if (r.changed) {
			CHECK_INT(r.new_level, r.old_level + 1);
			up_at[r.new_level] = t;
		}
		if (t < 12000)
			CHECK_INT(r.new_level, 1); /* 1 s: still level 1, not 5 */
	}
	/* one level per 2 s, exactly at the hold */
	for (int lv = 2; lv <= DLM_SHED_MAX_LEVEL; lv++)
		CHECK_INT(up_at[lv] - up_at[lv - 1], 2000);
	dlm_shed_free(sh);

	/* JUMP: the first jump at once, the next one held as well */
	struct dlm_shed_cfg c = dlm_shed_defaults();
	c.mode = DLM_SHED_JUMP;
	sh = dlm_shed_new(&c);
	CHECK_INT(dlm_shed_evaluate(sh, 52, 50, ST, NST, 0, &r), 0);
	CHECK_INT(r.new_level, 2);
	CHECK_INT(dlm_shed_evaluate(sh, 500, 50, ST, NST, 1999, &r), 0);
	CHECK_INT(r.changed, 0);
	CHECK_INT(dlm_shed_evaluate(sh, 500, 50, ST, NST, 2000, &r), 0);
	CHECK_INT(r.new_level, 5);
	dlm_shed_free(sh);

	/* a custom hold, and 0 = every evaluation */
	c = dlm_shed_defaults();
	c.escalate_hold_ms = 500;
	sh = dlm_shed_new(&c);
	eval(sh, 1.0, 0);
	CHECK_INT(eval(sh, 1.0, 499).changed, 0);
	CHECK_INT(eval(sh, 1.0, 500).new_level, 2);
	c.escalate_hold_ms = 0;
	CHECK_INT(dlm_shed_configure(sh, &c), 0);
	CHECK_INT(eval(sh, 1.0, 501).new_level, 3);
	CHECK_INT(eval(sh, 1.0, 502).new_level, 4);
	/* a clock going backwards does not hold an escalation */
	c.escalate_hold_ms = 2000;
	CHECK_INT(dlm_shed_configure(sh, &c), 0);
	CHECK_INT(eval(sh, 1.0, 100).new_level, 5);
	dlm_shed_free(sh);
}

/* Falling is not paced by the escalation hold (min_hold_ms is its own),
 * and a new escalation after a fall waits for the hold counted from the
 * last escalation, not from the fall. */
static void test_escalate_hold_spares_falls(void)
{
	struct dlm_shed *sh = dlm_shed_new(NULL);
	eval(sh, 1.0, 0);
	eval(sh, 1.0, 2000);
	eval(sh, 1.0, 4000);
	struct dlm_shed_status st;
	dlm_shed_get_status(sh, &st);
	CHECK_INT(st.level, 3);
	/* under 0.85: one level per evaluation, right after the escalation */
	CHECK_INT(eval(sh, 0.5, 4001).new_level, 2);
	CHECK_INT(eval(sh, 0.5, 4002).new_level, 1);
	/* over again 1 s after the last escalation: held until 6000 */
	CHECK_INT(eval(sh, 0.99, 5000).new_level, 1);
	CHECK_INT(eval(sh, 0.99, 5999).new_level, 1);
	CHECK_INT(eval(sh, 0.99, 6000).new_level, 2);
	/* down to 0: the next first escalation is immediate again */
	eval(sh, 0.5, 6001);
	CHECK_INT(eval(sh, 0.5, 6002).new_level, 0);
	CHECK_INT(eval(sh, 0.99, 6003).new_level, 1);
	/* with min_hold_ms too: the two holds are independent */
	struct dlm_shed_cfg c = dlm_shed_defaults();
	c.min_hold_ms = 300;
	CHECK_INT(dlm_shed_configure(sh, &c), 0);
	CHECK_INT(eval(sh, 0.5, 6200).changed, 0);   /* 197 ms at level 1 */
	CHECK_INT(eval(sh, 0.5, 6303).new_level, 0); /* 300 ms: falls */
	dlm_shed_free(sh);
}

static void test_disable_restores(void)
{
	struct dlm_shed *sh = new_unpaced();
	for (int i = 0; i < 3; i++)
		eval(sh, 1.0, i);
	struct dlm_shed_cfg c = dlm_shed_defaults();
	c.enabled = 0;
	CHECK_INT(dlm_shed_configure(sh, &c), 0);
	struct dlm_shed_result r = eval(sh, 1.5, 10);
	CHECK_INT(r.changed, 1);
	CHECK_INT(r.new_level, 0);
	CHECK_INT(r.n_actions, 5);
	ACTION(&r, "critical2", DLM_SHED_RESTORE, 22);
	r = eval(sh, 1.5, 11);
	CHECK_INT(r.changed, 0);
	dlm_shed_free(sh);
}

static void test_bad_inputs_and_edges(void)
{
	struct dlm_shed *sh = dlm_shed_new(NULL);
	struct dlm_shed_result r;
	CHECK_INT(dlm_shed_evaluate(sh, NAN, 100, ST, NST, 0, &r), V2G_ERR_INVAL);
	CHECK_INT(dlm_shed_evaluate(sh, 10, INFINITY, ST, NST, 0, &r), V2G_ERR_INVAL);
	CHECK_INT(dlm_shed_evaluate(sh, -1, 100, ST, NST, 0, &r), V2G_ERR_INVAL);
	CHECK_INT(dlm_shed_evaluate(sh, 10, 100, NULL, 3, 0, &r), V2G_ERR_INVAL);
	struct dlm_shed_station bad = { "x", 5, -1 };
	CHECK_INT(dlm_shed_evaluate(sh, 10, 100, &bad, 1, 0, &r), V2G_ERR_INVAL);
	struct dlm_shed_status st;
	dlm_shed_get_status(sh, &st);
	CHECK_INT(st.changes, 0);
	/* no capacity at all with a load: over */
	CHECK_INT(dlm_shed_evaluate(sh, 10, 0, NULL, 0, 0, &r), 0);
	CHECK_INT(r.new_level, 1);
	CHECK(isinf(r.ratio));
	/* no capacity and no load: 0, de-escalates */
	CHECK_INT(dlm_shed_evaluate(sh, 0, 0, NULL, 0, 1, &r), 0);
	CHECK_INT(r.new_level, 0);
	dlm_shed_free(sh);
	dlm_shed_free(NULL);
}

static void test_status_json(void)
{
	struct dlm_shed *sh = dlm_shed_new(NULL);
	eval(sh, 0.97, 1234);
	char *txt = dlm_shed_status_json(sh);
	json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
	CHECK(j != NULL);
	if (j) {
		CHECK(json_is_true(json_object_get(j, "active")));
		CHECK(json_is_true(json_object_get(j, "enabled")));
		CHECK_INT(json_integer_value(json_object_get(j, "level")), 1);
		CHECK_INT(json_integer_value(json_object_get(j, "since_ms")), 1234);
		CHECK_STR(json_string_value(json_object_get(j, "level_name")),
		          "reduce_priority_le3_20pct");
		json_t *th = json_object_get(j, "thresholds");
		CHECK_NEAR(json_real_value(json_object_get(th, "upper")), 0.95, 0);
		CHECK_NEAR(json_real_value(json_object_get(th, "lower")), 0.85, 0);
		CHECK_NEAR(json_real_value(json_object_get(j, "last_ratio")), 0.97, 1e-12);
		CHECK_STR(json_string_value(json_object_get(j, "mode")), "step");
		CHECK_INT(json_integer_value(json_object_get(j, "min_hold_ms")), 0);
		CHECK_INT(json_integer_value(json_object_get(j, "escalate_hold_ms")), 2000);
		json_decref(j);
	}
	free(txt);
	/* infinite ratio is null, not invalid JSON */
	struct dlm_shed_result r;
	dlm_shed_evaluate(sh, 5, 0, NULL, 0, 2000, &r);
	txt = dlm_shed_status_json(sh);
	j = txt ? json_loads(txt, 0, NULL) : NULL;
	CHECK(j && json_is_null(json_object_get(j, "last_ratio")));
	json_decref(j);
	free(txt);
	dlm_shed_free(sh);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults),
		HCASE(test_level_factors),
		HCASE(test_escalation_one_level_at_a_time),
		HCASE(test_no_flapping_in_band),
		HCASE(test_deescalation_and_restore),
		HCASE(test_hysteresis_update),
		HCASE(test_jump_mode),
		HCASE(test_min_hold),
		HCASE(test_escalation_paced),
		HCASE(test_escalate_hold_spares_falls),
		HCASE(test_disable_restores),
		HCASE(test_bad_inputs_and_edges),
		HCASE(test_status_json),
	};
	return harness_main("site-dlm-shedding", cases, HARNESS_N(cases));
}
