/* Blocking paho helpers for the benchmark; see mq.h. */
#include "mq.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "v2g/sync.h"

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void op_finish(struct bench_mq *m, int rc)
{
	pthread_mutex_lock(&m->mu);
	m->done = 1;
	m->rc = rc;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

static void on_ok(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	op_finish(ctx, 0);
}

static void on_fail(void *ctx, MQTTAsync_failureData *resp)
{
	op_finish(ctx, resp && resp->code ? resp->code : -1);
}

static int on_msg_discard(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	(void)ctx;
	(void)topic_len;
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void op_start(struct bench_mq *m)
{
	pthread_mutex_lock(&m->mu);
	m->done = 0;
	m->rc = 0;
	pthread_mutex_unlock(&m->mu);
}

/* Waits for the pending operation; returns its code, or ETIMEDOUT. */
static int op_wait(struct bench_mq *m, int timeout_ms)
{
	struct timespec ts;
	int rc;

	ts = v2g_mono_deadline(timeout_ms);
	pthread_mutex_lock(&m->mu);
	while (!m->done)
		if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT)
			break;
	rc = m->done ? m->rc : ETIMEDOUT;
	pthread_mutex_unlock(&m->mu);
	return rc;
}

int bench_mq_open(struct bench_mq *m, const char *uri, const char *client_id,
                  MQTTAsync_messageArrived *on_msg, void *ctx, int timeout_ms)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	int rc;

	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	v2g_cond_init_mono(&m->cv);
	/* Plain create: no createOptions, so paho applies no
	 * maxBufferedMessages limit to a 10,000-message burst. */
	rc = MQTTAsync_create(&m->cli, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "v2g-bench-slice: cannot create an MQTT client for %s (paho %d)\n",
		        uri, rc);
		m->cli = NULL;
		goto fail;
	}
	MQTTAsync_setCallbacks(m->cli, ctx, NULL, on_msg ? on_msg : on_msg_discard, NULL);
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.MQTTVersion = MQTTVERSION_3_1_1;
	co.maxInflight = 65535;
	co.connectTimeout = (timeout_ms + 999) / 1000;
	co.onSuccess = on_ok;
	co.onFailure = on_fail;
	co.context = m;
	op_start(m);
	if ((rc = MQTTAsync_connect(m->cli, &co)) == MQTTASYNC_SUCCESS)
		rc = op_wait(m, timeout_ms + 1000);
	if (rc != 0) {
		fprintf(stderr, "v2g-bench-slice: cannot connect to the MQTT broker %s (%s %d)\n",
		        uri, rc == ETIMEDOUT ? "timeout" : "paho", rc);
		MQTTAsync_destroy(&m->cli);
		m->cli = NULL;
		goto fail;
	}
	return 0;
fail:
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	return -1;
}

int bench_mq_subscribe(struct bench_mq *m, const char *topic, int qos, int timeout_ms)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	ro.onSuccess = on_ok;
	ro.onFailure = on_fail;
	ro.context = m;
	op_start(m);
	if ((rc = MQTTAsync_subscribe(m->cli, topic, qos, &ro)) == MQTTASYNC_SUCCESS)
		rc = op_wait(m, timeout_ms);
	if (rc != 0) {
		fprintf(stderr, "v2g-bench-slice: cannot subscribe to %s (%s %d)\n", topic,
		        rc == ETIMEDOUT ? "timeout" : "paho", rc);
		return -1;
	}
	return 0;
}

void bench_mq_close(struct bench_mq *m)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;

	if (!m->cli)
		return;
	if (MQTTAsync_isConnected(m->cli)) {
		d.timeout = 1000;
		d.onSuccess = on_ok;
		d.onFailure = on_fail;
		d.context = m;
		op_start(m);
		if (MQTTAsync_disconnect(m->cli, &d) == MQTTASYNC_SUCCESS)
			op_wait(m, 2000);
	}
	MQTTAsync_destroy(&m->cli);
	m->cli = NULL;
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
}
