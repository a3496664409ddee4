#include "settings.h"

#include <jansson.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

#define S(f) offsetof(struct dlm_settings, f)

const struct v2g_cfg_item dlm_settings_items[] = {
	{ "dlm.site", V2G_CFG_STRING, S(site), 1, 63, "site-01", NULL,
	  "site id controlled (site/{site}/...)" },
	{ "dlm.cycle_ms", V2G_CFG_INT, S(cycle_ms), 50, 60000, "1000", NULL,
	  "control cycle period" },
	{ "dlm.max_stations", V2G_CFG_INT, S(max_stations), 1, 100000, "5000", NULL,
	  "stations learned from meters at most" },
	{ "dlm.default_priority", V2G_CFG_INT, S(default_priority), 1, 10, "5", NULL,
	  "priority of a station learned from its meter" },
	{ "dlm.max_grid_capacity_kw", V2G_CFG_DOUBLE, S(legacy_max_kw), 0, 1e6, "0", NULL,
	  "old name of dlm.service.max_power_kw (used when that is 0)" },
	{ "dlm.service.max_power_kw", V2G_CFG_DOUBLE, S(max_power_kw), 0, 1e6, "0",
	  "MAX_GRID_CAPACITY_KW",
	  "service entrance power (0: dlm.max_grid_capacity_kw, else 250)" },
	{ "dlm.service.max_current_a", V2G_CFG_DOUBLE, S(max_current_a), 1, 1e5, "400",
	  "MAX_SERVICE_CURRENT", "service entrance current per phase" },
	{ "dlm.service.voltage", V2G_CFG_DOUBLE, S(voltage_v), 1, 1e5, "400",
	  "SERVICE_VOLTAGE", "nominal voltage (line-to-line for 3 phases)" },
	{ "dlm.service.phases", V2G_CFG_INT, S(phases), 1, 3, "3", "SERVICE_PHASES", "1 or 3" },
	{ "dlm.service.nec625_factor", V2G_CFG_DOUBLE, S(nec625_factor), 0.01, 1, "0.8",
	  "NEC625_CONTINUOUS_FACTOR", "NEC 625 continuous-load factor" },
	{ "dlm.service.max_imbalance", V2G_CFG_DOUBLE, S(max_imbalance), 0, 1, "0.2",
	  "MAX_PHASE_IMBALANCE",
	  "largest phase imbalance (max-min)/max" },
	{ "dlm.service.min_power_factor", V2G_CFG_DOUBLE, S(min_power_factor), 0, 1, "0.9", NULL,
	  "lowest power factor before a violation" },
	{ "dlm.service.frequency_hz", V2G_CFG_DOUBLE, S(frequency_hz), 1, 1000, "50", NULL,
	  "nominal grid frequency" },
	{ "dlm.shedding.enabled", V2G_CFG_BOOL, S(shed_enabled), 0, 1, "true", "ENABLE_LOAD_SHEDDING",
	  "evaluate load shedding each cycle" },
	{ "dlm.shedding.upper_threshold", V2G_CFG_DOUBLE, S(shed_upper), 0.01, 1, "0.95",
	  "LOAD_SHEDDING_UPPER_THRESHOLD",
	  "start shedding at load/limit >= this" },
	{ "dlm.shedding.lower_threshold", V2G_CFG_DOUBLE, S(shed_lower), 0.01, 1, "0.85",
	  "LOAD_SHEDDING_LOWER_THRESHOLD",
	  "stop shedding at load/limit <= this" },
	{ "dlm.shedding.mode", V2G_CFG_STRING, S(shed_mode), 1, 8, "step", NULL,
	  "step: one level per escalation | jump: straight to the level that suffices" },
	{ "dlm.shedding.min_hold_ms", V2G_CFG_INT, S(shed_min_hold_ms), 0, 86400000, "0", NULL,
	  "a level lasts at least this long before it may fall" },
	/* 2 s: chargers take 1-3 s to follow a new setpoint (IEC 61851 gives
	 * them several seconds); escalating again before that judges the next
	 * level on a load that does not show the last one yet. */
	{ "dlm.shedding.escalate_hold_ms", V2G_CFG_INT, S(shed_escalate_hold_ms), 0, 86400000,
	  "2000", NULL, "time between two escalations (the first from level 0 is immediate)" },
	{ "dlm.failsafe.enabled", V2G_CFG_BOOL, S(failsafe_enabled), 0, 1, "true",
	  "ENABLE_FAIL_SAFE",
	  "false: a silent station keeps its last setpoint (offline_action maintain)" },
	{ "dlm.failsafe.safe_power_kw", V2G_CFG_DOUBLE, S(safe_power_kw), 0, 1e4, "3.7", NULL,
	  "setpoint of a silent station (reduce)" },
	{ "dlm.failsafe.offline_action", V2G_CFG_STRING, S(offline_action), 1, 16, "reduce", NULL,
	  "maintain | reduce | stop" },
	{ "dlm.failsafe.comm_timeout_ms", V2G_CFG_INT, S(comm_timeout_ms), 100, 86400000, "30000",
	  "FAIL_SAFE_COMM_TIMEOUT", "silence before a station goes on its fail-safe setpoint" },
};
const size_t dlm_settings_n = sizeof(dlm_settings_items) / sizeof(dlm_settings_items[0]);

/* --- dlm.feeders and dlm.transformers ------------------------------------ */

static int cfg_fail(char *err, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int cfg_fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return V2G_ERR_CONFIG;
}

/* A libconfig setting as JSON (new reference), so that the file goes
 * through the REST routes' parsers; NULL when out of memory or for a string
 * that is not UTF-8. */
static json_t *setting_json(const config_setting_t *st)
{
	json_t *o = NULL;
	switch (config_setting_type(st)) {
	case CONFIG_TYPE_INT: return json_integer(config_setting_get_int(st));
	case CONFIG_TYPE_INT64: return json_integer(config_setting_get_int64(st));
	case CONFIG_TYPE_FLOAT: return json_real(config_setting_get_float(st));
	case CONFIG_TYPE_BOOL: return json_boolean(config_setting_get_bool(st));
	case CONFIG_TYPE_STRING: return json_string(config_setting_get_string(st));
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST:
		o = json_array();
		for (int i = 0; o && i < config_setting_length(st); i++) {
			json_t *e = setting_json(config_setting_get_elem(st, (unsigned)i));
			if (!e || json_array_append_new(o, e)) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	case CONFIG_TYPE_GROUP:
		o = json_object();
		for (int i = 0; o && i < config_setting_length(st); i++) {
			config_setting_t *c = config_setting_get_elem(st, (unsigned)i);
			json_t *e = setting_json(c);
			if (!e || json_object_set_new(o, config_setting_name(c), e)) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	default: return NULL;
	}
}

/* The groups of list `path` (may be absent) as JSON objects, each handed to
 * parse(obj, i); errors are prefixed with "path[i].". */
static int read_list(config_t *cfg, const char *path, void **out, size_t elem, size_t *n,
                     int (*parse)(json_t *obj, void *out, char *err, size_t len), char *err,
                     size_t len)
{
	config_setting_t *list = config_lookup(cfg, path);
	if (!list)
		return V2G_OK;
	if (!config_setting_is_list(list))
		return cfg_fail(err, len,
		                "%s: must be a list of groups: ( { id = \"...\"; ... }, ... )",
		                path);
	int count = config_setting_length(list);
	if (count == 0)
		return V2G_OK;
	if (!(*out = calloc((size_t)count, elem)))
		return cfg_fail(err, len, "%s: out of memory", path);
	for (int i = 0; i < count; i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		char why[200];
		if (!config_setting_is_group(g))
			return cfg_fail(err, len, "%s[%d]: must be a group { id = \"...\"; ... }",
			                path, i);
		json_t *o = setting_json(g);
		if (!o)
			return cfg_fail(err, len,
			                "%s[%d]: cannot be read (a string that is not UTF-8?)",
			                path, i);
		int rc = parse(o, (char *)*out + (size_t)i * elem, why, sizeof(why));
		json_decref(o);
		*n = (size_t)i + 1; /* the spec holds storage even on failure */
		if (rc == V2G_ERR_NOMEM)
			return cfg_fail(err, len, "%s[%d]: out of memory", path, i);
		if (rc)
			return cfg_fail(err, len, "%s[%d].%s", path, i, why);
	}
	return V2G_OK;
}

static int parse_feeder(json_t *o, void *out, char *err, size_t len)
{
	return dlm_feeder_cfg_from_json(o, out, err, len);
}

static int parse_transformer(json_t *o, void *out, char *err, size_t len)
{
	return dlm_transformer_cfg_from_json(o, out, err, len);
}

/* Cross-checks the lists: ids once each, a station on one feeder, a feeder
 * under one transformer and defined in dlm.feeders. */
static int check_lists(const struct dlm_settings *s, char *err, size_t len)
{
	for (size_t i = 0; i < s->n_feeders; i++) {
		const struct dlm_feeder_spec *f = &s->feeders[i];
		for (size_t j = 0; j < i; j++) {
			const struct dlm_feeder_spec *g = &s->feeders[j];
			if (!strcmp(f->id, g->id))
				return cfg_fail(err, len,
				                "dlm.feeders[%zu].id: \"%s\" is given twice (also "
				                "dlm.feeders[%zu])",
				                i, f->id, j);
			for (size_t a = 0; a < f->cfg.n_stations; a++)
				for (size_t b = 0; b < g->cfg.n_stations; b++)
					if (!strcmp(f->stations[a], g->stations[b]))
						return cfg_fail(
						        err, len,
						        "dlm.feeders[%zu].stations[%zu]: "
						        "\"%s\" is already on feeder \"%s\"",
						        i, a, f->stations[a], g->id);
		}
	}
	for (size_t i = 0; i < s->n_transformers; i++) {
		const struct dlm_transformer_spec *t = &s->transformers[i];
		for (size_t j = 0; j < i; j++)
			if (!strcmp(t->id, s->transformers[j].id))
				return cfg_fail(
				        err, len,
				        "dlm.transformers[%zu].id: \"%s\" is given twice (also "
				        "dlm.transformers[%zu])",
				        i, t->id, j);
		for (size_t k = 0; k < t->cfg.n_feeders; k++) {
			size_t f;
			for (f = 0; f < s->n_feeders && strcmp(s->feeders[f].id, t->feeders[k]);
			     f++)
				;
			if (f == s->n_feeders)
				return cfg_fail(
				        err, len,
				        "dlm.transformers[%zu].feeders[%zu]: no feeder \"%s\" "
				        "in dlm.feeders",
				        i, k, t->feeders[k]);
			for (size_t j = 0; j < i; j++)
				for (size_t b = 0; b < s->transformers[j].cfg.n_feeders; b++)
					if (!strcmp(t->feeders[k], s->transformers[j].feeders[b]))
						return cfg_fail(
						        err, len,
						        "dlm.transformers[%zu].feeders[%zu]: "
						        "\"%s\" is already under transformer "
						        "\"%s\"",
						        i, k, t->feeders[k], s->transformers[j].id);
		}
	}
	return V2G_OK;
}

static int load_site_lists(struct dlm_settings *s, const char *file, char *err, size_t len)
{
	config_t cfg;
	int rc;

	if (!file)
		return V2G_OK;
	config_init(&cfg);
	if (config_read_file(&cfg, file) != CONFIG_TRUE) {
		/* the table's load has reported syntax errors already */
		config_destroy(&cfg);
		return V2G_OK;
	}
	void *f = NULL, *t = NULL;
	rc = read_list(&cfg, "dlm.feeders", &f, sizeof(*s->feeders), &s->n_feeders, parse_feeder,
	               err, len);
	s->feeders = f; /* partly filled on error: dlm_settings_fini frees it */
	if (!rc) {
		rc = read_list(&cfg, "dlm.transformers", &t, sizeof(*s->transformers),
		               &s->n_transformers, parse_transformer, err, len);
		s->transformers = t;
	}
	config_destroy(&cfg);
	return rc ? rc : check_lists(s, err, len);
}

int dlm_settings_configure_site(const struct dlm_settings *st, struct dlm_site *site, char *err,
                                size_t len)
{
	int rc;
	if ((rc = dlm_site_configure_service(site, &st->service))) {
		snprintf(err, len, "dlm.service: refused: %s", v2g_strerror(rc));
		return rc;
	}
	for (size_t i = 0; i < st->n_feeders; i++) {
		const struct dlm_feeder_spec *f = &st->feeders[i];
		if ((rc = dlm_site_configure_feeder(site, f->id, &f->cfg))) {
			snprintf(err, len, "dlm.feeders[%zu] (\"%s\"): refused: %s", i, f->id,
			         v2g_strerror(rc));
			return rc;
		}
	}
	for (size_t i = 0; i < st->n_transformers; i++) {
		const struct dlm_transformer_spec *t = &st->transformers[i];
		if ((rc = dlm_site_configure_transformer(site, t->id, &t->cfg))) {
			snprintf(err, len, "dlm.transformers[%zu] (\"%s\"): refused: %s", i, t->id,
			         v2g_strerror(rc));
			return rc;
		}
	}
	return V2G_OK;
}

void dlm_settings_fini(struct dlm_settings *st)
{
	if (!st)
		return;
	for (size_t i = 0; st->feeders && i < st->n_feeders; i++)
		dlm_feeder_spec_fini(&st->feeders[i]);
	free(st->feeders);
	for (size_t i = 0; st->transformers && i < st->n_transformers; i++)
		dlm_transformer_spec_fini(&st->transformers[i]);
	free(st->transformers);
	st->feeders = NULL;
	st->transformers = NULL;
	st->n_feeders = st->n_transformers = 0;
}

/* --- the check --------------------------------------------------------- */

int dlm_settings_check(void *settings, const char *file, char *err, size_t len)
{
	struct dlm_settings *s = settings;

	if (!(s->shed_lower < s->shed_upper)) {
		snprintf(err, len,
		         "dlm.shedding.lower_threshold (%g) must be below upper_threshold (%g)",
		         s->shed_lower, s->shed_upper);
		return V2G_ERR_CONFIG;
	}
	if (strcmp(s->shed_mode, "step") != 0 && strcmp(s->shed_mode, "jump") != 0) {
		snprintf(err, len, "dlm.shedding.mode: must be step or jump, got \"%s\"",
		         s->shed_mode);
		return V2G_ERR_CONFIG;
	}
	if (s->phases != 1 && s->phases != 3) {
		snprintf(err, len, "dlm.service.phases: must be 1 or 3, got %d", s->phases);
		return V2G_ERR_CONFIG;
	}
	if (strchr(s->site, '/') || strchr(s->site, '+') || strchr(s->site, '#')) {
		snprintf(err, len, "dlm.site: no '/', '+' or '#' allowed, got \"%s\"", s->site);
		return V2G_ERR_CONFIG;
	}
	s->failsafe = dlm_failsafe_defaults();
	if (dlm_offline_action_parse(s->offline_action, &s->failsafe.offline_action)) {
		snprintf(
		        err, len,
		        "dlm.failsafe.offline_action: must be maintain, reduce or stop, got \"%s\"",
		        s->offline_action);
		return V2G_ERR_CONFIG;
	}
	if (!s->failsafe_enabled) /* ENABLE_FAIL_SAFE=false: silence changes nothing */
		s->failsafe.offline_action = DLM_OFFLINE_MAINTAIN;
	s->failsafe.safe_power_limit_kw = s->safe_power_kw;
	s->failsafe.comm_timeout_ms = s->comm_timeout_ms;

	s->service = dlm_service_defaults();
	s->service.max_power_kw = s->max_power_kw > 0    ? s->max_power_kw
	                          : s->legacy_max_kw > 0 ? s->legacy_max_kw
	                                                 : 250.0;
	s->service.max_current_a = s->max_current_a;
	s->service.voltage_v = s->voltage_v;
	s->service.phases = s->phases;
	s->service.nec625_factor = s->nec625_factor;
	s->service.max_imbalance = s->max_imbalance;
	s->service.min_power_factor = s->min_power_factor;
	s->service.frequency_hz = s->frequency_hz;

	dlm_settings_fini(s);
	int rc = load_site_lists(s, file, err, len);
	if (rc)
		return rc;
	/* Probe the whole site, as the start will build it. */
	struct dlm_site *probe = dlm_site_new();
	char why[256] = "dlm: out of memory";
	rc = probe ? dlm_settings_configure_site(s, probe, why, sizeof(why)) : V2G_ERR_NOMEM;
	dlm_site_free(probe);
	if (rc) {
		snprintf(err, len, "%s", why);
		return V2G_ERR_CONFIG;
	}

	s->shed = dlm_shed_defaults();
	s->shed.enabled = s->shed_enabled;
	s->shed.upper_threshold = s->shed_upper;
	s->shed.lower_threshold = s->shed_lower;
	s->shed.mode = strcmp(s->shed_mode, "jump") == 0 ? DLM_SHED_JUMP : DLM_SHED_STEP;
	s->shed.min_hold_ms = s->shed_min_hold_ms;
	s->shed.escalate_hold_ms = s->shed_escalate_hold_ms;
	return V2G_OK;
}
