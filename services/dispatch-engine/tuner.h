/* Learning tuners: adjust dispatcher weights from dispatch outcomes. The
 * interface takes any tuner; AckBasedTuner (the documents') moves the
 * availability weight of a signal type with its ack rate: below
 * low_threshold it rises by step_up (vehicles that answer matter more),
 * above high_threshold it falls by step_down, always within [min, max]. */
#ifndef DISP_TUNER_H
#define DISP_TUNER_H

#include "strategy.h"

struct disp_tuner {
	/* Called after each finished dispatch of signal_type with its ack rate
	 * (acked / commanded, 0..1); may change *w. */
	void (*observe)(struct disp_tuner *t, int signal_type, double ack_rate,
	                struct disp_weights *w);
	void (*free)(struct disp_tuner *t);
};

struct disp_ack_tuner_cfg {
	double step_up, step_down;            /* > 0 */
	double low_threshold, high_threshold; /* 0 <= low < high <= 1 */
	double min_weight, max_weight;        /* 0 <= min <= max */
};

/* Defaults: steps 0.05, thresholds 0.8 / 0.95, weight within [0, 1]. */
struct disp_ack_tuner_cfg disp_ack_tuner_defaults(void);

/* NULL and one line in err when cfg is invalid (the documents' "nil");
 * cfg NULL means the defaults. An ack rate that is NaN or outside 0..1
 * changes nothing. */
struct disp_tuner *disp_ack_tuner_new(const struct disp_ack_tuner_cfg *cfg, char *err,
                                      size_t errlen);

#endif
