/* The write path: a receiver thread takes DispatchDecision envelopes off the
 * bus PULL socket into a bounded coalescing queue; a writer thread drains the
 * queue into PostgreSQL on its own connection.
 *
 * A decision stays queued while PostgreSQL is down or a write fails; the
 * writer reconnects with backoff (200 ms doubling to 5 s). Decisions are
 * dropped only when the queue is full (the oldest goes,
 * store_decisions_dropped_total) or when PostgreSQL refuses the data itself
 * (SQLSTATE class 22/23: a retry cannot succeed and would block every later
 * decision; logged STORE-WRITE-REJECTED, store_decisions_rejected_total). */
#ifndef STORE_WRITER_H
#define STORE_WRITER_H

#include <stddef.h>

struct store_writer;

/* Listens with a PULL socket on url and starts both threads. dsn is borrowed
 * and must outlive the writer. Returns 0, or an error (nothing started) when
 * the socket cannot listen or a thread cannot start. */
int store_writer_start(struct store_writer **out, const char *dsn, const char *url, int queue_max);

/* Stops receiving, keeps writing what is queued for at most drain_ms, then
 * stops and frees everything. Returns how many decisions were not written. */
size_t store_writer_stop(struct store_writer *w, int drain_ms);

#endif
