/* The settings of v2g-api-gateway: the `api` config group, rate limits and
 * circuit breakers included, and their checks. */
#ifndef API_SETTINGS_H
#define API_SETTINGS_H

#include <stddef.h>

#include "v2g/config.h"

/* Longest route label of a per-endpoint limit ("POST /api/stations/..."). */
#define API_ROUTE_LABEL_MAX 96
/* Most per-endpoint limits. */
#define API_ENDPOINTS_MAX 32

/* One api.rate_limit.endpoints entry: a route's own limit, replacing its
 * tier's. */
struct api_endpoint_limit {
	char route[API_ROUTE_LABEL_MAX]; /* a route label, see api_route_label_known */
	int window_ms;
	int max_requests;
};

/* api.rate_limit: per client IP, one sliding window per tier. */
struct api_rate_cfg {
	int enabled;
	int strict_max, strict_window_ms;
	int standard_max, standard_window_ms;
	int relaxed_max, relaxed_window_ms;
	int max_clients; /* clients tracked per limiter */
	/* filled by api_settings_check from the file (no environment form) */
	struct api_endpoint_limit *endpoints;
	size_t nendpoints;
};

/* api.breaker: one circuit breaker per bus peer. */
struct api_breaker_cfg {
	int failure_threshold;
	int success_threshold;
	int reset_timeout_ms;
};

/* The api group of the configuration. */
struct api_cfg {
	int port;           /* api.port: the service's only HTTP port */
	char *token;        /* api.token: Bearer token for /api, never empty */
	int max_body_bytes; /* api.max_body_bytes */
	struct api_rate_cfg rate;
	struct api_breaker_cfg breaker;
	int audit_queue; /* api.audit_queue: audit events held while the store is away */
};

extern const struct v2g_cfg_item api_settings_items[];
extern const size_t api_settings_n;

/* The settings check (v2g_service_set_check): a non-empty token, and the
 * api.rate_limit.endpoints list read from file (a list of groups
 * { route = "POST /api/signals"; window_ms = 60000; max_requests = 50; }:
 * known routes, each at most once, numbers within the limiter's bounds).
 * Fills cfg->rate.endpoints (free with api_settings_fini). Writes one line
 * naming the key into err and returns V2G_ERR_CONFIG on a bad setting.
 * file may be NULL (no list). */
int api_settings_check(void *cfg, const char *file, char *err, size_t len);

/* Frees what api_settings_check added (safe on a zeroed or checked cfg,
 * and twice). The table's strings are v2g_config_free's. */
void api_settings_fini(struct api_cfg *cfg);

#endif
