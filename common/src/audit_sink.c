/* Sending audit events to the store; see v2g/audit_sink.h.
 *
 * The queue is a ring of encoded events, oldest at head, each with a
 * sequence number (head_seq for ring[head]). The sender copies up to a
 * batch of events from the head, sends without holding the lock, and on
 * success removes what it sent (those still there: overflow may have
 * dropped some meanwhile, and they were delivered after all). Copies, not
 * borrowed pointers, because emit frees an event it drops.
 *
 * The PUSH socket is unbuffered (V2G_BUS_PUSH_SYNC): a send succeeds only
 * when a connected store pipe takes the message, so "sent" means handed to
 * the store's connection, and the sender's timed send is also its wait for
 * the store to come (back). nng would otherwise accept messages into its own
 * buffer with no store connected, and lose them on close. */
#include "v2g/audit_sink.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/sync.h"
#include "v2g/timeutil.h"

#define BATCH_MAX 100
/* Wait for the store per attempt: doubles from MIN while it stays away. */
#define WAIT_MIN_MS 100
#define WAIT_MAX_MS 500
/* After any other send error (message refused, out of memory). */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* AUDIT-DROPPED at most this often. */
#define DROP_LOG_GAP_MS 60000
/* The store counts as unreachable (one warning) after this long. */
#define UNREACHABLE_WARN_MS 5000

struct v2g_audit_sink {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* events queued, or stop */
	char **ring;
	size_t cap, head, n;
	uint64_t head_seq;
	uint64_t inflight_end;     /* events with seq below this are being sent (0: none) */
	uint64_t inflight_dropped; /* of those, dropped from the ring meanwhile */
	uint64_t drops_unlogged;
	int64_t drop_logged_ms; /* monotonic; 0: never */
	int stopping;
	int64_t drain_deadline; /* monotonic ms, once stopping */

	nng_socket sock;
	pthread_t thread;
	char addr[256];
	struct v2g_metric *m_events, *m_sent, *m_dropped, *m_depth;
};

/* Copies s into dst for a text log line: control characters become '?'. */
static void log_safe(char *dst, size_t cap, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 1 < cap; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	dst[i] = '\0';
}

static void log_event(const struct v2g_audit_event *ev)
{
	char action[V2G_AUDIT_ACTION_LEN], type[V2G_AUDIT_ACTOR_TYPE_LEN],
	        id[V2G_AUDIT_ACTOR_ID_LEN], target[V2G_AUDIT_TARGET_LEN];
	log_safe(action, sizeof action, ev->action);
	log_safe(type, sizeof type, ev->actor.type);
	log_safe(id, sizeof id, ev->actor.id);
	log_safe(target, sizeof target, ev->target);
	v2g_info("AUDIT", "category=%s action=%s actor=%s:%s target=%s success=%s id=%s",
	         v2g_audit_category_name(ev->category), action, type, id, target,
	         ev->success ? "true" : "false", ev->id);
}

/* Counts n lost events and logs AUDIT-DROPPED unless it did less than a
 * minute ago (then the count waits for the next line). force logs any
 * count still unlogged. Lock held. */
static void note_drops(struct v2g_audit_sink *s, uint64_t n, int force)
{
	if (n) {
		v2g_counter_add(s->m_dropped, NULL, (double)n);
		s->drops_unlogged += n;
	}
	int64_t now = v2g_mono_ms();
	if (!s->drops_unlogged ||
	    (!force && s->drop_logged_ms && now - s->drop_logged_ms < DROP_LOG_GAP_MS))
		return;
	v2g_error("AUDIT-DROPPED",
	          "%llu audit event%s dropped: queue full (%zu events) while the store at %s is"
	          " unreachable",
	          (unsigned long long)s->drops_unlogged, s->drops_unlogged == 1 ? "" : "s", s->cap,
	          s->addr);
	s->drops_unlogged = 0;
	s->drop_logged_ms = now;
}

/* Frees the head event. Lock held. */
static void pop_head(struct v2g_audit_sink *s)
{
	free(s->ring[s->head]);
	s->ring[s->head] = NULL;
	s->head = (s->head + 1) % s->cap;
	s->n--;
	s->head_seq++;
}

int v2g_audit_sink_emit(struct v2g_audit_sink *s, const struct v2g_audit_event *ev)
{
	if (!s || !ev)
		return V2G_ERR_INVAL;
	char *json = v2g_audit_event_encode(ev);
	if (!json)
		return V2G_ERR_NOMEM;
	log_event(ev);
	v2g_counter_inc(s->m_events, v2g_audit_category_name(ev->category));

	pthread_mutex_lock(&s->mu);
	if (s->n == s->cap) {
		/* An event being sent right now is only lost if that send fails. */
		if (s->head_seq < s->inflight_end)
			s->inflight_dropped++;
		else
			note_drops(s, 1, 0);
		pop_head(s);
	}
	s->ring[(s->head + s->n) % s->cap] = json;
	s->n++;
	v2g_gauge_set(s->m_depth, NULL, (double)s->n);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return V2G_OK;
}

size_t v2g_audit_sink_pending(struct v2g_audit_sink *s)
{
	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	size_t n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* Copies up to BATCH_MAX events from the head into batch[] and marks them
 * in flight. Lock held. Returns how many, or 0 on allocation failure (with
 * nothing copied). */
static size_t take_batch(struct v2g_audit_sink *s, char **batch)
{
	size_t k = s->n < BATCH_MAX ? s->n : BATCH_MAX;
	for (size_t i = 0; i < k; i++) {
		batch[i] = strdup(s->ring[(s->head + i) % s->cap]);
		if (!batch[i]) {
			while (i > 0)
				free(batch[--i]);
			return 0;
		}
	}
	s->inflight_end = s->head_seq + k;
	s->inflight_dropped = 0;
	return k;
}

static int send_batch(struct v2g_audit_sink *s, char **batch, size_t k, int timeout_ms)
{
	V2g__V1__AuditBatch ab = V2G__V1__AUDIT_BATCH__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	ab.n_events_json = k;
	ab.events_json = batch;
	env.body_case = V2G__V1__ENVELOPE__BODY_AUDIT;
	env.audit = &ab;
	return v2g_bus_send(s->sock, &env, timeout_ms);
}

/* Waits (at most ms) until the pipe that took the last message is ready
 * again, i.e. that message has been written out: closing the socket before
 * would abort the write. The socket's send fd is readable while a pipe is
 * ready (the socket is unbuffered). */
static void wait_flushed(struct v2g_audit_sink *s, int ms)
{
	int fd;
	if (ms <= 0 || nng_socket_get_int(s->sock, NNG_OPT_SENDFD, &fd) != 0)
		return;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (poll(&p, 1, ms) < 0 && errno == EINTR)
		;
}

static void *sender_main(void *arg)
{
	struct v2g_audit_sink *s = arg;
	char *batch[BATCH_MAX];
	int wait_ms = WAIT_MIN_MS, backoff = 0, warned = 0, unflushed = 0;
	int64_t down_since = 0;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->n == 0) {
			if (s->stopping)
				break;
			v2g_cond_wait_ms(&s->cv, &s->mu, 1000);
			note_drops(s, 0, 0); /* a count left from the last minute */
			continue;
		}
		int64_t now = v2g_mono_ms();
		int timeout = wait_ms;
		if (s->stopping) {
			if (now >= s->drain_deadline)
				break;
			if (s->drain_deadline - now < timeout)
				timeout = (int)(s->drain_deadline - now);
		}
		size_t k = take_batch(s, batch);
		pthread_mutex_unlock(&s->mu);

		int rc = k ? send_batch(s, batch, k, timeout) : V2G_ERR_NOMEM;
		for (size_t i = 0; i < k; i++)
			free(batch[i]);
		now = v2g_mono_ms();

		pthread_mutex_lock(&s->mu);
		if (rc == V2G_OK) {
			while (s->n && s->head_seq < s->inflight_end)
				pop_head(s);
			v2g_counter_add(s->m_sent, NULL, (double)k);
			v2g_gauge_set(s->m_depth, NULL, (double)s->n);
			if (warned)
				v2g_info("AUDIT-STORE-UP",
				         "store at %s reachable again; %zu audit"
				         " event%s still queued",
				         s->addr, s->n, s->n == 1 ? "" : "s");
			wait_ms = WAIT_MIN_MS;
			backoff = warned = 0;
			down_since = 0;
			unflushed = 1;
		} else {
			note_drops(s, s->inflight_dropped, 0);
			if (!down_since)
				down_since = now;
			if (!warned && now - down_since >= UNREACHABLE_WARN_MS) {
				v2g_warn("AUDIT-STORE-DOWN",
				         "audit events not handed to the store at %s: %s; %zu "
				         "queued,"
				         " retrying",
				         s->addr, v2g_strerror(rc), s->n);
				warned = 1;
			}
			if (rc == V2G_ERR_TIMEOUT) {
				/* The timed send was the wait: try again at once. */
				wait_ms = wait_ms * 2 > WAIT_MAX_MS ? WAIT_MAX_MS : wait_ms * 2;
			} else {
				backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
				                                                  : backoff * 2)
				                  : BACKOFF_MIN_MS;
				int64_t ms = backoff;
				if (s->stopping && s->drain_deadline - now < ms)
					ms = s->drain_deadline - now;
				v2g_cond_wait_ms(&s->cv, &s->mu, ms); /* stop cuts it short */
			}
		}
		s->inflight_end = 0;
		s->inflight_dropped = 0;
	}
	int64_t left = s->stopping ? s->drain_deadline - v2g_mono_ms() : 0;
	pthread_mutex_unlock(&s->mu);
	if (unflushed)
		wait_flushed(s, (int)(left > 0 ? left : 0));
	return NULL;
}

int v2g_audit_sink_start(struct v2g_audit_sink **out, const char *addr, size_t queue_max)
{
	int rc;
	if (!out || !addr)
		return V2G_ERR_INVAL;
	struct v2g_audit_sink *s = calloc(1, sizeof(*s));
	if (!s)
		return V2G_ERR_NOMEM;
	s->cap = queue_max ? queue_max : V2G_AUDIT_SINK_DEFAULT_QUEUE;
	s->ring = calloc(s->cap, sizeof(*s->ring));
	if (!s->ring) {
		rc = V2G_ERR_NOMEM;
		goto fail_ring;
	}
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	s->m_events = v2g_counter("audit_events_total", "Audit events recorded", "category");
	s->m_sent =
	        v2g_counter("audit_events_sent_total", "Audit events handed to the store", NULL);
	s->m_dropped =
	        v2g_counter("audit_events_dropped_total",
	                    "Audit events lost: queue full while the store was unreachable", NULL);
	s->m_depth = v2g_gauge("audit_queue_depth", "Audit events waiting for the store", NULL);
	v2g_gauge_set(s->m_depth, NULL, 0);

	if (pthread_mutex_init(&s->mu, NULL)) {
		rc = V2G_ERR_NOMEM;
		goto fail_mu;
	}
	if (v2g_cond_init_mono(&s->cv)) {
		rc = V2G_ERR_NOMEM;
		goto fail_cv;
	}
	/* Unbuffered (see the top of this file). */
	if ((rc = v2g_bus_open(&s->sock, V2G_BUS_PUSH_SYNC, addr, 0)) != 0)
		goto fail_sock;
	if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
		rc = V2G_ERR_NOMEM;
		goto fail_thread;
	}
	*out = s;
	return V2G_OK;

fail_thread:
	nng_close(s->sock);
fail_sock:
	pthread_cond_destroy(&s->cv);
fail_cv:
	pthread_mutex_destroy(&s->mu);
fail_mu:
	free(s->ring);
fail_ring:
	free(s);
	return rc;
}

void v2g_audit_sink_stop(struct v2g_audit_sink *s, int drain_ms)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	s->drain_deadline = v2g_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	nng_close(s->sock);

	note_drops(s, 0, 1); /* any count the minute's limit held back */
	if (s->n) {
		v2g_counter_add(s->m_dropped, NULL, (double)s->n);
		v2g_error("AUDIT-LOST",
		          "%zu audit event%s not handed to the store at %s before exit", s->n,
		          s->n == 1 ? "" : "s", s->addr);
	}
	while (s->n)
		pop_head(s);
	v2g_gauge_set(s->m_depth, NULL, 0);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->ring);
	free(s);
}
