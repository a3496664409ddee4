/* Circuit breaker: the guide's thresholds and timeouts, half-open trials,
 * retries, the registry and its status document. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "v2g/breaker.h"
#include "v2g/err.h"

static struct v2g_breaker *mk(const struct v2g_breaker_opts *o)
{
	struct v2g_breaker *b = NULL;
	CHECK_INT(v2g_breaker_new("modbus_station_1", o, &b), 0);
	return b;
}

/* n allowed calls that fail at time t */
static void fail_n(struct v2g_breaker *b, int n, int64_t t)
{
	for (int i = 0; i < n; i++) {
		CHECK_INT(v2g_breaker_allow(b, t), 0);
		v2g_breaker_failure(b, t);
	}
}

static void test_defaults_are_the_guides(void)
{
	struct v2g_breaker_opts o = V2G_BREAKER_OPTS_DEFAULT;
	CHECK_INT(o.failure_threshold, 5);
	CHECK_INT(o.success_threshold, 2);
	CHECK_INT(o.timeout_ms, 60000);
	CHECK_INT(o.reset_timeout_ms, 30000);
	CHECK_INT(o.max_retries, 3);
	CHECK_INT(v2g_breaker_opts_check(&o), 0);
	struct v2g_breaker *b = mk(NULL); /* NULL opts: the same defaults */
	json_t *s = v2g_breaker_status(b);
	json_t *opt = json_object_get(s, "options");
	CHECK_INT(json_integer_value(json_object_get(opt, "failure_threshold")), 5);
	CHECK_INT(json_integer_value(json_object_get(opt, "success_threshold")), 2);
	CHECK_INT(json_integer_value(json_object_get(opt, "timeout_ms")), 60000);
	CHECK_INT(json_integer_value(json_object_get(opt, "reset_timeout_ms")), 30000);
	CHECK_INT(json_integer_value(json_object_get(opt, "max_retries")), 3);
	json_decref(s);
	v2g_breaker_free(b);
}

static void test_bad_options_refused(void)
{
	struct v2g_breaker_opts o = V2G_BREAKER_OPTS_DEFAULT;
	struct v2g_breaker *b = NULL;
	o.failure_threshold = 0;
	CHECK_INT(v2g_breaker_new("x", &o, &b), V2G_ERR_INVAL);
	o = (struct v2g_breaker_opts)V2G_BREAKER_OPTS_DEFAULT;
	o.success_threshold = 0;
	CHECK_INT(v2g_breaker_opts_check(&o), V2G_ERR_INVAL);
	o = (struct v2g_breaker_opts)V2G_BREAKER_OPTS_DEFAULT;
	o.reset_timeout_ms = 0;
	CHECK_INT(v2g_breaker_opts_check(&o), V2G_ERR_INVAL);
	o = (struct v2g_breaker_opts)V2G_BREAKER_OPTS_DEFAULT;
	o.timeout_ms = -1;
	CHECK_INT(v2g_breaker_opts_check(&o), V2G_ERR_INVAL);
	o = (struct v2g_breaker_opts)V2G_BREAKER_OPTS_DEFAULT;
	o.max_retries = -1;
	CHECK_INT(v2g_breaker_opts_check(&o), V2G_ERR_INVAL);
	o.max_retries = 0; /* no retries is fine */
	CHECK_INT(v2g_breaker_opts_check(&o), 0);
	CHECK_INT(v2g_breaker_new("", NULL, &b), V2G_ERR_INVAL);
	CHECK_INT(v2g_breaker_new(NULL, NULL, &b), V2G_ERR_INVAL);
	CHECK(b == NULL);
}

static void test_opens_on_fifth_consecutive_failure(void)
{
	struct v2g_breaker *b = mk(NULL);
	fail_n(b, 4, 1000);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_CLOSED);
	CHECK_INT(v2g_breaker_allow(b, 1000), 0);
	v2g_breaker_failure(b, 1000); /* the 5th */
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_OPEN);
	CHECK_INT(v2g_breaker_allow(b, 1001), V2G_ERR_UNAVAILABLE);
	v2g_breaker_free(b);
}

static void test_success_clears_consecutive_failures(void)
{
	struct v2g_breaker *b = mk(NULL);
	fail_n(b, 4, 0);
	CHECK_INT(v2g_breaker_allow(b, 0), 0);
	v2g_breaker_success(b, 0, 10);
	fail_n(b, 4, 0); /* 8 failures in all, never 5 in a row */
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_CLOSED);
	fail_n(b, 1, 0);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_OPEN);
	v2g_breaker_free(b);
}

static void test_open_refuses_until_reset_timeout(void)
{
	struct v2g_breaker *b = mk(NULL);
	fail_n(b, 5, 10000); /* opens at 10 s */
	CHECK_INT(v2g_breaker_allow(b, 10000), V2G_ERR_UNAVAILABLE);
	CHECK_INT(v2g_breaker_allow(b, 39999), V2G_ERR_UNAVAILABLE);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_OPEN);
	/* 30 s later: one trial goes through, half-open */
	CHECK_INT(v2g_breaker_allow(b, 40000), 0);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_HALF_OPEN);
	/* only ONE trial at a time */
	CHECK_INT(v2g_breaker_allow(b, 40001), V2G_ERR_UNAVAILABLE);
	struct v2g_breaker_stats st;
	v2g_breaker_get_stats(b, &st);
	CHECK_INT(st.rejected, 3);
	CHECK_INT(st.calls, 6);
	v2g_breaker_free(b);
}

static void test_half_open_closes_after_two_successes(void)
{
	struct v2g_breaker *b = mk(NULL);
	fail_n(b, 5, 0);
	CHECK_INT(v2g_breaker_allow(b, 30000), 0);
	v2g_breaker_success(b, 30100, 100);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_HALF_OPEN); /* 1 of 2 */
	CHECK_INT(v2g_breaker_allow(b, 30200), 0);              /* next trial */
	v2g_breaker_success(b, 30300, 100);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_CLOSED);
	/* closed again: failure count starts from zero */
	fail_n(b, 4, 31000);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_CLOSED);
	struct v2g_breaker_stats st;
	v2g_breaker_get_stats(b, &st);
	CHECK_INT(st.state_changes, 3); /* CLOSED->OPEN->HALF_OPEN->CLOSED */
	CHECK_INT(st.opened, 1);
	v2g_breaker_free(b);
}

static void test_half_open_failure_reopens(void)
{
	struct v2g_breaker *b = mk(NULL);
	fail_n(b, 5, 0);
	CHECK_INT(v2g_breaker_allow(b, 30000), 0);
	v2g_breaker_success(b, 30000, 5); /* 1 of 2 */
	CHECK_INT(v2g_breaker_allow(b, 31000), 0);
	v2g_breaker_failure(b, 31000); /* one failure is enough in half-open */
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_OPEN);
	CHECK_INT(v2g_breaker_allow(b, 60999), V2G_ERR_UNAVAILABLE);
	CHECK_INT(v2g_breaker_allow(b, 61000), 0); /* a full reset timeout again */
	/* the earlier half-open success does not carry over */
	v2g_breaker_success(b, 61000, 5);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_HALF_OPEN);
	json_t *s = v2g_breaker_status(b);
	CHECK_INT(json_integer_value(json_object_get(s, "successes")), 1);
	json_decref(s);
	v2g_breaker_free(b);
}

static void test_operation_timeout_counts_as_failure(void)
{
	struct v2g_breaker *b = mk(NULL);
	for (int i = 0; i < 10; i++) { /* exactly the timeout is still a success */
		CHECK_INT(v2g_breaker_allow(b, 0), 0);
		v2g_breaker_success(b, 60000, 60000);
	}
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_CLOSED);
	for (int i = 0; i < 5; i++) {
		CHECK_INT(v2g_breaker_allow(b, 0), 0);
		v2g_breaker_success(b, 60001, 60001);
	}
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_OPEN);
	struct v2g_breaker_stats st;
	v2g_breaker_get_stats(b, &st);
	CHECK_INT(st.timeouts, 5);
	CHECK_INT(st.failures, 5);
	CHECK_INT(st.successes, 10);
	v2g_breaker_free(b);
}

static void test_guide_driver_options_timeout_5s(void)
{
	/* guide 4.3: { failureThreshold: 5, timeout: 5000, maxRetries: 3 } */
	struct v2g_breaker_opts o = V2G_BREAKER_OPTS_DEFAULT;
	o.timeout_ms = 5000;
	struct v2g_breaker *b = mk(&o);
	CHECK_INT(v2g_breaker_allow(b, 0), 0);
	v2g_breaker_success(b, 5001, 5001);
	json_t *s = v2g_breaker_status(b);
	CHECK_INT(json_integer_value(json_object_get(s, "failures")), 1);
	json_decref(s);
	v2g_breaker_free(b);
}

static void test_lost_trial_written_off_after_timeout(void)
{
	struct v2g_breaker *b = mk(NULL);
	fail_n(b, 5, 0);
	CHECK_INT(v2g_breaker_allow(b, 30000), 0);                   /* trial, never reported */
	CHECK_INT(v2g_breaker_allow(b, 90000), V2G_ERR_UNAVAILABLE); /* 60 s: still out */
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_HALF_OPEN);
	CHECK_INT(v2g_breaker_allow(b, 90001), V2G_ERR_UNAVAILABLE); /* lost: re-opened */
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_OPEN);
	CHECK_INT(v2g_breaker_allow(b, 120001), 0);
	struct v2g_breaker_stats st;
	v2g_breaker_get_stats(b, &st);
	CHECK_INT(st.timeouts, 1);
	v2g_breaker_free(b);
}

static void test_status_document(void)
{
	struct v2g_breaker *b = mk(NULL);
	json_t *s = v2g_breaker_status(b);
	CHECK_STR(json_string_value(json_object_get(s, "name")), "modbus_station_1");
	CHECK_STR(json_string_value(json_object_get(s, "state")), "CLOSED");
	CHECK_INT(json_integer_value(json_object_get(s, "failures")), 0);
	CHECK_INT(json_integer_value(json_object_get(s, "successes")), 0);
	CHECK(json_is_null(json_object_get(s, "last_failure_at")));
	CHECK(json_is_null(json_object_get(s, "next_attempt_at")));
	json_decref(s);
	fail_n(b, 5, 1700000000000);
	s = v2g_breaker_status(b);
	CHECK_STR(json_string_value(json_object_get(s, "state")), "OPEN");
	CHECK_INT(json_integer_value(json_object_get(s, "failures")), 5);
	CHECK_INT(json_integer_value(json_object_get(s, "last_failure_at")), 1700000000000);
	CHECK_INT(json_integer_value(json_object_get(s, "next_attempt_at")), 1700000030000);
	CHECK_INT(json_integer_value(json_object_get(json_object_get(s, "stats"), "opened")), 1);
	json_decref(s);
	CHECK_INT(v2g_breaker_allow(b, 1700000030000), 0);
	s = v2g_breaker_status(b);
	CHECK_STR(json_string_value(json_object_get(s, "state")), "HALF_OPEN");
	CHECK(json_is_null(json_object_get(s, "next_attempt_at")));
	json_decref(s);
	CHECK_STR(v2g_breaker_state_name(V2G_BREAKER_HALF_OPEN), "HALF_OPEN");
	v2g_breaker_free(b);
}

static void test_reset_closes_and_clears(void)
{
	struct v2g_breaker *b = mk(NULL);
	fail_n(b, 5, 0);
	v2g_breaker_reset(b);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_CLOSED);
	CHECK_INT(v2g_breaker_allow(b, 1), 0);
	json_t *s = v2g_breaker_status(b);
	CHECK_INT(json_integer_value(json_object_get(s, "failures")), 0);
	CHECK(json_is_null(json_object_get(s, "last_failure_at")));
	json_decref(s);
	v2g_breaker_free(b);
}

/* ---- v2g_breaker_run ---- */

static int64_t fake_now;
static int64_t fake_clock(void)
{
	return fake_now;
}

struct op_ctl {
	int calls;
	int fail_first; /* fail this many calls, then succeed */
	int64_t takes_ms;
	int err;
};

static int op_fn(void *arg)
{
	struct op_ctl *c = arg;
	c->calls++;
	fake_now += c->takes_ms;
	return c->calls <= c->fail_first ? c->err : 0;
}

static void test_run_retries_three_times(void)
{
	struct v2g_breaker *b = mk(NULL);
	struct op_ctl c = { .fail_first = 100, .takes_ms = 10, .err = V2G_ERR_IO };
	fake_now = 0;
	CHECK_INT(v2g_breaker_run(b, op_fn, &c, fake_clock), V2G_ERR_IO);
	CHECK_INT(c.calls, 4); /* first try + max_retries 3 */
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_CLOSED);
	/* one more failed call is the 5th in a row: the breaker opens mid-run */
	c.calls = 0;
	CHECK_INT(v2g_breaker_run(b, op_fn, &c, fake_clock), V2G_ERR_UNAVAILABLE);
	CHECK_INT(c.calls, 1);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_OPEN);
	/* open: op is not called at all */
	c.calls = 0;
	CHECK_INT(v2g_breaker_run(b, op_fn, &c, fake_clock), V2G_ERR_UNAVAILABLE);
	CHECK_INT(c.calls, 0);
	v2g_breaker_free(b);
}

static void test_run_succeeds_on_retry(void)
{
	struct v2g_breaker *b = mk(NULL);
	struct op_ctl c = { .fail_first = 2, .takes_ms = 10, .err = V2G_ERR_TIMEOUT };
	fake_now = 0;
	CHECK_INT(v2g_breaker_run(b, op_fn, &c, fake_clock), 0);
	CHECK_INT(c.calls, 3);
	json_t *s = v2g_breaker_status(b);
	CHECK_INT(json_integer_value(json_object_get(s, "failures")), 0); /* cleared */
	json_decref(s);
	v2g_breaker_free(b);
}

static void test_run_slow_op_is_timeout(void)
{
	struct v2g_breaker_opts o = V2G_BREAKER_OPTS_DEFAULT;
	o.timeout_ms = 5000;
	o.max_retries = 0;
	struct v2g_breaker *b = mk(&o);
	struct op_ctl c = { .takes_ms = 5001 };
	fake_now = 0;
	CHECK_INT(v2g_breaker_run(b, op_fn, &c, fake_clock), V2G_ERR_TIMEOUT);
	CHECK_INT(c.calls, 1);
	c.takes_ms = 5000;
	CHECK_INT(v2g_breaker_run(b, op_fn, &c, fake_clock), 0);
	v2g_breaker_free(b);
}

static void test_run_half_open_single_trial(void)
{
	struct v2g_breaker *b = mk(NULL);
	fail_n(b, 5, 0);
	struct op_ctl c = { .fail_first = 100, .takes_ms = 1, .err = V2G_ERR_IO };
	fake_now = 30000;
	/* the trial fails, re-opens: no second attempt */
	CHECK_INT(v2g_breaker_run(b, op_fn, &c, fake_clock), V2G_ERR_UNAVAILABLE);
	CHECK_INT(c.calls, 1);
	v2g_breaker_free(b);
}

static void test_backoff(void)
{
	CHECK_INT(v2g_breaker_backoff_ms(0), 1000);
	CHECK_INT(v2g_breaker_backoff_ms(1), 2000);
	CHECK_INT(v2g_breaker_backoff_ms(2), 4000);
	CHECK_INT(v2g_breaker_backoff_ms(10), 60000);
	CHECK_INT(v2g_breaker_backoff_ms(-1), 1000);
}

/* ---- registry ---- */

static void test_registry_get_or_create(void)
{
	struct v2g_breaker_registry *r = v2g_breaker_registry_new();
	struct v2g_breaker *a = NULL, *a2 = NULL, *c = NULL;
	struct v2g_breaker_opts o = V2G_BREAKER_OPTS_DEFAULT;
	o.failure_threshold = 2;
	CHECK_INT(v2g_breaker_registry_get(r, "modbus_station_1", &o, &a), 0);
	CHECK_INT(v2g_breaker_registry_get(r, "modbus_station_1", NULL, &a2), 0);
	CHECK(a == a2); /* existing one, first options kept */
	fail_n(a, 2, 0);
	CHECK_INT(v2g_breaker_state(a), V2G_BREAKER_OPEN);
	CHECK_INT(v2g_breaker_registry_get(r, "ocpp_station_2", NULL, &c), 0);
	CHECK(c != a);
	CHECK_INT(v2g_breaker_registry_count(r), 2);
	CHECK(v2g_breaker_registry_find(r, "ocpp_station_2") == c);
	CHECK(v2g_breaker_registry_find(r, "nope") == NULL);
	CHECK(v2g_breaker_registry_at(r, 0) == a);
	CHECK(v2g_breaker_registry_at(r, 2) == NULL);
	o.failure_threshold = 0;
	CHECK_INT(v2g_breaker_registry_get(r, "bad", &o, &c), V2G_ERR_INVAL);
	CHECK_INT(v2g_breaker_registry_count(r), 2);
	v2g_breaker_registry_free(r);
}

static void test_registry_many(void)
{
	struct v2g_breaker_registry *r = v2g_breaker_registry_new();
	char name[32];
	struct v2g_breaker *b;
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "modbus_station_%d", i);
		CHECK_INT(v2g_breaker_registry_get(r, name, NULL, &b), 0);
	}
	CHECK_INT(v2g_breaker_registry_count(r), 2000);
	int found = 0;
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "modbus_station_%d", i);
		b = v2g_breaker_registry_find(r, name);
		found += b && !strcmp(v2g_breaker_name(b), name);
	}
	CHECK_INT(found, 2000);
	v2g_breaker_registry_free(r);
}

static void test_registry_reset_and_status(void)
{
	struct v2g_breaker_registry *r = v2g_breaker_registry_new();
	struct v2g_breaker *a, *b;
	CHECK_INT(v2g_breaker_registry_get(r, "a", NULL, &a), 0);
	CHECK_INT(v2g_breaker_registry_get(r, "b", NULL, &b), 0);
	fail_n(a, 5, 0);
	fail_n(b, 5, 0);
	json_t *st = v2g_breaker_registry_status(r);
	CHECK(json_is_array(st));
	CHECK_INT(json_array_size(st), 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(st, 1), "name")), "b");
	CHECK_STR(json_string_value(json_object_get(json_array_get(st, 1), "state")), "OPEN");
	json_decref(st);
	CHECK_INT(v2g_breaker_registry_reset(r, "a"), 0);
	CHECK_INT(v2g_breaker_state(a), V2G_BREAKER_CLOSED);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_OPEN);
	CHECK_INT(v2g_breaker_registry_reset(r, "zz"), V2G_ERR_NOTFOUND);
	fail_n(a, 5, 0);
	CHECK_INT(v2g_breaker_registry_reset(r, NULL), 0);
	CHECK_INT(v2g_breaker_state(a), V2G_BREAKER_CLOSED);
	CHECK_INT(v2g_breaker_state(b), V2G_BREAKER_CLOSED);
	v2g_breaker_registry_free(r);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults_are_the_guides),
		HCASE(test_bad_options_refused),
		HCASE(test_opens_on_fifth_consecutive_failure),
		HCASE(test_success_clears_consecutive_failures),
		HCASE(test_open_refuses_until_reset_timeout),
		HCASE(test_half_open_closes_after_two_successes),
		HCASE(test_half_open_failure_reopens),
		HCASE(test_operation_timeout_counts_as_failure),
		HCASE(test_guide_driver_options_timeout_5s),
		HCASE(test_lost_trial_written_off_after_timeout),
		HCASE(test_status_document),
		HCASE(test_reset_closes_and_clears),
		HCASE(test_run_retries_three_times),
		HCASE(test_run_succeeds_on_retry),
		HCASE(test_run_slow_op_is_timeout),
		HCASE(test_run_half_open_single_trial),
		HCASE(test_backoff),
		HCASE(test_registry_get_or_create),
		HCASE(test_registry_many),
		HCASE(test_registry_reset_and_status),
	};
	return harness_main("breaker", cases, HARNESS_N(cases));
}
