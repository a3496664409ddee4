#include "v2g/bus.h"

#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

static char bus_sender[64] = "v2g";

void v2g_bus_set_sender(const char *service)
{
	snprintf(bus_sender, sizeof(bus_sender), "%s", service);
}

static struct v2g_metric *m_decode_errors(void)
{
	static struct v2g_metric *m;
	if (!m)
		m = v2g_counter("bus_decode_errors_total",
		                "Bus messages that could not be decoded as an Envelope", NULL);
	return m;
}

static int map_nng(int rv)
{
	switch (rv) {
	case 0: return V2G_OK;
	case NNG_ETIMEDOUT:
	case NNG_EAGAIN: return V2G_ERR_TIMEOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED: return V2G_ERR_CLOSED;
	case NNG_ENOMEM: return V2G_ERR_NOMEM;
	case NNG_EMSGSIZE: return V2G_ERR_TOOBIG;
	default: return V2G_ERR_IO;
	}
}

/* Applies the options every socket gets. */
static void tune(nng_socket s)
{
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, V2G_BUS_MAX_MSG);
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 2000);
}

struct v2g_bus_peers {
	atomic_int n;
};

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct v2g_bus_peers *peers = arg;
	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&peers->n, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&peers->n, 1);
}

static int peers_watch(nng_socket s, struct v2g_bus_peers **out)
{
	struct v2g_bus_peers *p = calloc(1, sizeof(*p));
	int rv;
	if (!p)
		return V2G_ERR_NOMEM;
	atomic_init(&p->n, 0);
	if ((rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, on_pipe, p)) != 0 ||
	    (rv = nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, on_pipe, p)) != 0) {
		free(p);
		return map_nng(rv);
	}
	*out = p;
	return V2G_OK;
}

int v2g_bus_peers_count(struct v2g_bus_peers *p)
{
	return p ? atomic_load(&p->n) : 0;
}

void v2g_bus_peers_free(struct v2g_bus_peers *p)
{
	free(p);
}

int v2g_bus_open(nng_socket *s, enum v2g_bus_kind kind, const char *url, int listen)
{
	return v2g_bus_open_watched(s, kind, url, listen, NULL);
}

int v2g_bus_open_watched(nng_socket *s, enum v2g_bus_kind kind, const char *url, int listen,
                         struct v2g_bus_peers **peers)
{
	int rv;
	switch (kind) {
	case V2G_BUS_PUB: rv = nng_pub0_open(s); break;
	case V2G_BUS_SUB: rv = nng_sub0_open(s); break;
	case V2G_BUS_PUSH:
	case V2G_BUS_PUSH_SYNC: rv = nng_push0_open(s); break;
	case V2G_BUS_PULL: rv = nng_pull0_open(s); break;
	default: return V2G_ERR_INVAL;
	}
	if (rv)
		return map_nng(rv);
	tune(*s);
	if (peers && (rv = peers_watch(*s, peers)) != 0) {
		nng_close(*s);
		return rv;
	}
	if (kind == V2G_BUS_SUB)
		nng_socket_set(*s, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	if (kind == V2G_BUS_PUSH || kind == V2G_BUS_PUB)
		nng_socket_set_int(*s, NNG_OPT_SENDBUF, 1024);
	if (kind == V2G_BUS_PUSH_SYNC && (rv = nng_socket_set_int(*s, NNG_OPT_SENDBUF, 0)) != 0) {
		nng_close(*s);
		return map_nng(rv);
	}
	/* Pull carries what must arrive; a lagging subscriber may drop telemetry
	 * rather than hold gigabytes of batches. */
	if (kind == V2G_BUS_PULL)
		nng_socket_set_int(*s, NNG_OPT_RECVBUF, 1024);
	if (kind == V2G_BUS_SUB)
		nng_socket_set_int(*s, NNG_OPT_RECVBUF, 64);
	rv = listen ? nng_listen(*s, url, NULL, 0) : nng_dial(*s, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv) {
		v2g_error("BUS-OPEN", "%s %s: %s", listen ? "listen" : "dial", url,
		          nng_strerror(rv));
		nng_close(*s);
		return map_nng(rv);
	}
	return V2G_OK;
}

/* Packs env into a new nng message. */
static int pack(v2g_env *env, nng_msg **out)
{
	env->version = 1;
	env->sender = bus_sender;
	env->sent_ms = v2g_now_ms();
	size_t n = v2g__v1__envelope__get_packed_size(env);
	nng_msg *m;
	if (n > V2G_BUS_MAX_MSG)
		return V2G_ERR_TOOBIG;
	if (nng_msg_alloc(&m, n))
		return V2G_ERR_NOMEM;
	v2g__v1__envelope__pack(env, nng_msg_body(m));
	*out = m;
	return V2G_OK;
}

static int unpack(nng_msg *m, v2g_env **out)
{
	v2g_env *e = v2g__v1__envelope__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	if (!e) {
		v2g_counter_inc(m_decode_errors(), NULL);
		return V2G_ERR_PROTO;
	}
	*out = e;
	return V2G_OK;
}

int v2g_bus_send(nng_socket s, v2g_env *env, int timeout_ms)
{
	nng_msg *m;
	int rc = pack(env, &m);
	if (rc)
		return rc;
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO,
	                  timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
	int rv = nng_sendmsg(s, m, 0);
	if (rv) {
		nng_msg_free(m);
		return map_nng(rv);
	}
	return V2G_OK;
}

int v2g_bus_recv(nng_socket s, v2g_env **out, int timeout_ms)
{
	nng_msg *m;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO,
	                  timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
	int rv = nng_recvmsg(s, &m, 0);
	if (rv)
		return map_nng(rv);
	return unpack(m, out);
}

void v2g_env_free(v2g_env *env)
{
	if (env)
		v2g__v1__envelope__free_unpacked(env, NULL);
}

/* --- cancel tokens ------------------------------------------------------ */

/* One operation in progress under a token (on its caller's stack). */
struct cancel_slot {
	nng_aio *aio;
	struct cancel_slot *next;
};

struct v2g_bus_cancel {
	pthread_mutex_t mu;
	int fired;
	struct cancel_slot *ops;
};

int v2g_bus_cancel_new(struct v2g_bus_cancel **out)
{
	struct v2g_bus_cancel *t = calloc(1, sizeof(*t));
	if (!t)
		return V2G_ERR_NOMEM;
	if (pthread_mutex_init(&t->mu, NULL)) {
		free(t);
		return V2G_ERR_NOMEM;
	}
	*out = t;
	return V2G_OK;
}

void v2g_bus_cancel_fire(struct v2g_bus_cancel *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->fired = 1;
	/* The aios have no callback: cancelling only wakes their waiters. */
	for (struct cancel_slot *o = t->ops; o; o = o->next)
		nng_aio_cancel(o->aio);
	pthread_mutex_unlock(&t->mu);
}

int v2g_bus_cancel_fired(struct v2g_bus_cancel *t)
{
	if (!t)
		return 0;
	pthread_mutex_lock(&t->mu);
	int fired = t->fired;
	pthread_mutex_unlock(&t->mu);
	return fired;
}

void v2g_bus_cancel_free(struct v2g_bus_cancel *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* nng 1.5 has no synchronous context send/receive: an aio that we wait on.
 * Under a token the operation starts with the token's lock held, so a fire
 * either finds it registered (and cancels it) or comes first (and it never
 * starts). Returns an nng code; NNG_ECANCELED once the token fired. */
static int ctx_run(nng_ctx ctx, nng_aio *aio, int send, struct v2g_bus_cancel *t)
{
	struct cancel_slot slot = { aio, NULL };
	if (t) {
		pthread_mutex_lock(&t->mu);
		if (t->fired) {
			pthread_mutex_unlock(&t->mu);
			return NNG_ECANCELED;
		}
		slot.next = t->ops;
		t->ops = &slot;
	}
	if (send)
		nng_ctx_send(ctx, aio);
	else
		nng_ctx_recv(ctx, aio);
	if (t)
		pthread_mutex_unlock(&t->mu);
	nng_aio_wait(aio);
	if (t) {
		pthread_mutex_lock(&t->mu);
		for (struct cancel_slot **p = &t->ops; *p; p = &(*p)->next) {
			if (*p == &slot) {
				*p = slot.next;
				break;
			}
		}
		pthread_mutex_unlock(&t->mu);
	}
	return nng_aio_result(aio);
}

static int ctx_sendmsg(nng_ctx ctx, nng_msg *m, nng_duration t, struct v2g_bus_cancel *cancel)
{
	nng_aio *aio;
	int rv = nng_aio_alloc(&aio, NULL, NULL);
	if (rv)
		return rv;
	nng_aio_set_timeout(aio, t);
	nng_aio_set_msg(aio, m);
	rv = ctx_run(ctx, aio, 1, cancel); /* on failure the message is still ours */
	nng_aio_free(aio);
	return rv;
}

static int ctx_recvmsg(nng_ctx ctx, nng_msg **m, nng_duration t, struct v2g_bus_cancel *cancel)
{
	nng_aio *aio;
	int rv = nng_aio_alloc(&aio, NULL, NULL);
	if (rv)
		return rv;
	nng_aio_set_timeout(aio, t);
	rv = ctx_run(ctx, aio, 0, cancel);
	if (rv == 0)
		*m = nng_aio_get_msg(aio);
	nng_aio_free(aio);
	return rv;
}

/* --- client ----------------------------------------------------------- */

struct v2g_bus_client {
	nng_socket sock;
	char url[256];
};

int v2g_bus_client_open(struct v2g_bus_client **out, const char *url)
{
	struct v2g_bus_client *c = calloc(1, sizeof(*c));
	int rv;
	if (!c)
		return V2G_ERR_NOMEM;
	snprintf(c->url, sizeof(c->url), "%s", url);
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		free(c);
		return map_nng(rv);
	}
	tune(c->sock);
	/* No timed resend: a resent slow request would run twice (one signal,
	 * two dispatches). nng still resends a request whose connection dropped,
	 * once a new one is up. */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if ((rv = nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		v2g_error("BUS-OPEN", "dial %s: %s", url, nng_strerror(rv));
		nng_close(c->sock);
		free(c);
		return map_nng(rv);
	}
	*out = c;
	return V2G_OK;
}

void v2g_bus_client_close(struct v2g_bus_client *c)
{
	if (!c)
		return;
	nng_close(c->sock);
	free(c);
}

int v2g_bus_call(struct v2g_bus_client *c, v2g_env *req, v2g_env **rep, int timeout_ms)
{
	return v2g_bus_call_cancellable(c, req, rep, timeout_ms, NULL);
}

int v2g_bus_call_cancellable(struct v2g_bus_client *c, v2g_env *req, v2g_env **rep, int timeout_ms,
                             struct v2g_bus_cancel *cancel)
{
	nng_ctx ctx;
	nng_msg *m;
	int rv, rc;

	if ((rc = pack(req, &m)) != 0)
		return rc;
	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
		nng_msg_free(m);
		return map_nng(rv);
	}
	nng_duration t = timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms;
	if ((rv = ctx_sendmsg(ctx, m, t, cancel)) != 0) {
		nng_msg_free(m);
		nng_ctx_close(ctx);
		return map_nng(rv);
	}
	rv = ctx_recvmsg(ctx, &m, t, cancel);
	nng_ctx_close(ctx);
	if (rv)
		return map_nng(rv);
	return unpack(m, rep);
}

int v2g_bus_ping(struct v2g_bus_client *c, int timeout_ms, int *ready)
{
	return v2g_bus_ping_cancellable(c, timeout_ms, ready, NULL);
}

int v2g_bus_ping_cancellable(struct v2g_bus_client *c, int timeout_ms, int *ready,
                             struct v2g_bus_cancel *cancel)
{
	V2g__V1__Ping ping = V2G__V1__PING__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	req.body_case = V2G__V1__ENVELOPE__BODY_PING;
	req.ping = &ping;
	int rc = v2g_bus_call_cancellable(c, &req, &rep, timeout_ms, cancel);
	if (rc)
		return rc;
	if (rep->body_case != V2G__V1__ENVELOPE__BODY_PONG) {
		v2g_env_free(rep);
		return V2G_ERR_PROTO;
	}
	if (ready)
		*ready = rep->pong->ready;
	v2g_env_free(rep);
	return V2G_OK;
}

/* --- server ----------------------------------------------------------- */

struct v2g_bus_reply {
	nng_ctx ctx;
	int sent;
};

struct v2g_bus_server {
	nng_socket sock;
	int nworkers;
	pthread_t *threads;
	v2g_bus_handler fn;
	void *arg;
	int (*ready_fn)(void *);
	void *ready_arg;
	/* Fired by stop: ends the workers' waits for a request (never their
	 * replies, which go without it). */
	struct v2g_bus_cancel *stop;
	char url[256];
};

int v2g_bus_reply_send(struct v2g_bus_reply *rep, v2g_env *env)
{
	nng_msg *m;
	int rc;
	if (rep->sent)
		return V2G_ERR_INVAL;
	rep->sent = 1;
	if ((rc = pack(env, &m)) != 0)
		return rc;
	int rv = ctx_sendmsg(rep->ctx, m, 5000, NULL);
	if (rv) {
		nng_msg_free(m);
		return map_nng(rv);
	}
	return V2G_OK;
}

int v2g_bus_reply_error(struct v2g_bus_reply *rep, int code, const char *msg)
{
	V2g__V1__Error e = V2G__V1__ERROR__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	e.code = code;
	e.message = (char *)(msg ? msg : "");
	env.body_case = V2G__V1__ENVELOPE__BODY_ERROR;
	env.error = &e;
	return v2g_bus_reply_send(rep, &env);
}

static void *server_worker(void *arg)
{
	struct v2g_bus_server *s = arg;
	struct v2g_bus_reply rep;

	if (nng_ctx_open(&rep.ctx, s->sock) != 0)
		return NULL;
	for (;;) {
		nng_msg *m;
		v2g_env *req;
		/* No timeout: stop wakes the wait. */
		int rv = ctx_recvmsg(rep.ctx, &m, NNG_DURATION_INFINITE, s->stop);
		if (rv)
			break; /* stopping, or closed */
		rep.sent = 0;
		if (unpack(m, &req) != V2G_OK) {
			v2g_warn("BUS-BAD-MSG", "%s: undecodable request", s->url);
			v2g_bus_reply_error(&rep, 400, "undecodable request");
			continue;
		}
		if (req->body_case == V2G__V1__ENVELOPE__BODY_PING) {
			V2g__V1__Pong pong = V2G__V1__PONG__INIT;
			v2g_env env = V2G__V1__ENVELOPE__INIT;
			pong.service = bus_sender;
			pong.ready = s->ready_fn ? s->ready_fn(s->ready_arg) : 1;
			env.body_case = V2G__V1__ENVELOPE__BODY_PONG;
			env.pong = &pong;
			v2g_bus_reply_send(&rep, &env);
		} else {
			s->fn(s->arg, req, &rep);
			if (!rep.sent)
				v2g_bus_reply_error(&rep, 500, "request not handled");
		}
		v2g_env_free(req);
	}
	nng_ctx_close(rep.ctx);
	return NULL;
}

int v2g_bus_server_start(struct v2g_bus_server **out, const char *url, int nworkers,
                         v2g_bus_handler fn, void *arg, int (*ready_fn)(void *), void *ready_arg)
{
	struct v2g_bus_server *s = calloc(1, sizeof(*s));
	int rv;
	if (!s)
		return V2G_ERR_NOMEM;
	s->nworkers = nworkers > 0 ? nworkers : 1;
	s->fn = fn;
	s->arg = arg;
	s->ready_fn = ready_fn;
	s->ready_arg = ready_arg;
	snprintf(s->url, sizeof(s->url), "%s", url);
	s->threads = calloc((size_t)s->nworkers, sizeof(pthread_t));
	if (!s->threads || v2g_bus_cancel_new(&s->stop) != V2G_OK) {
		free(s->threads);
		free(s);
		return V2G_ERR_NOMEM;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0)
		goto fail_free;
	tune(s->sock);
	if ((rv = nng_listen(s->sock, url, NULL, 0)) != 0) {
		v2g_error("BUS-OPEN", "listen %s: %s", url, nng_strerror(rv));
		goto fail_close;
	}
	for (int i = 0; i < s->nworkers; i++) {
		if (pthread_create(&s->threads[i], NULL, server_worker, s) != 0) {
			s->nworkers = i;
			v2g_bus_server_stop(s);
			return V2G_ERR_IO;
		}
	}
	*out = s;
	return V2G_OK;
fail_close:
	nng_close(s->sock);
fail_free:
	v2g_bus_cancel_free(s->stop);
	free(s->threads);
	free(s);
	return map_nng(rv);
}

void v2g_bus_server_stop(struct v2g_bus_server *s)
{
	if (!s)
		return;
	/* Idle workers return at once; a busy one finishes its handler and
	 * reply, then finds the token fired. */
	v2g_bus_cancel_fire(s->stop);
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->threads[i], NULL);
	nng_close(s->sock);
	v2g_bus_cancel_free(s->stop);
	free(s->threads);
	free(s);
}
