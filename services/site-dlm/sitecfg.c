/* JSON -> site configuration (see sitecfg.h). Table-driven: each object
 * kind lists its keys with a type, bounds and where the value goes; a key
 * not in the table is an error. */
#include "sitecfg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	if (err && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return V2G_ERR_INVAL;
}

/* A key as it may be shown in an error: at most 40 bytes, control
 * characters as '?'. */
static void show_key(const char *key, char out[48])
{
	size_t n = 0;
	for (; key[n] && n < 40; n++)
		out[n] = (unsigned char)key[n] < 0x20 || key[n] == 0x7f ? '?' : key[n];
	if (key[n]) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

enum kind {
	K_NUM,    /* double */
	K_PHASES, /* int, 1 or 3 */
	K_STR,    /* char *, owned by the spec */
	K_LIST,   /* char ** + size_t count, owned by the spec */
	K_ID,     /* char[DLM_ID_MAX] */
};

/* Bounds of a number: lo < x (lo_open) or lo <= x, and x <= hi. */
struct field {
	const char *key;
	enum kind kind;
	int required;
	double lo, hi;
	int lo_open;
	size_t off;       /* of the value in the target struct */
	size_t off2;      /* K_LIST: of the count */
	const char *what; /* K_LIST: "station" / "feeder" */
};

#define NO_OFF ((size_t)-1)

static int number(json_t *v, double *out)
{
	if (!json_is_number(v))
		return -1;
	*out = json_number_value(v);
	return isfinite(*out) ? 0 : -1;
}

/* An id or name: a string of 1..DLM_ID_MAX-1 bytes, no control character. */
static int good_text(json_t *v)
{
	if (!json_is_string(v))
		return 0;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0 || n >= DLM_ID_MAX || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int parse_list(const struct field *f, json_t *v, char ***out, size_t *n, char *err,
                      size_t len)
{
	size_t i, k;
	json_t *e;

	if (!json_is_array(v))
		return fail(err, len, "%s: must be an array of %s ids", f->key, f->what);
	if (json_array_size(v) > DLM_SITECFG_MAX_LIST)
		return fail(err, len, "%s: more than %d %ss", f->key, DLM_SITECFG_MAX_LIST,
		            f->what);
	*out = calloc(json_array_size(v) + 1, sizeof(**out));
	if (!*out)
		return V2G_ERR_NOMEM;
	json_array_foreach(v, i, e)
	{
		if (!good_text(e))
			return fail(err, len, "%s[%zu]: must be a %s id of 1-%d characters", f->key,
			            i, f->what, DLM_ID_MAX - 1);
		for (k = 0; k < i; k++)
			if (strcmp((*out)[k], json_string_value(e)) == 0)
				return fail(err, len, "%s[%zu]: \"%s\" is listed twice", f->key, i,
				            json_string_value(e));
		if (!((*out)[i] = strdup(json_string_value(e))))
			return V2G_ERR_NOMEM;
		*n = i + 1;
	}
	return 0;
}

/* The check of one number against its field's bounds: NULL when good, else
 * the rule ("must be > 0"). */
static const char *bounds(const struct field *f, double d, char *buf, size_t n)
{
	int lo_ok = f->lo_open ? d > f->lo : d >= f->lo;
	if (lo_ok && d <= f->hi)
		return NULL;
	if (isinf(f->hi))
		snprintf(buf, n, "must be %s %g", f->lo_open ? ">" : ">=", f->lo);
	else
		snprintf(buf, n, "must be %s %g and <= %g", f->lo_open ? ">" : ">=", f->lo, f->hi);
	return buf;
}

/* Applies obj's keys to base per the table; sets seen[i] for each key
 * given. Storage for strings and lists goes into base (owned). */
static int apply(const struct field *t, size_t nt, json_t *obj, char *base, int *seen, char *err,
                 size_t len)
{
	const char *key;
	json_t *v;
	char rule[64];

	if (!json_is_object(obj))
		return fail(err, len, "body: must be a JSON object");
	json_object_foreach(obj, key, v)
	{
		size_t i;
		for (i = 0; i < nt && strcmp(t[i].key, key) != 0; i++)
			;
		if (i == nt) {
			char k[48], known[256];
			size_t o = 0;
			show_key(key, k);
			known[0] = '\0';
			for (size_t j = 0; j < nt && o < sizeof(known); j++)
				o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s",
				                      j ? ", " : "", t[j].key);
			return fail(err, len, "%s: unknown field (known: %s)", k, known);
		}
		const struct field *f = &t[i];
		double d;
		seen[i] = 1;
		switch (f->kind) {
		case K_NUM:
			if (number(v, &d))
				return fail(err, len, "%s: must be a number", f->key);
			if (bounds(f, d, rule, sizeof(rule)))
				return fail(err, len, "%s: %s, got %g", f->key, rule, d);
			*(double *)(base + f->off) = d;
			break;
		case K_PHASES:
			if (number(v, &d) || d != floor(d))
				return fail(err, len, "%s: must be an integer, 1 or 3", f->key);
			if (d != 1 && d != 3)
				return fail(err, len, "%s: must be 1 or 3, got %g", f->key, d);
			*(int *)(base + f->off) = (int)d;
			break;
		case K_ID:
			if (!good_text(v))
				return fail(err, len,
				            "%s: must be a string of 1-%d characters, no "
				            "control character",
				            f->key, DLM_ID_MAX - 1);
			memcpy(base + f->off, json_string_value(v), json_string_length(v) + 1);
			break;
		case K_STR: {
			char **dst = (char **)(base + f->off);
			if (!good_text(v))
				return fail(err, len,
				            "%s: must be a string of 1-%d characters, no "
				            "control character",
				            f->key, DLM_ID_MAX - 1);
			free(*dst);
			if (!(*dst = strdup(json_string_value(v))))
				return V2G_ERR_NOMEM;
			break;
		}
		case K_LIST: {
			int rc = parse_list(f, v, (char ***)(base + f->off),
			                    (size_t *)(base + f->off2), err, len);
			if (rc)
				return rc;
			break;
		}
		}
	}
	for (size_t i = 0; i < nt; i++)
		if (t[i].required && !seen[i])
			return fail(err, len, "%s: required", t[i].key);
	return 0;
}

/* --- service --------------------------------------------------------- */

#define SV(f) offsetof(struct dlm_service_cfg, f)
/* The upper bounds are the config file's (dlm.service.* in settings.c). */
static const struct field service_fields[] = {
	{ "max_power_kw", K_NUM, 0, 0, 1e6, 1, SV(max_power_kw), 0, NULL },
	{ "max_current_a", K_NUM, 0, 0, 1e5, 1, SV(max_current_a), 0, NULL },
	{ "voltage", K_NUM, 0, 0, 1e5, 1, SV(voltage_v), 0, NULL },
	{ "phases", K_PHASES, 0, 0, 0, 0, SV(phases), 0, NULL },
	{ "nec625_factor", K_NUM, 0, 0, 1, 1, SV(nec625_factor), 0, NULL },
	{ "max_imbalance", K_NUM, 0, 0, 1, 0, SV(max_imbalance), 0, NULL },
	{ "min_power_factor", K_NUM, 0, 0, 1, 0, SV(min_power_factor), 0, NULL },
	{ "frequency_hz", K_NUM, 0, 0, 1000, 1, SV(frequency_hz), 0, NULL },
	{ "frequency_tolerance_hz", K_NUM, 0, 0, 1000, 1, SV(frequency_tolerance_hz), 0, NULL },
};
#define N_SERVICE (sizeof(service_fields) / sizeof(service_fields[0]))

int dlm_service_cfg_merge_json(struct dlm_service_cfg *cfg, json_t *obj, char *err, size_t len)
{
	struct dlm_service_cfg c = *cfg;
	int seen[N_SERVICE] = { 0 };
	int rc = apply(service_fields, N_SERVICE, obj, (char *)&c, seen, err, len);
	if (rc == 0)
		*cfg = c;
	return rc;
}

/* --- feeder ---------------------------------------------------------- */

#define FD(f) offsetof(struct dlm_feeder_spec, f)
#define FC(f) (offsetof(struct dlm_feeder_spec, cfg) + offsetof(struct dlm_feeder_cfg, f))
static const struct field feeder_fields[] = {
	{ "id", K_ID, 1, 0, 0, 0, FD(id), 0, NULL },
	{ "name", K_STR, 0, 0, 0, 0, FD(name), 0, NULL },
	{ "breaker_rating_a", K_NUM, 1, 0, 1e5, 1, FC(breaker_rating_a), 0, NULL },
	{ "cable_ampacity_a", K_NUM, 1, 0, 1e5, 1, FC(cable_ampacity_a), 0, NULL },
	{ "max_current_a", K_NUM, 0, 0, 1e5, 0, FC(max_current_a), 0, NULL },
	{ "max_power_kw", K_NUM, 0, 0, 1e6, 0, FC(max_power_kw), 0, NULL },
	{ "phases", K_PHASES, 1, 0, 0, 0, FC(phases), 0, NULL },
	{ "stations", K_LIST, 0, 0, 0, 0, FD(stations), FC(n_stations), "station" },
};
#define N_FEEDER (sizeof(feeder_fields) / sizeof(feeder_fields[0]))

int dlm_feeder_cfg_from_json(json_t *obj, struct dlm_feeder_spec *out, char *err, size_t len)
{
	int seen[N_FEEDER] = { 0 };
	memset(out, 0, sizeof(*out));
	int rc = apply(feeder_fields, N_FEEDER, obj, (char *)out, seen, err, len);
	/* absent limits are 0 = none (memset); the views for constraints.h */
	out->cfg.name = out->name;
	out->cfg.stations = (const char *const *)out->stations;
	return rc;
}

void dlm_feeder_spec_fini(struct dlm_feeder_spec *s)
{
	if (!s)
		return;
	free(s->name);
	for (size_t i = 0; s->stations && i < s->cfg.n_stations; i++)
		free(s->stations[i]);
	free(s->stations);
	memset(s, 0, sizeof(*s));
}

/* --- transformer ----------------------------------------------------- */

#define TD(f) offsetof(struct dlm_transformer_spec, f)
#define TC(f) (offsetof(struct dlm_transformer_spec, cfg) + offsetof(struct dlm_transformer_cfg, f))
static const struct field xfmr_fields[] = {
	{ "id", K_ID, 1, 0, 0, 0, TD(id), 0, NULL },
	{ "name", K_STR, 0, 0, 0, 0, TD(name), 0, NULL },
	{ "rated_kva", K_NUM, 1, 0, 1e6, 1, TC(rated_kva), 0, NULL },
	{ "continuous_factor", K_NUM, 0, 0, 1, 1, TC(continuous_factor), 0, NULL },
	{ "max_temp_c", K_NUM, 0, -50, 250, 0, TC(max_temp_c), 0, NULL },
	{ "derate_band_c", K_NUM, 0, 0, 200, 1, TC(derate_band_c), 0, NULL },
	{ "cooling", K_STR, 0, 0, 0, 0, TD(cooling), 0, NULL },
	{ "feeders", K_LIST, 0, 0, 0, 0, TD(feeders), TC(n_feeders), "feeder" },
};
#define N_XFMR (sizeof(xfmr_fields) / sizeof(xfmr_fields[0]))

int dlm_transformer_cfg_from_json(json_t *obj, struct dlm_transformer_spec *out, char *err,
                                  size_t len)
{
	int seen[N_XFMR] = { 0 };
	struct dlm_transformer_cfg def = dlm_transformer_defaults();

	memset(out, 0, sizeof(*out));
	out->cfg.continuous_factor = def.continuous_factor;
	out->cfg.max_temp_c = def.max_temp_c;
	out->cfg.derate_band_c = def.derate_band_c;
	int rc = apply(xfmr_fields, N_XFMR, obj, (char *)out, seen, err, len);
	if (rc == 0 && !out->cooling && !(out->cooling = strdup(def.cooling ? def.cooling : "")))
		rc = V2G_ERR_NOMEM;
	out->cfg.name = out->name;
	out->cfg.cooling = out->cooling;
	out->cfg.feeders = (const char *const *)out->feeders;
	return rc;
}

void dlm_transformer_spec_fini(struct dlm_transformer_spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->cooling);
	for (size_t i = 0; s->feeders && i < s->cfg.n_feeders; i++)
		free(s->feeders[i]);
	free(s->feeders);
	memset(s, 0, sizeof(*s));
}
