/* The audit sink against a real nng PULL socket playing the store (ipc://):
 * events arrive and decode in order, a store that comes late (or comes
 * back) gets everything, overflow drops the oldest, stop drains, and a stop
 * without a store is bounded and counts what it loses. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness/harness.h"
#include "v2g/audit.h"
#include "v2g/audit_sink.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

#define T0 1735732800000LL /* 2025-01-01T12:00:00Z */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void make_url(char *buf, size_t len)
{
	static atomic_int seq;
	snprintf(buf, len, "ipc:///tmp/v2g-audit-sink-test-%d-%d.ipc", (int)getpid(),
	         atomic_fetch_add(&seq, 1));
}

static double metric(const char *name, const char *label, const char *lv)
{
	return v2g_metric_value(v2g_counter(name, "", label), lv);
}

/* Event number i: station control on "st-<i>", details {"i": i}. */
static void emit_n(struct v2g_audit_sink *s, int from, int to)
{
	static const struct v2g_audit_actor op = { "user", "op-1", "Operator" };
	for (int i = from; i < to; i++) {
		struct v2g_audit_event ev;
		char st[32];
		snprintf(st, sizeof st, "st-%d", i);
		json_t *d = json_pack("{s:i}", "i", i);
		CHECK_INT(v2g_audit_station_control(&ev, T0 + i, &op, st, "set_power", d), 0);
		json_decref(d);
		CHECK_INT(v2g_audit_sink_emit(s, &ev), 0);
		v2g_audit_event_fini(&ev);
	}
}

/* What the fake store received: event numbers in arrival order. */
struct got {
	int nums[4096];
	int n, batches, max_batch, bad;
};

/* Receives on pull until want events arrived or timeout_ms passed. */
static void receive(nng_socket pull, struct got *g, int want, int timeout_ms)
{
	int64_t deadline = v2g_mono_ms() + timeout_ms;
	while (g->n < want && v2g_mono_ms() < deadline) {
		v2g_env *env = NULL;
		if (v2g_bus_recv(pull, &env, 50) != 0)
			continue;
		if (env->body_case != V2G__V1__ENVELOPE__BODY_AUDIT) {
			g->bad++;
			v2g_env_free(env);
			continue;
		}
		g->batches++;
		if ((int)env->audit->n_events_json > g->max_batch)
			g->max_batch = (int)env->audit->n_events_json;
		for (size_t i = 0; i < env->audit->n_events_json; i++) {
			const char *js = env->audit->events_json[i];
			struct v2g_audit_event ev;
			int num;
			if (v2g_audit_event_decode(js, strlen(js), &ev) != 0 ||
			    sscanf(ev.target, "st-%d", &num) != 1 || ev.ts_ms != T0 + num ||
			    g->n >= (int)(sizeof g->nums / sizeof g->nums[0])) {
				g->bad++;
			} else {
				g->nums[g->n++] = num;
			}
			v2g_audit_event_fini(&ev);
		}
		v2g_env_free(env);
	}
}

/* nums == from, from+1, … to-1. */
static void check_run(const struct got *g, int from, int to)
{
	CHECK_INT(g->bad, 0);
	CHECK_INT(g->n, to - from);
	for (int i = 0; i < g->n && i < to - from; i++)
		if (g->nums[i] != from + i) {
			CHECK_INT(g->nums[i], from + i);
			break;
		}
}

static int wait_pending(struct v2g_audit_sink *s, size_t want, int timeout_ms)
{
	int64_t deadline = v2g_mono_ms() + timeout_ms;
	while (v2g_audit_sink_pending(s) != want && v2g_mono_ms() < deadline)
		sleep_ms(5);
	return v2g_audit_sink_pending(s) == want;
}

static void test_events_arrive(void)
{
	char url[128];
	nng_socket pull;
	struct v2g_audit_sink *s = NULL;
	static struct got g;
	memset(&g, 0, sizeof g);
	make_url(url, sizeof url);
	double sent0 = metric("audit_events_sent_total", NULL, NULL);
	double ctl0 = metric("audit_events_total", "category", "station_control");

	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(v2g_audit_sink_start(&s, url, 0), 0);
	emit_n(s, 0, 3);
	receive(pull, &g, 3, 5000);
	check_run(&g, 0, 3);
	CHECK(wait_pending(s, 0, 2000));
	CHECK_NEAR(metric("audit_events_sent_total", NULL, NULL) - sent0, 3, 0);
	CHECK_NEAR(metric("audit_events_total", "category", "station_control") - ctl0, 3, 0);
	v2g_audit_sink_stop(s, 1000);
	nng_close(pull);
}

/* The JSON the store gets is the producer's encoding, byte for byte. */
static void test_same_text(void)
{
	char url[128];
	nng_socket pull;
	struct v2g_audit_sink *s = NULL;
	struct v2g_audit_event ev;
	v2g_env *env = NULL;
	make_url(url, sizeof url);
	json_t *d = json_pack("{s:f, s:s}", "limit_kw", 7.5, "reason", "peak\n\"shaving\"");
	CHECK_INT(v2g_audit_load_management(&ev, T0, "shed", d), 0);
	json_decref(d);
	char *want = v2g_audit_event_encode(&ev);

	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(v2g_audit_sink_start(&s, url, 0), 0);
	CHECK_INT(v2g_audit_sink_emit(s, &ev), 0);
	CHECK_INT(v2g_bus_recv(pull, &env, 5000), 0);
	if (env) {
		CHECK_INT(env->body_case, V2G__V1__ENVELOPE__BODY_AUDIT);
		CHECK_INT(env->audit->n_events_json, 1);
		CHECK_STR(env->audit->events_json[0], want);
		v2g_env_free(env);
	}
	free(want);
	v2g_audit_event_fini(&ev);
	v2g_audit_sink_stop(s, 1000);
	nng_close(pull);
}

/* No store at first: events wait (more than one batch's worth), then all
 * arrive once it listens, in order, once each, in batches of <= 100. */
static void test_store_late(void)
{
	char url[128];
	nng_socket pull;
	struct v2g_audit_sink *s = NULL;
	static struct got g;
	memset(&g, 0, sizeof g);
	make_url(url, sizeof url);
	double sent0 = metric("audit_events_sent_total", NULL, NULL);

	CHECK_INT(v2g_audit_sink_start(&s, url, 0), 0);
	emit_n(s, 0, 250);
	sleep_ms(300); /* several send attempts fail meanwhile */
	CHECK_INT(v2g_audit_sink_pending(s), 250);
	CHECK_NEAR(metric("audit_events_sent_total", NULL, NULL) - sent0, 0, 0);

	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	receive(pull, &g, 250, 10000);
	check_run(&g, 0, 250);
	CHECK(g.max_batch <= 100);
	CHECK(g.batches >= 3);
	CHECK(wait_pending(s, 0, 2000));
	receive(pull, &g, 251, 200); /* nothing more: no duplicate */
	CHECK_INT(g.n, 250);
	CHECK_NEAR(metric("audit_events_sent_total", NULL, NULL) - sent0, 250, 0);
	v2g_audit_sink_stop(s, 1000);
	nng_close(pull);
}

/* The store goes away and comes back on the same address. */
static void test_store_returns(void)
{
	char url[128];
	nng_socket pull;
	struct v2g_audit_sink *s = NULL;
	static struct got g;
	memset(&g, 0, sizeof g);
	make_url(url, sizeof url);

	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(v2g_audit_sink_start(&s, url, 0), 0);
	emit_n(s, 0, 5);
	receive(pull, &g, 5, 5000);
	check_run(&g, 0, 5);
	nng_close(pull);
	/* Let the sink see its connection close: a message sent into a
	 * connection that is going away is lost (as for any PUSH). */
	sleep_ms(200);
	emit_n(s, 5, 10);
	sleep_ms(200);
	CHECK_INT(v2g_audit_sink_pending(s), 5);
	memset(&g, 0, sizeof g);
	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	receive(pull, &g, 5, 5000);
	check_run(&g, 5, 10);
	v2g_audit_sink_stop(s, 1000);
	nng_close(pull);
}

/* A queue of 10 and 25 events without a store: the 15 oldest go, counted;
 * the 10 newest arrive. */
static void test_overflow_drops_oldest(void)
{
	char url[128];
	nng_socket pull;
	struct v2g_audit_sink *s = NULL;
	static struct got g;
	memset(&g, 0, sizeof g);
	make_url(url, sizeof url);
	double drop0 = metric("audit_events_dropped_total", NULL, NULL);

	CHECK_INT(v2g_audit_sink_start(&s, url, 10), 0);
	emit_n(s, 0, 25);
	CHECK_INT(v2g_audit_sink_pending(s), 10);
	/* Drops of events inside a send attempt are counted when it fails. */
	int64_t deadline = v2g_mono_ms() + 3000;
	while (metric("audit_events_dropped_total", NULL, NULL) - drop0 < 15 &&
	       v2g_mono_ms() < deadline)
		sleep_ms(10);
	CHECK_NEAR(metric("audit_events_dropped_total", NULL, NULL) - drop0, 15, 0);

	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	receive(pull, &g, 10, 5000);
	check_run(&g, 15, 25);
	CHECK(wait_pending(s, 0, 2000));
	v2g_audit_sink_stop(s, 1000);
	nng_close(pull);
	CHECK_NEAR(metric("audit_events_dropped_total", NULL, NULL) - drop0, 15, 0);
}

/* Events emitted just before stop are handed over by the drain. */
static void test_stop_drains(void)
{
	char url[128];
	nng_socket pull;
	struct v2g_audit_sink *s = NULL;
	static struct got g;
	memset(&g, 0, sizeof g);
	make_url(url, sizeof url);
	double drop0 = metric("audit_events_dropped_total", NULL, NULL);

	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(v2g_audit_sink_start(&s, url, 0), 0);
	emit_n(s, 0, 300);
	v2g_audit_sink_stop(s, 5000);
	receive(pull, &g, 300, 5000);
	check_run(&g, 0, 300);
	CHECK_NEAR(metric("audit_events_dropped_total", NULL, NULL) - drop0, 0, 0);
	nng_close(pull);
}

/* Without a store, stop gives up after drain_ms and counts the loss. */
static void test_stop_without_store(void)
{
	char url[128];
	struct v2g_audit_sink *s = NULL;
	make_url(url, sizeof url);
	double drop0 = metric("audit_events_dropped_total", NULL, NULL);

	CHECK_INT(v2g_audit_sink_start(&s, url, 0), 0);
	emit_n(s, 0, 7);
	int64_t t0 = v2g_mono_ms();
	v2g_audit_sink_stop(s, 150);
	int64_t took = v2g_mono_ms() - t0;
	CHECK(took < 1000);
	CHECK_NEAR(metric("audit_events_dropped_total", NULL, NULL) - drop0, 7, 0);
}

/* Four threads emit 400 events each into a queue of 40 while the store
 * takes them: every event arrives at most once, each thread's in the order
 * it emitted them, and arrived + dropped == emitted (an event overflow took
 * out of a batch in flight counts once: as sent, or as dropped if that
 * send failed). */
#define RACE_THREADS 4
#define RACE_EACH    400

static void *race_emitter(void *arg)
{
	static const struct v2g_audit_actor op = { "user", "op-1", "Operator" };
	struct v2g_audit_sink *s = ((void **)arg)[0];
	int base = (int)(intptr_t)((void **)arg)[1], *errors = ((void **)arg)[2];
	for (int i = base; i < base + RACE_EACH; i++) {
		struct v2g_audit_event ev;
		char st[32];
		snprintf(st, sizeof st, "st-%d", i);
		if (v2g_audit_station_control(&ev, T0 + i, &op, st, "set_power", NULL) != 0 ||
		    v2g_audit_sink_emit(s, &ev) != 0)
			(*errors)++;
		v2g_audit_event_fini(&ev);
		if (i % 50 == 0)
			sleep_ms(1);
	}
	return NULL;
}

static void test_overflow_while_sending(void)
{
	char url[128];
	nng_socket pull;
	struct v2g_audit_sink *s = NULL;
	static struct got g;
	pthread_t th[RACE_THREADS];
	void *args[RACE_THREADS][3];
	int errors[RACE_THREADS] = { 0 };
	memset(&g, 0, sizeof g);
	make_url(url, sizeof url);
	double drop0 = metric("audit_events_dropped_total", NULL, NULL);
	double sent0 = metric("audit_events_sent_total", NULL, NULL);

	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(v2g_audit_sink_start(&s, url, 40), 0);
	for (int t = 0; t < RACE_THREADS; t++) {
		args[t][0] = s;
		args[t][1] = (void *)(intptr_t)(t * 1000);
		args[t][2] = &errors[t];
		CHECK_INT(pthread_create(&th[t], NULL, race_emitter, args[t]), 0);
	}
	/* receive while they emit, until nothing more comes */
	for (int idle = 0; idle < 4;) {
		int before = g.n;
		receive(pull, &g, g.n + 1, 100);
		idle = g.n == before ? idle + 1 : 0;
	}
	for (int t = 0; t < RACE_THREADS; t++) {
		pthread_join(th[t], NULL);
		CHECK_INT(errors[t], 0);
	}
	v2g_audit_sink_stop(s, 2000);
	receive(pull, &g, RACE_THREADS * RACE_EACH, 300);
	nng_close(pull);

	CHECK_INT(g.bad, 0);
	static unsigned char seen[RACE_THREADS * 1000];
	int last[RACE_THREADS];
	memset(seen, 0, sizeof seen);
	for (int t = 0; t < RACE_THREADS; t++)
		last[t] = -1;
	for (int i = 0; i < g.n; i++) {
		int num = g.nums[i], t = num / 1000;
		if (num < 0 || t >= RACE_THREADS || seen[num]++ || num <= last[t]) {
			harness_fail(__FILE__, __LINE__, "event %d arrived twice or out of order",
			             num);
			break;
		}
		last[t] = num;
	}
	double dropped = metric("audit_events_dropped_total", NULL, NULL) - drop0;
	double sent = metric("audit_events_sent_total", NULL, NULL) - sent0;
	CHECK_NEAR(g.n + dropped, RACE_THREADS * RACE_EACH, 0);
	CHECK_NEAR(sent, g.n, 0);
}

static void test_bad_arguments(void)
{
	struct v2g_audit_sink *s = NULL;
	struct v2g_audit_event ev;
	char url[128];
	make_url(url, sizeof url);
	memset(&ev, 0, sizeof ev);
	CHECK_INT(v2g_audit_sink_start(&s, NULL, 0), V2G_ERR_INVAL);
	CHECK_INT(v2g_audit_sink_start(NULL, url, 0), V2G_ERR_INVAL);
	CHECK(v2g_audit_sink_start(&s, "bogus://nowhere", 0) != 0);
	CHECK_INT(v2g_audit_sink_emit(NULL, &ev), V2G_ERR_INVAL);
	CHECK_INT(v2g_audit_sink_pending(NULL), 0);
	v2g_audit_sink_stop(NULL, 0);

	CHECK_INT(v2g_audit_sink_start(&s, url, 0), 0);
	CHECK_INT(v2g_audit_sink_emit(s, NULL), V2G_ERR_INVAL);
	CHECK_INT(v2g_audit_sink_pending(s), 0);
	v2g_audit_sink_stop(s, 0);
}

int main(void)
{
	v2g_log_init("audit-sink-test", V2G_LOG_ERROR, 0);
	v2g_bus_set_sender("audit-sink-test");
	static const struct harness_case cases[] = {
		HCASE(test_events_arrive),
		HCASE(test_same_text),
		HCASE(test_store_late),
		HCASE(test_store_returns),
		HCASE(test_overflow_drops_oldest),
		HCASE(test_stop_drains),
		HCASE(test_stop_without_store),
		HCASE(test_overflow_while_sending),
		HCASE(test_bad_arguments),
	};
	return harness_main("audit_sink", cases, HARNESS_N(cases));
}
