/* The MQTT connection (paho MQTTAsync): connect with TLS/credentials and a
 * retained last will, reconnect with backoff, re-subscribe and announce
 * "online" on every (re)connect, publish with completion callbacks.
 *
 * Every callback given here runs on a paho thread: it must not block (decode,
 * enqueue, signal; nothing else). */
#ifndef VGW_MQTT_EDGE_H
#define VGW_MQTT_EDGE_H

#include <stddef.h>

struct vgw_mqtt;

/* Completion of one publish. Embed it in your own context struct and pass a
 * pointer to it: many publishes may share one (e.g. a whole command batch).
 * done() runs once per accepted publish, on a paho thread. */
struct vgw_mqtt_pending {
	void (*done)(struct vgw_mqtt_pending *p, int ok);
};

struct vgw_mqtt_handlers {
	/* One message; topic and payload are borrowed for the call only. */
	void (*message)(void *arg, const char *topic, size_t topic_len, const void *payload,
	                size_t len);
	/* The connection came up (subscriptions requested) or went down. */
	void (*link)(void *arg, int up, const char *detail);
	void *arg;
};

struct vgw_mqtt_opts {
	const char *broker; /* tcp://host:port or ssl://host:port */
	const char *client_id;
	const char *username; /* "" = none */
	const char *password;
	const char *ca_bundle; /* ssl:// only; "" = system trust store */
	const char *client_cert;
	const char *client_key;
	int keepalive_s;
	int reconnect_min_ms;
	int reconnect_max_ms;
	const char *lwt_topic;   /* "offline" retained QoS 1 as will, "online" on connect */
	const char *const *subs; /* topic filters (copied) */
	const int *sub_qos;
	int nsubs;
};

/* Creates the client and starts connecting in the background (the first
 * attempt at once, then with backoff). Copies every option. Returns 0,
 * V2G_ERR_CONFIG (paho refused the URI or options) or V2G_ERR_NOMEM. */
int vgw_mqtt_open(struct vgw_mqtt **out, const struct vgw_mqtt_opts *o,
                  const struct vgw_mqtt_handlers *h);

/* Queues one message. Returns 0 when paho accepted it (p->done will be
 * called exactly once, p may be NULL), else V2G_ERR_UNAVAILABLE
 * (disconnected) or V2G_ERR_IO, and p->done is never called. Never waits for
 * the network: safe from any thread but not while holding a lock that a
 * done() callback takes. */
int vgw_mqtt_publish(struct vgw_mqtt *m, const char *topic, const void *payload, size_t len,
                     int qos, int retained, struct vgw_mqtt_pending *p);

int vgw_mqtt_is_connected(struct vgw_mqtt *m);

/* Publishes "offline" (retained) if connected, disconnects cleanly and
 * destroys the client, waiting at most timeout_ms in all. No callback runs
 * after it returns. NULL ok. */
void vgw_mqtt_close(struct vgw_mqtt *m, int timeout_ms);

#endif
