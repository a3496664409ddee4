/* Route matching: path -> route, method -> 405, unknown -> 404. */
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
		"/api/watchdogs",
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

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_known_routes),
		HCASE(test_empty_dispatch_id),
		HCASE(test_wrong_method),
		HCASE(test_unknown),
	};
	return harness_main("api-route", cases, HARNESS_N(cases));
}
