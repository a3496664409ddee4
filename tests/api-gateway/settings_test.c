/* The api settings: the rate-limit and breaker keys with their defaults
 * and bounds, the endpoints list from the file, and one line naming the
 * key for every bad value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../services/api-gateway/settings.h"
#include "../harness/harness.h"
#include "v2g/config.h"
#include "v2g/err.h"

static char path[64];
static char err[512];

static const char *file_with(const char *text)
{
	int fd;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/api-settings-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		harness_fail(__FILE__, __LINE__, "cannot write a temporary file");
		return NULL;
	}
	fputs(text, f);
	fclose(f);
	return path;
}

/* Loads the table and runs the check as the service does. */
static int load(const char *file, struct api_cfg *cfg)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	err[0] = '\0';
	rc = v2g_config_load(file, api_settings_items, api_settings_n, cfg, err, sizeof(err));
	if (rc == 0)
		rc = api_settings_check(cfg, file, err, sizeof(err));
	return rc;
}

static void done(struct api_cfg *cfg)
{
	api_settings_fini(cfg);
	v2g_config_free(api_settings_items, api_settings_n, cfg);
	if (path[0])
		unlink(path);
	path[0] = '\0';
}

/* text must be refused with an error starting with want. */
static void refused(const char *text, const char *want)
{
	struct api_cfg cfg;
	const char *f = file_with(text);
	CHECK(load(f, &cfg) != 0);
	if (strncmp(err, want, strlen(want)) != 0)
		harness_fail(__FILE__, __LINE__, "error \"%s\", expected \"%s...\"", err, want);
	CHECK(cfg.rate.endpoints == NULL && cfg.rate.nendpoints == 0);
	done(&cfg);
}

static void test_defaults_are_the_guide_tiers(void)
{
	struct api_cfg cfg;
	const char *f = file_with("api = { token = \"t\"; };\n");

	CHECK_INT(load(f, &cfg), 0);
	CHECK_INT(cfg.rate.enabled, 1);
	CHECK_INT(cfg.rate.strict_max, 10);
	CHECK_INT(cfg.rate.strict_window_ms, 15 * 60000);
	CHECK_INT(cfg.rate.standard_max, 100);
	CHECK_INT(cfg.rate.standard_window_ms, 60000);
	CHECK_INT(cfg.rate.relaxed_max, 300);
	CHECK_INT(cfg.rate.relaxed_window_ms, 60000);
	CHECK_INT(cfg.rate.nendpoints, 0);
	CHECK_INT(cfg.breaker.failure_threshold, 5);
	CHECK_INT(cfg.breaker.success_threshold, 2);
	CHECK_INT(cfg.breaker.reset_timeout_ms, 30000);
	done(&cfg);
}

static void test_endpoints_list(void)
{
	struct api_cfg cfg;
	const char *f = file_with(
	        "api = { token = \"t\";\n"
	        "  rate_limit = { enabled = false; relaxed_max = 1000;\n"
	        "    endpoints = (\n"
	        "      { route = \"POST /api/signals\"; window_ms = 60000; max_requests = 50; },\n"
	        "      { route = \"GET /api/capabilities/{station}\"; window_ms = 1000L;\n"
	        "        max_requests = 2; }\n"
	        "    );\n"
	        "  };\n"
	        "};\n");

	CHECK_INT(load(f, &cfg), 0);
	CHECK_INT(cfg.rate.enabled, 0);
	CHECK_INT(cfg.rate.relaxed_max, 1000);
	CHECK_INT(cfg.rate.nendpoints, 2);
	if (cfg.rate.nendpoints == 2) {
		CHECK_STR(cfg.rate.endpoints[0].route, "POST /api/signals");
		CHECK_INT(cfg.rate.endpoints[0].window_ms, 60000);
		CHECK_INT(cfg.rate.endpoints[0].max_requests, 50);
		CHECK_STR(cfg.rate.endpoints[1].route, "GET /api/capabilities/{station}");
		CHECK_INT(cfg.rate.endpoints[1].window_ms, 1000);
		CHECK_INT(cfg.rate.endpoints[1].max_requests, 2);
	}
	done(&cfg);
	api_settings_fini(&cfg); /* twice is fine */
}

static void test_bad_endpoints(void)
{
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( { route = \"GET "
	        "/api/nope\"; window_ms = 1000; max_requests = 1; } ); }; };",
	        "api.rate_limit.endpoints[0].route: unknown route \"GET /api/nope\"");
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( { route = \"post "
	        "/api/signals\"; window_ms = 1000; max_requests = 1; } ); }; };",
	        "api.rate_limit.endpoints[0].route: unknown route");
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( { window_ms = 1000; "
	        "max_requests = 1; } ); }; };",
	        "api.rate_limit.endpoints[0].route: missing");
	refused("api = { token = \"t\"; rate_limit = { endpoints = (\n"
	        "{ route = \"POST /api/signals\"; window_ms = 1000; max_requests = 1; },\n"
	        "{ route = \"POST /api/signals\"; window_ms = 2000; max_requests = 1; } ); }; };",
	        "api.rate_limit.endpoints[1].route: \"POST /api/signals\" is listed twice");
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( { route = \"POST "
	        "/api/signals\"; window_ms = 1.5; max_requests = 1; } ); }; };",
	        "api.rate_limit.endpoints[0].window_ms: must be an integer");
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( { route = \"POST "
	        "/api/signals\"; window_ms = 999; max_requests = 1; } ); }; };",
	        "api.rate_limit.endpoints[0].window_ms: must be between 1000 and 604800000, "
	        "got 999");
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( { route = \"POST "
	        "/api/signals\"; window_ms = 1000; max_requests = 0; } ); }; };",
	        "api.rate_limit.endpoints[0].max_requests: must be between 1 and 1000000");
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( { route = \"POST "
	        "/api/signals\"; window_ms = 1000; max_requests = 9999999999L; } ); }; };",
	        "api.rate_limit.endpoints[0].max_requests: must be between");
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( { route = \"POST "
	        "/api/signals\"; window_ms = 1000; } ); }; };",
	        "api.rate_limit.endpoints[0].max_requests: missing");
	refused("api = { token = \"t\"; rate_limit = { endpoints = ( \"POST /api/signals\" ); "
	        "}; };",
	        "api.rate_limit.endpoints[0]: must be a group");
	refused("api = { token = \"t\"; rate_limit = { endpoints = { x = 1; }; }; };",
	        "api.rate_limit.endpoints: must be a list");
}

static void test_bad_scalars(void)
{
	refused("api = { token = \"t\"; rate_limit = { strict_max = 0; }; };",
	        "api.rate_limit.strict_max: must be between 1 and");
	refused("api = { token = \"t\"; rate_limit = { standard_window_ms = 10; }; };",
	        "api.rate_limit.standard_window_ms:");
	refused("api = { token = \"t\"; rate_limit = { enabled = 3; }; };",
	        "api.rate_limit.enabled:");
	refused("api = { token = \"t\"; breaker = { failure_threshold = 0; }; };",
	        "api.breaker.failure_threshold:");
	refused("api = { token = \"\"; };", "api.token:");
	refused("api = { port = 1; };", "api.token: required setting is missing");
}

static void test_environment_overrides(void)
{
	struct api_cfg cfg;

	setenv("K_API__RATE_LIMIT__STANDARD_MAX", "7", 1);
	setenv("K_API__RATE_LIMIT__ENABLED", "no", 1);
	CHECK_INT(load(file_with("api = { token = \"t\"; };"), &cfg), 0);
	CHECK_INT(cfg.rate.standard_max, 7);
	CHECK_INT(cfg.rate.enabled, 0);
	done(&cfg);
	setenv("K_API__RATE_LIMIT__STANDARD_MAX", "0", 1);
	CHECK(load(file_with("api = { token = \"t\"; };"), &cfg) != 0);
	CHECK(strstr(err, "api.rate_limit.standard_max") != NULL);
	CHECK(strstr(err, "K_API__RATE_LIMIT__STANDARD_MAX") != NULL);
	done(&cfg);
	unsetenv("K_API__RATE_LIMIT__STANDARD_MAX");
	unsetenv("K_API__RATE_LIMIT__ENABLED");
	/* no file: defaults and environment, no list */
	setenv("K_API__TOKEN", "x", 1);
	CHECK_INT(load(NULL, &cfg), 0);
	CHECK_INT(cfg.rate.nendpoints, 0);
	done(&cfg);
	unsetenv("K_API__TOKEN");
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults_are_the_guide_tiers),
		HCASE(test_endpoints_list),
		HCASE(test_bad_endpoints),
		HCASE(test_bad_scalars),
		HCASE(test_environment_overrides),
	};
	return harness_main("api-settings", cases, HARNESS_N(cases));
}
