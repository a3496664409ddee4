/* Watchdogs: the guide's 30 s load-balancing watchdog, kicks, one firing per
 * expiry, stop/start, callbacks that call back in, the status document. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "../harness/harness.h"
#include "v2g/err.h"
#include "v2g/watchdog.h"

struct hits {
	int n;
	char last_name[64];
	int64_t last_overdue;
};

static void on_timeout(void *arg, const char *name, int64_t overdue_ms)
{
	struct hits *h = arg;
	h->n++;
	strncpy(h->last_name, name, sizeof(h->last_name) - 1);
	h->last_overdue = overdue_ms;
}

static struct v2g_watchdog *mk(struct v2g_watchdog_registry *r, const char *name, int64_t t,
                               struct hits *h)
{
	struct v2g_watchdog *w = NULL;
	CHECK_INT(v2g_watchdog_create(r, name, t, on_timeout, h, &w), 0);
	return w;
}

static void test_fires_at_30s_once(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct hits h = { 0 };
	struct v2g_watchdog *w = mk(r, "load_balancing", 30000, &h);
	CHECK_INT(v2g_watchdog_poll(r, 100000), 0); /* not started: never fires */
	v2g_watchdog_start(w, 0);
	CHECK_INT(v2g_watchdog_poll(r, 29999), 0);
	CHECK_INT(h.n, 0);
	CHECK_INT(v2g_watchdog_poll(r, 30000), 1);
	CHECK_INT(h.n, 1);
	CHECK_STR(h.last_name, "load_balancing");
	CHECK_INT(h.last_overdue, 0);
	CHECK_INT(v2g_watchdog_expired(w), 1);
	/* still stalled at 60 s and later: no second firing for the same expiry */
	CHECK_INT(v2g_watchdog_poll(r, 60000), 0);
	CHECK_INT(v2g_watchdog_poll(r, 600000), 0);
	CHECK_INT(h.n, 1);
	CHECK_INT(v2g_watchdog_expiries(w), 1);
	v2g_watchdog_registry_free(r);
}

static void test_kick_postpones(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct hits h = { 0 };
	struct v2g_watchdog *w = mk(r, "load_balancing", 30000, &h);
	v2g_watchdog_start(w, 0);
	v2g_watchdog_kick(w, 20000);
	CHECK_INT(v2g_watchdog_poll(r, 30000), 0);
	CHECK_INT(v2g_watchdog_poll(r, 49999), 0);
	CHECK_INT(v2g_watchdog_poll(r, 50500), 1);
	CHECK_INT(h.last_overdue, 500);
	v2g_watchdog_registry_free(r);
}

static void test_kick_after_expiry_rearms(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct hits h = { 0 };
	struct v2g_watchdog *w = mk(r, "load_balancing", 30000, &h);
	v2g_watchdog_start(w, 0);
	CHECK_INT(v2g_watchdog_poll(r, 30000), 1);
	v2g_watchdog_kick(w, 35000); /* the activity resumed */
	CHECK_INT(v2g_watchdog_expired(w), 0);
	CHECK_INT(v2g_watchdog_poll(r, 64999), 0);
	CHECK_INT(v2g_watchdog_poll(r, 65000), 1); /* and stalled again */
	CHECK_INT(h.n, 2);
	CHECK_INT(v2g_watchdog_expiries(w), 2);
	v2g_watchdog_registry_free(r);
}

static void test_stop_disarms_and_kick_does_not_start(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct hits h = { 0 };
	struct v2g_watchdog *w = mk(r, "x", 30000, &h);
	v2g_watchdog_start(w, 0);
	v2g_watchdog_stop(w);
	CHECK_INT(v2g_watchdog_poll(r, 100000), 0);
	v2g_watchdog_kick(w, 100000); /* no effect on a stopped watchdog */
	CHECK_INT(v2g_watchdog_poll(r, 200000), 0);
	CHECK_INT(v2g_watchdog_next_deadline(r), INT64_MAX);
	v2g_watchdog_start(w, 200000);
	CHECK_INT(v2g_watchdog_next_deadline(r), 230000);
	CHECK_INT(v2g_watchdog_poll(r, 230000), 1);
	CHECK_INT(h.n, 1);
	v2g_watchdog_registry_free(r);
}

static void test_null_callback_counted(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct v2g_watchdog *w = NULL;
	CHECK_INT(v2g_watchdog_create(r, "quiet", 1000, NULL, NULL, &w), 0);
	v2g_watchdog_start(w, 0);
	CHECK_INT(v2g_watchdog_poll(r, 1000), 1);
	CHECK_INT(v2g_watchdog_expiries(w), 1);
	v2g_watchdog_registry_free(r);
}

static void test_create_errors_and_find(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct v2g_watchdog *w = NULL, *w2 = NULL;
	CHECK_INT(v2g_watchdog_create(r, "a", 1000, NULL, NULL, &w), 0);
	CHECK_INT(v2g_watchdog_create(r, "a", 2000, NULL, NULL, &w2), V2G_ERR_INVAL);
	CHECK_INT(v2g_watchdog_create(r, "b", 0, NULL, NULL, &w2), V2G_ERR_INVAL);
	CHECK_INT(v2g_watchdog_create(r, "", 1000, NULL, NULL, &w2), V2G_ERR_INVAL);
	CHECK(w2 == NULL);
	CHECK(v2g_watchdog_find(r, "a") == w);
	CHECK(v2g_watchdog_find(r, "b") == NULL);
	v2g_watchdog_registry_free(r);
}

/* A timeout action that restarts its own watchdog and adds another one. */
struct reenter {
	struct v2g_watchdog_registry *r;
	struct v2g_watchdog *self;
	int n;
};

static void reenter_cb(void *arg, const char *name, int64_t overdue_ms)
{
	struct reenter *re = arg;
	struct v2g_watchdog *w = NULL;
	(void)name;
	re->n++;
	v2g_watchdog_kick(re->self, 10000 + overdue_ms);
	CHECK_INT(v2g_watchdog_create(re->r, "added_by_callback", 5000, NULL, NULL, &w), 0);
	v2g_watchdog_start(w, 0);
}

static void test_callback_may_call_back_in(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct reenter re = { .r = r };
	CHECK_INT(v2g_watchdog_create(r, "self", 10000, reenter_cb, &re, &re.self), 0);
	v2g_watchdog_start(re.self, 0);
	/* fires self, then the watchdog the callback added (created at 0,
	 * 5 s timeout) in the same poll */
	CHECK_INT(v2g_watchdog_poll(r, 10000), 2);
	CHECK_INT(re.n, 1);
	CHECK_INT(v2g_watchdog_expired(re.self), 0); /* kicked by its callback */
	v2g_watchdog_registry_free(r);
}

static void test_several_fire_in_one_poll(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct hits h = { 0 };
	struct v2g_watchdog *a = mk(r, "a", 1000, &h), *b = mk(r, "b", 2000, &h),
	                    *c = mk(r, "c", 3000, &h);
	v2g_watchdog_start(a, 0);
	v2g_watchdog_start(b, 0);
	v2g_watchdog_start(c, 0);
	CHECK_INT(v2g_watchdog_next_deadline(r), 1000);
	CHECK_INT(v2g_watchdog_poll(r, 2500), 2);
	CHECK_INT(v2g_watchdog_next_deadline(r), 3000);
	CHECK_INT(h.n, 2);
	v2g_watchdog_registry_free(r);
}

static void test_status_document(void)
{
	struct v2g_watchdog_registry *r = v2g_watchdog_registry_new();
	struct hits h = { 0 };
	struct v2g_watchdog *w = mk(r, "load_balancing", 30000, &h);
	(void)mk(r, "idle", 5000, &h);
	json_t *s = v2g_watchdog_registry_status(r, 0);
	CHECK_INT(json_array_size(s), 2);
	json_t *o = json_array_get(s, 0);
	CHECK_STR(json_string_value(json_object_get(o, "name")), "load_balancing");
	CHECK(json_is_false(json_object_get(o, "running")));
	CHECK_INT(json_integer_value(json_object_get(o, "timeout_ms")), 30000);
	CHECK(json_is_null(json_object_get(o, "last_kick_at")));
	CHECK(json_is_false(json_object_get(o, "expired")));
	CHECK_INT(json_integer_value(json_object_get(o, "expiries")), 0);
	CHECK(json_is_null(json_object_get(o, "remaining_ms")));
	json_decref(s);

	v2g_watchdog_start(w, 1000);
	v2g_watchdog_kick(w, 2000);
	s = v2g_watchdog_registry_status(r, 12000);
	o = json_array_get(s, 0);
	CHECK(json_is_true(json_object_get(o, "running")));
	CHECK_INT(json_integer_value(json_object_get(o, "last_kick_at")), 2000);
	CHECK_INT(json_integer_value(json_object_get(o, "remaining_ms")), 20000);
	CHECK(json_is_false(json_object_get(o, "expired")));
	json_decref(s);

	/* past the deadline: expired even before the loop polled */
	s = v2g_watchdog_registry_status(r, 32000);
	o = json_array_get(s, 0);
	CHECK(json_is_true(json_object_get(o, "expired")));
	CHECK_INT(json_integer_value(json_object_get(o, "expiries")), 0);
	CHECK_INT(json_integer_value(json_object_get(o, "remaining_ms")), 0);
	json_decref(s);
	CHECK_INT(v2g_watchdog_poll(r, 32000), 1);
	s = v2g_watchdog_registry_status(r, 32000);
	CHECK_INT(json_integer_value(json_object_get(json_array_get(s, 0), "expiries")), 1);
	json_decref(s);
	v2g_watchdog_registry_free(r);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_fires_at_30s_once),
		HCASE(test_kick_postpones),
		HCASE(test_kick_after_expiry_rearms),
		HCASE(test_stop_disarms_and_kick_does_not_start),
		HCASE(test_null_callback_counted),
		HCASE(test_create_errors_and_find),
		HCASE(test_callback_may_call_back_in),
		HCASE(test_several_fire_in_one_poll),
		HCASE(test_status_document),
	};
	return harness_main("watchdog", cases, HARNESS_N(cases));
}
