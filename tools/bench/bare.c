/* Bare paho QoS 1 burst; see bare.h. */
#include "bare.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mq.h"
#include "v2g/timeutil.h"

#define DISPATCH_TAG "\"dispatch_id\":\"b"

/* Shared with paho's threads: counters and completion times only. */
struct bare_ctx {
	int n;
	atomic_int run; /* messages of other runs are not counted */
	atomic_int received;
	atomic_int confirmed;
	_Atomic double t_recv; /* when received reached n */
	_Atomic double t_conf; /* when confirmed reached n */
};

static int on_command(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct bare_ctx *b = ctx;
	const char *p =
	        memmem(msg->payload, (size_t)msg->payloadlen, DISPATCH_TAG, strlen(DISPATCH_TAG));

	(void)topic_len;
	/* dispatch ids are "b<run>-<uuid>" */
	if (p && atoi(p + strlen(DISPATCH_TAG)) == atomic_load(&b->run) &&
	    atomic_fetch_add(&b->received, 1) + 1 == b->n)
		atomic_store(&b->t_recv, bench_now());
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_published(void *ctx, MQTTAsync_successData *resp)
{
	struct bare_ctx *b = ctx;

	(void)resp;
	if (atomic_fetch_add(&b->confirmed, 1) + 1 == b->n)
		atomic_store(&b->t_conf, bench_now());
}

static void on_publish_failed(void *ctx, MQTTAsync_failureData *resp)
{
	(void)ctx;
	fprintf(stderr, "v2g-bench-slice: a bare publish failed (paho %d)\n",
	        resp ? resp->code : -1);
}

/* One burst. Topics are prepared by the caller, payloads here (before the
 * clock starts). */
static int one_run(struct bench_mq *pub, struct bare_ctx *b, char **topics, int run,
                   double timeout_s, double *recv_ms, double *conf_ms)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTAsync_message m = MQTTAsync_message_initializer;
	char uuid[37], ts[40], payload[256];
	double t0, deadline;
	int i, rc, len;

	v2g_uuid(uuid);
	v2g_time_format(v2g_now_ms(), ts, sizeof(ts));
	/* What the gateway sends:
	 * {"dispatch_id","signal_type","power_kw","duration_min","issued_at"}. */
	len = snprintf(payload, sizeof(payload),
	               "{\"dispatch_id\":\"b%d-%s\",\"signal_type\":\"FCR\",\"power_kw\":7.4,"
	               "\"duration_min\":15,\"issued_at\":\"%s\"}",
	               run, uuid, ts);
	atomic_store(&b->received, 0);
	atomic_store(&b->confirmed, 0);
	atomic_store(&b->t_recv, 0.0);
	atomic_store(&b->t_conf, 0.0);
	atomic_store(&b->run, run);
	ro.onSuccess = on_published;
	ro.onFailure = on_publish_failed;
	ro.context = b;
	m.payload = payload;
	m.payloadlen = len;
	m.qos = 1;

	t0 = bench_now();
	deadline = t0 + timeout_s;
	for (i = 0; i < b->n; i++) {
		while ((rc = MQTTAsync_sendMessage(pub->cli, topics[i], &m, &ro)) !=
		       MQTTASYNC_SUCCESS) {
			/* Out of message ids (more than 65535 in flight): let PUBACKs come. */
			if ((rc != MQTTASYNC_NO_MORE_MSGIDS &&
			     rc != MQTTASYNC_MAX_BUFFERED_MESSAGES) ||
			    bench_now() > deadline) {
				fprintf(stderr,
				        "v2g-bench-slice: bare publish %d/%d refused (paho %d)\n",
				        i, b->n, rc);
				return -1;
			}
			usleep(200);
		}
	}
	while ((atomic_load(&b->received) < b->n || atomic_load(&b->confirmed) < b->n) &&
	       bench_now() < deadline)
		usleep(500);
	if (atomic_load(&b->received) < b->n || atomic_load(&b->confirmed) < b->n) {
		fprintf(stderr,
		        "v2g-bench-slice: bare run %d: %d/%d received, %d/%d confirmed after %.0f "
		        "s "
		        "(is the broker dropping QoS 1 messages? set max_queued_messages 0)\n",
		        run, atomic_load(&b->received), b->n, atomic_load(&b->confirmed), b->n,
		        timeout_s);
		return -1;
	}
	*recv_ms = (atomic_load(&b->t_recv) - t0) * 1000.0;
	*conf_ms = (atomic_load(&b->t_conf) - t0) * 1000.0;
	return 0;
}

int bench_bare_run(const char *uri, const char *prefix, int n, int repeat, double timeout_s,
                   double *recv_ms, double *conf_ms)
{
	char filter[96];
	struct bench_mq pub, sub;
	struct bare_ctx *b;
	char **topics = NULL, id[64];
	int i, rc = -1;

	b = calloc(1, sizeof(*b));
	topics = calloc((size_t)n, sizeof(*topics));
	if (!b || !topics) {
		fprintf(stderr, "v2g-bench-slice: out of memory\n");
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		if (!(topics[i] = malloc(96))) {
			fprintf(stderr, "v2g-bench-slice: out of memory\n");
			goto out_free;
		}
		snprintf(topics[i], 96, "%ssim-%05d/command", prefix, i);
	}
	b->n = n;
	atomic_init(&b->run, -1);

	snprintf(id, sizeof(id), "v2g-bench-sub-%d", (int)getpid());
	if (bench_mq_open(&sub, uri, id, on_command, b, 5000) != 0)
		goto out_free;
	snprintf(id, sizeof(id), "v2g-bench-pub-%d", (int)getpid());
	if (bench_mq_open(&pub, uri, id, NULL, NULL, 5000) != 0)
		goto out_sub;
	snprintf(filter, sizeof(filter), "%s+/command", prefix);
	if (bench_mq_subscribe(&sub, filter, 1, 5000) != 0)
		goto out_pub;
	for (i = 0; i < repeat; i++) {
		if (one_run(&pub, b, topics, i, timeout_s, &recv_ms[i], &conf_ms[i]) != 0)
			goto out_pub;
		usleep(300000); /* let the broker settle between bursts */
	}
	rc = 0;
out_pub:
	bench_mq_close(&pub);
out_sub:
	bench_mq_close(&sub);
out_free:
	for (i = 0; topics && i < n; i++)
		free(topics[i]);
	free(topics);
	free(b);
	return rc;
}
