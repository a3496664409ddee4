#include "settings.h"

#include <stddef.h>
#include <stdio.h>
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
	{ "dlm.service.voltage", V2G_CFG_DOUBLE, S(voltage_v), 1, 1e5, "400", NULL,
	  "nominal voltage (line-to-line for 3 phases)" },
	{ "dlm.service.phases", V2G_CFG_INT, S(phases), 1, 3, "3", NULL, "1 or 3" },
	{ "dlm.service.nec625_factor", V2G_CFG_DOUBLE, S(nec625_factor), 0.01, 1, "0.8", NULL,
	  "NEC 625 continuous-load factor" },
	{ "dlm.service.max_imbalance", V2G_CFG_DOUBLE, S(max_imbalance), 0, 1, "0.2", NULL,
	  "largest phase imbalance (max-min)/max" },
	{ "dlm.service.min_power_factor", V2G_CFG_DOUBLE, S(min_power_factor), 0, 1, "0.9", NULL,
	  "lowest power factor before a violation" },
	{ "dlm.service.frequency_hz", V2G_CFG_DOUBLE, S(frequency_hz), 1, 1000, "50", NULL,
	  "nominal grid frequency" },
	{ "dlm.shedding.enabled", V2G_CFG_BOOL, S(shed_enabled), 0, 1, "true", NULL,
	  "evaluate load shedding each cycle" },
	{ "dlm.shedding.upper_threshold", V2G_CFG_DOUBLE, S(shed_upper), 0.01, 1, "0.95", NULL,
	  "start shedding at load/limit >= this" },
	{ "dlm.shedding.lower_threshold", V2G_CFG_DOUBLE, S(shed_lower), 0.01, 1, "0.85", NULL,
	  "stop shedding at load/limit <= this" },
	{ "dlm.failsafe.safe_power_kw", V2G_CFG_DOUBLE, S(safe_power_kw), 0, 1e4, "3.7", NULL,
	  "setpoint of a silent station (reduce)" },
	{ "dlm.failsafe.offline_action", V2G_CFG_STRING, S(offline_action), 1, 16, "reduce", NULL,
	  "maintain | reduce | stop" },
	{ "dlm.failsafe.comm_timeout_ms", V2G_CFG_INT, S(comm_timeout_ms), 100, 86400000, "30000",
	  NULL, "silence before a station goes on its fail-safe setpoint" },
};
const size_t dlm_settings_n = sizeof(dlm_settings_items) / sizeof(dlm_settings_items[0]);

int dlm_settings_check(void *settings, const char *file, char *err, size_t len)
{
	struct dlm_settings *s = settings;
	(void)file;

	if (!(s->shed_lower < s->shed_upper)) {
		snprintf(err, len,
		         "dlm.shedding.lower_threshold (%g) must be below upper_threshold (%g)",
		         s->shed_lower, s->shed_upper);
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

	struct dlm_site *probe = dlm_site_new();
	int rc = probe ? dlm_site_configure_service(probe, &s->service) : V2G_ERR_NOMEM;
	dlm_site_free(probe);
	if (rc) {
		snprintf(err, len, "dlm.service: refused: %s", v2g_strerror(rc));
		return V2G_ERR_CONFIG;
	}

	s->shed = dlm_shed_defaults();
	s->shed.enabled = s->shed_enabled;
	s->shed.upper_threshold = s->shed_upper;
	s->shed.lower_threshold = s->shed_lower;
	return V2G_OK;
}
