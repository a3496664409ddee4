/* Route matching: path -> route, method -> 405, unknown -> 404; each
 * route's tier, DLM op, label and path parameter. */
#include <string.h>

#include "../../services/api-gateway/route.h"
#include "../harness/harness.h"

static struct api_match m;

static void test_known_routes(void)
{
	api_route_match("POST", "/api/signals", &m);
	CHECK_INT(m.status, 0);
	CHECK_INT(m.route, API_ROUTE_SIGNAL_SUBMIT);
	CHECK_STR(m.label, "POST /api/signals");
	CHECK(m.param == NULL);

	api_route_match("GET", "/api/dispatches/d-42", &m);
	CHECK_INT(m.status, 0);
	CHECK_INT(m.route, API_ROUTE_DISPATCH_GET);
	CHECK_STR(m.label, "GET /api/dispatches/{dispatch_id}");
	CHECK_INT(m.param_len, 4);
	CHECK(m.param && !strncmp(m.param, "d-42", 4));

	api_route_match("GET", "/api/dispatch/logs", &m);
	CHECK_INT(m.status, 0);
	CHECK_INT(m.route, API_ROUTE_LOGS_GET);
	CHECK_STR(m.label, "GET /api/dispatch/logs");
}

static void test_empty_dispatch_id(void)
{
	/* matched, with an empty id: the handler answers 400 */
	api_route_match("GET", "/api/dispatches/", &m);
	CHECK_INT(m.status, 0);
	CHECK_INT(m.route, API_ROUTE_DISPATCH_GET);
	CHECK_INT(m.param_len, 0);
}

static void test_wrong_method(void)
{
	api_route_match("GET", "/api/signals", &m);
	CHECK_INT(m.status, 405);
	CHECK_STR(m.allow, "POST");
	CHECK_STR(m.label, "other");
	api_route_match("DELETE", "/api/dispatches/x", &m);
	CHECK_INT(m.status, 405);
	CHECK_STR(m.allow, "GET");
	api_route_match("POST", "/api/dispatch/logs", &m);
	CHECK_INT(m.status, 405);
	CHECK_STR(m.allow, "GET");
	api_route_match("get", "/api/dispatch/logs", &m); /* methods are case-sensitive */
	CHECK_INT(m.status, 405);
}

static void test_unknown(void)
{
	static const char *const paths[] = {
		"/api",
		"/api/",
		"/api/signals/",
		"/api/signals/x",
		"/api/signalsx",
		"/api/dispatches",
		"/api/dispatches/a/b",
		"/api/dispatch/logs/",
		"/api/dispatch",
		"/api/vehicles/status",
		"/api/schedule",
		"/api/watchdog",
		"/api/watchdogs/x",
		"/api/dlm",
		"/api/dlm/status/",
		"/api/capabilities",
		"/api/capabilities/a/b",
		"/api/stations/x",
		"/api/stations/x/phase-currents/y",
		"/api/stations/x/capabilities",
		"/api/site-constraints",
		"/api/site-constraints/other",
		"/api/audit",
		"/api/audit/logs/x",
		"/api//dlm/status",
		"/api/dlm//status",
		"//api/dlm/status",
		"/apix",
		"",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		api_route_match("GET", paths[i], &m);
		if (m.status != 404 || m.route != API_ROUTE_NONE)
			harness_fail(__FILE__, __LINE__, "%s: status %d", paths[i], m.status);
		CHECK_STR(m.label, "other");
	}
	api_route_match(NULL, "/api/signals", &m);
	CHECK_INT(m.status, 404);
	api_route_match("GET", NULL, &m);
	CHECK_INT(m.status, 404);
}

/* Every route of the DLM guide: method, op, tier, label, parameter. */
static void test_dlm_routes(void)
{
	static const struct {
		const char *method, *path, *op;
		enum api_route route;
		enum api_tier tier;
		const char *label, *param_name, *param;
	} t[] = {
		{ "GET", "/api/dlm/status", "status", API_ROUTE_DLM, API_TIER_RELAXED,
		  "GET /api/dlm/status", NULL, NULL },
		{ "GET", "/api/circuit-breakers", "circuit_breakers", API_ROUTE_CIRCUIT_BREAKERS,
		  API_TIER_RELAXED, "GET /api/circuit-breakers", NULL, NULL },
		{ "GET", "/api/watchdogs", "watchdogs", API_ROUTE_DLM, API_TIER_RELAXED,
		  "GET /api/watchdogs", NULL, NULL },
		{ "GET", "/api/fail-safe/status", "failsafe_status", API_ROUTE_DLM,
		  API_TIER_RELAXED, "GET /api/fail-safe/status", NULL, NULL },
		{ "GET", "/api/load-shedding/status", "shedding_status", API_ROUTE_DLM,
		  API_TIER_RELAXED, "GET /api/load-shedding/status", NULL, NULL },
		{ "GET", "/api/site-constraints/status", "constraints_status", API_ROUTE_DLM,
		  API_TIER_RELAXED, "GET /api/site-constraints/status", NULL, NULL },
		{ "GET", "/api/capabilities/ac-01", "capabilities", API_ROUTE_DLM, API_TIER_RELAXED,
		  "GET /api/capabilities/{station}", "station", "ac-01" },
		{ "POST", "/api/stations/ac-01/phase-currents", "phase_currents", API_ROUTE_DLM,
		  API_TIER_STANDARD, "POST /api/stations/{id}/phase-currents", "id", "ac-01" },
		{ "POST", "/api/stations/dc.1/dc-power", "dc_power", API_ROUTE_DLM,
		  API_TIER_STANDARD, "POST /api/stations/{id}/dc-power", "id", "dc.1" },
		{ "POST", "/api/stations/s_1/capabilities/discover", "discover", API_ROUTE_DLM,
		  API_TIER_STANDARD, "POST /api/stations/{id}/capabilities/discover", "id", "s_1" },
		{ "POST", "/api/load-shedding/configure", "shedding_configure", API_ROUTE_DLM,
		  API_TIER_STRICT, "POST /api/load-shedding/configure", NULL, NULL },
		{ "POST", "/api/site-constraints/service", "service_configure", API_ROUTE_DLM,
		  API_TIER_STRICT, "POST /api/site-constraints/service", NULL, NULL },
		{ "POST", "/api/site-constraints/feeder", "feeder_configure", API_ROUTE_DLM,
		  API_TIER_STRICT, "POST /api/site-constraints/feeder", NULL, NULL },
		{ "POST", "/api/site-constraints/transformer", "transformer_configure",
		  API_ROUTE_DLM, API_TIER_STRICT, "POST /api/site-constraints/transformer", NULL,
		  NULL },
		{ "GET", "/api/audit/logs", NULL, API_ROUTE_AUDIT_LOGS, API_TIER_STANDARD,
		  "GET /api/audit/logs", NULL, NULL },
		{ "GET", "/api/audit/stats", NULL, API_ROUTE_AUDIT_STATS, API_TIER_STANDARD,
		  "GET /api/audit/stats", NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		api_route_match(t[i].method, t[i].path, &m);
		if (m.status != 0 || m.route != t[i].route || m.tier != t[i].tier) {
			harness_fail(__FILE__, __LINE__, "%s %s: status %d route %d tier %d",
			             t[i].method, t[i].path, m.status, (int)m.route, (int)m.tier);
			continue;
		}
		CHECK_STR(m.label, t[i].label);
		CHECK(api_route_label_known(t[i].label));
		if (t[i].op)
			CHECK_STR(m.op, t[i].op);
		else
			CHECK(m.op == NULL);
		if (t[i].param_name) {
			CHECK_STR(m.param_name, t[i].param_name);
			CHECK_INT(m.param_len, strlen(t[i].param));
			CHECK(m.param && !strncmp(m.param, t[i].param, m.param_len));
		} else {
			CHECK(m.param == NULL && m.param_name == NULL);
		}
		/* the other method: 405 with the route's one in Allow */
		api_route_match(strcmp(t[i].method, "GET") ? "GET" : "POST", t[i].path, &m);
		CHECK_INT(m.status, 405);
		CHECK_STR(m.allow, t[i].method);
		CHECK_STR(m.label, "other");
		CHECK_INT(m.tier, API_TIER_STANDARD);
		CHECK(m.op == NULL);
	}
}

static void test_empty_station(void)
{
	/* matched with an empty id, in the middle of the path: 400 later */
	api_route_match("POST", "/api/stations//dc-power", &m);
	CHECK_INT(m.status, 0);
	CHECK_STR(m.param_name, "id");
	CHECK_INT(m.param_len, 0);
	api_route_match("GET", "/api/capabilities/", &m);
	CHECK_INT(m.status, 0);
	CHECK_STR(m.param_name, "station");
	CHECK_INT(m.param_len, 0);
}

static void test_tiers_of_dispatch_routes_and_unknown(void)
{
	api_route_match("POST", "/api/signals", &m);
	CHECK_INT(m.tier, API_TIER_STANDARD);
	api_route_match("GET", "/api/dispatches/x", &m);
	CHECK_INT(m.tier, API_TIER_STANDARD);
	api_route_match("GET", "/api/dispatch/logs", &m);
	CHECK_INT(m.tier, API_TIER_STANDARD);
	api_route_match("GET", "/api/nope/status", &m);
	CHECK_INT(m.status, 404);
	CHECK_INT(m.tier, API_TIER_STANDARD);
	CHECK_STR(api_tier_name(API_TIER_STRICT), "strict");
	CHECK_STR(api_tier_name(API_TIER_STANDARD), "standard");
	CHECK_STR(api_tier_name(API_TIER_RELAXED), "relaxed");
}

static void test_labels(void)
{
	size_t n = 0;
	for (const char *l; (l = api_route_label_at(n)) != NULL; n++)
		CHECK(api_route_label_known(l));
	CHECK_INT(n, 19);
	CHECK(!api_route_label_known("other"));
	CHECK(!api_route_label_known("GET /api/signals"));
	CHECK(!api_route_label_known("POST /api/signals "));
	CHECK(!api_route_label_known(""));
	CHECK(!api_route_label_known(NULL));
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_known_routes),
		HCASE(test_empty_dispatch_id),
		HCASE(test_wrong_method),
		HCASE(test_unknown),
		HCASE(test_dlm_routes),
		HCASE(test_empty_station),
		HCASE(test_tiers_of_dispatch_routes_and_unknown),
		HCASE(test_labels),
	};
	return harness_main("api-route", cases, HARNESS_N(cases));
}
