/* Watchdog timers (DLM guide 1.2): detect a stalled or hung activity.
 *
 * A watchdog is armed by v2g_watchdog_start and re-armed by every
 * v2g_watchdog_kick (the guide's reset()); if timeout_ms passes without a
 * kick, it has expired. Nothing runs by itself: the owner's loop calls
 * v2g_watchdog_poll(registry, now_ms), which fires each expired watchdog's
 * on_timeout callback ONCE per expiry (a watchdog fired at 30 s does not
 * fire again at 60 s; the next kick re-arms it, and it can expire again).
 * Expiry is at now_ms >= last kick + timeout_ms, like setTimeout.
 *
 * Watchdogs belong to a registry (the caller owns the registry; there is no
 * global one) and live until the registry is freed; a stopped watchdog stays
 * listed. Time is whatever clock the caller passes (monotonic recommended;
 * last_kick_at in the status is in that clock).
 *
 * Thread-safety: all functions may be called from any thread (one mutex per
 * registry): the loop polls while workers kick and REST threads read the
 * status. Callbacks run on the polling thread with no lock held, so they may
 * kick, stop or create watchdogs. */
#ifndef V2G_WATCHDOG_H
#define V2G_WATCHDOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct v2g_watchdog;
struct v2g_watchdog_registry;

/* The timeout action. name is the watchdog's (borrowed for the call);
 * overdue_ms is how far past the deadline the poll noticed it. */
typedef void (*v2g_watchdog_fn)(void *arg, const char *name, int64_t overdue_ms);

struct v2g_watchdog_registry *v2g_watchdog_registry_new(void); /* NULL on ENOMEM */
/* Frees the registry and every watchdog in it; no callback runs. */
void v2g_watchdog_registry_free(struct v2g_watchdog_registry *r);

/* Creates a stopped watchdog (name copied; on_timeout may be NULL: the expiry
 * is then only counted and shown). *out is borrowed from the registry and
 * stays valid until v2g_watchdog_registry_free. Returns 0, V2G_ERR_INVAL
 * (empty name, timeout_ms < 1, or the name is taken) or V2G_ERR_NOMEM. */
int v2g_watchdog_create(struct v2g_watchdog_registry *r, const char *name, int64_t timeout_ms,
                        v2g_watchdog_fn on_timeout, void *arg, struct v2g_watchdog **out);
/* The named watchdog (borrowed) or NULL. */
struct v2g_watchdog *v2g_watchdog_find(struct v2g_watchdog_registry *r, const char *name);

/* Arms the watchdog at now_ms (restarts it if running; clears "expired"). */
void v2g_watchdog_start(struct v2g_watchdog *w, int64_t now_ms);
/* Re-arms a running watchdog at now_ms (also one that has expired); no
 * effect on a stopped one. */
void v2g_watchdog_kick(struct v2g_watchdog *w, int64_t now_ms);
/* Disarms it; it will not fire until started again. */
void v2g_watchdog_stop(struct v2g_watchdog *w);

/* Fires on_timeout for every running watchdog that has expired at now_ms
 * and has not fired since its last start/kick. Returns how many fired. */
size_t v2g_watchdog_poll(struct v2g_watchdog_registry *r, int64_t now_ms);

/* The earliest deadline among running, unfired watchdogs, or INT64_MAX if
 * none: lets a loop sleep exactly until the next poll is needed. */
int64_t v2g_watchdog_next_deadline(struct v2g_watchdog_registry *r);

/* 1 if the watchdog has fired since its last start/kick. */
int v2g_watchdog_expired(struct v2g_watchdog *w);
/* How many times it has fired since creation. */
uint64_t v2g_watchdog_expiries(struct v2g_watchdog *w);

/* GET /api/watchdogs: a JSON array, in creation order, of
 * {"name","running","timeout_ms","last_kick_at","expired","expiries",
 *  "remaining_ms"}: last_kick_at is null if never started; expired is true
 * if it fired or is past its deadline at now_ms; remaining_ms is null when
 * stopped. New reference (json_decref), NULL only on allocation failure. */
json_t *v2g_watchdog_registry_status(struct v2g_watchdog_registry *r, int64_t now_ms);

#endif
