#include "policy.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "v2g/err.h"
#include "v2g/signal_type.h"

const char *const disp_weight_names[7] = { "soc",          "time", "priority",     "price",
	                                   "availability", "wear", "participation" };

double *disp_weight_at(struct disp_weights *w, int i)
{
	double *f[7] = { &w->soc,          &w->time, &w->priority,     &w->price,
		         &w->availability, &w->wear, &w->participation };
	return i >= 0 && i < 7 ? f[i] : NULL;
}

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return V2G_ERR_CONFIG;
}

/* "FCR,1, load_shedding" -> mask of signal types. */
static int parse_types(const char *text, unsigned *mask, char *err, size_t len)
{
	char buf[256], *save = NULL;
	*mask = 0;
	snprintf(buf, sizeof(buf), "%s", text ? text : "");
	for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		int t = v2g_signal_type_parse(tok, 1);
		if (t < 0)
			return fail(err, len,
			            "dispatch.lp_first: unknown signal type \"%s\" (FCR, AFRR, "
			            "LOAD_SHEDDING or 0, 1, 2)",
			            tok);
		*mask |= 1u << t;
	}
	return V2G_OK;
}

/* One dispatch.segments.<name> group. */
static int load_segment(config_setting_t *g, const char *file, struct disp_policy_segment *seg,
                        int max_rounds, char *err, size_t len)
{
	const char *name = config_setting_name(g), *type = "heuristic";
	int fallback = 0;
	config_setting_t *w;

	if (!config_setting_is_group(g))
		return fail(err, len, "dispatch.segments.%s: must be a group (%s line %d)", name,
		            file, config_setting_source_line(g));
	snprintf(seg->name, sizeof(seg->name), "%s", name);
	config_setting_lookup_string(g, "dispatcher_type", &type);
	if (!strcmp(type, "heuristic"))
		seg->params.strategy = DISP_SMART;
	else if (!strcmp(type, "lp"))
		seg->params.strategy = DISP_LP;
	else
		return fail(
		        err, len,
		        "dispatch.segments.%s.dispatcher_type: must be heuristic or lp, got \"%s\"",
		        name, type);
	if (config_setting_lookup_bool(g, "fallback", &fallback) == CONFIG_FALSE &&
	    config_setting_get_member(g, "fallback"))
		return fail(err, len, "dispatch.segments.%s.fallback: must be true or false", name);
	seg->params.lp_fallback = fallback;
	seg->params.max_rounds = max_rounds;
	memset(&seg->params.weights, 0, sizeof(seg->params.weights));
	if ((w = config_setting_get_member(g, "weights")) != NULL) {
		for (int i = 0; i < config_setting_length(w); i++) {
			config_setting_t *e = config_setting_get_elem(w, (unsigned)i);
			const char *key = config_setting_name(e);
			int k = -1;
			for (int j = 0; j < 7; j++) {
				if (!strcmp(key, disp_weight_names[j]))
					k = j;
			}
			if (k < 0)
				return fail(err, len,
				            "dispatch.segments.%s.weights.%s: unknown weight (soc, "
				            "time, "
				            "priority, price, availability, wear, participation)",
				            name, key);
			int t = config_setting_type(e);
			double v = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(e)
			           : t == CONFIG_TYPE_INT ? config_setting_get_int(e)
			                                  : -1;
			if (!(v >= 0 && v <= 1000))
				return fail(err, len,
				            "dispatch.segments.%s.weights.%s: must be a number "
				            "between 0 "
				            "and 1000",
				            name, key);
			*disp_weight_at(&seg->params.weights, k) = v;
		}
	}
	return V2G_OK;
}

/* dispatch.site_limits = ( { site = "…"; limit_kw = …; parent = "…"; }, … );
 * parents must be listed too and the sites must form a hierarchy. */
static int load_sites(config_setting_t *list, struct disp_policy *out, char *err, size_t len)
{
	int n = config_setting_length(list);
	if (!config_setting_is_list(list) && !config_setting_is_array(list))
		return fail(
		        err, len,
		        "dispatch.site_limits: must be a list ( { site = …; limit_kw = …; }, … )");
	if (n > DISP_MAX_SITE_LIMITS)
		return fail(err, len, "dispatch.site_limits: more than %d sites",
		            DISP_MAX_SITE_LIMITS);
	out->sites = calloc((size_t)(n ? n : 1), sizeof(*out->sites));
	if (!out->sites)
		return fail(err, len, "dispatch.site_limits: out of memory");
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		struct disp_policy_site *ps = &out->sites[i];
		const char *site = NULL, *parent = "";
		double limit = -1;
		int t;
		if (!config_setting_is_group(e) ||
		    !config_setting_lookup_string(e, "site", &site) || !*site ||
		    strlen(site) >= sizeof(ps->site))
			return fail(err, len,
			            "dispatch.site_limits[%d].site: a non-empty name is required",
			            i);
		config_setting_t *l = config_setting_get_member(e, "limit_kw");
		if (l) {
			t = config_setting_type(l);
			limit = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(l)
			        : t == CONFIG_TYPE_INT ? config_setting_get_int(l)
			                               : -2;
			if (!(limit >= 0 && limit <= 1e9))
				return fail(
				        err, len,
				        "dispatch.site_limits[%d].limit_kw: must be a number >= 0",
				        i);
		}
		if (config_setting_get_member(e, "parent") &&
		    (!config_setting_lookup_string(e, "parent", &parent) ||
		     strlen(parent) >= sizeof(ps->parent)))
			return fail(err, len,
			            "dispatch.site_limits[%d].parent: must be a site name", i);
		for (int k = 0; k < i; k++) {
			if (!strcmp(out->sites[k].site, site))
				return fail(err, len,
				            "dispatch.site_limits[%d].site: \"%s\" listed twice", i,
				            site);
		}
		snprintf(ps->site, sizeof(ps->site), "%s", site);
		snprintf(ps->parent, sizeof(ps->parent), "%s", parent);
		ps->limit_kw = limit;
	}
	out->nsites = (size_t)n;
	/* every parent is listed, and following parents never loops */
	for (size_t i = 0; i < out->nsites; i++) {
		const char *p = out->sites[i].parent;
		size_t steps = 0;
		while (*p) {
			size_t k = 0;
			while (k < out->nsites && strcmp(out->sites[k].site, p))
				k++;
			if (k == out->nsites)
				return fail(
				        err, len,
				        "dispatch.site_limits[%zu].parent: \"%s\" is not listed", i,
				        p);
			if (++steps > out->nsites)
				return fail(
				        err, len,
				        "dispatch.site_limits: the parents of \"%s\" form a cycle",
				        out->sites[i].site);
			p = out->sites[k].parent;
		}
	}
	return V2G_OK;
}

static int load_segments(const char *file, struct disp_policy *out, int max_rounds, char *err,
                         size_t len)
{
	config_t cfg;
	config_setting_t *segs;
	int rc = V2G_OK;

	if (!file)
		return V2G_OK;
	config_init(&cfg);
	if (config_read_file(&cfg, file) != CONFIG_TRUE) {
		/* the service's own load has reported syntax errors already */
		config_destroy(&cfg);
		return V2G_OK;
	}
	segs = config_lookup(&cfg, "dispatch.segments");
	if (segs && !config_setting_is_group(segs))
		rc = fail(err, len, "dispatch.segments: must be a group of segments");
	for (int i = 0; rc == V2G_OK && segs && i < config_setting_length(segs); i++) {
		if (out->nsegments == DISP_MAX_SEGMENTS) {
			rc = fail(err, len, "dispatch.segments: more than %d segments",
			          DISP_MAX_SEGMENTS);
			break;
		}
		rc = load_segment(config_setting_get_elem(segs, (unsigned)i), file,
		                  &out->segments[out->nsegments], max_rounds, err, len);
		if (rc == V2G_OK)
			out->nsegments++;
	}
	config_setting_t *sites = config_lookup(&cfg, "dispatch.site_limits");
	if (rc == V2G_OK && sites)
		rc = load_sites(sites, out, err, len);
	config_destroy(&cfg);
	return rc;
}

void disp_policy_free(struct disp_policy *p)
{
	free(p->sites);
	p->sites = NULL;
	p->nsites = 0;
}

int disp_policy_build(const struct disp_policy_settings *s, const char *file,
                      struct disp_policy *out, char *err, size_t len)
{
	unsigned lp_first;
	int strategy, fb, rc;

	memset(out, 0, sizeof(*out));
	if ((strategy = disp_strategy_parse(s->strategy)) < 0)
		return fail(err, len,
		            "dispatch.strategy: must be priority, equal, smart or lp, got \"%s\"",
		            s->strategy);
	if ((rc = parse_types(s->lp_first, &lp_first, err, len)))
		return rc;
	if ((fb = disp_fallback_parse(s->fallback)) < 0)
		return fail(
		        err, len,
		        "dispatch.fallback: must be noop, balanced or probabilistic, got \"%s\"",
		        s->fallback);
	if (strcmp(s->prediction, "learning") && strcmp(s->prediction, "fixed"))
		return fail(err, len, "dispatch.prediction: must be learning or fixed, got \"%s\"",
		            s->prediction);
	for (int t = 0; t < 3; t++) {
		struct disp_params *p = &out->params[t];
		p->strategy = (lp_first >> t) & 1 ? DISP_LP : (enum disp_strategy)strategy;
		p->lp_fallback = (lp_first >> t) & 1;
		p->max_rounds = s->smart_max_rounds;
		p->weights = disp_default_weights(t);
		for (int i = 0; i < 7; i++) {
			if (s->weights[t][i] >= 0)
				*disp_weight_at(&p->weights, i) = s->weights[t][i];
		}
	}
	out->fallback = (enum disp_fallback)fb;
	out->prediction_fixed = !strcmp(s->prediction, "fixed");
	out->tuner_enabled = s->tuner_enabled;
	out->tuner = (struct disp_ack_tuner_cfg){ s->tuner[0], s->tuner[1], s->tuner[2],
		                                  s->tuner[3], s->tuner[4], s->tuner[5] };
	if (out->tuner_enabled) {
		char why[200];
		struct disp_tuner *t = disp_ack_tuner_new(&out->tuner, why, sizeof(why));
		if (!t)
			return fail(err, len, "dispatch.tuner: %s", why);
		t->free(t);
	}
	return load_segments(file, out, s->smart_max_rounds, err, len);
}
