/* Small blocking helpers over paho MQTTAsync for the benchmark's main
 * thread: connect, subscribe and disconnect, each waiting for its callback.
 * The paho callbacks themselves never block; only the caller of these
 * functions waits. */
#ifndef BENCH_MQ_H
#define BENCH_MQ_H

#include <MQTTAsync.h>
#include <pthread.h>

struct bench_mq {
	MQTTAsync cli;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done; /* the pending operation answered */
	int rc;   /* its paho code, 0 = success */
};

/* Creates a client for uri with client_id and connects it (clean session,
 * MQTT 3.1.1), waiting up to timeout_ms. Incoming messages go to on_msg
 * with context ctx (on paho's thread; it must free the message and topic and
 * return 1); on_msg may be NULL for a pure publisher. Returns 0, or -1 after
 * printing why on stderr (then nothing is left to close). */
int bench_mq_open(struct bench_mq *m, const char *uri, const char *client_id,
                  MQTTAsync_messageArrived *on_msg, void *ctx, int timeout_ms);

/* Subscribes to topic at qos and waits for the SUBACK. Returns 0 or -1
 * after printing why. */
int bench_mq_subscribe(struct bench_mq *m, const char *topic, int qos, int timeout_ms);

/* Disconnects (letting QoS 1 exchanges finish for up to 1 s) and destroys
 * the client. Safe on a client whose open failed. */
void bench_mq_close(struct bench_mq *m);

/* CLOCK_MONOTONIC in seconds. */
double bench_now(void);

#endif
