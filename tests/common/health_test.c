/* Health registry: probes and pushed checks, readiness, the JSON document. */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness/harness.h"
#include "v2g/err.h"
#include "v2g/health.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

struct probe {
	atomic_int fail; /* what the probe answers */
	atomic_int calls;
	const char *detail;
};

static int probe_fn(void *arg, char *detail, size_t len)
{
	struct probe *p = arg;
	atomic_fetch_add(&p->calls, 1);
	if (p->detail)
		snprintf(detail, len, "%s", p->detail);
	return atomic_load(&p->fail);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Parses the health JSON and returns checks.<name>, with *doc to decref. */
static json_t *check_obj(struct v2g_health *h, const char *name, json_t **doc)
{
	char *s = v2g_health_json(h);
	json_error_t e;
	*doc = s ? json_loads(s, 0, &e) : NULL;
	free(s);
	if (!*doc)
		return NULL;
	return json_object_get(json_object_get(*doc, "checks"), name);
}

static void test_empty_is_ready(void)
{
	struct v2g_health *h = v2g_health_new("svc", 1000);
	CHECK(h != NULL);
	CHECK_INT(v2g_health_ready(h), 1);
	CHECK_INT(v2g_health_start(h), 0);
	CHECK_INT(v2g_health_ready(h), 1);
	v2g_health_free(h);
}

static void test_probe_critical(void)
{
	struct probe ok = { 0, 0, "connected" }, bad = { 1, 0, "connection refused" };
	struct v2g_health *h = v2g_health_new("svc", 10000);
	CHECK_INT(v2g_health_add(h, "db", 1, probe_fn, &ok), 0);
	CHECK_INT(v2g_health_add(h, "broker", 1, probe_fn, &bad), 0);
	CHECK_INT(v2g_health_ready(h), 0); /* nothing checked yet */
	CHECK_INT(v2g_health_start(h), 0);
	/* start ran every probe once, synchronously */
	CHECK_INT(atomic_load(&ok.calls), 1);
	CHECK_INT(atomic_load(&bad.calls), 1);
	CHECK_INT(v2g_health_ready(h), 0);
	json_t *doc;
	json_t *c = check_obj(h, "broker", &doc);
	CHECK(json_is_false(json_object_get(c, "ok")));
	CHECK(json_is_true(json_object_get(c, "critical")));
	CHECK_STR(json_string_value(json_object_get(c, "detail")), "connection refused");
	c = json_object_get(json_object_get(doc, "checks"), "db");
	CHECK(json_is_true(json_object_get(c, "ok")));
	CHECK_STR(json_string_value(json_object_get(c, "detail")), "connected");
	CHECK_STR(json_string_value(json_object_get(doc, "status")), "not_ready");
	json_decref(doc);
	v2g_health_free(h);
}

static void test_non_critical_does_not_block_ready(void)
{
	struct probe ok = { 0, 0, NULL }, bad = { 1, 0, "slow" };
	struct v2g_health *h = v2g_health_new("svc", 10000);
	v2g_health_add(h, "db", 1, probe_fn, &ok);
	v2g_health_add(h, "influx", 0, probe_fn, &bad);
	CHECK_INT(v2g_health_start(h), 0);
	CHECK_INT(v2g_health_ready(h), 1);
	json_t *doc;
	json_t *c = check_obj(h, "influx", &doc);
	CHECK(json_is_false(json_object_get(c, "ok")));
	CHECK(json_is_false(json_object_get(c, "critical")));
	CHECK_STR(json_string_value(json_object_get(doc, "status")), "ready");
	json_decref(doc);
	v2g_health_free(h);
}

static void test_pushed_check(void)
{
	struct v2g_health *h = v2g_health_new("svc", 10000);
	CHECK_INT(v2g_health_add(h, "mqtt", 1, NULL, NULL), 0);
	CHECK_INT(v2g_health_start(h), 0);
	CHECK_INT(v2g_health_ready(h), 0); /* initially failing */
	json_t *doc;
	json_t *c = check_obj(h, "mqtt", &doc);
	CHECK(json_is_false(json_object_get(c, "ok")));
	CHECK_STR(json_string_value(json_object_get(c, "detail")), "not yet reported");
	json_decref(doc);
	v2g_health_set(h, "mqtt", 1, "connected to tcp://x:1883");
	CHECK_INT(v2g_health_ready(h), 1);
	c = check_obj(h, "mqtt", &doc);
	CHECK(json_is_true(json_object_get(c, "ok")));
	CHECK_STR(json_string_value(json_object_get(c, "detail")), "connected to tcp://x:1883");
	json_decref(doc);
	v2g_health_set(h, "mqtt", 0, "connection lost");
	CHECK_INT(v2g_health_ready(h), 0);
	v2g_health_set(h, "mqtt", 1, NULL);
	CHECK_INT(v2g_health_ready(h), 1);
	v2g_health_set(h, "no-such-check", 0, "ignored");
	CHECK_INT(v2g_health_ready(h), 1);
	v2g_health_free(h);
}

static void test_pushed_check_without_start(void)
{
	/* pushed checks work whether or not the thread runs */
	struct v2g_health *h = v2g_health_new("svc", 10000);
	v2g_health_add(h, "feed", 1, NULL, NULL);
	CHECK_INT(v2g_health_ready(h), 0);
	v2g_health_set(h, "feed", 1, "");
	CHECK_INT(v2g_health_ready(h), 1);
	v2g_health_free(h);
}

static void test_probe_reruns_periodically(void)
{
	struct probe p = { 0, 0, NULL };
	struct v2g_health *h = v2g_health_new("svc", 20);
	v2g_health_add(h, "db", 1, probe_fn, &p);
	CHECK_INT(v2g_health_start(h), 0);
	CHECK_INT(v2g_health_ready(h), 1);
	atomic_store(&p.fail, 1);
	int64_t t0 = v2g_mono_ms();
	while (v2g_health_ready(h) && v2g_mono_ms() - t0 < 1000)
		sleep_ms(5);
	CHECK_INT(v2g_health_ready(h), 0);
	CHECK(v2g_mono_ms() - t0 < 500);
	atomic_store(&p.fail, 0);
	t0 = v2g_mono_ms();
	while (!v2g_health_ready(h) && v2g_mono_ms() - t0 < 1000)
		sleep_ms(5);
	CHECK_INT(v2g_health_ready(h), 1);
	CHECK(atomic_load(&p.calls) >= 3);
	v2g_health_free(h);
}

/* After stop no probe runs (its argument may be freed) and the service
 * reports "stopping", not ready. */
static void test_stop_ends_probes(void)
{
	struct probe p = { 0, 0, NULL };
	struct v2g_health *h = v2g_health_new("svc", 10);
	v2g_health_add(h, "db", 1, probe_fn, &p);
	CHECK_INT(v2g_health_start(h), 0);
	sleep_ms(50);
	CHECK_INT(v2g_health_ready(h), 1);
	v2g_health_stop(h);
	int calls = atomic_load(&p.calls);
	sleep_ms(60);
	CHECK_INT(atomic_load(&p.calls), calls);
	CHECK_INT(v2g_health_ready(h), 0);
	char *js = v2g_health_json(h);
	CHECK(js && strstr(js, "\"status\":\"stopping\"") != NULL);
	free(js);
	v2g_health_stop(h); /* idempotent */
	v2g_health_free(h);
}

struct slow_probe {
	atomic_int slow; /* 1: the next call takes 200 ms and fails */
	atomic_int entered;
};

static int slow_probe_fn(void *arg, char *detail, size_t len)
{
	struct slow_probe *p = arg;
	if (!atomic_load(&p->slow))
		return 0;
	atomic_store(&p->entered, 1);
	sleep_ms(200);
	snprintf(detail, len, "cut short by the shutdown");
	return -1;
}

/* Stop waits for a probe in progress (its argument may be freed after),
 * but what it returns then is not recorded: a shutdown that cuts a probe
 * short does not log the dependency as down. */
static void test_result_after_stop_not_recorded(void)
{
	struct slow_probe p = { 0, 0 };
	struct v2g_health *h = v2g_health_new("svc", 10);
	json_t *doc;
	v2g_health_add(h, "peer", 1, slow_probe_fn, &p);
	CHECK_INT(v2g_health_start(h), 0);
	atomic_store(&p.slow, 1);
	int64_t t0 = v2g_mono_ms();
	while (!atomic_load(&p.entered) && v2g_mono_ms() - t0 < 2000)
		sleep_ms(1);
	CHECK_INT(atomic_load(&p.entered), 1);
	v2g_health_stop(h);
	CHECK(v2g_mono_ms() - t0 >= 150); /* waited for the probe */
	json_t *c = check_obj(h, "peer", &doc);
	CHECK(c != NULL);
	CHECK(json_is_true(json_object_get(c, "ok")));
	json_decref(doc);
	v2g_health_free(h);
}

static void test_free_is_prompt(void)
{
	struct probe p = { 0, 0, NULL };
	struct v2g_health *h = v2g_health_new("svc", 60000);
	v2g_health_add(h, "db", 1, probe_fn, &p);
	CHECK_INT(v2g_health_start(h), 0);
	int64_t t0 = v2g_mono_ms();
	v2g_health_free(h);
	CHECK(v2g_mono_ms() - t0 < 200);
	CHECK_INT(atomic_load(&p.calls), 1);
	v2g_health_free(NULL);
}

static void test_json_shape(void)
{
	struct probe ok = { 0, 0, "fine" };
	struct v2g_health *h = v2g_health_new("dispatch-engine", 10000);
	v2g_health_add(h, "store", 1, probe_fn, &ok);
	v2g_health_add(h, "odd \"name\"\n", 0, NULL, NULL);
	v2g_health_start(h);
	char *s = v2g_health_json(h);
	CHECK(s != NULL);
	json_error_t e;
	json_t *doc = s ? json_loads(s, 0, &e) : NULL;
	CHECK(json_is_object(doc));
	CHECK_STR(json_string_value(json_object_get(doc, "service")), "dispatch-engine");
	CHECK_STR(json_string_value(json_object_get(doc, "status")), "ready");
	json_t *up = json_object_get(doc, "uptime_seconds");
	CHECK(json_is_number(up));
	CHECK(json_number_value(up) >= 0 && json_number_value(up) < 60);
	json_t *checks = json_object_get(doc, "checks");
	CHECK(json_is_object(checks));
	CHECK_INT(json_object_size(checks), 2);
	json_t *c = json_object_get(checks, "store");
	CHECK(json_is_object(c));
	CHECK(json_is_boolean(json_object_get(c, "ok")));
	CHECK(json_is_boolean(json_object_get(c, "critical")));
	CHECK(json_is_string(json_object_get(c, "detail")));
	/* checked_at is an RFC 3339 time close to now */
	int64_t at = 0;
	const char *ts = json_string_value(json_object_get(c, "checked_at"));
	CHECK(ts != NULL);
	CHECK(ts && v2g_time_parse(ts, &at) == 0);
	CHECK(at > v2g_now_ms() - 5000 && at <= v2g_now_ms());
	/* a pushed check never reported has no time */
	c = json_object_get(checks, "odd \"name\"\n");
	CHECK(json_is_object(c));
	json_t *never = json_object_get(c, "checked_at");
	CHECK(never == NULL || json_is_null(never));
	json_decref(doc);
	free(s);
	v2g_health_free(h);
}

static void test_too_many_checks(void)
{
	struct v2g_health *h = v2g_health_new("svc", 10000);
	char name[32];
	int rc = 0, added = 0;
	for (int i = 0; i < 100 && rc == 0; i++) {
		snprintf(name, sizeof(name), "many%d", i);
		rc = v2g_health_add(h, name, 0, NULL, NULL);
		if (rc == 0)
			added++;
	}
	CHECK(rc != 0);
	CHECK(added >= 16);
	char *s = v2g_health_json(h);
	json_error_t e;
	json_t *doc = json_loads(s, 0, &e);
	CHECK_INT(json_object_size(json_object_get(doc, "checks")), added);
	json_decref(doc);
	free(s);
	/* the refused check does not show up in the metrics either */
	char *text = v2g_metrics_render();
	snprintf(name, sizeof(name), "check=\"many%d\"", added - 1);
	CHECK(strstr(text, name) != NULL);
	snprintf(name, sizeof(name), "check=\"many%d\"", added);
	CHECK(strstr(text, name) == NULL);
	free(text);
	v2g_health_free(h);
}

static void test_up_gauge(void)
{
	struct probe bad = { 1, 0, NULL };
	struct v2g_health *h = v2g_health_new("svc", 10000);
	v2g_health_add(h, "gauge-db", 1, probe_fn, &bad);
	v2g_health_add(h, "gauge-feed", 1, NULL, NULL);
	v2g_health_start(h);
	v2g_health_set(h, "gauge-feed", 1, "ok");
	struct v2g_metric *m = v2g_gauge("health_check_up", "", "check");
	CHECK_NEAR(v2g_metric_value(m, "gauge-db"), 0, 0);
	CHECK_NEAR(v2g_metric_value(m, "gauge-feed"), 1, 0);
	v2g_health_free(h);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_empty_is_ready),
		HCASE(test_probe_critical),
		HCASE(test_non_critical_does_not_block_ready),
		HCASE(test_pushed_check),
		HCASE(test_pushed_check_without_start),
		HCASE(test_probe_reruns_periodically),
		HCASE(test_stop_ends_probes),
		HCASE(test_result_after_stop_not_recorded),
		HCASE(test_free_is_prompt),
		HCASE(test_json_shape),
		HCASE(test_too_many_checks),
		HCASE(test_up_gauge),
	};
	v2g_log_init("health-test", V2G_LOG_ERROR, 0);
	return harness_main("health", cases, HARNESS_N(cases));
}
