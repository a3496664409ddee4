#include "v2g/health.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"
#include "v2g/sync.h"

#define MAX_CHECKS 32

struct check {
	char name[48];
	int critical;
	v2g_health_fn fn;
	void *arg;
	int ok;
	char detail[160];
	int64_t checked_ms;
};

struct v2g_health {
	char service[64];
	int interval_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct check checks[MAX_CHECKS];
	size_t n;
	pthread_t thread;
	int started, stopping, stopped;
	int64_t started_ms;
	struct v2g_metric *m_up;
};

struct v2g_health *v2g_health_new(const char *service, int interval_ms)
{
	struct v2g_health *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	snprintf(h->service, sizeof(h->service), "%s", service);
	h->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	pthread_mutex_init(&h->mu, NULL);
	v2g_cond_init_mono(&h->cv);
	h->started_ms = v2g_now_ms();
	h->m_up = v2g_gauge("health_check_up", "1 when the named dependency check passes", "check");
	return h;
}

int v2g_health_add(struct v2g_health *h, const char *name, int critical, v2g_health_fn fn,
                   void *arg)
{
	int rc = V2G_OK;
	pthread_mutex_lock(&h->mu);
	if (h->n == MAX_CHECKS) {
		rc = V2G_ERR_NOMEM;
	} else {
		struct check *c = &h->checks[h->n++];
		snprintf(c->name, sizeof(c->name), "%s", name);
		c->critical = critical;
		c->fn = fn;
		c->arg = arg;
		c->ok = 0;
		snprintf(c->detail, sizeof(c->detail), fn ? "not yet checked" : "not yet reported");
	}
	pthread_mutex_unlock(&h->mu);
	if (rc == V2G_OK)
		v2g_gauge_set(h->m_up, name, 0);
	return rc;
}

static struct check *find(struct v2g_health *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++) {
		if (!strcmp(h->checks[i].name, name))
			return &h->checks[i];
	}
	return NULL;
}

static void record(struct v2g_health *h, struct check *c, int ok, const char *detail)
{
	/* h->mu held */
	if (c->ok != ok && c->checked_ms) {
		if (ok)
			v2g_info("HEALTH-UP", "check %s passes%s%s", c->name,
			         detail && *detail ? ": " : "", detail ? detail : "");
		else
			v2g_warn("HEALTH-DOWN", "check %s fails: %s", c->name,
			         detail ? detail : "");
	}
	c->ok = ok;
	snprintf(c->detail, sizeof(c->detail), "%s", detail ? detail : "");
	c->checked_ms = v2g_now_ms();
	v2g_gauge_set(h->m_up, c->name, ok);
}

void v2g_health_set(struct v2g_health *h, const char *name, int ok, const char *detail)
{
	pthread_mutex_lock(&h->mu);
	struct check *c = find(h, name);
	if (c)
		record(h, c, ok, detail);
	pthread_mutex_unlock(&h->mu);
}

/* Runs every probe once; probes run without the lock held. Once stopping,
 * no further probe starts, and the result of one in progress (perhaps cut
 * short by the shutdown) is not recorded. */
static void run_all(struct v2g_health *h)
{
	pthread_mutex_lock(&h->mu);
	size_t n = h->n;
	pthread_mutex_unlock(&h->mu);
	for (size_t i = 0; i < n; i++) {
		struct check *c = &h->checks[i];
		if (!c->fn)
			continue;
		pthread_mutex_lock(&h->mu);
		int stopping = h->stopping;
		pthread_mutex_unlock(&h->mu);
		if (stopping)
			return;
		char detail[160] = "";
		int ok = c->fn(c->arg, detail, sizeof(detail)) == 0;
		pthread_mutex_lock(&h->mu);
		if (!h->stopping)
			record(h, c, ok, detail);
		pthread_mutex_unlock(&h->mu);
	}
}

static void *health_main(void *arg)
{
	struct v2g_health *h = arg;
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		v2g_cond_wait_ms(&h->cv, &h->mu, h->interval_ms);
		if (h->stopping)
			break;
		pthread_mutex_unlock(&h->mu);
		run_all(h);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int v2g_health_start(struct v2g_health *h)
{
	run_all(h);
	if (pthread_create(&h->thread, NULL, health_main, h) != 0)
		return V2G_ERR_IO;
	h->started = 1;
	return V2G_OK;
}

void v2g_health_stop(struct v2g_health *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	int join = h->started && !h->stopped;
	h->stopping = 1;
	h->stopped = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (join)
		pthread_join(h->thread, NULL);
}

void v2g_health_free(struct v2g_health *h)
{
	if (!h)
		return;
	v2g_health_stop(h);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h);
}

int v2g_health_ready(struct v2g_health *h)
{
	int ready = 1;
	pthread_mutex_lock(&h->mu);
	if (h->stopped)
		ready = 0;
	for (size_t i = 0; i < h->n; i++) {
		if (h->checks[i].critical && !h->checks[i].ok)
			ready = 0;
	}
	pthread_mutex_unlock(&h->mu);
	return ready;
}

char *v2g_health_json(struct v2g_health *h)
{
	json_t *checks = json_object();
	int ready = 1;
	char ts[40];
	pthread_mutex_lock(&h->mu);
	if (h->stopped)
		ready = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct check *c = &h->checks[i];
		if (c->critical && !c->ok)
			ready = 0;
		v2g_time_format(c->checked_ms, ts, sizeof(ts));
		json_object_set_new(checks, c->name,
		                    json_pack("{s:b, s:b, s:s, s:s?}", "ok", c->ok, "critical",
		                              c->critical, "detail", c->detail, "checked_at",
		                              c->checked_ms ? ts : NULL));
	}
	double uptime = (double)(v2g_now_ms() - h->started_ms) / 1000.0;
	pthread_mutex_unlock(&h->mu);
	json_t *o = json_pack("{s:s, s:s, s:f, s:o}", "service", h->service, "status",
	                      h->stopped ? "stopping"
	                      : ready    ? "ready"
	                                 : "not_ready",
	                      "uptime_seconds", uptime, "checks", checks);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}
