/* "At most one per key per interval", with a count of what was held back:
 * the gateway records at most one audit event per client and action a
 * minute (a client hammering a wrong token must not flood the audit log),
 * and the recorded event says how many were not recorded since the
 * previous one.
 *
 * Memory is fixed: a direct-mapped table of slots. When two keys share a
 * slot the newer takes it over and the older starts afresh (its next event
 * passes): a collision can only let an event through, never hold one back
 * that would have passed. Keys longer than API_GATE_KEY_MAX - 1 bytes are
 * cut (two such keys alike up to there share one budget).
 *
 * Thread-safety: any thread (a mutex per gate). */
#ifndef API_GATE_H
#define API_GATE_H

#include <stddef.h>
#include <stdint.h>

#define API_GATE_KEY_MAX 96

struct api_gate;

/* A gate of slots entries (>= 1) letting one event per key through each
 * interval_ms (>= 1). NULL on a bad argument or allocation failure. */
struct api_gate *api_gate_new(size_t slots, int64_t interval_ms);
void api_gate_free(struct api_gate *g); /* NULL is fine */

/* May an event for key at now_ms be recorded? 1: yes, and *held (may be
 * NULL) gets the number of this key's events refused since its previous
 * recorded one; 0: no (counted). A NULL key counts as "". */
int api_gate_pass(struct api_gate *g, const char *key, int64_t now_ms, unsigned long *held);

#endif
