/* Circuit breaker and its registry; see v2g/breaker.h for the contract. */
#include "v2g/breaker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"
#include "v2g/timeutil.h"

struct v2g_breaker {
	char *name;
	struct v2g_breaker_opts o;
	pthread_mutex_t mu;
	enum v2g_breaker_state state;
	int failures;  /* consecutive failures */
	int successes; /* consecutive HALF_OPEN successes */
	int has_failure;
	int64_t last_failure_at;
	int64_t next_attempt_at; /* meaningful while OPEN */
	int trial_out;           /* HALF_OPEN: a trial was let through */
	int64_t trial_since;
	struct v2g_breaker_stats st;
	struct v2g_breaker *hnext; /* registry hash chain */
};

const char *v2g_breaker_state_name(enum v2g_breaker_state s)
{
	switch (s) {
	case V2G_BREAKER_CLOSED: return "CLOSED";
	case V2G_BREAKER_OPEN: return "OPEN";
	case V2G_BREAKER_HALF_OPEN: return "HALF_OPEN";
	}
	return "UNKNOWN";
}

int v2g_breaker_opts_check(const struct v2g_breaker_opts *o)
{
	if (!o || o->failure_threshold < 1 || o->success_threshold < 1 || o->timeout_ms < 1 ||
	    o->reset_timeout_ms < 1 || o->max_retries < 0)
		return V2G_ERR_INVAL;
	return V2G_OK;
}

int v2g_breaker_new(const char *name, const struct v2g_breaker_opts *opts, struct v2g_breaker **out)
{
	static const struct v2g_breaker_opts defaults = V2G_BREAKER_OPTS_DEFAULT;
	if (!opts)
		opts = &defaults;
	if (!name || !*name || !out || v2g_breaker_opts_check(opts))
		return V2G_ERR_INVAL;
	struct v2g_breaker *b = calloc(1, sizeof(*b));
	if (!b)
		return V2G_ERR_NOMEM;
	b->name = strdup(name);
	if (!b->name) {
		free(b);
		return V2G_ERR_NOMEM;
	}
	b->o = *opts;
	b->state = V2G_BREAKER_CLOSED;
	pthread_mutex_init(&b->mu, NULL);
	*out = b;
	return V2G_OK;
}

void v2g_breaker_free(struct v2g_breaker *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->mu);
	free(b->name);
	free(b);
}

/* The helpers below run with b->mu held. */
static void set_state(struct v2g_breaker *b, enum v2g_breaker_state s)
{
	if (b->state == s)
		return;
	b->state = s;
	b->st.state_changes++;
	if (s == V2G_BREAKER_OPEN)
		b->st.opened++;
}

static void trip(struct v2g_breaker *b, int64_t now_ms)
{
	set_state(b, V2G_BREAKER_OPEN);
	b->next_attempt_at = now_ms + b->o.reset_timeout_ms;
	b->successes = 0;
	b->trial_out = 0;
}

static void record_failure(struct v2g_breaker *b, int64_t now_ms)
{
	b->st.failures++;
	b->failures++;
	b->has_failure = 1;
	b->last_failure_at = now_ms;
	switch (b->state) {
	case V2G_BREAKER_HALF_OPEN:
		/* the trial failed: the dependency is still down */
		trip(b, now_ms);
		break;
	case V2G_BREAKER_CLOSED:
		if (b->failures >= b->o.failure_threshold)
			trip(b, now_ms);
		break;
	case V2G_BREAKER_OPEN:
		/* a late report from a call let through before it opened: counted,
		 * but it does not push the next attempt further out */
		break;
	}
}

int v2g_breaker_allow(struct v2g_breaker *b, int64_t now_ms)
{
	int rc = V2G_OK;
	pthread_mutex_lock(&b->mu);
	if (b->state == V2G_BREAKER_OPEN && now_ms >= b->next_attempt_at) {
		set_state(b, V2G_BREAKER_HALF_OPEN);
		b->successes = 0;
		b->trial_out = 0;
	}
	if (b->state == V2G_BREAKER_HALF_OPEN && b->trial_out &&
	    now_ms - b->trial_since > b->o.timeout_ms) {
		/* the trial's outcome never came: it timed out */
		b->st.timeouts++;
		record_failure(b, now_ms);
	}
	switch (b->state) {
	case V2G_BREAKER_OPEN: rc = V2G_ERR_UNAVAILABLE; break;
	case V2G_BREAKER_HALF_OPEN:
		if (b->trial_out) {
			rc = V2G_ERR_UNAVAILABLE;
		} else {
			b->trial_out = 1;
			b->trial_since = now_ms;
		}
		break;
	case V2G_BREAKER_CLOSED: break;
	}
	if (rc == V2G_OK)
		b->st.calls++;
	else
		b->st.rejected++;
	pthread_mutex_unlock(&b->mu);
	return rc;
}

void v2g_breaker_success(struct v2g_breaker *b, int64_t now_ms, int64_t duration_ms)
{
	pthread_mutex_lock(&b->mu);
	if (duration_ms > b->o.timeout_ms) {
		b->st.timeouts++;
		record_failure(b, now_ms);
	} else {
		b->st.successes++;
		switch (b->state) {
		case V2G_BREAKER_CLOSED: b->failures = 0; break;
		case V2G_BREAKER_HALF_OPEN:
			b->trial_out = 0;
			if (++b->successes >= b->o.success_threshold) {
				set_state(b, V2G_BREAKER_CLOSED);
				b->failures = 0;
				b->successes = 0;
			}
			break;
		case V2G_BREAKER_OPEN: break; /* late report: the reset timeout decides */
		}
	}
	pthread_mutex_unlock(&b->mu);
}

void v2g_breaker_failure(struct v2g_breaker *b, int64_t now_ms)
{
	pthread_mutex_lock(&b->mu);
	record_failure(b, now_ms);
	pthread_mutex_unlock(&b->mu);
}

int v2g_breaker_run(struct v2g_breaker *b, int (*op)(void *arg), void *arg, int64_t (*clock)(void))
{
	if (!b || !op)
		return V2G_ERR_INVAL;
	if (!clock)
		clock = v2g_mono_ms;
	pthread_mutex_lock(&b->mu);
	int attempts = 1 + b->o.max_retries;
	int64_t timeout_ms = b->o.timeout_ms;
	pthread_mutex_unlock(&b->mu);

	int last = V2G_ERR_UNAVAILABLE;
	for (int i = 0; i < attempts; i++) {
		int64_t t0 = clock();
		if (v2g_breaker_allow(b, t0) != V2G_OK)
			return V2G_ERR_UNAVAILABLE;
		int rc = op(arg);
		int64_t t1 = clock();
		if (rc == V2G_OK) {
			v2g_breaker_success(b, t1, t1 - t0);
			if (t1 - t0 <= timeout_ms)
				return V2G_OK;
			last = V2G_ERR_TIMEOUT;
		} else {
			v2g_breaker_failure(b, t1);
			last = rc;
		}
	}
	return last;
}

int64_t v2g_breaker_backoff_ms(int attempt)
{
	if (attempt < 0)
		attempt = 0;
	if (attempt >= 6)
		return 60000;
	int64_t ms = (int64_t)1000 << attempt;
	return ms > 60000 ? 60000 : ms;
}

enum v2g_breaker_state v2g_breaker_state(struct v2g_breaker *b)
{
	pthread_mutex_lock(&b->mu);
	enum v2g_breaker_state s = b->state;
	pthread_mutex_unlock(&b->mu);
	return s;
}

const char *v2g_breaker_name(const struct v2g_breaker *b)
{
	return b->name;
}

void v2g_breaker_get_stats(struct v2g_breaker *b, struct v2g_breaker_stats *st)
{
	pthread_mutex_lock(&b->mu);
	*st = b->st;
	pthread_mutex_unlock(&b->mu);
}

void v2g_breaker_reset(struct v2g_breaker *b)
{
	pthread_mutex_lock(&b->mu);
	b->state = V2G_BREAKER_CLOSED;
	b->failures = b->successes = 0;
	b->has_failure = 0;
	b->last_failure_at = b->next_attempt_at = 0;
	b->trial_out = 0;
	memset(&b->st, 0, sizeof(b->st));
	pthread_mutex_unlock(&b->mu);
}

json_t *v2g_breaker_status(struct v2g_breaker *b)
{
	pthread_mutex_lock(&b->mu);
	json_t *j = json_pack(
	        "{s:s, s:s, s:i, s:i, s:o, s:o, s:{s:i, s:i, s:I, s:I, s:i}, "
	        "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
	        "name", b->name, "state", v2g_breaker_state_name(b->state), "failures", b->failures,
	        "successes", b->successes, "last_failure_at",
	        b->has_failure ? json_integer(b->last_failure_at) : json_null(), "next_attempt_at",
	        b->state == V2G_BREAKER_OPEN ? json_integer(b->next_attempt_at) : json_null(),
	        "options", "failure_threshold", b->o.failure_threshold, "success_threshold",
	        b->o.success_threshold, "timeout_ms", (json_int_t)b->o.timeout_ms,
	        "reset_timeout_ms", (json_int_t)b->o.reset_timeout_ms, "max_retries",
	        b->o.max_retries, "stats", "calls", (json_int_t)b->st.calls, "rejected",
	        (json_int_t)b->st.rejected, "successes", (json_int_t)b->st.successes, "failures",
	        (json_int_t)b->st.failures, "timeouts", (json_int_t)b->st.timeouts, "state_changes",
	        (json_int_t)b->st.state_changes, "opened", (json_int_t)b->st.opened);
	pthread_mutex_unlock(&b->mu);
	return j;
}

/* ---- registry ---- */

struct v2g_breaker_registry {
	pthread_mutex_t mu;
	struct v2g_breaker **items; /* creation order */
	size_t n, cap;
	struct v2g_breaker **buckets; /* hash chains through hnext */
	size_t nbuckets;              /* power of two */
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct v2g_breaker_registry *v2g_breaker_registry_new(void)
{
	struct v2g_breaker_registry *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->nbuckets = 64;
	r->buckets = calloc(r->nbuckets, sizeof(*r->buckets));
	if (!r->buckets) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	return r;
}

void v2g_breaker_registry_free(struct v2g_breaker_registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		v2g_breaker_free(r->items[i]);
	free(r->items);
	free(r->buckets);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static struct v2g_breaker *find_locked(struct v2g_breaker_registry *r, const char *name)
{
	struct v2g_breaker *b = r->buckets[hash_str(name) & (r->nbuckets - 1)];
	while (b && strcmp(b->name, name) != 0)
		b = b->hnext;
	return b;
}

/* Doubles the bucket array; on allocation failure the table stays as is
 * (longer chains, still correct). */
static void grow_buckets(struct v2g_breaker_registry *r)
{
	size_t nb = r->nbuckets * 2;
	struct v2g_breaker **bk = calloc(nb, sizeof(*bk));
	if (!bk)
		return;
	for (size_t i = 0; i < r->n; i++) {
		struct v2g_breaker *b = r->items[i];
		size_t h = hash_str(b->name) & (nb - 1);
		b->hnext = bk[h];
		bk[h] = b;
	}
	free(r->buckets);
	r->buckets = bk;
	r->nbuckets = nb;
}

int v2g_breaker_registry_get(struct v2g_breaker_registry *r, const char *name,
                             const struct v2g_breaker_opts *opts, struct v2g_breaker **out)
{
	if (!r || !name || !*name || !out)
		return V2G_ERR_INVAL;
	int rc = V2G_OK;
	pthread_mutex_lock(&r->mu);
	struct v2g_breaker *b = find_locked(r, name);
	if (b)
		goto done;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct v2g_breaker **it = realloc(r->items, cap * sizeof(*it));
		if (!it) {
			rc = V2G_ERR_NOMEM;
			goto done;
		}
		r->items = it;
		r->cap = cap;
	}
	rc = v2g_breaker_new(name, opts, &b);
	if (rc != V2G_OK)
		goto done;
	r->items[r->n++] = b;
	size_t h = hash_str(name) & (r->nbuckets - 1);
	b->hnext = r->buckets[h];
	r->buckets[h] = b;
	if (r->n > r->nbuckets)
		grow_buckets(r);
done:
	pthread_mutex_unlock(&r->mu);
	if (rc == V2G_OK)
		*out = b;
	return rc;
}

struct v2g_breaker *v2g_breaker_registry_find(struct v2g_breaker_registry *r, const char *name)
{
	if (!r || !name)
		return NULL;
	pthread_mutex_lock(&r->mu);
	struct v2g_breaker *b = find_locked(r, name);
	pthread_mutex_unlock(&r->mu);
	return b;
}

size_t v2g_breaker_registry_count(struct v2g_breaker_registry *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

struct v2g_breaker *v2g_breaker_registry_at(struct v2g_breaker_registry *r, size_t i)
{
	pthread_mutex_lock(&r->mu);
	struct v2g_breaker *b = i < r->n ? r->items[i] : NULL;
	pthread_mutex_unlock(&r->mu);
	return b;
}

int v2g_breaker_registry_reset(struct v2g_breaker_registry *r, const char *name)
{
	if (name) {
		struct v2g_breaker *b = v2g_breaker_registry_find(r, name);
		if (!b)
			return V2G_ERR_NOTFOUND;
		v2g_breaker_reset(b);
		return V2G_OK;
	}
	/* breakers are never removed, so walking by index outside the lock is safe */
	for (size_t i = 0;; i++) {
		struct v2g_breaker *b = v2g_breaker_registry_at(r, i);
		if (!b)
			break;
		v2g_breaker_reset(b);
	}
	return V2G_OK;
}

json_t *v2g_breaker_registry_status(struct v2g_breaker_registry *r)
{
	json_t *arr = json_array();
	if (!arr)
		return NULL;
	for (size_t i = 0;; i++) {
		struct v2g_breaker *b = v2g_breaker_registry_at(r, i);
		if (!b)
			break;
		if (json_array_append_new(arr, v2g_breaker_status(b)) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}
