/* The REST API: civetweb handlers for every /api route, bearer-token
 * authentication, request metrics, and the bus calls behind each route. */
#ifndef API_API_H
#define API_API_H

struct mg_context;
struct v2g_bus_client;

/* The api group of the configuration. */
struct api_cfg {
	int port;           /* api.port: the service's only HTTP port */
	char *token;        /* api.token: Bearer token for /api, never empty */
	int max_body_bytes; /* api.max_body_bytes */
};

struct api;

/* Registers the /api handler on ctx and returns the API in *out. Borrows
 * everything: cfg (with its token), ctx and both bus clients must outlive
 * the API, and the HTTP server must be stopped before api_free(). Requests
 * to signal-ingest and the store wait at most bus_timeout_ms. */
int api_start(struct api **out, struct mg_context *ctx, const struct api_cfg *cfg,
              struct v2g_bus_client *ingest, struct v2g_bus_client *store, int bus_timeout_ms);

/* Frees the API (NULL is fine). Call after the HTTP server has stopped. */
void api_free(struct api *a);

#endif
