#include "limits.h"

#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"
#include "v2g/ratelimit.h"

struct custom {
	const char *label; /* borrowed from the cfg */
	struct v2g_ratelimit *rl;
};

struct api_limits {
	int enabled;
	struct v2g_ratelimit *auth, *tier[3]; /* indexed by enum api_tier */
	struct custom *custom;
	size_t ncustom;
};

void api_limits_free(struct api_limits *l)
{
	if (!l)
		return;
	v2g_ratelimit_free(l->auth);
	for (int i = 0; i < 3; i++)
		v2g_ratelimit_free(l->tier[i]);
	for (size_t i = 0; i < l->ncustom; i++)
		v2g_ratelimit_free(l->custom[i].rl);
	free(l->custom);
	free(l);
}

int api_limits_new(const struct api_rate_cfg *cfg, struct api_limits **out)
{
	struct api_limits *l;
	size_t keys;
	int rc;

	*out = NULL;
	if (!cfg || cfg->max_clients < 0)
		return V2G_ERR_INVAL;
	keys = (size_t)cfg->max_clients;
	l = calloc(1, sizeof(*l));
	if (!l)
		return V2G_ERR_NOMEM;
	l->enabled = cfg->enabled;
	if (!l->enabled) {
		*out = l;
		return V2G_OK;
	}
	if ((rc = v2g_ratelimit_new("auth", cfg->strict_window_ms, cfg->strict_max, keys,
	                            &l->auth)) ||
	    (rc = v2g_ratelimit_new("strict", cfg->strict_window_ms, cfg->strict_max, keys,
	                            &l->tier[API_TIER_STRICT])) ||
	    (rc = v2g_ratelimit_new("standard", cfg->standard_window_ms, cfg->standard_max, keys,
	                            &l->tier[API_TIER_STANDARD])) ||
	    (rc = v2g_ratelimit_new("relaxed", cfg->relaxed_window_ms, cfg->relaxed_max, keys,
	                            &l->tier[API_TIER_RELAXED])))
		goto fail;
	if (cfg->nendpoints) {
		l->custom = calloc(cfg->nendpoints, sizeof(*l->custom));
		if (!l->custom) {
			rc = V2G_ERR_NOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct api_endpoint_limit *e = &cfg->endpoints[i];
		if (!api_route_label_known(e->route)) {
			rc = V2G_ERR_INVAL;
			goto fail;
		}
		if ((rc = v2g_ratelimit_new(e->route, e->window_ms, e->max_requests, keys,
		                            &l->custom[i].rl)))
			goto fail;
		l->custom[i].label = e->route;
		l->ncustom++;
	}
	*out = l;
	return V2G_OK;
fail:
	api_limits_free(l);
	return rc;
}

static void judge(struct v2g_ratelimit *rl, const char *tier, const char *client, int64_t now_ms,
                  struct api_verdict *v)
{
	v->tier = tier;
	v->allowed = v2g_ratelimit_check(rl, client, now_ms, &v->retry_after_s);
	v->limit = v2g_ratelimit_max_requests(rl);
	v->remaining = v2g_ratelimit_remaining(rl, client, now_ms);
}

static void unlimited(const char *tier, struct api_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->allowed = 1;
	v->tier = tier;
}

void api_limits_request(struct api_limits *l, const struct api_match *m, const char *client,
                        int64_t now_ms, struct api_verdict *v)
{
	enum api_tier t = m->tier;

	if (!l->enabled) {
		unlimited(api_tier_name(t), v);
		return;
	}
	/* Only a matched route has its label; 404 and 405 are "other". */
	for (size_t i = 0; m->status == 0 && i < l->ncustom; i++) {
		if (!strcmp(l->custom[i].label, m->label)) {
			judge(l->custom[i].rl, "custom", client, now_ms, v);
			return;
		}
	}
	if (t != API_TIER_STRICT && t != API_TIER_RELAXED)
		t = API_TIER_STANDARD;
	judge(l->tier[t], api_tier_name(t), client, now_ms, v);
}

void api_limits_auth_failure(struct api_limits *l, const char *client, int64_t now_ms,
                             struct api_verdict *v)
{
	if (!l->enabled) {
		unlimited("auth", v);
		return;
	}
	judge(l->auth, "auth", client, now_ms, v);
}
