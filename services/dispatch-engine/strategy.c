/* Strategies of the dispatch documents over candidate arrays (strategy.h).
 *
 * Speed comes from never ordering more than the request needs. Candidates
 * are reduced to 16-byte keys (an order-preserving integer, the capacity
 * and the index); a weighted quickselect moves the best keys whose
 * capacities cover the request to the front, and only that block is sorted
 * and filled. Equal's water level is found the same way over capacities.
 * Everything is O(n) expected plus O(k log k) for the k vehicles used.
 *
 * Site limits are reduced to a forest of the limited sites ("nodes"): each
 * site points at the first limited node on its chain, each node at the next
 * limited node above it, and cycles of parent[] collapse into one node whose
 * limit is the smallest of the cycle (every site of a cycle is the ancestor
 * of all the others, so their constraints cover the same vehicles). */
#include "strategy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lp.h"
#include "v2g/err.h"

/* Power below this is floating-point dust: treated as met / as nothing. */
#define KW_EPS 1e-9
/* Segmented: at most this many passes (the first share, then
 * redistributions of shortfalls; each pass that leaves a shortfall marks at
 * least one more group full, so groups + 1 passes always finish). */
#define SEG_PASSES 8
/* Below this many keys, selection and sorting finish by insertion sort. */
#define SMALL 24

/* --- names --------------------------------------------------------------- */

static const char *const strategy_names[] = { "priority", "equal", "smart", "lp" };

const char *disp_strategy_name(enum disp_strategy s)
{
	return (unsigned)s < sizeof(strategy_names) / sizeof(strategy_names[0]) ? strategy_names[s]
	                                                                        : "unknown";
}

int disp_strategy_parse(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < sizeof(strategy_names) / sizeof(strategy_names[0]); i++)
		if (!strcmp(name, strategy_names[i]))
			return (int)i;
	return -1;
}

/* Defaults per signal type, each set summing to 1 so that scores of
 * different types read alike:
 *   FCR (0) must hold for its whole window and is paid for reliability:
 *     availability 0.30, SoC 0.30, time window 0.15, priority 0.10,
 *     price 0.05, wear 0.05, participation 0.05.
 *   aFRR (1) moves energy for longer, so SoC and the price paid matter:
 *     SoC 0.30, price 0.25, availability 0.15, time 0.10, priority 0.10,
 *     wear 0.05, participation 0.05.
 *   LOAD_SHEDDING (2) is a paid reduction with many cycles: price 0.30,
 *     wear 0.25, SoC 0.15, availability 0.10, priority 0.10, time 0.05,
 *     participation 0.05.
 * Any other type gets an even 1/7 each. */
struct disp_weights disp_default_weights(int signal_type)
{
	switch (signal_type) {
	case 0:
		return (struct disp_weights){ .soc = 0.30,
			                      .time = 0.15,
			                      .priority = 0.10,
			                      .price = 0.05,
			                      .availability = 0.30,
			                      .wear = 0.05,
			                      .participation = 0.05 };
	case 1:
		return (struct disp_weights){ .soc = 0.30,
			                      .time = 0.10,
			                      .priority = 0.10,
			                      .price = 0.25,
			                      .availability = 0.15,
			                      .wear = 0.05,
			                      .participation = 0.05 };
	case 2:
		return (struct disp_weights){ .soc = 0.15,
			                      .time = 0.05,
			                      .priority = 0.10,
			                      .price = 0.30,
			                      .availability = 0.10,
			                      .wear = 0.25,
			                      .participation = 0.05 };
	default: {
		const double e = 1.0 / 7;
		return (struct disp_weights){ e, e, e, e, e, e, e };
	}
	}
}

void disp_outcome_free(struct disp_outcome *o)
{
	if (!o)
		return;
	free(o->allocs);
	memset(o, 0, sizeof(*o));
	o->lp_status = -1;
}

/* --- capacity and score --------------------------------------------------- */

static double clamp01(double v)
{
	return v > 0 ? (v < 1 ? v : 1) : 0; /* NaN -> 0 */
}

void disp_capacity(struct disp_cand *c, size_t n, double duration_min, double min_soc)
{
	const double hours = duration_min / 60;
	for (size_t i = 0; i < n; i++) {
		double kw = c[i].max_kw > 0 ? c[i].max_kw : 0;
		if (c[i].battery_kwh > 0 && hours > 0) {
			double e = c[i].battery_kwh * (c[i].soc - min_soc) / 100 / hours;
			if (!(e > 0))
				e = 0;
			if (e < kw)
				kw = e;
		}
		kw *= clamp01(c[i].avail_prob) * (1 - clamp01(c[i].degradation));
		c[i].cap_kw = (float)kw;
	}
}

/* Member j of a candidate set: c[idx[j]], or c[j] when idx is NULL. */
#define CAND(c, idx, j) ((c)[(idx) ? (idx)[j] : (j)])
#define CIDX(idx, j)    ((uint32_t)((idx) ? (idx)[j] : (j)))

enum { F_SOC, F_TIME, F_PRIO, F_PRICE, F_AVAIL, F_WEAR, F_PART, NFEAT };

/* Min and max of every feature over the set: floats compared as floats
 * (exact, and half the work of doubles), the integer priority as such. */
static void feature_range(const struct disp_cand *c, const uint32_t *idx, size_t m,
                          double lo[NFEAT], double hi[NFEAT])
{
	const struct disp_cand *x = &CAND(c, idx, 0);
	float fl[NFEAT] = { x->soc,         x->window_h,     0, x->tariff, x->avail_prob,
		            x->degradation, x->participation };
	float fh[NFEAT];
	int32_t pl = x->priority, ph = x->priority;
	memcpy(fh, fl, sizeof(fh));
	for (size_t j = 1; j < m; j++) {
		x = &CAND(c, idx, j);
		const float v[NFEAT] = { x->soc,          x->window_h,   0,
			                 x->tariff,       x->avail_prob, x->degradation,
			                 x->participation };
		for (int k = 0; k < NFEAT; k++) {
			fl[k] = v[k] < fl[k] ? v[k] : fl[k];
			fh[k] = v[k] > fh[k] ? v[k] : fh[k];
		}
		pl = x->priority < pl ? x->priority : pl;
		ph = x->priority > ph ? x->priority : ph;
	}
	for (int k = 0; k < NFEAT; k++) {
		lo[k] = fl[k];
		hi[k] = fh[k];
	}
	lo[F_PRIO] = pl;
	hi[F_PRIO] = ph;
}

/* 16 bytes per candidate for selection: k orders (higher = better), cap is
 * the capacity counted towards the request, i the candidate's index. */
struct key {
	uint64_t k;
	float cap;
	uint32_t i;
};

/* Order-preserving map of a float to unsigned (-0 and +0 alike). */
static inline uint32_t fbits(float v)
{
	uint32_t u;
	v += 0.0f;
	memcpy(&u, &v, sizeof(u));
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Scores the candidates c[idx[j]] (or c[j]), j < m: score = C + sum A_k f_k
 * folds min-max normalisation and orientation into one affine form. In the
 * same pass, for every candidate with capacity, writes a Smart key to keys
 * or its capacity to caps (when given) and returns how many; *total gets
 * the sum of those capacities. */
static size_t score_set(struct disp_cand *c, const uint32_t *idx, size_t m,
                        const struct disp_weights *w, struct key *keys, float *caps, double *total)
{
	if (total)
		*total = 0;
	if (!m)
		return 0;
	double lo[NFEAT], hi[NFEAT];
	feature_range(c, idx, m, lo, hi);
	const double wt[NFEAT] = { w->soc,          w->time, w->priority,     w->price,
		                   w->availability, w->wear, w->participation };
	/* Lower is better for tariff, degradation (wear = 1 - degradation) and
	 * participation. */
	static const int lower_better[NFEAT] = { [F_PRICE] = 1, [F_WEAR] = 1, [F_PART] = 1 };
	double a[NFEAT], base = 0, sumw = 0;
	for (int k = 0; k < NFEAT; k++) {
		double wk = wt[k] > 0 ? wt[k] : 0; /* negative or NaN -> 0 */
		double range = hi[k] - lo[k];
		sumw += wk;
		a[k] = 0;
		if (!(range > 0) || !isfinite(range))
			continue;
		if (lower_better[k]) {
			a[k] = -wk / range;
			base += wk * hi[k] / range;
		} else {
			a[k] = wk / range;
			base -= wk * lo[k] / range;
		}
	}
	size_t nk = 0;
	double sum = 0;
	for (size_t j = 0; j < m; j++) {
		struct disp_cand *x = &CAND(c, idx, j);
		double s = base + a[F_SOC] * x->soc + a[F_TIME] * x->window_h +
		           a[F_PRIO] * x->priority + a[F_PRICE] * x->tariff +
		           a[F_AVAIL] * x->avail_prob + a[F_WEAR] * x->degradation +
		           a[F_PART] * x->participation;
		s = s > 0 ? (s < sumw ? s : sumw) : 0;
		x->score = (float)s;
		if (!(x->cap_kw > 0))
			continue;
		if (keys)
			keys[nk++] = (struct key){ (uint64_t)fbits(x->score) << 32, x->cap_kw,
				                   CIDX(idx, j) };
		else if (caps)
			caps[nk++] = x->cap_kw;
		sum += x->cap_kw;
	}
	if (total)
		*total = sum;
	return nk;
}

void disp_score(struct disp_cand *c, size_t n, const struct disp_weights *w)
{
	score_set(c, NULL, n, w, NULL, NULL, NULL);
}

/* --- ordering: selection and sorting of keys ------------------------------ */

struct order {
	const struct disp_cand *c;
	int by_priority; /* ties on k: lower tariff first (v1), then id */
};

/* Ties of k are rare; out of line so the hot comparison stays small. */
static int __attribute__((noinline)) tie_better(const struct order *o, uint32_t a, uint32_t b)
{
	const struct disp_cand *x = &o->c[a], *y = &o->c[b];
	if (o->by_priority && x->tariff != y->tariff)
		return x->tariff < y->tariff;
	int r = strcmp(x->id ? x->id : "", y->id ? y->id : "");
	if (r)
		return r < 0;
	return a < b; /* duplicate ids: still a total order */
}

static inline int better(const struct order *o, const struct key *a, const struct key *b)
{
	if (a->k != b->k)
		return a->k > b->k;
	return tie_better(o, a->i, b->i);
}

static inline void kswap(struct key *a, struct key *b)
{
	struct key t = *a;
	*a = *b;
	*b = t;
}

static int ilog2(size_t m)
{
	int l = 0;
	while (m >>= 1)
		l++;
	return l;
}

static void insertion_sort(const struct order *o, struct key *k, size_t m)
{
	for (size_t i = 1; i < m; i++) {
		struct key v = k[i];
		size_t j = i;
		for (; j > 0 && better(o, &v, &k[j - 1]); j--)
			k[j] = k[j - 1];
		k[j] = v;
	}
}

/* Heap with the worst key on top; sorting by it leaves the best first. */
static void sift(const struct order *o, struct key *k, size_t i, size_t m)
{
	for (;;) {
		size_t ch = 2 * i + 1;
		if (ch >= m)
			return;
		if (ch + 1 < m && better(o, &k[ch], &k[ch + 1]))
			ch++;
		if (!better(o, &k[i], &k[ch]))
			return;
		kswap(&k[i], &k[ch]);
		i = ch;
	}
}

static void heap_sort(const struct order *o, struct key *k, size_t m)
{
	for (size_t i = m / 2; i-- > 0;)
		sift(o, k, i, m);
	for (size_t e = m; e-- > 1;) {
		kswap(&k[0], &k[e]);
		sift(o, k, 0, e);
	}
}

static void sort3(const struct order *o, struct key *a, struct key *b, struct key *c)
{
	if (better(o, b, a))
		kswap(a, b);
	if (better(o, c, b)) {
		kswap(b, c);
		if (better(o, b, a))
			kswap(a, b);
	}
}

/* Partitions k[0..m) (m >= 3) around a median-of-three (ninther when large)
 * pivot: better keys first, the pivot at the returned position, worse keys
 * after. *sum receives the caps of the better keys. */
static size_t partition(const struct order *o, struct key *k, size_t m, double *sum)
{
	size_t mid = m / 2, last = m - 1;
	if (m >= 512) {
		size_t s = m / 8;
		sort3(o, &k[0], &k[s], &k[2 * s]);
		sort3(o, &k[mid - s], &k[mid], &k[mid + s]);
		sort3(o, &k[last - 2 * s], &k[last - s], &k[last]);
		sort3(o, &k[s], &k[mid], &k[last - s]);
	} else {
		sort3(o, &k[0], &k[mid], &k[last]);
	}
	kswap(&k[mid], &k[last]);
	const struct key pv = k[last];
	size_t i = 0, j = last;
	double s = 0;
	for (;;) {
		while (i < j && better(o, &k[i], &pv))
			s += k[i++].cap;
		while (i < j && !better(o, &k[j - 1], &pv))
			j--;
		if (i >= j)
			break;
		kswap(&k[i], &k[j - 1]);
		s += k[i++].cap;
		j--;
	}
	kswap(&k[i], &k[last]);
	*sum = s;
	return i;
}

static void sort_rec(const struct order *o, struct key *k, size_t m, int depth)
{
	while (m > SMALL) {
		if (depth-- <= 0) {
			heap_sort(o, k, m);
			return;
		}
		double s;
		size_t p = partition(o, k, m, &s);
		if (p < m - p - 1) {
			sort_rec(o, k, p, depth);
			k += p + 1;
			m -= p + 1;
		} else {
			sort_rec(o, k + p + 1, m - p - 1, depth);
			m = p;
		}
	}
	insertion_sort(o, k, m);
}

static void sort_keys(const struct order *o, struct key *k, size_t m)
{
	sort_rec(o, k, m, 2 * ilog2(m) + 2);
}

/* Sorts a large block best first: LSD radix sort of k, descending (bytes
 * every key shares are skipped: Smart's low word is 0, Priority's high
 * bytes are few), then runs of equal k by the full order. Falls back to the
 * comparison sort when the scratch buffer cannot be had. */
static void sort_block(const struct order *o, struct key *k, size_t m)
{
	struct key *tmp = m > 4096 ? malloc(m * sizeof(*tmp)) : NULL;
	if (!tmp) {
		sort_keys(o, k, m);
		return;
	}
	size_t hist[8][256];
	memset(hist, 0, sizeof(hist));
	for (size_t i = 0; i < m; i++) {
		uint64_t v = ~k[i].k;
		for (int b = 0; b < 8; b++)
			hist[b][(v >> (8 * b)) & 255]++;
	}
	struct key *src = k, *dst = tmp;
	for (int b = 0; b < 8; b++) {
		size_t *h = hist[b], at = 0;
		if (h[(~k[0].k >> (8 * b)) & 255] == m)
			continue; /* one value: nothing to order */
		for (int d = 0; d < 256; d++) {
			size_t cnt = h[d];
			h[d] = at;
			at += cnt;
		}
		for (size_t i = 0; i < m; i++)
			dst[h[(~src[i].k >> (8 * b)) & 255]++] = src[i];
		struct key *t = src;
		src = dst;
		dst = t;
	}
	if (src != k)
		memcpy(k, src, m * sizeof(*k));
	free(tmp);
	for (size_t i = 0, j; i < m; i = j) {
		for (j = i + 1; j < m && k[j].k == k[i].k; j++)
			;
		if (j - i > 1)
			sort_keys(o, k + i, j - i);
	}
}

/* Moves to k[0..b) the best keys, the fewest whose caps sum to >= need (all
 * m when they cannot), and returns b. k[0..b) is not sorted. */
static size_t select_block(const struct order *o, struct key *k, size_t m, double need)
{
	size_t lo = 0, hi = m;
	int depth = 2 * ilog2(m) + 4;
	while (hi - lo > SMALL && depth-- > 0) {
		double s;
		size_t p = lo + partition(o, k + lo, hi - lo, &s);
		if (s >= need) {
			hi = p;
		} else if (s + k[p].cap >= need) {
			return p + 1;
		} else {
			need -= s + k[p].cap;
			lo = p + 1;
		}
	}
	sort_keys(o, k + lo, hi - lo);
	for (size_t i = lo; i < hi; i++) {
		if (k[i].cap >= need)
			return i + 1;
		need -= k[i].cap;
	}
	return hi;
}

/* --- site limits ----------------------------------------------------------- */

struct forest {
	size_t n;      /* site indexes */
	int32_t *lim;  /* site -> first limited node on its chain, or -1 */
	int32_t *up;   /* node -> next limited node above it, or -1 */
	int32_t *cpar; /* site -> parent with cycles collapsed (LP view) */
	double *room;  /* node -> headroom left (nodes are site indexes) */
	size_t nlimited;
};

static void forest_fini(struct forest *f)
{
	free(f->lim);
	free(f->up);
	free(f->cpar);
	free(f->room);
	memset(f, 0, sizeof(*f));
}

static int32_t site_parent(const struct disp_sites *s, size_t i)
{
	if (!i || !s->parent)
		return -1;
	int32_t p = s->parent[i];
	return p == 0 ? -1 : p; /* 0 is "no site" */
}

/* Reduces s to the forest of limited nodes. V2G_ERR_INVAL for a parent out
 * of range. */
static int forest_init(struct forest *f, const struct disp_sites *s)
{
	memset(f, 0, sizeof(*f));
	size_t n = f->n = s->n;
	if (!n)
		return 0;
	if (n > INT32_MAX)
		return V2G_ERR_INVAL;
	int rc = V2G_ERR_NOMEM;
	uint8_t *state = calloc(n, 1);
	int32_t *path = malloc(n * sizeof(*path));
	int32_t *rep = malloc(n * sizeof(*rep));
	f->lim = malloc(n * sizeof(*f->lim));
	f->up = malloc(n * sizeof(*f->up));
	f->cpar = malloc(n * sizeof(*f->cpar));
	f->room = malloc(n * sizeof(*f->room));
	if (!state || !path || !rep || !f->lim || !f->up || !f->cpar || !f->room)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		int32_t p = site_parent(s, i);
		if (p < -1 || (p >= 0 && (size_t)p >= n)) {
			rc = V2G_ERR_INVAL;
			goto fail;
		}
		double l = s->limit_kw && i ? s->limit_kw[i] : -1;
		f->room[i] = l >= 0 ? l : INFINITY; /* NaN -> unlimited */
		rep[i] = (int32_t)i;
		f->cpar[i] = p;
	}
	/* parent[] is a functional graph: each walk ends at a root, at a site
	 * already done, or closes a cycle on itself (state 1 = on this walk). */
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		int32_t x = (int32_t)i;
		while (x >= 0 && !state[x]) {
			state[x] = 1;
			path[len++] = x;
			x = f->cpar[x];
		}
		if (x >= 0 && state[x] == 1) {
			size_t b = len;
			while (path[b - 1] != x)
				b--;
			b--;
			int32_t r = x;
			double l = INFINITY;
			for (size_t q = b; q < len; q++) {
				r = path[q] < r ? path[q] : r;
				l = f->room[path[q]] < l ? f->room[path[q]] : l;
			}
			for (size_t q = b; q < len; q++) {
				rep[path[q]] = r;
				f->room[path[q]] = INFINITY;
				f->cpar[path[q]] = path[q] == r ? -1 : r;
			}
			f->room[r] = l;
		}
		for (size_t q = 0; q < len; q++)
			state[path[q]] = 2;
	}
	/* First limited node on each chain, ancestors resolved first. */
	for (size_t i = 0; i < n; i++)
		f->lim[i] = -2;
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		int32_t x = (int32_t)i;
		while (x >= 0 && f->lim[x] == -2) {
			path[len++] = x;
			x = f->cpar[x];
		}
		int32_t above = x >= 0 ? f->lim[x] : -1;
		while (len--) {
			x = path[len];
			f->lim[x] = isinf(f->room[x]) ? above : x;
			above = f->lim[x];
		}
	}
	for (size_t i = 0; i < n; i++) {
		f->up[i] = f->cpar[i] >= 0 ? f->lim[f->cpar[i]] : -1;
		f->nlimited += f->lim[i] == (int32_t)i;
	}
	free(state);
	free(path);
	free(rep);
	return 0;
fail:
	free(state);
	free(path);
	free(rep);
	forest_fini(f);
	return rc;
}

static inline double headroom(const struct forest *f, uint16_t site)
{
	double h = INFINITY;
	for (int32_t x = f->lim[site]; x >= 0; x = f->up[x])
		h = f->room[x] < h ? f->room[x] : h;
	return h > 0 ? h : 0;
}

static inline void charge(struct forest *f, uint16_t site, double kw)
{
	for (int32_t x = f->lim[site]; x >= 0; x = f->up[x])
		f->room[x] -= kw;
}

/* The limits left, as a disp_sites for the LP (the arrays are malloc'd into lim and par). */
static int forest_view(const struct forest *f, struct disp_sites *v, double **lim, int32_t **par)
{
	*lim = malloc(f->n * sizeof(**lim));
	*par = malloc(f->n * sizeof(**par));
	if (!*lim || !*par) {
		free(*lim);
		free(*par);
		return V2G_ERR_NOMEM;
	}
	for (size_t i = 0; i < f->n; i++) {
		(*lim)[i] = f->lim[i] == (int32_t)i ? (f->room[i] > 0 ? f->room[i] : 0) : -1;
		(*par)[i] = f->cpar[i];
	}
	*v = (struct disp_sites){ f->n, *lim, *par };
	return 0;
}

/* --- allocations ----------------------------------------------------------- */

struct abuf {
	struct disp_alloc *a;
	size_t n, cap;
};

static int abuf_push(struct abuf *b, uint32_t cand, double kw)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 256;
		struct disp_alloc *a = realloc(b->a, cap * sizeof(*a));
		if (!a)
			return V2G_ERR_NOMEM;
		b->a = a;
		b->cap = cap;
	}
	b->a[b->n++] = (struct disp_alloc){ cand, kw };
	return 0;
}

/* Priority and Smart: the keys, best first, each up to its cap, the
 * remaining request and its sites' headroom. Without sites one block meets
 * the request (or takes everyone). With sites, each round first drops the
 * vehicles whose sites are full and counts the others by what their sites
 * still allow, then fills the best block; max_rounds (> 0) bounds the
 * rounds. Vehicles of one site all count their site's headroom, so a block
 * overestimates what it can give when sites fill up: each further round
 * asks its block for twice the previous multiple of what is missing, which
 * bounds the rounds by O(log n) even when the request cannot be met. The
 * result is the greedy in order over all keys: a vehicle passed over at a
 * round's start would have received nothing. */
static int fill_greedy(const struct order *o, struct key *k, size_t m, double power,
                       struct forest *f, int max_rounds, struct abuf *ab)
{
	const struct disp_cand *c = o->c;
	double left = power;
	size_t pool = 0;
	int rounds = 0;
	double grow = 1;
	/* With sites: each key's site in a compact array (the candidates
	 * themselves are far apart in memory once the keys are permuted),
	 * and each site's headroom along its chain, refreshed per round. */
	uint16_t *site_of = NULL;
	float *hr = NULL;
	if (f && m) {
		uint32_t top = 0;
		for (size_t r = 0; r < m; r++)
			top = k[r].i > top ? k[r].i : top;
		site_of = malloc(((size_t)top + 1) * sizeof(*site_of));
		hr = malloc(f->n * sizeof(*hr));
		if (!site_of || !hr) {
			free(site_of);
			free(hr);
			return V2G_ERR_NOMEM;
		}
		for (size_t r = 0; r < m; r++) /* keys are still in candidate order */
			site_of[k[r].i] = c[k[r].i].site;
	}
	while (left > KW_EPS && pool < m) {
		if (f) {
			if (max_rounds > 0 && rounds >= max_rounds)
				break;
			rounds++;
			/* headroom only falls, so min(last count, headroom) is
			 * min(cap, headroom) */
			for (size_t s = 0; s < f->n; s++)
				hr[s] = (float)headroom(f, (uint16_t)s);
			size_t w = pool;
			for (size_t r = pool; r < m; r++) {
				float h = hr[site_of[k[r].i]];
				float e = k[r].cap < h ? k[r].cap : h;
				k[w] = k[r];
				k[w].cap = e;
				w += e > KW_EPS;
			}
			m = w;
			if (pool == m)
				break;
		}
		size_t b = pool + select_block(o, k + pool, m - pool, left * grow);
		sort_block(o, k + pool, b - pool);
		grow *= 2;
		for (size_t r = pool; r < b && left > KW_EPS; r++) {
			const struct disp_cand *x = &c[k[r].i];
			double kw = x->cap_kw < left ? x->cap_kw : left;
			if (f) {
				double h = headroom(f, x->site);
				kw = kw < h ? kw : h;
			}
			if (!(kw > KW_EPS))
				continue;
			if (abuf_push(ab, k[r].i, kw)) {
				free(site_of);
				free(hr);
				return V2G_ERR_NOMEM;
			}
			if (f)
				charge(f, x->site, kw);
			left -= kw;
		}
		pool = b;
	}
	free(site_of);
	free(hr);
	return 0;
}

/* Priority keys: priority, then SoC in k; tariff and id break ties. */
static size_t priority_keys(const struct disp_cand *c, const uint32_t *idx, size_t m,
                            struct key *keys)
{
	size_t nk = 0;
	for (size_t j = 0; j < m; j++) {
		const struct disp_cand *x = &CAND(c, idx, j);
		if (!(x->cap_kw > 0))
			continue;
		uint64_t pr = (uint32_t)x->priority ^ 0x80000000u;
		keys[nk++] = (struct key){ pr << 32 | fbits(x->soc), x->cap_kw, CIDX(idx, j) };
	}
	return nk;
}

/* --- Equal: water-filling ------------------------------------------------- */

/* The level L with sum(min(v_i, L)) = p over v[lo..hi), given that every
 * value before lo is below L (their sum: below) and `above` values after
 * hi are above it; three-way quickselect (v[lo..hi) is permuted). */
static double level_select(float *v, size_t lo, size_t hi, double below, size_t above, double p)
{
	/* v[..lo) <= v[lo..hi) <= v[hi..) */
	while (hi > lo) {
		size_t mid = lo + (hi - lo) / 2;
		float a = v[lo], b = v[mid], c = v[hi - 1];
		float pv = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
		size_t lt = lo, i = lo, gt = hi;
		double slt = 0;
		while (i < gt) {
			float x = v[i];
			if (x < pv) {
				slt += x;
				v[i++] = v[lt];
				v[lt++] = x;
			} else if (x > pv) {
				v[i] = v[--gt];
				v[gt] = x;
			} else {
				i++;
			}
		}
		/* v[lo..lt) < pv, v[lt..gt) == pv, v[gt..hi) > pv */
		double at = below + slt + (double)pv * (double)(hi - lt + above);
		if (at >= p) {
			above += hi - lt;
			hi = lt;
		} else {
			below += slt + (double)pv * (double)(gt - lt);
			lo = gt;
		}
	}
	return above ? (p - below) / (double)above : INFINITY;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

/* The level L with sum(min(v_i, L)) = p, for sum(v) > p >= 0 (v is
 * permuted). On large sets a sorted sample brackets L first (Floyd and
 * Rivest's idea): one branch-free pass checks the bracket and sums what
 * lies outside it, a second keeps only the values inside, and quickselect
 * finishes on those few. A bracket that misses (rare) falls back to
 * quickselect over everything. */
static double water_level(float *v, size_t m, double p)
{
	enum { SAMPLE_MAX = 4096 };
	if (m < 16384)
		return level_select(v, 0, m, 0, 0, p);
	size_t ns = (size_t)(4 * sqrt((double)m));
	ns = ns < SAMPLE_MAX ? ns : SAMPLE_MAX;
	float smp[SAMPLE_MAX];
	size_t step = m / ns;
	for (size_t i = 0; i < ns; i++)
		smp[i] = v[i * step];
	qsort(smp, ns, sizeof(*smp), cmp_float);
	/* the sample's own level for the request scaled to it */
	double ps = p * (double)ns / (double)m, below = 0;
	size_t pos = ns - 1;
	for (size_t i = 0; i < ns; i++) {
		if (below + (double)smp[i] * (double)(ns - i) >= ps) {
			pos = i;
			break;
		}
		below += smp[i];
	}
	size_t d = 2 * (size_t)sqrt((double)ns) + 8;
	float lo_v = pos >= d ? smp[pos - d] : -INFINITY;
	float hi_v = pos + d < ns ? smp[pos + d] : INFINITY;
	double s_lo = 0, s_mid = 0;
	size_t n_lo = 0, n_hi = 0;
	for (size_t i = 0; i < m; i++) {
		float x = v[i];
		int l = x<lo_v, h = x> hi_v;
		n_lo += (size_t)l;
		n_hi += (size_t)h;
		s_lo += l ? x : 0.0f;
		s_mid += l | h ? 0.0f : x;
	}
	/* L lies in [lo_v, hi_v] when f(lo_v) <= p <= f(hi_v) */
	double f_lo = s_lo + (isinf(lo_v) ? 0 : (double)lo_v * (double)(m - n_lo));
	double f_hi = s_lo + s_mid + (isinf(hi_v) ? 0 : (double)hi_v * (double)n_hi);
	if (!(f_lo <= p && p <= f_hi))
		return level_select(v, 0, m, 0, 0, p);
	size_t k = 0;
	for (size_t i = 0; i < m; i++) {
		float x = v[i];
		v[k] = x;
		k += !(x < lo_v) & !(x > hi_v);
	}
	return level_select(v, 0, k, s_lo, n_hi, p);
}

/* Rounds a level down to a float, so that a capped value never exceeds it. */
static float level_floor(double t)
{
	float tf = (float)t;
	return tf > t ? nextafterf(tf, 0) : tf;
}

/* Caps of the limited nodes' subtrees, bottom-up: the vehicles under a node
 * whose caps sum over its room are levelled at the node's own water level
 * (the caps already levelled by the nodes below). cv[j] is the cap of
 * candidate j of the set; rewritten in place. */
static int level_sites(const struct disp_cand *c, const uint32_t *idx, size_t m,
                       const struct forest *f, float *cv)
{
	size_t n = f->n, nl = 0;
	int rc = V2G_ERR_NOMEM;
	int32_t *pre = malloc(n * sizeof(*pre));           /* node -> preorder number */
	int32_t *order = malloc((n + 1) * sizeof(*order)); /* preorder -> node */
	int32_t *head = malloc(n * sizeof(*head)), *next = malloc(n * sizeof(*next));
	size_t *size = calloc(n, sizeof(*size)), *start = calloc(n + 2, sizeof(*start));
	uint32_t *ord = malloc((m ? m : 1) * sizeof(*ord));
	float *tmp = malloc((m ? m : 1) * sizeof(*tmp));
	int32_t *stack = malloc(n * sizeof(*stack));
	if (!pre || !order || !head || !next || !size || !start || !ord || !tmp || !stack)
		goto out;
	for (size_t x = 0; x < n; x++)
		head[x] = -1;
	for (size_t x = n; x-- > 0;) {
		pre[x] = -1;
		if (f->lim[x] == (int32_t)x && f->up[x] >= 0) {
			next[x] = head[f->up[x]];
			head[f->up[x]] = (int32_t)x;
		}
	}
	for (size_t r = 0; r < n; r++) {
		if (f->lim[r] != (int32_t)r || f->up[r] >= 0)
			continue;
		size_t sp = 0;
		stack[sp++] = (int32_t)r;
		while (sp) {
			int32_t x = stack[--sp];
			pre[x] = (int32_t)nl;
			order[nl++] = x;
			for (int32_t ch = head[x]; ch >= 0; ch = next[ch])
				stack[sp++] = ch;
		}
	}
	for (size_t q = nl; q-- > 0;) {
		int32_t x = order[q];
		size[x]++;
		if (f->up[x] >= 0)
			size[f->up[x]] += size[x];
	}
	/* Counting sort of the candidates by the preorder of their first
	 * limited node (bucket nl: no limit), so a subtree is one range. */
	for (size_t j = 0; j < m; j++) {
		int32_t x = f->lim[CAND(c, idx, j).site];
		start[(x >= 0 ? (size_t)pre[x] : nl) + 1]++;
	}
	for (size_t q = 0; q <= nl; q++)
		start[q + 1] += start[q];
	for (size_t j = 0; j < m; j++) {
		int32_t x = f->lim[CAND(c, idx, j).site];
		ord[start[x >= 0 ? (size_t)pre[x] : nl]++] = (uint32_t)j;
	}
	for (size_t q = nl + 1; q-- > 1;)
		start[q] = start[q - 1];
	start[0] = 0;
	for (size_t q = nl; q-- > 0;) {
		int32_t x = order[q];
		size_t a = start[q], b = start[q + size[x]];
		double room = f->room[x] > 0 ? f->room[x] : 0, sum = 0;
		for (size_t r = a; r < b; r++)
			sum += tmp[r - a] = cv[ord[r]];
		if (sum <= room)
			continue;
		float t = level_floor(water_level(tmp, b - a, room));
		for (size_t r = a; r < b; r++)
			cv[ord[r]] = cv[ord[r]] < t ? cv[ord[r]] : t;
	}
	rc = 0;
out:
	free(pre);
	free(order);
	free(head);
	free(next);
	free(size);
	free(start);
	free(ord);
	free(tmp);
	free(stack);
	return rc;
}

/* Every vehicle gets min(cap, L) with L the water level meeting the request;
 * with sites, max-min fair: caps are first levelled per limited subtree.
 * Scores the set too (the objective needs them). */
static int run_equal(struct disp_cand *c, const uint32_t *idx, size_t m, double power,
                     const struct disp_weights *w, struct forest *f, struct disp_outcome *out)
{
	float *cv = malloc((m ? m : 1) * sizeof(*cv));
	if (!cv)
		return V2G_ERR_NOMEM;
	double total = 0, level = INFINITY;
	int rc;
	if (!f) {
		/* the positive caps, gathered while scoring: only a scratch */
		size_t k = score_set(c, idx, m, w, NULL, cv, &total);
		if (total > power)
			level = water_level(cv, k, power);
	} else {
		score_set(c, idx, m, w, NULL, NULL, NULL);
		for (size_t j = 0; j < m; j++) {
			float cap = CAND(c, idx, j).cap_kw;
			cv[j] = cap > 0 ? cap : 0;
		}
		if ((rc = level_sites(c, idx, m, f, cv))) {
			free(cv);
			return rc;
		}
		for (size_t j = 0; j < m; j++)
			total += cv[j];
		if (total > power) {
			float *tmp = malloc((m ? m : 1) * sizeof(*tmp));
			if (!tmp) {
				free(cv);
				return V2G_ERR_NOMEM;
			}
			memcpy(tmp, cv, m * sizeof(*tmp));
			level = water_level(tmp, m, power);
			free(tmp);
		}
	}
	struct disp_alloc *a = malloc((m ? m : 1) * sizeof(*a));
	if (!a) {
		free(cv);
		return V2G_ERR_NOMEM;
	}
	size_t na = 0;
	double sum = 0, obj = 0;
	for (size_t j = 0; j < m; j++) {
		const struct disp_cand *x = &CAND(c, idx, j);
		double cap = f ? cv[j] : (x->cap_kw > 0 ? x->cap_kw : 0);
		double kw = cap < level ? cap : level;
		if (!(kw > KW_EPS))
			continue;
		a[na++] = (struct disp_alloc){ CIDX(idx, j), kw };
		sum += kw;
		obj += (double)x->score * kw;
		if (f)
			charge(f, x->site, kw);
	}
	free(cv);
	/* The water level is found in floating point: the sum may pass the
	 * request by rounding dust. Scaling every share alike gives it back
	 * and keeps the split equal. */
	if (sum > power && sum > 0) {
		double k = power / sum;
		for (size_t j = 0; j < na; j++)
			a[j].kw *= k;
		obj *= k;
		sum = power;
	}
	out->allocs = a;
	out->n = na;
	out->allocated_kw = sum;
	out->objective = obj;
	return 0;
}

/* --- one candidate set ----------------------------------------------------- */

static void finish(const struct disp_cand *c, struct abuf *ab, struct disp_outcome *out)
{
	double sum = 0, obj = 0;
	for (size_t i = 0; i < ab->n; i++) {
		sum += ab->a[i].kw;
		obj += (double)c[ab->a[i].cand].score * ab->a[i].kw;
	}
	out->allocs = ab->a;
	out->n = ab->n;
	out->allocated_kw = sum;
	out->objective = obj;
}

static int run_greedy(struct disp_cand *c, const uint32_t *idx, size_t m, double power,
                      const struct disp_params *p, struct forest *f, struct disp_outcome *out)
{
	struct abuf ab = { 0 };
	struct key *keys = malloc((m ? m : 1) * sizeof(*keys));
	if (!keys)
		return V2G_ERR_NOMEM;
	struct order o = { c, p->strategy == DISP_PRIORITY };
	size_t nk;
	if (p->strategy == DISP_PRIORITY) {
		score_set(c, idx, m, &p->weights, NULL, NULL, NULL);
		nk = priority_keys(c, idx, m, keys);
	} else {
		nk = score_set(c, idx, m, &p->weights, keys, NULL, NULL);
	}
	/* Priority follows v1: until met or the fleet is exhausted. */
	int rounds = p->strategy == DISP_PRIORITY ? 0 : p->max_rounds;
	int rc = fill_greedy(&o, keys, nk, power, f, rounds, &ab);
	free(keys);
	if (rc) {
		free(ab.a);
		return rc;
	}
	finish(c, &ab, out);
	return 0;
}

static void uncharge(const struct disp_cand *c, struct forest *f, const struct disp_outcome *o)
{
	if (f)
		for (size_t i = 0; i < o->n; i++)
			charge(f, c[o->allocs[i].cand].site, -o->allocs[i].kw);
}

/* LP over the set (copied when it is not c itself), under the limits left.
 * Returns the LP status or a negative error. */
static int run_lp(struct disp_cand *c, const uint32_t *idx, size_t m, double power,
                  struct forest *f, const struct disp_sites *sites, struct disp_outcome *out)
{
	struct disp_cand *tmp = NULL;
	double *lim = NULL;
	int32_t *par = NULL;
	struct disp_sites view;
	const struct disp_sites *vp = sites; /* no limit at all: as given */
	const struct disp_cand *cc = c;
	if (idx) {
		if (!(tmp = malloc((m ? m : 1) * sizeof(*tmp))))
			return -V2G_ERR_NOMEM;
		for (size_t j = 0; j < m; j++)
			tmp[j] = c[idx[j]];
		cc = tmp;
	}
	if (f) {
		if (forest_view(f, &view, &lim, &par)) {
			free(tmp);
			return -V2G_ERR_NOMEM;
		}
		vp = &view;
	}
	int st = disp_lp_solve(cc, m, power, vp, out);
	if (st >= 0) {
		for (size_t i = 0; i < out->n; i++) {
			if (idx)
				out->allocs[i].cand = idx[out->allocs[i].cand];
			if (f)
				charge(f, c[out->allocs[i].cand].site, out->allocs[i].kw);
		}
	}
	free(tmp);
	free(lim);
	free(par);
	return st;
}

/* Dispatches the candidates c[idx[j]] (or c[j]), j < m; allocs index c.
 * f: the limits left (NULL when nothing is limited); sites: as given. */
static int run(struct disp_cand *c, const uint32_t *idx, size_t m, double power,
               const struct disp_params *p, struct forest *f, const struct disp_sites *sites,
               struct disp_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->lp_status = -1;
	out->decided_by = p->strategy;
	switch (p->strategy) {
	case DISP_PRIORITY:
	case DISP_SMART: return run_greedy(c, idx, m, power, p, f, out);
	case DISP_EQUAL: return run_equal(c, idx, m, power, &p->weights, f, out);
	case DISP_LP: {
		score_set(c, idx, m, &p->weights, NULL, NULL, NULL);
		int st = run_lp(c, idx, m, power, f, sites, out);
		if (st < 0 && !p->lp_fallback) {
			disp_outcome_free(out);
			return -st;
		}
		if (st < 0)
			st = DISP_LP_FAILED;
		if (p->lp_fallback && st != DISP_LP_OPTIMAL) {
			uncharge(c, f, out);
			disp_outcome_free(out);
			struct disp_params sp = *p;
			sp.strategy = DISP_SMART;
			int rc = run_greedy(c, idx, m, power, &sp, f, out);
			out->decided_by = DISP_SMART;
			out->lp_status = st;
			return rc;
		}
		struct abuf ab = { out->allocs, out->n, out->n };
		finish(c, &ab, out);
		out->decided_by = DISP_LP;
		out->lp_status = st;
		return 0;
	}
	}
	return V2G_ERR_INVAL;
}

static int check_args(const struct disp_cand *c, size_t n, double power,
                      const struct disp_sites *sites, struct disp_outcome *out)
{
	if (!out || (n && !c) || n > UINT32_MAX || isnan(power))
		return V2G_ERR_INVAL;
	if (sites)
		for (size_t i = 0; i < n; i++)
			if (c[i].site >= sites->n && c[i].site)
				return V2G_ERR_INVAL;
	return 0;
}

/* A forest only when some site is limited; f->n == 0 otherwise. */
static int sites_init(struct forest *f, const struct disp_sites *sites, struct forest **fp)
{
	*fp = NULL;
	memset(f, 0, sizeof(*f));
	if (!sites)
		return 0;
	int rc = forest_init(f, sites);
	if (rc)
		return rc;
	if (f->nlimited)
		*fp = f;
	return 0;
}

int disp_dispatch(struct disp_cand *c, size_t n, double power_kw, const struct disp_params *p,
                  const struct disp_sites *sites, struct disp_outcome *out)
{
	int rc = check_args(c, n, power_kw, sites, out);
	if (rc || !p)
		return rc ? rc : V2G_ERR_INVAL;
	struct forest forest, *f;
	if ((rc = sites_init(&forest, sites, &f)))
		return rc;
	rc = run(c, NULL, n, power_kw > 0 ? power_kw : 0, p, f, sites, out);
	forest_fini(&forest);
	return rc;
}

/* --- segmented --------------------------------------------------------------- */

int disp_dispatch_segmented(struct disp_cand *c, size_t n, double power_kw,
                            const struct disp_segment *segs, size_t nsegs,
                            const struct disp_params *dflt, const struct disp_sites *sites,
                            struct disp_outcome *out)
{
	int rc = check_args(c, n, power_kw, sites, out);
	if (rc || !dflt || (nsegs && !segs))
		return rc ? rc : V2G_ERR_INVAL;
	if (nsegs > UINT16_MAX)
		return V2G_ERR_INVAL;
	const size_t ng = nsegs + 1; /* group nsegs: everyone else, with dflt */
	const double power = power_kw > 0 ? power_kw : 0;
	struct forest forest, *f;
	if ((rc = sites_init(&forest, sites, &f)))
		return rc;
	rc = V2G_ERR_NOMEM;
	size_t maxseg = 0;
	for (size_t s = 0; s < nsegs; s++)
		maxseg = segs[s].segment > maxseg ? segs[s].segment : maxseg;
	uint16_t *group_of = malloc((maxseg + 1) * sizeof(*group_of));
	size_t *start = calloc(ng + 1, sizeof(*start));
	uint32_t *idx = malloc((n ? n : 1) * sizeof(*idx));
	struct disp_outcome *go = calloc(ng, sizeof(*go));
	double *capsum = calloc(ng, sizeof(*capsum)), *target = calloc(ng, sizeof(*target));
	uint8_t *full = calloc(ng, 1), *dirty = calloc(ng, 1);
	if (!group_of || !start || !idx || !go || !capsum || !target || !full || !dirty)
		goto out;
	for (size_t s = 0; s <= maxseg; s++)
		group_of[s] = (uint16_t)nsegs;
	for (size_t s = nsegs; s-- > 0;) /* the first entry of a segment wins */
		group_of[segs[s].segment] = (uint16_t)s;
#define GROUP(x) ((x).segment <= maxseg ? group_of[(x).segment] : nsegs)
	for (size_t i = 0; i < n; i++) {
		size_t g = GROUP(c[i]);
		start[g + 1]++;
		capsum[g] += c[i].cap_kw > 0 ? c[i].cap_kw : 0;
	}
	for (size_t g = 0; g < ng; g++)
		start[g + 1] += start[g];
	for (size_t i = 0; i < n; i++)
		idx[start[GROUP(c[i])]++] = (uint32_t)i;
#undef GROUP
	for (size_t g = ng; g-- > 1;)
		start[g] = start[g - 1];
	start[0] = 0;
	double total = 0;
	for (size_t g = 0; g < ng; g++)
		total += capsum[g];
	size_t lead = nsegs;
	for (size_t g = 0; g < ng; g++) {
		target[g] = total > 0 ? power * capsum[g] / total : 0;
		dirty[g] = 1; /* every group is scored, even with nothing to do */
	}
	for (size_t g = 0; g < ng; g++)
		if (target[g] > target[lead])
			lead = g;
	for (size_t pass = 0; pass < SEG_PASSES && pass <= ng; pass++) {
		for (size_t g = 0; g < ng; g++) {
			if (!dirty[g])
				continue;
			const struct disp_params *gp = g < nsegs ? &segs[g].params : dflt;
			uncharge(c, f, &go[g]);
			disp_outcome_free(&go[g]);
			if ((rc = run(c, idx + start[g], start[g + 1] - start[g], target[g], gp, f,
			              sites, &go[g])))
				goto out;
			dirty[g] = 0;
		}
		double shortfall = 0, spare = 0;
		for (size_t g = 0; g < ng; g++) {
			if (go[g].allocated_kw < target[g] - KW_EPS) {
				full[g] = 1;
				shortfall += target[g] - go[g].allocated_kw;
				target[g] = go[g].allocated_kw;
			}
		}
		for (size_t g = 0; g < ng; g++)
			if (!full[g] && capsum[g] > go[g].allocated_kw)
				spare += capsum[g] - go[g].allocated_kw;
		if (shortfall <= KW_EPS || spare <= KW_EPS)
			break;
		for (size_t g = 0; g < ng; g++) {
			if (full[g] || !(capsum[g] > go[g].allocated_kw))
				continue;
			double add = shortfall * (capsum[g] - go[g].allocated_kw) / spare;
			if (add > KW_EPS) {
				target[g] += add;
				dirty[g] = 1;
			}
		}
	}
	/* Merge: allocs already index c. */
	size_t total_n = 0;
	for (size_t g = 0; g < ng; g++)
		total_n += go[g].n;
	struct abuf ab = { malloc((total_n ? total_n : 1) * sizeof(*ab.a)), 0, total_n };
	rc = V2G_ERR_NOMEM;
	if (!ab.a)
		goto out;
	memset(out, 0, sizeof(*out));
	out->lp_status = -1;
	for (size_t g = 0; g < ng; g++) {
		if (go[g].n)
			memcpy(ab.a + ab.n, go[g].allocs, go[g].n * sizeof(*ab.a));
		ab.n += go[g].n;
		if (go[g].lp_status > out->lp_status)
			out->lp_status = go[g].lp_status;
	}
	finish(c, &ab, out);
	out->decided_by = go[lead].decided_by;
	rc = 0;
out:
	if (go)
		for (size_t g = 0; g < ng; g++)
			disp_outcome_free(&go[g]);
	free(group_of);
	free(start);
	free(idx);
	free(go);
	free(capsum);
	free(target);
	free(full);
	free(dirty);
	forest_fini(&forest);
	return rc;
}
