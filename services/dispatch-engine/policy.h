/* The dispatch policy, from the `dispatch` configuration group: which
 * strategy serves each signal type and with which weights, LP-first, the
 * per-segment dispatchers of dispatch.segments, the fallback after the ack
 * timeout, the ack-based tuner and the prediction engine. */
#ifndef DISP_POLICY_H
#define DISP_POLICY_H

#include <stddef.h>

#include "strategy.h"
#include "tuner.h"

#define DISP_MAX_SEGMENTS    32
#define DISP_MAX_SITE_LIMITS 4096

/* The raw settings, loaded through the service's settings table. */
struct disp_policy_settings {
	char *strategy;       /* dispatch.strategy: priority | equal | smart | lp */
	char *lp_first;       /* dispatch.lp_first: "FCR,1" — names or indexes */
	char *fallback;       /* dispatch.fallback: noop | balanced | probabilistic */
	char *prediction;     /* dispatch.prediction: learning | fixed */
	int smart_max_rounds; /* dispatch.smart_max_rounds */
	double weights[3][7]; /* dispatch.weights.<type>.<feature>; < 0: the default */
	int tuner_enabled;    /* dispatch.tuner.enabled */
	double tuner[6];      /* step_up, step_down, low_threshold, high_threshold,
	                         min_weight, max_weight */
};

struct disp_policy_segment {
	char name[64];
	struct disp_params params;
};

/* One entry of dispatch.site_limits: a site's power limit, and the site
 * that encloses it (a feeder under its service entrance). */
struct disp_policy_site {
	char site[64];
	char parent[64]; /* "" when none */
	double limit_kw; /* < 0: unlimited (a site listed only as a parent) */
};

struct disp_policy {
	struct disp_params params[3]; /* per signal type */
	struct disp_policy_segment segments[DISP_MAX_SEGMENTS];
	size_t nsegments;
	struct disp_policy_site *sites; /* malloc'd; disp_policy_free */
	size_t nsites;
	enum disp_fallback fallback;
	int tuner_enabled;
	struct disp_ack_tuner_cfg tuner;
	int prediction_fixed;
};

/* Validates s and builds *out, reading dispatch.segments and
 * dispatch.site_limits from file (may be NULL). Returns 0, or V2G_ERR_CONFIG
 * with one line naming the key. */
int disp_policy_build(const struct disp_policy_settings *s, const char *file,
                      struct disp_policy *out, char *err, size_t len);

void disp_policy_free(struct disp_policy *p); /* safe on zeroed */

/* Feature names in struct disp_weights order: "soc", "time", "priority",
 * "price", "availability", "wear", "participation". */
extern const char *const disp_weight_names[7];

/* The i-th weight of w (struct disp_weights order). */
double *disp_weight_at(struct disp_weights *w, int i);

#endif
