/* The dispatch library: how a request is split among candidate vehicles.
 * Pure computation over arrays (no I/O, no locks, no globals), shared by the
 * service, the unit tests, the benchmarks and v2g-dispatch-solve.
 *
 * Pipeline for one request:
 *   1. the caller fills disp_cand[] (fleet.h) with the eligible vehicles and
 *      their forecasts (prediction.h);
 *   2. disp_capacity() sets each candidate's effective capacity cap_kw;
 *   3. disp_dispatch() (or disp_dispatch_segmented()) scores, selects and
 *      allocates, respecting cap_kw and the site limits, and says which
 *      strategy decided.
 * Every strategy allocates at most cap_kw to a vehicle, never more than
 * the request in total, and meets the request whenever the candidates (and
 * site limits) allow; the same input always gives the same output. */
#ifndef DISP_STRATEGY_H
#define DISP_STRATEGY_H

#include <stddef.h>
#include <stdint.h>

#include "fleet.h"

enum disp_strategy {
	DISP_PRIORITY, /* v1: higher priority, then higher SoC, then lower tariff */
	DISP_EQUAL,    /* equal split, capped at cap_kw, remainder spread over the others */
	DISP_SMART,    /* weighted score over normalised features, best first */
	DISP_LP,       /* maximise sum(score * kw) s.t. request, cap_kw, site limits */
};

/* "priority", "equal", "smart", "lp" <-> enum; parse returns -1 if unknown. */
const char *disp_strategy_name(enum disp_strategy s);
int disp_strategy_parse(const char *name);

/* Weights of the Smart score, each >= 0. Features are normalised to 0..1
 * over the candidate set (see disp_score), higher = better:
 *   soc           SoC
 *   time          plug-in window left (window_h)
 *   priority      priority
 *   price         cheapness: lower tariff scores higher
 *   availability  avail_prob
 *   wear          1 - degradation
 *   participation fairness: fewer recent dispatches scores higher */
struct disp_weights {
	double soc, time, priority, price, availability, wear, participation;
};

/* Default weights per signal type (index 0..2), as the service ships them. */
struct disp_weights disp_default_weights(int signal_type);

/* Per-site power limits. Sites are the interned indexes of disp_cand.site
 * (0 = "no site": never limited). limit_kw[s] < 0 means unlimited. parent[s]
 * is the enclosing site (a feeder under a service entrance) or -1; the
 * limits of a site and of all its ancestors hold at once. n covers every
 * site index used by the candidates. NULL = no limits at all. */
struct disp_sites {
	size_t n;
	const double *limit_kw;
	const int32_t *parent;
};

struct disp_params {
	enum disp_strategy strategy;
	struct disp_weights weights;
	int max_rounds;  /* Smart: bound on allocation rounds under site limits
	                    (<= 0: no bound); Equal and Priority need none */
	int lp_fallback; /* LP infeasible or failed -> Smart ("LP-first") */
};

struct disp_alloc {
	uint32_t cand; /* index into the candidate array given */
	double kw;     /* > 0 */
};

struct disp_outcome {
	struct disp_alloc *allocs; /* malloc'd; disp_outcome_free */
	size_t n;
	double allocated_kw;
	double objective;              /* sum(score * kw) */
	enum disp_strategy decided_by; /* after an LP fallback: DISP_SMART */
	int lp_status;                 /* 0 optimal, 1 infeasible, 2 failed; -1 no LP ran */
};

void disp_outcome_free(struct disp_outcome *o); /* safe on zeroed */

/* Effective capacity (the documents' EffectiveCapacity): sets c[i].cap_kw to
 *   min(max_kw, energy limit) * avail_prob * (1 - degradation)
 * where the energy limit is what the battery can give above min_soc over
 * duration_min: battery_kwh * (soc - min_soc) / 100 / (duration_min / 60);
 * no energy limit when battery_kwh is 0 (unknown). Never negative. */
void disp_capacity(struct disp_cand *c, size_t n, double duration_min, double min_soc);

/* Scores every candidate (sets c[i].score, in 0..sum of weights) with the
 * features normalised by min-max over c[0..n) (a constant feature scores 0). */
void disp_score(struct disp_cand *c, size_t n, const struct disp_weights *w);

/* Splits power_kw among c[0..n) per p. Sets cap_kw-based allocations in
 * *out (zeroed by the caller); allocs index c, which keeps its order (its
 * scores are set). Negative or NaN weights count as 0. Returns 0 or
 * V2G_ERR_NOMEM / V2G_ERR_INVAL. */
int disp_dispatch(struct disp_cand *c, size_t n, double power_kw, const struct disp_params *p,
                  const struct disp_sites *sites, struct disp_outcome *out);

/* --- per segment (the documents' SegmentedSmartDispatcher) -------------- */

struct disp_segment {
	uint16_t segment; /* interned segment index (disp_cand.segment) */
	struct disp_params
	        params; /* weights, strategy (DISP_SMART "heuristic" or DISP_LP), lp_fallback */
};

/* Candidates of a configured segment are dispatched with that segment's
 * params, all others with dflt. The request is shared among the groups in
 * proportion to their total cap_kw; what a group cannot deliver goes to the
 * groups with capacity left. decided_by is the strategy of the largest
 * share (the default group on a tie); lp_status the worst of the groups
 * that ran an LP. */
int disp_dispatch_segmented(struct disp_cand *c, size_t n, double power_kw,
                            const struct disp_segment *segs, size_t nsegs,
                            const struct disp_params *dflt, const struct disp_sites *sites,
                            struct disp_outcome *out);

/* --- fallbacks after the ack timeout ------------------------------------ */

enum disp_fallback {
	DISP_FB_NOOP,     /* leave the acked vehicles as they are */
	DISP_FB_BALANCED, /* residual over acked vehicles by remaining capacity x SoC; skip SoC < 30
	                   */
	DISP_FB_PROBABILISTIC, /* residual over acked vehicles by remaining capacity x avail_prob x
	                          (1 - degradation) */
};
const char *disp_fallback_name(enum disp_fallback f);
int disp_fallback_parse(const char *name); /* -1 if unknown */

/* An acked vehicle: its candidate data and the power it already holds. */
struct disp_held {
	struct disp_cand c;
	double kw;
};

/* Spreads residual_kw over h[0..n) per f: extra_kw[i] (>= 0) is added to
 * h[i].kw, never beyond h[i].c.cap_kw. Returns the power placed (<=
 * residual_kw; less when the acked vehicles are full). */
double disp_fallback_apply(enum disp_fallback f, const struct disp_held *h, size_t n,
                           double residual_kw, double *extra_kw);

#endif
