/* A bounded, coalescing FIFO of items keyed by a string (the store queues
 * decisions keyed by dispatch_id). Thread-safe: any number of producers, one
 * or more consumers.
 *
 * Coalescing: pushing an item whose key is already queued replaces the queued
 * item in place (it keeps its turn); the replaced item is freed with the
 * queue's free function. When the queue holds max items, pushing a new key
 * evicts the oldest item and hands it back to the caller, who logs and frees
 * it. Lookup is a linear scan: the queue is short except during a database
 * outage, and max bounds it. */
#ifndef STORE_QUEUE_H
#define STORE_QUEUE_H

#include <stddef.h>

struct store_queue;

/* free_fn releases an item (called on coalescing and by store_queue_free). */
struct store_queue *store_queue_new(size_t max, void (*free_fn)(void *));
/* Frees every item still queued, then the queue. */
void store_queue_free(struct store_queue *q);

enum store_push_result {
	STORE_PUSH_ADDED,     /* appended */
	STORE_PUSH_COALESCED, /* replaced a queued item with the same key */
	STORE_PUSH_EVICTED,   /* appended; *evicted holds the oldest item, dropped */
};

/* Takes ownership of item; key is copied (NULL: an item that never
 * coalesces, as audit batches). Returns V2G_ERR_NOMEM (item not
 * taken) or V2G_ERR_CLOSED (queue closed, item not taken), else 0 with
 * *result set; *evicted is set (caller frees) only for STORE_PUSH_EVICTED. */
int store_queue_push(struct store_queue *q, const char *key, void *item,
                     enum store_push_result *result, void **evicted);

/* Takes the oldest item out (caller owns it). Waits up to timeout_ms (-1:
 * forever). Returns 0, V2G_ERR_TIMEOUT, or V2G_ERR_CLOSED once the queue is
 * closed and empty. */
int store_queue_pop(struct store_queue *q, void **item, int timeout_ms);

/* Refuses further pushes and wakes waiting consumers; queued items can still
 * be popped. */
void store_queue_close(struct store_queue *q);

size_t store_queue_len(struct store_queue *q);

#endif
