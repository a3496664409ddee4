/* The settings of v2g-site-dlm (the `dlm` config group and the DLM guide's
 * environment variables) and their checks. */
#ifndef DLM_SETTINGS_H
#define DLM_SETTINGS_H

#include <stddef.h>

#include "constraints.h"
#include "failsafe.h"
#include "shedding.h"
#include "v2g/config.h"

struct dlm_settings {
	char *site;
	int cycle_ms;
	int max_stations;
	int default_priority;
	double legacy_max_kw; /* dlm.max_grid_capacity_kw (0: unset) */
	double max_power_kw;  /* dlm.service.max_power_kw (0: legacy key, else 250) */
	double max_current_a;
	double voltage_v;
	int phases;
	double nec625_factor;
	double max_imbalance;
	double min_power_factor;
	double frequency_hz;
	double shed_upper, shed_lower;
	int shed_enabled;
	double safe_power_kw;
	char *offline_action;
	int comm_timeout_ms;
	/* filled by dlm_settings_check */
	struct dlm_service_cfg service;
	struct dlm_shed_cfg shed;
	struct dlm_failsafe_cfg failsafe;
};

extern const struct v2g_cfg_item dlm_settings_items[];
extern const size_t dlm_settings_n;

/* Checks what the table cannot (lower < upper, phases 1 or 3, the offline
 * action's name, the service as dlm_site_configure_service accepts it),
 * resolves the service power (dlm.service.max_power_kw, else the legacy
 * dlm.max_grid_capacity_kw, else 250 kW) and fills service, shed and
 * failsafe. Writes one line into err and returns V2G_ERR_CONFIG on a bad
 * setting. file is unused. */
int dlm_settings_check(void *settings, const char *file, char *err, size_t len);

#endif
