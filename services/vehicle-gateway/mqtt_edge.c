/* paho MQTTAsync client with our own reconnect loop (paho's automatic
 * reconnect counts in whole seconds; ours honours reconnect_min_ms..max_ms).
 *
 * Threads: paho's (callbacks, never blocking here) and one supervisor that
 * sleeps the backoff and calls MQTTAsync_connect. */
#include "mqtt_edge.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/timeutil.h"
#include "v2g/sync.h"

#define CONNECT_TIMEOUT_S 10

enum link_state { LINK_WANT, LINK_CONNECTING, LINK_UP, LINK_CLOSED };

struct vgw_mqtt {
	MQTTAsync client;
	struct vgw_mqtt_handlers h;

	/* owned copies of everything paho keeps pointers to */
	char *broker, *client_id, *username, *password, *ca_bundle, *client_cert, *client_key;
	char *lwt_topic;
	char **subs;
	int *sub_qos;
	int nsubs;
	int keepalive_s;
	int tls;
	MQTTAsync_willOptions will;
	MQTTAsync_SSLOptions ssl;
	MQTTAsync_connectOptions conn;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t supervisor;
	int supervisor_started;
	enum link_state state;
	int closing;
	int backoff_ms, min_ms, max_ms;
	int64_t retry_at;  /* mono ms */
	unsigned failures; /* consecutive failed attempts */
};

/* Caller holds mu: the next attempt waits the current backoff, which then
 * doubles up to the cap. */
static void schedule_retry(struct vgw_mqtt *m)
{
	m->state = LINK_WANT;
	m->retry_at = v2g_mono_ms() + m->backoff_ms;
	m->backoff_ms = m->backoff_ms * 2 > m->max_ms ? m->max_ms : m->backoff_ms * 2;
	pthread_cond_broadcast(&m->cond);
}

/* --- paho callbacks (paho threads: no blocking) ------------------------------- */

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct vgw_mqtt *m = ctx;
	size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	m->h.message(m->h.arg, topic, tl, msg->payload,
	             (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0));
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_connection_lost(void *ctx, char *cause)
{
	struct vgw_mqtt *m = ctx;
	pthread_mutex_lock(&m->mu);
	int closing = m->closing;
	if (!closing) {
		m->backoff_ms = m->min_ms;
		m->failures = 0;
		schedule_retry(m);
	}
	pthread_mutex_unlock(&m->mu);
	if (closing)
		return;
	v2g_warn("GW-MQTT-DOWN", "connection to %s lost (%s); reconnecting", m->broker,
	         cause ? cause : "no reason given");
	m->h.link(m->h.arg, 0, cause ? cause : "connection lost");
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *resp)
{
	struct vgw_mqtt *m = ctx;
	char detail[200];
	snprintf(detail, sizeof(detail), "connect to %s failed: %s (code %d)", m->broker,
	         resp && resp->message ? resp->message : MQTTAsync_strerror(resp ? resp->code : -1),
	         resp ? resp->code : -1);
	pthread_mutex_lock(&m->mu);
	unsigned failures = ++m->failures;
	int delay = m->backoff_ms;
	if (!m->closing)
		schedule_retry(m);
	pthread_mutex_unlock(&m->mu);
	if (failures == 1)
		v2g_warn("GW-MQTT-CONNECT-FAILED", "%s; retrying with backoff up to %d ms", detail,
		         m->max_ms);
	else
		v2g_debug("GW-MQTT-CONNECT-FAILED", "%s (attempt %u, next in %d ms)", detail,
		          failures, delay);
	m->h.link(m->h.arg, 0, detail);
}

static void on_subscribe_failure(void *ctx, MQTTAsync_failureData *resp)
{
	struct vgw_mqtt *m = ctx;
	v2g_error("GW-MQTT-SUBSCRIBE-FAILED", "subscribing on %s failed (code %d)", m->broker,
	          resp ? resp->code : -1);
}

static void on_subscribe_success(void *ctx, MQTTAsync_successData *resp)
{
	struct vgw_mqtt *m = ctx;
	/* With one filter the granted QoS is alt.qos; 0x80 means refused. */
	if (m->nsubs == 1 && resp && resp->alt.qos == MQTT_BAD_SUBSCRIBE)
		v2g_error("GW-MQTT-SUBSCRIBE-FAILED", "broker refused subscription %s", m->subs[0]);
	else if (m->nsubs > 1 && resp && resp->alt.qosList)
		for (int i = 0; i < m->nsubs; i++)
			if (resp->alt.qosList[i] == MQTT_BAD_SUBSCRIBE)
				v2g_error("GW-MQTT-SUBSCRIBE-FAILED",
				          "broker refused subscription %s", m->subs[i]);
}

/* Every successful connect: subscribe again (clean session) and announce. */
static void on_connected(void *ctx, char *cause)
{
	struct vgw_mqtt *m = ctx;
	MQTTAsync_responseOptions sub = MQTTAsync_responseOptions_initializer;
	unsigned attempts;
	int rc;

	(void)cause;
	pthread_mutex_lock(&m->mu);
	m->state = LINK_UP;
	m->backoff_ms = m->min_ms;
	attempts = m->failures + 1;
	m->failures = 0;
	pthread_mutex_unlock(&m->mu);

	sub.onSuccess = on_subscribe_success;
	sub.onFailure = on_subscribe_failure;
	sub.context = m;
	rc = MQTTAsync_subscribeMany(m->client, m->nsubs, m->subs, m->sub_qos, &sub);
	if (rc != MQTTASYNC_SUCCESS)
		v2g_error("GW-MQTT-SUBSCRIBE-FAILED", "cannot subscribe: %s",
		          MQTTAsync_strerror(rc));
	rc = MQTTAsync_send(m->client, m->lwt_topic, 6, "online", 1, 1, NULL);
	if (rc != MQTTASYNC_SUCCESS)
		v2g_warn("GW-MQTT-LWT", "cannot publish online on %s: %s", m->lwt_topic,
		         MQTTAsync_strerror(rc));
	v2g_info("GW-MQTT-UP", "connected to %s as %s (attempt %u), %d subscriptions", m->broker,
	         m->client_id, attempts, m->nsubs);
	m->h.link(m->h.arg, 1, "connected");
}

static void on_publish_success(void *ctx, MQTTAsync_successData *resp)
{
	struct vgw_mqtt_pending *p = ctx;
	(void)resp;
	if (p)
		p->done(p, 1);
}

static void on_publish_failure(void *ctx, MQTTAsync_failureData *resp)
{
	struct vgw_mqtt_pending *p = ctx;
	(void)resp;
	if (p)
		p->done(p, 0);
}

/* --- supervisor ------------------------------------------------------------------ */

static void *supervisor_main(void *arg)
{
	struct vgw_mqtt *m = arg;

	pthread_mutex_lock(&m->mu);
	while (!m->closing) {
		if (m->state != LINK_WANT) {
			pthread_cond_wait(&m->cond, &m->mu);
			continue;
		}
		int64_t wait = m->retry_at - v2g_mono_ms();
		if (wait > 0) {
			v2g_cond_wait_ms(&m->cond, &m->mu, wait);
			continue;
		}
		m->state = LINK_CONNECTING;
		pthread_mutex_unlock(&m->mu);
		int rc = MQTTAsync_connect(m->client, &m->conn);
		pthread_mutex_lock(&m->mu);
		if (rc != MQTTASYNC_SUCCESS && m->state == LINK_CONNECTING && !m->closing) {
			m->failures++;
			v2g_debug("GW-MQTT-CONNECT-FAILED", "MQTTAsync_connect: %s",
			          MQTTAsync_strerror(rc));
			schedule_retry(m);
		}
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* --- API ---------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s && s[0] ? strdup(s) : NULL;
}

static void mqtt_free(struct vgw_mqtt *m)
{
	if (m->client)
		MQTTAsync_destroy(&m->client);
	for (int i = 0; m->subs && i < m->nsubs; i++)
		free(m->subs[i]);
	free(m->subs);
	free(m->sub_qos);
	free(m->broker);
	free(m->client_id);
	free(m->username);
	free(m->password);
	free(m->ca_bundle);
	free(m->client_cert);
	free(m->client_key);
	free(m->lwt_topic);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cond);
	free(m);
}

int vgw_mqtt_open(struct vgw_mqtt **out, const struct vgw_mqtt_opts *o,
                  const struct vgw_mqtt_handlers *h)
{
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer;
	int rc;

	struct vgw_mqtt *m = calloc(1, sizeof(*m));
	if (!m)
		return V2G_ERR_NOMEM;
	pthread_mutex_init(&m->mu, NULL);
	v2g_cond_init_mono(&m->cond);

	m->h = *h;
	m->broker = strdup(o->broker);
	m->client_id = strdup(o->client_id);
	m->lwt_topic = strdup(o->lwt_topic);
	m->username = dup_or_null(o->username);
	m->password = dup_or_null(o->password);
	m->ca_bundle = dup_or_null(o->ca_bundle);
	m->client_cert = dup_or_null(o->client_cert);
	m->client_key = dup_or_null(o->client_key);
	m->nsubs = o->nsubs;
	m->subs = calloc((size_t)o->nsubs, sizeof(char *));
	m->sub_qos = calloc((size_t)o->nsubs, sizeof(int));
	if (!m->broker || !m->client_id || !m->lwt_topic || !m->subs || !m->sub_qos)
		goto nomem;
	for (int i = 0; i < o->nsubs; i++) {
		if (!(m->subs[i] = strdup(o->subs[i])))
			goto nomem;
		m->sub_qos[i] = o->sub_qos[i];
	}
	m->tls = strncmp(o->broker, "ssl://", 6) == 0 || strncmp(o->broker, "mqtts://", 8) == 0;
	m->min_ms = o->reconnect_min_ms;
	m->max_ms = o->reconnect_max_ms;
	m->backoff_ms = m->min_ms;
	m->state = LINK_WANT;
	m->retry_at = 0;

	/* No MQTTAsync_createOptions on purpose. What we want is their
	 * default: a disconnected client refuses a publish at once
	 * (MQTTASYNC_DISCONNECTED; the caller counts and reports it) and
	 * nothing caps the queue while connected, so a 10k batch is never
	 * refused. Passing options (sendWhileDisconnected = 0, a huge
	 * maxBufferedMessages) means the same, but then paho counts the queued
	 * commands on every send: a list walk, quadratic over a big batch. */
	rc = MQTTAsync_create(&m->client, m->broker, m->client_id, MQTTCLIENT_PERSISTENCE_NONE,
	                      NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		v2g_error("GW-MQTT-CONFIG", "mqtt.broker: paho refused \"%s\": %s", o->broker,
		          MQTTAsync_strerror(rc));
		m->client = NULL;
		mqtt_free(m);
		return V2G_ERR_CONFIG;
	}
	rc = MQTTAsync_setCallbacks(m->client, m, on_connection_lost, on_message, NULL);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setConnected(m->client, m, on_connected);
	if (rc != MQTTASYNC_SUCCESS) {
		mqtt_free(m);
		return V2G_ERR_CONFIG;
	}

	will.topicName = m->lwt_topic;
	will.message = "offline";
	will.retained = 1;
	will.qos = 1;
	m->will = will;

	ssl.trustStore = m->ca_bundle;
	ssl.keyStore = m->client_cert;
	ssl.privateKey = m->client_key;
	ssl.enableServerCertAuth = 1;
	ssl.verify = 1;
	m->ssl = ssl;

	conn.keepAliveInterval = o->keepalive_s;
	conn.cleansession = 1;
	/* QoS 1 commands in flight at once: a 10k batch must not wait on acks. */
	conn.maxInflight = 65535;
	conn.will = &m->will;
	conn.username = m->username;
	conn.password = m->password;
	conn.connectTimeout = CONNECT_TIMEOUT_S;
	conn.retryInterval = 0;
	conn.ssl = m->tls ? &m->ssl : NULL;
	conn.onFailure = on_connect_failure;
	conn.context = m;
	conn.MQTTVersion = MQTTVERSION_3_1_1;
	conn.automaticReconnect = 0;
	m->conn = conn;

	if (pthread_create(&m->supervisor, NULL, supervisor_main, m) != 0) {
		mqtt_free(m);
		return V2G_ERR_IO;
	}
	m->supervisor_started = 1;
	*out = m;
	return 0;
nomem:
	mqtt_free(m);
	return V2G_ERR_NOMEM;
}

int vgw_mqtt_publish(struct vgw_mqtt *m, const char *topic, const void *payload, size_t len,
                     int qos, int retained, struct vgw_mqtt_pending *p)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = qos;
	msg.retained = retained;
	if (p) {
		ro.onSuccess = on_publish_success;
		ro.onFailure = on_publish_failure;
		ro.context = p;
	}
	int rc = MQTTAsync_sendMessage(m->client, topic, &msg, p ? &ro : NULL);
	if (rc == MQTTASYNC_SUCCESS)
		return 0;
	return rc == MQTTASYNC_DISCONNECTED ? V2G_ERR_UNAVAILABLE : V2G_ERR_IO;
}

int vgw_mqtt_is_connected(struct vgw_mqtt *m)
{
	return MQTTAsync_isConnected(m->client);
}

/* A one-shot completion the closing thread waits for. */
struct close_wait {
	struct vgw_mqtt_pending pending;
	pthread_mutex_t *mu;
	pthread_cond_t *cond;
	int done;
};

static void close_wait_done(struct vgw_mqtt_pending *p, int ok)
{
	struct close_wait *w = (struct close_wait *)p;
	(void)ok;
	pthread_mutex_lock(w->mu);
	w->done = 1;
	pthread_cond_broadcast(w->cond);
	pthread_mutex_unlock(w->mu);
}

static void on_disconnect_done(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	close_wait_done(ctx, 1);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData *resp)
{
	(void)resp;
	close_wait_done(ctx, 0);
}

static void wait_done(struct vgw_mqtt *m, struct close_wait *w, int64_t deadline)
{
	pthread_mutex_lock(&m->mu);
	while (!w->done) {
		int64_t left = deadline - v2g_mono_ms();
		if (left <= 0)
			break;
		v2g_cond_wait_ms(&m->cond, &m->mu, left);
	}
	pthread_mutex_unlock(&m->mu);
}

void vgw_mqtt_close(struct vgw_mqtt *m, int timeout_ms)
{
	if (!m)
		return;
	int64_t deadline = v2g_mono_ms() + timeout_ms;
	/* Both stay in scope until MQTTAsync_destroy (in mqtt_free): paho may
	 * still call back after a timed-out wait, never after destroy. */
	struct close_wait off = { { close_wait_done }, &m->mu, &m->cond, 0 };
	struct close_wait dis = { { close_wait_done }, &m->mu, &m->cond, 0 };

	pthread_mutex_lock(&m->mu);
	m->closing = 1;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->mu);
	if (m->supervisor_started)
		pthread_join(m->supervisor, NULL);

	if (MQTTAsync_isConnected(m->client)) {
		/* The will only fires on an unclean loss: say it ourselves. */
		if (vgw_mqtt_publish(m, m->lwt_topic, "offline", 7, 1, 1, &off.pending) == 0)
			wait_done(m, &off, deadline - timeout_ms / 2);

		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		int64_t left = deadline - v2g_mono_ms();
		d.timeout = left > 0 ? (int)left : 0;
		d.onSuccess = on_disconnect_done;
		d.onFailure = on_disconnect_failed;
		d.context = &dis;
		if (MQTTAsync_disconnect(m->client, &d) == MQTTASYNC_SUCCESS)
			wait_done(m, &dis, deadline);
		v2g_info("GW-MQTT-CLOSED", "disconnected from %s%s", m->broker,
		         off.done ? "" : " (offline not confirmed)");
	}
	mqtt_free(m);
}
