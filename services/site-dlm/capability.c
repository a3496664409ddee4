/* Capability profiles, registry (chained hash of individually allocated
 * records, so pointers stay valid across growth), validation. */
#include "capability.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

#define ALL_AC_FEATS (DLM_FEAT_SMART_CHARGING | DLM_FEAT_CURRENT_LIMIT)
#define ALL_DC_FEATS (DLM_FEAT_SMART_CHARGING | DLM_FEAT_CURRENT_LIMIT | DLM_FEAT_POWER_LIMIT)

/* The AC power ranges below are phases x phase voltage x current (see
 * capability.h); a test checks them against dlm_cap_phase_voltage(). */
static const struct dlm_cap profiles[] = {
	{ "", "", "ac_level2_single", DLM_CAP_AC, "J1772", 240, 240, 6, 80, 1.44, 19.2, 1,
	  ALL_AC_FEATS },
	{ "", "", "ac_level2_three", DLM_CAP_AC, "Type 2", 400, 400, 6, 32, 4.14, 22.08, 3,
	  ALL_AC_FEATS | DLM_FEAT_PHASE_SWITCHING | DLM_FEAT_PER_PHASE_CURRENT },
	{ "", "", "dcfc_ccs_medium", DLM_CAP_DC, "CCS", 200, 500, 10, 200, 20, 150, 0,
	  ALL_DC_FEATS },
	{ "", "", "dcfc_ccs_high", DLM_CAP_DC, "CCS", 200, 920, 10, 500, 50, 350, 0,
	  ALL_DC_FEATS | DLM_FEAT_BIDIRECTIONAL },
	{ "", "", "dcfc_chademo", DLM_CAP_DC, "CHAdeMO", 50, 500, 10, 125, 10, 62.5, 0,
	  ALL_DC_FEATS | DLM_FEAT_BIDIRECTIONAL },
};
#define NPROFILES (sizeof(profiles) / sizeof(profiles[0]))

static const char *const feature_names[DLM_FEAT_COUNT] = {
	"bidirectional",     "smart_charging", "phase_switching",
	"per_phase_current", "power_limit",    "current_limit",
};

static const char *const cmd_names[] = {
	"ac_current_limit",
	"dc_power_limit",
	"dc_current_limit",
	"set_power",
};

const struct dlm_cap *dlm_cap_profile_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < NPROFILES; i++)
		if (strcmp(profiles[i].profile, name) == 0)
			return &profiles[i];
	return NULL;
}

size_t dlm_cap_profile_count(void)
{
	return NPROFILES;
}

const struct dlm_cap *dlm_cap_profile_at(size_t i)
{
	return i < NPROFILES ? &profiles[i] : NULL;
}

const char *dlm_feature_name(unsigned feature)
{
	for (int i = 0; i < DLM_FEAT_COUNT; i++)
		if (feature == (1u << i))
			return feature_names[i];
	return NULL;
}

unsigned dlm_feature_parse(const char *name)
{
	if (!name)
		return 0;
	for (int i = 0; i < DLM_FEAT_COUNT; i++)
		if (strcmp(feature_names[i], name) == 0)
			return 1u << i;
	return 0;
}

const char *dlm_cmd_type_name(enum dlm_cmd_type t)
{
	if ((unsigned)t < sizeof(cmd_names) / sizeof(cmd_names[0]))
		return cmd_names[t];
	return "unknown";
}

int dlm_cmd_type_parse(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (strcmp(cmd_names[i], name) == 0)
			return (int)i;
	return -1;
}

double dlm_cap_phase_voltage(const struct dlm_cap *cap)
{
	if (!cap || cap->type != DLM_CAP_AC)
		return 0;
	if (cap->phases == 3) {
		/* 230/400 V (and the old 220/380, 240/415) networks: the IEC
		 * 60038 nominal 230 V rather than 400/sqrt(3) = 230.9 V. */
		if (cap->voltage_max >= 380 && cap->voltage_max <= 415)
			return 230.0;
		return cap->voltage_max / sqrt(3.0);
	}
	return cap->voltage_max;
}

/* --- registry ------------------------------------------------------- */

struct entry {
	struct entry *next;
	struct dlm_cap cap;
};

struct dlm_cap_registry {
	struct entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

struct dlm_cap_registry *dlm_cap_registry_alloc(void)
{
	struct dlm_cap_registry *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	reg->nbuckets = 64;
	reg->buckets = calloc(reg->nbuckets, sizeof(*reg->buckets));
	if (!reg->buckets) {
		free(reg);
		return NULL;
	}
	return reg;
}

void dlm_cap_registry_free(struct dlm_cap_registry *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->nbuckets; i++) {
		struct entry *e = reg->buckets[i];
		while (e) {
			struct entry *n = e->next;
			free(e);
			e = n;
		}
	}
	free(reg->buckets);
	free(reg);
}

size_t dlm_cap_registry_count(const struct dlm_cap_registry *reg)
{
	return reg ? reg->count : 0;
}

static struct entry **find_slot(const struct dlm_cap_registry *reg, const char *station)
{
	struct entry **pp = &reg->buckets[hash_str(station) & (reg->nbuckets - 1)];
	while (*pp && strcmp((*pp)->cap.station, station) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* Doubling the buckets; failure only leaves chains longer. */
static void maybe_grow(struct dlm_cap_registry *reg)
{
	if (reg->count < reg->nbuckets)
		return;
	size_t nb = reg->nbuckets * 2;
	struct entry **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < reg->nbuckets; i++) {
		struct entry *e = reg->buckets[i];
		while (e) {
			struct entry *n = e->next;
			size_t k = hash_str(e->cap.station) & (nb - 1);
			e->next = b[k];
			b[k] = e;
			e = n;
		}
	}
	free(reg->buckets);
	reg->buckets = b;
	reg->nbuckets = nb;
}

static int copy_str(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);
	if (len >= n)
		return V2G_ERR_INVAL;
	memcpy(dst, src, len + 1);
	return 0;
}

static void derive_ac_power(struct dlm_cap *c)
{
	double v = dlm_cap_phase_voltage(c);
	c->power_min_kw = c->phases * v * c->current_min / 1000.0;
	c->power_max_kw = c->phases * v * c->current_max / 1000.0;
}

static int apply_overrides(struct dlm_cap *c, const struct dlm_cap_overrides *ov)
{
	int rederive = 0;
	if (ov->type != DLM_CAP_TYPE_UNSET) {
		if (ov->type != DLM_CAP_AC && ov->type != DLM_CAP_DC)
			return V2G_ERR_INVAL;
		if (ov->type != c->type) {
			c->type = ov->type;
			c->phases = c->type == DLM_CAP_AC ? 1 : 0;
			rederive = 1;
		}
	}
	if (ov->connector && copy_str(c->connector, sizeof(c->connector), ov->connector))
		return V2G_ERR_INVAL;
	if (ov->voltage_min > 0)
		c->voltage_min = ov->voltage_min, rederive = 1;
	if (ov->voltage_max > 0)
		c->voltage_max = ov->voltage_max, rederive = 1;
	if (ov->current_min > 0)
		c->current_min = ov->current_min, rederive = 1;
	if (ov->current_max > 0)
		c->current_max = ov->current_max, rederive = 1;
	if (ov->phases > 0)
		c->phases = ov->phases, rederive = 1;
	if (ov->features_set)
		c->features = ov->features;
	if (c->type == DLM_CAP_AC && rederive)
		derive_ac_power(c);
	if (ov->power_min_kw > 0)
		c->power_min_kw = ov->power_min_kw;
	if (ov->power_max_kw > 0)
		c->power_max_kw = ov->power_max_kw;
	return 0;
}

static int consistent(const struct dlm_cap *c)
{
	if (!(c->current_max > 0) || !(c->power_max_kw > 0) || !(c->voltage_max > 0))
		return 0;
	if (c->current_min > c->current_max || c->power_min_kw > c->power_max_kw ||
	    c->voltage_min > c->voltage_max)
		return 0;
	if (c->type == DLM_CAP_AC) {
		if (c->phases != 1 && c->phases != 3)
			return 0;
		if (c->current_min < DLM_IEC_MIN_A)
			return 0;
	} else if (c->phases != 0) {
		return 0;
	}
	return 1;
}

int dlm_cap_discover(struct dlm_cap_registry *reg, const char *station, const char *protocol,
                     const char *profile, const struct dlm_cap_overrides *ov,
                     const struct dlm_cap **out)
{
	struct dlm_cap c;
	const struct dlm_cap *base;
	int rc;

	if (!reg || !station || !*station)
		return V2G_ERR_INVAL;
	base = dlm_cap_profile_find(profile ? profile : DLM_CAP_DEFAULT_PROFILE);
	if (!base)
		return V2G_ERR_NOTFOUND;
	c = *base;
	if (copy_str(c.station, sizeof(c.station), station) ||
	    copy_str(c.protocol, sizeof(c.protocol), protocol ? protocol : ""))
		return V2G_ERR_INVAL;
	if (ov && (rc = apply_overrides(&c, ov)))
		return rc;
	if (!consistent(&c))
		return V2G_ERR_INVAL;

	struct entry **pp = find_slot(reg, station);
	if (!*pp) {
		struct entry *e = calloc(1, sizeof(*e));
		if (!e)
			return V2G_ERR_NOMEM;
		*pp = e;
		reg->count++;
		e->cap = c;
		if (out)
			*out = &e->cap;
		maybe_grow(reg);
		return 0;
	}
	(*pp)->cap = c;
	if (out)
		*out = &(*pp)->cap;
	return 0;
}

const struct dlm_cap *dlm_cap_get(const struct dlm_cap_registry *reg, const char *station)
{
	if (!reg || !station)
		return NULL;
	struct entry **pp = find_slot(reg, station);
	return *pp ? &(*pp)->cap : NULL;
}

int dlm_cap_remove(struct dlm_cap_registry *reg, const char *station)
{
	if (!reg || !station)
		return V2G_ERR_NOTFOUND;
	struct entry **pp = find_slot(reg, station);
	if (!*pp)
		return V2G_ERR_NOTFOUND;
	struct entry *e = *pp;
	*pp = e->next;
	free(e);
	reg->count--;
	return 0;
}

void dlm_cap_foreach(const struct dlm_cap_registry *reg,
                     void (*fn)(const struct dlm_cap *cap, void *arg), void *arg)
{
	if (!reg || !fn)
		return;
	for (size_t i = 0; i < reg->nbuckets; i++)
		for (const struct entry *e = reg->buckets[i]; e; e = e->next)
			fn(&e->cap, arg);
}

/* --- validation ----------------------------------------------------- */

static void add_err(struct dlm_cap_validation *res, enum dlm_cap_error_code code, const char *field,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add_err(struct dlm_cap_validation *res, enum dlm_cap_error_code code, const char *field,
                    const char *fmt, ...)
{
	va_list ap;
	res->valid = 0;
	if (res->nerrors >= DLM_CAP_MAX_ERRORS)
		return;
	struct dlm_cap_error *e = &res->errors[res->nerrors++];
	e->code = code;
	snprintf(e->field, sizeof(e->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* One amps value against the range; ac adds the IEC minimum. */
static void check_amps(struct dlm_cap_validation *res, const struct dlm_cap *c, const char *field,
                       double a, int ac)
{
	if (!isfinite(a)) {
		add_err(res, DLM_CAPERR_NOT_A_NUMBER, field, "%s: not a number", field);
		return;
	}
	if (a < 0) {
		add_err(res, DLM_CAPERR_NEGATIVE, field, "%s: %.1f A is negative", field, a);
		return;
	}
	if (a == 0)
		return; /* stop */
	if (ac && a < DLM_IEC_MIN_A) {
		add_err(res, DLM_CAPERR_BELOW_IEC_MIN, field,
		        "%s: %.1f A is below the IEC 61851 minimum of %.0f A (use 0 to stop)",
		        field, a, DLM_IEC_MIN_A);
		return;
	}
	if (a < c->current_min)
		add_err(res, DLM_CAPERR_BELOW_MIN, field, "%s: %.1f A is below the minimum %.1f A",
		        field, a, c->current_min);
	else if (a > c->current_max)
		add_err(res, DLM_CAPERR_ABOVE_MAX, field, "%s: %.1f A is above the maximum %.1f A",
		        field, a, c->current_max);
}

static void check_kw(struct dlm_cap_validation *res, const struct dlm_cap *c, double kw)
{
	if (!isfinite(kw)) {
		add_err(res, DLM_CAPERR_NOT_A_NUMBER, "value", "value: not a number");
		return;
	}
	if (kw == 0)
		return;
	if (kw < 0 && !(c->features & DLM_FEAT_BIDIRECTIONAL)) {
		add_err(res, DLM_CAPERR_NOT_BIDIRECTIONAL, "value",
		        "%.1f kW export asked of a station without bidirectional support", kw);
		return;
	}
	double m = fabs(kw);
	if (m < c->power_min_kw)
		add_err(res, DLM_CAPERR_BELOW_MIN, "value", "%.1f kW is below the minimum %.1f kW",
		        kw, c->power_min_kw);
	else if (m > c->power_max_kw)
		add_err(res, DLM_CAPERR_ABOVE_MAX, "value", "%.1f kW is above the maximum %.1f kW",
		        kw, c->power_max_kw);
}

int dlm_cap_validate(const struct dlm_cap_registry *reg, const char *station,
                     const struct dlm_cap_command *cmd, struct dlm_cap_validation *res)
{
	static const char *const pn[3] = { "A", "B", "C" };
	const struct dlm_cap *c;

	memset(res, 0, sizeof(*res));
	res->valid = 1;
	c = dlm_cap_get(reg, station);
	if (!c) {
		add_err(res, DLM_CAPERR_UNKNOWN_STATION, "", "unknown station %s",
		        station ? station : "(null)");
		return V2G_ERR_NOTFOUND;
	}
	if (!cmd) {
		add_err(res, DLM_CAPERR_WRONG_TYPE, "type", "no command");
		return V2G_ERR_INVAL;
	}
	switch (cmd->type) {
	case DLM_CMD_AC_CURRENT_LIMIT:
		if (c->type != DLM_CAP_AC) {
			add_err(res, DLM_CAPERR_WRONG_TYPE, "type",
			        "ac_current_limit to a DC station");
			break;
		}
		if (!(cmd->phase_mask & 7u))
			add_err(res, DLM_CAPERR_NO_PHASES, "", "no phase current given");
		for (int p = 0; p < 3; p++) {
			if (!(cmd->phase_mask & (1u << p)))
				continue;
			if (p >= c->phases) {
				add_err(res, DLM_CAPERR_NO_SUCH_PHASE, pn[p],
				        "%s: the station has %d phase%s", pn[p], c->phases,
				        c->phases == 1 ? "" : "s");
				continue;
			}
			check_amps(res, c, pn[p], cmd->phase[p], 1);
		}
		break;
	case DLM_CMD_DC_CURRENT_LIMIT:
		if (c->type != DLM_CAP_DC) {
			add_err(res, DLM_CAPERR_WRONG_TYPE, "type",
			        "dc_current_limit to an AC station");
			break;
		}
		check_amps(res, c, "value", cmd->value, 0);
		break;
	case DLM_CMD_DC_POWER_LIMIT:
		if (c->type != DLM_CAP_DC) {
			add_err(res, DLM_CAPERR_WRONG_TYPE, "type",
			        "dc_power_limit to an AC station");
			break;
		}
		check_kw(res, c, cmd->value);
		break;
	case DLM_CMD_SET_POWER: check_kw(res, c, cmd->value); break;
	default:
		add_err(res, DLM_CAPERR_WRONG_TYPE, "type", "unknown command type %d",
		        (int)cmd->type);
	}
	return res->valid ? 0 : V2G_ERR_INVAL;
}

int dlm_cap_recommended(const struct dlm_cap_registry *reg, const char *station, enum dlm_unit unit,
                        double value, double *out)
{
	const struct dlm_cap *c = dlm_cap_get(reg, station);
	double lo, hi, m;

	if (!c)
		return V2G_ERR_NOTFOUND;
	if (isnan(value) || !out)
		return V2G_ERR_INVAL;
	if (unit == DLM_UNIT_AMPS) {
		lo = c->current_min;
		if (c->type == DLM_CAP_AC && lo < DLM_IEC_MIN_A)
			lo = DLM_IEC_MIN_A;
		hi = c->current_max;
		if (value <= 0) {
			*out = 0;
			return 0;
		}
	} else {
		lo = c->power_min_kw;
		hi = c->power_max_kw;
		if (value < 0 && !(c->features & DLM_FEAT_BIDIRECTIONAL)) {
			*out = 0;
			return 0;
		}
	}
	m = fabs(value);
	if (m < lo || m == 0)
		m = 0;
	else if (m > hi)
		m = hi;
	*out = value < 0 ? -m : m;
	return 0;
}

int dlm_cap_supports(const struct dlm_cap_registry *reg, const char *station, unsigned feature)
{
	const struct dlm_cap *c = dlm_cap_get(reg, station);
	return c && feature && (c->features & feature) == feature;
}

/* --- JSON ----------------------------------------------------------- */

static json_t *range(double lo, double hi)
{
	return json_pack("{s:f,s:f}", "min", lo, "max", hi);
}

json_t *dlm_cap_to_json(const struct dlm_cap *c)
{
	json_t *feats, *j;
	if (!c)
		return NULL;
	feats = json_object();
	if (!feats)
		return NULL;
	for (int i = 0; i < DLM_FEAT_COUNT; i++)
		json_object_set_new(feats, feature_names[i], json_boolean(c->features & (1u << i)));
	j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:i,s:f,s:o}", "station", c->station,
	              "protocol", c->protocol, "profile", c->profile, "type",
	              c->type == DLM_CAP_AC ? "ac" : "dc", "connector", c->connector, "voltage",
	              range(c->voltage_min, c->voltage_max), "current",
	              range(c->current_min, c->current_max), "power",
	              range(c->power_min_kw, c->power_max_kw), "phases", c->phases, "phase_voltage",
	              dlm_cap_phase_voltage(c), "features", feats);
	return j;
}

json_t *dlm_cap_status_json(const struct dlm_cap_registry *reg, const char *station)
{
	return dlm_cap_to_json(dlm_cap_get(reg, station));
}

struct json_walk {
	json_t *obj;
};

static void add_json(const struct dlm_cap *cap, void *arg)
{
	struct json_walk *w = arg;
	json_t *j = dlm_cap_to_json(cap);
	if (j)
		json_object_set_new(w->obj, cap->station, j);
}

json_t *dlm_cap_registry_json(const struct dlm_cap_registry *reg)
{
	struct json_walk w = { json_object() };
	if (!w.obj)
		return NULL;
	dlm_cap_foreach(reg, add_json, &w);
	return json_pack("{s:I,s:o}", "count", (json_int_t)dlm_cap_registry_count(reg), "stations",
	                 w.obj);
}
