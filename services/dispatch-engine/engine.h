/* The dispatch state machine. A signal becomes a dispatch: vehicles are
 * selected and commanded (round 0); acks are collected; when every commanded
 * vehicle has answered or the ack timeout passes, the power of vehicles that
 * rejected or stayed silent is released (power 0) and reallocated to fresh
 * eligible vehicles (rounds 1..max_rounds, same dispatch id); then the
 * decision is final: complete, partial (with the shortfall) or failed.
 *
 * Outputs go through callbacks so that tests drive the engine with a fake
 * clock. All entry points are thread-safe (one lock); callbacks run with the
 * lock held and must not call back into the engine. */
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
};

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

/* Records the gateway's publish report for a dispatch. */
void disp_engine_published(struct disp_engine *e, const V2g__V1__PublishReport *r);

/* Ends rounds whose ack timeout has passed. Call every few ms. */
void disp_engine_tick(struct disp_engine *e, int64_t now_ms, int64_t mono_ms);

/* Finishes every active dispatch now, without reallocation (shutdown). */
void disp_engine_finish_all(struct disp_engine *e, int64_t now_ms);

size_t disp_engine_active(struct disp_engine *e);

#endif
