/* The internal bus: nng sockets carrying one protobuf Envelope per message.
 *
 * Patterns: PUB/SUB for events that may be dropped (telemetry), PUSH/PULL
 * for one-way messages that must arrive (commands, acks, decisions),
 * REQ/REP for queries. Listeners bind; peers dial in the background and
 * reconnect by themselves. Every REP server answers Ping with Pong, so a
 * peer's reachability is one round trip. */
#ifndef V2G_BUS_H
#define V2G_BUS_H

#include <nng/nng.h>
#include <stdint.h>
#include "v2g/v1/envelope.pb-c.h"

typedef V2g__V1__Envelope v2g_env;

/* Largest bus message accepted (a 10k-vehicle batch is ~300 kB). */
#define V2G_BUS_MAX_MSG (64u * 1024u * 1024u)

/* PUSH keeps up to 1024 messages while no peer is connected, delivered when
 * one comes. PUSH_SYNC keeps none: a send succeeds only once a connected
 * peer takes the message, and fails (after its timeout) while the peer is
 * away. For senders that must see an absent peer (a breaker, a failure
 * count, a queue of their own) and must not deliver a stale backlog. */
enum v2g_bus_kind { V2G_BUS_PUB, V2G_BUS_SUB, V2G_BUS_PUSH, V2G_BUS_PULL, V2G_BUS_PUSH_SYNC };

/* Peers connected to a socket right now, kept by nng pipe events. A
 * subscriber misses what is published before its connection is up: a
 * readiness check on the count closes that window. */
struct v2g_bus_peers;
int v2g_bus_peers_count(struct v2g_bus_peers *p);
/* Free only after the socket is closed (events stop then). */
void v2g_bus_peers_free(struct v2g_bus_peers *p);

/* Opens a socket of kind and listens (listen=1) or dials (listen=0, non-
 * blocking: the peer may come later) on url. SUB sockets subscribe to all. */
int v2g_bus_open(nng_socket *s, enum v2g_bus_kind kind, const char *url, int listen);
/* The same, counting the socket's connected peers in *peers from before the
 * first connection can happen (see v2g_bus_peers_count). */
int v2g_bus_open_watched(nng_socket *s, enum v2g_bus_kind kind, const char *url, int listen,
                         struct v2g_bus_peers **peers);

/* Sets sender/version/sent_ms, packs and sends. Blocks at most timeout_ms
 * (PUSH with no peer waits; -1 = forever). Borrows env. */
int v2g_bus_send(nng_socket s, v2g_env *env, int timeout_ms);

/* Receives one envelope; *out is freed with v2g_env_free(). Returns
 * V2G_ERR_TIMEOUT, V2G_ERR_CLOSED, or V2G_ERR_PROTO for undecodable bytes
 * (counted in bus_decode_errors_total; the caller just goes on). Closing s
 * (nng_close) from another thread ends a receive in progress at once with
 * V2G_ERR_CLOSED: that is how a receiving thread is woken at shutdown,
 * rather than waiting out its timeout. */
int v2g_bus_recv(nng_socket s, v2g_env **out, int timeout_ms);
void v2g_env_free(v2g_env *env);

/* Name used as Envelope.sender (set once at start). */
void v2g_bus_set_sender(const char *service);

/* --- cancelling calls ------------------------------------------------- */

/* A cancel token, so that a shutdown never waits out a call's timeout: once
 * fired, every call made under it that is still in progress ends at once
 * with V2G_ERR_CLOSED, and every later one fails the same way without
 * sending anything. Firing is for good and idempotent; fire from any
 * thread. Free only when no call uses the token any more. */
struct v2g_bus_cancel;
int v2g_bus_cancel_new(struct v2g_bus_cancel **out);
void v2g_bus_cancel_fire(struct v2g_bus_cancel *t);
int v2g_bus_cancel_fired(struct v2g_bus_cancel *t);
void v2g_bus_cancel_free(struct v2g_bus_cancel *t);

/* --- req/rep ---------------------------------------------------------- */

struct v2g_bus_client; /* a REQ socket dialed to one server; thread-safe */

int v2g_bus_client_open(struct v2g_bus_client **out, const char *url);
void v2g_bus_client_close(struct v2g_bus_client *c);
/* Sends req, waits for the reply (freed with v2g_env_free). A reply whose
 * body is an Error is returned as 0 with that body: callers check. */
int v2g_bus_call(struct v2g_bus_client *c, v2g_env *req, v2g_env **rep, int timeout_ms);
/* The same, cut short by cancel (NULL: like v2g_bus_call). */
int v2g_bus_call_cancellable(struct v2g_bus_client *c, v2g_env *req, v2g_env **rep, int timeout_ms,
                             struct v2g_bus_cancel *cancel);
/* Ping round trip; 0 when the server answered (ready or not). */
int v2g_bus_ping(struct v2g_bus_client *c, int timeout_ms, int *ready);
int v2g_bus_ping_cancellable(struct v2g_bus_client *c, int timeout_ms, int *ready,
                             struct v2g_bus_cancel *cancel);

struct v2g_bus_server;
struct v2g_bus_reply; /* one pending request's reply slot */

/* Handles one request. Must call v2g_bus_reply_send() at most once; if it
 * does not, the server answers Error 500. Runs on a server worker thread. */
typedef void (*v2g_bus_handler)(void *arg, const v2g_env *req, struct v2g_bus_reply *rep);

/* Listens on url with nworkers concurrent contexts. Ping is answered by the
 * server itself, with ready = ready_fn(ready_arg) (NULL: always ready). */
int v2g_bus_server_start(struct v2g_bus_server **out, const char *url, int nworkers,
                         v2g_bus_handler fn, void *arg, int (*ready_fn)(void *), void *ready_arg);
/* Stops taking requests at once (idle workers are woken, not waited for),
 * lets the handlers in progress finish and send their replies, then closes
 * the socket and frees. Requests not yet taken by a worker are dropped (the
 * caller's call times out). NULL is fine. */
void v2g_bus_server_stop(struct v2g_bus_server *s);

/* Packs and sends the reply; borrows env. */
int v2g_bus_reply_send(struct v2g_bus_reply *rep, v2g_env *env);
/* Replies with Error{code, message}. */
int v2g_bus_reply_error(struct v2g_bus_reply *rep, int code, const char *msg);

#endif
