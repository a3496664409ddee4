/* AckBasedTuner of tuner.h. It keeps no state per signal type: the caller
 * passes the weights of the signal type that finished, and only those
 * change. */
#include "tuner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct ack_tuner {
	struct disp_tuner base; /* first: a struct disp_tuner * is a struct ack_tuner * */
	struct disp_ack_tuner_cfg cfg;
};

struct disp_ack_tuner_cfg disp_ack_tuner_defaults(void)
{
	return (struct disp_ack_tuner_cfg){
		.step_up = 0.05,
		.step_down = 0.05,
		.low_threshold = 0.8,
		.high_threshold = 0.95,
		.min_weight = 0.0,
		.max_weight = 1.0,
	};
}

/* A rate of NaN or outside 0..1 (a caller's bug, e.g. 0 commanded) says
 * nothing about the fleet: the weights stay. Otherwise the availability
 * weight moves by one step and is clamped to [min, max] (a weight set
 * outside the range by hand is brought into it). A rate equal to a
 * threshold moves nothing. */
static void ack_observe(struct disp_tuner *t, int signal_type, double ack_rate,
                        struct disp_weights *w)
{
	const struct disp_ack_tuner_cfg *c = &((struct ack_tuner *)t)->cfg;
	(void)signal_type;
	if (!w || !(ack_rate >= 0.0 && ack_rate <= 1.0))
		return;
	double a = w->availability;
	if (ack_rate < c->low_threshold)
		a += c->step_up;
	else if (ack_rate > c->high_threshold)
		a -= c->step_down;
	if (!(a >= c->min_weight)) /* NaN too */
		a = c->min_weight;
	if (a > c->max_weight)
		a = c->max_weight;
	w->availability = a;
}

static void ack_free(struct disp_tuner *t)
{
	free(t);
}

static int bad(char *err, size_t errlen, const char *msg, double v)
{
	if (err && errlen)
		snprintf(err, errlen, msg, v);
	return -1;
}

/* 0, or -1 with one line in err naming the first bad field. */
static int cfg_check(const struct disp_ack_tuner_cfg *c, char *err, size_t errlen)
{
	if (!(c->step_up > 0 && isfinite(c->step_up)))
		return bad(err, errlen, "step_up: must be a number > 0, got %g", c->step_up);
	if (!(c->step_down > 0 && isfinite(c->step_down)))
		return bad(err, errlen, "step_down: must be a number > 0, got %g", c->step_down);
	if (!(c->low_threshold >= 0 && c->low_threshold <= 1))
		return bad(err, errlen, "low_threshold: must be between 0 and 1, got %g",
		           c->low_threshold);
	if (!(c->high_threshold >= 0 && c->high_threshold <= 1))
		return bad(err, errlen, "high_threshold: must be between 0 and 1, got %g",
		           c->high_threshold);
	if (!(c->low_threshold < c->high_threshold)) {
		if (err && errlen)
			snprintf(err, errlen,
			         "low_threshold: must be below high_threshold (%g), got %g",
			         c->high_threshold, c->low_threshold);
		return -1;
	}
	if (!(c->min_weight >= 0 && isfinite(c->min_weight)))
		return bad(err, errlen, "min_weight: must be a number >= 0, got %g", c->min_weight);
	if (!(c->max_weight >= 0 && isfinite(c->max_weight)))
		return bad(err, errlen, "max_weight: must be a number >= 0, got %g", c->max_weight);
	if (!(c->min_weight <= c->max_weight)) {
		if (err && errlen)
			snprintf(err, errlen, "min_weight: must not exceed max_weight (%g), got %g",
			         c->max_weight, c->min_weight);
		return -1;
	}
	return 0;
}

/* cfg NULL means the defaults (the documents' NewAckBasedTuner). */
struct disp_tuner *disp_ack_tuner_new(const struct disp_ack_tuner_cfg *cfg, char *err,
                                      size_t errlen)
{
	struct disp_ack_tuner_cfg d = disp_ack_tuner_defaults();
	if (!cfg)
		cfg = &d;
	if (cfg_check(cfg, err, errlen) != 0)
		return NULL;
	struct ack_tuner *t = calloc(1, sizeof(*t));
	if (!t) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->base.observe = ack_observe;
	t->base.free = ack_free;
	t->cfg = *cfg;
	return &t->base;
}
