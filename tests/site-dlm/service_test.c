/* The site-dlm settings: table defaults, file, environment (K_DLM__… and
 * the guide's MAX_GRID_CAPACITY_KW / MAX_SERVICE_CURRENT), the legacy
 * dlm.max_grid_capacity_kw key and dlm_settings_check. */
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
	"K_DLM__FAILSAFE__OFFLINE_ACTION",
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
	               "  shedding = { upper_threshold = 0.9; lower_threshold = 0.8; };\n"
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

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults),
		HCASE(test_file_and_legacy_key),
		HCASE(test_environment),
		HCASE(test_refused),
	};
	return harness_main("site-dlm-service", cases, HARNESS_N(cases));
}
