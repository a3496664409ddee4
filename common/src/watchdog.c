/* Watchdog registry; see v2g/watchdog.h for the contract. Watchdogs are few
 * (one per supervised activity), so lookups are a linear scan. */
#include "v2g/watchdog.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

struct v2g_watchdog {
	struct v2g_watchdog_registry *r;
	char *name; /* never changes: callbacks may borrow it without the lock */
	int64_t timeout_ms;
	v2g_watchdog_fn fn;
	void *arg;
	int running;
	int started; /* ever started: last_kick_at is meaningful */
	int fired;   /* since the last start/kick */
	int64_t last_kick_at;
	uint64_t expiries;
};

struct v2g_watchdog_registry {
	pthread_mutex_t mu;
	struct v2g_watchdog **items;
	size_t n, cap;
};

struct v2g_watchdog_registry *v2g_watchdog_registry_new(void)
{
	struct v2g_watchdog_registry *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	return r;
}

void v2g_watchdog_registry_free(struct v2g_watchdog_registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->items[i]->name);
		free(r->items[i]);
	}
	free(r->items);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static struct v2g_watchdog *find_locked(struct v2g_watchdog_registry *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->items[i]->name, name))
			return r->items[i];
	return NULL;
}

int v2g_watchdog_create(struct v2g_watchdog_registry *r, const char *name, int64_t timeout_ms,
                        v2g_watchdog_fn on_timeout, void *arg, struct v2g_watchdog **out)
{
	if (!r || !name || !*name || timeout_ms < 1 || !out)
		return V2G_ERR_INVAL;
	struct v2g_watchdog *w = calloc(1, sizeof(*w));
	if (!w)
		return V2G_ERR_NOMEM;
	w->name = strdup(name);
	if (!w->name) {
		free(w);
		return V2G_ERR_NOMEM;
	}
	w->r = r;
	w->timeout_ms = timeout_ms;
	w->fn = on_timeout;
	w->arg = arg;

	int rc = V2G_OK;
	pthread_mutex_lock(&r->mu);
	if (find_locked(r, name)) {
		rc = V2G_ERR_INVAL;
	} else if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct v2g_watchdog **it = realloc(r->items, cap * sizeof(*it));
		if (it) {
			r->items = it;
			r->cap = cap;
		} else {
			rc = V2G_ERR_NOMEM;
		}
	}
	if (rc == V2G_OK)
		r->items[r->n++] = w;
	pthread_mutex_unlock(&r->mu);
	if (rc != V2G_OK) {
		free(w->name);
		free(w);
		return rc;
	}
	*out = w;
	return V2G_OK;
}

struct v2g_watchdog *v2g_watchdog_find(struct v2g_watchdog_registry *r, const char *name)
{
	if (!r || !name)
		return NULL;
	pthread_mutex_lock(&r->mu);
	struct v2g_watchdog *w = find_locked(r, name);
	pthread_mutex_unlock(&r->mu);
	return w;
}

void v2g_watchdog_start(struct v2g_watchdog *w, int64_t now_ms)
{
	pthread_mutex_lock(&w->r->mu);
	w->running = 1;
	w->started = 1;
	w->fired = 0;
	w->last_kick_at = now_ms;
	pthread_mutex_unlock(&w->r->mu);
}

void v2g_watchdog_kick(struct v2g_watchdog *w, int64_t now_ms)
{
	pthread_mutex_lock(&w->r->mu);
	if (w->running) {
		w->fired = 0;
		w->last_kick_at = now_ms;
	}
	pthread_mutex_unlock(&w->r->mu);
}

void v2g_watchdog_stop(struct v2g_watchdog *w)
{
	pthread_mutex_lock(&w->r->mu);
	w->running = 0;
	w->fired = 0;
	pthread_mutex_unlock(&w->r->mu);
}

size_t v2g_watchdog_poll(struct v2g_watchdog_registry *r, int64_t now_ms)
{
	size_t fired = 0;
	/* One watchdog per lock hold, the callback outside it: callbacks may
	 * call back into the registry. Watchdogs are never removed, so the
	 * index walk stays valid while the array grows. */
	for (size_t i = 0;; i++) {
		pthread_mutex_lock(&r->mu);
		if (i >= r->n) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		struct v2g_watchdog *w = r->items[i];
		int64_t deadline = w->last_kick_at + w->timeout_ms;
		int due = w->running && !w->fired && now_ms >= deadline;
		v2g_watchdog_fn fn = w->fn;
		void *arg = w->arg;
		if (due) {
			w->fired = 1;
			w->expiries++;
		}
		pthread_mutex_unlock(&r->mu);
		if (due) {
			fired++;
			if (fn)
				fn(arg, w->name, now_ms - deadline);
		}
	}
	return fired;
}

int64_t v2g_watchdog_next_deadline(struct v2g_watchdog_registry *r)
{
	int64_t next = INT64_MAX;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n; i++) {
		struct v2g_watchdog *w = r->items[i];
		if (w->running && !w->fired && w->last_kick_at + w->timeout_ms < next)
			next = w->last_kick_at + w->timeout_ms;
	}
	pthread_mutex_unlock(&r->mu);
	return next;
}

int v2g_watchdog_expired(struct v2g_watchdog *w)
{
	pthread_mutex_lock(&w->r->mu);
	int e = w->fired;
	pthread_mutex_unlock(&w->r->mu);
	return e;
}

uint64_t v2g_watchdog_expiries(struct v2g_watchdog *w)
{
	pthread_mutex_lock(&w->r->mu);
	uint64_t n = w->expiries;
	pthread_mutex_unlock(&w->r->mu);
	return n;
}

json_t *v2g_watchdog_registry_status(struct v2g_watchdog_registry *r, int64_t now_ms)
{
	json_t *arr = json_array();
	if (!arr)
		return NULL;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n; i++) {
		struct v2g_watchdog *w = r->items[i];
		int64_t deadline = w->last_kick_at + w->timeout_ms;
		int expired = w->fired || (w->running && now_ms >= deadline);
		json_t *o = json_pack(
		        "{s:s, s:b, s:I, s:o, s:b, s:I, s:o}", "name", w->name, "running",
		        w->running, "timeout_ms", (json_int_t)w->timeout_ms, "last_kick_at",
		        w->started ? json_integer(w->last_kick_at) : json_null(), "expired",
		        expired, "expiries", (json_int_t)w->expiries, "remaining_ms",
		        w->running ? json_integer(deadline > now_ms ? deadline - now_ms : 0)
		                   : json_null());
		if (json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return arr;
}
