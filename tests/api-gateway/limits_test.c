/* The gateway's rate-limit mapping: which limiter a request counts against
 * (tier of its route, a per-endpoint limit, failed authentications), per
 * client, with Retry-After that holds, and nothing limited when off. */
#include <string.h>

#include "../../services/api-gateway/limits.h"
#include "../harness/harness.h"
#include "v2g/err.h"

#define MIN 60000

static struct api_rate_cfg cfg;
static struct api_endpoint_limit eps[2];

/* Small numbers so that every tier is reached in a few calls. */
static void cfg_init(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.enabled = 1;
	cfg.strict_max = 2;
	cfg.strict_window_ms = 15 * MIN;
	cfg.standard_max = 3;
	cfg.standard_window_ms = MIN;
	cfg.relaxed_max = 5;
	cfg.relaxed_window_ms = MIN;
	cfg.max_clients = 100;
}

static struct api_limits *make(void)
{
	struct api_limits *l = NULL;
	CHECK_INT(api_limits_new(&cfg, &l), 0);
	return l;
}

/* Counts n requests of method+path from client at t; returns how many
 * were allowed. */
static int send_n(struct api_limits *l, const char *method, const char *path, const char *client,
                  int64_t t, int n, struct api_verdict *v)
{
	struct api_match m;
	int ok = 0;
	api_route_match(method, path, &m);
	for (int i = 0; i < n; i++) {
		api_limits_request(l, &m, client, t, v);
		ok += v->allowed;
	}
	return ok;
}

static void test_tiers(void)
{
	struct api_verdict v;
	struct api_limits *l;

	cfg_init();
	l = make();
	/* standard: 3 */
	CHECK_INT(send_n(l, "POST", "/api/signals", "10.0.0.1", 0, 5, &v), 3);
	CHECK_STR(v.tier, "standard");
	CHECK_INT(v.allowed, 0);
	CHECK_INT(v.limit, 3);
	CHECK_INT(v.remaining, 0);
	CHECK(v.retry_after_s >= 1);
	/* every standard route shares the budget, unknown paths too */
	CHECK_INT(send_n(l, "GET", "/api/audit/logs", "10.0.0.1", 0, 1, &v), 0);
	CHECK_INT(send_n(l, "GET", "/api/no/such/route", "10.0.0.1", 0, 1, &v), 0);
	CHECK_STR(v.tier, "standard");
	CHECK_INT(send_n(l, "DELETE", "/api/dlm/status", "10.0.0.1", 0, 1, &v), 0); /* 405 */
	CHECK_STR(v.tier, "standard");
	/* relaxed has its own budget: 5 */
	CHECK_INT(send_n(l, "GET", "/api/dlm/status", "10.0.0.1", 0, 3, &v), 3);
	CHECK_INT(send_n(l, "GET", "/api/capabilities/ac-1", "10.0.0.1", 0, 3, &v), 2);
	CHECK_STR(v.tier, "relaxed");
	CHECK_INT(v.limit, 5);
	/* strict (configuration routes): 2 */
	CHECK_INT(send_n(l, "POST", "/api/site-constraints/feeder", "10.0.0.1", 0, 3, &v), 2);
	CHECK_STR(v.tier, "strict");
	CHECK_INT(v.allowed, 0);
	CHECK_INT(send_n(l, "POST", "/api/load-shedding/configure", "10.0.0.1", 0, 1, &v), 0);
	/* station control is standard, already used up */
	CHECK_INT(send_n(l, "POST", "/api/stations/a/dc-power", "10.0.0.1", 0, 1, &v), 0);
	CHECK_STR(v.tier, "standard");
	/* another client has all of its own */
	CHECK_INT(send_n(l, "POST", "/api/signals", "10.0.0.2", 0, 5, &v), 3);
	CHECK_INT(send_n(l, "POST", "/api/site-constraints/service", "10.0.0.2", 0, 5, &v), 2);
	api_limits_free(l);
}

static void test_remaining_counts_down(void)
{
	struct api_verdict v;
	struct api_limits *l;

	cfg_init();
	l = make();
	for (int i = 0; i < 5; i++) {
		send_n(l, "GET", "/api/watchdogs", "c", 1000, 1, &v);
		CHECK_INT(v.allowed, 1);
		CHECK_INT(v.remaining, 4 - i);
	}
	api_limits_free(l);
}

/* Retry-After is honest: refused one second before it, allowed at it. */
static void test_retry_after_holds(void)
{
	struct api_verdict v;
	struct api_limits *l;
	int64_t t = 7 * MIN + 1234;
	int ra;

	cfg_init();
	l = make();
	CHECK_INT(send_n(l, "GET", "/api/audit/stats", "c", t, 4, &v), 3);
	ra = v.retry_after_s;
	CHECK(ra >= 1 && ra <= 2 * 60);
	CHECK_INT(send_n(l, "GET", "/api/audit/stats", "c", t + (ra - 1) * 1000LL, 1, &v), 0);
	CHECK_INT(send_n(l, "GET", "/api/audit/stats", "c", t + ra * 1000LL, 1, &v), 1);

	/* the strict tier's window is 15 min */
	CHECK_INT(send_n(l, "POST", "/api/site-constraints/transformer", "c", t, 3, &v), 2);
	CHECK(v.retry_after_s > 60 && v.retry_after_s <= 2 * 15 * 60);
	api_limits_free(l);
}

static void test_auth_failures(void)
{
	struct api_verdict v;
	struct api_limits *l;

	cfg_init();
	l = make();
	api_limits_auth_failure(l, "6.6.6.6", 0, &v);
	CHECK_INT(v.allowed, 1);
	CHECK_STR(v.tier, "auth");
	CHECK_INT(v.limit, 2);
	CHECK_INT(v.remaining, 1);
	api_limits_auth_failure(l, "6.6.6.6", 0, &v);
	CHECK_INT(v.allowed, 1);
	api_limits_auth_failure(l, "6.6.6.6", 0, &v);
	CHECK_INT(v.allowed, 0); /* the 3rd failure: 429 instead of 401 */
	CHECK(v.retry_after_s > 60);
	/* refused attempts are not counted: let in once Retry-After is over */
	api_limits_auth_failure(l, "6.6.6.6", v.retry_after_s * 1000LL, &v);
	CHECK_INT(v.allowed, 1);
	/* a good token from the same client is never refused for failures */
	CHECK_INT(send_n(l, "POST", "/api/site-constraints/feeder", "6.6.6.6", 0, 2, &v), 2);
	CHECK_INT(send_n(l, "GET", "/api/dlm/status", "6.6.6.6", 0, 5, &v), 5);
	/* and configuration requests do not eat into the failure budget */
	api_limits_auth_failure(l, "7.7.7.7", 0, &v);
	CHECK_INT(send_n(l, "POST", "/api/site-constraints/feeder", "7.7.7.7", 0, 2, &v), 2);
	api_limits_auth_failure(l, "7.7.7.7", 0, &v);
	CHECK_INT(v.allowed, 1);
	api_limits_free(l);
}

static void test_custom_endpoint(void)
{
	struct api_verdict v;
	struct api_limits *l;

	cfg_init();
	strcpy(eps[0].route, "GET /api/dlm/status");
	eps[0].window_ms = 1000;
	eps[0].max_requests = 1;
	strcpy(eps[1].route, "POST /api/signals");
	eps[1].window_ms = MIN;
	eps[1].max_requests = 50;
	cfg.endpoints = eps;
	cfg.nendpoints = 2;
	l = make();
	/* its own limit, instead of the relaxed tier's 5 */
	CHECK_INT(send_n(l, "GET", "/api/dlm/status", "c", 0, 3, &v), 1);
	CHECK_STR(v.tier, "custom");
	CHECK_INT(v.limit, 1);
	CHECK_INT(v.retry_after_s, 2); /* 1 s window: next one 2 s on (see ratelimit.h) */
	/* the rest of the relaxed tier is not touched */
	CHECK_INT(send_n(l, "GET", "/api/watchdogs", "c", 0, 5, &v), 5);
	CHECK_STR(v.tier, "relaxed");
	/* above its tier's numbers */
	CHECK_INT(send_n(l, "POST", "/api/signals", "c", 0, 60, &v), 50);
	CHECK_STR(v.tier, "custom");
	/* the standard tier still has all of its 3 */
	CHECK_INT(send_n(l, "GET", "/api/dispatch/logs", "c", 0, 3, &v), 3);
	/* a wrong method is a 405: standard, not the custom limit */
	CHECK_INT(send_n(l, "POST", "/api/dlm/status", "d", 0, 1, &v), 1);
	CHECK_STR(v.tier, "standard");
	api_limits_free(l);

	/* an unknown route is refused */
	strcpy(eps[0].route, "GET /api/nope");
	struct api_limits *bad = NULL;
	CHECK_INT(api_limits_new(&cfg, &bad), V2G_ERR_INVAL);
	CHECK(bad == NULL);
	cfg.endpoints = NULL;
	cfg.nendpoints = 0;
}

static void test_disabled(void)
{
	struct api_verdict v;
	struct api_limits *l;

	cfg_init();
	cfg.enabled = 0;
	l = make();
	CHECK_INT(send_n(l, "POST", "/api/site-constraints/feeder", "c", 0, 1000, &v), 1000);
	CHECK_INT(v.limit, 0);
	CHECK_STR(v.tier, "strict");
	for (int i = 0; i < 100; i++)
		api_limits_auth_failure(l, "c", 0, &v);
	CHECK_INT(v.allowed, 1);
	CHECK_INT(v.limit, 0);
	api_limits_free(l);
	api_limits_free(NULL);
}

static void test_bad_numbers(void)
{
	struct api_limits *l = NULL;
	cfg_init();
	cfg.standard_max = 0;
	CHECK_INT(api_limits_new(&cfg, &l), V2G_ERR_INVAL);
	cfg_init();
	cfg.relaxed_window_ms = 0;
	CHECK_INT(api_limits_new(&cfg, &l), V2G_ERR_INVAL);
	CHECK(l == NULL);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_tiers),
		HCASE(test_remaining_counts_down),
		HCASE(test_retry_after_holds),
		HCASE(test_auth_failures),
		HCASE(test_custom_endpoint),
		HCASE(test_disabled),
		HCASE(test_bad_numbers),
	};
	return harness_main("api-limits", cases, HARNESS_N(cases));
}
