/* API rate limiting (DLM guide 1.6): per-client request limits with the
 * guide's tiers, answered with 429 and Retry-After by the gateway.
 *
 *   strict    10 requests / 15 min   (/api/auth)
 *   standard 100 requests / 1 min    (/api/)
 *   relaxed  300 requests / 1 min    (/api/status)
 *   custom   {window_ms, max_requests} per endpoint
 *
 * One limiter per tier or endpoint; each keeps its own table of clients keyed
 * by a caller-chosen string (the client IP, or a token's subject).
 *
 * Algorithm: sliding window counter ("fixed window with carry"). Time is cut
 * into fixed windows of window_ms (aligned to multiples of window_ms in the
 * caller's clock); each client has the count of its current and previous
 * window. A request at offset e into the current window is allowed when
 *
 *     prev * (window_ms - e) / window_ms + curr + 1 <= max_requests
 *
 * i.e. the previous window still weighs in proportion to how much of it a
 * window ending now would overlap. Why: it costs O(1) memory per client (two
 * counters, where an exact sliding log needs max_requests timestamps: 300
 * per client for "relaxed"), and unlike a plain fixed window it does not let a
 * client send max_requests at the end of one window and max_requests again at
 * the start of the next. Its approximation (the previous window's requests
 * are taken as evenly spread) errs both ways by a little; for a burst it errs
 * strict: 10 requests at once on the strict tier are followed by a wait of
 * 16.5 min (Retry-After 990), not 15. Refused requests are not counted, so a
 * client that keeps retrying is let in as soon as Retry-After says.
 *
 * Retry-After is the exact time until the same client's next request would
 * be allowed (if it sends nothing meanwhile), rounded up to whole seconds
 * (at least 1).
 *
 * Memory is bounded: at most max_keys clients (default 100000). A client
 * whose two windows have both passed is idle and dropped (its state equals a
 * fresh one, so this is lossless); when the table is full of active clients,
 * the least recently seen one is evicted (it gets a fresh budget: bounded
 * memory wins over exactness under a flood of distinct keys).
 *
 * Thread-safety: a limiter may be used from any number of threads (civetweb
 * workers) at once; it holds a mutex for the duration of each call. */
#ifndef V2G_RATELIMIT_H
#define V2G_RATELIMIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Keys longer than this are cut to it (a client gains nothing by it: its
 * longer key still lands in one bucket). */
#define V2G_RATELIMIT_KEY_MAX          1024
#define V2G_RATELIMIT_DEFAULT_MAX_KEYS 100000
/* Bounds accepted by v2g_ratelimit_new. */
#define V2G_RATELIMIT_MAX_WINDOW_MS (7LL * 24 * 3600 * 1000)
#define V2G_RATELIMIT_MAX_REQUESTS  1000000

enum v2g_ratelimit_tier {
	V2G_RATELIMIT_STRICT = 0, /* 10 / 15 min */
	V2G_RATELIMIT_STANDARD,   /* 100 / min */
	V2G_RATELIMIT_RELAXED,    /* 300 / min */
};

struct v2g_ratelimit;

struct v2g_ratelimit_stats {
	uint64_t allowed;
	uint64_t limited; /* answered 429 */
	uint64_t evicted; /* active clients dropped because the table was full */
	uint64_t expired; /* idle clients dropped (lossless) */
	uint64_t nomem;   /* requests let through because a client entry could not be
	                     allocated */
	size_t keys;      /* clients tracked now */
};

/* The tier's window and limit. Returns 0 or V2G_ERR_INVAL. */
int v2g_ratelimit_tier_params(enum v2g_ratelimit_tier t, int64_t *window_ms, int *max_requests);
/* "strict", "standard", "relaxed" (static; "unknown" otherwise). */
const char *v2g_ratelimit_tier_name(enum v2g_ratelimit_tier t);
/* Parses a tier name (as in the config file). Returns 0 or V2G_ERR_INVAL. */
int v2g_ratelimit_tier_parse(const char *s, enum v2g_ratelimit_tier *out);

/* A limiter of max_requests per window_ms (the guide's custom endpoint
 * limiter: name is the endpoint, copied). max_keys 0 means the default.
 * Returns 0, V2G_ERR_INVAL (window_ms not in 1..V2G_RATELIMIT_MAX_WINDOW_MS,
 * max_requests not in 1..V2G_RATELIMIT_MAX_REQUESTS, NULL name) or
 * V2G_ERR_NOMEM. The caller frees *out with v2g_ratelimit_free. */
int v2g_ratelimit_new(const char *name, int64_t window_ms, int max_requests, size_t max_keys,
                      struct v2g_ratelimit **out);
/* A limiter with a tier's numbers, named after the tier. */
int v2g_ratelimit_new_tier(enum v2g_ratelimit_tier t, size_t max_keys, struct v2g_ratelimit **out);
void v2g_ratelimit_free(struct v2g_ratelimit *l); /* NULL is fine */

/* Counts a request from key at now_ms. Returns 1 if allowed, 0 if it must be
 * refused (429); *retry_after_s (may be NULL) gets the Retry-After seconds
 * when refused, 0 when allowed. A NULL key counts as "". If memory for a new
 * client cannot be had, the request is allowed (counted in stats.nomem): the
 * limiter never refuses service because of its own failure. */
int v2g_ratelimit_check(struct v2g_ratelimit *l, const char *key, int64_t now_ms,
                        int *retry_after_s);

/* Requests key could still make at now_ms without being refused (for a
 * RateLimit-Remaining header); does not count a request. */
int v2g_ratelimit_remaining(struct v2g_ratelimit *l, const char *key, int64_t now_ms);

/* Drops every idle client at now_ms (check already does a little of this on
 * each call); returns how many. */
size_t v2g_ratelimit_sweep(struct v2g_ratelimit *l, int64_t now_ms);

const char *v2g_ratelimit_name(const struct v2g_ratelimit *l); /* borrowed */
int64_t v2g_ratelimit_window_ms(const struct v2g_ratelimit *l);
int v2g_ratelimit_max_requests(const struct v2g_ratelimit *l);
void v2g_ratelimit_get_stats(struct v2g_ratelimit *l, struct v2g_ratelimit_stats *st);

/* {"name","window_ms","max_requests","keys","max_keys","allowed","limited",
 *  "evicted"}. New reference, NULL only on allocation failure. */
json_t *v2g_ratelimit_status(struct v2g_ratelimit *l);

#endif
