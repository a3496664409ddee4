#include "writer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "auditlog.h"
#include "convert.h"
#include "db.h"
#include "queue.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"
#include "write.h"

#define BACKOFF_MIN_MS  200
#define BACKOFF_MAX_MS  5000
#define RECV_TIMEOUT_MS 200
/* A write slower than this is logged as STORE-WRITE-SLOW. */
#define SLOW_WRITE_S 1.0

struct store_writer {
	nng_socket sock;
	struct store_queue *q;
	struct store_db db; /* the writer thread's connection */
	pthread_t rx, wr;
	atomic_int stop_rx;
	_Atomic int64_t drain_deadline; /* monotonic ms; 0 while running */
	atomic_int inflight;            /* 1 while the writer holds an item */
	size_t lost;                    /* written by the writer thread, read after join */

	struct v2g_metric *m_received, *m_written, *m_duration, *m_depth, *m_bad, *m_failures,
	        *m_dropped, *m_rejected;
	struct v2g_metric *m_audit_received, *m_audit_written, *m_audit_rejected, *m_audit_dropped;
};

/* A queued write: a decision, or the valid events of one audit batch. */
struct wr_item {
	v2g_env *decision; /* NULL for an audit batch */
	struct v2g_audit_event *evs;
	size_t n;
	char service[64]; /* the batch's sender */
};

static void item_free(void *p)
{
	struct wr_item *it = p;
	if (!it)
		return;
	v2g_env_free(it->decision);
	v2g_audit_events_free(it->evs, it->n);
	free(it);
}

static void update_depth(struct store_writer *w)
{
	v2g_gauge_set(w->m_depth, NULL,
	              (double)(store_queue_len(w->q) + (size_t)atomic_load(&w->inflight)));
}

static void bad_message(struct store_writer *w, const char *why, const char *sender)
{
	v2g_counter_inc(w->m_bad, NULL);
	v2g_warn("STORE-BAD-MSG", "ignored bus message from %s: %s", sender, why);
}

/* Counts it as dropped (queue full, or not written before exit). */
static void count_dropped(struct store_writer *w, const struct wr_item *it)
{
	if (it->decision)
		v2g_counter_inc(w->m_dropped, NULL);
	else
		v2g_counter_add(w->m_audit_dropped, NULL, (double)it->n);
}

/* Queues it (ownership taken). Decisions coalesce by dispatch_id; audit
 * batches never do. */
static void enqueue(struct store_writer *w, struct wr_item *it)
{
	const char *id = it->decision ? it->decision->decision->dispatch_id : NULL;
	/* Once pushed, the item is the writer thread's (it may be written and
	 * freed at once): keep what the logs and metrics below need. */
	char idbuf[128];
	size_t n = it->n;
	if (id) {
		snprintf(idbuf, sizeof idbuf, "%s", id);
	}
	enum store_push_result res;
	void *evicted = NULL;
	int rc = store_queue_push(w->q, id, it, &res, &evicted);
	if (id)
		id = idbuf;
	if (rc) {
		count_dropped(w, it);
		if (id)
			v2g_error("STORE-DROPPED", "decision %s dropped: %s", id, v2g_strerror(rc));
		else
			v2g_error("STORE-DROPPED", "%zu audit events from %s dropped: %s", it->n,
			          it->service, v2g_strerror(rc));
		item_free(it);
		return;
	}
	if (id)
		v2g_counter_inc(w->m_received, NULL);
	else
		v2g_counter_add(w->m_audit_received, NULL, (double)n);
	if (res == STORE_PUSH_COALESCED) {
		v2g_debug("STORE-COALESCED", "decision %s replaced its queued predecessor", id);
	} else if (res == STORE_PUSH_EVICTED) {
		struct wr_item *old = evicted;
		count_dropped(w, old);
		if (old->decision)
			v2g_error("STORE-QUEUE-FULL",
			          "queue full (%zu messages): dropped the oldest, dispatch %s",
			          store_queue_len(w->q), old->decision->decision->dispatch_id);
		else
			v2g_error("STORE-QUEUE-FULL",
			          "queue full (%zu messages): dropped the oldest, %zu audit events"
			          " from %s",
			          store_queue_len(w->q), old->n, old->service);
		item_free(old);
	}
	update_depth(w);
}

static void enqueue_decision(struct store_writer *w, v2g_env *env)
{
	struct wr_item *it = calloc(1, sizeof *it);
	if (!it) {
		v2g_counter_inc(w->m_dropped, NULL);
		v2g_error("STORE-DROPPED", "decision %s dropped: %s", env->decision->dispatch_id,
		          v2g_strerror(V2G_ERR_NOMEM));
		v2g_env_free(env);
		return;
	}
	it->decision = env;
	enqueue(w, it);
}

/* Validates every event of an audit batch: the bad ones are counted and
 * logged (one line per batch), the rest queued. Borrows b. */
static void receive_audit(struct store_writer *w, const V2g__V1__AuditBatch *b, const char *sender)
{
	size_t n = b->n_events_json, bad = 0;
	char why[200], first[256] = "";
	if (n == 0)
		return;
	if (n > STORE_AUDIT_BATCH_MAX) {
		v2g_counter_add(w->m_audit_rejected, "invalid", (double)n);
		v2g_warn("STORE-AUDIT-REJECTED",
		         "audit batch of %zu events from %s refused: more than %d", n, sender,
		         STORE_AUDIT_BATCH_MAX);
		return;
	}
	struct wr_item *it = calloc(1, sizeof *it);
	struct v2g_audit_event *evs = calloc(n, sizeof *evs);
	if (!it || !evs) {
		free(it);
		free(evs);
		v2g_counter_add(w->m_audit_dropped, NULL, (double)n);
		v2g_error("STORE-DROPPED", "%zu audit events from %s dropped: %s", n, sender,
		          v2g_strerror(V2G_ERR_NOMEM));
		return;
	}
	it->evs = evs;
	snprintf(it->service, sizeof it->service, "%s", sender);
	for (size_t i = 0; i < n; i++) {
		if (store_audit_decode(b->events_json[i], &evs[it->n], why, sizeof why) == 0) {
			it->n++;
			continue;
		}
		if (!bad++)
			snprintf(first, sizeof first, "event %zu: %s", i, why);
	}
	if (bad) {
		v2g_counter_add(w->m_audit_rejected, "invalid", (double)bad);
		v2g_warn("STORE-AUDIT-REJECTED", "%zu of %zu audit events from %s refused (%s)",
		         bad, n, sender, first);
	}
	if (it->n == 0) {
		item_free(it);
		return;
	}
	enqueue(w, it);
}

static void *rx_main(void *arg)
{
	struct store_writer *w = arg;
	while (!atomic_load(&w->stop_rx)) {
		v2g_env *env = NULL;
		char why[256];
		int rc = v2g_bus_recv(w->sock, &env, RECV_TIMEOUT_MS);
		if (rc == V2G_ERR_TIMEOUT)
			continue;
		if (rc == V2G_ERR_CLOSED)
			break;
		if (rc == V2G_ERR_PROTO) {
			bad_message(w, "undecodable envelope", "?");
			continue;
		}
		if (rc) {
			v2g_warn("STORE-BUS-RECV", "receive failed: %s", v2g_strerror(rc));
			continue;
		}
		if (env->body_case == V2G__V1__ENVELOPE__BODY_AUDIT && env->audit) {
			receive_audit(w, env->audit, env->sender);
		} else if (env->body_case != V2G__V1__ENVELOPE__BODY_DECISION || !env->decision) {
			snprintf(why, sizeof why,
			         "body %d is neither a decision nor an audit batch",
			         (int)env->body_case);
			bad_message(w, why, env->sender);
		} else if (store_decision_check(env->decision, why, sizeof why) != 0) {
			bad_message(w, why, env->sender);
		} else {
			enqueue_decision(w, env);
			continue;
		}
		v2g_env_free(env);
	}
	return NULL;
}

/* After a failed statement: keep the connection if it still works. */
static void after_failure(struct store_writer *w, const char *what, const char *err)
{
	if (store_db_connected(&w->db))
		v2g_warn("STORE-WRITE-FAILED", "%s not written, will retry: %s", what, err);
	else
		store_db_reset(&w->db); /* lost connection: the next attempt reconnects */
}

/* One attempt at writing d. 0 written; V2G_ERR_INVAL refused for good;
 * anything else: keep it and retry later. */
static int write_one(struct store_writer *w, const V2g__V1__DispatchDecision *d)
{
	char err[512];
	if (store_db_ensure(&w->db, err, sizeof err)) {
		v2g_counter_inc(w->m_failures, NULL);
		return V2G_ERR_UNAVAILABLE;
	}
	double t0 = v2g_mono_s();
	int rc = store_write_decision(w->db.conn, d, err, sizeof err);
	double dt = v2g_mono_s() - t0;
	if (rc == 0) {
		v2g_histogram_observe(w->m_duration, NULL, dt);
		v2g_counter_inc(w->m_written, NULL);
		if (dt > SLOW_WRITE_S)
			v2g_warn("STORE-WRITE-SLOW", "dispatch %s (%zu allocations) took %.3f s",
			         d->dispatch_id, d->n_allocations, dt);
		else
			v2g_debug("STORE-WRITE", "dispatch %s %s, %zu allocations, %.1f ms",
			          d->dispatch_id, store_status_name((int)d->status),
			          d->n_allocations, dt * 1000.0);
		return 0;
	}
	v2g_counter_inc(w->m_failures, NULL);
	if (rc == V2G_ERR_INVAL) {
		v2g_counter_inc(w->m_rejected, NULL);
		v2g_error("STORE-WRITE-REJECTED", "dispatch %s refused by PostgreSQL, dropped: %s",
		          d->dispatch_id, err);
		return rc;
	}
	char what[300];
	snprintf(what, sizeof what, "dispatch %s", d->dispatch_id);
	after_failure(w, what, err);
	return rc;
}

/* One attempt at writing an audit batch. A refused batch is written again
 * row by row, so that one row PostgreSQL cannot store does not take the
 * others with it. 0 done (written, or refused rows dropped); else retry
 * later (ON CONFLICT makes rows already written harmless). */
static int write_audit(struct store_writer *w, const struct wr_item *it)
{
	char err[512], what[128];
	size_t ins = 0;
	if (store_db_ensure(&w->db, err, sizeof err)) {
		v2g_counter_inc(w->m_failures, NULL);
		return V2G_ERR_UNAVAILABLE;
	}
	snprintf(what, sizeof what, "%zu audit events from %s", it->n, it->service);
	int rc = store_write_audit(w->db.conn, it->evs, it->n, it->service, &ins, err, sizeof err);
	v2g_counter_add(w->m_audit_written, NULL, (double)ins);
	if (rc == 0) {
		v2g_debug("STORE-WRITE", "%s: %zu written, %zu already there", what, ins,
		          it->n - ins);
		return 0;
	}
	v2g_counter_inc(w->m_failures, NULL);
	if (rc != V2G_ERR_INVAL) {
		after_failure(w, what, err);
		return rc;
	}
	for (size_t i = 0; i < it->n; i++) {
		rc = store_write_audit(w->db.conn, &it->evs[i], 1, it->service, &ins, err,
		                       sizeof err);
		v2g_counter_add(w->m_audit_written, NULL, (double)ins);
		if (rc == V2G_ERR_INVAL) {
			v2g_counter_inc(w->m_audit_rejected, "database");
			v2g_error("STORE-AUDIT-REJECTED",
			          "audit event %s from %s refused by PostgreSQL, dropped: %s",
			          it->evs[i].id, it->service, err);
		} else if (rc) {
			v2g_counter_inc(w->m_failures, NULL);
			after_failure(w, what, err);
			return rc;
		}
	}
	return 0;
}

static int draining_expired(struct store_writer *w)
{
	int64_t deadline = atomic_load(&w->drain_deadline);
	return deadline != 0 && v2g_mono_ms() >= deadline;
}

/* Sleeps ms, or less once a drain deadline passes. */
static void backoff_sleep(struct store_writer *w, int ms)
{
	int64_t until = v2g_mono_ms() + ms;
	for (;;) {
		int64_t now = v2g_mono_ms();
		if (now >= until || draining_expired(w))
			return;
		int64_t step = until - now < 50 ? until - now : 50;
		struct timespec ts = { 0, (long)step * 1000000L };
		nanosleep(&ts, NULL);
	}
}

static void *wr_main(void *arg)
{
	struct store_writer *w = arg;
	struct wr_item *cur = NULL;
	int backoff = 0;

	for (;;) {
		if (!cur) {
			void *item;
			int rc = store_queue_pop(w->q, &item, 500);
			if (rc == V2G_ERR_CLOSED)
				break;
			if (rc)
				continue;
			cur = item;
			atomic_store(&w->inflight, 1);
			update_depth(w);
		}
		if (draining_expired(w))
			break;
		int rc =
		        cur->decision ? write_one(w, cur->decision->decision) : write_audit(w, cur);
		if (rc == 0 || rc == V2G_ERR_INVAL) {
			item_free(cur);
			cur = NULL;
			atomic_store(&w->inflight, 0);
			update_depth(w);
			backoff = 0;
			continue;
		}
		backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2)
		                  : BACKOFF_MIN_MS;
		backoff_sleep(w, backoff);
	}
	/* Only a drain that ran out of time leaves messages behind. */
	w->lost = store_queue_len(w->q) + (cur ? 1 : 0);
	void *left = cur;
	do {
		struct wr_item *it = left;
		if (it && !it->decision) /* audit events lost count as dropped */
			v2g_counter_add(w->m_audit_dropped, NULL, (double)it->n);
		item_free(it);
	} while (store_queue_pop(w->q, &left, 0) == 0);
	atomic_store(&w->inflight, 0);
	return NULL;
}

int store_writer_start(struct store_writer **out, const char *dsn, const char *url, int queue_max)
{
	struct store_writer *w = calloc(1, sizeof *w);
	int rc;
	if (!w)
		return V2G_ERR_NOMEM;
	w->m_received = v2g_counter("store_decisions_received_total",
	                            "Decisions taken off the bus and queued", NULL);
	w->m_written = v2g_counter("store_decisions_written_total",
	                           "Decisions written to PostgreSQL", NULL);
	w->m_duration = v2g_histogram("store_write_duration_seconds",
	                              "Time to write one decision (transaction)", NULL,
	                              v2g_latency_buckets, v2g_latency_nbuckets);
	w->m_depth = v2g_gauge("store_queue_depth",
	                       "Messages (decisions, audit batches) waiting to be written", NULL);
	w->m_bad = v2g_counter("store_bus_decode_errors_total",
	                       "Bus messages ignored: undecodable or not a valid decision", NULL);
	w->m_audit_received = v2g_counter("store_audit_events_received_total",
	                                  "Audit events taken off the bus and queued", NULL);
	w->m_audit_written = v2g_counter("store_audit_events_written_total",
	                                 "Audit events written to PostgreSQL", NULL);
	w->m_audit_rejected = v2g_counter(
	        "store_audit_rejected_total",
	        "Audit events refused: invalid on the bus, or refused by PostgreSQL", "reason");
	w->m_audit_dropped = v2g_counter("store_audit_events_dropped_total",
	                                 "Audit events dropped: queue full, or not written"
	                                 " before exit",
	                                 NULL);
	w->m_failures = v2g_counter("store_write_failures_total",
	                            "Failed write attempts (connection or statement)", NULL);
	w->m_dropped = v2g_counter("store_decisions_dropped_total",
	                           "Decisions dropped because the queue was full", NULL);
	w->m_rejected = v2g_counter("store_decisions_rejected_total",
	                            "Decisions PostgreSQL refused as invalid data", NULL);
	v2g_gauge_set(w->m_depth, NULL, 0);

	store_db_init(&w->db, dsn, "writer", 0);
	w->q = store_queue_new((size_t)queue_max, item_free);
	if (!w->q) {
		rc = V2G_ERR_NOMEM;
		goto fail_queue;
	}
	if ((rc = v2g_bus_open(&w->sock, V2G_BUS_PULL, url, 1)) != 0)
		goto fail_sock;
	if (pthread_create(&w->wr, NULL, wr_main, w) != 0) {
		rc = V2G_ERR_NOMEM;
		goto fail_wr;
	}
	if (pthread_create(&w->rx, NULL, rx_main, w) != 0) {
		rc = V2G_ERR_NOMEM;
		goto fail_rx;
	}
	*out = w;
	return 0;

fail_rx:
	store_queue_close(w->q);
	pthread_join(w->wr, NULL);
fail_wr:
	nng_close(w->sock);
fail_sock:
	store_queue_free(w->q);
fail_queue:
	store_db_fini(&w->db);
	free(w);
	return rc;
}

size_t store_writer_stop(struct store_writer *w, int drain_ms)
{
	atomic_store(&w->stop_rx, 1);
	/* Closing the socket ends the receiver's wait at once (messages not
	 * yet received go with it, as they would after the flag). */
	nng_close(w->sock);
	pthread_join(w->rx, NULL);

	size_t pending = store_queue_len(w->q) + (size_t)atomic_load(&w->inflight);
	if (pending > 0)
		v2g_info("STORE-DRAIN", "writing %zu queued message%s before exit (up to %d ms)",
		         pending, pending == 1 ? "" : "s", drain_ms);
	atomic_store(&w->drain_deadline, v2g_mono_ms() + (drain_ms > 0 ? drain_ms : 1));
	store_queue_close(w->q);
	pthread_join(w->wr, NULL);

	size_t lost = w->lost;
	if (lost > 0)
		v2g_error("STORE-DRAIN-LOST", "%zu message%s not written before exit", lost,
		          lost == 1 ? "" : "s");
	store_db_fini(&w->db);
	store_queue_free(w->q);
	free(w);
	return lost;
}
