/* v2g-bench-lp: the LP strategy at fleet scale.
 * For each fleet size: a seeded fleet under a two-level site hierarchy (S/10
 * service entrances, each with 9 feeders: S sites in all), limits that bind
 * for some of them, a request of 60% of the power the fleet can deliver
 * under those limits. Times disp_lp_solve (candidates prebuilt and scored:
 * scoring is not timed) over several runs, then solves the same LP, written
 * by disp_lp_write, with the glpsol CLI (glpsol --dual --lp FILE -o OUT)
 * and prints both objectives; glpsol's flat simplex is slow (about 45 s at
 * 100,000 vehicles), so --glpsol-max bounds the fleets it runs on.
 * Exit status 1 when the solver is not optimal or differs from glpsol by
 * more than 1e-6 relative. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../services/dispatch-engine/lp.h"

#define PROG     "v2g-bench-lp"
#define MAX_ROWS 16
#define REL_OK   1e-6

struct opts {
	size_t sizes[MAX_ROWS];
	int nsizes;
	int sites; /* a multiple of 10: services + 9 feeders each */
	int runs;
	size_t glpsol_max;
	double fraction; /* request / deliverable power */
	uint64_t seed;
};

struct fleet {
	struct disp_cand *c;
	char (*ids)[24];
	double *limit;
	int32_t *parent;
	struct disp_sites sites;
	size_t n;
	double power;
	int limited, binding; /* sites with a limit; limits full after the solve */
};

static void usage(FILE *out)
{
	fputs("usage: " PROG " [options]\n"
	      "  --vehicles N[,N...]  fleet sizes, one row each (10000,100000)\n"
	      "  --sites S            sites, a multiple of 10: S/10 services with 9 feeders "
	      "each (500)\n"
	      "  --runs K             timed runs per row, median and min reported (9)\n"
	      "  --glpsol-max N       run glpsol only on fleets of at most N vehicles "
	      "(100000);\n"
	      "                       0 skips it (its flat simplex takes ~45 s at 100000)\n"
	      "  --fraction F         request as a share of the deliverable power (0.6)\n"
	      "  --seed X             instance seed (1)\n",
	      out);
}

static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= lo && v <= hi)) {
		fprintf(stderr, PROG ": --%s: '%s' is not a number in [%g, %g]\n", name, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_sizes(const char *s, struct opts *o)
{
	char buf[256], *save = NULL, *tok;
	double v;

	if (strlen(s) >= sizeof(buf)) {
		fprintf(stderr, PROG ": --vehicles: list too long\n");
		return -1;
	}
	strcpy(buf, s);
	o->nsizes = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->nsizes == MAX_ROWS) {
			fprintf(stderr, PROG ": --vehicles: at most %d sizes\n", MAX_ROWS);
			return -1;
		}
		if (parse_num("vehicles", tok, 1, 10000000, &v) != 0)
			return -1;
		o->sizes[o->nsizes++] = (size_t)v;
	}
	if (o->nsizes == 0) {
		fprintf(stderr, PROG ": --vehicles: no size given\n");
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "vehicles", required_argument, NULL, 'n' },
		{ "sites", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ "glpsol-max", required_argument, NULL, 'g' },
		{ "fraction", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double v;
	int c, rc = 0;

	memset(o, 0, sizeof(*o));
	o->sizes[0] = 10000;
	o->sizes[1] = 100000;
	o->nsizes = 2;
	o->sites = 500;
	o->runs = 9;
	o->glpsol_max = 100000;
	o->fraction = 0.6;
	o->seed = 1;
	while (rc == 0 && (c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n': rc = parse_sizes(optarg, o); break;
		case 's':
			rc = parse_num("sites", optarg, 10, 60000, &v);
			o->sites = (int)v;
			if (rc == 0 && o->sites % 10 != 0) {
				fprintf(stderr, PROG ": --sites: a multiple of 10\n");
				rc = -1;
			}
			break;
		case 'r':
			rc = parse_num("runs", optarg, 1, 1000, &v);
			o->runs = (int)v;
			break;
		case 'g':
			rc = parse_num("glpsol-max", optarg, 0, 1e8, &v);
			o->glpsol_max = (size_t)v;
			break;
		case 'f': rc = parse_num("fraction", optarg, 0.001, 1, &o->fraction); break;
		case 'x':
			rc = parse_num("seed", optarg, 0, 4294967295.0, &v);
			o->seed = (uint64_t)v;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (rc != 0)
		return -1;
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The instance                                                       */

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

static void fleet_free(struct fleet *f)
{
	free(f->c);
	free(f->ids);
	free(f->limit);
	free(f->parent);
	memset(f, 0, sizeof(*f));
}

/* Sites 1..S/10 are service entrances, the S*9/10 others feeders, 9 under
 * each service. Vehicles sit on feeders. 30% of the feeders are unlimited;
 * the others get 20..100% of the capacity on them, each service 30..90% of
 * the capacity under it. Returns 0 or -1 (out of memory). */
static int fleet_build(struct fleet *f, size_t n, int nsites, uint64_t seed)
{
	int nserv = nsites / 10;
	size_t ns = (size_t)nsites + 1;
	double *capsite;

	memset(f, 0, sizeof(*f));
	rng_state = seed * 0x9e3779b97f4a7c15ull + n;
	f->n = n;
	f->c = calloc(n, sizeof(*f->c));
	f->ids = calloc(n, sizeof(*f->ids));
	f->limit = calloc(ns, sizeof(*f->limit));
	f->parent = calloc(ns, sizeof(*f->parent));
	capsite = calloc(ns, sizeof(*capsite));
	if (!f->c || !f->ids || !f->limit || !f->parent || !capsite) {
		free(capsite);
		fleet_free(f);
		return -1;
	}
	f->parent[0] = -1;
	for (int s = 1; s <= nsites; s++)
		f->parent[s] = s <= nserv ? -1 : 1 + (s - nserv - 1) / 9;
	for (size_t i = 0; i < n; i++) {
		static const float maxkw[4] = { 3.7f, 7.4f, 11.0f, 22.0f };
		struct disp_cand *c = &f->c[i];
		int site = nserv + 1 + (int)(rng() % (uint64_t)(nsites - nserv));

		snprintf(f->ids[i], sizeof(f->ids[i]), "ev-%07zu", i);
		c->id = f->ids[i];
		c->max_kw = maxkw[rng() % 4];
		c->cap_kw = c->max_kw * (float)(0.5 + 0.5 * unif());
		c->score = (float)unif();
		c->soc = (float)(20 + 70 * unif());
		c->avail_prob = 1;
		c->site = (uint16_t)site;
		capsite[site] += c->cap_kw;
		capsite[f->parent[site]] += c->cap_kw;
	}
	f->limit[0] = -1;
	for (int s = 1; s <= nsites; s++) {
		if (s <= nserv)
			f->limit[s] = capsite[s] * (0.3 + 0.6 * unif());
		else
			f->limit[s] = unif() < 0.3 ? -1 : capsite[s] * (0.2 + 0.8 * unif());
		f->limited += f->limit[s] >= 0;
	}
	free(capsite);
	f->sites.n = ns;
	f->sites.limit_kw = f->limit;
	f->sites.parent = f->parent;
	return 0;
}

/* The request: a share of what the fleet can deliver under its limits
 * (the solver's answer to "everything": its allocated power). */
static int fleet_request(struct fleet *f, double fraction)
{
	struct disp_outcome o = { 0 };
	double total = 0;
	int rc;

	for (size_t i = 0; i < f->n; i++)
		total += f->c[i].cap_kw;
	rc = disp_lp_solve(f->c, f->n, total, &f->sites, &o);
	if (rc < 0 || rc == DISP_LP_FAILED)
		return -1;
	f->power = fraction * o.allocated_kw;
	disp_outcome_free(&o);
	return 0;
}

/* How many site limits are full in o. */
static int count_binding(const struct fleet *f, const struct disp_outcome *o)
{
	double *load = calloc(f->sites.n, sizeof(*load));
	int binding = 0;

	if (!load)
		return -1;
	for (size_t k = 0; k < o->n; k++) {
		int s = f->c[o->allocs[k].cand].site;
		for (; s > 0; s = f->parent[s])
			load[s] += o->allocs[k].kw;
	}
	for (size_t s = 1; s < f->sites.n; s++)
		binding += f->limit[s] >= 0 && load[s] >= f->limit[s] * (1 - 1e-9);
	free(load);
	return binding;
}

/* ------------------------------------------------------------------ */
/* Measurements                                                       */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int glpsol_present(void)
{
	return system("command -v glpsol >/dev/null 2>&1") == 0;
}

/* Writes the LP, runs glpsol on it. 0 with *obj and *secs when glpsol
 * found the optimum; -1 otherwise (with a message). */
static int glpsol_objective(const struct fleet *f, double *obj, double *secs)
{
	char lp[] = "/tmp/v2g-bench-lp-XXXXXX", sol[64], cmd[256], line[256];
	int fd = mkstemp(lp), rc = -1, optimal = 0, have = 0;
	double t0;
	FILE *fp;

	if (fd < 0) {
		perror(PROG ": mkstemp");
		return -1;
	}
	snprintf(sol, sizeof(sol), "%s.out", lp);
	fp = fdopen(fd, "w");
	if (!fp) {
		close(fd);
		goto out;
	}
	if (disp_lp_write(fp, f->c, f->n, f->power, &f->sites) != 0) {
		fclose(fp);
		fprintf(stderr, PROG ": writing the LP failed\n");
		goto out;
	}
	if (fclose(fp) != 0)
		goto out;
	/* the dual simplex: the same optimum, in half the primal's time here
	 * (45 s instead of 103 s at 100,000 vehicles) */
	snprintf(cmd, sizeof(cmd), "glpsol --dual --lp %s -o %s >/dev/null 2>&1", lp, sol);
	t0 = now_ms();
	if (system(cmd) != 0) {
		fprintf(stderr, PROG ": glpsol failed on %zu vehicles\n", f->n);
		goto out;
	}
	*secs = (now_ms() - t0) / 1e3;
	fp = fopen(sol, "r");
	if (!fp)
		goto out;
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, "Status:", 7) == 0)
			optimal = strstr(line, "OPTIMAL") != NULL;
		if (sscanf(line, "Objective: %*s = %lf", obj) == 1)
			have = 1;
	}
	fclose(fp);
	if (optimal && have)
		rc = 0;
	else
		fprintf(stderr, PROG ": glpsol found no optimum on %zu vehicles\n", f->n);
out:
	unlink(lp);
	unlink(sol);
	return rc;
}

/* One row of the table; returns 0 when optimal and within REL_OK of
 * glpsol (or glpsol skipped), 1 otherwise, -1 on a setup error. */
static int bench_row(const struct opts *o, size_t n, int have_glpsol, int *skipped)
{
	struct fleet f;
	struct disp_outcome out = { 0 };
	double *ms = calloc((size_t)o->runs, sizeof(*ms)), obj = 0, gobj = 0, gsecs = 0;
	int status = DISP_LP_FAILED, bad = 0;
	char gcol[32] = "skipped", rcol[32] = "-", scol[32] = "-";

	if (!ms || fleet_build(&f, n, o->sites, o->seed) != 0 ||
	    fleet_request(&f, o->fraction) != 0) {
		fprintf(stderr, PROG ": cannot build the %zu-vehicle instance\n", n);
		free(ms);
		return -1;
	}
	for (int r = 0; r < o->runs; r++) {
		double t0 = now_ms();
		status = disp_lp_solve(f.c, f.n, f.power, &f.sites, &out);
		ms[r] = now_ms() - t0;
		obj = out.objective;
		if (r == o->runs - 1)
			f.binding = count_binding(&f, &out);
		disp_outcome_free(&out);
	}
	qsort(ms, (size_t)o->runs, sizeof(*ms), cmp_double);
	if (status != DISP_LP_OPTIMAL) {
		fprintf(stderr, PROG ": disp_lp_solve returned %d on %zu vehicles\n", status, n);
		bad = 1;
	}
	if (have_glpsol && n <= o->glpsol_max) {
		if (glpsol_objective(&f, &gobj, &gsecs) == 0) {
			double rel = fabs(obj - gobj) / fmax(fabs(gobj), 1e-12);
			snprintf(gcol, sizeof(gcol), "%.10g", gobj);
			snprintf(rcol, sizeof(rcol), "%.1e", rel);
			snprintf(scol, sizeof(scol), "%.1f", gsecs);
			bad |= !(rel <= REL_OK);
		} else {
			snprintf(gcol, sizeof(gcol), "failed");
			bad = 1;
		}
	} else {
		*skipped = 1;
	}
	printf("%-8s %9zu %6d %10.2f %8.2f %16.10g %16s %9s %9s   %d/%d\n", "lp", n, o->sites,
	       o->runs % 2 ? ms[o->runs / 2] : (ms[o->runs / 2 - 1] + ms[o->runs / 2]) / 2, ms[0],
	       obj, gcol, rcol, scol, f.binding, f.limited);
	fflush(stdout);
	fleet_free(&f);
	free(ms);
	return bad;
}

int main(int argc, char **argv)
{
	struct opts o;
	int have_glpsol, skipped = 0, bad = 0;

	if (parse_args(argc, argv, &o) != 0)
		return 2;
	have_glpsol = glpsol_present();
	printf("LP strategy: %d sites (%d services x 9 feeders), request = %.0f%% of the "
	       "deliverable power, %d runs per row, disp_lp_solve only (scores prebuilt)\n",
	       o.sites, o.sites / 10, o.fraction * 100, o.runs);
	printf("%-8s %9s %6s %10s %8s %16s %16s %9s %9s   %s\n", "strategy", "vehicles", "sites",
	       "median_ms", "min_ms", "objective", "glpsol_objective", "rel_diff", "glpsol_s",
	       "binding");
	for (int i = 0; i < o.nsizes; i++) {
		int rc = bench_row(&o, o.sizes[i], have_glpsol, &skipped);
		if (rc < 0)
			return 2;
		bad |= rc;
	}
	if (!have_glpsol)
		printf("glpsol not found: objectives not cross-checked (apt-get install "
		       "glpk-utils)\n");
	else if (skipped)
		printf("glpsol skipped above %zu vehicles; to cross-check every row run " PROG
		       " --glpsol-max 10000000 (glpsol takes ~45 s at 100,000 vehicles)\n",
		       o.glpsol_max);
	if (bad)
		printf("FAILED: not optimal, or more than %.0e from glpsol\n", REL_OK);
	return bad;
}
