/* The settings of v2g-site-dlm (the `dlm` config group and the DLM guide's
 * environment variables) and their checks.
 *
 * The site's feeders and transformers come from the config file only (no
 * environment override), as lists of groups whose keys are those of the
 * REST routes (sitecfg.h):
 *   dlm.feeders = ( { id = "F1"; breaker_rating_a = 125.0;
 *                     cable_ampacity_a = 125.0; phases = 3;
 *                     stations = ["ac-01", "ac-02"]; }, ... );
 *   dlm.transformers = ( { id = "T1"; rated_kva = 300.0;
 *                          continuous_factor = 0.8; max_temp_c = 110.0;
 *                          feeders = ["F1"]; } );
 * Stations named on a feeder need not have been heard yet (they are
 * learned from their meters); a transformer's feeders must be in
 * dlm.feeders. */
#ifndef DLM_SETTINGS_H
#define DLM_SETTINGS_H

#include <stddef.h>

#include "constraints.h"
#include "failsafe.h"
#include "shedding.h"
#include "sitecfg.h"
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
	char *shed_mode; /* "step" | "jump" */
	int shed_min_hold_ms, shed_escalate_hold_ms;
	double safe_power_kw;
	char *offline_action;
	int failsafe_enabled; /* 0: offline_action forced to maintain */
	int comm_timeout_ms;
	/* filled by dlm_settings_check */
	struct dlm_service_cfg service;
	struct dlm_shed_cfg shed;
	struct dlm_failsafe_cfg failsafe;
	struct dlm_feeder_spec *feeders; /* dlm.feeders, in file order; owned */
	size_t n_feeders;
	struct dlm_transformer_spec *transformers; /* dlm.transformers; owned */
	size_t n_transformers;
};

extern const struct v2g_cfg_item dlm_settings_items[];
extern const size_t dlm_settings_n;

/* Checks what the table cannot (lower < upper, the shedding mode's and
 * the offline action's names, phases 1 or 3, the service as
 * dlm_site_configure_service accepts it),
 * resolves the service power (dlm.service.max_power_kw, else the legacy
 * dlm.max_grid_capacity_kw, else 250 kW) and fills service, shed and
 * failsafe. Reads dlm.feeders and dlm.transformers from file (NULL: none)
 * and probes the whole site on a scratch dlm_site, so that a start never
 * fails on them. Writes one line into err naming the key
 * ("dlm.feeders[1].breaker_rating_a: must be > 0 ...") and returns
 * V2G_ERR_CONFIG on a bad setting. Lists of an earlier call are freed
 * first. */
int dlm_settings_check(void *settings, const char *file, char *err, size_t len);

/* Configures site with the checked settings: the service, then every
 * feeder, then every transformer. 0, or a v2g error with err naming the
 * item (site then partly configured: the caller gives up). */
int dlm_settings_configure_site(const struct dlm_settings *st, struct dlm_site *site, char *err,
                                size_t len);

/* Frees the feeder and transformer lists (not the table's strings:
 * v2g_config_free does those). Safe on a zeroed struct, and twice. */
void dlm_settings_fini(struct dlm_settings *st);

#endif
