/* The prediction engines of prediction.h.
 *
 * Learning engine, per vehicle (struct rec, 112 bytes):
 *   - availability by hour of week (UTC, Monday 00:00 = slot 0): 168 4-bit
 *     cells, 0 = never observed, 1..15 = probability (v - 1) / 14. Each
 *     observed state holds from its time until the next observation, so a
 *     vehicle that reports only on change is learned as well as one that
 *     reports every few seconds. Time is accumulated over the current clock
 *     hour; when an observation falls in a later hour, the finished hour's
 *     available fraction x enters its slot as p += ALPHA * (x - p) (the
 *     first value of a slot is taken as is; with 15 levels a move smaller
 *     than half a level is lost to rounding, so a slot learned as 1 shrugs
 *     off a week with 10 % less plug-in time). Hours a gap skips are learned
 *     with the state that held across them, unless the gap exceeds 6 h:
 *     then nothing is known about them and they are left alone.
 *   - SoC trend: an EMA of dSoC/dt (points per hour) between successive
 *     observations, weighted by time (alpha = 1 - exp(-dt / 1 h)), so that
 *     many tiny, quantised steps count as much as one long interval does.
 *     It starts at 0 (no evidence: flat). Gaps over 6 h and out-of-order
 *     states do not enter it; a trend older than 6 h is forecast as 0.
 *
 * Vehicles are keyed by a 64-bit hash of their id (the record keeps no
 * pointer to the caller's string: observe() may be given a transient
 * buffer). Two ids that collide would share one record; at a million
 * vehicles the chance that any pair does is about 3e-8.
 *
 * Records live in chunks of CHUNK (they never move), found through an
 * open-addressing table of uint32 record indexes (linear probing, load
 * <= 3/4). Memory per vehicle: 112 bytes of record + 4 / load of index
 * (5.3..10.7 bytes) + the last chunk's slack: <= 128 at scale. */
#include "prediction.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS      3600000LL
#define SLOTS        168
#define GAP_MS       (6 * HOUR_MS) /* longer silences teach nothing */
#define ALPHA        0.3           /* weight of the newest week in a slot */
#define TREND_TAU_H  1.0           /* time constant of the SoC trend, hours */
#define WINDOW_MAX_H 24.0
#define CHUNK_SHIFT  10
#define CHUNK        (1u << CHUNK_SHIFT)
#define EMPTY        UINT32_MAX
/* fill()'s pipeline: index slots are prefetched PF_SLOT candidates ahead of
 * records, records PF_REC - PF_SLOT ahead of use. */
#define PF_SLOT 8
#define PF_REC  16
#define PF_RING 32 /* > PF_REC, a power of two */

#define F_AVAIL 0x01 /* the last observation said available */

struct rec {
	uint64_t key;            /* hash of the vehicle id */
	int64_t last_ts;         /* ms of the last observation accepted */
	float trend;             /* SoC points per hour */
	uint16_t last_soc;       /* SoC of the last observation, 1/100 points */
	uint16_t pend_avail_s;   /* current hour so far: seconds available */
	uint16_t pend_seen_s;    /*   and seconds accounted for */
	uint8_t flags;           /* F_* */
	uint8_t slot[SLOTS / 2]; /* two 4-bit cells per byte */
};

_Static_assert(sizeof(struct rec) == 112, "the record is 112 bytes: see the budget above");

struct disp_predictor {
	int fixed;
	struct disp_forecast f; /* the fixed engine's answer */
	pthread_rwlock_t lock;
	struct rec **chunks;
	size_t nchunks, chunks_cap;
	size_t n;      /* records in use */
	uint32_t *idx; /* open addressing: record index or EMPTY */
	size_t cap;    /* power of two */
};

static const struct disp_forecast neutral = { 1.0f, 0.0f, 0.0f };

/* FNV-1a, then a finaliser so that the low bits (the table index) mix. */
static uint64_t id_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static struct rec *rec_at(struct disp_predictor *p, uint32_t i)
{
	return &p->chunks[i >> CHUNK_SHIFT][i & (CHUNK - 1)];
}

static size_t table_cap_for(size_t n)
{
	size_t cap = 16;
	while (cap / 4 * 3 < n)
		cap *= 2;
	return cap;
}

struct disp_predictor *disp_predictor_learning(size_t expected_vehicles)
{
	struct disp_predictor *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if (expected_vehicles > (size_t)1 << 30)
		expected_vehicles = (size_t)1 << 30;
	p->cap = table_cap_for(expected_vehicles);
	p->idx = malloc(p->cap * sizeof(*p->idx));
	if (!p->idx)
		goto fail_idx;
	memset(p->idx, 0xff, p->cap * sizeof(*p->idx));
	if (pthread_rwlock_init(&p->lock, NULL) != 0)
		goto fail_lock;
	return p;
fail_lock:
	free(p->idx);
fail_idx:
	free(p);
	return NULL;
}

struct disp_predictor *disp_predictor_fixed(struct disp_forecast f)
{
	struct disp_predictor *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->fixed = 1;
	p->f = f;
	return p;
}

void disp_predictor_free(struct disp_predictor *p)
{
	if (!p)
		return;
	if (!p->fixed) {
		for (size_t i = 0; i < p->nchunks; i++)
			free(p->chunks[i]);
		free(p->chunks);
		free(p->idx);
		pthread_rwlock_destroy(&p->lock);
	}
	free(p);
}

/* --- the table (callers hold the lock) ---------------------------------- */

static struct rec *find(struct disp_predictor *p, uint64_t key)
{
	size_t mask = p->cap - 1;
	for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) {
		uint32_t r = p->idx[i];
		if (r == EMPTY)
			return NULL;
		struct rec *x = rec_at(p, r);
		if (x->key == key)
			return x;
	}
}

static void table_place(uint32_t *idx, size_t cap, uint64_t key, uint32_t r)
{
	size_t mask = cap - 1, i = (size_t)key & mask;
	while (idx[i] != EMPTY)
		i = (i + 1) & mask;
	idx[i] = r;
}

/* Doubles the index table. 0, or -1 when out of memory (table unchanged). */
static int table_grow(struct disp_predictor *p)
{
	size_t cap = p->cap * 2;
	uint32_t *idx = malloc(cap * sizeof(*idx));
	if (!idx)
		return -1;
	memset(idx, 0xff, cap * sizeof(*idx));
	for (size_t i = 0; i < p->n; i++)
		table_place(idx, cap, rec_at(p, (uint32_t)i)->key, (uint32_t)i);
	free(p->idx);
	p->idx = idx;
	p->cap = cap;
	return 0;
}

/* A new zeroed record for key, or NULL when out of memory. */
static struct rec *insert(struct disp_predictor *p, uint64_t key)
{
	if (p->n >= EMPTY - 1)
		return NULL;
	if (p->n + 1 > p->cap / 4 * 3 && table_grow(p) != 0)
		return NULL;
	if (p->n == p->nchunks * CHUNK) {
		if (p->nchunks == p->chunks_cap) {
			size_t c = p->chunks_cap ? p->chunks_cap * 2 : 16;
			struct rec **v = realloc(p->chunks, c * sizeof(*v));
			if (!v)
				return NULL;
			p->chunks = v;
			p->chunks_cap = c;
		}
		struct rec *chunk = calloc(CHUNK, sizeof(*chunk));
		if (!chunk)
			return NULL;
		p->chunks[p->nchunks++] = chunk;
	}
	uint32_t r = (uint32_t)p->n++;
	struct rec *x = rec_at(p, r);
	x->key = key;
	table_place(p->idx, p->cap, key, r);
	return x;
}

/* --- learning ----------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Hour of week of an absolute hour (hours since the epoch, a Thursday). */
static int hour_of_week(int64_t abs_hour)
{
	int64_t h = (abs_hour + 72) % SLOTS; /* Monday 00:00 UTC = slot 0 */
	return (int)(h < 0 ? h + SLOTS : h);
}

static int cell_get(const struct rec *x, int slot)
{
	uint8_t b = x->slot[slot >> 1];
	return slot & 1 ? b >> 4 : b & 0x0f;
}

static void cell_set(struct rec *x, int slot, int v)
{
	uint8_t *b = &x->slot[slot >> 1];
	*b = slot & 1 ? (uint8_t)((*b & 0x0f) | (v << 4)) : (uint8_t)((*b & 0xf0) | v);
}

/* Learned probability of a cell value (1..15). */
static double cell_prob(int v)
{
	return (v - 1) / 14.0;
}

/* Folds one finished hour, available a_s of seen_s seconds, into its slot. */
static void slot_learn(struct rec *x, int64_t abs_hour, double a_s, double seen_s)
{
	if (seen_s <= 0)
		return;
	int slot = hour_of_week(abs_hour), v = cell_get(x, slot);
	double xv = a_s / seen_s;
	double pv = v == 0 ? xv : cell_prob(v) + ALPHA * (xv - cell_prob(v));
	if (pv < 0)
		pv = 0;
	if (pv > 1)
		pv = 1;
	cell_set(x, slot, 1 + (int)lround(pv * 14.0));
}

static uint16_t add_seconds(uint16_t s, int64_t ms)
{
	int64_t v = s + (ms + 500) / 1000;
	return (uint16_t)(v > 3600 ? 3600 : v);
}

/* Accounts [t0, t1) (t0 <= t1, t1 - t0 <= GAP_MS) during which the vehicle
 * was available or not. */
static void account(struct rec *x, int64_t t0, int64_t t1, int avail)
{
	int64_t h0 = floor_div(t0, HOUR_MS), h1 = floor_div(t1, HOUR_MS);
	if (h0 == h1) {
		x->pend_seen_s = add_seconds(x->pend_seen_s, t1 - t0);
		if (avail)
			x->pend_avail_s = add_seconds(x->pend_avail_s, t1 - t0);
		return;
	}
	int64_t end0 = (h0 + 1) * HOUR_MS;
	x->pend_seen_s = add_seconds(x->pend_seen_s, end0 - t0);
	if (avail)
		x->pend_avail_s = add_seconds(x->pend_avail_s, end0 - t0);
	slot_learn(x, h0, x->pend_avail_s, x->pend_seen_s);
	for (int64_t h = h0 + 1; h < h1; h++)
		slot_learn(x, h, avail ? 3600 : 0, 3600);
	x->pend_seen_s = add_seconds(0, t1 - h1 * HOUR_MS);
	x->pend_avail_s = avail ? x->pend_seen_s : 0;
}

static uint16_t soc_store(double soc)
{
	if (!(soc >= 0))
		soc = 0;
	if (soc > 100)
		soc = 100;
	return (uint16_t)lround(soc * 100.0);
}

void disp_predictor_observe(struct disp_predictor *p, const char *vehicle_id, int available,
                            double soc, int64_t ts_ms)
{
	if (!p || p->fixed || !vehicle_id || !isfinite(soc))
		return;
	uint64_t key = id_hash(vehicle_id);
	pthread_rwlock_wrlock(&p->lock);
	struct rec *x = find(p, key);
	if (!x) {
		x = insert(p, key);
		if (x) {
			x->last_ts = ts_ms;
			x->last_soc = soc_store(soc);
			x->flags = available ? F_AVAIL : 0;
		}
		goto out;
	}
	if (ts_ms < x->last_ts)
		goto out; /* out of order: an older state teaches nothing new */
	int64_t dt = ts_ms - x->last_ts;
	if (dt > GAP_MS) {
		/* What happened in between is unknown: close the hour we were
		 * in and start afresh; the trend is left as it was. */
		slot_learn(x, floor_div(x->last_ts, HOUR_MS), x->pend_avail_s, x->pend_seen_s);
		x->pend_avail_s = x->pend_seen_s = 0;
	} else {
		account(x, x->last_ts, ts_ms, x->flags & F_AVAIL);
		if (dt > 0) {
			double dt_h = (double)dt / HOUR_MS;
			double rate = (soc_store(soc) - x->last_soc) / 100.0 / dt_h;
			double a = 1.0 - exp(-dt_h / TREND_TAU_H);
			x->trend = (float)(x->trend + a * (rate - x->trend));
		}
	}
	x->last_ts = ts_ms;
	x->last_soc = soc_store(soc);
	x->flags = available ? F_AVAIL : 0;
out:
	pthread_rwlock_unlock(&p->lock);
}

/* --- forecasting (callers hold the lock, read side) ---------------------- */

/* The forecast from a vehicle's record (NULL: never observed). */
static struct disp_forecast forecast_rec(const struct rec *x, int64_t now_ms, double duration_min)
{
	if (!x)
		return neutral;
	struct disp_forecast f = neutral;
	int64_t h_now = floor_div(now_ms, HOUR_MS);

	/* avail_prob: the minimum, not the product, over the hours the signal
	 * covers. A slot's value is the chance of being plugged in during
	 * that hour, and those events are strongly correlated from one hour
	 * to the next (a car parked at 20:00 is almost surely parked at
	 * 21:00): the product would treat them as independent and punish
	 * long signals for no reason (0.9 over four hours -> 0.66), while
	 * "stays plugged in throughout" can be no likelier than its least
	 * likely hour, which is what the minimum says. An hour never learned
	 * counts 1 (it continues the present), or 0 when the vehicle's last
	 * state, at most 6 h before now, said unplugged. */
	double unk = !(x->flags & F_AVAIL) && now_ms >= x->last_ts && now_ms - x->last_ts <= GAP_MS
	                     ? 0.0
	                     : 1.0;
	double dur_ms = duration_min > 0 && isfinite(duration_min) ? duration_min * 60000.0 : 0;
	if (dur_ms > SLOTS * (double)HOUR_MS)
		dur_ms = SLOTS * (double)HOUR_MS;
	int64_t h_end = dur_ms > 0 ? floor_div(now_ms + (int64_t)dur_ms - 1, HOUR_MS) : h_now;
	double prob = 1.0;
	int s0 = hour_of_week(h_now), slot = s0; /* no division per hour */
	for (int64_t h = h_now; h <= h_end; h++, slot = slot == SLOTS - 1 ? 0 : slot + 1) {
		int v = cell_get(x, slot);
		double pv = v ? cell_prob(v) : unk;
		if (pv < prob)
			prob = pv;
	}
	f.avail_prob = (float)prob;

	/* window_h: until the start of the first hour learned as more likely
	 * unplugged than not (the current hour included: 0). Unknown hours are
	 * valued as above; when none of the next 24 hours is known at all and
	 * the vehicle is plugged in, the window is unknown (0), as for a new
	 * vehicle. */
	int known = unk == 0.0;
	double window = WINDOW_MAX_H;
	slot = s0;
	for (int64_t h = h_now; h <= h_now + (int64_t)WINDOW_MAX_H;
	     h++, slot = slot == SLOTS - 1 ? 0 : slot + 1) {
		int v = cell_get(x, slot);
		known |= v != 0;
		if ((v ? cell_prob(v) : unk) < 0.5) {
			double w = (double)(h * HOUR_MS - now_ms) / HOUR_MS;
			window = w < 0 ? 0 : w > WINDOW_MAX_H ? WINDOW_MAX_H : w;
			break;
		}
	}
	f.window_h = known ? (float)window : 0.0f;

	f.soc_trend = now_ms - x->last_ts > GAP_MS ? 0.0f : x->trend;
	return f;
}

struct disp_forecast disp_predictor_forecast(struct disp_predictor *p, const char *vehicle_id,
                                             int64_t now_ms, double duration_min)
{
	if (!p)
		return neutral;
	if (p->fixed)
		return p->f;
	pthread_rwlock_rdlock(&p->lock);
	struct disp_forecast f = forecast_rec(vehicle_id ? find(p, id_hash(vehicle_id)) : NULL,
	                                      now_ms, duration_min);
	pthread_rwlock_unlock(&p->lock);
	return f;
}

void disp_predictor_fill(struct disp_predictor *p, struct disp_cand *c, size_t n, int64_t now_ms,
                         double duration_min)
{
	if (!p)
		return;
	if (p->fixed) {
		for (size_t i = 0; i < n; i++) {
			c[i].avail_prob = p->f.avail_prob;
			c[i].window_h = p->f.window_h;
		}
		return;
	}
	/* One read lock for the whole batch: telemetry waits at most one fill.
	 * At fleet scale every lookup is two cache misses (index slot, then
	 * record): a software pipeline hashes candidate i and prefetches its
	 * index slot, prefetches the record of candidate i - PF_SLOT, and
	 * computes candidate i - PF_REC, so that the misses overlap. */
	uint64_t key[PF_RING];
	size_t mask = p->cap - 1;
	pthread_rwlock_rdlock(&p->lock);
	for (size_t i = 0; i < n + PF_REC; i++) {
		if (i < n) {
			key[i % PF_RING] = c[i].id ? id_hash(c[i].id) : 0;
			__builtin_prefetch(&p->idx[key[i % PF_RING] & mask]);
		}
		if (i >= PF_SLOT && i - PF_SLOT < n) {
			uint32_t r = p->idx[key[(i - PF_SLOT) % PF_RING] & mask];
			if (r != EMPTY) {
				const char *x = (const char *)rec_at(p, r);
				__builtin_prefetch(x);
				__builtin_prefetch(x + sizeof(struct rec) - 1);
			}
		}
		if (i >= PF_REC) {
			struct disp_cand *ci = &c[i - PF_REC];
			struct disp_forecast f =
			        forecast_rec(ci->id ? find(p, key[(i - PF_REC) % PF_RING]) : NULL,
			                     now_ms, duration_min);
			ci->avail_prob = f.avail_prob;
			ci->window_h = f.window_h;
		}
	}
	pthread_rwlock_unlock(&p->lock);
}

size_t disp_predictor_bytes_per_vehicle(struct disp_predictor *p)
{
	if (!p || p->fixed)
		return 0;
	pthread_rwlock_rdlock(&p->lock);
	size_t bytes = sizeof(*p) + p->chunks_cap * sizeof(*p->chunks) +
	               p->nchunks * CHUNK * sizeof(struct rec) + p->cap * sizeof(*p->idx);
	size_t n = p->n;
	pthread_rwlock_unlock(&p->lock);
	return (bytes + (n ? n : 1) - 1) / (n ? n : 1);
}
