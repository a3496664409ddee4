/* The write path: a receiver thread takes DispatchDecision and AuditBatch
 * envelopes off the bus PULL socket into a bounded queue (decisions
 * coalesce by dispatch_id; each audit batch is one item holding its valid
 * events); a writer thread drains the queue into PostgreSQL on its own
 * connection.
 *
 * An item stays queued while PostgreSQL is down or a write fails; the
 * writer reconnects with backoff (200 ms doubling to 5 s). Decisions are
 * dropped only when the queue is full (the oldest goes,
 * store_decisions_dropped_total) or when PostgreSQL refuses the data itself
 * (SQLSTATE class 22/23: a retry cannot succeed and would block every later
 * decision; logged STORE-WRITE-REJECTED, store_decisions_rejected_total).
 *
 * Audit events: an event that does not decode (v2g_audit_event_decode) or
 * that the table cannot hold is refused on receipt (STORE-AUDIT-REJECTED,
 * store_audit_rejected_total{reason="invalid"}); the rest of its batch is
 * queued. A batch PostgreSQL refuses is written again row by row, so only
 * the offending rows go ({reason="database"}). Rows are inserted ON
 * CONFLICT (id) DO NOTHING: a retried batch never duplicates. Dropped
 * events (queue full, or left at exit): store_audit_events_dropped_total. */
#ifndef STORE_WRITER_H
#define STORE_WRITER_H

#include <stddef.h>

struct store_writer;

/* Listens with a PULL socket on url and starts both threads. dsn is borrowed
 * and must outlive the writer. Returns 0, or an error (nothing started) when
 * the socket cannot listen or a thread cannot start. */
int store_writer_start(struct store_writer **out, const char *dsn, const char *url, int queue_max);

/* Stops receiving, keeps writing what is queued for at most drain_ms, then
 * stops and frees everything. Returns how many queued messages (decisions,
 * audit batches) were not written. */
size_t store_writer_stop(struct store_writer *w, int drain_ms);

#endif
