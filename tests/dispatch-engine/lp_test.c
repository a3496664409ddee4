/* The LP strategy: hand cases with known optima, the structured solver
 * against GLPK's simplex on hundreds of random instances, and a sample
 * against the real glpsol CLI on the LP that disp_lp_write produces. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/harness.h"
#include "../../services/dispatch-engine/lp.h"

#define MAXN  2000
#define MAXS  64
#define IDLEN 16

/* ------------------------------------------------------------------ */
/* Helpers                                                            */

static void cand(struct disp_cand *c, const char *id, double score, double cap, int site)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->score = (float)score;
	c->cap_kw = (float)cap;
	c->max_kw = (float)cap;
	c->site = (uint16_t)site;
	c->avail_prob = 1;
}

/* Power given to candidate i in o (0 when none). */
static double kw_of(const struct disp_outcome *o, size_t i)
{
	for (size_t k = 0; k < o->n; k++)
		if (o->allocs[k].cand == i)
			return o->allocs[k].kw;
	return 0;
}

static int rel_eq(double a, double b, double rel)
{
	return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-9;
}

/* Is site s an ancestor-or-self of site t (walking parent[], stopping at
 * -1, 0 or a repeat)? */
static int covers(const struct disp_sites *s, int t, int site)
{
	for (int hops = 0; t > 0 && (size_t)hops <= s->n; hops++) {
		if (t == site)
			return 1;
		t = s->parent[t];
	}
	return 0;
}

/* Every rule lp.h states, whatever the solver: each share in (0, cap],
 * each candidate at most once, the sum at most the request, every limit
 * held (tolerance tol relative to the request). */
static int outcome_valid(const struct disp_cand *c, size_t n, double power,
                         const struct disp_sites *s, const struct disp_outcome *o, double tol)
{
	static unsigned char seen[MAXN * 50];
	double sum = 0, obj = 0, eps = tol * fmax(1, power);

	if (n > sizeof(seen))
		return 0;
	memset(seen, 0, n);
	for (size_t k = 0; k < o->n; k++) {
		uint32_t i = o->allocs[k].cand;
		double kw = o->allocs[k].kw;
		if (i >= n || seen[i] || !(kw > 0) || kw > c[i].cap_kw)
			return 0;
		seen[i] = 1;
		sum += kw;
		obj += c[i].score * kw;
	}
	if (sum > power + eps || !rel_eq(sum, o->allocated_kw, 1e-12) ||
	    !rel_eq(obj, o->objective, 1e-12))
		return 0;
	if (!s)
		return 1;
	for (size_t site = 1; site < s->n; site++) {
		double load = 0;
		if (s->limit_kw[site] < 0)
			continue;
		for (size_t k = 0; k < o->n; k++)
			if (covers(s, c[o->allocs[k].cand].site, (int)site))
				load += o->allocs[k].kw;
		if (load > s->limit_kw[site] + eps)
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* glpsol                                                             */

static int glpsol_present(void)
{
	static int present = -1;
	if (present < 0)
		present = system("command -v glpsol >/dev/null 2>&1") == 0;
	return present;
}

/* Runs glpsol on the LP written by disp_lp_write. Returns 1 optimal (obj
 * set), 0 not optimal, -1 on error. */
static int glpsol_solve(const struct disp_cand *c, size_t n, double power,
                        const struct disp_sites *s, double *obj)
{
	char lp[] = "/tmp/v2g-lp-test-XXXXXX", sol[64], cmd[256], line[256];
	int fd = mkstemp(lp), rc = -1, optimal = 0, have_obj = 0;
	FILE *f;

	if (fd < 0)
		return -1;
	snprintf(sol, sizeof(sol), "%s.out", lp);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		goto out;
	}
	if (disp_lp_write(f, c, n, power, s) != 0) {
		fclose(f);
		goto out;
	}
	if (fclose(f) != 0)
		goto out;
	snprintf(cmd, sizeof(cmd), "glpsol --lp %s -o %s >/dev/null 2>&1", lp, sol);
	if (system(cmd) != 0)
		goto out;
	f = fopen(sol, "r");
	if (!f)
		goto out;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Status:", 7) == 0)
			optimal = strstr(line, "OPTIMAL") != NULL;
		if (sscanf(line, "Objective: %*s = %lf", obj) == 1)
			have_obj = 1;
	}
	fclose(f);
	rc = optimal && have_obj ? 1 : 0;
out:
	unlink(lp);
	unlink(sol);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Hand cases                                                         */

/* One constraint: Dantzig's knapsack takes the best scores first. */
static void test_knapsack(void)
{
	struct disp_cand c[3];
	struct disp_outcome o = { 0 };

	cand(&c[0], "a", 1, 10, 0);
	cand(&c[1], "b", 3, 20, 0);
	cand(&c[2], "c", 2, 30, 0);
	CHECK_INT(disp_lp_solve(c, 3, 35, NULL, &o), DISP_LP_OPTIMAL);
	CHECK_INT(o.lp_status, DISP_LP_OPTIMAL);
	CHECK_INT(o.decided_by, DISP_LP);
	CHECK_NEAR(kw_of(&o, 0), 0, 1e-12);
	CHECK_NEAR(kw_of(&o, 1), 20, 1e-12);
	CHECK_NEAR(kw_of(&o, 2), 15, 1e-12);
	CHECK_NEAR(o.allocated_kw, 35, 1e-12);
	CHECK_NEAR(o.objective, 90, 1e-9);
	CHECK_INT(o.n, 2);
	disp_outcome_free(&o);
	CHECK_INT(disp_lp_solve_glpk(c, 3, 35, NULL, &o), DISP_LP_OPTIMAL);
	CHECK_NEAR(o.objective, 90, 1e-9);
	CHECK_NEAR(kw_of(&o, 2), 15, 1e-9);
	disp_outcome_free(&o);
}

/* A site limit binds: the best vehicles share a site capped below their
 * total, the rest comes from the next site. */
static void test_site_limit(void)
{
	struct disp_cand c[3];
	double limit[3] = { -1, 25, -1 };
	int32_t parent[3] = { -1, -1, -1 };
	struct disp_sites s = { 3, limit, parent };
	struct disp_outcome o = { 0 };

	cand(&c[0], "a", 3, 20, 1);
	cand(&c[1], "b", 2, 20, 1);
	cand(&c[2], "c", 1, 20, 2);
	CHECK_INT(disp_lp_solve(c, 3, 40, &s, &o), DISP_LP_OPTIMAL);
	CHECK_NEAR(kw_of(&o, 0), 20, 1e-12);
	CHECK_NEAR(kw_of(&o, 1), 5, 1e-12);
	CHECK_NEAR(kw_of(&o, 2), 15, 1e-12);
	CHECK_NEAR(o.objective, 85, 1e-9);
	CHECK(outcome_valid(c, 3, 40, &s, &o, 1e-9));
	disp_outcome_free(&o);
	CHECK_INT(disp_lp_solve_glpk(c, 3, 40, &s, &o), DISP_LP_OPTIMAL);
	CHECK_NEAR(o.objective, 85, 1e-7);
	disp_outcome_free(&o);
}

/* A service entrance (site 1) with two feeders (2, 3) and an unlimited
 * site 4. First the feeder binds, then the service. */
static void test_nested(void)
{
	struct disp_cand c[4];
	double limit[5] = { -1, 100, 10, 50, -1 };
	int32_t parent[5] = { -1, -1, 1, 1, -1 };
	struct disp_sites s = { 5, limit, parent };
	struct disp_outcome o = { 0 };

	cand(&c[0], "f2a", 4, 20, 2);
	cand(&c[1], "f2b", 3, 20, 2);
	cand(&c[2], "f3", 2, 20, 3);
	cand(&c[3], "free", 1, 40, 4);
	/* feeder 2 (10 kW) binds, the service (100) does not */
	CHECK_INT(disp_lp_solve(c, 4, 50, &s, &o), DISP_LP_OPTIMAL);
	CHECK_NEAR(kw_of(&o, 0), 10, 1e-12);
	CHECK_NEAR(kw_of(&o, 1), 0, 1e-12);
	CHECK_NEAR(kw_of(&o, 2), 20, 1e-12);
	CHECK_NEAR(kw_of(&o, 3), 20, 1e-12);
	CHECK_NEAR(o.objective, 40 + 40 + 20, 1e-9);
	CHECK(outcome_valid(c, 4, 50, &s, &o, 1e-9));
	disp_outcome_free(&o);

	/* the service (25 kW) binds below its feeders (30 and 50) */
	limit[1] = 25;
	limit[2] = 30;
	CHECK_INT(disp_lp_solve(c, 4, 50, &s, &o), DISP_LP_OPTIMAL);
	CHECK_NEAR(kw_of(&o, 0), 20, 1e-12);
	CHECK_NEAR(kw_of(&o, 1), 5, 1e-12);
	CHECK_NEAR(kw_of(&o, 2), 0, 1e-12);
	CHECK_NEAR(kw_of(&o, 3), 25, 1e-12);
	CHECK_NEAR(o.objective, 80 + 15 + 25, 1e-9);
	CHECK(outcome_valid(c, 4, 50, &s, &o, 1e-9));
	disp_outcome_free(&o);
	CHECK_INT(disp_lp_solve_glpk(c, 4, 50, &s, &o), DISP_LP_OPTIMAL);
	CHECK_NEAR(o.objective, 120, 1e-7);
	disp_outcome_free(&o);
}

/* More is asked than the fleet (under its limits) can give: the most power
 * possible, and the best objective among those allocations. */
static void test_infeasible(void)
{
	struct disp_cand c[3];
	double limit[3] = { -1, 10, -1 };
	int32_t parent[3] = { -1, -1, -1 };
	struct disp_sites s = { 3, limit, parent };
	struct disp_outcome o = { 0 };

	cand(&c[0], "a", 5, 10, 1);
	cand(&c[1], "b", 1, 10, 1);
	cand(&c[2], "c", 0.5, 10, 2);
	CHECK_INT(disp_lp_solve(c, 3, 100, &s, &o), DISP_LP_INFEASIBLE);
	CHECK_INT(o.lp_status, DISP_LP_INFEASIBLE);
	CHECK_NEAR(o.allocated_kw, 20, 1e-12);
	CHECK_NEAR(kw_of(&o, 0), 10, 1e-12);
	CHECK_NEAR(kw_of(&o, 1), 0, 1e-12);
	CHECK_NEAR(kw_of(&o, 2), 10, 1e-12);
	CHECK_NEAR(o.objective, 55, 1e-9);
	disp_outcome_free(&o);
	CHECK_INT(disp_lp_solve_glpk(c, 3, 100, &s, &o), DISP_LP_INFEASIBLE);
	CHECK_NEAR(o.allocated_kw, 20, 1e-7);
	CHECK_NEAR(o.objective, 55, 1e-6);
	CHECK(outcome_valid(c, 3, 100, &s, &o, 1e-9));
	disp_outcome_free(&o);

	/* no limits: everything, capacity < request */
	c[0].site = c[1].site = c[2].site = 0;
	CHECK_INT(disp_lp_solve(c, 3, 31, NULL, &o), DISP_LP_INFEASIBLE);
	CHECK_NEAR(o.allocated_kw, 30, 1e-12);
	CHECK_NEAR(o.objective, 65, 1e-9);
	disp_outcome_free(&o);
	/* no candidates at all */
	CHECK_INT(disp_lp_solve(c, 0, 5, NULL, &o), DISP_LP_INFEASIBLE);
	CHECK_INT(o.n, 0);
	disp_outcome_free(&o);
	CHECK_INT(disp_lp_solve_glpk(c, 0, 5, NULL, &o), DISP_LP_INFEASIBLE);
	disp_outcome_free(&o);
}

static void test_zero_request(void)
{
	struct disp_cand c[2];
	struct disp_outcome o = { 0 };

	cand(&c[0], "a", 1, 10, 0);
	cand(&c[1], "b", 2, 10, 0);
	CHECK_INT(disp_lp_solve(c, 2, 0, NULL, &o), DISP_LP_OPTIMAL);
	CHECK_INT(o.n, 0);
	CHECK_NEAR(o.allocated_kw, 0, 0);
	CHECK_NEAR(o.objective, 0, 0);
	disp_outcome_free(&o);
	CHECK_INT(disp_lp_solve_glpk(c, 2, 0, NULL, &o), DISP_LP_OPTIMAL);
	CHECK_INT(o.n, 0);
	disp_outcome_free(&o);
	CHECK_INT(disp_lp_solve(c, 0, 0, NULL, &o), DISP_LP_OPTIMAL);
	disp_outcome_free(&o);
}

/* Equal scores (here all zero): the order is the ids', whatever the order
 * of the array. */
static void test_ties_by_id(void)
{
	static const char *ids[3] = { "v3", "v1", "v2" };
	struct disp_cand c[3];
	struct disp_outcome o = { 0 };

	for (int zero = 0; zero < 2; zero++) {
		for (int rot = 0; rot < 3; rot++) {
			for (int i = 0; i < 3; i++)
				cand(&c[i], ids[(i + rot) % 3], zero ? 0 : 1, 10, 0);
			CHECK_INT(disp_lp_solve(c, 3, 15, NULL, &o), DISP_LP_OPTIMAL);
			for (int i = 0; i < 3; i++) {
				double want = strcmp(c[i].id, "v1") == 0   ? 10
				              : strcmp(c[i].id, "v2") == 0 ? 5
				                                           : 0;
				CHECK_NEAR(kw_of(&o, (size_t)i), want, 1e-12);
			}
			CHECK_NEAR(o.objective, zero ? 0 : 15, 1e-12);
			CHECK_INT(o.allocs[0].cand, (rot == 0 ? 1 : rot == 1 ? 0 : 2));
			disp_outcome_free(&o);
		}
	}
}

/* A site limit of 0 shuts its vehicles (and those of its sub-sites) out. */
static void test_zero_limit(void)
{
	struct disp_cand c[3];
	double limit[3] = { -1, 0, -1 };
	int32_t parent[3] = { -1, -1, 1 };
	struct disp_sites s = { 3, limit, parent };
	struct disp_outcome o = { 0 };

	cand(&c[0], "a", 5, 10, 1);
	cand(&c[1], "b", 4, 10, 2);
	cand(&c[2], "c", 1, 10, 0);
	CHECK_INT(disp_lp_solve(c, 3, 8, &s, &o), DISP_LP_OPTIMAL);
	CHECK_INT(o.n, 1);
	CHECK_NEAR(kw_of(&o, 2), 8, 1e-12);
	disp_outcome_free(&o);
}

/* parent[] with a cycle is not a forest: the solver hands it to GLPK. In a
 * cycle every member's limit holds over the vehicles of all its members. */
static void test_cycle(void)
{
	struct disp_cand c[3];
	double limit[4] = { -1, 15, 25, -1 };
	int32_t parent[4] = { -1, 2, 1, -1 };
	struct disp_sites s = { 4, limit, parent };
	struct disp_outcome o = { 0 };

	cand(&c[0], "a", 2, 10, 1);
	cand(&c[1], "b", 3, 10, 2);
	cand(&c[2], "c", 1, 20, 3);
	/* sites 1 and 2 together at most 15: b 10, a 5, c 15 */
	CHECK_INT(disp_lp_solve(c, 3, 30, &s, &o), DISP_LP_OPTIMAL);
	CHECK_INT(o.decided_by, DISP_LP);
	CHECK_NEAR(o.objective, 30 + 10 + 15, 1e-7);
	CHECK_NEAR(kw_of(&o, 1), 10, 1e-7);
	CHECK_NEAR(kw_of(&o, 0), 5, 1e-7);
	CHECK_NEAR(kw_of(&o, 2), 15, 1e-7);
	CHECK(outcome_valid(c, 3, 30, &s, &o, 1e-7));
	disp_outcome_free(&o);

	/* a site that is its own parent; more than the limits allow */
	parent[1] = 1;
	parent[2] = -1;
	limit[1] = 4;
	CHECK_INT(disp_lp_solve(c, 3, 100, &s, &o), DISP_LP_INFEASIBLE);
	CHECK_NEAR(o.allocated_kw, 4 + 10 + 20, 1e-7);
	CHECK_NEAR(o.objective, 8 + 30 + 20, 1e-6);
	disp_outcome_free(&o);

	if (!glpsol_present()) {
		printf("lp_test: glpsol not found, skipping the CLI check of a cycle\n");
		return;
	}
	parent[1] = 2;
	parent[2] = 1;
	limit[1] = 15;
	double obj = 0;
	CHECK_INT(glpsol_solve(c, 3, 30, &s, &obj), 1);
	CHECK_NEAR(obj, 55, 1e-7);
}

/* Malformed instances fail cleanly instead of answering nonsense. */
static void test_invalid(void)
{
	struct disp_cand c[2];
	double limit[2] = { -1, 5 };
	int32_t parent[2] = { -1, 7 };
	struct disp_sites s = { 2, limit, parent };
	struct disp_outcome o = { 0 };

	cand(&c[0], "a", 1, 10, 1);
	cand(&c[1], "b", 1, 10, 0);
	CHECK_INT(disp_lp_solve(c, 2, NAN, NULL, &o), DISP_LP_FAILED);
	CHECK_INT(o.lp_status, DISP_LP_FAILED);
	CHECK(o.allocs == NULL);
	CHECK_INT(disp_lp_solve(c, 2, -1, NULL, &o), DISP_LP_FAILED);
	/* site 1 used but no site table: no limits at all (strategy.h) */
	CHECK_INT(disp_lp_solve(c, 2, 5, NULL, &o), DISP_LP_OPTIMAL);
	disp_outcome_free(&o);
	/* parent out of range */
	CHECK_INT(disp_lp_solve(c, 2, 5, &s, &o), DISP_LP_FAILED);
	CHECK_INT(disp_lp_solve_glpk(c, 2, 5, &s, &o), DISP_LP_FAILED);
	CHECK_INT(disp_lp_write(stdout, c, 2, 5, &s), -1);
	parent[1] = -1;
	c[1].score = NAN;
	CHECK_INT(disp_lp_solve(c, 2, 5, &s, &o), DISP_LP_FAILED);
	c[1].score = 1;
	CHECK_INT(disp_lp_solve(c, 2, 5, &s, &o), DISP_LP_OPTIMAL);
	disp_outcome_free(&o);
}

/* The writer's output is plain CPLEX LP: names x<i>, one row per limit. */
static void test_write_format(void)
{
	struct disp_cand c[2];
	double limit[2] = { -1, 5 };
	int32_t parent[2] = { -1, -1 };
	struct disp_sites s = { 2, limit, parent };
	char buf[1024] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	cand(&c[0], "a", 0.5, 10, 1);
	cand(&c[1], "b", 0, 0, 0);
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT(disp_lp_write(f, c, 2, 7, &s), 0);
	fclose(f);
	CHECK(strstr(buf, "Maximize\n obj:  0.5 x0 + 0 x1\n") != NULL);
	CHECK(strstr(buf, " total: x0 + x1 = 7\n") != NULL);
	CHECK(strstr(buf, " s1: x0 <= 5\n") != NULL);
	CHECK(strstr(buf, " 0 <= x0 <= 10\n") != NULL);
	CHECK(strstr(buf, " x1 = 0\n") != NULL);
	CHECK(strstr(buf, "End\n") != NULL);
}

/* ------------------------------------------------------------------ */
/* Random instances                                                   */

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static double unif(void)
{
	return (double)(rng() >> 11) / 9007199254740992.0;
}

struct inst {
	struct disp_cand c[MAXN];
	char ids[MAXN][IDLEN];
	double limit[MAXS];
	int32_t parent[MAXS];
	struct disp_sites sites;
	size_t n;
	double power;
};

/* A forest of up to ns sites (parent below the child, so no cycle), limits
 * on about half of them, capacities with some zeros, scores continuous or
 * on a coarse grid (many ties), a request anywhere up to 120% of the
 * fleet's capacity. */
static void inst_random(struct inst *in, size_t n, size_t ns)
{
	double capsum = 0;
	int grid = rng() % 4 == 0;

	in->n = n;
	in->sites.n = ns;
	in->sites.limit_kw = in->limit;
	in->sites.parent = in->parent;
	in->limit[0] = -1;
	in->parent[0] = -1;
	for (size_t s = 1; s < ns; s++) {
		in->parent[s] = s > 1 && unif() < 0.6 ? (int32_t)(1 + rng() % (s - 1)) : -1;
		in->limit[s] = unif() < 0.5    ? -1
		               : unif() < 0.05 ? 0
		                               : unif() * 20.0 * (double)n / ns;
	}
	for (size_t i = 0; i < n; i++) {
		double cap = unif() < 0.1 ? 0 : unif() * 22;
		double score = grid ? (double)(rng() % 3) * 0.5 : unif();
		snprintf(in->ids[i], IDLEN, "v%05u", (unsigned)(rng() % 100000));
		cand(&in->c[i], in->ids[i], score, cap, (int)(rng() % ns));
		capsum += in->c[i].cap_kw;
	}
	in->power = rng() % 20 == 0 ? 0 : unif() * 1.2 * capsum;
}

/* The structured solver and GLPK agree on hundreds of random instances. */
static void test_random_vs_glpk(void)
{
	static struct inst in;
	int infeasible = 0, ran = 0;

	rng_state = 0x9e3779b97f4a7c15ull;
	for (int t = 0; t < 600; t++) {
		struct disp_outcome a = { 0 }, b = { 0 };
		size_t n = 1 + rng() % (t < 500 ? 40 : 400);
		size_t ns = 1 + rng() % (t < 500 ? 10 : MAXS - 1);
		int sa, sb;

		inst_random(&in, n, ns);
		sa = disp_lp_solve(in.c, n, in.power, &in.sites, &a);
		sb = disp_lp_solve_glpk(in.c, n, in.power, &in.sites, &b);
		ran++;
		infeasible += sa == DISP_LP_INFEASIBLE;
		CHECK_INT(sa, sb);
		CHECK(rel_eq(a.objective, b.objective, 1e-6));
		CHECK(rel_eq(a.allocated_kw, b.allocated_kw, 1e-6));
		CHECK(outcome_valid(in.c, n, in.power, &in.sites, &a, 1e-9));
		CHECK(outcome_valid(in.c, n, in.power, &in.sites, &b, 1e-7));
		if (sa == DISP_LP_OPTIMAL)
			CHECK(rel_eq(a.allocated_kw, in.power, 1e-9));
		if (sa != sb || !rel_eq(a.objective, b.objective, 1e-6))
			printf("  instance %d: n=%zu sites=%zu power=%g: %d %.12g vs glpk %d "
			       "%.12g\n",
			       t, n, ns, in.power, sa, a.objective, sb, b.objective);
		disp_outcome_free(&a);
		disp_outcome_free(&b);
	}
	printf("lp_test: %d random instances vs GLPK (%d infeasible)\n", ran, infeasible);
	CHECK(infeasible > 10 && infeasible < ran - 10);
}

/* The same instance in another order gives every vehicle the same power. */
static void test_random_deterministic(void)
{
	static struct inst in, sh;
	static double kw[MAXN];

	rng_state = 42;
	for (int t = 0; t < 300; t++) {
		struct disp_outcome a = { 0 }, b = { 0 };
		size_t n = 1 + rng() % 200;
		uint32_t perm[MAXN];

		inst_random(&in, n, 1 + rng() % 12);
		/* distinct ids, so that the order cannot matter */
		for (size_t i = 0; i < n; i++) {
			snprintf(in.ids[i], IDLEN, "v%05zu", (i * 7919) % 100000);
			perm[i] = (uint32_t)i;
		}
		for (size_t i = n; i-- > 1;) {
			size_t j = rng() % (i + 1);
			uint32_t x = perm[i];
			perm[i] = perm[j];
			perm[j] = x;
		}
		sh = in;
		for (size_t i = 0; i < n; i++) {
			sh.c[i] = in.c[perm[i]];
			sh.c[i].id = in.ids[perm[i]];
		}
		CHECK_INT(disp_lp_solve(in.c, n, in.power, &in.sites, &a),
		          disp_lp_solve(sh.c, n, in.power, &in.sites, &b));
		memset(kw, 0, n * sizeof(kw[0]));
		for (size_t k = 0; k < a.n; k++)
			kw[a.allocs[k].cand] = a.allocs[k].kw;
		for (size_t k = 0; k < b.n; k++)
			CHECK(kw[perm[b.allocs[k].cand]] == b.allocs[k].kw);
		CHECK_INT(a.n, b.n);
		CHECK(a.objective == b.objective || rel_eq(a.objective, b.objective, 1e-12));
		disp_outcome_free(&a);
		disp_outcome_free(&b);
	}
}

/* A sample of small instances against the glpsol CLI on the written LP. */
static void test_random_vs_glpsol(void)
{
	static struct inst in;
	int compared = 0, infeasible = 0;

	if (!glpsol_present()) {
		printf("lp_test: glpsol not found, SKIPPING the CLI cross-check\n");
		return;
	}
	rng_state = 7;
	for (int t = 0; t < 24; t++) {
		struct disp_outcome a = { 0 };
		size_t n = 1 + rng() % 60;
		double obj = 0;
		int st, g;

		inst_random(&in, n, 1 + rng() % 12);
		st = disp_lp_solve(in.c, n, in.power, &in.sites, &a);
		g = glpsol_solve(in.c, n, in.power, &in.sites, &obj);
		CHECK(g >= 0);
		if (st == DISP_LP_OPTIMAL) {
			CHECK_INT(g, 1);
			CHECK(rel_eq(a.objective, obj, 1e-6));
			if (!rel_eq(a.objective, obj, 1e-6))
				printf("  instance %d: %.12g vs glpsol %.12g\n", t, a.objective,
				       obj);
			compared++;
		} else {
			/* the equality LP has no solution: glpsol must not find one */
			CHECK_INT(g, 0);
			infeasible++;
		}
		disp_outcome_free(&a);
	}
	printf("lp_test: %d instances vs glpsol (%d more agreed infeasible)\n", compared,
	       infeasible);
	CHECK(compared >= 15);
}

/* ------------------------------------------------------------------ */
/* Larger fleets: the block selection against a full sort              */

struct ref_key {
	double score;
	const char *id;
	uint32_t i;
};

static int ref_cmp(const void *pa, const void *pb)
{
	const struct ref_key *a = pa, *b = pb;
	int r;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	r = strcmp(a->id, b->id);
	if (r)
		return r;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* The textbook greedy: sort everything, walk every ancestor. */
static void ref_greedy(const struct disp_cand *c, size_t n, double power,
                       const struct disp_sites *s, double *kw)
{
	struct ref_key *k = malloc(n * sizeof(*k));
	double *head = malloc(s->n * sizeof(*head));
	double noise = 1e-12 * fmax(1, power); /* lp.c's rounding threshold */

	for (size_t i = 0; i < n; i++) {
		k[i].score = c[i].score;
		k[i].id = c[i].id;
		k[i].i = (uint32_t)i;
		kw[i] = 0;
	}
	for (size_t u = 0; u < s->n; u++)
		head[u] = u > 0 && s->limit_kw[u] >= 0 ? s->limit_kw[u] : INFINITY;
	qsort(k, n, sizeof(*k), ref_cmp);
	for (size_t j = 0; j < n && power > noise; j++) {
		uint32_t i = k[j].i;
		double x = fmin(c[i].cap_kw, power);
		for (int32_t u = c[i].site; u > 0; u = s->parent[u])
			x = fmin(x, head[u]);
		if (!(x > noise))
			continue;
		kw[i] = x;
		power = x == power ? 0 : power - x;
		for (int32_t u = c[i].site; u > 0; u = s->parent[u])
			head[u] = head[u] - x > noise ? head[u] - x : 0;
	}
	free(k);
	free(head);
}

/* 50k vehicles, 500 sites in two levels, the best scores crowded into
 * tight sites so that the first block is mostly blocked and more blocks
 * follow. */
static void test_large_blocks(void)
{
	enum { N = 50000, NS = 501 };
	struct disp_cand *c = malloc(N * sizeof(*c));
	char(*ids)[IDLEN] = malloc(N * IDLEN);
	double *kw = malloc(N * sizeof(*kw)), limit[NS];
	int32_t parent[NS];
	struct disp_sites s = { NS, limit, parent };

	rng_state = 99;
	limit[0] = -1;
	parent[0] = -1;
	for (int u = 1; u < NS; u++) {
		parent[u] = u <= 50 ? -1 : 1 + (u - 51) / 9;
		limit[u] = u <= 50 ? 500 + unif() * 3000 : unif() < 0.3 ? -1 : unif() * 400;
	}
	/* rounds: continuous scores, then many ties; large, then small requests */
	for (int round = 0; round < 4; round++) {
		double capsum = 0, power;
		struct disp_outcome o = { 0 };
		size_t mism = 0;

		for (int i = 0; i < N; i++) {
			int site = 51 + (int)(rng() % 450);
			/* sites 51..100 hold the best scores but little headroom */
			double score = unif() * (site <= 100 ? 1 : 0.5);
			if (round >= 2)
				score = (double)(rng() % 5);
			snprintf(ids[i], IDLEN, "ev-%07d", (int)(rng() % 10000000));
			cand(&c[i], ids[i], score, 3 + unif() * 19, site);
			capsum += c[i].cap_kw;
		}
		power = (round % 2 ? 0.02 : 0.3) * capsum;
		CHECK(disp_lp_solve(c, N, power, &s, &o) >= 0);
		ref_greedy(c, N, power, &s, kw);
		for (size_t k = 0; k < o.n; k++) {
			mism += kw[o.allocs[k].cand] != o.allocs[k].kw;
			kw[o.allocs[k].cand] = 0;
		}
		for (int i = 0; i < N; i++)
			mism += kw[i] != 0;
		CHECK_INT(mism, 0);
		CHECK(outcome_valid(c, N, power, &s, &o, 1e-9));
		disp_outcome_free(&o);
	}
	free(c);
	free(ids);
	free(kw);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_knapsack),         HCASE(test_site_limit),
		HCASE(test_nested),           HCASE(test_infeasible),
		HCASE(test_zero_request),     HCASE(test_ties_by_id),
		HCASE(test_zero_limit),       HCASE(test_cycle),
		HCASE(test_invalid),          HCASE(test_write_format),
		HCASE(test_random_vs_glpk),   HCASE(test_random_deterministic),
		HCASE(test_random_vs_glpsol), HCASE(test_large_blocks),
	};
	return harness_main("lp", cases, HARNESS_N(cases));
}
