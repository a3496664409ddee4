/* The nng bus over inproc:// and tcp://127.0.0.1:<free port>: envelope
 * round trips on every pattern, large batches, req/rep servers, timeouts,
 * and undecodable input. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../harness/harness.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

/* --- helpers ------------------------------------------------------------ */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* A TCP port nobody listens on right now (the kernel picks it). */
static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* A fresh URL: tcp on a free port, or a unique inproc name. */
static void make_url(char *buf, size_t len, int tcp)
{
	static atomic_int seq;
	if (tcp)
		snprintf(buf, len, "tcp://127.0.0.1:%d", free_port());
	else
		snprintf(buf, len, "inproc://bus-test-%d", atomic_fetch_add(&seq, 1));
}

static double decode_errors(void)
{
	return v2g_metric_value(v2g_counter("bus_decode_errors_total", "", NULL), NULL);
}

/* A TelemetryBatch of n vehicles, built in one allocation. */
struct batch {
	V2g__V1__TelemetryBatch tb;
	V2g__V1__VehicleState *st;
	V2g__V1__VehicleState **ptrs;
	char (*ids)[24];
};

static void batch_init(struct batch *b, size_t n)
{
	v2g__v1__telemetry_batch__init(&b->tb);
	b->st = calloc(n, sizeof(*b->st));
	b->ptrs = calloc(n, sizeof(*b->ptrs));
	b->ids = calloc(n, sizeof(*b->ids));
	for (size_t i = 0; i < n; i++) {
		V2g__V1__VehicleState *s = &b->st[i];
		v2g__v1__vehicle_state__init(s);
		snprintf(b->ids[i], sizeof(b->ids[i]), "vehicle-%06zu", i);
		s->vehicle_id = b->ids[i];
		s->soc = (double)(i % 100) + 0.5;
		s->max_power_kw = 11;
		s->available = 1;
		s->priority = (int)(i % 3);
		s->tariff = 0.1834;
		s->segment = "residential";
		s->fleet_id = "fleet-ile-de-france-01";
		s->site = "site-paris-nord-0042";
		s->cluster = "cluster-north-07";
		s->battery_kwh = 77.4;
		s->ts_ms = 1795260744000LL + (int64_t)i;
		s->power_kw = -3.7;
		b->ptrs[i] = s;
	}
	b->tb.n_states = n;
	b->tb.states = b->ptrs;
}

static void batch_fini(struct batch *b)
{
	free(b->st);
	free(b->ptrs);
	free(b->ids);
}

static void check_batch(const v2g_env *e, size_t n)
{
	CHECK_INT(e->body_case, V2G__V1__ENVELOPE__BODY_TELEMETRY);
	if (e->body_case != V2G__V1__ENVELOPE__BODY_TELEMETRY)
		return;
	CHECK_INT(e->telemetry->n_states, n);
	if (e->telemetry->n_states != n || n == 0)
		return;
	const V2g__V1__VehicleState *last = e->telemetry->states[n - 1];
	char id[24];
	snprintf(id, sizeof(id), "vehicle-%06zu", n - 1);
	CHECK_STR(last->vehicle_id, id);
	CHECK_NEAR(last->soc, (double)((n - 1) % 100) + 0.5, 0);
	CHECK_STR(last->site, "site-paris-nord-0042");
	CHECK_INT(last->ts_ms, 1795260744000LL + (int64_t)(n - 1));
}

/* Sends a GetDispatch whose id is text. */
static int send_get(nng_socket s, const char *text)
{
	V2g__V1__GetDispatch gd = V2G__V1__GET_DISPATCH__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	gd.dispatch_id = (char *)text;
	env.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	env.get_dispatch = &gd;
	return v2g_bus_send(s, &env, 2000);
}

static int is_get(const v2g_env *e, const char *text)
{
	return e && e->body_case == V2G__V1__ENVELOPE__BODY_GET_DISPATCH &&
	       !strcmp(e->get_dispatch->dispatch_id, text);
}

/* --- push/pull, pub/sub ------------------------------------------------ */

static void push_pull(int tcp)
{
	char url[64];
	nng_socket pull, push;
	v2g_env *e = NULL;
	make_url(url, sizeof(url), tcp);
	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(v2g_bus_open(&push, V2G_BUS_PUSH, url, 0), 0);
	int64_t before = v2g_now_ms();
	CHECK_INT(send_get(push, "d-123"), 0);
	CHECK_INT(v2g_bus_recv(pull, &e, 2000), 0);
	CHECK(is_get(e, "d-123"));
	if (e) {
		CHECK_INT(e->version, 1);
		CHECK_STR(e->sender, "bus-test");
		CHECK(e->sent_ms >= before && e->sent_ms <= v2g_now_ms());
	}
	v2g_env_free(e);
	/* order is kept */
	char id[16];
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		send_get(push, id);
	}
	int in_order = 0;
	for (int i = 0; i < 50; i++) {
		e = NULL;
		snprintf(id, sizeof(id), "m%d", i);
		if (v2g_bus_recv(pull, &e, 2000) == 0 && is_get(e, id))
			in_order++;
		v2g_env_free(e);
	}
	CHECK_INT(in_order, 50);
	nng_close(push);
	nng_close(pull);
}

static void test_push_pull_inproc(void)
{
	push_pull(0);
}
static void test_push_pull_tcp(void)
{
	push_pull(1);
}

static void large_batch(int tcp)
{
	enum { N = 10000 };
	char url[64];
	nng_socket pull, push;
	struct batch b;
	v2g_env env = V2G__V1__ENVELOPE__INIT, *e = NULL;
	make_url(url, sizeof(url), tcp);
	batch_init(&b, N);
	env.body_case = V2G__V1__ENVELOPE__BODY_TELEMETRY;
	env.telemetry = &b.tb;
	/* over nng's default 1 MiB receive limit: V2G_BUS_MAX_MSG must apply */
	CHECK(v2g__v1__envelope__get_packed_size(&env) > 1024 * 1024);
	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(v2g_bus_open(&push, V2G_BUS_PUSH, url, 0), 0);
	CHECK_INT(v2g_bus_send(push, &env, 2000), 0);
	CHECK_INT(v2g_bus_recv(pull, &e, 2000), 0);
	if (e)
		check_batch(e, N);
	v2g_env_free(e);
	nng_close(push);
	nng_close(pull);
	batch_fini(&b);
}

static void test_large_batch_inproc(void)
{
	large_batch(0);
}
static void test_large_batch_tcp(void)
{
	large_batch(1);
}

static void test_too_big_refused(void)
{
	char url[64];
	nng_socket push;
	make_url(url, sizeof(url), 0);
	CHECK_INT(v2g_bus_open(&push, V2G_BUS_PUSH, url, 1), 0);
	size_t n = V2G_BUS_MAX_MSG + 1;
	char *huge = malloc(n + 1);
	memset(huge, 'x', n);
	huge[n] = '\0';
	V2g__V1__Error err = V2G__V1__ERROR__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	err.message = huge;
	env.body_case = V2G__V1__ENVELOPE__BODY_ERROR;
	env.error = &err;
	CHECK_INT(v2g_bus_send(push, &env, 100), V2G_ERR_TOOBIG);
	free(huge);
	nng_close(push);
}

static void pub_sub(int tcp)
{
	char url[64];
	nng_socket pub, sub;
	v2g_env *e = NULL;
	make_url(url, sizeof(url), tcp);
	CHECK_INT(v2g_bus_open(&pub, V2G_BUS_PUB, url, 1), 0);
	CHECK_INT(v2g_bus_open(&sub, V2G_BUS_SUB, url, 0), 0);
	/* a subscriber misses what is published before it is connected:
	 * publish until one arrives */
	int64_t t0 = v2g_mono_ms();
	int got = 0;
	while (!got && v2g_mono_ms() - t0 < 2000) {
		CHECK_INT(send_get(pub, "hello"), 0);
		if (v2g_bus_recv(sub, &e, 50) == 0) {
			got = is_get(e, "hello");
			v2g_env_free(e);
			e = NULL;
		}
	}
	CHECK(got);
	/* drain the extra hellos */
	while (v2g_bus_recv(sub, &e, 50) == 0) {
		v2g_env_free(e);
		e = NULL;
	}
	/* now connected: a 10k-vehicle batch arrives whole */
	struct batch b;
	batch_init(&b, 10000);
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_TELEMETRY;
	env.telemetry = &b.tb;
	CHECK_INT(v2g_bus_send(pub, &env, 2000), 0);
	CHECK_INT(v2g_bus_recv(sub, &e, 2000), 0);
	if (e)
		check_batch(e, 10000);
	v2g_env_free(e);
	batch_fini(&b);
	nng_close(sub);
	nng_close(pub);
}

static void test_pub_sub_inproc(void)
{
	pub_sub(0);
}
static void test_pub_sub_tcp(void)
{
	pub_sub(1);
}

static void test_recv_timeout(void)
{
	char url[64];
	nng_socket pull;
	v2g_env *e = NULL;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	int64_t t0 = v2g_mono_ms();
	CHECK_INT(v2g_bus_recv(pull, &e, 100), V2G_ERR_TIMEOUT);
	int64_t dt = v2g_mono_ms() - t0;
	CHECK(dt >= 90 && dt < 600);
	CHECK(e == NULL);
	nng_close(pull);
	CHECK_INT(v2g_bus_recv(pull, &e, 100), V2G_ERR_CLOSED);
}

static void test_push_before_listener(void)
{
	/* PUSH/PULL carries what must arrive: a message sent while the
	 * listener is not up yet is delivered once it is. */
	char url[64];
	nng_socket pull, push;
	v2g_env *e = NULL;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_open(&push, V2G_BUS_PUSH, url, 0), 0);
	CHECK_INT(send_get(push, "early"), 0);
	sleep_ms(50);
	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(v2g_bus_recv(pull, &e, 3000), 0); /* redial backoff: up to 2 s */
	CHECK(is_get(e, "early"));
	v2g_env_free(e);
	nng_close(push);
	nng_close(pull);
}

static void test_push_sync_keeps_nothing(void)
{
	/* PUSH_SYNC: with no peer a send fails after its timeout (nothing is
	 * kept for later); once a peer is connected it goes through. */
	char url[64];
	nng_socket pull, push;
	v2g_env *e = NULL;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	V2g__V1__GetDispatch gd = V2G__V1__GET_DISPATCH__INIT;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_open(&push, V2G_BUS_PUSH_SYNC, url, 0), 0);
	gd.dispatch_id = "stale";
	env.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	env.get_dispatch = &gd;
	CHECK_INT(v2g_bus_send(push, &env, 100), V2G_ERR_TIMEOUT);
	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(send_get(push, "fresh"), 0); /* waits for the redial */
	CHECK_INT(v2g_bus_recv(pull, &e, 3000), 0);
	CHECK(is_get(e, "fresh")); /* the refused one never arrives */
	v2g_env_free(e);
	nng_close(push);
	nng_close(pull);
}

static void test_listen_twice_fails(void)
{
	char url[64];
	nng_socket a, b;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_open(&a, V2G_BUS_PULL, url, 1), 0);
	CHECK(v2g_bus_open(&b, V2G_BUS_PULL, url, 1) != 0);
	nng_close(a);
	CHECK(v2g_bus_open(&b, V2G_BUS_PULL, "nonsense://x", 1) != 0);
}

static void undecodable_pull(int tcp)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x01 };
	char url[64];
	nng_socket pull, raw;
	v2g_env *e = NULL;
	make_url(url, sizeof(url), tcp);
	CHECK_INT(v2g_bus_open(&pull, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(nng_push0_open(&raw), 0);
	CHECK_INT(nng_dial(raw, url, NULL, 0), 0);
	double before = decode_errors();
	CHECK_INT(nng_send(raw, (void *)junk, sizeof(junk), 0), 0);
	CHECK_INT(v2g_bus_recv(pull, &e, 2000), V2G_ERR_PROTO);
	CHECK(e == NULL);
	CHECK_NEAR(decode_errors(), before + 1, 0);
	/* the socket keeps working */
	CHECK_INT(send_get(raw, "after-junk"), 0);
	CHECK_INT(v2g_bus_recv(pull, &e, 2000), 0);
	CHECK(is_get(e, "after-junk"));
	v2g_env_free(e);
	nng_close(raw);
	nng_close(pull);
}

static void test_undecodable_pull_inproc(void)
{
	undecodable_pull(0);
}
static void test_undecodable_pull_tcp(void)
{
	undecodable_pull(1);
}

/* --- req/rep ------------------------------------------------------------ */

enum mode { ECHO, NO_REPLY, TWICE, SLOW };

struct srv {
	atomic_int mode;
	atomic_int calls;
	atomic_int delay_ms;
	atomic_int second_rc;
	atomic_int ready;
};

/* Replies DispatchReply{found, decision.dispatch_id = the requested id}. */
static void handler(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	struct srv *s = arg;
	atomic_fetch_add(&s->calls, 1);
	int mode = atomic_load(&s->mode);
	if (mode == NO_REPLY)
		return;
	if (mode == SLOW)
		sleep_ms(atomic_load(&s->delay_ms));
	if (req->body_case != V2G__V1__ENVELOPE__BODY_GET_DISPATCH) {
		v2g_bus_reply_error(rep, 400, "expected GetDispatch");
		return;
	}
	V2g__V1__DispatchDecision d = V2G__V1__DISPATCH_DECISION__INIT;
	V2g__V1__DispatchReply dr = V2G__V1__DISPATCH_REPLY__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	d.dispatch_id = req->get_dispatch->dispatch_id;
	dr.found = 1;
	dr.decision = &d;
	env.body_case = V2G__V1__ENVELOPE__BODY_DISPATCH_REPLY;
	env.dispatch_reply = &dr;
	int rc = v2g_bus_reply_send(rep, &env);
	if (rc)
		fprintf(stderr, "reply_send: %s\n", v2g_strerror(rc));
	if (mode == TWICE)
		atomic_store(&s->second_rc, v2g_bus_reply_send(rep, &env));
}

static int ready_fn(void *arg)
{
	return atomic_load(&((struct srv *)arg)->ready);
}

/* Calls GetDispatch{id}; 1 if the reply names the same id. */
static int call_get(struct v2g_bus_client *c, const char *id, int timeout_ms, int *rc)
{
	V2g__V1__GetDispatch gd = V2G__V1__GET_DISPATCH__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	gd.dispatch_id = (char *)id;
	req.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	req.get_dispatch = &gd;
	*rc = v2g_bus_call(c, &req, &rep, timeout_ms);
	int ok = *rc == 0 && rep->body_case == V2G__V1__ENVELOPE__BODY_DISPATCH_REPLY &&
	         rep->dispatch_reply->found && rep->dispatch_reply->decision &&
	         !strcmp(rep->dispatch_reply->decision->dispatch_id, id);
	if (*rc == 0)
		v2g_env_free(rep);
	return ok;
}

static void req_rep(int tcp)
{
	char url[64];
	struct srv s = { ECHO, 0, 0, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	int rc;
	make_url(url, sizeof(url), tcp);
	CHECK_INT(v2g_bus_server_start(&srv, url, 2, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK(call_get(c, "d-1", 2000, &rc));
	CHECK_INT(rc, 0);
	CHECK(call_get(c, "d-2", 2000, &rc));
	CHECK_INT(atomic_load(&s.calls), 2);
	/* ping is answered by the server, not the handler */
	int ready = -1;
	CHECK_INT(v2g_bus_ping(c, 2000, &ready), 0);
	CHECK_INT(ready, 1);
	CHECK_INT(atomic_load(&s.calls), 2);
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
}

static void test_req_rep_inproc(void)
{
	req_rep(0);
}
static void test_req_rep_tcp(void)
{
	req_rep(1);
}

static void test_handler_without_reply_is_500(void)
{
	char url[64];
	struct srv s = { NO_REPLY, 0, 0, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 1, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	V2g__V1__GetDispatch gd = V2G__V1__GET_DISPATCH__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	gd.dispatch_id = "x";
	req.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	req.get_dispatch = &gd;
	CHECK_INT(v2g_bus_call(c, &req, &rep, 2000), 0);
	CHECK(rep != NULL);
	if (rep) {
		CHECK_INT(rep->body_case, V2G__V1__ENVELOPE__BODY_ERROR);
		if (rep->body_case == V2G__V1__ENVELOPE__BODY_ERROR)
			CHECK_INT(rep->error->code, 500);
		v2g_env_free(rep);
	}
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
}

static void test_second_reply_refused(void)
{
	char url[64];
	struct srv s = { TWICE, 0, 0, -1, 1 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	int rc;
	make_url(url, sizeof(url), 0);
	CHECK_INT(v2g_bus_server_start(&srv, url, 1, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK(call_get(c, "once", 2000, &rc));
	/* the next request is not confused by the refused second reply */
	CHECK(call_get(c, "next", 2000, &rc));
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv); /* joins the workers: the handler is done */
	CHECK_INT(atomic_load(&s.second_rc), V2G_ERR_INVAL);
}

struct caller {
	struct v2g_bus_client *c;
	int id, ok;
};

static void *caller_main(void *arg)
{
	struct caller *k = arg;
	char id[32];
	int rc;
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "t%d-%d", k->id, i);
		k->ok += call_get(k->c, id, 2000, &rc);
	}
	return NULL;
}

static void test_concurrent_calls(void)
{
	char url[64];
	struct srv s = { SLOW, 0, 1, 0, 1 }; /* 1 ms per request */
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 4, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	struct caller k[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		k[i] = (struct caller){ c, i, 0 };
		pthread_create(&t[i], NULL, caller_main, &k[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(k[i].ok, 100);
	}
	CHECK_INT(atomic_load(&s.calls), 400);
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
}

static void test_ping_ready_fn(void)
{
	char url[64];
	struct srv s = { ECHO, 0, 0, 0, 0 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	int ready = -1;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 1, handler, &s, ready_fn, &s), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK_INT(v2g_bus_ping(c, 2000, &ready), 0);
	CHECK_INT(ready, 0); /* answered, but not ready */
	atomic_store(&s.ready, 1);
	CHECK_INT(v2g_bus_ping(c, 2000, &ready), 0);
	CHECK_INT(ready, 1);
	CHECK_INT(v2g_bus_ping(c, 2000, NULL), 0);
	CHECK_INT(atomic_load(&s.calls), 0);
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
}

static void test_call_timeout_without_server(void)
{
	char url[64];
	struct v2g_bus_client *c = NULL;
	int rc, ready;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_client_open(&c, url), 0); /* dialing in the background is fine */
	int64_t t0 = v2g_mono_ms();
	CHECK(!call_get(c, "nobody", 300, &rc));
	int64_t dt = v2g_mono_ms() - t0;
	CHECK_INT(rc, V2G_ERR_TIMEOUT);
	CHECK(dt >= 280 && dt < 1000);
	t0 = v2g_mono_ms();
	CHECK_INT(v2g_bus_ping(c, 200, &ready), V2G_ERR_TIMEOUT);
	dt = v2g_mono_ms() - t0;
	CHECK(dt >= 180 && dt < 900);
	v2g_bus_client_close(c);
}

static void test_server_started_after_client(void)
{
	char url[64];
	struct srv s = { ECHO, 0, 0, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	int rc;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	sleep_ms(50);
	CHECK_INT(v2g_bus_server_start(&srv, url, 1, handler, &s, NULL, NULL), 0);
	/* the dialer retries with a randomised backoff of up to 2 s */
	CHECK(call_get(c, "late", 3000, &rc));
	CHECK_INT(rc, 0);
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
}

static void test_slow_handler_timeout_then_next_call(void)
{
	char url[64];
	struct srv s = { SLOW, 0, 300, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	int rc;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 2, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK(call_get(c, "warm-up", 2000, &rc)); /* connected */
	int64_t t0 = v2g_mono_ms();
	CHECK(!call_get(c, "too-slow", 100, &rc));
	CHECK_INT(rc, V2G_ERR_TIMEOUT);
	CHECK(v2g_mono_ms() - t0 < 280);
	/* the late reply to "too-slow" must not answer the next call */
	atomic_store(&s.delay_ms, 0);
	CHECK(call_get(c, "next", 2000, &rc));
	CHECK_INT(rc, 0);
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
}

static void test_slow_handler_called_once(void)
{
	/* A handler slower than nng's request resend timer must not see the
	 * request twice (a SubmitSignal would start two dispatches). */
	char url[64];
	struct srv s = { SLOW, 0, 1200, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	int rc;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 2, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK(call_get(c, "slow", 3000, &rc));
	CHECK_INT(rc, 0);
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
	CHECK_INT(atomic_load(&s.calls), 1);
}

static void test_server_stop_idle_is_prompt(void)
{
	char url[64];
	struct srv s = { ECHO, 0, 0, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 4, handler, &s, NULL, NULL), 0);
	sleep_ms(30);
	int64_t t0 = v2g_mono_ms();
	v2g_bus_server_stop(srv);
	/* idle workers are woken, not waited for */
	CHECK(v2g_mono_ms() - t0 < 100);
	/* the address is free again */
	CHECK_INT(v2g_bus_server_start(&srv, url, 1, handler, &s, NULL, NULL), 0);
	v2g_bus_server_stop(srv);
	v2g_bus_server_stop(NULL);
}

/* A call in a thread, for stopping the server under it. */
struct pending_call {
	struct v2g_bus_client *c;
	int ok, rc;
};

static void *pending_call_main(void *arg)
{
	struct pending_call *p = arg;
	p->ok = call_get(p->c, "in-flight", 3000, &p->rc);
	return NULL;
}

/* Stop does not cut a handler short: the request in progress is answered,
 * then the server goes. */
static void test_server_stop_answers_request_in_progress(void)
{
	char url[64];
	struct srv s = { SLOW, 0, 300, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	struct pending_call p = { NULL, 0, -1 };
	pthread_t t;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 2, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&p.c, url), 0);
	CHECK_INT(pthread_create(&t, NULL, pending_call_main, &p), 0);
	int64_t t0 = v2g_mono_ms();
	while (atomic_load(&s.calls) == 0 && v2g_mono_ms() - t0 < 3000)
		sleep_ms(2);
	CHECK_INT(atomic_load(&s.calls), 1);
	int64_t t1 = v2g_mono_ms();
	v2g_bus_server_stop(srv);
	int64_t dt = v2g_mono_ms() - t1;
	pthread_join(t, NULL);
	CHECK(p.ok);
	CHECK_INT(p.rc, 0);
	CHECK(dt >= 150 && dt < 1000); /* waited for the handler, not more */
	v2g_bus_client_close(p.c);
}

struct firer {
	struct v2g_bus_cancel *t;
	int after_ms;
};

static void *firer_main(void *arg)
{
	struct firer *f = arg;
	sleep_ms(f->after_ms);
	v2g_bus_cancel_fire(f->t);
	return NULL;
}

/* A fired token ends a call in progress at once (no server: it would wait
 * its whole timeout) and refuses later ones without sending. */
static void test_cancel_token(void)
{
	char url[64];
	struct v2g_bus_client *c = NULL;
	struct v2g_bus_cancel *tok = NULL;
	V2g__V1__GetDispatch gd = V2G__V1__GET_DISPATCH__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	int ready = -1;
	pthread_t t;
	gd.dispatch_id = "never";
	req.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	req.get_dispatch = &gd;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK_INT(v2g_bus_cancel_new(&tok), 0);
	CHECK_INT(v2g_bus_cancel_fired(tok), 0);
	struct firer f = { tok, 100 };
	CHECK_INT(pthread_create(&t, NULL, firer_main, &f), 0);
	int64_t t0 = v2g_mono_ms();
	CHECK_INT(v2g_bus_call_cancellable(c, &req, &rep, 5000, tok), V2G_ERR_CLOSED);
	int64_t dt = v2g_mono_ms() - t0;
	pthread_join(t, NULL);
	CHECK(dt >= 80 && dt < 1000);
	CHECK(rep == NULL);
	CHECK_INT(v2g_bus_cancel_fired(tok), 1);
	t0 = v2g_mono_ms();
	CHECK_INT(v2g_bus_ping_cancellable(c, 5000, &ready, tok), V2G_ERR_CLOSED);
	CHECK(v2g_mono_ms() - t0 < 100);
	v2g_bus_cancel_fire(tok); /* idempotent */
	v2g_bus_cancel_free(tok);
	v2g_bus_cancel_free(NULL);
	v2g_bus_cancel_fire(NULL);
	CHECK_INT(v2g_bus_cancel_fired(NULL), 0);
	v2g_bus_client_close(c);
}

/* Other calls on the same client go on; an unfired token changes nothing. */
static void test_cancel_token_is_per_call(void)
{
	char url[64];
	struct srv s = { ECHO, 0, 0, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	struct v2g_bus_cancel *tok = NULL;
	int rc, ready = -1;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 1, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK_INT(v2g_bus_cancel_new(&tok), 0);
	CHECK_INT(v2g_bus_ping_cancellable(c, 2000, &ready, tok), 0);
	CHECK_INT(ready, 1);
	v2g_bus_cancel_fire(tok);
	CHECK_INT(v2g_bus_ping_cancellable(c, 2000, &ready, tok), V2G_ERR_CLOSED);
	CHECK(call_get(c, "still-fine", 2000, &rc));
	CHECK_INT(rc, 0);
	v2g_bus_cancel_free(tok);
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
}

struct receiver {
	nng_socket sock;
	int rc;
};

static void *receiver_main(void *arg)
{
	struct receiver *r = arg;
	v2g_env *e = NULL;
	r->rc = v2g_bus_recv(r->sock, &e, 5000);
	v2g_env_free(e);
	return NULL;
}

/* Closing a socket wakes a thread waiting in v2g_bus_recv at once: how the
 * services stop their receive loops. */
static void test_close_wakes_recv(void)
{
	char url[64];
	struct receiver r = { NNG_SOCKET_INITIALIZER, -1 };
	pthread_t t;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_open(&r.sock, V2G_BUS_PULL, url, 1), 0);
	CHECK_INT(pthread_create(&t, NULL, receiver_main, &r), 0);
	sleep_ms(50);
	int64_t t0 = v2g_mono_ms();
	nng_close(r.sock);
	pthread_join(t, NULL);
	CHECK(v2g_mono_ms() - t0 < 200);
	CHECK_INT(r.rc, V2G_ERR_CLOSED);
}

static void test_server_listen_failure(void)
{
	char url[64];
	struct srv s = { ECHO, 0, 0, 0, 1 };
	struct v2g_bus_server *a = NULL, *b = NULL;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&a, url, 1, handler, &s, NULL, NULL), 0);
	CHECK(v2g_bus_server_start(&b, url, 1, handler, &s, NULL, NULL) != 0);
	CHECK(b == NULL);
	v2g_bus_server_stop(a);
}

static void test_undecodable_request_is_400(void)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff };
	char url[64];
	struct srv s = { ECHO, 0, 0, 0, 1 };
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	nng_socket raw;
	int rc;
	make_url(url, sizeof(url), 1);
	CHECK_INT(v2g_bus_server_start(&srv, url, 1, handler, &s, NULL, NULL), 0);
	double before = decode_errors();
	CHECK_INT(nng_req0_open(&raw), 0);
	nng_socket_set_ms(raw, NNG_OPT_RECVTIMEO, 2000);
	CHECK_INT(nng_dial(raw, url, NULL, 0), 0);
	CHECK_INT(nng_send(raw, (void *)junk, sizeof(junk), 0), 0);
	void *buf = NULL;
	size_t len = 0;
	CHECK_INT(nng_recv(raw, &buf, &len, NNG_FLAG_ALLOC), 0);
	v2g_env *rep = buf ? v2g__v1__envelope__unpack(NULL, len, buf) : NULL;
	CHECK(rep != NULL);
	if (rep) {
		CHECK_INT(rep->body_case, V2G__V1__ENVELOPE__BODY_ERROR);
		if (rep->body_case == V2G__V1__ENVELOPE__BODY_ERROR)
			CHECK_INT(rep->error->code, 400);
		v2g_env_free(rep);
	}
	if (buf)
		nng_free(buf, len);
	nng_close(raw);
	CHECK_NEAR(decode_errors(), before + 1, 0);
	CHECK_INT(atomic_load(&s.calls), 0);
	/* the server keeps serving */
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK(call_get(c, "after-junk", 2000, &rc));
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
}

static void test_large_request_reply(void)
{
	/* a 10k batch both ways through req/rep over tcp */
	char url[64];
	struct v2g_bus_server *srv = NULL;
	struct v2g_bus_client *c = NULL;
	struct srv s = { ECHO, 0, 0, 0, 1 };
	struct batch b;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	make_url(url, sizeof(url), 1);
	batch_init(&b, 10000);
	req.body_case = V2G__V1__ENVELOPE__BODY_TELEMETRY;
	req.telemetry = &b.tb;
	/* the handler answers 400 to anything but GetDispatch: enough to
	 * show that the large request arrived decoded */
	CHECK_INT(v2g_bus_server_start(&srv, url, 1, handler, &s, NULL, NULL), 0);
	CHECK_INT(v2g_bus_client_open(&c, url), 0);
	CHECK_INT(v2g_bus_call(c, &req, &rep, 2000), 0);
	if (rep) {
		CHECK_INT(rep->body_case, V2G__V1__ENVELOPE__BODY_ERROR);
		v2g_env_free(rep);
	}
	CHECK_INT(atomic_load(&s.calls), 1);
	v2g_bus_client_close(c);
	v2g_bus_server_stop(srv);
	batch_fini(&b);
}

/* The peer count follows connections: 0 before the publisher exists, 1 once
 * it is up (whatever the order), 0 again when it goes. */
static void test_peers_watched(void)
{
	char url[64];
	nng_socket pub, sub;
	struct v2g_bus_peers *peers = NULL;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", free_port());
	CHECK_INT(v2g_bus_open_watched(&sub, V2G_BUS_SUB, url, 0, &peers), 0);
	CHECK_INT(v2g_bus_peers_count(peers), 0);
	CHECK_INT(v2g_bus_open(&pub, V2G_BUS_PUB, url, 1), 0);
	int64_t until = v2g_mono_ms() + 3000;
	while (v2g_bus_peers_count(peers) < 1 && v2g_mono_ms() < until)
		usleep(10000);
	CHECK_INT(v2g_bus_peers_count(peers), 1);
	nng_close(pub);
	until = v2g_mono_ms() + 3000;
	while (v2g_bus_peers_count(peers) > 0 && v2g_mono_ms() < until)
		usleep(10000);
	CHECK_INT(v2g_bus_peers_count(peers), 0);
	nng_close(sub);
	v2g_bus_peers_free(peers);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_peers_watched),
		HCASE(test_push_pull_inproc),
		HCASE(test_push_pull_tcp),
		HCASE(test_large_batch_inproc),
		HCASE(test_large_batch_tcp),
		HCASE(test_too_big_refused),
		HCASE(test_pub_sub_inproc),
		HCASE(test_pub_sub_tcp),
		HCASE(test_recv_timeout),
		HCASE(test_push_before_listener),
		HCASE(test_push_sync_keeps_nothing),
		HCASE(test_listen_twice_fails),
		HCASE(test_undecodable_pull_inproc),
		HCASE(test_undecodable_pull_tcp),
		HCASE(test_req_rep_inproc),
		HCASE(test_req_rep_tcp),
		HCASE(test_handler_without_reply_is_500),
		HCASE(test_second_reply_refused),
		HCASE(test_concurrent_calls),
		HCASE(test_ping_ready_fn),
		HCASE(test_call_timeout_without_server),
		HCASE(test_server_started_after_client),
		HCASE(test_slow_handler_timeout_then_next_call),
		HCASE(test_slow_handler_called_once),
		HCASE(test_server_stop_idle_is_prompt),
		HCASE(test_server_stop_answers_request_in_progress),
		HCASE(test_cancel_token),
		HCASE(test_cancel_token_is_per_call),
		HCASE(test_close_wakes_recv),
		HCASE(test_server_listen_failure),
		HCASE(test_undecodable_request_is_400),
		HCASE(test_large_request_reply),
	};
	v2g_log_init("bus-test", V2G_LOG_ERROR, 0);
	v2g_bus_set_sender("bus-test");
	return harness_main("bus", cases, HARNESS_N(cases));
}
