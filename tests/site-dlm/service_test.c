/* The site-dlm settings: table defaults, file, environment (K_DLM__… and
 * the guide's MAX_GRID_CAPACITY_KW / MAX_SERVICE_CURRENT), the legacy
 * dlm.max_grid_capacity_kw key and dlm_settings_check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/service.h"
#include "v2g/config.h"
#include "v2g/err.h"

static const char *const envs[] = {
	"MAX_GRID_CAPACITY_KW",
	"MAX_SERVICE_CURRENT",
	"K_DLM__SITE",
	"K_DLM__CYCLE_MS",
	"K_DLM__SERVICE__MAX_POWER_KW",
	"K_DLM__MAX_GRID_CAPACITY_KW",
	"K_DLM__SERVICE__PHASES",
	"K_DLM__SHEDDING__LOWER_THRESHOLD",
	"K_DLM__SHEDDING__MODE",
	"K_DLM__SHEDDING__ESCALATE_HOLD_MS",
	"K_DLM__FAILSAFE__OFFLINE_ACTION",
	"SERVICE_VOLTAGE",
	"SERVICE_PHASES",
	"NEC625_CONTINUOUS_FACTOR",
	"MAX_PHASE_IMBALANCE",
	"ENABLE_LOAD_SHEDDING",
	"LOAD_SHEDDING_UPPER_THRESHOLD",
	"LOAD_SHEDDING_LOWER_THRESHOLD",
	"ENABLE_FAIL_SAFE",
	"FAIL_SAFE_COMM_TIMEOUT",
};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++)
		unsetenv(envs[i]);
}

/* Loads file text (NULL: none) and runs the check; returns the check's or
 * the load's status, err holds the line. */
static int load(const char *text, struct dlm_settings *st, char *err, size_t len)
{
	char path[] = "/tmp/dlm-service-test-XXXXXX";
	int fd = -1, rc;

	memset(st, 0, sizeof(*st));
	err[0] = '\0';
	if (text) {
		fd = mkstemp(path);
		if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
			return V2G_ERR_IO;
		close(fd);
	}
	rc = v2g_config_load(text ? path : NULL, dlm_settings_items, dlm_settings_n, st, err, len);
	if (!rc)
		rc = dlm_settings_check(st, text ? path : NULL, err, len);
	if (text)
		unlink(path);
	return rc;
}

static void test_defaults(void)
{
	struct dlm_settings st;
	char err[256];

	clear_env();
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_OK);
	CHECK_STR(st.site, "site-01");
	CHECK_INT(st.cycle_ms, 1000);
	CHECK_NEAR(st.service.max_power_kw, 250, 1e-9);
	CHECK_NEAR(st.service.max_current_a, 400, 1e-9);
	CHECK_NEAR(st.service.voltage_v, 400, 1e-9);
	CHECK_INT(st.service.phases, 3);
	CHECK_NEAR(st.service.nec625_factor, 0.8, 1e-9);
	CHECK_NEAR(st.shed.upper_threshold, 0.95, 1e-9);
	CHECK_NEAR(st.shed.lower_threshold, 0.85, 1e-9);
	CHECK_INT(st.shed.enabled, 1);
	CHECK_INT(st.shed.mode, DLM_SHED_STEP);
	CHECK_INT((int)st.shed.min_hold_ms, 0);
	CHECK_INT((int)st.shed.escalate_hold_ms, 2000);
	CHECK_NEAR(st.failsafe.safe_power_limit_kw, 3.7, 1e-9);
	CHECK_INT(st.failsafe.offline_action, DLM_OFFLINE_REDUCE);
	CHECK_INT((int)st.failsafe.comm_timeout_ms, 30000);
	CHECK_INT(st.default_priority, 5);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);
}

static void test_file_and_legacy_key(void)
{
	struct dlm_settings st;
	char err[256];

	clear_env();
	/* the old key alone still sets the service power */
	CHECK_INT(load("dlm = { health_port = 9106; max_grid_capacity_kw = 500.0; };", &st, err,
	               sizeof(err)),
	          V2G_OK);
	CHECK_NEAR(st.service.max_power_kw, 500, 1e-9);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	/* the new key wins; nested groups are read */
	CHECK_INT(load("dlm = { max_grid_capacity_kw = 500.0; site = \"paris-01\";\n"
	               "  cycle_ms = 250;\n"
	               "  service = { max_power_kw = 180.0; max_current_a = 250.0; phases = 1; };\n"
	               "  shedding = { upper_threshold = 0.9; lower_threshold = 0.8;\n"
	               "               mode = \"jump\"; min_hold_ms = 3000;\n"
	               "               escalate_hold_ms = 500; };\n"
	               "  failsafe = { safe_power_kw = 0.0; offline_action = \"stop\";\n"
	               "               comm_timeout_ms = 5000; }; };",
	               &st, err, sizeof(err)),
	          V2G_OK);
	CHECK_STR(st.site, "paris-01");
	CHECK_INT(st.cycle_ms, 250);
	CHECK_NEAR(st.service.max_power_kw, 180, 1e-9);
	CHECK_NEAR(st.service.max_current_a, 250, 1e-9);
	CHECK_INT(st.service.phases, 1);
	CHECK_NEAR(st.shed.upper_threshold, 0.9, 1e-9);
	CHECK_NEAR(st.shed.lower_threshold, 0.8, 1e-9);
	CHECK_INT(st.shed.mode, DLM_SHED_JUMP);
	CHECK_INT((int)st.shed.min_hold_ms, 3000);
	CHECK_INT((int)st.shed.escalate_hold_ms, 500);
	CHECK_INT(st.failsafe.offline_action, DLM_OFFLINE_STOP);
	CHECK_NEAR(st.failsafe.safe_power_limit_kw, 0, 1e-9);
	CHECK_INT((int)st.failsafe.comm_timeout_ms, 5000);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);
}

static void test_environment(void)
{
	struct dlm_settings st;
	char err[256];

	clear_env();
	/* the guide's variables, over the file's legacy key */
	setenv("MAX_GRID_CAPACITY_KW", "300", 1);
	setenv("MAX_SERVICE_CURRENT", "320", 1);
	CHECK_INT(load("dlm = { max_grid_capacity_kw = 500.0; };", &st, err, sizeof(err)), V2G_OK);
	CHECK_NEAR(st.service.max_power_kw, 300, 1e-9);
	CHECK_NEAR(st.service.max_current_a, 320, 1e-9);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	clear_env();
	setenv("K_DLM__SERVICE__MAX_POWER_KW", "120", 1);
	setenv("K_DLM__SITE", "lyon-02", 1);
	setenv("K_DLM__CYCLE_MS", "500", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_OK);
	CHECK_NEAR(st.service.max_power_kw, 120, 1e-9);
	CHECK_STR(st.site, "lyon-02");
	CHECK_INT(st.cycle_ms, 500);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	/* the rest of the guide's variables (its "Configuration Examples") */
	clear_env();
	setenv("SERVICE_VOLTAGE", "480", 1);
	setenv("SERVICE_PHASES", "3", 1);
	setenv("NEC625_CONTINUOUS_FACTOR", "0.80", 1);
	setenv("MAX_PHASE_IMBALANCE", "0.10", 1);
	setenv("ENABLE_LOAD_SHEDDING", "false", 1);
	setenv("LOAD_SHEDDING_UPPER_THRESHOLD", "0.9", 1);
	setenv("LOAD_SHEDDING_LOWER_THRESHOLD", "0.8", 1);
	setenv("FAIL_SAFE_COMM_TIMEOUT", "15000", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_OK);
	CHECK_NEAR(st.service.voltage_v, 480, 1e-9);
	CHECK_INT(st.service.phases, 3);
	CHECK_NEAR(st.service.nec625_factor, 0.8, 1e-9);
	CHECK_NEAR(st.service.max_imbalance, 0.1, 1e-9);
	CHECK_INT(st.shed.enabled, 0);
	CHECK_NEAR(st.shed.upper_threshold, 0.9, 1e-9);
	CHECK_NEAR(st.shed.lower_threshold, 0.8, 1e-9);
	CHECK_INT((int)st.failsafe.comm_timeout_ms, 15000);
	CHECK_INT(st.failsafe.offline_action, DLM_OFFLINE_REDUCE);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	/* ENABLE_FAIL_SAFE=false: a silent station keeps its setpoint */
	clear_env();
	setenv("ENABLE_FAIL_SAFE", "false", 1);
	CHECK_INT(load("dlm = { failsafe = { offline_action = \"stop\"; }; };", &st, err,
	               sizeof(err)),
	          V2G_OK);
	CHECK_INT(st.failsafe.offline_action, DLM_OFFLINE_MAINTAIN);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	/* a bad value names the variable's key */
	clear_env();
	setenv("SERVICE_PHASES", "2", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strstr(err, "phases") != NULL);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);
	clear_env();
}

static void test_refused(void)
{
	struct dlm_settings st;
	char err[256];

	clear_env();
	setenv("K_DLM__SHEDDING__LOWER_THRESHOLD", "0.95", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strstr(err, "dlm.shedding.lower_threshold") != NULL);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	clear_env();
	setenv("K_DLM__SHEDDING__MODE", "fast", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strstr(err, "dlm.shedding.mode") != NULL);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	clear_env();
	setenv("K_DLM__SHEDDING__ESCALATE_HOLD_MS", "-1", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strstr(err, "dlm.shedding.escalate_hold_ms") != NULL);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	clear_env();
	setenv("K_DLM__SHEDDING__ESCALATE_HOLD_MS", "0", 1); /* unpaced: allowed */
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_OK);
	CHECK_INT((int)st.shed.escalate_hold_ms, 0);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	clear_env();
	setenv("K_DLM__SERVICE__PHASES", "2", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strstr(err, "dlm.service.phases") != NULL);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	clear_env();
	setenv("K_DLM__FAILSAFE__OFFLINE_ACTION", "panic", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strstr(err, "dlm.failsafe.offline_action") != NULL);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	clear_env();
	setenv("K_DLM__SITE", "a/b", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strstr(err, "dlm.site") != NULL);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	clear_env();
	setenv("K_DLM__CYCLE_MS", "0", 1);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strstr(err, "dlm.cycle_ms") != NULL);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);
	clear_env();
}

/* dlm.feeders and dlm.transformers: read through the REST parsers,
 * cross-checked, and built into a site by dlm_settings_configure_site. */
static void test_site_lists(void)
{
	struct dlm_settings st;
	char err[256];

	clear_env();
	CHECK_INT(load("dlm = { service = { max_power_kw = 300.0; voltage = 400.0; };\n"
	               "  feeders = (\n"
	               "    { id = \"F1\"; name = \"North\"; breaker_rating_a = 125.0;\n"
	               "      cable_ampacity_a = 125.0; phases = 3;\n"
	               "      stations = [\"ac-01\", \"ac-02\"]; },\n"
	               "    { id = \"F2\"; breaker_rating_a = 250; cable_ampacity_a = 200.0;\n"
	               "      phases = 3; max_power_kw = 120.0; stations = [\"dc-01\"]; }\n"
	               "  );\n"
	               "  transformers = ( { id = \"T1\"; rated_kva = 300.0;\n"
	               "      continuous_factor = 0.8; max_temp_c = 110.0;\n"
	               "      feeders = [\"F1\", \"F2\"]; } );\n"
	               "};",
	               &st, err, sizeof(err)),
	          V2G_OK);
	CHECK_STR(err, "");
	CHECK_INT(st.n_feeders, 2);
	CHECK_INT(st.n_transformers, 1);
	if (st.n_feeders == 2 && st.n_transformers == 1) {
		CHECK_STR(st.feeders[0].id, "F1");
		CHECK_STR(st.feeders[0].cfg.name, "North");
		CHECK_NEAR(st.feeders[0].cfg.breaker_rating_a, 125, 0);
		CHECK_INT(st.feeders[0].cfg.n_stations, 2);
		CHECK_STR(st.feeders[0].cfg.stations[1], "ac-02");
		/* an integer in the file is a fine number */
		CHECK_NEAR(st.feeders[1].cfg.breaker_rating_a, 250, 0);
		CHECK_NEAR(st.feeders[1].cfg.max_power_kw, 120, 0);
		CHECK_NEAR(st.feeders[1].cfg.max_current_a, 0, 0);
		CHECK_STR(st.transformers[0].id, "T1");
		CHECK_NEAR(st.transformers[0].cfg.max_temp_c, 110, 0);
		CHECK_INT(st.transformers[0].cfg.n_feeders, 2);
	}

	/* what the service start does with them; stations not heard yet */
	struct dlm_site *site = dlm_site_new();
	CHECK_INT(dlm_settings_configure_site(&st, site, err, sizeof(err)), V2G_OK);
	CHECK_NEAR(dlm_site_service(site)->max_power_kw, 300, 0);
	CHECK_INT(dlm_site_feeder_count(site), 2);
	CHECK_INT(dlm_site_station_feeder(site, "ac-02"), 0);
	CHECK_INT(dlm_site_station_feeder(site, "dc-01"), 1);
	struct dlm_headroom h;
	/* F1: min(125 A x 0.8, 125 A) = 100 A at 400 V, 3 phases, pf 1 */
	CHECK_INT(dlm_site_feeder_available(site, "F1", &h), 0);
	CHECK_NEAR(h.available_kw, sqrt(3) * 400 * 100 / 1000, 1e-6);
	json_t *status = dlm_site_status_obj(site);
	json_t *t = json_array_get(json_object_get(status, "transformers"), 0);
	CHECK_STR(json_string_value(json_object_get(t, "id")), "T1");
	CHECK_INT(json_array_size(json_object_get(t, "feeders")), 2);
	json_decref(status);
	dlm_site_free(site);

	/* the check may run again (the lists are replaced, not leaked) */
	char path[] = "/tmp/dlm-service-test-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "dlm = { feeders = ( { id = \"F9\"; breaker_rating_a = 32.0;\n"
	                   "  cable_ampacity_a = 32.0; phases = 1; } ); };";
	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	CHECK_INT(dlm_settings_check(&st, path, err, sizeof(err)), V2G_OK);
	unlink(path);
	CHECK_INT(st.n_feeders, 1);
	CHECK_INT(st.n_transformers, 0);
	dlm_settings_fini(&st);
	dlm_settings_fini(&st);
	CHECK(st.feeders == NULL && st.n_feeders == 0);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);

	/* no lists: nothing, and the check needs no file */
	CHECK_INT(load("dlm = { site = \"x\"; };", &st, err, sizeof(err)), V2G_OK);
	CHECK_INT(st.n_feeders + st.n_transformers, 0);
	dlm_settings_fini(&st);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);
	CHECK_INT(load(NULL, &st, err, sizeof(err)), V2G_OK);
	CHECK_INT(st.n_feeders, 0);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &st);
}

#define F1 "{ id = \"F1\"; breaker_rating_a = 125.0; cable_ampacity_a = 125.0; phases = 3; "
#define F2 "{ id = \"F2\"; breaker_rating_a = 125.0; cable_ampacity_a = 125.0; phases = 3; "

static void test_site_lists_refused(void)
{
	static const struct {
		const char *dlm, *msg;
	} bad[] = {
		{ "feeders = ( " F1 "}, { id = \"F2\"; breaker_rating_a = 0.0; cable_ampacity_a = "
		  "1.0; phases = 3; } );",
		  "dlm.feeders[1].breaker_rating_a: must be > 0" },
		{ "feeders = ( " F1 "breaker_ratting_a = 100.0; } );",
		  "dlm.feeders[0].breaker_ratting_a: unknown field" },
		{ "feeders = ( { breaker_rating_a = 125.0; cable_ampacity_a = 125.0; phases = 3; } "
		  ");",
		  "dlm.feeders[0].id: required" },
		{ "feeders = ( { id = \"F1\"; breaker_rating_a = 125.0; cable_ampacity_a = 125.0; "
		  "phases = 2; } );",
		  "dlm.feeders[0].phases: must be 1 or 3" },
		{ "feeders = ( " F1 "stations = [1, 2]; } );",
		  "dlm.feeders[0].stations[0]: must be a station id" },
		{ "feeders = ( " F1 "stations = ( \"a\", 1.5 ); } );",
		  "dlm.feeders[0].stations[1]: must be a station id" },
		{ "feeders = ( " F1 "max_power_kw = true; } );",
		  "dlm.feeders[0].max_power_kw: must be a number" },
		{ "feeders = " F1 "};", "dlm.feeders: must be a list of groups" },
		{ "feeders = [ \"F1\" ];", "dlm.feeders: must be a list of groups" },
		{ "feeders = ( \"F1\" );", "dlm.feeders[0]: must be a group" },
		{ "feeders = ( " F1 "}, " F1 "} );", "dlm.feeders[1].id: \"F1\" is given twice" },
		{ "feeders = ( " F1 "stations = [\"a\", \"b\"]; }, " F2 "stations = [\"b\"]; } );",
		  "dlm.feeders[1].stations[0]: \"b\" is already on feeder \"F1\"" },
		{ "feeders = ( " F1 "} ); transformers = ( { id = \"T1\"; rated_kva = 300.0; "
		  "feeders = [\"F1\", \"F9\"]; } );",
		  "dlm.transformers[0].feeders[1]: no feeder \"F9\" in dlm.feeders" },
		{ "transformers = ( { id = \"T1\"; rated_kva = 300.0; feeders = [\"F1\"]; } );",
		  "dlm.transformers[0].feeders[0]: no feeder \"F1\"" },
		{ "feeders = ( " F1 "} ); transformers = ( { id = \"T1\"; rated_kva = 300.0; "
		  "feeders = [\"F1\"]; }, { id = \"T2\"; rated_kva = 300.0; feeders = [\"F1\"]; } "
		  ");",
		  "dlm.transformers[1].feeders[0]: \"F1\" is already under transformer \"T1\"" },
		{ "transformers = ( { id = \"T1\"; rated_kva = 300.0; }, { id = \"T1\"; rated_kva "
		  "= "
		  "400.0; } );",
		  "dlm.transformers[1].id: \"T1\" is given twice" },
		{ "transformers = ( { id = \"T1\"; rated_kva = 0; } );",
		  "dlm.transformers[0].rated_kva: must be > 0" },
		{ "transformers = ( { id = \"T1\"; rated_kva = 300.0; continuous_factor = 1.5; } "
		  ");",
		  "dlm.transformers[0].continuous_factor: must be > 0 and <= 1" },
		{ "transformers = ( { id = \"T1\"; rated_kva = 300.0; rated_kVA = 1.0; } );",
		  "dlm.transformers[0].rated_kVA: unknown field" },
	};
	struct dlm_settings st;
	char err[256], text[1024];

	clear_env();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "dlm = { %s };", bad[i].dlm);
		int rc = load(text, &st, err, sizeof(err));
		if (rc != V2G_ERR_CONFIG)
			harness_fail(__FILE__, __LINE__, "%s: accepted (%d)", text, rc);
		if (strncmp(err, bad[i].msg, strlen(bad[i].msg)) != 0)
			harness_fail(__FILE__, __LINE__, "%s: \"%s\", expected \"%s...\"", text,
			             err, bad[i].msg);
		dlm_settings_fini(&st);
		v2g_config_free(dlm_settings_items, dlm_settings_n, &st);
	}
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults),    HCASE(test_file_and_legacy_key),
		HCASE(test_environment), HCASE(test_refused),
		HCASE(test_site_lists),  HCASE(test_site_lists_refused),
	};
	return harness_main("site-dlm-service", cases, HARNESS_N(cases));
}
