#include "settings.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "v2g/err.h"
#include "v2g/ratelimit.h"

#define F(field) offsetof(struct api_cfg, field)
/* Window bounds: 1 s .. the limiter's 7 days (fits an int). */
#define WMAX ((double)V2G_RATELIMIT_MAX_WINDOW_MS)
#define RMAX ((double)V2G_RATELIMIT_MAX_REQUESTS)

const struct v2g_cfg_item api_settings_items[] = {
	{ "api.port", V2G_CFG_INT, F(port), 1, 65535, "8900", NULL,
	  "REST API, health and metrics port" },
	{ "api.token", V2G_CFG_STRING, F(token), 1, 1024, NULL, NULL,
	  "Bearer token every /api request must carry (required, non-empty)" },
	{ "api.max_body_bytes", V2G_CFG_INT, F(max_body_bytes), 64, 16777216, "65536", NULL,
	  "largest request body accepted (413 above)" },
	{ "api.rate_limit.enabled", V2G_CFG_BOOL, F(rate.enabled), 0, 1, "true", NULL,
	  "per-client rate limits (429 with Retry-After)" },
	{ "api.rate_limit.strict_max", V2G_CFG_INT, F(rate.strict_max), 1, RMAX, "10", NULL,
	  "strict tier: failed authentications and configuration routes per window" },
	{ "api.rate_limit.strict_window_ms", V2G_CFG_INT, F(rate.strict_window_ms), 1000, WMAX,
	  "900000", NULL, "strict tier window" },
	{ "api.rate_limit.standard_max", V2G_CFG_INT, F(rate.standard_max), 1, RMAX, "100", NULL,
	  "standard tier (every other /api route): requests per window" },
	{ "api.rate_limit.standard_window_ms", V2G_CFG_INT, F(rate.standard_window_ms), 1000, WMAX,
	  "60000", NULL, "standard tier window" },
	{ "api.rate_limit.relaxed_max", V2G_CFG_INT, F(rate.relaxed_max), 1, RMAX, "300", NULL,
	  "relaxed tier (GET status routes): requests per window" },
	{ "api.rate_limit.relaxed_window_ms", V2G_CFG_INT, F(rate.relaxed_window_ms), 1000, WMAX,
	  "60000", NULL, "relaxed tier window" },
	{ "api.rate_limit.max_clients", V2G_CFG_INT, F(rate.max_clients), 16, 10000000, "100000",
	  NULL, "client IPs tracked per limiter (least recently seen evicted beyond)" },
	{ "api.breaker.failure_threshold", V2G_CFG_INT, F(breaker.failure_threshold), 1, 1000, "5",
	  NULL, "consecutive failed bus calls to a peer that open its circuit (503 at once)" },
	{ "api.breaker.success_threshold", V2G_CFG_INT, F(breaker.success_threshold), 1, 100, "2",
	  NULL, "successful trial calls that close it again" },
	{ "api.breaker.reset_timeout_ms", V2G_CFG_INT, F(breaker.reset_timeout_ms), 100, 3600000,
	  "30000", NULL, "how long an open circuit refuses calls before a trial" },
	{ "api.audit_queue", V2G_CFG_INT, F(audit_queue), 10, 1000000, "10000", NULL,
	  "audit events held while the store is unreachable (oldest dropped beyond)" },
};
const size_t api_settings_n = sizeof(api_settings_items) / sizeof(api_settings_items[0]);

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return V2G_ERR_CONFIG;
}

/* An integer member of an endpoint group, within lo..hi. */
static int endpoint_int(config_setting_t *g, int i, const char *key, long long lo, long long hi,
                        int *out, char *err, size_t len)
{
	config_setting_t *s = config_setting_get_member(g, key);
	long long v;

	if (!s)
		return fail(err, len, "api.rate_limit.endpoints[%d].%s: missing", i, key);
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT: v = config_setting_get_int(s); break;
	case CONFIG_TYPE_INT64: v = config_setting_get_int64(s); break;
	default:
		return fail(err, len, "api.rate_limit.endpoints[%d].%s: must be an integer", i,
		            key);
	}
	if (v < lo || v > hi)
		return fail(
		        err, len,
		        "api.rate_limit.endpoints[%d].%s: must be between %lld and %lld, got %lld",
		        i, key, lo, hi, v);
	*out = (int)v;
	return V2G_OK;
}

static int load_endpoints(config_setting_t *list, struct api_rate_cfg *rc, char *err, size_t len)
{
	int n = config_setting_length(list);

	if (!config_setting_is_list(list) && !config_setting_is_array(list))
		return fail(err, len,
		            "api.rate_limit.endpoints: must be a list ( { route = \"POST "
		            "/api/signals\"; window_ms = 60000; max_requests = 50; }, ... )");
	if (n > API_ENDPOINTS_MAX)
		return fail(err, len, "api.rate_limit.endpoints: more than %d entries",
		            API_ENDPOINTS_MAX);
	if (n == 0)
		return V2G_OK;
	rc->endpoints = calloc((size_t)n, sizeof(*rc->endpoints));
	if (!rc->endpoints)
		return fail(err, len, "api.rate_limit.endpoints: out of memory");
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct api_endpoint_limit *e = &rc->endpoints[i];
		const char *route = NULL;
		int r;

		if (!config_setting_is_group(g))
			return fail(err, len,
			            "api.rate_limit.endpoints[%d]: must be a group { route = ...; "
			            "window_ms = ...; max_requests = ...; }",
			            i);
		if (!config_setting_lookup_string(g, "route", &route))
			return fail(err, len,
			            "api.rate_limit.endpoints[%d].route: missing (a string such as "
			            "\"POST /api/signals\")",
			            i);
		if (!api_route_label_known(route))
			return fail(err, len,
			            "api.rate_limit.endpoints[%d].route: unknown route \"%.96s\" "
			            "(METHOD and path as in the REST API, e.g. \"GET "
			            "/api/capabilities/{station}\")",
			            i, route);
		for (size_t k = 0; k < rc->nendpoints; k++)
			if (!strcmp(rc->endpoints[k].route, route))
				return fail(err, len,
				            "api.rate_limit.endpoints[%d].route: \"%s\" is listed "
				            "twice",
				            i, route);
		snprintf(e->route, sizeof(e->route), "%s", route);
		if ((r = endpoint_int(g, i, "window_ms", 1000, V2G_RATELIMIT_MAX_WINDOW_MS,
		                      &e->window_ms, err, len)) ||
		    (r = endpoint_int(g, i, "max_requests", 1, V2G_RATELIMIT_MAX_REQUESTS,
		                      &e->max_requests, err, len)))
			return r;
		rc->nendpoints++;
	}
	return V2G_OK;
}

int api_settings_check(void *settings, const char *file, char *err, size_t len)
{
	struct api_cfg *cfg = settings;
	config_t lc;
	config_setting_t *list;
	int rc = V2G_OK;

	api_settings_fini(cfg);
	if (!cfg->token || !*cfg->token)
		return fail(err, len,
		            "api.token: must not be empty (set it in the file or K_API__TOKEN)");
	if (!file)
		return V2G_OK;
	config_init(&lc);
	if (config_read_file(&lc, file) != CONFIG_TRUE) {
		/* the table's load has reported syntax errors already */
		config_destroy(&lc);
		return V2G_OK;
	}
	list = config_lookup(&lc, "api.rate_limit.endpoints");
	if (list)
		rc = load_endpoints(list, &cfg->rate, err, len);
	config_destroy(&lc);
	if (rc)
		api_settings_fini(cfg);
	return rc;
}

void api_settings_fini(struct api_cfg *cfg)
{
	free(cfg->rate.endpoints);
	cfg->rate.endpoints = NULL;
	cfg->rate.nendpoints = 0;
}
