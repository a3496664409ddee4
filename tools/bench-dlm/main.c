/* v2g-bench-dlm: the cycle time of the site DLM control loop.
 *
 * A site sized for the station count: 20 feeders (stations dealt round
 * robin), 2 transformers (10 feeders each), a service that binds; 40 %
 * single-phase AC (rotated over A, B, C), 40 % three-phase AC, 20 % DC
 * (CCS medium, CCS high, CHAdeMO); priorities 1..10 and demands drawn from
 * a seeded generator. Each cycle, outside the timing, every station meter
 * reads its last setpoint and the site meter the base load plus the
 * stations; then one dlm_loop_cycle is timed (CLOCK_MONOTONIC, one
 * thread). The first --warmup cycles are not counted.
 *
 * Prints: stations  median_us  p99_us  min_us  (and cycles, kW shared). */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../services/site-dlm/loop.h"

#define PROG      "v2g-bench-dlm"
#define MAX_ROWS  8
#define N_FEEDERS 20
#define ID_LEN    24

struct opts {
	size_t sizes[MAX_ROWS];
	int nsizes;
	int cycles, warmup;
	uint64_t seed;
};

static void usage(FILE *out)
{
	fputs("usage: " PROG " [options]\n"
	      "  --stations N[,N...]  station counts (1000)\n"
	      "  --cycles K           timed cycles per row (500, >= 1)\n"
	      "  --warmup W           untimed cycles first (20)\n"
	      "  --seed X             generator seed (1)\n",
	      out);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

struct bench {
	struct dlm_site *site;
	struct dlm_shed *shed;
	struct dlm_failsafe *fs;
	struct dlm_cap_registry *caps;
	struct dlm_loop *loop;
	char (*ids)[ID_LEN];
	struct dlm_setpoint *sp;
	size_t n;
	double base_kw;
};

static void bench_free(struct bench *b)
{
	dlm_loop_free(b->loop);
	dlm_cap_registry_free(b->caps);
	dlm_failsafe_free(b->fs);
	dlm_shed_free(b->shed);
	dlm_site_free(b->site);
	free(b->ids);
	free(b->sp);
}

static int bench_init(struct bench *b, size_t n, uint64_t seed)
{
	static const char *const dc_profiles[3] = { "dcfc_ccs_medium", "dcfc_ccs_high",
		                                    "dcfc_chademo" };
	memset(b, 0, sizeof(*b));
	b->n = n;
	b->site = dlm_site_new();
	b->shed = dlm_shed_new(NULL);
	b->fs = dlm_failsafe_new(NULL);
	b->caps = dlm_cap_registry_alloc();
	b->ids = calloc(n, sizeof(*b->ids));
	b->sp = calloc(n, sizeof(*b->sp));
	if (!b->site || !b->shed || !b->fs || !b->caps || !b->ids || !b->sp)
		return -1;
	/* Service: about 6 kW per station (x NEC 0.80), so the site binds. */
	struct dlm_service_cfg svc = dlm_service_defaults();
	svc.max_power_kw = 6.0 * (double)n;
	svc.max_current_a = svc.max_power_kw * 1000 / (1.7320508 * svc.voltage_v) * 1.2;
	if (dlm_site_configure_service(b->site, &svc))
		return -1;
	const char **members[N_FEEDERS];
	size_t nm[N_FEEDERS] = { 0 };
	for (int f = 0; f < N_FEEDERS; f++)
		members[f] = calloc(n / N_FEEDERS + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		snprintf(b->ids[i], ID_LEN, "st%05zu", i);
		members[i % N_FEEDERS][nm[i % N_FEEDERS]++] = b->ids[i];
	}
	char fid[N_FEEDERS][16];
	const char *fids[2][N_FEEDERS / 2];
	for (int f = 0; f < N_FEEDERS; f++) {
		struct dlm_feeder_cfg fc = dlm_feeder_defaults();
		/* Each feeder a little under its share of the service. */
		fc.max_power_kw = 6.0 * (double)nm[f] * 0.9;
		fc.max_current_a = 0;
		fc.breaker_rating_a = fc.cable_ampacity_a = 4000;
		fc.stations = members[f];
		fc.n_stations = nm[f];
		snprintf(fid[f], sizeof(fid[f]), "F%02d", f);
		fids[f / (N_FEEDERS / 2)][f % (N_FEEDERS / 2)] = fid[f];
		if (dlm_site_configure_feeder(b->site, fid[f], &fc))
			return -1;
		free(members[f]);
	}
	for (int t = 0; t < 2; t++) {
		struct dlm_transformer_cfg tc = dlm_transformer_defaults();
		tc.rated_kva = 3.0 * (double)n; /* x 0.80: 2.4 kW per station each */
		tc.feeders = fids[t];
		tc.n_feeders = N_FEEDERS / 2;
		char tid[8];
		snprintf(tid, sizeof(tid), "T%d", t + 1);
		if (dlm_site_configure_transformer(b->site, tid, &tc))
			return -1;
	}
	b->loop = dlm_loop_new(NULL, b->site, b->shed, b->fs, b->caps);
	if (!b->loop)
		return -1;
	uint64_t rs = seed ? seed : 1;
	for (size_t i = 0; i < n; i++) {
		int kind = (int)(i % 10); /* 0-3 single, 4-7 three, 8-9 DC */
		const char *prof = kind < 4   ? "ac_level2_single"
		                   : kind < 8 ? "ac_level2_three"
		                              : dc_profiles[(i / 10) % 3];
		if (dlm_cap_discover(b->caps, b->ids[i], "ocpp", prof, NULL, NULL))
			return -1;
		struct dlm_loop_station_cfg sc = {
			.id = b->ids[i],
			.priority = 1 + (int)(rng_next(&rs) % 10),
			.demand_kw = kind < 8 ? 3 + 19 * rng_unit(&rs) : 30 + 120 * rng_unit(&rs),
			.rotation = (int)((i / 10) % 3),
		};
		if (dlm_loop_add_station(b->loop, &sc, 0))
			return -1;
	}
	b->base_kw = 0.1 * svc.max_power_kw;
	return 0;
}

/* Meters read the last setpoints; not timed. */
static void bench_feed(struct bench *b, int64_t now_ms)
{
	double sum = 0;
	for (size_t i = 0; i < b->n; i++) {
		dlm_loop_station_meter(b->loop, b->ids[i], b->sp[i].power_kw, NULL, NAN, NAN,
		                       "charging", now_ms);
		sum += b->sp[i].power_kw;
	}
	struct dlm_service_meas m = { .power_kw = b->base_kw + sum,
		                      .current_a = { NAN, NAN, NAN },
		                      .voltage_v = { NAN, NAN, NAN },
		                      .power_factor = NAN,
		                      .frequency_hz = NAN };
	dlm_loop_site_meter(b->loop, &m, now_ms);
}

static int run_row(size_t n, const struct opts *o)
{
	struct bench b;
	int64_t *t = calloc((size_t)o->cycles, sizeof(*t));
	if (!t || bench_init(&b, n, o->seed)) {
		fprintf(stderr, PROG ": set-up failed at %zu stations\n", n);
		free(t);
		bench_free(&b);
		return -1;
	}
	int64_t now = 1000;
	size_t got;
	for (int c = 0; c < o->warmup + o->cycles; c++, now += 1000) {
		bench_feed(&b, now);
		int64_t t0 = now_ns();
		int err = dlm_loop_cycle(b.loop, now, b.sp, b.n, &got);
		int64_t t1 = now_ns();
		if (err) {
			fprintf(stderr, PROG ": cycle failed (%d)\n", err);
			break;
		}
		if (c >= o->warmup)
			t[c - o->warmup] = t1 - t0;
	}
	qsort(t, (size_t)o->cycles, sizeof(*t), cmp_i64);
	const struct dlm_loop_stats *st = dlm_loop_stats(b.loop);
	size_t p99 = (size_t)ceil(0.99 * o->cycles) - 1;
	printf("%8zu  %9.1f  %9.1f  %9.1f  %6d  %11.1f  %11.1f  %9.1f  %s\n", n,
	       t[o->cycles / 2] / 1e3, t[p99] / 1e3, t[0] / 1e3, o->cycles, st->budget_kw,
	       st->setpoint_kw, st->site_limit_kw, st->binding);
	free(t);
	bench_free(&b);
	return 0;
}

static int parse_sizes(struct opts *o, char *arg)
{
	o->nsizes = 0;
	for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
		char *end;
		unsigned long long v = strtoull(tok, &end, 10);
		if (*end || v == 0 || o->nsizes == MAX_ROWS)
			return -1;
		o->sizes[o->nsizes++] = (size_t)v;
	}
	return o->nsizes ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct opts o = { .sizes = { 1000 }, .nsizes = 1, .cycles = 500, .warmup = 20, .seed = 1 };
	static const struct option lo[] = {
		{ "stations", required_argument, NULL, 'n' },
		{ "cycles", required_argument, NULL, 'c' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (parse_sizes(&o, optarg))
				goto bad;
			break;
		case 'c': o.cycles = atoi(optarg); break;
		case 'w': o.warmup = atoi(optarg); break;
		case 's': o.seed = strtoull(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (o.cycles < 1 || o.warmup < 0)
		goto bad;
	printf("%8s  %9s  %9s  %9s  %6s  %11s  %11s  %9s  %s\n", "stations", "median_us", "p99_us",
	       "min_us", "cycles", "budget_kw", "setpoint_kw", "limit_kw", "binding");
	for (int i = 0; i < o.nsizes; i++)
		if (run_row(o.sizes[i], &o))
			return 1;
	return 0;
bad:
	usage(stderr);
	return 2;
}
