/* The gateway's rate limits (DLM guide 1.6) on top of v2g/ratelimit.h:
 * which limiter a request counts against, keyed by the client's IP.
 *
 *   auth      failed authentications (the guide's /api/auth brute-force
 *             tier; we have bearer tokens, no login route): strict numbers.
 *             Once a client has used them up, its next failed attempts get
 *             429 instead of 401 until Retry-After. Requests with the right
 *             token never count here and are never refused by it.
 *   strict    the run-time configuration routes
 *   standard  every other /api path
 *   relaxed   GET status routes
 *   custom    api.rate_limit.endpoints: a route's own limiter, instead of
 *             its tier's (its tier name in metrics and answers is "custom")
 *
 * Each limiter has its own table of clients, so a client's standard budget
 * does not shrink with its status polling. When limits are disabled every
 * request is allowed and the verdict's limit is 0 (no RateLimit headers).
 *
 * Thread-safety: any number of threads at once (the limiters lock). */
#ifndef API_LIMITS_H
#define API_LIMITS_H

#include <stdint.h>

#include "route.h"
#include "settings.h"

struct api_limits;

struct api_verdict {
	int allowed;       /* 1: go on; 0: answer 429 */
	int retry_after_s; /* when refused: the Retry-After seconds (>= 1) */
	int limit;         /* the limiter's max requests per window; 0: no limit */
	int remaining;     /* requests left in the window after this one */
	const char *tier;  /* "auth", "strict", "standard", "relaxed", "custom" */
};

/* Builds the limiters of cfg (borrowed; its endpoints must name known
 * routes). Returns 0, V2G_ERR_INVAL or V2G_ERR_NOMEM; free with
 * api_limits_free. */
int api_limits_new(const struct api_rate_cfg *cfg, struct api_limits **out);
void api_limits_free(struct api_limits *l); /* NULL is fine */

/* Counts an authenticated request on route m (its label picks a custom
 * limiter, else its tier's) from client at now_ms. */
void api_limits_request(struct api_limits *l, const struct api_match *m, const char *client,
                        int64_t now_ms, struct api_verdict *v);

/* Counts a failed authentication from client at now_ms. */
void api_limits_auth_failure(struct api_limits *l, const char *client, int64_t now_ms,
                             struct api_verdict *v);

#endif
