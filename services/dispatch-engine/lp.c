/* The LP strategy (lp.h): an exact structured solver for the hierarchical
 * case, GLPK's simplex on the flat LP for the rest, and an LP file writer.
 *
 * Why the greedy is exact. Let E be the candidates, x_i the power of i.
 * The feasible set without the request,
 *   P = { x : 0 <= x_i <= cap_i, x(S_s) <= L_s for every limited site s },
 * where S_s is the set of vehicles of s and of its descendants, is a
 * polymatroid when the S_s form a laminar family (any two are nested or
 * disjoint, which a forest of sites guarantees): its rank function
 * f(A) = max { x(A) : x in P } is normalised, monotone and submodular
 * (a laminar family of capacities, with the singletons {i} capped at
 * cap_i, is the standard example). Adding x(E) <= P_req truncates it to
 * f'(A) = min(f(A), P_req), again a polymatroid. Edmonds' greedy - visit
 * the elements by decreasing weight and raise each as far as the
 * constraints allow - returns a base of the polymatroid (x(E) = f'(E),
 * i.e. min(P_req, f(E)): the most power that can be delivered) and that
 * base maximises w.x over all bases, for any weights. So:
 *   - when f(E) >= P_req, the greedy meets the request exactly and is an
 *     optimum of the LP with sum = P_req (Dantzig's continuous knapsack
 *     when there are no site limits);
 *   - when f(E) < P_req (infeasible), it delivers f(E), the maximum power,
 *     and has the best objective among the allocations delivering f(E) -
 *     the lexicographic "max power, then max score" answer lp.h promises.
 * "As far as the constraints allow" for vehicle i is min(cap_i, request
 * left, headroom of every limited site on the path from i's site to its
 * root): the only constraints whose sets contain i.
 *
 * Ties in score are broken by id (then by index), so the allocation does
 * not depend on the order of the candidate array when ids are distinct. */
#include <glpk.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp.h"
#include "v2g/err.h"

/* Relative tolerance on kW (request met, limits held). */
#define LP_TOL 1e-9
/* Relative size below which a headroom or an allocation is rounding noise. */
#define LP_NOISE 1e-12

/* ------------------------------------------------------------------ */
/* Input checks shared by the solvers and the writer                  */

static double cand_cap(const struct disp_cand *c)
{
	return c->cap_kw > 0 ? (double)c->cap_kw : 0.0;
}

static int site_limited(const struct disp_sites *s, size_t site, double *limit)
{
	if (site == 0 || !s || !s->limit_kw || !(s->limit_kw[site] >= 0) ||
	    isinf(s->limit_kw[site]))
		return 0;
	*limit = s->limit_kw[site];
	return 1;
}

static int32_t site_parent(const struct disp_sites *s, size_t site)
{
	if (!s || !s->parent)
		return -1;
	return s->parent[site];
}

/* The checks of lp_check on everything but the candidates. */
static int lp_check_head(const struct disp_cand *c, size_t n, double power_kw,
                         const struct disp_sites *sites)
{
	if (!isfinite(power_kw) || power_kw < 0 || (n > 0 && !c) || n > UINT32_MAX)
		return -1;
	if (!sites)
		return 0;
	for (size_t s = 0; s < sites->n; s++) {
		int32_t p = sites->parent ? sites->parent[s] : -1;
		if (sites->limit_kw && isnan(sites->limit_kw[s]))
			return -1;
		if (p < -1 || (p >= 0 && (size_t)p >= sites->n))
			return -1;
	}
	return 0;
}

static inline int lp_check_cand(const struct disp_cand *c, const struct disp_sites *sites)
{
	if (!isfinite(c->score) || !isfinite(c->cap_kw))
		return -1;
	/* without limits (sites NULL) a vehicle's site index means nothing */
	return sites && c->site != 0 && c->site >= sites->n ? -1 : 0;
}

/* 0 when the instance is well formed: finite request >= 0, finite scores
 * and capacities, site indexes and parents in range, no NaN limit. */
static int lp_check(const struct disp_cand *c, size_t n, double power_kw,
                    const struct disp_sites *sites)
{
	if (lp_check_head(c, n, power_kw, sites) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (lp_check_cand(&c[i], sites) != 0)
			return -1;
	return 0;
}

static void outcome_reset(struct disp_outcome *out)
{
	out->allocs = NULL;
	out->n = 0;
	out->allocated_kw = 0;
	out->objective = 0;
	out->decided_by = DISP_LP;
	out->lp_status = DISP_LP_FAILED;
}

/* The status from the power placed. */
static int outcome_status(struct disp_outcome *out, double power_kw)
{
	out->lp_status = out->allocated_kw >= power_kw - LP_TOL * fmax(1.0, power_kw)
	                         ? DISP_LP_OPTIMAL
	                         : DISP_LP_INFEASIBLE;
	return out->lp_status;
}

/* Sets the totals from out->allocs and the status; returns the status. */
static int outcome_finish(struct disp_outcome *out, const struct disp_cand *c, double power_kw)
{
	double kw = 0, obj = 0;

	for (size_t k = 0; k < out->n; k++) {
		kw += out->allocs[k].kw;
		obj += (double)c[out->allocs[k].cand].score * out->allocs[k].kw;
	}
	out->allocated_kw = kw;
	out->objective = obj;
	return outcome_status(out, power_kw);
}

/* ------------------------------------------------------------------ */
/* The site forest, flattened for the greedy                          */

/* For each site s: up[s] is the nearest limited site at or above s (-1
 * when none); for a limited site u, next[u] is the nearest limited strict
 * ancestor. The walk u = up[site]; u >= 0; u = next[u] visits exactly the
 * limits that hold over a vehicle of that site. head[u] is the headroom
 * left. */
struct lp_forest {
	int32_t *up, *next;
	double *head;
};

static void forest_free(struct lp_forest *f)
{
	free(f->up);
	free(f->next);
	free(f->head);
}

/* 0, 1 when parent[] has a cycle, or -V2G_ERR_NOMEM. O(number of sites). */
static int forest_build(const struct disp_sites *s, struct lp_forest *f)
{
	size_t ns = s->n;
	uint8_t *state = NULL; /* 0 unseen, 1 on the current path, 2 done */
	int32_t *path = NULL;
	int rc = -V2G_ERR_NOMEM;

	memset(f, 0, sizeof(*f));
	f->up = malloc(ns * sizeof(*f->up));
	f->next = malloc(ns * sizeof(*f->next));
	f->head = malloc(ns * sizeof(*f->head));
	state = calloc(ns, 1);
	path = malloc(ns * sizeof(*path));
	if (!f->up || !f->next || !f->head || !state || !path)
		goto out;
	for (size_t u = 0; u < ns; u++) {
		double lim;
		f->head[u] = site_limited(s, u, &lim) ? lim : INFINITY;
		f->next[u] = -1;
	}
	f->up[0] = -1; /* "no site" ends every chain */
	state[0] = 2;
	rc = 0;
	for (size_t s0 = 1; s0 < ns; s0++) {
		size_t len = 0;
		int32_t t = (int32_t)s0, base;

		while (t > 0 && state[t] == 0) {
			state[t] = 1;
			path[len++] = t;
			t = site_parent(s, (size_t)t);
		}
		if (t > 0 && state[t] == 1) {
			rc = 1;
			goto out;
		}
		base = t > 0 ? f->up[t] : -1;
		while (len > 0) {
			int32_t u = path[--len];
			f->next[u] = base;
			f->up[u] = isinf(f->head[u]) ? base : u;
			base = f->up[u];
			state[u] = 2;
		}
	}
out:
	free(state);
	free(path);
	if (rc != 0)
		forest_free(f);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Ordering: decreasing score, then id, then index                    */

/* A candidate as the greedy needs it, 16 bytes, read in order. The score
 * is kept as its rank: an unsigned integer that grows as the score falls,
 * so that a radix sort orders it. */
struct lp_key {
	uint32_t rank;
	uint32_t i;
	float cap;
	uint16_t site;
};

/* The usual order-keeping map of IEEE floats, reversed; -0 counts as +0,
 * as it compares equal. */
static inline uint32_t score_rank(float score)
{
	uint32_t b;

	score += 0.0f;
	memcpy(&b, &score, sizeof(b));
	b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
	return ~b;
}

static inline float rank_score(uint32_t rank)
{
	uint32_t b = ~rank;
	float s;

	b = (b & 0x80000000u) ? (b & 0x7fffffffu) : ~b;
	memcpy(&s, &b, sizeof(s));
	return s;
}

static int id_cmp(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static inline int key_before(const struct lp_key *a, const struct lp_key *b,
                             const struct disp_cand *c)
{
	int r;

	if (a->rank != b->rank)
		return a->rank < b->rank;
	r = id_cmp(c[a->i].id, c[b->i].id);
	if (r != 0)
		return r < 0;
	return a->i < b->i;
}

static inline void key_swap(struct lp_key *a, struct lp_key *b)
{
	struct lp_key t = *a;
	*a = *b;
	*b = t;
}

static void key_insertion(struct lp_key *a, size_t n, const struct disp_cand *c)
{
	for (size_t i = 1; i < n; i++) {
		struct lp_key v = a[i];
		size_t j = i;
		while (j > 0 && key_before(&v, &a[j - 1], c)) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = v;
	}
}

static void key_sift(struct lp_key *a, size_t root, size_t n, const struct disp_cand *c)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		/* a heap with the last in order on top, so the sort ends in order */
		if (child + 1 < n && key_before(&a[child], &a[child + 1], c))
			child++;
		if (!key_before(&a[root], &a[child], c))
			return;
		key_swap(&a[root], &a[child]);
		root = child;
	}
}

static void key_heapsort(struct lp_key *a, size_t n, const struct disp_cand *c)
{
	for (size_t i = n / 2; i-- > 0;)
		key_sift(a, i, n, c);
	for (size_t end = n; end-- > 1;) {
		key_swap(&a[0], &a[end]);
		key_sift(a, 0, end, c);
	}
}

/* Partitions a[0..n) (n >= 3) around a median-of-three pivot; returns its
 * final position p: a[0..p) come before it, a(p..n) after. Keys are all
 * distinct (the index breaks every tie). */
static size_t key_partition(struct lp_key *a, size_t n, const struct disp_cand *c)
{
	size_t mid = n / 2, last = n - 1, i = 0;
	struct lp_key pv;

	if (key_before(&a[mid], &a[0], c))
		key_swap(&a[mid], &a[0]);
	if (key_before(&a[last], &a[0], c))
		key_swap(&a[last], &a[0]);
	if (key_before(&a[mid], &a[last], c))
		key_swap(&a[mid], &a[last]);
	pv = a[last]; /* the median of the three */
	for (size_t j = 0; j < last; j++)
		if (key_before(&a[j], &pv, c))
			key_swap(&a[i++], &a[j]);
	key_swap(&a[i], &a[last]);
	return i;
}

/* Sorts by comparisons: used for runs of equal scores (ordered by id). */
static void key_introsort(struct lp_key *a, size_t n, int depth, const struct disp_cand *c)
{
	while (n > 16) {
		size_t p;
		if (depth-- == 0) {
			key_heapsort(a, n, c);
			return;
		}
		p = key_partition(a, n, c);
		/* recurse on the smaller side, loop on the larger */
		if (p < n - p - 1) {
			key_introsort(a, p, depth, c);
			a += p + 1;
			n -= p + 1;
		} else {
			key_introsort(a + p + 1, n - p - 1, depth, c);
			n = p;
		}
	}
	key_insertion(a, n, c);
}

static int depth_limit(size_t n)
{
	int d = 0;
	while (n > 1) {
		n >>= 1;
		d++;
	}
	return 2 * d + 2;
}

/* Sorts a[0..n) in order: an LSD radix sort on the rank in digits of 11,
 * 11 and 10 bits (tmp has room for n), then each run of equal scores by
 * id. A sort by comparisons is several times slower at 100k. */
static void key_sort(struct lp_key *a, size_t n, struct lp_key *tmp, const struct disp_cand *c)
{
	static const int shifts[3] = { 0, 11, 22 };
	uint32_t count[3][2048] = { { 0 } };
	struct lp_key *src = a, *dst = tmp;

	if (n <= 64) {
		key_insertion(a, n, c);
		return;
	}
	for (size_t i = 0; i < n; i++)
		for (int d = 0; d < 3; d++)
			count[d][(a[i].rank >> shifts[d]) & 0x7ff]++;
	for (int d = 0; d < 3; d++) {
		uint32_t pos = 0, *cnt = count[d];
		int shift = shifts[d];

		if (cnt[(a[0].rank >> shift) & 0x7ff] == n)
			continue; /* one digit: this pass would change nothing */
		for (int b = 0; b < 2048; b++) {
			uint32_t k = cnt[b];
			cnt[b] = pos;
			pos += k;
		}
		for (size_t i = 0; i < n; i++)
			dst[cnt[(src[i].rank >> shift) & 0x7ff]++] = src[i];
		struct lp_key *t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && a[j].rank == a[i].rank)
			j++;
		if (j - i > 1)
			key_introsort(a + i, j - i, depth_limit(j - i), c);
		i = j;
	}
}

/* Moves the keys of a[lo..hi) whose digit is below bound (lt) or equal to
 * it to the front, in place; returns where the rest starts. */
static size_t key_split(struct lp_key *a, size_t lo, size_t hi, int shift, uint32_t mask,
                        uint32_t bound)
{
	while (lo < hi) {
		if (((a[lo].rank >> shift) & mask) <= bound) {
			lo++;
		} else {
			hi--;
			key_swap(&a[lo], &a[hi]);
		}
	}
	return lo;
}

/* Moves to the front of a[0..n) every key whose rank is below some bound,
 * at least the k first keys in order (all n when n <= k), and returns how
 * many: a prefix of the order, unsorted. Radix selection on 11, 11 and 10
 * bits of the rank, in place: each level counts the keys still undecided
 * by digit, keeps those up to the digit where the count reaches k, and
 * refines only the keys of that digit; it stops once the prefix is at most
 * about twice k. */
static size_t key_select(struct lp_key *a, size_t n, size_t k)
{
	static const int shifts[3] = { 21, 10, 0 };
	size_t base = 0, hi = n; /* a[0..base) in, a[hi..n) out, a[base..hi) open */

	if (k >= n)
		return n;
	for (int l = 0; l < 3; l++) {
		int shift = shifts[l];
		uint32_t mask = l < 2 ? 0x7ff : 0x3ff, bound = 0;
		size_t count[2048] = { 0 }, cum = base;

		for (size_t i = base; i < hi; i++)
			count[(a[i].rank >> shift) & mask]++;
		for (; bound < mask; bound++) {
			if (cum + count[bound] >= k)
				break;
			cum += count[bound];
		}
		hi = key_split(a, base, hi, shift, mask, bound);
		if (hi <= 2 * k + 256 || bound == 0)
			break;
		/* a[base..hi): digits below bound, then the bound's, refined next */
		base = key_split(a, base, hi, shift, mask, bound - 1);
	}
	return hi;
}

/* ------------------------------------------------------------------ */
/* The structured solver                                              */

struct lp_greedy {
	struct lp_forest *f; /* NULL: no site limits */
	double left;         /* request still open */
	double noise;        /* kW below which a headroom or a share is zero */
	double kw, obj;      /* totals so far */
	struct disp_alloc *allocs;
	size_t n;
};

/* What the limits above a vehicle of site still allow, at most want. */
static double path_room(const struct lp_forest *f, uint16_t site, double want)
{
	for (int32_t u = f->up[site]; u >= 0; u = f->next[u])
		if (f->head[u] < want)
			want = f->head[u];
	return want;
}

static void path_take(struct lp_forest *f, uint16_t site, double kw, double noise)
{
	for (int32_t u = f->up[site]; u >= 0; u = f->next[u]) {
		double h = f->head[u] - kw;
		f->head[u] = h > noise ? h : 0;
	}
}

/* Visits the sorted keys k[0..n) and gives each what it can take. */
static void greedy_run(struct lp_greedy *g, const struct lp_key *k, size_t n)
{
	for (size_t j = 0; j < n && g->left > g->noise; j++) {
		double kw = k[j].cap;

		if (kw > g->left)
			kw = g->left;
		if (g->f)
			kw = path_room(g->f, k[j].site, kw);
		if (!(kw > g->noise))
			continue;
		g->allocs[g->n].cand = k[j].i;
		g->allocs[g->n].kw = kw;
		g->n++;
		g->kw += kw;
		g->obj += (double)rank_score(k[j].rank) * kw;
		/* the last share closes the request exactly */
		g->left = kw == g->left ? 0 : g->left - kw;
		if (g->f)
			path_take(g->f, k[j].site, kw, g->noise);
	}
}

/* A vehicle under a site with no headroom can never be given power. */
static int blocked(const struct lp_forest *f, uint16_t site)
{
	for (int32_t u = f->up[site]; u >= 0; u = f->next[u])
		if (!(f->head[u] > 0))
			return 1;
	return 0;
}

/* The greedy over the forest of sites, O(n) to build the keys plus the
 * ordering of the candidates the request reaches (radix, so O(n) too) and
 * O(depth) per vehicle given power. A malformed instance (request < 0 or
 * not finite, a score or capacity not finite, a site or parent index out
 * of range, a NaN limit) answers DISP_LP_FAILED with nothing allocated;
 * parent[] with a cycle goes to disp_lp_solve_glpk. *out is overwritten
 * (what it held is not freed). */
int disp_lp_solve(const struct disp_cand *c, size_t n, double power_kw,
                  const struct disp_sites *sites, struct disp_outcome *out)
{
	struct lp_forest forest, *f = NULL;
	struct lp_key *keys = NULL, *tmp = NULL;
	struct lp_greedy g = { 0 };
	size_t cnt = 0, lo = 0, block = 0;
	double capsum = 0;
	int rc = 0;

	outcome_reset(out);
	if (lp_check_head(c, n, power_kw, sites) != 0)
		return DISP_LP_FAILED;
	if (sites && sites->n > 0 && sites->limit_kw) {
		rc = forest_build(sites, &forest);
		if (rc < 0)
			return rc;
		if (rc == 1) /* not a forest: the general LP */
			return disp_lp_solve_glpk(c, n, power_kw, sites, out);
		f = &forest;
	}
	/* allocs: room for every candidate; pages never written cost nothing */
	keys = malloc((n ? n : 1) * sizeof(*keys));
	tmp = malloc((n ? n : 1) * sizeof(*tmp));
	g.allocs = malloc((n ? n : 1) * sizeof(*g.allocs));
	if (!keys || !tmp || !g.allocs) {
		rc = -V2G_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct disp_cand *v = &c[i];
		if (lp_check_cand(v, sites) != 0) {
			rc = DISP_LP_FAILED;
			goto out;
		}
		if (!(v->cap_kw > 0) || (f && blocked(f, v->site)))
			continue;
		keys[cnt].rank = score_rank(v->score);
		keys[cnt].i = (uint32_t)i;
		keys[cnt].cap = v->cap_kw;
		keys[cnt].site = v->site;
		capsum += v->cap_kw;
		cnt++;
	}

	g.f = f;
	g.left = power_kw;
	g.noise = LP_NOISE * fmax(1.0, power_kw);
	/* Only the head of the order is needed: select a block that should
	 * cover what is left (by mean capacity, with a margin), sort it, fill;
	 * when site limits leave the request open, the next block, at least
	 * twice as large. */
	while (lo < cnt && g.left > g.noise) {
		size_t rest = cnt - lo, want, got;
		double est = g.left / (capsum / (double)cnt) * 1.25 + 64;

		want = est < (double)rest ? (size_t)est : rest;
		if (want < 2 * block)
			want = 2 * block;
		got = want >= rest / 4 ? rest : key_select(keys + lo, rest, want);
		key_sort(keys + lo, got, tmp, c);
		greedy_run(&g, keys + lo, got);
		lo += got;
		block = got;
	}
	if (g.n < n) { /* give back the room not used (kept if realloc fails) */
		struct disp_alloc *shrunk = realloc(g.allocs, (g.n ? g.n : 1) * sizeof(*shrunk));
		if (shrunk)
			g.allocs = shrunk;
	}
	out->allocs = g.allocs;
	out->n = g.n;
	out->allocated_kw = g.kw;
	out->objective = g.obj;
	g.allocs = NULL;
	rc = outcome_status(out, power_kw);
out:
	free(keys);
	free(tmp);
	free(g.allocs);
	if (f)
		forest_free(f);
	if (rc < 0 || rc == DISP_LP_FAILED)
		outcome_reset(out);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The flat LP: rows of the limited sites, shared by GLPK and the writer */

/* Row r (0-based) constrains the vehicles cols[start[r] .. start[r+1]) to
 * at most limit[r] kW; site[r] names it. Only limited sites that hold over
 * at least one vehicle get a row, in increasing site order. The vehicles
 * under a site are those whose site has it among its ancestors (itself
 * included), found by walking parent[] until -1, 0 or a repeat - which also
 * defines the rows when parent[] has a cycle. */
struct lp_rows {
	size_t n, nnz;
	size_t *start;
	uint32_t *cols;
	size_t *site;
	double *limit;
};

static void rows_free(struct lp_rows *r)
{
	free(r->start);
	free(r->cols);
	free(r->site);
	free(r->limit);
}

/* Calls fn(arg, u) for every limited site over a vehicle of site t. */
static void walk_limited(const struct disp_sites *s, uint16_t t, uint32_t *stamp, uint32_t mark,
                         void (*fn)(void *arg, size_t u), void *arg)
{
	int32_t u = t;
	double lim;

	while (u > 0 && stamp[u] != mark) {
		stamp[u] = mark;
		if (site_limited(s, (size_t)u, &lim))
			fn(arg, (size_t)u);
		u = site_parent(s, (size_t)u);
	}
}

struct rows_ctx {
	size_t *count; /* per site during pass 1 */
	size_t *pos;   /* per site during pass 2: next free slot */
	uint32_t *cols;
	uint32_t vehicle;
};

static void rows_count(void *arg, size_t u)
{
	((struct rows_ctx *)arg)->count[u]++;
}

static void rows_fill(void *arg, size_t u)
{
	struct rows_ctx *x = arg;
	x->cols[x->pos[u]++] = x->vehicle;
}

static int rows_build(const struct disp_cand *c, size_t n, const struct disp_sites *s,
                      struct lp_rows *r)
{
	size_t ns = s && s->limit_kw ? s->n : 0;
	uint32_t *stamp = NULL;
	struct rows_ctx x = { 0 };
	int rc = -V2G_ERR_NOMEM;

	memset(r, 0, sizeof(*r));
	if (ns == 0) {
		r->start = calloc(1, sizeof(*r->start));
		return r->start ? 0 : -V2G_ERR_NOMEM;
	}
	stamp = calloc(ns, sizeof(*stamp));
	x.count = calloc(ns, sizeof(*x.count));
	x.pos = calloc(ns, sizeof(*x.pos));
	if (!stamp || !x.count || !x.pos)
		goto out;
	/* stamps: vehicle i marks with i + 1, so no clearing between walks */
	for (size_t i = 0; i < n; i++)
		walk_limited(s, c[i].site, stamp, (uint32_t)i + 1, rows_count, &x);
	for (size_t u = 1; u < ns; u++)
		if (x.count[u] > 0) {
			x.pos[u] = r->nnz;
			r->nnz += x.count[u];
			r->n++;
		}
	r->start = malloc((r->n + 1) * sizeof(*r->start));
	r->site = malloc((r->n ? r->n : 1) * sizeof(*r->site));
	r->limit = malloc((r->n ? r->n : 1) * sizeof(*r->limit));
	r->cols = malloc((r->nnz ? r->nnz : 1) * sizeof(*r->cols));
	if (!r->start || !r->site || !r->limit || !r->cols)
		goto out;
	r->n = 0;
	for (size_t u = 1; u < ns; u++)
		if (x.count[u] > 0) {
			r->start[r->n] = x.pos[u];
			r->site[r->n] = u;
			site_limited(s, u, &r->limit[r->n]);
			r->n++;
		}
	r->start[r->n] = r->nnz;
	memset(stamp, 0, ns * sizeof(*stamp));
	x.cols = r->cols;
	for (size_t i = 0; i < n; i++) {
		x.vehicle = (uint32_t)i;
		walk_limited(s, c[i].site, stamp, (uint32_t)i + 1, rows_fill, &x);
	}
	rc = 0;
out:
	free(stamp);
	free(x.count);
	free(x.pos);
	if (rc != 0)
		rows_free(r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* GLPK                                                               */

/* glp_simplex then its status: 1 optimal, 0 no feasible solution, -1
 * anything else. */
static int glpk_run(glp_prob *lp)
{
	glp_smcp parm;
	int rc, st;

	glp_init_smcp(&parm);
	parm.msg_lev = GLP_MSG_OFF;
	parm.presolve = GLP_ON;
	rc = glp_simplex(lp, &parm);
	if (rc == GLP_ENOPFS)
		return 0;
	if (rc != 0)
		return -1;
	st = glp_get_status(lp);
	if (st == GLP_OPT)
		return 1;
	return st == GLP_NOFEAS ? 0 : -1;
}

/* Solves the loaded LP; when it is infeasible, in two phases: the most
 * power (sum <= P, maximise sum kw), then the best score with the sum held
 * at that power. Returns the DISP_LP_ status; the solution stays in lp. */
static int glpk_solve(glp_prob *lp, const struct disp_cand *c, size_t n, double power_kw)
{
	int r = glpk_run(lp);
	double pmax, tol;

	if (r != 0)
		return r > 0 ? DISP_LP_OPTIMAL : DISP_LP_FAILED;
	/* Infeasible: first the most power that fits under the request... */
	glp_set_row_bnds(lp, 1, GLP_UP, 0, power_kw);
	for (size_t i = 0; i < n; i++)
		glp_set_obj_coef(lp, (int)i + 1, 1.0);
	if (glpk_run(lp) != 1)
		return DISP_LP_FAILED;
	pmax = glp_get_obj_val(lp);
	/* ...then the best score among the allocations delivering it */
	tol = LP_TOL * fmax(1.0, pmax);
	if (pmax - tol > 0)
		glp_set_row_bnds(lp, 1, GLP_DB, pmax - tol, pmax);
	else
		glp_set_row_bnds(lp, 1, GLP_FX, 0, 0);
	for (size_t i = 0; i < n; i++)
		glp_set_obj_coef(lp, (int)i + 1, c[i].score);
	if (glpk_run(lp) != 1)
		return DISP_LP_FAILED;
	return DISP_LP_INFEASIBLE;
}

/* Columns kw_i in [0, cap_i], row 1 the request (sum = P), one row per
 * limited site (struct lp_rows); glp_simplex with the presolver. When the
 * request row cannot hold, glpk_solve solves the lexicographic version.
 * GLPK's own failures answer DISP_LP_FAILED. Its values are clamped to
 * [0, cap_i] and shares of rounding-noise size are dropped. */
int disp_lp_solve_glpk(const struct disp_cand *c, size_t n, double power_kw,
                       const struct disp_sites *sites, struct disp_outcome *out)
{
	struct lp_rows rows;
	glp_prob *lp = NULL;
	int *ia = NULL, *ja = NULL;
	double *ar = NULL, noise = LP_NOISE * fmax(1.0, power_kw);
	size_t nnz, k = 1;
	int rc, term;

	outcome_reset(out);
	if (lp_check(c, n, power_kw, sites) != 0 || n >= (size_t)INT32_MAX / 2)
		return DISP_LP_FAILED;
	if (n == 0)
		return outcome_finish(out, c, power_kw);
	rc = rows_build(c, n, sites, &rows);
	if (rc < 0)
		return rc;
	nnz = n + rows.nnz;
	rc = DISP_LP_FAILED; /* too large for GLPK's int indexes */
	if (nnz >= (size_t)INT32_MAX)
		goto fail;
	rc = -V2G_ERR_NOMEM;
	ia = malloc((nnz + 1) * sizeof(*ia));
	ja = malloc((nnz + 1) * sizeof(*ja));
	ar = malloc((nnz + 1) * sizeof(*ar));
	out->allocs = malloc(n * sizeof(*out->allocs));
	if (!ia || !ja || !ar || !out->allocs)
		goto fail;

	term = glp_term_out(GLP_OFF);
	lp = glp_create_prob();
	glp_set_obj_dir(lp, GLP_MAX);
	glp_add_cols(lp, (int)n);
	for (size_t i = 0; i < n; i++) {
		double cap = cand_cap(&c[i]);
		glp_set_col_bnds(lp, (int)i + 1, cap > 0 ? GLP_DB : GLP_FX, 0, cap);
		glp_set_obj_coef(lp, (int)i + 1, c[i].score);
	}
	glp_add_rows(lp, (int)rows.n + 1);
	glp_set_row_bnds(lp, 1, GLP_FX, power_kw, power_kw);
	for (size_t i = 0; i < n; i++, k++) {
		ia[k] = 1;
		ja[k] = (int)i + 1;
		ar[k] = 1;
	}
	for (size_t r = 0; r < rows.n; r++) {
		glp_set_row_bnds(lp, (int)r + 2, GLP_UP, 0, rows.limit[r]);
		for (size_t j = rows.start[r]; j < rows.start[r + 1]; j++, k++) {
			ia[k] = (int)r + 2;
			ja[k] = (int)rows.cols[j] + 1;
			ar[k] = 1;
		}
	}
	glp_load_matrix(lp, (int)nnz, ia, ja, ar);
	rc = glpk_solve(lp, c, n, power_kw);
	if (rc != DISP_LP_FAILED) {
		for (size_t i = 0; i < n; i++) {
			double kw = glp_get_col_prim(lp, (int)i + 1), cap = cand_cap(&c[i]);
			if (kw > cap)
				kw = cap;
			if (kw > noise) {
				out->allocs[out->n].cand = (uint32_t)i;
				out->allocs[out->n].kw = kw;
				out->n++;
			}
		}
		outcome_finish(out, c, power_kw);
		/* GLPK decided feasibility; the sum only confirms it */
		out->lp_status = rc;
	}
	glp_delete_prob(lp);
	glp_term_out(term);
	if (rc == DISP_LP_FAILED) {
		free(out->allocs);
		outcome_reset(out);
	}
	goto done;
fail:
	free(out->allocs);
	outcome_reset(out);
done:
	free(ia);
	free(ja);
	free(ar);
	rows_free(&rows);
	return rc;
}

/* ------------------------------------------------------------------ */
/* CPLEX LP format                                                    */

/* Terms per line: GLPK reads long lines, people read short ones. */
#define LP_TERMS_PER_LINE 8

/* The equality LP as disp_lp_solve_glpk builds it: objective "obj", the
 * request row "total", the limit of site s as row "s<s>", candidate i as
 * column "x<i>"; numbers with 17 digits so glpsol reads the same values. */
int disp_lp_write(FILE *f, const struct disp_cand *c, size_t n, double power_kw,
                  const struct disp_sites *sites)
{
	struct lp_rows rows;

	if (!f || lp_check(c, n, power_kw, sites) != 0)
		return -1;
	if (rows_build(c, n, sites, &rows) != 0)
		return -1;
	fprintf(f, "\\* v2g dispatch LP: %zu vehicles, %zu site limits *\\\n", n, rows.n);
	fputs("Maximize\n obj:", f);
	/* with no vehicle a fixed-0 column z keeps the LP well formed: the
	 * request row then reads z = P, feasible only for P = 0 */
	if (n == 0)
		fputs(" 0 z", f);
	for (size_t i = 0; i < n; i++) {
		double s = c[i].score;
		if (i > 0 && i % LP_TERMS_PER_LINE == 0)
			fputs("\n   ", f);
		fprintf(f, " %s %.17g x%zu", s < 0 ? "-" : (i ? "+" : ""), fabs(s), i);
	}
	fputs("\nSubject To\n total:", f);
	if (n == 0)
		fputs(" z", f);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && i % LP_TERMS_PER_LINE == 0)
			fputs("\n   ", f);
		fprintf(f, " %sx%zu", i ? "+ " : "", i);
	}
	fprintf(f, " = %.17g\n", power_kw);
	for (size_t r = 0; r < rows.n; r++) {
		fprintf(f, " s%zu:", rows.site[r]);
		for (size_t j = rows.start[r]; j < rows.start[r + 1]; j++) {
			size_t t = j - rows.start[r];
			if (t > 0 && t % LP_TERMS_PER_LINE == 0)
				fputs("\n   ", f);
			fprintf(f, " %sx%u", t ? "+ " : "", rows.cols[j]);
		}
		fprintf(f, " <= %.17g\n", rows.limit[r]);
	}
	fputs("Bounds\n", f);
	if (n == 0)
		fputs(" z = 0\n", f);
	for (size_t i = 0; i < n; i++) {
		double cap = cand_cap(&c[i]);
		if (cap > 0)
			fprintf(f, " 0 <= x%zu <= %.17g\n", i, cap);
		else
			fprintf(f, " x%zu = 0\n", i);
	}
	fputs("End\n", f);
	rows_free(&rows);
	return ferror(f) ? -1 : 0;
}
