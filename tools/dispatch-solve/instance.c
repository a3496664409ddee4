#include "instance.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "v2g/err.h"
#include "v2g/json.h"
#include "v2g/signal_type.h"

#define STR_MAX      128     /* site and segment names, as the gateway takes them */
#define MAX_POWER_KW 1e7     /* a request beyond 10 GW is a typo */
#define MAX_DURATION 10080.0 /* a week, in minutes */
#define MAX_WEIGHT   1000.0  /* as dispatch.weights in the service */
#define MAX_NAMES    65535   /* interned indexes are uint16, 0 = none */
#define KEY_SHOWN    40      /* bytes of a bad key or value quoted in errors */

static const char *const weight_names[7] = { "soc",          "time", "priority",     "price",
	                                     "availability", "wear", "participation" };

const char *dsolve_reason_name(enum dsolve_reason r)
{
	switch (r) {
	case DSOLVE_UNAVAILABLE: return "unavailable";
	case DSOLVE_NO_POWER: return "no_power";
	case DSOLVE_SOC_BELOW_BAND: return "soc_below_band";
	case DSOLVE_SOC_ABOVE_BAND: return "soc_above_band";
	default: return "";
	}
}

/* --- errors -------------------------------------------------------------- */

struct ctx {
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct ctx *x, const char *fmt, ...)
{
	if (x->err && x->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(x->err, x->errlen, fmt, ap);
		va_end(ap);
	}
	return V2G_ERR_INVAL;
}

/* A printable excerpt of s for an error line (no control characters, so
 * the message stays one line). */
static const char *shown(const char *s, char buf[KEY_SHOWN + 4])
{
	size_t i = 0;
	for (; s[i] && i < KEY_SHOWN; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	if (s[i])
		buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
	buf[i] = '\0';
	return buf;
}

/* What a JSON value is, for "got ..." in errors. */
static const char *kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* Refuses any key of o not in allowed[] (NULL-terminated). */
static int only_keys(struct ctx *x, json_t *o, const char *path, const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		int ok = 0;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = !strcmp(key, allowed[i]);
		if (!ok) {
			char list[256] = "", b[KEY_SHOWN + 4];
			size_t at = 0;
			for (size_t i = 0; allowed[i] && at < sizeof(list); i++)
				at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%s",
				                       i ? ", " : "", allowed[i]);
			return fail(x, "%s: unknown key \"%s\" (expected %s)", path, shown(key, b),
			            list);
		}
	}
	return 0;
}

/* --- fields (a member that is absent or null counts as absent) ------------ */

static json_t *member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_null(v) ? NULL : v;
}

/* A number in [min, max]; def when absent and not required. */
static int get_num(struct ctx *x, json_t *o, const char *path, const char *key, int required,
                   double def, double min, double max, double *out)
{
	json_t *v = member(o, key);
	if (!v) {
		if (required)
			return fail(x, "%s%s%s: required, a number between %g and %g", path,
			            *path ? "." : "", key, min, max);
		*out = def;
		return 0;
	}
	double d = json_is_number(v) ? json_number_value(v) : NAN;
	if (!json_is_number(v))
		return fail(x, "%s%s%s: must be a number between %g and %g, got %s", path,
		            *path ? "." : "", key, min, max, kind(v));
	if (!(d >= min && d <= max))
		return fail(x, "%s%s%s: must be a number between %g and %g, got %g", path,
		            *path ? "." : "", key, min, max, d);
	*out = d;
	return 0;
}

/* A number > 0 and <= max (for power and duration, where 0 means nothing). */
static int get_positive(struct ctx *x, json_t *o, const char *path, const char *key, int required,
                        double def, double max, double *out)
{
	json_t *v = member(o, key);
	if (!v) {
		if (required)
			return fail(x, "%s.%s: required, a number > 0", path, key);
		*out = def;
		return 0;
	}
	if (!json_is_number(v))
		return fail(x, "%s.%s: must be a number > 0, got %s", path, key, kind(v));
	double d = json_number_value(v);
	if (!(d > 0 && d <= max))
		return fail(x, "%s.%s: must be a number > 0 and at most %g, got %g", path, key, max,
		            d);
	*out = d;
	return 0;
}

static int get_bool(struct ctx *x, json_t *o, const char *path, const char *key, int required,
                    int def, int *out)
{
	json_t *v = member(o, key);
	if (!v) {
		if (required)
			return fail(x, "%s.%s: required, true or false", path, key);
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return fail(x, "%s.%s: must be true or false, got %s", path, key, kind(v));
	*out = json_is_true(v);
	return 0;
}

static int get_int(struct ctx *x, json_t *o, const char *path, const char *key, long long def,
                   long long min, long long max, long long *out)
{
	json_t *v = member(o, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(x, "%s.%s: must be an integer between %lld and %lld, got %s", path, key,
		            min, max, json_is_number(v) ? "a fraction" : kind(v));
	json_int_t i = json_integer_value(v);
	if (i < min || i > max)
		return fail(x, "%s.%s: must be an integer between %lld and %lld, got %lld", path,
		            key, min, max, (long long)i);
	*out = i;
	return 0;
}

/* A name: 1..STR_MAX bytes without control characters (empty allowed when
 * allow_empty). NULL *out when absent. */
static int check_name(struct ctx *x, const char *s, size_t n, const char *path, const char *key,
                      int allow_empty)
{
	if (n > STR_MAX)
		return fail(x, "%s%s%s: longer than %d bytes", path, *key ? "." : "", key, STR_MAX);
	if (n == 0 && !allow_empty)
		return fail(x, "%s%s%s: must not be empty", path, *key ? "." : "", key);
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return fail(x, "%s%s%s: control character", path, *key ? "." : "", key);
	}
	return 0;
}

static int get_str(struct ctx *x, json_t *o, const char *path, const char *key, int required,
                   const char **out)
{
	json_t *v = member(o, key);
	*out = NULL;
	if (!v) {
		if (required)
			return fail(x, "%s.%s: required, a string", path, key);
		return 0;
	}
	if (!json_is_string(v))
		return fail(x, "%s.%s: must be a string, got %s", path, key, kind(v));
	int rc = check_name(x, json_string_value(v), json_string_length(v), path, key, !required);
	if (rc)
		return rc;
	*out = json_string_value(v);
	return 0;
}

/* The vehicle id rule of the gateway: 1..64 of [A-Za-z0-9_.:-]. */
static int id_valid(const char *s, size_t n)
{
	if (n == 0 || n > DISP_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == ':' || ch == '-'))
			return 0;
	}
	return 1;
}

/* --- interning ------------------------------------------------------------ */

static int names_init(struct dsolve_names *t)
{
	t->names = calloc(16, sizeof(*t->names));
	t->n = 1;
	if (!t->names || disp_strmap_init(&t->map, 16))
		return V2G_ERR_NOMEM;
	return 0;
}

static void names_fini(struct dsolve_names *t)
{
	for (size_t i = 1; i < t->n && t->names; i++)
		free(t->names[i]);
	free(t->names);
	disp_strmap_fini(&t->map);
	memset(t, 0, sizeof(*t));
}

/* Index of name (0 for ""), interning it when new; *is_new says so. */
static int names_intern(struct ctx *x, struct dsolve_names *t, const char *name, const char *what,
                        uint16_t *idx, int *is_new)
{
	uint32_t v;
	if (is_new)
		*is_new = 0;
	if (!name[0]) {
		*idx = 0;
		return 0;
	}
	if (disp_strmap_get(&t->map, name, &v)) {
		*idx = (uint16_t)v;
		return 0;
	}
	if (t->n > MAX_NAMES)
		return fail(x, "%s: more than %d distinct names", what, MAX_NAMES);
	if ((t->n & (t->n - 1)) == 0 && t->n >= 16) { /* full at a power of two */
		char **nn = realloc(t->names, 2 * t->n * sizeof(*nn));
		if (!nn)
			return V2G_ERR_NOMEM;
		t->names = nn;
	}
	char *copy = strdup(name);
	if (!copy)
		return V2G_ERR_NOMEM;
	if (disp_strmap_put(&t->map, copy, (uint32_t)t->n)) {
		free(copy);
		return V2G_ERR_NOMEM;
	}
	t->names[t->n] = copy;
	*idx = (uint16_t)t->n++;
	if (is_new)
		*is_new = 1;
	return 0;
}

/* --- sections ------------------------------------------------------------- */

static int parse_type(struct ctx *x, json_t *sig, int *out)
{
	json_t *v = member(sig, "type");
	char b[KEY_SHOWN + 4];
	if (!v)
		return fail(x, "signal.type: required: FCR, AFRR or LOAD_SHEDDING (or 0, 1, 2)");
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0 || i > 2)
			return fail(x,
			            "signal.type: must be 0 (FCR), 1 (AFRR) or 2 "
			            "(LOAD_SHEDDING), got %lld",
			            (long long)i);
		*out = (int)i;
		return 0;
	}
	if (json_is_string(v)) {
		if ((*out = v2g_signal_type_parse(json_string_value(v), 0)) >= 0)
			return 0;
		return fail(x,
		            "signal.type: unknown signal type \"%s\" (FCR, PRIMARY_RESERVE, "
		            "AFRR, SECONDARY_RESERVE, LOAD_SHEDDING)",
		            shown(json_string_value(v), b));
	}
	return fail(x, "signal.type: must be a signal type name or 0..2, got %s", kind(v));
}

static int parse_signal(struct ctx *x, json_t *root, struct dsolve_instance *in)
{
	json_t *sig = json_object_get(root, "signal");
	int rc;
	if (!sig || json_is_null(sig))
		return fail(x, "signal: required, an object with type and power_kw");
	if (!json_is_object(sig))
		return fail(x, "signal: must be an object, got %s", kind(sig));
	/* Other keys of the signal (id, ts, market_price...) are ignored, as
	 * vehicles' extra state fields are. */
	if ((rc = parse_type(x, sig, &in->signal_type)) ||
	    (rc = get_positive(x, sig, "signal", "power_kw", 1, 0, MAX_POWER_KW, &in->power_kw)) ||
	    (rc = get_positive(x, sig, "signal", "duration_min", 0, 15, MAX_DURATION,
	                       &in->duration_min)))
		return rc;
	return 0;
}

/* Reads a weights object into *w: keys given replace, others stay. */
static int parse_weights(struct ctx *x, json_t *o, const char *path, struct disp_weights *w)
{
	double *slot[7] = { &w->soc,          &w->time, &w->priority,     &w->price,
		            &w->availability, &w->wear, &w->participation };
	const char *key;
	json_t *v;
	char b[KEY_SHOWN + 4];
	if (!json_is_object(o))
		return fail(x, "%s: must be an object of weights, got %s", path, kind(o));
	json_object_foreach(o, key, v)
	{
		int k = -1;
		for (int i = 0; i < 7; i++) {
			if (!strcmp(key, weight_names[i]))
				k = i;
		}
		if (k < 0)
			return fail(x,
			            "%s.%s: unknown weight (soc, time, priority, price, "
			            "availability, wear, participation)",
			            path, shown(key, b));
		int rc = get_num(x, o, path, weight_names[k], 1, 0, 0, MAX_WEIGHT, slot[k]);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_segments(struct ctx *x, json_t *o, struct dsolve_instance *in)
{
	static const char *const keys[] = { "dispatcher_type", "fallback", "weights", NULL };
	const char *name;
	json_t *g;
	char path[STR_MAX + 64], b[KEY_SHOWN + 4];
	int rc;

	if (!json_is_object(o))
		return fail(x, "config.segments: must be an object of segments, got %s", kind(o));
	in->segs = calloc(json_object_size(o) + 1, sizeof(*in->segs));
	if (!in->segs)
		return V2G_ERR_NOMEM;
	json_object_foreach(o, name, g)
	{
		struct disp_segment *s = &in->segs[in->nsegs];
		const char *type;
		snprintf(path, sizeof(path), "config.segments.%s", shown(name, b));
		if ((rc = check_name(x, name, strlen(name), "config.segments", "", 0)))
			return rc;
		if (!json_is_object(g))
			return fail(x, "%s: must be an object, got %s", path, kind(g));
		if ((rc = only_keys(x, g, path, keys)) ||
		    (rc = get_str(x, g, path, "dispatcher_type", 0, &type)) ||
		    (rc = get_bool(x, g, path, "fallback", 0, 0, &s->params.lp_fallback)))
			return rc;
		if (!type || !strcmp(type, "heuristic"))
			s->params.strategy = DISP_SMART;
		else if (!strcmp(type, "lp"))
			s->params.strategy = DISP_LP;
		else
			return fail(x, "%s.dispatcher_type: must be heuristic or lp, got \"%s\"",
			            path, shown(type, b));
		/* As dispatch.segments in the service: unlisted weights are 0. */
		memset(&s->params.weights, 0, sizeof(s->params.weights));
		json_t *w = member(g, "weights");
		if (w) {
			char wpath[STR_MAX + 80];
			snprintf(wpath, sizeof(wpath), "%s.weights", path);
			if ((rc = parse_weights(x, w, wpath, &s->params.weights)))
				return rc;
		}
		s->params.max_rounds = in->params.max_rounds;
		if ((rc = names_intern(x, &in->segments, name, "config.segments", &s->segment,
		                       NULL)))
			return rc;
		in->nsegs++;
	}
	return 0;
}

static int parse_config(struct ctx *x, json_t *root, struct dsolve_instance *in)
{
	static const char *const keys[] = { "strategy", "lp_fallback", "max_rounds",
		                            "min_soc",  "soc_low",     "soc_high",
		                            "weights",  "segments",    NULL };
	/* Eligibility bands per signal type: the service's defaults. */
	static const struct disp_band bands[3] = { { 20, 100 }, { 20, 100 }, { 10, 100 } };
	json_t *cfg = member(root, "config"), *v;
	const char *strategy = NULL;
	long long rounds;
	char b[KEY_SHOWN + 4];
	int rc;

	in->band = bands[in->signal_type];
	in->params.strategy = DISP_SMART;
	in->params.weights = disp_default_weights(in->signal_type);
	in->params.max_rounds = 5;
	in->params.lp_fallback = 0;
	in->min_soc = -1;
	if (cfg) {
		if (!json_is_object(cfg))
			return fail(x, "config: must be an object, got %s", kind(cfg));
		if ((rc = only_keys(x, cfg, "config", keys)) ||
		    (rc = get_str(x, cfg, "config", "strategy", 0, &strategy)) ||
		    (rc = get_bool(x, cfg, "config", "lp_fallback", 0, 0,
		                   &in->params.lp_fallback)) ||
		    (rc = get_int(x, cfg, "config", "max_rounds", 5, 1, 1000, &rounds)) ||
		    (rc = get_num(x, cfg, "config", "min_soc", 0, -1, 0, 100, &in->min_soc)) ||
		    (rc = get_num(x, cfg, "config", "soc_low", 0, in->band.low, 0, 100,
		                  &in->band.low)) ||
		    (rc = get_num(x, cfg, "config", "soc_high", 0, in->band.high, 0, 100,
		                  &in->band.high)))
			return rc;
		in->params.max_rounds = (int)rounds;
		if (strategy) {
			int s = disp_strategy_parse(strategy);
			if (s < 0)
				return fail(
				        x,
				        "config.strategy: must be smart, equal, lp or priority, "
				        "got \"%s\"",
				        shown(strategy, b));
			in->params.strategy = (enum disp_strategy)s;
		}
		if (!(in->band.low < in->band.high))
			return fail(x, "config.soc_low: must be below soc_high (%g), got %g",
			            in->band.high, in->band.low);
		/* As dispatch.weights in the service: listed weights replace
		 * the signal type's defaults, the others stay. */
		if ((v = member(cfg, "weights")) &&
		    (rc = parse_weights(x, v, "config.weights", &in->params.weights)))
			return rc;
		if ((v = member(cfg, "segments")) && (rc = parse_segments(x, v, in)))
			return rc;
	}
	/* The energy a vehicle may give stops at the eligibility floor. */
	if (in->min_soc < 0)
		in->min_soc = in->band.low;
	return 0;
}

static int parse_sites(struct ctx *x, json_t *root, struct dsolve_instance *in)
{
	static const char *const keys[] = { "site", "limit_kw", "parent", NULL };
	json_t *arr = member(root, "sites"), *o;
	size_t i;
	char path[48], b[KEY_SHOWN + 4];
	int rc;

	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return fail(x, "sites: must be an array of {site, limit_kw, parent}, got %s",
		            kind(arr));
	size_t n = json_array_size(arr);
	if (n >= MAX_NAMES)
		return fail(x, "sites: more than %d sites", MAX_NAMES - 1);
	in->has_limits = 1;
	in->nlisted = n + 1;
	in->limit_kw = malloc((n + 1) * sizeof(*in->limit_kw));
	in->parent = malloc((n + 1) * sizeof(*in->parent));
	if (!in->limit_kw || !in->parent)
		return V2G_ERR_NOMEM;
	in->limit_kw[0] = -1;
	in->parent[0] = -1;
	/* Names first (site i gets index i + 1), parents once all are known. */
	json_array_foreach(arr, i, o)
	{
		const char *name;
		uint16_t idx;
		int is_new;
		snprintf(path, sizeof(path), "sites[%zu]", i);
		if (!json_is_object(o))
			return fail(x, "%s: must be an object, got %s", path, kind(o));
		if ((rc = only_keys(x, o, path, keys)) ||
		    (rc = get_str(x, o, path, "site", 1, &name)) ||
		    (rc = get_num(x, o, path, "limit_kw", 0, -1, 0, MAX_POWER_KW,
		                  &in->limit_kw[i + 1])) ||
		    (rc = names_intern(x, &in->sites, name, "sites", &idx, &is_new)))
			return rc;
		if (!is_new)
			return fail(x, "%s.site: duplicate site \"%s\"", path, shown(name, b));
	}
	json_array_foreach(arr, i, o)
	{
		const char *pname;
		uint32_t p;
		snprintf(path, sizeof(path), "sites[%zu]", i);
		in->parent[i + 1] = -1;
		if ((rc = get_str(x, o, path, "parent", 0, &pname)))
			return rc;
		if (!pname || !pname[0])
			continue;
		if (!disp_strmap_get(&in->sites.map, pname, &p))
			return fail(x, "%s.parent: unknown site \"%s\" (not in sites)", path,
			            shown(pname, b));
		if (p == i + 1)
			return fail(x, "%s.parent: a site cannot be its own parent", path);
		in->parent[i + 1] = (int32_t)p;
	}
	/* The limits must form a hierarchy: no site is its own ancestor. */
	for (i = 1; i <= n; i++) {
		size_t steps = 0;
		for (int32_t s = in->parent[i]; s >= 0; s = in->parent[s]) {
			if (++steps > n)
				return fail(x, "sites[%zu].parent: cycle through site \"%s\"",
				            i - 1, shown(in->sites.names[i], b));
		}
	}
	return 0;
}

static int parse_vehicle(struct ctx *x, json_t *o, size_t i, struct dsolve_instance *in)
{
	struct dsolve_vehicle *v = &in->veh[i];
	struct disp_cand *c = &v->c;
	char path[48], b[KEY_SHOWN + 4];
	const char *site, *segment, *ignored;
	double soc, max_kw, tariff, battery, ap, deg, win, part, dummy;
	long long prio;
	int avail, rc;
	uint32_t other;

	snprintf(path, sizeof(path), "vehicles[%zu]", i);
	if (!json_is_object(o))
		return fail(x, "%s: must be an object, got %s", path, kind(o));
	json_t *id = member(o, "vehicle_id");
	if (!id)
		return fail(x, "%s.vehicle_id: required, a string", path);
	if (!json_is_string(id))
		return fail(x, "%s.vehicle_id: must be a string, got %s", path, kind(id));
	if (!id_valid(json_string_value(id), json_string_length(id)))
		return fail(x, "%s.vehicle_id: must be 1 to %d of A-Z a-z 0-9 _ . : -, got \"%s\"",
		            path, DISP_ID_MAX, shown(json_string_value(id), b));
	memcpy(v->id, json_string_value(id), json_string_length(id) + 1);
	if (disp_strmap_get(&in->ids, v->id, &other))
		return fail(x, "%s.vehicle_id: duplicate \"%s\" (also vehicles[%u])", path, v->id,
		            other);
	if (disp_strmap_put(&in->ids, v->id, (uint32_t)i))
		return V2G_ERR_NOMEM;

	/* The MQTT state format (payload.c of the gateway), then forecasts.
	 * Other keys (ts, request_id...) are accepted and ignored. */
	if ((rc = get_num(x, o, path, "soc", 1, 0, 0, 100, &soc)) ||
	    (rc = get_num(x, o, path, "max_power_kw", 1, 0, 0, 1000, &max_kw)) ||
	    (rc = get_bool(x, o, path, "available", 1, 0, &avail)) ||
	    (rc = get_int(x, o, path, "priority", 0, INT32_MIN, INT32_MAX, &prio)) ||
	    (rc = get_num(x, o, path, "tariff", 0, 0, -1e6, 1e6, &tariff)) ||
	    (rc = get_str(x, o, path, "segment", 0, &segment)) ||
	    (rc = get_str(x, o, path, "site", 0, &site)) ||
	    (rc = get_str(x, o, path, "fleet_id", 0, &ignored)) ||
	    (rc = get_str(x, o, path, "cluster", 0, &ignored)) ||
	    (rc = get_num(x, o, path, "battery_kwh", 0, 0, 0, 1e5, &battery)) ||
	    (rc = get_num(x, o, path, "power_kw", 0, 0, -1000, 1000, &dummy)) ||
	    (rc = get_num(x, o, path, "avail_prob", 0, 1, 0, 1, &ap)) ||
	    (rc = get_num(x, o, path, "degradation", 0, 0, 0, 1, &deg)) ||
	    (rc = get_num(x, o, path, "window_h", 0, 0, 0, 8760, &win)) ||
	    (rc = get_num(x, o, path, "participation", 0, 0, 0, 1e9, &part)))
		return rc;
	json_t *ts = member(o, "ts");
	if (ts && !json_is_string(ts))
		return fail(x, "%s.ts: must be an RFC 3339 string, got %s", path, kind(ts));
	/* An empty or missing segment is "default", as the gateway has it. */
	if (!segment || !segment[0])
		segment = "default";
	if ((rc = names_intern(x, &in->segments, segment, "segments", &c->segment, NULL)) ||
	    (rc = names_intern(x, &in->sites, site ? site : "", "sites", &c->site, NULL)))
		return rc;

	c->id = v->id;
	c->soc = (float)soc;
	c->max_kw = (float)max_kw;
	c->tariff = (float)tariff;
	c->battery_kwh = (float)battery;
	c->priority = (int32_t)prio;
	c->avail_prob = (float)ap;
	c->degradation = (float)deg;
	c->window_h = (float)win;
	c->participation = (float)part;
	/* As disp_fleet_eligible: available, power, SoC inside the band. */
	v->reason = !avail                ? DSOLVE_UNAVAILABLE
	            : !(max_kw > 0)       ? DSOLVE_NO_POWER
	            : soc < in->band.low  ? DSOLVE_SOC_BELOW_BAND
	            : soc > in->band.high ? DSOLVE_SOC_ABOVE_BAND
	                                  : DSOLVE_ELIGIBLE;
	return 0;
}

static int parse_vehicles(struct ctx *x, json_t *root, struct dsolve_instance *in)
{
	json_t *arr = member(root, "vehicles"), *o;
	size_t i;
	int rc;
	if (!arr)
		return fail(x, "vehicles: required, an array of vehicle states");
	if (!json_is_array(arr))
		return fail(x, "vehicles: must be an array of vehicle states, got %s", kind(arr));
	size_t n = json_array_size(arr);
	if (n > UINT32_MAX / 2)
		return fail(x, "vehicles: too many");
	in->veh = calloc(n ? n : 1, sizeof(*in->veh));
	if (!in->veh || disp_strmap_init(&in->ids, n))
		return V2G_ERR_NOMEM;
	json_array_foreach(arr, i, o)
	{
		if ((rc = parse_vehicle(x, o, i, in)))
			return rc;
		in->nveh++;
	}
	return 0;
}

/* Sites named only by vehicles have no limit: extend the arrays. */
static int finish_sites(struct dsolve_instance *in)
{
	size_t n = in->sites.n;
	double *l = realloc(in->limit_kw, n * sizeof(*l));
	if (!l)
		return V2G_ERR_NOMEM;
	in->limit_kw = l;
	int32_t *p = realloc(in->parent, n * sizeof(*p));
	if (!p)
		return V2G_ERR_NOMEM;
	in->parent = p;
	for (size_t i = in->nlisted; i < n; i++) {
		in->limit_kw[i] = -1;
		in->parent[i] = -1;
	}
	return 0;
}

/* jansson quotes the input near a syntax error: keep the message one line. */
static void one_line(char *err, size_t errlen)
{
	for (char *p = err; p && errlen && *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
}

int dsolve_instance_parse(const char *buf, size_t len, struct dsolve_instance *out, char *err,
                          size_t errlen)
{
	static const char *const keys[] = { "signal", "vehicles", "sites", "config", NULL };
	struct ctx x = { err, errlen };
	json_error_t je;
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (len == 0)
		return fail(&x, "input: empty; expected a JSON object");
	root = v2g_json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		fail(&x, "input: not valid JSON: %s (line %d, column %d)", je.text, je.line,
		     je.column);
		one_line(err, errlen);
		return V2G_ERR_INVAL;
	}
	if (!json_is_object(root)) {
		rc = fail(&x, "input: must be a JSON object, got %s", kind(root));
		goto out;
	}
	if ((rc = names_init(&out->sites)) || (rc = names_init(&out->segments)))
		goto out;
	if ((rc = only_keys(&x, root, "input", keys)) || (rc = parse_signal(&x, root, out)) ||
	    (rc = parse_config(&x, root, out)) || (rc = parse_sites(&x, root, out)) ||
	    (rc = parse_vehicles(&x, root, out)) || (rc = finish_sites(out)))
		goto out;
out:
	json_decref(root);
	if (rc) {
		if (rc == V2G_ERR_NOMEM && err && errlen)
			snprintf(err, errlen, "out of memory");
		one_line(err, errlen);
		dsolve_instance_fini(out);
	}
	return rc;
}

struct disp_sites dsolve_instance_sites(const struct dsolve_instance *in)
{
	return (struct disp_sites){ in->sites.n, in->limit_kw, in->parent };
}

void dsolve_instance_fini(struct dsolve_instance *in)
{
	if (!in)
		return;
	free(in->veh);
	disp_strmap_fini(&in->ids);
	names_fini(&in->sites);
	names_fini(&in->segments);
	free(in->limit_kw);
	free(in->parent);
	free(in->segs);
	memset(in, 0, sizeof(*in));
}
