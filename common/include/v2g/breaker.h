/* Circuit breaker (DLM guide 1.1) and a registry of named breakers.
 *
 * A breaker guards calls to one dependency (a station's Modbus link, a
 * remote API). CLOSED: calls go through; failure_threshold consecutive
 * failures open it. OPEN: calls are refused (V2G_ERR_UNAVAILABLE, the
 * guide's CIRCUIT_OPEN) until reset_timeout_ms has passed since it opened;
 * then it is HALF_OPEN. HALF_OPEN: one trial call at a time goes through;
 * a failure re-opens it at once, success_threshold successes close it.
 *
 * An operation that reports success but took longer than timeout_ms counts
 * as a failure (the guide's operation timeout). A HALF_OPEN trial that is
 * never reported is written off as a failure once timeout_ms has passed,
 * so a lost report cannot wedge the breaker.
 *
 * Without await, the protocol is explicit:
 *
 *   if (v2g_breaker_allow(b, now) != 0) -> refused, do not call;
 *   rc = call(); then v2g_breaker_success(b, now2, now2 - now)
 *                  or v2g_breaker_failure(b, now2);
 *
 * or v2g_breaker_run() does it, with retries. Time is whatever clock the
 * caller passes (pass v2g_now_ms() if the status's *_at fields should read
 * as epoch timestamps); it must not go backwards by more than a timeout.
 *
 * Thread-safety: every function here may be called from any thread; each
 * breaker and the registry hold their own mutex (never across op()). */
#ifndef V2G_BREAKER_H
#define V2G_BREAKER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum v2g_breaker_state {
	V2G_BREAKER_CLOSED = 0,
	V2G_BREAKER_OPEN,
	V2G_BREAKER_HALF_OPEN,
};

struct v2g_breaker_opts {
	int failure_threshold;    /* consecutive failures that open it (5) */
	int success_threshold;    /* HALF_OPEN successes that close it (2) */
	int64_t timeout_ms;       /* slower operations count as failures (60000) */
	int64_t reset_timeout_ms; /* OPEN -> HALF_OPEN after this (30000) */
	int max_retries;          /* v2g_breaker_run: retries after the first try (3) */
};

/* The guide's defaults. */
#define V2G_BREAKER_OPTS_DEFAULT                                                     \
	{                                                                            \
		.failure_threshold = 5, .success_threshold = 2, .timeout_ms = 60000, \
		.reset_timeout_ms = 30000, .max_retries = 3                          \
	}

/* Counters a metrics layer can export (all monotonic since creation or the
 * last v2g_breaker_reset). */
struct v2g_breaker_stats {
	uint64_t calls;         /* allowed calls (v2g_breaker_allow == 0) */
	uint64_t rejected;      /* refused while OPEN or while a trial was out */
	uint64_t successes;     /* reported successes within the timeout */
	uint64_t failures;      /* reported failures, timeouts included */
	uint64_t timeouts;      /* successes slower than timeout_ms, lost trials */
	uint64_t state_changes; /* every transition */
	uint64_t opened;        /* transitions into OPEN */
};

struct v2g_breaker;
struct v2g_breaker_registry;

/* "CLOSED", "OPEN", "HALF_OPEN" (static). */
const char *v2g_breaker_state_name(enum v2g_breaker_state s);

/* Checks opts: thresholds >= 1, timeouts >= 1 ms, max_retries >= 0.
 * Returns 0 or V2G_ERR_INVAL. */
int v2g_breaker_opts_check(const struct v2g_breaker_opts *o);

/* A standalone breaker; name is copied, opts NULL means the defaults.
 * *out is the caller's, freed with v2g_breaker_free. Returns 0,
 * V2G_ERR_INVAL (bad opts or name) or V2G_ERR_NOMEM. */
int v2g_breaker_new(const char *name, const struct v2g_breaker_opts *opts,
                    struct v2g_breaker **out);
void v2g_breaker_free(struct v2g_breaker *b); /* NULL is fine */

/* May a call go through at now_ms? 0: yes, and the caller must report its
 * outcome with _success or _failure. V2G_ERR_UNAVAILABLE: the breaker is
 * OPEN (before its reset timeout), or HALF_OPEN with its one trial out; do
 * not call. An OPEN breaker past its reset timeout turns HALF_OPEN here and
 * lets this one trial through. */
int v2g_breaker_allow(struct v2g_breaker *b, int64_t now_ms);

/* Reports an allowed call that succeeded after duration_ms; a duration over
 * timeout_ms is recorded as a failure instead. In CLOSED it clears the
 * consecutive failure count. */
void v2g_breaker_success(struct v2g_breaker *b, int64_t now_ms, int64_t duration_ms);

/* Reports an allowed call that failed. */
void v2g_breaker_failure(struct v2g_breaker *b, int64_t now_ms);

/* Runs op(arg) through the breaker: up to 1 + max_retries attempts, each
 * only while v2g_breaker_allow() lets it, retried at once (no back-off:
 * callers that want one schedule it themselves, see v2g_breaker_backoff_ms).
 * op returns 0 on success or a V2G_ERR_* code. clock gives now_ms before and
 * after each attempt (NULL: v2g_mono_ms). Returns 0 once an attempt
 * succeeds within timeout_ms; V2G_ERR_UNAVAILABLE if the breaker refused
 * (at the first attempt or after failures opened it); V2G_ERR_TIMEOUT if the
 * last attempt succeeded too slowly; otherwise op's last error. */
int v2g_breaker_run(struct v2g_breaker *b, int (*op)(void *arg), void *arg, int64_t (*clock)(void));

/* The guide's back-off before retry number attempt (0-based): 1 s, 2 s,
 * 4 s, ... capped at 60 s. */
int64_t v2g_breaker_backoff_ms(int attempt);

/* Current state. An OPEN breaker past its reset timeout still reads OPEN
 * until v2g_breaker_allow moves it to HALF_OPEN. */
enum v2g_breaker_state v2g_breaker_state(struct v2g_breaker *b);
const char *v2g_breaker_name(const struct v2g_breaker *b); /* borrowed */
void v2g_breaker_get_stats(struct v2g_breaker *b, struct v2g_breaker_stats *st);

/* Back to CLOSED with every count cleared (the POST reset routes). */
void v2g_breaker_reset(struct v2g_breaker *b);

/* {"name","state","failures","successes","last_failure_at","next_attempt_at",
 *  "options":{…},"stats":{…}}: failures/successes are the current
 * consecutive counts; last_failure_at is null if none; next_attempt_at is the
 * end of the reset timeout while OPEN, else null. New reference (json_decref),
 * NULL only on allocation failure. */
json_t *v2g_breaker_status(struct v2g_breaker *b);

/* Registry: breakers by name, owned by the registry, never removed before
 * v2g_breaker_registry_free (so the pointers it hands out stay valid). */
struct v2g_breaker_registry *v2g_breaker_registry_new(void); /* NULL on ENOMEM */
void v2g_breaker_registry_free(struct v2g_breaker_registry *r);

/* Get-or-create, like the guide's circuitBreakerRegistry.get(name, opts):
 * an existing breaker is returned as is (opts ignored); a new one gets opts
 * (NULL: defaults). *out is borrowed from the registry. Returns 0,
 * V2G_ERR_INVAL or V2G_ERR_NOMEM. */
int v2g_breaker_registry_get(struct v2g_breaker_registry *r, const char *name,
                             const struct v2g_breaker_opts *opts, struct v2g_breaker **out);
/* The named breaker (borrowed) or NULL. */
struct v2g_breaker *v2g_breaker_registry_find(struct v2g_breaker_registry *r, const char *name);
size_t v2g_breaker_registry_count(struct v2g_breaker_registry *r);
/* The i-th breaker in creation order (borrowed), NULL past the end. */
struct v2g_breaker *v2g_breaker_registry_at(struct v2g_breaker_registry *r, size_t i);

/* Resets the named breaker (V2G_ERR_NOTFOUND if none), or every breaker
 * when name is NULL. */
int v2g_breaker_registry_reset(struct v2g_breaker_registry *r, const char *name);

/* GET /api/circuit-breakers: a JSON array of v2g_breaker_status objects in
 * creation order. New reference, NULL only on allocation failure. */
json_t *v2g_breaker_registry_status(struct v2g_breaker_registry *r);

#endif
