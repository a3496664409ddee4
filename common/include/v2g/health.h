/* Health-check registry: named checks, critical or not, run periodically on
 * one thread; /health/ready is ready when every critical check passes. The
 * registry caches results so probes never block on a dependency. */
#ifndef V2G_HEALTH_H
#define V2G_HEALTH_H

#include <stddef.h>

struct v2g_health;

/* A probe: returns 0 when healthy; may write a short detail. Runs on the
 * health thread, may block up to the check interval. */
typedef int (*v2g_health_fn)(void *arg, char *detail, size_t len);

struct v2g_health *v2g_health_new(const char *service, int interval_ms);
void v2g_health_free(struct v2g_health *h); /* stops the thread */

/* Stops running the probes (joins the thread; idempotent) and reports not
 * ready from then on ("stopping"): after it returns no probe runs, so their
 * arguments may be freed. The registry itself stays usable. The thread is
 * woken at once, but a probe in progress is waited for: a probe that can
 * block must be cut short by its owner first (v2g_service_wait does it for
 * v2g_health_bus_peer). A result that comes in after the stop is not
 * recorded. */
void v2g_health_stop(struct v2g_health *h);

/* Registers a probe (fn != NULL) or a pushed check (fn == NULL: its state is
 * set with v2g_health_set, initially failing with "not yet reported"). */
int v2g_health_add(struct v2g_health *h, const char *name, int critical, v2g_health_fn fn,
                   void *arg);
void v2g_health_set(struct v2g_health *h, const char *name, int ok, const char *detail);

/* Starts the periodic thread (runs every probe once first, synchronously). */
int v2g_health_start(struct v2g_health *h);

int v2g_health_ready(struct v2g_health *h); /* 1 if all critical pass */
/* JSON object {"service":…,"status":"ready|not_ready","checks":{…}};
 * caller frees. */
char *v2g_health_json(struct v2g_health *h);

#endif
