/* The REST API: civetweb handlers for every /api route, bearer-token
 * authentication, per-client rate limits, a circuit breaker per bus peer,
 * audit events for refused authentications, request metrics, and the bus
 * calls behind each route.
 *
 * A request goes through, in order: /api path (else 404), token (else 401,
 * or 429 once the client's failed attempts are over the strict limit),
 * the rate limit of its route (else 429 with Retry-After), the route (404,
 * 405 with Allow), then its handler. Each peer (signal-ingest, store,
 * site-dlm) is called through its breaker: a peer that stopped answering
 * gets 503 at once while its circuit is open. */
#ifndef API_API_H
#define API_API_H

#include "settings.h"

struct mg_context;
struct v2g_bus_client;
struct v2g_audit_sink;

/* The bus peers behind the API (each a REQ client of the peer's REP). */
struct api_peers {
	struct v2g_bus_client *ingest; /* signal-ingest: POST /api/signals */
	struct v2g_bus_client *store;  /* store: dispatches, logs, audit */
	struct v2g_bus_client *dlm;    /* site-dlm: the DLM routes */
};

struct api;

/* Registers the /api handler on ctx and returns the API in *out. Borrows
 * everything: cfg (with its token and endpoints), ctx, the bus clients and
 * sink must outlive the API, and the HTTP server must be stopped before
 * api_free(). sink may be NULL (no audit events). Requests to a peer wait
 * at most bus_timeout_ms. Returns 0, V2G_ERR_INVAL or V2G_ERR_NOMEM. */
int api_start(struct api **out, struct mg_context *ctx, const struct api_cfg *cfg,
              const struct api_peers *peers, struct v2g_audit_sink *sink, int bus_timeout_ms);

/* Frees the API (NULL is fine). Call after the HTTP server has stopped. */
void api_free(struct api *a);

#endif
