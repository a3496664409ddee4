/* Sliding-window-counter rate limiter; see v2g/ratelimit.h for the contract
 * and the choice of algorithm. Clients live in a chained hash table and on
 * an LRU list (most recently seen at the head), so both idle expiry and
 * eviction take from the tail in O(1). */
#include "v2g/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

/* How many idle clients a check drops from the LRU tail, at most: keeps
 * memory tracking the active set without a separate sweeper. */
#define SWEEP_PER_CHECK 4

struct client {
	struct client *hnext;
	struct client *prev, *next; /* LRU */
	uint64_t hash;
	int64_t win_start; /* start of the current window */
	uint32_t curr, prev_count;
	size_t keylen;
	char key[]; /* NUL-terminated */
};

struct v2g_ratelimit {
	char *name;
	int64_t window_ms;
	int max;
	size_t max_keys;
	pthread_mutex_t mu;
	struct client **buckets;
	size_t nbuckets; /* power of two */
	struct client *head, *tail;
	struct v2g_ratelimit_stats st;
};

static const struct {
	const char *name;
	int64_t window_ms;
	int max;
} tiers[] = {
	[V2G_RATELIMIT_STRICT] = { "strict", 15 * 60 * 1000, 10 },
	[V2G_RATELIMIT_STANDARD] = { "standard", 60 * 1000, 100 },
	[V2G_RATELIMIT_RELAXED] = { "relaxed", 60 * 1000, 300 },
};
#define NTIERS (sizeof(tiers) / sizeof(tiers[0]))

int v2g_ratelimit_tier_params(enum v2g_ratelimit_tier t, int64_t *window_ms, int *max_requests)
{
	if ((unsigned)t >= NTIERS)
		return V2G_ERR_INVAL;
	if (window_ms)
		*window_ms = tiers[t].window_ms;
	if (max_requests)
		*max_requests = tiers[t].max;
	return V2G_OK;
}

const char *v2g_ratelimit_tier_name(enum v2g_ratelimit_tier t)
{
	return (unsigned)t < NTIERS ? tiers[t].name : "unknown";
}

int v2g_ratelimit_tier_parse(const char *s, enum v2g_ratelimit_tier *out)
{
	for (size_t i = 0; s && i < NTIERS; i++) {
		if (!strcmp(s, tiers[i].name)) {
			*out = (enum v2g_ratelimit_tier)i;
			return V2G_OK;
		}
	}
	return V2G_ERR_INVAL;
}

int v2g_ratelimit_new(const char *name, int64_t window_ms, int max_requests, size_t max_keys,
                      struct v2g_ratelimit **out)
{
	if (!name || !out || window_ms < 1 || window_ms > V2G_RATELIMIT_MAX_WINDOW_MS ||
	    max_requests < 1 || max_requests > V2G_RATELIMIT_MAX_REQUESTS)
		return V2G_ERR_INVAL;
	struct v2g_ratelimit *l = calloc(1, sizeof(*l));
	if (!l)
		return V2G_ERR_NOMEM;
	l->name = strdup(name);
	l->nbuckets = 256;
	l->buckets = calloc(l->nbuckets, sizeof(*l->buckets));
	if (!l->name || !l->buckets) {
		free(l->name);
		free(l->buckets);
		free(l);
		return V2G_ERR_NOMEM;
	}
	l->window_ms = window_ms;
	l->max = max_requests;
	l->max_keys = max_keys ? max_keys : V2G_RATELIMIT_DEFAULT_MAX_KEYS;
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return V2G_OK;
}

int v2g_ratelimit_new_tier(enum v2g_ratelimit_tier t, size_t max_keys, struct v2g_ratelimit **out)
{
	if ((unsigned)t >= NTIERS)
		return V2G_ERR_INVAL;
	return v2g_ratelimit_new(tiers[t].name, tiers[t].window_ms, tiers[t].max, max_keys, out);
}

void v2g_ratelimit_free(struct v2g_ratelimit *l)
{
	if (!l)
		return;
	for (struct client *c = l->head, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(l->buckets);
	free(l->name);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static uint64_t hash_key(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* Everything below runs with l->mu held. */

static void lru_unlink(struct v2g_ratelimit *l, struct client *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

static void lru_push_head(struct v2g_ratelimit *l, struct client *c)
{
	c->prev = NULL;
	c->next = l->head;
	if (l->head)
		l->head->prev = c;
	l->head = c;
	if (!l->tail)
		l->tail = c;
}

static void drop(struct v2g_ratelimit *l, struct client *c)
{
	struct client **pp = &l->buckets[c->hash & (l->nbuckets - 1)];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	lru_unlink(l, c);
	l->st.keys--;
	free(c);
}

static int is_idle(const struct v2g_ratelimit *l, const struct client *c, int64_t now_ms)
{
	return now_ms - c->win_start >= 2 * l->window_ms;
}

/* Drops idle clients from the LRU tail, at most limit of them. */
static size_t expire_idle(struct v2g_ratelimit *l, int64_t now_ms, size_t limit)
{
	size_t n = 0;
	while (n < limit && l->tail && is_idle(l, l->tail, now_ms)) {
		drop(l, l->tail);
		l->st.expired++;
		n++;
	}
	return n;
}

static void grow(struct v2g_ratelimit *l)
{
	size_t nb = l->nbuckets * 2;
	struct client **bk = calloc(nb, sizeof(*bk));
	if (!bk)
		return; /* longer chains, still correct */
	for (struct client *c = l->head; c; c = c->next) {
		size_t h = c->hash & (nb - 1);
		c->hnext = bk[h];
		bk[h] = c;
	}
	free(l->buckets);
	l->buckets = bk;
	l->nbuckets = nb;
}

static int64_t floor_to(int64_t t, int64_t w)
{
	int64_t q = t / w;
	if (t % w != 0 && t < 0)
		q--;
	return q * w;
}

/* Brings c's windows up to now_ms. A clock that steps back a little (two
 * threads' now_ms racing) stays in the current window. */
static void roll(const struct v2g_ratelimit *l, struct client *c, int64_t now_ms)
{
	int64_t w = floor_to(now_ms, l->window_ms);
	if (w <= c->win_start)
		return;
	c->prev_count = w == c->win_start + l->window_ms ? c->curr : 0;
	c->curr = 0;
	c->win_start = w;
}

static int64_t offset_in(const struct client *c, int64_t now_ms)
{
	int64_t e = now_ms - c->win_start;
	return e < 0 ? 0 : e;
}

/* Would one more request be allowed at offset e? (integer form of the
 * header's inequality, multiplied through by window_ms) */
static int fits(const struct v2g_ratelimit *l, uint32_t prev, uint32_t curr, int64_t e)
{
	int64_t w = l->window_ms;
	return (int64_t)prev * (w - e) + ((int64_t)curr + 1) * w <= (int64_t)l->max * w;
}

/* The earliest offset into a window with counts (prev, curr) at which one
 * more request fits, given curr + 1 <= max; window_ms if none does before the
 * window ends. */
static int64_t first_fit(const struct v2g_ratelimit *l, uint32_t prev, uint32_t curr)
{
	if (prev == 0)
		return 0;
	int64_t k = (int64_t)l->max - curr - 1; /* >= 0 */
	return l->window_ms - (k * l->window_ms) / prev;
}

/* Milliseconds from now_ms until a request fits, for a client refused now. */
static int64_t wait_ms(const struct v2g_ratelimit *l, const struct client *c, int64_t now_ms)
{
	int64_t at;
	if ((int64_t)c->curr + 1 <= l->max)
		at = c->win_start + first_fit(l, c->prev_count, c->curr);
	else /* this window is spent: its count becomes the next one's carry */
		at = c->win_start + l->window_ms + first_fit(l, c->curr, 0);
	return at - now_ms;
}

static struct client *lookup(struct v2g_ratelimit *l, const char *key, size_t n, uint64_t h)
{
	for (struct client *c = l->buckets[h & (l->nbuckets - 1)]; c; c = c->hnext)
		if (c->hash == h && c->keylen == n && !memcmp(c->key, key, n))
			return c;
	return NULL;
}

int v2g_ratelimit_check(struct v2g_ratelimit *l, const char *key, int64_t now_ms,
                        int *retry_after_s)
{
	if (!key)
		key = "";
	size_t n = strnlen(key, V2G_RATELIMIT_KEY_MAX);
	uint64_t h = hash_key(key, n);
	int allowed = 1;
	int64_t wait = 0;

	pthread_mutex_lock(&l->mu);
	expire_idle(l, now_ms, SWEEP_PER_CHECK);
	struct client *c = lookup(l, key, n, h);
	if (c) {
		lru_unlink(l, c);
		lru_push_head(l, c);
	} else {
		if (l->st.keys >= l->max_keys && expire_idle(l, now_ms, SIZE_MAX) == 0) {
			drop(l, l->tail); /* full of active clients: the stalest goes */
			l->st.evicted++;
		}
		c = calloc(1, sizeof(*c) + n + 1);
		if (!c) {
			l->st.nomem++;
			l->st.allowed++;
			goto out;
		}
		memcpy(c->key, key, n);
		c->keylen = n;
		c->hash = h;
		c->win_start = floor_to(now_ms, l->window_ms);
		size_t b = h & (l->nbuckets - 1);
		c->hnext = l->buckets[b];
		l->buckets[b] = c;
		lru_push_head(l, c); /* before grow: it rehashes from the LRU list */
		l->st.keys++;
		if (l->st.keys > l->nbuckets)
			grow(l);
	}
	roll(l, c, now_ms);
	if (fits(l, c->prev_count, c->curr, offset_in(c, now_ms))) {
		c->curr++;
		l->st.allowed++;
	} else {
		allowed = 0;
		wait = wait_ms(l, c, now_ms);
		l->st.limited++;
	}
out:
	pthread_mutex_unlock(&l->mu);
	if (retry_after_s) {
		if (allowed)
			*retry_after_s = 0;
		else
			*retry_after_s = wait <= 0 ? 1 : (int)((wait + 999) / 1000);
	}
	return allowed;
}

int v2g_ratelimit_remaining(struct v2g_ratelimit *l, const char *key, int64_t now_ms)
{
	if (!key)
		key = "";
	size_t n = strnlen(key, V2G_RATELIMIT_KEY_MAX);
	uint64_t h = hash_key(key, n);
	pthread_mutex_lock(&l->mu);
	struct client *found = lookup(l, key, n, h);
	struct client c = { 0 };
	if (found)
		c = *found; /* a copy: peeking must not move the real windows */
	else
		c.win_start = floor_to(now_ms, l->window_ms);
	roll(l, &c, now_ms);
	int64_t e = offset_in(&c, now_ms);
	/* the largest j with prev * (w - e) + (curr + j) * w <= max * w */
	int64_t w = l->window_ms;
	int64_t j = ((int64_t)l->max * w - (int64_t)c.prev_count * (w - e)) / w - c.curr;
	int left = j < 0 ? 0 : j > l->max ? l->max : (int)j;
	pthread_mutex_unlock(&l->mu);
	return left;
}

size_t v2g_ratelimit_sweep(struct v2g_ratelimit *l, int64_t now_ms)
{
	pthread_mutex_lock(&l->mu);
	size_t n = expire_idle(l, now_ms, SIZE_MAX);
	pthread_mutex_unlock(&l->mu);
	return n;
}

const char *v2g_ratelimit_name(const struct v2g_ratelimit *l)
{
	return l->name;
}

int64_t v2g_ratelimit_window_ms(const struct v2g_ratelimit *l)
{
	return l->window_ms;
}

int v2g_ratelimit_max_requests(const struct v2g_ratelimit *l)
{
	return l->max;
}

void v2g_ratelimit_get_stats(struct v2g_ratelimit *l, struct v2g_ratelimit_stats *st)
{
	pthread_mutex_lock(&l->mu);
	*st = l->st;
	pthread_mutex_unlock(&l->mu);
}

json_t *v2g_ratelimit_status(struct v2g_ratelimit *l)
{
	pthread_mutex_lock(&l->mu);
	json_t *j = json_pack("{s:s, s:I, s:i, s:I, s:I, s:I, s:I, s:I}", "name", l->name,
	                      "window_ms", (json_int_t)l->window_ms, "max_requests", l->max, "keys",
	                      (json_int_t)l->st.keys, "max_keys", (json_int_t)l->max_keys,
	                      "allowed", (json_int_t)l->st.allowed, "limited",
	                      (json_int_t)l->st.limited, "evicted", (json_int_t)l->st.evicted);
	pthread_mutex_unlock(&l->mu);
	return j;
}
