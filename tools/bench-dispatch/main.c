/* v2g-bench-dispatch: the heuristic strategies at fleet scale.
 *
 * For each fleet size, a seeded fleet of realistic vehicles (capacities set
 * by disp_capacity, forecasts filled in), and for each request fraction a
 * request of that share of the fleet's capacity: 2 % is a typical FCR
 * request (a few percent of the vehicles cover it), 50 % needs half the
 * fleet. Each strategy runs --runs times; each run gets a fresh copy of the
 * candidates (copied outside the timing) and times one disp_dispatch call:
 * scoring, selection and allocation. With --sites S > 0, rows with a
 * two-level site hierarchy (S/10 service entrances, 9 feeders each) whose
 * limits bind at some feeders follow the unlimited rows.
 *
 * Prints a table: strategy, vehicles, sites, median and min ms,
 * allocated and requested kW. */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../services/dispatch-engine/strategy.h"

#define PROG     "v2g-bench-dispatch"
#define MAX_ROWS 16

struct opts {
	size_t sizes[MAX_ROWS];
	int nsizes;
	double fractions[MAX_ROWS];
	int nfractions;
	int strategies[4];
	int nstrategies;
	int sites; /* 0, or a multiple of 10 */
	int runs;
	int max_rounds;
	uint64_t seed;
};

struct fleet {
	struct disp_cand *c; /* the master copy, never dispatched itself */
	char (*ids)[24];
	size_t n;
	double cap;         /* sum of cap_kw */
	double *feeder_cap; /* per site: capacity of its vehicles */
};

static void usage(FILE *out)
{
	fputs("usage: " PROG " [options]\n"
	      "  --vehicles N[,N...]    fleet sizes (100000,1000000)\n"
	      "  --fractions F[,F...]   requests as shares of the fleet's capacity (0.02,0.5)\n"
	      "  --strategies S[,S...]  among priority, equal, smart (priority,equal,smart)\n"
	      "  --sites S              also rows under S sites, a multiple of 10 (500); 0: none\n"
	      "  --runs K               timed runs per row, median and min reported (9, >= 1)\n"
	      "  --max-rounds R         Smart's bound on allocation rounds (16)\n"
	      "  --seed X               fleet seed (1)\n",
	      out);
}

/* --- a seeded fleet -------------------------------------------------------- */

static uint64_t rng;

static uint64_t next64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double urand(void)
{
	return (double)(next64() >> 11) / 9007199254740992.0;
}

static int make_fleet(struct fleet *f, size_t n, int sites)
{
	static const float chargers[] = { 3.7f, 7.4f, 11, 22 };
	memset(f, 0, sizeof(*f));
	f->n = n;
	f->c = calloc(n, sizeof(*f->c));
	f->ids = calloc(n, sizeof(*f->ids));
	f->feeder_cap = calloc((size_t)sites + 1, sizeof(double));
	if (!f->c || !f->ids || !f->feeder_cap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct disp_cand *x = &f->c[i];
		snprintf(f->ids[i], sizeof(f->ids[i]), "ev-%07zu", i);
		x->id = f->ids[i];
		x->soc = (float)(20 + 80 * urand());
		x->max_kw = chargers[next64() % 4];
		x->tariff = (float)(0.10 + 0.01 * (double)(next64() % 31));
		x->battery_kwh = next64() % 10 ? (float)(40 + 60 * urand()) : 0;
		x->priority = (int32_t)(next64() % 4);
		x->avail_prob = (float)(0.5 + 0.5 * urand());
		x->degradation = (float)(0.3 * urand());
		x->window_h = (float)(12 * urand());
		x->participation = (float)(next64() % 10);
		/* feeders are the sites that are not service entrances (s % 10) */
		if (sites) {
			uint64_t s;
			do
				s = 1 + next64() % (uint64_t)(sites - 1);
			while (s % 10 == 0);
			x->site = (uint16_t)s;
		}
	}
	disp_capacity(f->c, n, 60, 20);
	for (size_t i = 0; i < n; i++) {
		f->cap += f->c[i].cap_kw;
		f->feeder_cap[f->c[i].site] += f->c[i].cap_kw;
	}
	return 0;
}

static void fleet_free(struct fleet *f)
{
	free(f->c);
	free(f->ids);
	free(f->feeder_cap);
}

/* Sites 10, 20, ... are service entrances (site 0 is "no site", so the
 * first service is 10); feeder s sits under service 10 * (s / 10), or is
 * a root when that is 0. Feeder limits: 0.5..2.5 x its share of the
 * request, so that about a quarter bind; services: 1.1 x their feeders'
 * shares. The fleet can still meet the request, around the full sites. */
static void make_limits(const struct fleet *f, int sites, double fraction, double *limit,
                        int32_t *parent)
{
	for (int s = 0; s < sites; s++) {
		limit[s] = -1;
		parent[s] = -1;
	}
	for (int s = 1; s < sites; s++) {
		if (s % 10 == 0)
			continue;
		parent[s] = s >= 10 ? 10 * (s / 10) : -1;
		limit[s] = f->feeder_cap[s] * fraction * (0.5 + 2 * urand());
		if (parent[s] > 0) {
			if (limit[parent[s]] < 0)
				limit[parent[s]] = 0;
			limit[parent[s]] += 1.1 * f->feeder_cap[s] * fraction;
		}
	}
}

/* --- timing ---------------------------------------------------------------- */

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

static int run_row(const struct opts *o, const struct fleet *f, struct disp_cand *work,
                   int strategy, double fraction, int sites, const struct disp_sites *s)
{
	double *ms = calloc((size_t)o->runs, sizeof(*ms));
	if (!ms)
		return -1;
	struct disp_params p = { (enum disp_strategy)strategy, disp_default_weights(0),
		                 o->max_rounds, 0 };
	double request = f->cap * fraction, allocated = 0;
	for (int r = 0; r < o->runs; r++) {
		memcpy(work, f->c, f->n * sizeof(*work));
		struct disp_outcome out = { 0 };
		double t0 = now_ms();
		int rc = disp_dispatch(work, f->n, request, &p, s, &out);
		ms[r] = now_ms() - t0;
		if (rc) {
			fprintf(stderr, PROG ": disp_dispatch failed (%d)\n", rc);
			free(ms);
			return -1;
		}
		allocated = out.allocated_kw;
		disp_outcome_free(&out);
	}
	qsort(ms, (size_t)o->runs, sizeof(*ms), cmp_double);
	double median = o->runs % 2 ? ms[o->runs / 2] : (ms[o->runs / 2 - 1] + ms[o->runs / 2]) / 2;
	printf("%-9s %9zu %6d %10.3f %8.3f %14.1f %12.1f\n", disp_strategy_name(p.strategy), f->n,
	       sites, median, ms[0], allocated, request);
	fflush(stdout);
	free(ms);
	return 0;
}

/* --- options --------------------------------------------------------------- */

static int parse_list(const char *arg, int (*one)(const char *tok, void *out, int i), void *out,
                      int *count)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", arg);
	*count = 0;
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (*count == MAX_ROWS || one(tok, out, *count))
			return -1;
		(*count)++;
	}
	return *count ? 0 : -1;
}

static int one_size(const char *tok, void *out, int i)
{
	char *end;
	unsigned long long v = strtoull(tok, &end, 10);
	if (*end || !v || v > UINT32_MAX)
		return -1;
	((size_t *)out)[i] = (size_t)v;
	return 0;
}

static int one_fraction(const char *tok, void *out, int i)
{
	char *end;
	double v = strtod(tok, &end);
	if (*end || !(v > 0) || v > 10)
		return -1;
	((double *)out)[i] = v;
	return 0;
}

static int one_strategy(const char *tok, void *out, int i)
{
	int s = disp_strategy_parse(tok);
	if (s < 0 || s == DISP_LP || i >= 4) /* LP has v2g-bench-lp */
		return -1;
	((int *)out)[i] = s;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "vehicles", required_argument, NULL, 'n' },
		{ "fractions", required_argument, NULL, 'f' },
		{ "strategies", required_argument, NULL, 's' },
		{ "sites", required_argument, NULL, 'S' },
		{ "runs", required_argument, NULL, 'r' },
		{ "max-rounds", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct opts){ .sizes = { 100000, 1000000 },
		            .nsizes = 2,
		            .fractions = { 0.02, 0.5 },
		            .nfractions = 2,
		            .strategies = { DISP_PRIORITY, DISP_EQUAL, DISP_SMART },
		            .nstrategies = 3,
		            .sites = 500,
		            .runs = 9,
		            .max_rounds = 16,
		            .seed = 1 };
	int ch, nst;
	char *end;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (parse_list(optarg, one_size, o->sizes, &o->nsizes))
				goto bad;
			break;
		case 'f':
			if (parse_list(optarg, one_fraction, o->fractions, &o->nfractions))
				goto bad;
			break;
		case 's':
			if (parse_list(optarg, one_strategy, o->strategies, &nst))
				goto bad;
			o->nstrategies = nst;
			break;
		case 'S':
			o->sites = (int)strtol(optarg, &end, 10);
			if (*end || o->sites < 0 || o->sites % 10 || o->sites > 60000)
				goto bad;
			break;
		case 'r':
			o->runs = (int)strtol(optarg, &end, 10);
			if (*end || o->runs < 1 || o->runs > 1000)
				goto bad;
			break;
		case 'm':
			o->max_rounds = (int)strtol(optarg, &end, 10);
			if (*end || o->max_rounds < 0)
				goto bad;
			break;
		case 'x':
			o->seed = strtoull(optarg, &end, 0);
			if (*end || !o->seed)
				goto bad;
			break;
		case 'h': usage(stdout); exit(0);
		default: goto bad;
		}
	}
	if (optind == argc)
		return 0;
bad:
	fprintf(stderr, PROG ": bad arguments\n");
	usage(stderr);
	return -1;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse_args(argc, argv, &o))
		return 2;
	printf("# %s: disp_dispatch only (scoring + selection + allocation), one thread,\n"
	       "# median and min of %d runs, each on a fresh copy of the candidates\n",
	       PROG, o.runs);
	printf("%-9s %9s %6s %10s %8s %14s %12s\n", "strategy", "vehicles", "sites", "median_ms",
	       "min_ms", "allocated_kw", "request_kw");
	int rc = 0;
	double *limit = o.sites ? calloc((size_t)o.sites, sizeof(*limit)) : NULL;
	int32_t *parent = o.sites ? calloc((size_t)o.sites, sizeof(*parent)) : NULL;
	if (o.sites && (!limit || !parent)) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	for (int z = 0; z < o.nsizes && !rc; z++) {
		struct fleet f;
		rng = o.seed * 0x9e3779b97f4a7c15ULL + o.sizes[z];
		struct disp_cand *work = NULL;
		if (make_fleet(&f, o.sizes[z], o.sites) || !(work = malloc(f.n * sizeof(*work)))) {
			fprintf(stderr, PROG ": out of memory for %zu vehicles\n", o.sizes[z]);
			fleet_free(&f);
			rc = 1;
			break;
		}
		for (int q = 0; q < o.nfractions && !rc; q++)
			for (int k = 0; k < o.nstrategies && !rc; k++)
				rc = run_row(&o, &f, work, o.strategies[k], o.fractions[q], 0,
				             NULL);
		for (int q = 0; q < o.nfractions && o.sites && !rc; q++) {
			make_limits(&f, o.sites, o.fractions[q], limit, parent);
			struct disp_sites s = { (size_t)o.sites, limit, parent };
			for (int k = 0; k < o.nstrategies && !rc; k++)
				rc = run_row(&o, &f, work, o.strategies[k], o.fractions[q], o.sites,
				             &s);
		}
		free(work);
		fleet_free(&f);
	}
	free(limit);
	free(parent);
	return rc ? 1 : 0;
}
