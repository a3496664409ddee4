/* Strategies, effective capacity, scoring and segments (strategy.h): the
 * documents' rules on small fleets, and properties over thousands of random
 * fleets (seeded, so every run checks the same fleets). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/dispatch-engine/lp.h"
#include "../../services/dispatch-engine/strategy.h"
#include "v2g/err.h"

#define MAXN     160
#define MAXSITES 24
#define FLEETS   3000

/* --- a seeded generator of fleets ----------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static double urand(void)
{
	return rnd() / 4294967296.0;
}

/* A random value with ties likely: one of a few levels half the time. */
static float tied(float lo, float hi)
{
	if (rnd() & 1)
		return lo + (hi - lo) * (float)(rnd() % 4) / 3;
	return lo + (hi - lo) * (float)urand();
}

struct fleet {
	struct disp_cand c[MAXN];
	char ids[MAXN][16];
	size_t n;
	double limit[MAXSITES];
	int32_t parent[MAXSITES];
	struct disp_sites sites;
	int has_sites;
};

static void make_fleet(struct fleet *f, size_t n, int with_sites)
{
	memset(f, 0, sizeof(*f));
	f->n = n;
	size_t nsites = 1 + rnd() % (MAXSITES - 1);
	for (size_t s = 0; s < nsites; s++) {
		/* parents have smaller indexes: a forest (site 0 is "no site") */
		f->parent[s] = s > 1 && rnd() % 3 ? (int32_t)(1 + rnd() % (s - 1)) : -1;
		f->limit[s] = rnd() % 3 ? -1 : 40 * urand();
		if (rnd() % 8 == 0)
			f->limit[s] = 0;
	}
	f->sites = (struct disp_sites){ nsites, f->limit, f->parent };
	f->has_sites = with_sites;
	/* ids not in index order, so that tie-breaking by id is visible */
	for (size_t i = 0; i < n; i++) {
		snprintf(f->ids[i], sizeof(f->ids[i]), "ev%05u", (unsigned)((i * 7919) % 100000));
		struct disp_cand *x = &f->c[i];
		x->id = f->ids[i];
		x->soc = tied(0, 100);
		x->max_kw = tied(0, 22);
		x->tariff = tied(0.1f, 0.4f);
		x->battery_kwh = rnd() % 4 ? tied(20, 100) : 0;
		x->priority = (int32_t)(rnd() % 4);
		x->site = with_sites ? (uint16_t)(rnd() % nsites) : 0;
		x->segment = (uint16_t)(rnd() % 4);
		x->avail_prob = rnd() % 3 ? 1 : (float)urand();
		x->degradation = rnd() % 3 ? 0 : (float)urand() * 0.5f;
		x->window_h = tied(0, 12);
		x->participation = (float)(rnd() % 5);
		if (rnd() % 10 == 0)
			x->max_kw = 0;
	}
	disp_capacity(f->c, n, 15 + rnd() % 60, 20);
}

static double sum_cap(const struct disp_cand *c, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += c[i].cap_kw;
	return s;
}

/* What the fleet can give at most under the site limits: bottom-up,
 * a site gives min(limit, its vehicles and its child sites). */
static double feasible(const struct fleet *f)
{
	if (!f->has_sites)
		return sum_cap(f->c, f->n);
	double give[MAXSITES] = { 0 }, none = 0;
	for (size_t i = 0; i < f->n; i++) {
		if (f->c[i].site)
			give[f->c[i].site] += f->c[i].cap_kw;
		else
			none += f->c[i].cap_kw;
	}
	double total = none;
	for (size_t s = f->sites.n; s-- > 1;) {
		if (f->limit[s] >= 0 && give[s] > f->limit[s])
			give[s] = f->limit[s];
		if (f->parent[s] > 0)
			give[f->parent[s]] += give[s];
		else
			total += give[s];
	}
	return total;
}

static double tol(double p)
{
	return 1e-6 * (p > 1 ? p : 1);
}

/* Every rule an outcome must follow, whatever the strategy. Returns the
 * allocation per candidate in kw[]. */
static void check_valid(const struct fleet *f, const struct disp_outcome *o, double power,
                        double *kw)
{
	int seen[MAXN] = { 0 };
	double sum = 0, obj = 0;
	for (size_t i = 0; i < f->n; i++)
		kw[i] = 0;
	for (size_t a = 0; a < o->n; a++) {
		uint32_t i = o->allocs[a].cand;
		CHECK(i < f->n);
		if (i >= f->n)
			return;
		CHECK(!seen[i]);
		seen[i] = 1;
		CHECK(o->allocs[a].kw > 0);
		CHECK(o->allocs[a].kw <= f->c[i].cap_kw);
		kw[i] = o->allocs[a].kw;
		sum += kw[i];
		obj += f->c[i].score * kw[i];
	}
	CHECK(sum <= power + tol(power));
	CHECK_NEAR(o->allocated_kw, sum, tol(sum));
	CHECK_NEAR(o->objective, obj, tol(obj));
	if (f->has_sites) {
		double load[MAXSITES] = { 0 };
		for (size_t i = 0; i < f->n; i++)
			for (int32_t s = f->c[i].site; s > 0; s = f->parent[s])
				load[s] += kw[i];
		for (size_t s = 1; s < f->sites.n; s++)
			if (f->limit[s] >= 0)
				CHECK(load[s] <= f->limit[s] + tol(f->limit[s]));
	}
}

static int same_outcome(const struct disp_outcome *a, const struct disp_outcome *b)
{
	if (a->n != b->n || a->allocated_kw != b->allocated_kw || a->objective != b->objective ||
	    a->decided_by != b->decided_by || a->lp_status != b->lp_status)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->allocs[i].cand != b->allocs[i].cand || a->allocs[i].kw != b->allocs[i].kw)
			return 0;
	return 1;
}

static struct disp_params params(enum disp_strategy s, int signal_type)
{
	return (struct disp_params){ s, disp_default_weights(signal_type), 0, 0 };
}

static double random_request(double cap)
{
	switch (rnd() % 4) {
	case 0: return cap * 0.05 * urand();
	case 1: return cap * urand();
	case 2: return cap * (1 + urand());
	default: return cap * (0.9 + 0.2 * urand());
	}
}

/* --- names, weights, capacity, score -------------------------------------- */

static void test_names(void)
{
	for (int s = DISP_PRIORITY; s <= DISP_LP; s++)
		CHECK_INT(disp_strategy_parse(disp_strategy_name(s)), s);
	CHECK_STR(disp_strategy_name(DISP_SMART), "smart");
	CHECK_INT(disp_strategy_parse("lp"), DISP_LP);
	CHECK_INT(disp_strategy_parse("LP-ish"), -1);
	CHECK_INT(disp_strategy_parse(NULL), -1);
}

static void test_default_weights(void)
{
	for (int t = -1; t <= 3; t++) {
		struct disp_weights w = disp_default_weights(t);
		double v[] = { w.soc,          w.time, w.priority,     w.price,
			       w.availability, w.wear, w.participation };
		double sum = 0;
		for (size_t k = 0; k < 7; k++) {
			CHECK(v[k] >= 0);
			sum += v[k];
		}
		CHECK(sum > 0);
	}
	struct disp_weights fcr = disp_default_weights(0), afrr = disp_default_weights(1),
	                    shed = disp_default_weights(2);
	/* FCR favours availability and SoC, aFRR SoC and price, load shedding
	 * price and wear: those lead their sets. */
	CHECK(fcr.availability >= fcr.time && fcr.soc >= fcr.time && fcr.soc > fcr.price);
	CHECK(afrr.soc >= afrr.availability && afrr.price > afrr.availability);
	CHECK(shed.price > shed.soc && shed.wear > shed.soc);
}

static struct disp_cand cand(float soc, float max_kw, float battery, float avail, float degr)
{
	return (struct disp_cand){ .id = "x",
		                   .soc = soc,
		                   .max_kw = max_kw,
		                   .battery_kwh = battery,
		                   .avail_prob = avail,
		                   .degradation = degr };
}

static void test_capacity(void)
{
	struct disp_cand c[7] = {
		cand(80, 11, 0, 1, 0),      /* unknown battery: max power */
		cand(80, 11, 60, 1, 0),     /* 60 kWh x 60 % over 1 h = 36 kW > 11 */
		cand(25, 11, 60, 1, 0),     /* 60 x 5 % / 1 h = 3 kW */
		cand(15, 11, 60, 1, 0),     /* below min SoC: 0, never negative */
		cand(80, 11, 0, 0.5, 0),    /* availability halves it */
		cand(80, 11, 0, 1, 0.2),    /* 20 % worn */
		cand(25, 11, 60, 0.5, 0.2), /* all of it: 3 x 0.5 x 0.8 */
	};
	disp_capacity(c, 7, 60, 20);
	CHECK_NEAR(c[0].cap_kw, 11, 1e-6);
	CHECK_NEAR(c[1].cap_kw, 11, 1e-6);
	CHECK_NEAR(c[2].cap_kw, 3, 1e-5);
	CHECK_NEAR(c[3].cap_kw, 0, 0);
	CHECK_NEAR(c[4].cap_kw, 5.5, 1e-6);
	CHECK_NEAR(c[5].cap_kw, 8.8, 1e-5);
	CHECK_NEAR(c[6].cap_kw, 1.2, 1e-5);
	/* a 15-minute signal: the same energy gives four times the power */
	struct disp_cand d = cand(30, 50, 40, 1, 0);
	disp_capacity(&d, 1, 15, 20);
	CHECK_NEAR(d.cap_kw, 40 * 0.10 / 0.25, 1e-5);
	/* out-of-range forecasts are clamped, not amplified */
	struct disp_cand e = cand(80, 10, 0, 1.5f, -0.5f);
	disp_capacity(&e, 1, 60, 20);
	CHECK_NEAR(e.cap_kw, 10, 1e-6);
}

static void test_score_normalisation(void)
{
	struct disp_cand c[3] = { 0 };
	const char *ids[3] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		c[i].id = ids[i];
		c[i].soc = 50; /* constant: contributes nothing */
		c[i].priority = 1;
		c[i].avail_prob = 1;
	}
	c[0].tariff = 0.1f, c[1].tariff = 0.2f, c[2].tariff = 0.3f;
	struct disp_weights w = { .soc = 5, .price = 2 };
	disp_score(c, 3, &w);
	CHECK_NEAR(c[0].score, 2, 1e-6); /* cheapest scores the full weight */
	CHECK_NEAR(c[1].score, 1, 1e-6);
	CHECK_NEAR(c[2].score, 0, 1e-6);

	/* orientation of every feature: a is better than b on it */
	struct {
		struct disp_weights w;
		void (*set)(struct disp_cand *a, struct disp_cand *b);
	} cases[7];
	memset(cases, 0, sizeof(cases));
	cases[0].w.soc = 1;
	cases[1].w.time = 1;
	cases[2].w.priority = 1;
	cases[3].w.price = 1;
	cases[4].w.availability = 1;
	cases[5].w.wear = 1;
	cases[6].w.participation = 1;
	for (int k = 0; k < 7; k++) {
		struct disp_cand p[2] = { { .id = "a", .avail_prob = 1 },
			                  { .id = "b", .avail_prob = 1 } };
		switch (k) {
		case 0: p[0].soc = 90, p[1].soc = 40; break;
		case 1: p[0].window_h = 8, p[1].window_h = 1; break;
		case 2: p[0].priority = 3, p[1].priority = 1; break;
		case 3: p[0].tariff = 0.1f, p[1].tariff = 0.3f; break;
		case 4: p[0].avail_prob = 0.9f, p[1].avail_prob = 0.4f; break;
		case 5: p[0].degradation = 0.1f, p[1].degradation = 0.3f; break;
		case 6: p[0].participation = 0, p[1].participation = 4; break;
		}
		disp_score(p, 2, &cases[k].w);
		CHECK_NEAR(p[0].score, 1, 1e-6);
		CHECK_NEAR(p[1].score, 0, 1e-6);
	}
}

static void test_score_range_random(void)
{
	rng_state = 0x5c0e5c0e5c0eULL;
	for (int it = 0; it < 500; it++) {
		struct fleet f;
		make_fleet(&f, 1 + rnd() % MAXN, 0);
		struct disp_weights w = { urand(), urand(), urand(), urand(),
			                  urand(), urand(), urand() };
		double sumw = w.soc + w.time + w.priority + w.price + w.availability + w.wear +
		              w.participation;
		disp_score(f.c, f.n, &w);
		double lo = INFINITY, hi = -INFINITY;
		for (size_t i = 0; i < f.n; i++) {
			CHECK(f.c[i].score >= 0 && f.c[i].score <= sumw + 1e-5);
			lo = f.c[i].score < lo ? f.c[i].score : lo;
			hi = f.c[i].score > hi ? f.c[i].score : hi;
		}
		CHECK(lo >= 0 && hi <= sumw + 1e-5);
	}
}

/* --- small cases of each strategy ------------------------------------------- */

static void test_priority_v1_order_up_to_cap(void)
{
	struct disp_cand c[4] = {
		{ .id = "low",
		  .soc = 90,
		  .priority = 1,
		  .tariff = 0.1f,
		  .max_kw = 50,
		  .cap_kw = 50 },
		{ .id = "hi-b",
		  .soc = 60,
		  .priority = 5,
		  .tariff = 0.3f,
		  .max_kw = 50,
		  .cap_kw = 4 },
		{ .id = "hi-a",
		  .soc = 60,
		  .priority = 5,
		  .tariff = 0.3f,
		  .max_kw = 50,
		  .cap_kw = 4 },
		{ .id = "hi-soc",
		  .soc = 70,
		  .priority = 5,
		  .tariff = 0.5f,
		  .max_kw = 50,
		  .cap_kw = 4 },
	};
	struct disp_params p = params(DISP_PRIORITY, 0);
	struct disp_outcome o = { 0 };
	CHECK_INT(disp_dispatch(c, 4, 10, &p, NULL, &o), 0);
	/* hi-soc (priority 5, SoC 70), then hi-a before hi-b by id: up to
	 * cap_kw (4), not max_kw (50) */
	CHECK_INT(o.n, 3);
	CHECK_STR(c[o.allocs[0].cand].id, "hi-soc");
	CHECK_NEAR(o.allocs[0].kw, 4, 1e-9);
	CHECK_STR(c[o.allocs[1].cand].id, "hi-a");
	CHECK_NEAR(o.allocs[1].kw, 4, 1e-9);
	CHECK_STR(c[o.allocs[2].cand].id, "hi-b");
	CHECK_NEAR(o.allocs[2].kw, 2, 1e-9);
	CHECK_NEAR(o.allocated_kw, 10, 1e-9);
	CHECK_INT(o.decided_by, DISP_PRIORITY);
	CHECK_INT(o.lp_status, -1);
	disp_outcome_free(&o);
}

static void test_equal_spreads_remainder(void)
{
	struct disp_cand c[4] = {
		{ .id = "a", .cap_kw = 1 },
		{ .id = "b", .cap_kw = 10 },
		{ .id = "c", .cap_kw = 10 },
		{ .id = "d", .cap_kw = 2 },
	};
	struct disp_params p = params(DISP_EQUAL, 0);
	struct disp_outcome o = { 0 };
	/* 4 each would exceed a and d: they give 1 and 2, b and c share the rest */
	CHECK_INT(disp_dispatch(c, 4, 16, &p, NULL, &o), 0);
	double kw[4] = { 0 };
	for (size_t a = 0; a < o.n; a++)
		kw[o.allocs[a].cand] = o.allocs[a].kw;
	CHECK_NEAR(kw[0], 1, 1e-9);
	CHECK_NEAR(kw[1], 6.5, 1e-9);
	CHECK_NEAR(kw[2], 6.5, 1e-9);
	CHECK_NEAR(kw[3], 2, 1e-9);
	disp_outcome_free(&o);
	/* more than the fleet: everyone at cap */
	CHECK_INT(disp_dispatch(c, 4, 100, &p, NULL, &o), 0);
	CHECK_NEAR(o.allocated_kw, 23, 1e-9);
	disp_outcome_free(&o);
}

static void test_smart_best_scores_first(void)
{
	struct disp_cand c[3] = {
		{ .id = "a", .soc = 40, .cap_kw = 5, .avail_prob = 1 },
		{ .id = "b", .soc = 90, .cap_kw = 5, .avail_prob = 1 },
		{ .id = "c", .soc = 60, .cap_kw = 5, .avail_prob = 1 },
	};
	struct disp_params p = { DISP_SMART, { .soc = 1 }, 5, 0 };
	struct disp_outcome o = { 0 };
	CHECK_INT(disp_dispatch(c, 3, 7, &p, NULL, &o), 0);
	CHECK_INT(o.n, 2);
	CHECK_STR(c[o.allocs[0].cand].id, "b");
	CHECK_NEAR(o.allocs[0].kw, 5, 1e-9);
	CHECK_STR(c[o.allocs[1].cand].id, "c");
	CHECK_NEAR(o.allocs[1].kw, 2, 1e-9);
	/* scores 1 and 0.4: objective 5 x 1 + 2 x 0.4 */
	CHECK_NEAR(o.objective, 5.8, 1e-6);
	disp_outcome_free(&o);
}

/* A full site takes a round: with one round the others are never reached. */
static void test_smart_rounds_bound(void)
{
	struct disp_cand c[8];
	char ids[8][8];
	for (int i = 0; i < 8; i++) {
		snprintf(ids[i], sizeof(ids[i]), "v%d", i);
		c[i] = (struct disp_cand){ .id = ids[i], .cap_kw = 10, .avail_prob = 1 };
		c[i].soc = i < 4 ? 90 - i : 50 - i; /* the best four share site 1 */
		c[i].site = i < 4 ? 1 : 0;
	}
	double limit[2] = { -1, 10 };
	int32_t parent[2] = { -1, -1 };
	struct disp_sites s = { 2, limit, parent };
	struct disp_params p = { DISP_SMART, { .soc = 1 }, 1, 0 };
	struct disp_outcome o = { 0 };
	CHECK_INT(disp_dispatch(c, 8, 30, &p, &s, &o), 0);
	CHECK_NEAR(o.allocated_kw, 10, 1e-9);
	disp_outcome_free(&o);
	p.max_rounds = 2;
	CHECK_INT(disp_dispatch(c, 8, 30, &p, &s, &o), 0);
	CHECK_NEAR(o.allocated_kw, 30, 1e-9);
	disp_outcome_free(&o);
}

/* parent[] with a cycle: both limits cover both sites' vehicles. */
static void test_site_cycle(void)
{
	struct disp_cand c[4];
	const char *ids[4] = { "a", "b", "c", "d" };
	for (int i = 0; i < 4; i++)
		c[i] = (struct disp_cand){
			.id = ids[i], .cap_kw = 10, .site = (uint16_t)(1 + i % 2), .avail_prob = 1
		};
	double limit[3] = { -1, 25, 12 };
	int32_t parent[3] = { -1, 2, 1 };
	struct disp_sites s = { 3, limit, parent };
	for (int st = DISP_PRIORITY; st <= DISP_SMART; st++) {
		struct disp_params p = params(st, 0);
		struct disp_outcome o = { 0 };
		CHECK_INT(disp_dispatch(c, 4, 40, &p, &s, &o), 0);
		CHECK_NEAR(o.allocated_kw, 12, 1e-9);
		disp_outcome_free(&o);
	}
}

static void test_bad_input(void)
{
	struct disp_cand c[1] = { { .id = "a", .cap_kw = 5, .site = 3 } };
	double limit[2] = { -1, 5 };
	int32_t parent[2] = { -1, -1 };
	struct disp_sites s = { 2, limit, parent };
	struct disp_params p = params(DISP_SMART, 0);
	struct disp_outcome o = { 0 };
	CHECK_INT(disp_dispatch(c, 1, 5, &p, &s, &o), V2G_ERR_INVAL); /* site 3 of 2 */
	c[0].site = 1;
	parent[1] = 7;
	CHECK_INT(disp_dispatch(c, 1, 5, &p, &s, &o), V2G_ERR_INVAL); /* parent out of range */
	parent[1] = -1;
	CHECK_INT(disp_dispatch(c, 1, NAN, &p, &s, &o), V2G_ERR_INVAL);
	CHECK_INT(disp_dispatch(c, 1, 5, NULL, &s, &o), V2G_ERR_INVAL);
	/* nothing to do is not an error */
	CHECK_INT(disp_dispatch(c, 0, 5, &p, NULL, &o), 0);
	CHECK_INT(o.n, 0);
	disp_outcome_free(&o);
	CHECK_INT(disp_dispatch(c, 1, 0, &p, NULL, &o), 0);
	CHECK_INT(o.n, 0);
	disp_outcome_free(&o);
	CHECK_INT(disp_dispatch(c, 1, -3, &p, NULL, &o), 0);
	CHECK_INT(o.n, 0);
	disp_outcome_free(&o);
	disp_outcome_free(NULL);
}

static void test_lp_first_falls_back(void)
{
	struct disp_cand c[3] = {
		{ .id = "a", .soc = 90, .cap_kw = 5, .avail_prob = 1 },
		{ .id = "b", .soc = 50, .cap_kw = 5, .avail_prob = 1 },
		{ .id = "c", .soc = 70, .cap_kw = 5, .avail_prob = 1 },
	};
	struct disp_params p = { DISP_LP, { .soc = 1 }, 3, 1 };
	struct disp_outcome o = { 0 };
	CHECK_INT(disp_dispatch(c, 3, 8, &p, NULL, &o), 0);
	CHECK_INT(o.decided_by, DISP_LP);
	CHECK_INT(o.lp_status, DISP_LP_OPTIMAL);
	CHECK_NEAR(o.allocated_kw, 8, 1e-9);
	CHECK_NEAR(o.objective, 5 * 1 + 3 * 0.5, 1e-6);
	disp_outcome_free(&o);
	/* more than the fleet has: LP infeasible, Smart decides */
	CHECK_INT(disp_dispatch(c, 3, 20, &p, NULL, &o), 0);
	CHECK_INT(o.decided_by, DISP_SMART);
	CHECK_INT(o.lp_status, DISP_LP_INFEASIBLE);
	CHECK_NEAR(o.allocated_kw, 15, 1e-9);
	disp_outcome_free(&o);
	/* without the fallback, LP decides and says infeasible */
	p.lp_fallback = 0;
	CHECK_INT(disp_dispatch(c, 3, 20, &p, NULL, &o), 0);
	CHECK_INT(o.decided_by, DISP_LP);
	CHECK_INT(o.lp_status, DISP_LP_INFEASIBLE);
	CHECK_NEAR(o.allocated_kw, 15, 1e-9);
	disp_outcome_free(&o);
}

/* --- properties over random fleets ------------------------------------------ */

/* The reference greedy: a full sort, then each in turn up to its cap, the
 * request and its sites' headroom. */
static void reference_greedy(const struct fleet *f, int by_priority, double power, double *kw)
{
	struct disp_cand c[MAXN];
	uint32_t ord[MAXN];
	memcpy(c, f->c, f->n * sizeof(c[0]));
	for (size_t i = 0; i < f->n; i++)
		ord[i] = (uint32_t)i;
	/* selection sort: small and obviously right */
	for (size_t i = 0; i < f->n; i++) {
		size_t b = i;
		for (size_t j = i + 1; j < f->n; j++) {
			const struct disp_cand *x = &c[ord[j]], *y = &c[ord[b]];
			int better;
			if (by_priority) {
				if (x->priority != y->priority)
					better = x->priority > y->priority;
				else if (x->soc != y->soc)
					better = x->soc > y->soc;
				else if (x->tariff != y->tariff)
					better = x->tariff < y->tariff;
				else
					better = strcmp(x->id, y->id) < 0;
			} else {
				better = x->score != y->score ? x->score > y->score
				                              : strcmp(x->id, y->id) < 0;
			}
			if (better)
				b = j;
		}
		uint32_t t = ord[i];
		ord[i] = ord[b];
		ord[b] = t;
	}
	double room[MAXSITES], left = power;
	for (size_t s = 0; s < f->sites.n; s++)
		room[s] = f->has_sites && s && f->limit[s] >= 0 ? f->limit[s] : INFINITY;
	for (size_t r = 0; r < f->n; r++) {
		uint32_t i = ord[r];
		kw[i] = 0;
		if (!(c[i].cap_kw > 0) || left <= 1e-9)
			continue;
		double k = c[i].cap_kw < left ? c[i].cap_kw : left;
		for (int32_t s = c[i].site; s > 0; s = f->parent[s])
			k = room[s] < k ? room[s] : k;
		if (k <= 1e-9) {
			kw[i] = 0;
			continue;
		}
		kw[i] = k;
		left -= k;
		for (int32_t s = c[i].site; s > 0; s = f->parent[s])
			room[s] -= k;
	}
}

static void shuffle(struct disp_cand *c, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd() % i;
		struct disp_cand t = c[i - 1];
		c[i - 1] = c[j];
		c[j] = t;
	}
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct disp_cand *)a)->id, ((const struct disp_cand *)b)->id);
}

/* kw per id after the candidates were shuffled: must be bit-identical. */
static void check_shuffled(const struct fleet *f, const struct disp_params *p, double power,
                           const double *kw)
{
	struct fleet g = *f;
	for (size_t i = 0; i < g.n; i++)
		g.c[i].id = f->c[i].id; /* pointers into f */
	shuffle(g.c, g.n);
	struct disp_outcome o = { 0 };
	CHECK_INT(disp_dispatch(g.c, g.n, power, p, g.has_sites ? &g.sites : NULL, &o), 0);
	double gk[MAXN] = { 0 };
	for (size_t a = 0; a < o.n; a++)
		gk[o.allocs[a].cand] = o.allocs[a].kw;
	/* sort both views by id and compare */
	struct disp_cand a[MAXN], b[MAXN];
	for (size_t i = 0; i < f->n; i++) {
		a[i] = f->c[i];
		a[i].cap_kw = (float)i; /* carry the index */
		b[i] = g.c[i];
		b[i].cap_kw = (float)i;
	}
	qsort(a, f->n, sizeof(a[0]), by_id);
	qsort(b, g.n, sizeof(b[0]), by_id);
	int same = 1;
	for (size_t i = 0; i < f->n; i++)
		if (kw[(size_t)a[i].cap_kw] != gk[(size_t)b[i].cap_kw])
			same = 0;
	CHECK(same);
	disp_outcome_free(&o);
}

static void property_run(enum disp_strategy st, int with_sites, uint64_t seed)
{
	rng_state = seed;
	for (int it = 0; it < FLEETS; it++) {
		struct fleet f;
		make_fleet(&f, 1 + rnd() % MAXN, with_sites);
		double power = random_request(sum_cap(f.c, f.n));
		struct disp_params p = params(st, (int)(rnd() % 3));
		const struct disp_sites *s = with_sites ? &f.sites : NULL;
		struct disp_outcome o = { 0 }, o2 = { 0 };
		struct fleet f2 = f;
		CHECK_INT(disp_dispatch(f.c, f.n, power, &p, s, &o), 0);
		double kw[MAXN];
		check_valid(&f, &o, power, kw);
		/* meets min(request, what the fleet can give) */
		double can = feasible(&f), want = power < can ? power : can;
		CHECK_NEAR(o.allocated_kw, want, tol(want));
		/* deterministic */
		CHECK_INT(disp_dispatch(f2.c, f2.n, power, &p, with_sites ? &f2.sites : NULL, &o2),
		          0);
		CHECK(same_outcome(&o, &o2));
		disp_outcome_free(&o2);

		if (st == DISP_SMART || st == DISP_PRIORITY) {
			double ref[MAXN];
			reference_greedy(&f, st == DISP_PRIORITY, power, ref);
			for (size_t i = 0; i < f.n; i++)
				CHECK_NEAR(kw[i], ref[i], 1e-9 * (1 + ref[i]));
			if (it % 4 == 0)
				check_shuffled(&f, &p, power, kw);
		}
		if (st == DISP_SMART && !with_sites) {
			/* no one left out scores strictly above someone chosen */
			float lo = INFINITY, hi = -INFINITY;
			for (size_t i = 0; i < f.n; i++) {
				if (kw[i] > 0)
					lo = f.c[i].score < lo ? f.c[i].score : lo;
				else if (f.c[i].cap_kw > 0)
					hi = f.c[i].score > hi ? f.c[i].score : hi;
			}
			CHECK(!(hi > lo));
		}
		if (st == DISP_EQUAL) {
			/* the water level: everyone below cap holds the same power,
			 * and nobody at cap above it (without sites; with sites,
			 * everyone below cap and under no full site) */
			double room[MAXSITES];
			for (size_t q = 0; q < f.sites.n; q++)
				room[q] =
				        with_sites && q && f.limit[q] >= 0 ? f.limit[q] : INFINITY;
			for (size_t i = 0; i < f.n && with_sites; i++)
				for (int32_t q = f.c[i].site; q > 0; q = f.parent[q])
					room[q] -= kw[i];
			double level = -1;
			int flat = 1;
			for (size_t i = 0; i < f.n; i++) {
				int blocked = 0;
				for (int32_t q = with_sites ? f.c[i].site : 0; q > 0;
				     q = f.parent[q])
					blocked |= room[q] <= tol(f.limit[q]);
				if (blocked || !(kw[i] < f.c[i].cap_kw - 1e-9))
					continue;
				if (level < 0)
					level = kw[i];
				flat &= fabs(kw[i] - level) <= 1e-9 * (1 + level);
			}
			CHECK(flat);
			for (size_t i = 0; i < f.n && level >= 0 && !with_sites; i++)
				CHECK(f.c[i].cap_kw <= level + 1e-9 || kw[i] < f.c[i].cap_kw);
		}
		disp_outcome_free(&o);
	}
}

static void test_property_priority(void)
{
	property_run(DISP_PRIORITY, 0, 0x1111);
}
static void test_property_priority_sites(void)
{
	property_run(DISP_PRIORITY, 1, 0x2222);
}
static void test_property_equal(void)
{
	property_run(DISP_EQUAL, 0, 0x3333);
}
static void test_property_equal_sites(void)
{
	property_run(DISP_EQUAL, 1, 0x4444);
}
static void test_property_smart(void)
{
	property_run(DISP_SMART, 0, 0x5555);
}
static void test_property_smart_sites(void)
{
	property_run(DISP_SMART, 1, 0x6666);
}
static void test_property_lp(void)
{
	property_run(DISP_LP, 0, 0x7777);
}
static void test_property_lp_sites(void)
{
	property_run(DISP_LP, 1, 0x8888);
}

/* LP and Smart agree on the objective where the greedy is exact (a forest
 * of sites, rounds unbounded). */
static void test_property_lp_equals_smart(void)
{
	rng_state = 0x9999;
	for (int it = 0; it < FLEETS / 3; it++) {
		struct fleet f;
		make_fleet(&f, 1 + rnd() % MAXN, (int)(rnd() & 1));
		double power = random_request(sum_cap(f.c, f.n));
		const struct disp_sites *s = f.has_sites ? &f.sites : NULL;
		struct disp_params lp = params(DISP_LP, 0), sm = params(DISP_SMART, 0);
		struct disp_outcome a = { 0 }, b = { 0 };
		CHECK_INT(disp_dispatch(f.c, f.n, power, &lp, s, &a), 0);
		CHECK_INT(disp_dispatch(f.c, f.n, power, &sm, s, &b), 0);
		CHECK_NEAR(a.allocated_kw, b.allocated_kw, tol(b.allocated_kw));
		CHECK_NEAR(a.objective, b.objective, tol(b.objective));
		disp_outcome_free(&a);
		disp_outcome_free(&b);
	}
}

/* Large fleets (blocks sorted by radix, selection over many keys), with
 * many ties: Smart and Priority equal the reference greedy over a full
 * qsort, Equal holds its water level. */
static const struct disp_cand *ref_c;
static int ref_priority;

static int ref_cmp(const void *a, const void *b)
{
	const struct disp_cand *x = &ref_c[*(const uint32_t *)a], *y = &ref_c[*(const uint32_t *)b];
	if (ref_priority) {
		if (x->priority != y->priority)
			return x->priority > y->priority ? -1 : 1;
		if (x->soc != y->soc)
			return x->soc > y->soc ? -1 : 1;
		if (x->tariff != y->tariff)
			return x->tariff < y->tariff ? -1 : 1;
	} else if (x->score != y->score) {
		return x->score > y->score ? -1 : 1;
	}
	return strcmp(x->id, y->id);
}

static void test_property_large(void)
{
	rng_state = 0xb16b16;
	for (int it = 0; it < 24; it++) {
		size_t n = 5000 + rnd() % 60000;
		struct disp_cand *c = malloc(n * sizeof(*c)), *work = malloc(n * sizeof(*c));
		char(*ids)[16] = malloc(n * sizeof(*ids));
		uint32_t *ord = malloc(n * sizeof(*ord));
		double *kw = calloc(n, sizeof(*kw));
		double limit[MAXSITES];
		int32_t parent[MAXSITES];
		int with_sites = it % 3 == 2;
		for (size_t s = 0; s < MAXSITES; s++) {
			parent[s] = s > 1 && rnd() % 3 ? (int32_t)(1 + rnd() % (s - 1)) : -1;
			limit[s] = s && rnd() % 2 ? 2000 * urand() : -1;
		}
		struct disp_sites sites = { MAXSITES, limit, parent };
		for (size_t i = 0; i < n; i++) {
			snprintf(ids[i], sizeof(ids[i]), "v%07u",
			         (unsigned)((i * 104729) % 10000019));
			c[i] = (struct disp_cand){ .id = ids[i],
				                   .soc = (float)(rnd() % 5) * 20,
				                   .max_kw = (float)(1 + rnd() % 3) * 7,
				                   .tariff = (float)(rnd() % 3) * 0.1f,
				                   .priority = (int32_t)(rnd() % 3),
				                   .avail_prob = 1,
				                   .participation = (float)(rnd() % 3),
				                   .site = with_sites ? (uint16_t)(rnd() % MAXSITES)
				                                      : 0 };
		}
		disp_capacity(c, n, 60, 20);
		double total = sum_cap(c, n);
		double power = total * (it % 2 ? 0.02 + 0.05 * urand() : 0.3 + 0.6 * urand());
		for (int st = DISP_PRIORITY; st <= DISP_SMART; st++) {
			struct disp_params p = params(st, it % 3);
			struct disp_outcome o = { 0 };
			memcpy(work, c, n * sizeof(*c));
			CHECK_INT(disp_dispatch(work, n, power, &p, with_sites ? &sites : NULL, &o),
			          0);
			for (size_t i = 0; i < n; i++)
				kw[i] = 0;
			int valid = 1;
			for (size_t a = 0; a < o.n; a++) {
				valid &= o.allocs[a].cand < n && kw[o.allocs[a].cand] == 0 &&
				         o.allocs[a].kw > 0 &&
				         o.allocs[a].kw <= work[o.allocs[a].cand].cap_kw;
				if (o.allocs[a].cand < n)
					kw[o.allocs[a].cand] = o.allocs[a].kw;
			}
			CHECK(valid);
			if (st == DISP_EQUAL) {
				double level = -1;
				int flat = 1;
				for (size_t i = 0; i < n && !with_sites; i++) {
					if (!(kw[i] < work[i].cap_kw - 1e-9))
						continue;
					if (level < 0)
						level = kw[i];
					flat &= kw[i] == level;
				}
				CHECK(flat);
				if (!with_sites)
					CHECK_NEAR(o.allocated_kw, power, tol(power));
				disp_outcome_free(&o);
				continue;
			}
			/* the reference: a full sort, then the greedy fill */
			for (size_t i = 0; i < n; i++)
				ord[i] = (uint32_t)i;
			ref_c = work;
			ref_priority = st == DISP_PRIORITY;
			qsort(ord, n, sizeof(*ord), ref_cmp);
			double room[MAXSITES], left = power;
			int same = 1;
			for (size_t s = 0; s < MAXSITES; s++)
				room[s] = with_sites && s && limit[s] >= 0 ? limit[s] : INFINITY;
			for (size_t r = 0; r < n; r++) {
				const struct disp_cand *x = &work[ord[r]];
				double k = x->cap_kw > 0 && left > 1e-9
				                   ? (x->cap_kw < left ? x->cap_kw : left)
				                   : 0;
				for (int32_t s = with_sites ? x->site : 0; s > 0; s = parent[s])
					k = room[s] < k ? room[s] : k;
				if (k <= 1e-9)
					k = 0;
				same &= fabs(kw[ord[r]] - k) <= 1e-9 * (1 + k);
				left -= k;
				for (int32_t s = with_sites ? x->site : 0; s > 0; s = parent[s])
					room[s] -= k;
			}
			CHECK(same);
			CHECK_NEAR(o.allocated_kw, power - left, tol(power));
			/* the allocations come best first */
			int sorted = 1;
			for (size_t a = 1; a < o.n && !with_sites; a++) {
				uint32_t pair[2] = { o.allocs[a - 1].cand, o.allocs[a].cand };
				sorted &= ref_cmp(&pair[0], &pair[1]) < 0;
			}
			CHECK(sorted);
			disp_outcome_free(&o);
		}
		free(c);
		free(work);
		free(ids);
		free(ord);
		free(kw);
	}
}

/* parent[] with cycles (a cycle's sites all enclose one another): every
 * limit holds over the vehicles whose chain reaches its site, and the
 * power placed is what GLPK finds deliverable on the same LP. */
static void test_property_site_cycles(void)
{
	rng_state = 0xc1c1e5;
	for (int it = 0; it < 300; it++) {
		struct fleet f;
		make_fleet(&f, 1 + rnd() % MAXN, 1);
		for (size_t s = 1; s < f.sites.n; s++)
			f.parent[s] = rnd() % 3 ? (int32_t)(rnd() % f.sites.n) : -1;
		double power = random_request(sum_cap(f.c, f.n));
		struct disp_outcome ref = { 0 };
		disp_score(f.c, f.n, &(struct disp_weights){ .soc = 1 });
		CHECK(disp_lp_solve_glpk(f.c, f.n, power, &f.sites, &ref) >= 0);
		for (int st = DISP_PRIORITY; st <= DISP_LP; st++) {
			struct disp_params p = params(st, 0);
			struct disp_outcome o = { 0 };
			CHECK_INT(disp_dispatch(f.c, f.n, power, &p, &f.sites, &o), 0);
			double kw[MAXN] = { 0 }, load[MAXSITES] = { 0 };
			for (size_t a = 0; a < o.n; a++)
				kw[o.allocs[a].cand] = o.allocs[a].kw;
			for (size_t i = 0; i < f.n; i++) {
				int seen[MAXSITES] = { 0 };
				for (int32_t q = f.c[i].site; q > 0 && !seen[q]; q = f.parent[q]) {
					seen[q] = 1;
					load[q] += kw[i];
				}
			}
			for (size_t q = 1; q < f.sites.n; q++)
				if (f.limit[q] >= 0)
					CHECK(load[q] <= f.limit[q] + tol(f.limit[q]));
			CHECK_NEAR(o.allocated_kw, ref.allocated_kw, tol(power));
			disp_outcome_free(&o);
		}
		disp_outcome_free(&ref);
	}
}

/* Segmented: random segment configurations over random fleets. */
static void test_property_segmented(void)
{
	rng_state = 0xaaaa;
	for (int it = 0; it < FLEETS; it++) {
		struct fleet f;
		int with_sites = (int)(rnd() & 1);
		make_fleet(&f, 1 + rnd() % MAXN, with_sites);
		double power = random_request(sum_cap(f.c, f.n));
		struct disp_segment segs[3];
		size_t nsegs = rnd() % 4;
		static const enum disp_strategy kinds[] = { DISP_SMART, DISP_LP, DISP_EQUAL,
			                                    DISP_PRIORITY };
		for (size_t g = 0; g < nsegs; g++) {
			segs[g].segment = (uint16_t)(rnd() % 5);
			segs[g].params = params(kinds[rnd() % 4], (int)(rnd() % 3));
			segs[g].params.lp_fallback = (int)(rnd() & 1);
		}
		struct disp_params dflt = params(DISP_SMART, 0);
		const struct disp_sites *s = with_sites ? &f.sites : NULL;
		struct fleet f2 = f;
		struct disp_outcome o = { 0 }, o2 = { 0 };
		CHECK_INT(disp_dispatch_segmented(f.c, f.n, power, segs, nsegs, &dflt, s, &o), 0);
		/* c keeps its order */
		int kept = 1;
		for (size_t i = 0; i < f.n; i++)
			kept &= f.c[i].id == f2.c[i].id;
		CHECK(kept);
		double kw[MAXN];
		check_valid(&f, &o, power, kw);
		double can = feasible(&f), want = power < can ? power : can;
		/* shortfalls of one segment (its sites full) went to the others */
		CHECK_NEAR(o.allocated_kw, want, tol(want));
		CHECK_INT(disp_dispatch_segmented(f2.c, f2.n, power, segs, nsegs, &dflt,
		                                  with_sites ? &f2.sites : NULL, &o2),
		          0);
		CHECK(same_outcome(&o, &o2));
		disp_outcome_free(&o);
		disp_outcome_free(&o2);
	}
}

/* Each segment is scored with its own weights over its own vehicles; other
 * segments use the default; the largest share decides. */
static void test_segmented_weights(void)
{
	struct disp_cand c[6];
	const char *ids[6] = { "a", "b", "c", "d", "e", "f" };
	for (int i = 0; i < 6; i++) {
		c[i] = (struct disp_cand){ .id = ids[i], .cap_kw = 10, .avail_prob = 1 };
		c[i].segment = (uint16_t)(i < 3 ? 1 : 2 + i % 2); /* 1: a b c; 2, 3: others */
		c[i].soc = (float)(30 + 10 * i);
		c[i].tariff = (float)(0.6 - 0.1 * i);
	}
	struct disp_segment seg = { 1, { DISP_SMART, { .soc = 1 }, 3, 0 } };
	struct disp_params dflt = { DISP_EQUAL, { .price = 1 }, 3, 0 };
	struct disp_outcome o = { 0 };
	CHECK_INT(disp_dispatch_segmented(c, 6, 30, &seg, 1, &dflt, NULL, &o), 0);
	/* segment 1: SoC 30, 40, 50 normalised over a b c alone */
	CHECK_NEAR(c[0].score, 0, 1e-6);
	CHECK_NEAR(c[1].score, 0.5, 1e-6);
	CHECK_NEAR(c[2].score, 1, 1e-6);
	/* the rest: tariff 0.3 .. 0.1, cheapest (f) scores 1 */
	CHECK_NEAR(c[3].score, 0, 1e-6);
	CHECK_NEAR(c[5].score, 1, 1e-6);
	/* 30 kW in proportion to 30 + 30 kW of capacity: 15 each; Smart puts
	 * segment 1's share on c then b; Equal spreads 5 on d e f */
	double kw[6] = { 0 };
	for (size_t a = 0; a < o.n; a++)
		kw[o.allocs[a].cand] = o.allocs[a].kw;
	CHECK_NEAR(kw[2], 10, 1e-9);
	CHECK_NEAR(kw[1], 5, 1e-9);
	CHECK_NEAR(kw[0], 0, 1e-9);
	CHECK_NEAR(kw[3], 5, 1e-9);
	CHECK_NEAR(kw[4], 5, 1e-9);
	CHECK_NEAR(kw[5], 5, 1e-9);
	CHECK_NEAR(o.allocated_kw, 30, 1e-9);
	disp_outcome_free(&o);

	/* a segment short of its share: the others take the rest */
	c[0].cap_kw = c[1].cap_kw = c[2].cap_kw = 10;
	double limit[2] = { -1, 6 };
	int32_t parent[2] = { -1, -1 };
	struct disp_sites s = { 2, limit, parent };
	for (int i = 0; i < 3; i++)
		c[i].site = 1; /* segment 1 can give 6 kW only */
	CHECK_INT(disp_dispatch_segmented(c, 6, 30, &seg, 1, &dflt, &s, &o), 0);
	CHECK_NEAR(o.allocated_kw, 30, 1e-9);
	CHECK_INT(o.decided_by, DISP_EQUAL); /* equal shares: the default group leads */
	disp_outcome_free(&o);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_names),
		HCASE(test_default_weights),
		HCASE(test_capacity),
		HCASE(test_score_normalisation),
		HCASE(test_score_range_random),
		HCASE(test_priority_v1_order_up_to_cap),
		HCASE(test_equal_spreads_remainder),
		HCASE(test_smart_best_scores_first),
		HCASE(test_smart_rounds_bound),
		HCASE(test_site_cycle),
		HCASE(test_bad_input),
		HCASE(test_lp_first_falls_back),
		HCASE(test_property_priority),
		HCASE(test_property_priority_sites),
		HCASE(test_property_equal),
		HCASE(test_property_equal_sites),
		HCASE(test_property_smart),
		HCASE(test_property_smart_sites),
		HCASE(test_property_lp),
		HCASE(test_property_lp_sites),
		HCASE(test_property_lp_equals_smart),
		HCASE(test_property_large),
		HCASE(test_property_site_cycles),
		HCASE(test_property_segmented),
		HCASE(test_segmented_weights),
	};
	return harness_main("strategy", cases, HARNESS_N(cases));
}
