/* Sending audit events to the store (DLM guide 1.7: "persisted by the
 * store"). Any service that records audit events owns one sink.
 *
 * v2g_audit_sink_emit() never blocks the caller: it encodes the event
 * (v2g_audit_event_encode) into a bounded in-memory queue; a sender thread
 * PUSHes AuditBatch envelopes (up to 100 events each) to bus.store_in. While
 * the store is unreachable the queue holds the events and the sender
 * retries with backoff, so nothing is lost unless the queue overflows
 * (then the oldest events are dropped, counted and logged once per
 * minute: AUDIT-DROPPED). On stop the sender tries once more to hand over
 * what is queued (for at most drain_ms); what is still queued then is lost
 * (AUDIT-LOST). An event counts as sent once the store's connection took
 * it (the PUSH socket keeps no buffer of its own, so nothing sits in nng
 * while the store is away). AUDIT-STORE-DOWN / AUDIT-STORE-UP: the store
 * unreachable for 5 s with events waiting, and back.
 *
 * Each event is also logged as one AUDIT line at info level (category,
 * action, actor, target, success), so the audit trail survives in the logs
 * even without a store.
 *
 * Metrics: audit_events_total{category} (emitted), audit_events_sent_total,
 * audit_events_dropped_total (overflow, and lost at stop), audit_queue_depth.
 *
 * Thread-safety: emit from any thread. */
#ifndef V2G_AUDIT_SINK_H
#define V2G_AUDIT_SINK_H

#include <stddef.h>

#include "v2g/audit.h"

#define V2G_AUDIT_SINK_DEFAULT_QUEUE 10000

struct v2g_audit_sink;

/* Opens a PUSH socket dialing addr (bus.store_in) and starts the sender.
 * queue_max 0 = the default. 0 or a v2g error. */
int v2g_audit_sink_start(struct v2g_audit_sink **out, const char *addr, size_t queue_max);

/* Queues ev (borrowed; copied as JSON text). 0, V2G_ERR_NOMEM, or
 * V2G_ERR_INVAL for a NULL sink or event. A full queue drops its oldest
 * event, not this one. */
int v2g_audit_sink_emit(struct v2g_audit_sink *s, const struct v2g_audit_event *ev);

/* Events waiting to be sent. */
size_t v2g_audit_sink_pending(struct v2g_audit_sink *s);

/* Stops the sender after trying to send what is queued for at most
 * drain_ms (0: no further try), closes the socket, frees. No emit may run
 * concurrently or after. NULL is fine. */
void v2g_audit_sink_stop(struct v2g_audit_sink *s, int drain_ms);

#endif
