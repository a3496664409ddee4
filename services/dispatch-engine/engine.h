/* The dispatch state machine. A signal becomes a dispatch: vehicles are
 * selected and commanded (round 0); acks are collected; when every commanded
 * vehicle has answered or the ack timeout passes, the power of vehicles that
 * rejected or stayed silent is released (power 0) and reallocated to fresh
 * eligible vehicles (rounds 1..max_rounds, same dispatch id); then the
 * decision is final: complete, partial (with the shortfall) or failed.
 *
 * Outputs go through callbacks so that tests drive the engine with a fake
 * clock. All entry points are thread-safe (one lock); callbacks run with the
 * lock held and must not call back into the engine.
 *
 * Site capacity from the DLM. site-dlm PUSHes a SiteCapacity for its site
 * every control cycle (disp_engine_site_capacity keeps the latest per
 * site). While a figure is fresh — younger than site_capacity_ttl_ms,
 * counted from the older of its ts_ms and its arrival, so that a clock
 * running ahead on the DLM's host cannot keep it alive — it bounds what a
 * dispatch may place on vehicles of that site (disp_cand.site, from the
 * vehicles' state): the site's limit is min(its dispatch.site_limits entry,
 * the DLM's figure), nested under the configured parent as before; a site
 * known only from the DLM is a top-level limit. A stale figure is ignored
 * (DISP-SITE-CAPACITY-STALE, logged once until the next figure, and
 * dispatch_site_capacity_stale_total{site}); the configured limit alone
 * holds then.
 *
 * Which figure: the direction of the dispatch. Every signal type the
 * engine serves (FCR, aFRR, LOAD_SHEDDING) asks for power DELIVERED TO THE
 * GRID (Signal.power_kw > 0; a command's power_kw is what the vehicle
 * gives: disp_capacity counts the energy above min_soc, v2g-fleet-sim
 * discharges the battery, a charging vehicle would first stop charging).
 * So a dispatch only ever LOWERS a site's import: the DLM's available_kw
 * (import headroom: how much more the site may draw) is not what binds it,
 * and applying it would wrongly starve a heavily loaded site — exactly the
 * one that can shed the most. What binds an export is the same electrical
 * limit crossed the other way: breakers, cables and transformers are
 * rated on |current| and |kVA|, so from a measured load L (import > 0)
 * under a limit M the site may swing down to -M: export headroom =
 * limit_kw + load_kw (SiteCapacity carries both; NEC 625's 80 % is kept
 * in M, which errs on the safe side). That is the figure applied to every
 * signal type today (disp_signal_direction). An import signal (charging on
 * request, down-regulation) would take available_kw; none exists yet.
 * A grid-code export limit below the site's thermal one is the operator's
 * to state in dispatch.site_limits (the minimum of both holds). A figure
 * without limit_kw (0) gives no export bound. Like a configured limit, it
 * bounds each allocation round; a measured figure already includes what
 * earlier rounds set in motion once the DLM's meters see it (one cycle,
 * about a second).
 *
 * Metrics: dispatch_site_capacity_kw{site} (the export headroom of the
 * latest figure), dispatch_site_capacity_updates_total,
 * dispatch_site_capacity_stale_total{site}. */
#ifndef DISP_ENGINE_H
#define DISP_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "fleet.h"
#include "policy.h"
#include "prediction.h"
#include "v2g/v1/envelope.pb-c.h"

/* A zeroed policy is the v1 behaviour: the priority strategy for every
 * signal type, no segments, no fallback over acked vehicles, no tuner. */
struct disp_config {
	struct disp_band band[3]; /* per signal type index: FCR, AFRR, LOAD_SHEDDING */
	int ack_timeout_ms;
	int max_rounds; /* reallocation rounds after the first */
	int64_t max_state_age_ms;
	double realloc_min_soc; /* reallocation skips vehicles below this SoC */
	struct disp_policy policy;
	int64_t site_capacity_ttl_ms; /* a DLM figure older is ignored; <= 0: 10000 */
};

#define DISP_SITE_CAPACITY_TTL_MS 10000
#define DISP_MAX_DLM_SITES        1024 /* sites with a DLM figure, at most */

/* Which way a dispatch moves power at the sites (see the top). */
enum disp_direction {
	DISP_EXPORT, /* delivered to the grid: discharge, or less charging */
	DISP_IMPORT, /* taken from the grid: more charging */
};

/* DISP_EXPORT for FCR, AFRR and LOAD_SHEDDING (and anything else). */
enum disp_direction disp_signal_direction(int signal_type);

/* What a DLM figure lets a dispatch in direction dir place on a site:
 * import: available_kw; export: limit_kw + load_kw; never negative. -1
 * (no bound) when the figure does not say: a NaN, or limit_kw <= 0 for an
 * export. */
double disp_site_capacity_kw(enum disp_direction dir, double available_kw, double limit_kw,
                             double load_kw);

struct disp_engine_ops {
	/* A batch of commands for the gateway (borrowed for the call). */
	void (*send_commands)(void *arg, V2g__V1__CommandBatch *batch);
	/* The decision so far (pending) or final (borrowed for the call). */
	void (*send_decision)(void *arg, V2g__V1__DispatchDecision *decision);
	void *arg;
};

struct disp_engine;

/* Borrows fleet and pred (must outlive the engine; pred may be NULL:
 * neutral forecasts); copies cfg and ops. NULL when out of memory or when
 * the policy's tuner configuration is invalid. */
struct disp_engine *disp_engine_new(const struct disp_config *cfg, struct disp_fleet *fleet,
                                    struct disp_predictor *pred, const struct disp_engine_ops *ops);

/* The weights the engine uses now for a signal type (the tuner moves them). */
struct disp_weights disp_engine_weights(struct disp_engine *e, int signal_type);
void disp_engine_free(struct disp_engine *e);

/* Starts a dispatch for sig (borrowed). now_ms is wall-clock time (used for
 * state freshness and timestamps), mono_ms a monotonic clock for timeouts.
 * Writes the new dispatch id. A signal no vehicle can serve still makes a
 * (failed) dispatch. Returns 0 or V2G_ERR_NOMEM / V2G_ERR_INVAL. */
int disp_engine_submit(struct disp_engine *e, const V2g__V1__Signal *sig, int64_t now_ms,
                       int64_t mono_ms, char dispatch_id[37]);

/* Applies acks (borrowed). Acks for unknown dispatches or vehicles, late and
 * duplicate acks are counted and ignored. */
void disp_engine_acks(struct disp_engine *e, const V2g__V1__AckBatch *b, int64_t now_ms,
                      int64_t mono_ms);

/* Keeps c (borrowed) as the latest capacity of c->site, received at
 * now_ms (wall clock). 0; V2G_ERR_INVAL for an empty or too long site name
 * or a value that is not finite (negative available_kw is fine: a site
 * over its limit); V2G_ERR_TOOBIG past DISP_MAX_DLM_SITES sites (the figure
 * is dropped). */
int disp_engine_site_capacity(struct disp_engine *e, const V2g__V1__SiteCapacity *c,
                              int64_t now_ms);

/* Records the gateway's publish report for a dispatch. */
void disp_engine_published(struct disp_engine *e, const V2g__V1__PublishReport *r);

/* Ends rounds whose ack timeout has passed, and notices DLM figures going
 * stale (at most once a second). Call every few ms. */
void disp_engine_tick(struct disp_engine *e, int64_t now_ms, int64_t mono_ms);

/* Finishes every active dispatch now, without reallocation (shutdown). */
void disp_engine_finish_all(struct disp_engine *e, int64_t now_ms);

size_t disp_engine_active(struct disp_engine *e);

#endif
