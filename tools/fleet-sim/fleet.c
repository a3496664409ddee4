/* Fleet engine of the simulator; see fleet.h for the threading model. */
#include "fleet.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "v2g/json.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/timeutil.h"
#include "v2g/sync.h"

/* MQTT contract defaults (DESIGN.md). */
#define TOPIC_VEHICLE           "vehicle/"
#define TOPIC_COMMAND_SUFFIX    "/command"
#define TOPIC_COMMAND_WILDCARD  "vehicle/+/command"
#define TOPIC_TELEMETRY_REQUEST "fleet/telemetry/request"

#define RECONNECT_MIN_MS    200
#define RECONNECT_MAX_MS    10000
#define FLUSH_ON_STOP_MS    1000
#define DISCONNECT_WAIT_MS  2000
#define MAX_IDLE_WAIT_MS    100
#define BAD_INPUT_LOG_EVERY 1000

enum ev_type {
	EV_CONNECTED,      /* first connect or automatic reconnect */
	EV_CONNECT_FAILED, /* an MQTTAsync_connect we issued failed */
	EV_LOST,           /* connection lost; paho reconnects by itself */
	EV_SUBSCRIBED,
	EV_SUBSCRIBE_FAILED,
	EV_MESSAGE,      /* topic in text, payload/len */
	EV_DISCONNECTED, /* our MQTTAsync_disconnect completed */
};

/* Filled by a paho callback, consumed and freed by the engine thread. */
struct event {
	struct event *next;
	enum ev_type type;
	int conn;
	int code;
	char *text;
	char *payload;
	size_t len;
};

enum job_kind { JOB_STATE, JOB_ACK, JOB_TELEMETRY };

struct job {
	int vehicle;
	enum job_kind kind;
	char *payload; /* JOB_ACK / JOB_TELEMETRY: rendered JSON, owned; JOB_STATE: NULL */
};

/* Growable FIFO ring. */
struct jobq {
	struct job *v;
	size_t head, len, cap;
};

struct fleet;

struct conn {
	struct fleet *f;
	int n;
	MQTTAsync cli;
	char client_id[64];
	atomic_int inflight; /* QoS 1 publishes not yet confirmed */
	int connected;       /* engine's view, from events */
	int connecting;      /* our MQTTAsync_connect is pending */
	int ever_connected;  /* from then on paho reconnects by itself */
	int64_t next_attempt_ms;
	int backoff_ms;
	int subscriber;
	int need_subscribe;
	int64_t subscribe_at_ms;
	int disconnected;  /* shutdown: disconnect completed */
	int burst_pending; /* initial burst waits for the command subscription */
	struct jobq prio;  /* acks, telemetry replies */
	struct jobq bulk;  /* periodic and burst states */
};

struct ack_timer {
	int64_t due_ms;
	int vehicle;
	int accepted;
	const char *reason;
	char dispatch_id[SIM_DISPATCH_ID_MAX];
};

struct stats {
	unsigned long states, commands, acks, rejected, silent, telemetry;
	unsigned long ignored, bad, dropped, skipped;
};

struct fleet {
	const struct sim_opts *o;
	int n;
	struct sim_vehicle *veh;
	unsigned char *state_queued;
	struct sim_rng rng;
	struct conn *conns;
	int nconn;

	pthread_mutex_t mu; /* guards the event list */
	pthread_cond_t cv;
	struct event *ev_head, *ev_tail;
	int wake;
	atomic_int backpressured; /* engine waits for a window to open */
	atomic_ulong pub_failed;
	atomic_ulong cb_dropped; /* events lost to ENOMEM in callbacks */

	int subscribed;                          /* connection 0 holds the command subscription */
	char last_dispatch[SIM_DISPATCH_ID_MAX]; /* of the last command logged at info */

	struct ack_timer *heap;
	size_t heap_len, heap_cap;

	double interval_ms; /* state period, 0 = none */
	int64_t cycle_base_ms;
	int cursor;

	struct stats st, st_prev;
	int64_t next_stats_ms;
	int64_t t_stats_prev;
};

/* ------------------------------------------------------------ job queues */

static int jobq_push(struct jobq *q, const struct job *j)
{
	if (q->len == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 256, i;
		struct job *nv = malloc(ncap * sizeof(*nv));
		if (!nv)
			return V2G_ERR_NOMEM;
		for (i = 0; i < q->len; i++)
			nv[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = nv;
		q->cap = ncap;
		q->head = 0;
	}
	q->v[(q->head + q->len) % q->cap] = *j;
	q->len++;
	return 0;
}

static struct job *jobq_peek(struct jobq *q)
{
	return q->len ? &q->v[q->head] : NULL;
}

static void jobq_pop(struct jobq *q)
{
	q->head = (q->head + 1) % q->cap;
	q->len--;
}

static void jobq_fini(struct jobq *q)
{
	while (q->len) {
		free(jobq_peek(q)->payload);
		jobq_pop(q);
	}
	free(q->v);
	memset(q, 0, sizeof(*q));
}

/* ------------------------------------------------------------ ack timers */

static int heap_push(struct fleet *f, const struct ack_timer *t)
{
	size_t i;

	if (f->heap_len == f->heap_cap) {
		size_t ncap = f->heap_cap ? f->heap_cap * 2 : 1024;
		struct ack_timer *nh = realloc(f->heap, ncap * sizeof(*nh));
		if (!nh)
			return V2G_ERR_NOMEM;
		f->heap = nh;
		f->heap_cap = ncap;
	}
	i = f->heap_len++;
	f->heap[i] = *t;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		struct ack_timer tmp;
		if (f->heap[p].due_ms <= f->heap[i].due_ms)
			break;
		tmp = f->heap[p];
		f->heap[p] = f->heap[i];
		f->heap[i] = tmp;
		i = p;
	}
	return 0;
}

static void heap_pop(struct fleet *f, struct ack_timer *out)
{
	size_t i = 0;

	*out = f->heap[0];
	f->heap[0] = f->heap[--f->heap_len];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct ack_timer tmp;
		if (l < f->heap_len && f->heap[l].due_ms < f->heap[m].due_ms)
			m = l;
		if (r < f->heap_len && f->heap[r].due_ms < f->heap[m].due_ms)
			m = r;
		if (m == i)
			break;
		tmp = f->heap[m];
		f->heap[m] = f->heap[i];
		f->heap[i] = tmp;
		i = m;
	}
}

/* ------------------------------------------------------------ paho callbacks
 * They run on paho's threads: copy, enqueue, return. Nothing else. */

static void event_push(struct fleet *f, struct event *e)
{
	pthread_mutex_lock(&f->mu);
	if (f->ev_tail)
		f->ev_tail->next = e;
	else
		f->ev_head = e;
	f->ev_tail = e;
	f->wake = 1;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void event_post(struct conn *c, enum ev_type type, int code, const char *text)
{
	struct event *e = calloc(1, sizeof(*e));

	if (!e || (text && !(e->text = strdup(text)))) {
		free(e);
		atomic_fetch_add(&c->f->cb_dropped, 1);
		return;
	}
	e->type = type;
	e->conn = c->n;
	e->code = code;
	event_push(c->f, e);
}

static void on_connected(void *ctx, char *cause)
{
	event_post(ctx, EV_CONNECTED, 0, cause);
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *resp)
{
	event_post(ctx, EV_CONNECT_FAILED, resp ? resp->code : 0,
	           resp && resp->message ? resp->message : NULL);
}

static void on_connection_lost(void *ctx, char *cause)
{
	event_post(ctx, EV_LOST, 0, cause);
}

static void on_subscribe_ok(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	event_post(ctx, EV_SUBSCRIBED, 0, NULL);
}

static void on_subscribe_failure(void *ctx, MQTTAsync_failureData *resp)
{
	event_post(ctx, EV_SUBSCRIBE_FAILED, resp ? resp->code : 0, NULL);
}

static void on_disconnect_done(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	event_post(ctx, EV_DISCONNECTED, 0, NULL);
}

static void on_disconnect_failure(void *ctx, MQTTAsync_failureData *resp)
{
	event_post(ctx, EV_DISCONNECTED, resp ? resp->code : -1, NULL);
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct conn *c = ctx;
	struct event *e = calloc(1, sizeof(*e));
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);

	if (e && (e->text = malloc(tlen + 1)) && (e->payload = malloc((size_t)m->payloadlen + 1))) {
		memcpy(e->text, topic, tlen);
		e->text[tlen] = '\0';
		memcpy(e->payload, m->payload, (size_t)m->payloadlen);
		e->payload[m->payloadlen] = '\0';
		e->len = (size_t)m->payloadlen;
		e->type = EV_MESSAGE;
		e->conn = c->n;
		event_push(c->f, e);
	} else {
		if (e) {
			free(e->text);
			free(e);
		}
		atomic_fetch_add(&c->f->cb_dropped, 1);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

/* Publish confirmed (PUBACK) or failed: one slot of the window frees up.
 * Wakes the engine once when it is waiting for room. */
static void pub_done(struct conn *c)
{
	int left = atomic_fetch_sub(&c->inflight, 1) - 1;

	if (left <= c->f->o->window / 2 && atomic_exchange(&c->f->backpressured, 0)) {
		pthread_mutex_lock(&c->f->mu);
		c->f->wake = 1;
		pthread_cond_signal(&c->f->cv);
		pthread_mutex_unlock(&c->f->mu);
	}
}

static void on_publish_ok(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	pub_done(ctx);
}

static void on_publish_failure(void *ctx, MQTTAsync_failureData *resp)
{
	struct conn *c = ctx;

	(void)resp;
	atomic_fetch_add(&c->f->pub_failed, 1);
	pub_done(c);
}

/* ------------------------------------------------------------ connections */

static void conn_connect(struct fleet *f, struct conn *c, int64_t now)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	int rc;

	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.MQTTVersion = MQTTVERSION_3_1_1;
	/* paho's default maxInflight (65535) never limits us: our own window
	 * (far below the 65535 message ids) does. */
	co.maxInflight = f->o->window + 100;
	co.connectTimeout = 5;
	co.automaticReconnect = 1;
	co.minRetryInterval = 1;
	co.maxRetryInterval = RECONNECT_MAX_MS / 1000;
	co.username = f->o->username;
	co.password = f->o->password;
	co.onFailure = on_connect_failure;
	co.context = c;
	rc = MQTTAsync_connect(c->cli, &co);
	if (rc == MQTTASYNC_SUCCESS) {
		c->connecting = 1;
		return;
	}
	v2g_warn("SIM-CONNECT-FAILED",
	         "connection %d: MQTTAsync_connect refused (%d), retry in %d ms", c->n, rc,
	         c->backoff_ms);
	c->next_attempt_ms = now + c->backoff_ms;
	c->backoff_ms = c->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : c->backoff_ms * 2;
}

static void conn_subscribe(struct fleet *f, struct conn *c, int64_t now)
{
	char *topics[2] = { TOPIC_COMMAND_WILDCARD, TOPIC_TELEMETRY_REQUEST };
	int qos[2] = { 1, 1 };
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	(void)f;
	ro.onSuccess = on_subscribe_ok;
	ro.onFailure = on_subscribe_failure;
	ro.context = c;
	rc = MQTTAsync_subscribeMany(c->cli, 2, topics, qos, &ro);
	c->need_subscribe = 0;
	if (rc != MQTTASYNC_SUCCESS) {
		v2g_warn("SIM-SUBSCRIBE-FAILED", "connection %d: subscribe refused (%d), retrying",
		         c->n, rc);
		c->need_subscribe = 1;
		c->subscribe_at_ms = now + 1000;
	}
}

static int conn_init(struct fleet *f, struct conn *c, int n)
{
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
	int rc;

	c->f = f;
	c->n = n;
	c->subscriber = n == 0;
	c->backoff_ms = RECONNECT_MIN_MS;
	atomic_init(&c->inflight, 0);
	snprintf(c->client_id, sizeof(c->client_id), "v2g-fleet-sim-%d-%d", (int)getpid(), n);
	/* maxBufferedMessages also bounds publishes queued while connected: keep
	 * it well above our window. Nothing is sent while disconnected. */
	cro.sendWhileDisconnected = 0;
	cro.maxBufferedMessages = f->o->window * 2 + 1000;
	cro.MQTTVersion = MQTTVERSION_3_1_1;
	rc = MQTTAsync_createWithOptions(&c->cli, f->o->broker, c->client_id,
	                                 MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro);
	if (rc != MQTTASYNC_SUCCESS) {
		v2g_error("SIM-BAD-BROKER", "cannot create MQTT client for %s (paho %d)",
		          f->o->broker, rc);
		c->cli = NULL;
		return V2G_ERR_INVAL;
	}
	MQTTAsync_setCallbacks(c->cli, c, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(c->cli, c, on_connected);
	return 0;
}

static struct conn *owner(struct fleet *f, int vehicle)
{
	return &f->conns[vehicle % f->nconn];
}

/* Drops the states a connection was about to send (they are stale by the
 * time it is back; the schedule or the burst sends fresh ones). */
static void conn_drop_bulk(struct fleet *f, struct conn *c)
{
	while (c->bulk.len) {
		f->state_queued[jobq_peek(&c->bulk)->vehicle] = 0;
		jobq_pop(&c->bulk);
	}
}

/* ------------------------------------------------------------ publishing */

static void count_drop(struct fleet *f, const char *what)
{
	f->st.dropped++;
	if (f->st.dropped == 1 || f->st.dropped % BAD_INPUT_LOG_EVERY == 0)
		v2g_warn("SIM-DROPPED", "%s dropped (out of memory), %lu so far", what,
		         f->st.dropped);
}

static void enqueue_state(struct fleet *f, int v)
{
	struct conn *c = owner(f, v);
	struct job j = { .vehicle = v, .kind = JOB_STATE, .payload = NULL };

	if (!c->connected) {
		f->st.skipped++;
		return;
	}
	if (f->state_queued[v])
		return; /* one pending state per vehicle: it is rendered fresh when sent */
	if (jobq_push(&c->bulk, &j) != 0) {
		count_drop(f, "state");
		return;
	}
	f->state_queued[v] = 1;
}

static void enqueue_prio(struct fleet *f, int v, enum job_kind kind, char *payload)
{
	struct job j = { .vehicle = v, .kind = kind, .payload = payload };

	if (!payload || jobq_push(&owner(f, v)->prio, &j) != 0) {
		free(payload);
		count_drop(f, kind == JOB_ACK ? "ack" : "telemetry reply");
	}
}

/* Sends queued jobs while the connection is up and its window has room.
 * Returns 1 when jobs remain that could not be sent for lack of room. */
static int conn_drain(struct fleet *f, struct conn *c)
{
	char topic[SIM_ID_MAX + 32];

	while (c->connected && (c->prio.len || c->bulk.len)) {
		struct jobq *q = c->prio.len ? &c->prio : &c->bulk;
		struct job *j = jobq_peek(q);
		struct sim_vehicle *v = &f->veh[j->vehicle];
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		MQTTAsync_message m = MQTTAsync_message_initializer;
		char *state = NULL;
		const char *payload = j->payload;
		int rc;

		if (atomic_load(&c->inflight) >= f->o->window)
			return 1;
		if (j->kind == JOB_STATE) {
			sim_vehicle_advance(v, &f->o->model, &f->rng, v2g_mono_ms());
			state = sim_vehicle_state_json(v, v2g_now_ms(), NULL);
			if (!state) {
				f->state_queued[j->vehicle] = 0;
				jobq_pop(q);
				count_drop(f, "state");
				continue;
			}
			payload = state;
		}
		snprintf(topic, sizeof(topic), TOPIC_VEHICLE "%s/%s", v->id,
		         j->kind == JOB_STATE ? "state"
		         : j->kind == JOB_ACK ? "ack"
		                              : "telemetry");
		m.payload = (void *)payload;
		m.payloadlen = (int)strlen(payload);
		m.qos = 1;
		ro.onSuccess = on_publish_ok;
		ro.onFailure = on_publish_failure;
		ro.context = c;
		atomic_fetch_add(&c->inflight, 1); /* before: the PUBACK may beat us */
		rc = MQTTAsync_sendMessage(c->cli, topic, &m,
		                           &ro); /* paho copies topic and payload */
		free(state);
		if (rc != MQTTASYNC_SUCCESS) {
			atomic_fetch_sub(&c->inflight, 1);
			/* Disconnected: the lost event follows; anything else
			 * (message ids, buffer) clears as PUBACKs come in. */
			v2g_debug("SIM-PUBLISH-DEFERRED",
			          "connection %d: sendMessage %d, %zu queued", c->n, rc,
			          c->prio.len + c->bulk.len);
			return 1;
		}
		switch (j->kind) {
		case JOB_STATE:
			f->state_queued[j->vehicle] = 0;
			f->st.states++;
			break;
		case JOB_ACK: f->st.acks++; break;
		case JOB_TELEMETRY: f->st.telemetry++; break;
		}
		free(j->payload);
		jobq_pop(q);
	}
	return 0;
}

/* Every vehicle of the connection says its state once. Held until the
 * command subscription is in place: a vehicle that is known can be
 * commanded, so it must be listening first (and a burst queued before the
 * SUBSCRIBE would delay the SUBACK by as long as the burst takes). */
static void conn_burst(struct fleet *f, struct conn *c)
{
	int i;

	if (!c->burst_pending || !c->connected)
		return;
	c->burst_pending = 0;
	for (i = c->n; i < f->n; i += f->nconn)
		enqueue_state(f, i);
}

/* ------------------------------------------------------------ inbound */

static void log_bad(struct fleet *f, const char *what, const char *topic)
{
	f->st.bad++;
	if (f->st.bad <= 5 || f->st.bad % BAD_INPUT_LOG_EVERY == 0)
		v2g_warn("SIM-BAD-INPUT", "%s on %s ignored (%lu bad messages so far)", what, topic,
		         f->st.bad);
}

static void handle_command(struct fleet *f, int idx, const struct event *e, int64_t now)
{
	struct sim_vehicle *v = &f->veh[idx];
	struct sim_command cmd;
	struct ack_timer t;
	const char *reason;
	enum sim_ack a;

	f->st.commands++;
	if (sim_command_parse(e->payload, e->len, &cmd) != 0) {
		log_bad(f, "malformed command", e->text);
		return;
	}
	sim_vehicle_advance(v, &f->o->model, &f->rng, now);
	a = sim_vehicle_decide(v, &f->o->model, &f->rng, &reason);
	/* Info for the first command of a dispatch, debug for each one: a
	 * 10,000-vehicle dispatch is one line at the default level. */
	v2g_log(strcmp(cmd.dispatch_id, f->last_dispatch) ? V2G_LOG_INFO : V2G_LOG_DEBUG, "SIM-CMD",
	        "%s dispatch %s %s %.2f kW %.0f min -> %s", v->id, cmd.dispatch_id, cmd.signal_type,
	        cmd.power_kw, cmd.duration_min,
	        a == SIM_ACK_ACCEPT   ? "accept"
	        : a == SIM_ACK_REJECT ? reason
	                              : "silent");
	memcpy(f->last_dispatch, cmd.dispatch_id, sizeof(f->last_dispatch));
	if (a == SIM_ACK_SILENT) {
		f->st.silent++;
		return;
	}
	if (a == SIM_ACK_ACCEPT)
		sim_vehicle_apply(v, &cmd, now);
	else
		f->st.rejected++;
	memset(&t, 0, sizeof(t));
	t.due_ms = now + f->o->ack_latency_ms;
	if (f->o->ack_jitter_ms > 0)
		t.due_ms += (int64_t)(sim_rng_uniform(&f->rng) * (f->o->ack_jitter_ms + 1));
	t.vehicle = idx;
	t.accepted = a == SIM_ACK_ACCEPT;
	t.reason = reason;
	memcpy(t.dispatch_id, cmd.dispatch_id, sizeof(t.dispatch_id));
	if (heap_push(f, &t) != 0)
		count_drop(f, "ack");
}

static void handle_telemetry_request(struct fleet *f, const struct event *e, int64_t now)
{
	json_t *root = v2g_json_loadb(e->payload, e->len, 0, NULL);
	const char *rid = json_string_value(json_object_get(root, "request_id"));
	int64_t ts = v2g_now_ms();
	int i;

	if (!rid) {
		log_bad(f, "telemetry request without request_id", e->text);
		json_decref(root);
		return;
	}
	v2g_info("SIM-TELEMETRY-REQUEST", "request %s: answering %d vehicles", rid, f->n);
	for (i = 0; i < f->n; i++) {
		sim_vehicle_advance(&f->veh[i], &f->o->model, &f->rng, now);
		enqueue_prio(f, i, JOB_TELEMETRY, sim_vehicle_state_json(&f->veh[i], ts, rid));
	}
	json_decref(root);
}

static void handle_message(struct fleet *f, const struct event *e, int64_t now)
{
	const char *t = e->text;
	size_t tl = strlen(t), pl = strlen(TOPIC_VEHICLE), sl = strlen(TOPIC_COMMAND_SUFFIX);
	int idx;

	if (strcmp(t, TOPIC_TELEMETRY_REQUEST) == 0) {
		handle_telemetry_request(f, e, now);
		return;
	}
	if (tl > pl + sl && strncmp(t, TOPIC_VEHICLE, pl) == 0 &&
	    strcmp(t + tl - sl, TOPIC_COMMAND_SUFFIX) == 0) {
		if (sim_vehicle_id_parse(f->o->model.prefix, t + pl, tl - pl - sl, f->n, &idx) == 0)
			handle_command(f, idx, e, now);
		else
			f->st.ignored++; /* another fleet's vehicle */
		return;
	}
	f->st.ignored++;
}

static void handle_event(struct fleet *f, struct event *e, int64_t now)
{
	struct conn *c = &f->conns[e->conn];
	int i;

	switch (e->type) {
	case EV_CONNECTED:
		v2g_info("SIM-CONNECTED", "connection %d (%s) %s to %s", c->n, c->client_id,
		         c->ever_connected ? "reconnected" : "connected", f->o->broker);
		c->connected = 1;
		c->connecting = 0;
		c->ever_connected = 1;
		c->backoff_ms = RECONNECT_MIN_MS;
		if (c->subscriber)
			f->subscribed = 0;
		/* Unconfirmed publishes of the old session complete or fail on
		 * their own; start the new one with an empty window. */
		atomic_store(&c->inflight, 0);
		if (c->subscriber) {
			c->need_subscribe = 1;
			c->subscribe_at_ms = now;
		}
		c->burst_pending = f->o->initial_burst;
		if (f->subscribed)
			conn_burst(f, c);
		break;
	case EV_CONNECT_FAILED:
		c->connecting = 0;
		if (c->ever_connected) {
			v2g_log(c->n == 0 ? V2G_LOG_WARN : V2G_LOG_DEBUG, "SIM-CONNECT-FAILED",
			        "connection %d: reconnect to %s failed (%d %s), paho retries", c->n,
			        f->o->broker, e->code, e->text ? e->text : "");
			break;
		}
		/* One line per failure streak (and connection 0 always), not one
		 * per connection and retry while the broker is down. */
		v2g_log(c->n == 0 || c->backoff_ms == RECONNECT_MIN_MS ? V2G_LOG_WARN
		                                                       : V2G_LOG_DEBUG,
		        "SIM-CONNECT-FAILED", "connection %d to %s failed (%d %s), retry in %d ms",
		        c->n, f->o->broker, e->code, e->text ? e->text : "", c->backoff_ms);
		c->next_attempt_ms = now + c->backoff_ms;
		c->backoff_ms =
		        c->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : c->backoff_ms * 2;
		break;
	case EV_LOST:
		c->connected = 0;
		if (c->subscriber)
			f->subscribed = 0;
		conn_drop_bulk(f, c);
		v2g_warn("SIM-DISCONNECTED", "connection %d lost (%s); reconnecting with backoff",
		         c->n, e->text ? e->text : "no cause");
		break;
	case EV_SUBSCRIBED:
		v2g_info("SIM-SUBSCRIBED", "connection %d subscribed to %s and %s", c->n,
		         TOPIC_COMMAND_WILDCARD, TOPIC_TELEMETRY_REQUEST);
		f->subscribed = 1;
		for (i = 0; i < f->nconn; i++)
			conn_burst(f, &f->conns[i]);
		break;
	case EV_SUBSCRIBE_FAILED:
		v2g_warn("SIM-SUBSCRIBE-FAILED",
		         "connection %d: subscribe failed (%d), retrying in 1 s", c->n, e->code);
		if (c->connected) {
			c->need_subscribe = 1;
			c->subscribe_at_ms = now + 1000;
		}
		break;
	case EV_MESSAGE: handle_message(f, e, now); break;
	case EV_DISCONNECTED:
		c->disconnected = 1;
		c->connected = 0;
		break;
	}
}

/* Takes every pending event and handles it, in arrival order. */
static void process_events(struct fleet *f, int64_t now)
{
	struct event *e, *next;

	pthread_mutex_lock(&f->mu);
	e = f->ev_head;
	f->ev_head = f->ev_tail = NULL;
	f->wake = 0;
	pthread_mutex_unlock(&f->mu);
	for (; e; e = next) {
		next = e->next;
		handle_event(f, e, now);
		free(e->text);
		free(e->payload);
		free(e);
	}
}

static void drop_events(struct fleet *f)
{
	struct event *e, *next;

	pthread_mutex_lock(&f->mu);
	e = f->ev_head;
	f->ev_head = f->ev_tail = NULL;
	pthread_mutex_unlock(&f->mu);
	for (; e; e = next) {
		next = e->next;
		free(e->text);
		free(e->payload);
		free(e);
	}
}

/* ------------------------------------------------------------ schedules */

/* Vehicle i's k-th state is due at cycle_base + (k + i/N) * interval: the
 * fleet's states are spread evenly over the interval, not sent in a burst. */
static int64_t state_due(const struct fleet *f)
{
	return f->cycle_base_ms + (int64_t)(f->interval_ms * f->cursor / f->n);
}

static void run_state_schedule(struct fleet *f, int64_t now)
{
	if (f->interval_ms <= 0)
		return;
	while (state_due(f) <= now) {
		enqueue_state(f, f->cursor);
		if (++f->cursor == f->n) {
			f->cursor = 0;
			f->cycle_base_ms += (int64_t)f->interval_ms;
			if (f->cycle_base_ms + f->interval_ms < now) {
				v2g_warn("SIM-BEHIND", "state schedule fell more than one interval "
				                       "behind; restarting it");
				f->cycle_base_ms = now;
			}
		}
	}
}

static void run_ack_timers(struct fleet *f, int64_t now)
{
	struct ack_timer t;

	while (f->heap_len && f->heap[0].due_ms <= now) {
		heap_pop(f, &t);
		enqueue_prio(f, t.vehicle, JOB_ACK,
		             sim_ack_json(t.dispatch_id, t.accepted, t.reason));
	}
}

static void run_connections(struct fleet *f, int64_t now)
{
	int i;

	for (i = 0; i < f->nconn; i++) {
		struct conn *c = &f->conns[i];
		if (!c->connected && !c->connecting && !c->ever_connected &&
		    now >= c->next_attempt_ms)
			conn_connect(f, c, now);
		if (c->connected && c->need_subscribe && now >= c->subscribe_at_ms)
			conn_subscribe(f, c, now);
	}
}

static size_t backlog(const struct fleet *f)
{
	size_t n = 0;
	int i;

	for (i = 0; i < f->nconn; i++)
		n += f->conns[i].prio.len + f->conns[i].bulk.len;
	return n;
}

static void log_stats(struct fleet *f, int64_t now)
{
	double dt = (double)(now - f->t_stats_prev) / 1000.0;
	int i, up = 0, inflight = 0;

	for (i = 0; i < f->nconn; i++) {
		up += f->conns[i].connected;
		int n = atomic_load(&f->conns[i].inflight);
		inflight += n > 0 ? n : 0; /* late failures of a lost session go below 0 */
	}
	v2g_info("SIM-STATS",
	         "vehicles=%d connected=%d/%d states=%lu (%.0f/s) commands=%lu acks=%lu "
	         "rejected=%lu "
	         "silent=%lu telemetry=%lu ignored=%lu bad=%lu dropped=%lu skipped=%lu "
	         "pub_failed=%lu "
	         "queued=%zu inflight=%d pending_acks=%zu",
	         f->n, up, f->nconn, f->st.states,
	         dt > 0 ? (double)(f->st.states - f->st_prev.states) / dt : 0.0, f->st.commands,
	         f->st.acks, f->st.rejected, f->st.silent, f->st.telemetry, f->st.ignored,
	         f->st.bad, f->st.dropped, f->st.skipped,
	         (unsigned long)atomic_load(&f->pub_failed), backlog(f), inflight, f->heap_len);
	f->st_prev = f->st;
	f->t_stats_prev = now;
}

/* ------------------------------------------------------------ set-up */

static int mark_ids(struct fleet *f, const char *list, int silent)
{
	char *copy, *tok, *save = NULL, last[SIM_ID_MAX];
	int rc = 0, idx;

	if (!list || !*list)
		return 0;
	if (!(copy = strdup(list)))
		return V2G_ERR_NOMEM;
	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (sim_vehicle_id_parse(f->o->model.prefix, tok, strlen(tok), f->n, &idx) != 0) {
			sim_vehicle_id_format(f->o->model.prefix, f->n - 1, last);
			v2g_error("SIM-UNKNOWN-ID",
			          "--%s-ids: %s is not a vehicle of this fleet (ids %s-00000..%s)",
			          silent ? "silent" : "reject", tok, f->o->model.prefix, last);
			rc = V2G_ERR_INVAL;
			break;
		}
		if (silent)
			f->veh[idx].force_silent = 1;
		else
			f->veh[idx].force_reject = 1;
	}
	free(copy);
	return rc;
}

void sim_opts_default(struct sim_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->broker = "tcp://127.0.0.1:1883";
	o->vehicles = 100;
	o->connections = 4;
	o->state_interval_s = 10.0;
	o->ack_latency_ms = 50;
	o->ack_jitter_ms = 50;
	o->seed = 1;
	o->initial_burst = 1;
	o->window = 2000;
	o->stats_interval_s = 10.0;
	sim_model_cfg_default(&o->model);
}

static void wait_for_wake(struct fleet *f, int64_t wait_ms)
{
	struct timespec ts;

	if (wait_ms <= 0)
		return;
	ts = v2g_mono_deadline(wait_ms);
	pthread_mutex_lock(&f->mu);
	while (!f->wake) {
		if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&f->mu);
}

/* One pass of the engine; returns how long it may sleep. */
static int64_t engine_step(struct fleet *f, int64_t now)
{
	int64_t wait = MAX_IDLE_WAIT_MS, d;
	int i, stuck = 0;

	process_events(f, now);
	run_connections(f, now);
	run_state_schedule(f, now);
	run_ack_timers(f, now);
	for (i = 0; i < f->nconn; i++)
		stuck |= conn_drain(f, &f->conns[i]);
	if (stuck) {
		atomic_store(&f->backpressured, 1);
		wait = 20; /* woken earlier by pub_done() */
	}
	if (f->interval_ms > 0 && (d = state_due(f) - now) < wait)
		wait = d;
	if (f->heap_len && (d = f->heap[0].due_ms - now) < wait)
		wait = d;
	for (i = 0; i < f->nconn; i++) {
		struct conn *c = &f->conns[i];
		if (!c->connected && !c->connecting && !c->ever_connected &&
		    (d = c->next_attempt_ms - now) < wait)
			wait = d;
		if (c->connected && c->need_subscribe && (d = c->subscribe_at_ms - now) < wait)
			wait = d;
	}
	if (now >= f->next_stats_ms) {
		log_stats(f, now);
		f->next_stats_ms = now + (int64_t)(f->o->stats_interval_s * 1000.0);
	}
	return wait < 0 ? 0 : wait;
}

static void shutdown_clients(struct fleet *f)
{
	int64_t until = v2g_mono_ms() + FLUSH_ON_STOP_MS, now;
	int i, pending;

	/* Acks and replies already decided go out if the broker takes them. */
	while ((now = v2g_mono_ms()) < until) {
		size_t left = 0;
		process_events(f, now);
		run_ack_timers(f, now);
		for (i = 0; i < f->nconn; i++) {
			conn_drop_bulk(f, &f->conns[i]);
			conn_drain(f, &f->conns[i]);
			if (f->conns[i].connected)
				left += f->conns[i].prio.len;
		}
		if (!left && !f->heap_len)
			break;
		wait_for_wake(f, 10);
	}
	for (i = 0; i < f->nconn; i++) {
		struct conn *c = &f->conns[i];
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		if (!c->cli || !MQTTAsync_isConnected(c->cli)) {
			c->disconnected = 1;
			continue;
		}
		d.timeout = 1000; /* lets paho finish the QoS 1 handshakes in flight */
		d.onSuccess = on_disconnect_done;
		d.onFailure = on_disconnect_failure;
		d.context = c;
		if (MQTTAsync_disconnect(c->cli, &d) != MQTTASYNC_SUCCESS)
			c->disconnected = 1;
	}
	until = v2g_mono_ms() + DISCONNECT_WAIT_MS;
	do {
		process_events(f, v2g_mono_ms());
		for (pending = 0, i = 0; i < f->nconn; i++)
			pending += !f->conns[i].disconnected;
		if (pending)
			wait_for_wake(f, 20);
	} while (pending && v2g_mono_ms() < until);
	log_stats(f, v2g_mono_ms());
	v2g_info("SIM-STOPPED", "%d vehicles stopped, %d connection(s) closed", f->n, f->nconn);
}

static void fleet_fini(struct fleet *f)
{
	int i;

	for (i = 0; f->conns && i < f->nconn; i++) {
		if (f->conns[i].cli)
			MQTTAsync_destroy(&f->conns[i].cli);
		jobq_fini(&f->conns[i].prio);
		jobq_fini(&f->conns[i].bulk);
	}
	drop_events(f); /* late callbacks, never handled */
	free(f->conns);
	free(f->heap);
	free(f->state_queued);
	free(f->veh);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
}

int sim_fleet_run(const struct sim_opts *o, volatile sig_atomic_t *stop)
{
	struct fleet f;
	int64_t now, end;
	int i, rc;

	memset(&f, 0, sizeof(f));
	f.o = o;
	f.n = o->vehicles;
	f.nconn = o->connections < o->vehicles ? o->connections : o->vehicles;
	sim_rng_seed(&f.rng, o->seed ^ 0x5EEDF1EE7ULL);
	pthread_mutex_init(&f.mu, NULL);
	v2g_cond_init_mono(&f.cv);
	atomic_init(&f.backpressured, 0);
	atomic_init(&f.pub_failed, 0);
	atomic_init(&f.cb_dropped, 0);

	f.veh = calloc((size_t)f.n, sizeof(*f.veh));
	f.state_queued = calloc((size_t)f.n, 1);
	f.conns = calloc((size_t)f.nconn, sizeof(*f.conns));
	if (!f.veh || !f.state_queued || !f.conns) {
		v2g_error("SIM-NOMEM", "cannot allocate %d vehicles", f.n);
		rc = V2G_ERR_NOMEM;
		goto out;
	}
	now = v2g_mono_ms();
	for (i = 0; i < f.n; i++)
		sim_vehicle_init(&f.veh[i], &o->model, o->seed, i, now);
	if ((rc = mark_ids(&f, o->silent_ids, 1)) != 0 ||
	    (rc = mark_ids(&f, o->reject_ids, 0)) != 0)
		goto out;
	for (i = 0; i < f.nconn; i++)
		if ((rc = conn_init(&f, &f.conns[i], i)) != 0)
			goto out;

	f.interval_ms = o->state_interval_s * 1000.0;
	/* With the burst every vehicle has just spoken: the spread schedule
	 * starts one interval later. */
	f.cycle_base_ms = now + (o->initial_burst ? (int64_t)f.interval_ms : 0);
	f.t_stats_prev = now;
	f.next_stats_ms = now + (int64_t)(o->stats_interval_s * 1000.0);
	end = o->duration_s > 0 ? now + (int64_t)(o->duration_s * 1000.0) : INT64_MAX;
	v2g_info("SIM-START",
	         "%d vehicles (%s-00000..), %d connection(s) to %s, state every %.1f s, ack %d+%d "
	         "ms, "
	         "reject %.3f, silent %.3f, seed %llu",
	         f.n, o->model.prefix, f.nconn, o->broker, o->state_interval_s, o->ack_latency_ms,
	         o->ack_jitter_ms, o->model.reject_rate, o->model.silent_rate,
	         (unsigned long long)o->seed);

	while (!*stop && (now = v2g_mono_ms()) < end)
		wait_for_wake(&f, engine_step(&f, now));
	if (*stop)
		v2g_info("SIM-STOPPING", "signal received, disconnecting");
	shutdown_clients(&f);
	if (atomic_load(&f.cb_dropped))
		v2g_warn("SIM-DROPPED", "%lu callback events lost to memory exhaustion",
		         (unsigned long)atomic_load(&f.cb_dropped));
	rc = 0;
out:
	fleet_fini(&f);
	return rc;
}
