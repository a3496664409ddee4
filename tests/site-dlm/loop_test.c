/* The control loop against the "done means", at the logic level: a
 * site with the guide's service (250 kW x NEC 0.80 = 200 kW), one AC feeder
 * and one DC feeder (120 kW each by default), a dozen stations (4 single-
 * phase and 4 three-phase AC, 4 DC) that follow their setpoints, and a site
 * meter that reads the base load plus the stations. One cycle per second. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/loop.h"
#include "v2g/err.h"

#define NST  12
#define EPS  1e-6
#define STEP 1000

static const char *const IDS[NST] = { "ac1", "ac2", "ac3", "ac4", "ac5", "ac6",
	                              "ac7", "ac8", "dc1", "dc2", "dc3", "dc4" };
static const char *const PROFILES[NST] = {
	"ac_level2_single", "ac_level2_single", "ac_level2_single", "ac_level2_single",
	"ac_level2_three",  "ac_level2_three",  "ac_level2_three",  "ac_level2_three",
	"dcfc_ccs_medium",  "dcfc_ccs_high",    "dcfc_chademo",     "dcfc_ccs_medium",
};

struct fx {
	struct dlm_site *site;
	struct dlm_shed *shed;
	struct dlm_failsafe *fs;
	struct dlm_cap_registry *caps;
	struct dlm_loop *loop;
	struct dlm_setpoint sp[NST];
	size_t n;
	int silent[NST];
	double base_kw;
	double fake_load; /* > 0: the site meter reads this instead */
	int64_t now;
	int64_t step; /* ms per cycle (STEP) */
};

static void add_feeder(struct dlm_site *s, const char *id, const char *const *st, size_t n,
                       double max_kw)
{
	struct dlm_feeder_cfg f = dlm_feeder_defaults();
	f.stations = st;
	f.n_stations = n;
	if (max_kw > 0)
		f.max_power_kw = max_kw;
	CHECK_INT(dlm_site_configure_feeder(s, id, &f), 0);
}

static void fx_init(struct fx *x, const struct dlm_loop_cfg *cfg, double ac_feeder_kw)
{
	memset(x, 0, sizeof(*x));
	x->site = dlm_site_new();
	x->shed = dlm_shed_new(NULL);
	x->fs = dlm_failsafe_new(NULL);
	x->caps = dlm_cap_registry_alloc();
	add_feeder(x->site, "F-AC", IDS, 8, ac_feeder_kw);
	add_feeder(x->site, "F-DC", IDS + 8, 4, 0);
	x->loop = dlm_loop_new(cfg, x->site, x->shed, x->fs, x->caps);
	CHECK(x->loop != NULL);
	for (int i = 0; i < NST; i++) {
		CHECK_INT(dlm_cap_discover(x->caps, IDS[i], "ocpp", PROFILES[i], NULL, NULL), 0);
		struct dlm_loop_station_cfg sc = {
			.id = IDS[i], .priority = 5, .demand_kw = -1, .rotation = i < 4 ? i % 3 : 0
		};
		CHECK_INT(dlm_loop_add_station(x->loop, &sc, 0), 0);
	}
	x->base_kw = 20;
	x->step = STEP;
	x->now = x->step;
}

static void fx_fini(struct fx *x)
{
	dlm_loop_free(x->loop);
	dlm_cap_registry_free(x->caps);
	dlm_failsafe_free(x->fs);
	dlm_shed_free(x->shed);
	dlm_site_free(x->site);
}

static double sum_sp(const struct fx *x, int from, int to)
{
	double s = 0;
	for (int i = from; i < to; i++)
		s += x->sp[i].power_kw;
	return s;
}

/* Meters read the last setpoints (the stations follow), then one cycle. */
static void fx_step(struct fx *x)
{
	for (int i = 0; i < NST; i++)
		if (!x->silent[i])
			CHECK_INT(dlm_loop_station_meter(x->loop, IDS[i], x->sp[i].power_kw, NULL,
			                                 NAN, NAN, "charging", x->now),
			          0);
	struct dlm_service_meas m = { .power_kw = x->fake_load > 0 ? x->fake_load
		                                                   : x->base_kw + sum_sp(x, 0, NST),
		                      .current_a = { NAN, NAN, NAN },
		                      .voltage_v = { NAN, NAN, NAN },
		                      .power_factor = NAN,
		                      .frequency_hz = NAN };
	CHECK_INT(dlm_loop_site_meter(x->loop, &m, x->now), 0);
	CHECK_INT(dlm_loop_cycle(x->loop, x->now, x->sp, NST, &x->n), 0);
	CHECK_INT(x->n, NST);
	x->now += x->step;
}

static void test_steady_state_within_limits(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	for (int c = 0; c < 60; c++)
		fx_step(&x);
	/* Demand (~650 kW) far over the site: the allocator shares 0.90 x
	 * 200 kW - 20 kW base = 160 kW; the setpoints stay under it (ac1 and
	 * ac4 share phase A and are held by the phase balance). */
	const struct dlm_loop_stats *st = dlm_loop_stats(x.loop);
	CHECK_NEAR(st->allocated_kw, 160, 1e-6);
	CHECK(x.base_kw + sum_sp(&x, 0, NST) <= 180 + EPS);
	CHECK(x.base_kw + sum_sp(&x, 0, NST) > 170);
	CHECK(sum_sp(&x, 0, 8) <= 120 + EPS);
	CHECK(sum_sp(&x, 8, NST) <= 120 + EPS);
	for (int i = 0; i < NST; i++) {
		CHECK(!x.sp[i].failsafe);
		for (int p = 0; p < 3; p++)
			CHECK(x.sp[i].current_a[p] == 0 || x.sp[i].current_a[p] >= 6 - EPS);
	}
	/* Same priority, fair share: the three-phase stations (one class,
	 * one feeder) got the same. */
	CHECK_NEAR(x.sp[4].power_kw, x.sp[7].power_kw, 0.01);
	CHECK_INT(dlm_loop_stats(x.loop)->shed_level, 0);
	fx_fini(&x);
}

static void test_overload_cleared_in_one_cycle(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	for (int c = 0; c < 60; c++)
		fx_step(&x);
	double before = sum_sp(&x, 0, NST);
	CHECK(before > 100);
	/* The building load jumps by 90 kW: the site meter reads 270 kW
	 * against a 200 kW limit. */
	x.base_kw = 110;
	fx_step(&x);
	const struct dlm_loop_stats *st = dlm_loop_stats(x.loop);
	CHECK(st->site_load_kw > 200);
	/* One cycle later the setpoints fit: base + stations <= 200 kW. */
	CHECK(x.base_kw + sum_sp(&x, 0, NST) <= 200 + EPS);
	CHECK(sum_sp(&x, 0, NST) < before - 80);
	fx_fini(&x);
}

static void test_hysteresis_no_flapping(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	for (int c = 0; c < 10; c++)
		fx_step(&x);
	struct dlm_shed_status ss;
	dlm_shed_get_status(x.shed, &ss);
	uint64_t changes = ss.changes;
	/* 100 cycles with the load swinging between 86 % and 94 % of 200 kW:
	 * inside the 85 / 95 % band, shedding never starts. */
	for (int c = 0; c < 100; c++) {
		x.fake_load = 200 * (c % 2 ? 0.94 : 0.86);
		fx_step(&x);
		CHECK_INT(dlm_loop_stats(x.loop)->shed_level, 0);
	}
	dlm_shed_get_status(x.shed, &ss);
	CHECK_INT(ss.changes, changes);
	/* At 96 % it starts (level 1), then 100 cycles inside the band keep
	 * level 1: no flapping either way. */
	x.fake_load = 192;
	fx_step(&x);
	CHECK_INT(dlm_loop_stats(x.loop)->shed_level, 1);
	for (int c = 0; c < 100; c++) {
		x.fake_load = 200 * (c % 2 ? 0.94 : 0.86);
		fx_step(&x);
		CHECK_INT(dlm_loop_stats(x.loop)->shed_level, 1);
	}
	dlm_shed_get_status(x.shed, &ss);
	CHECK_INT(ss.changes, changes + 1);
	/* Level 1 cuts priority <= 3 by 20 %: a priority-2 station gets 0.8 of
	 * its share. */
	for (int i = 0; i < NST; i++)
		CHECK_INT(dlm_loop_set_priority(x.loop, IDS[i], 2), 0);
	x.fake_load = 200 * 0.9;
	fx_step(&x);
	int seen = 0;
	for (int i = 0; i < 8; i++) {
		double min_kw = i < 4 ? 1.44 : 4.14, cut = 0.8 * x.sp[i].allocated_kw;
		CHECK(x.sp[i].power_kw <= cut + 1e-6);
		if (cut >= min_kw + 0.1 && x.sp[i].power_kw > 0) {
			CHECK_NEAR(x.sp[i].power_kw, cut, 1e-6);
			seen++;
		}
	}
	CHECK(seen > 0);
	/* Below 85 % it ends. */
	x.fake_load = 160;
	fx_step(&x);
	CHECK_INT(dlm_loop_stats(x.loop)->shed_level, 0);
	fx_fini(&x);
}

static void test_failsafe_silent_station(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	for (int c = 0; c < 30; c++)
		fx_step(&x);
	CHECK(x.sp[0].power_kw > 3.7); /* ac1 charges above the safe limit */
	int64_t last_heard = x.now - STEP;
	x.silent[0] = 1;
	int64_t applied_at = -1;
	for (int c = 0; c < 40 && applied_at < 0; c++) {
		fx_step(&x);
		if (x.sp[0].failsafe)
			applied_at = x.now - STEP;
	}
	/* Timeout 30 s: applied at the first cycle after it (silent > 30 s). */
	CHECK(applied_at > 0);
	struct dlm_fs_actions fa;
	dlm_loop_failsafe_actions(x.loop, &fa);
	CHECK_INT(fa.n, 1);
	if (fa.n == 1) {
		CHECK_STR(fa.v[0].station, "ac1");
		CHECK_INT(fa.v[0].kind, DLM_FS_APPLY);
	}
	CHECK(applied_at - last_heard > 30000);
	CHECK(applied_at - last_heard <= 30000 + STEP);
	/* reduce: min(last good, 3.7 kW) -> 3.7 kW = 15.4 A at 240 V. */
	CHECK_NEAR(x.sp[0].power_kw, 3.7, 1e-6);
	CHECK_NEAR(x.sp[0].current_a[0], 3700.0 / 240, 1e-6);
	CHECK_INT(dlm_failsafe_in_failsafe(x.fs, "ac1"), 1);
	CHECK_INT(dlm_loop_stats(x.loop)->in_failsafe, 1);
	/* Stays there while silent; the others still fit under the limit with
	 * its 3.7 kW held. */
	for (int c = 0; c < 5; c++) {
		fx_step(&x);
		CHECK(x.sp[0].failsafe);
		CHECK_NEAR(x.sp[0].power_kw, 3.7, 1e-6);
		CHECK(x.base_kw + sum_sp(&x, 0, NST) <= 200 * 0.9 + 0.5);
	}
	dlm_loop_failsafe_actions(x.loop, &fa);
	CHECK_INT(fa.n, 0); /* once, not every cycle */
	/* Heard again: back under normal control at the next cycle. */
	x.silent[0] = 0;
	fx_step(&x);
	CHECK(!x.sp[0].failsafe);
	dlm_loop_failsafe_actions(x.loop, &fa);
	CHECK_INT(fa.n, 1);
	if (fa.n == 1)
		CHECK_INT(fa.v[0].kind, DLM_FS_RESTORE);
	CHECK_INT(dlm_failsafe_in_failsafe(x.fs, "ac1"), 0);
	CHECK_INT(dlm_loop_stats(x.loop)->fs_restored, 1);
	fx_fini(&x);
}

static void test_feeder_limit_binds(void)
{
	struct fx x;
	/* The AC feeder limited to 30 kW; the service would allow 180. */
	fx_init(&x, NULL, 30);
	for (int i = 8; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], 10), 0);
	for (int c = 0; c < 40; c++) {
		fx_step(&x);
		CHECK(sum_sp(&x, 0, 8) <= 30 + EPS);
	}
	CHECK(sum_sp(&x, 0, 8) > 25); /* it is used, not starved */
	CHECK(x.base_kw + sum_sp(&x, 0, NST) < 200 * 0.9 - 50);
	/* And a new feeder limit lower than the load lands in one cycle. */
	add_feeder(x.site, "F-AC", IDS, 8, 15);
	fx_step(&x);
	CHECK(sum_sp(&x, 0, 8) <= 15 + EPS);
	fx_fini(&x);
}

static void test_transformer_limit_binds(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	struct dlm_transformer_cfg t = dlm_transformer_defaults();
	const char *f1[] = { "F-AC" }, *f2[] = { "F-DC" };
	t.feeders = f1;
	t.n_feeders = 1;
	CHECK_INT(dlm_site_configure_transformer(x.site, "T1", &t), 0); /* 240 kW */
	t.rated_kva = 50;                                               /* x 0.80 = 40 kW at pf 1 */
	t.feeders = f2;
	CHECK_INT(dlm_site_configure_transformer(x.site, "T2", &t), 0);
	for (int c = 0; c < 60; c++) {
		fx_step(&x);
		CHECK(sum_sp(&x, 8, NST) <= 40 + EPS);
	}
	/* 40 kW for four DC chargers: 10 kW each is under the 20 and 50 kW
	 * minimums, so two stop and dc1 and dc3 share 20 + 20 kW. */
	CHECK_NEAR(sum_sp(&x, 8, NST), 40, 1e-6);
	CHECK_NEAR(x.sp[8].power_kw, 20, 1e-6);
	CHECK_NEAR(x.sp[10].power_kw, 20, 1e-6);
	/* The AC side is not held by T2. */
	CHECK(sum_sp(&x, 0, 8) > 100);
	fx_fini(&x);
}

static void site_phases(const struct fx *x, double tot[3])
{
	tot[0] = tot[1] = tot[2] = 0;
	for (int i = 0; i < 8; i++) {
		if (i < 4)
			tot[i % 3] += x->sp[i].current_a[0];
		else
			for (int p = 0; p < 3; p++)
				tot[p] += x->sp[i].current_a[p];
	}
	for (int i = 8; i < NST; i++)
		for (int p = 0; p < 3; p++)
			tot[p] += x->sp[i].power_kw * 1000 / (3 * 230.0);
}

static double imb(const double t[3])
{
	double hi = fmax(t[0], fmax(t[1], t[2])), lo = fmin(t[0], fmin(t[1], t[2]));
	return hi > 0 ? (hi - lo) / hi : 0;
}

static void test_phase_imbalance_limited(void)
{
	struct dlm_loop_cfg cfg;
	dlm_loop_cfg_init(&cfg);
	cfg.imbalance_floor_a = 0; /* the relative limit alone */
	struct fx x;
	fx_init(&x, &cfg, 0);
	/* ac1 and ac4 on A (80 A each), ac2 on B (80 A), ac3 on C asks little
	 * (8 A), on top of the three-phase stations (balanced). */
	for (int i = 8; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], 0), 0);
	CHECK_INT(dlm_loop_set_demand(x.loop, "ac3", 8 * 0.240), 0);
	size_t cuts = 0;
	for (int c = 0; c < 40; c++) {
		fx_step(&x);
		cuts += dlm_loop_stats(x.loop)->phase_cuts;
		double t[3];
		site_phases(&x, t);
		CHECK(imb(t) <= 0.10 + 1e-6); /* the service's max imbalance */
		CHECK_NEAR(dlm_loop_stats(x.loop)->imbalance, imb(t), 1e-6);
	}
	CHECK(cuts > 0);
	CHECK(x.sp[2].current_a[0] >= 8 - EPS); /* the light phase is not cut */
	fx_fini(&x);

	/* With the default 32 A floor a lone single-phase charger runs. */
	fx_init(&x, NULL, 0);
	for (int i = 1; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], 0), 0);
	CHECK_INT(dlm_loop_set_demand(x.loop, "ac1", 7.2), 0);
	for (int c = 0; c < 20; c++)
		fx_step(&x);
	CHECK_NEAR(x.sp[0].current_a[0], 30, 1e-6);
	fx_fini(&x);
}

static void test_dc_ramped_not_stepped(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	for (int i = 0; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], i == 8 ? 100 : 0), 0);
	double prev = 0;
	int reached = 0;
	for (int c = 0; c < 30; c++) {
		fx_step(&x);
		double p = x.sp[8].power_kw;
		/* 10 kW/s x 1 s per cycle at most, once started (a start
		 * goes to the 20 kW minimum: nothing runs under it). */
		CHECK(p - prev <= (prev > 0 ? 10 : 20) + EPS);
		if (fabs(p - 100) < EPS && !reached)
			reached = c;
		prev = p;
	}
	CHECK(reached >= 9); /* 100 kW took 9 cycles (20 + 8 x 10) */
	CHECK_NEAR(prev, 100, EPS);
	/* A reduction lands at once. */
	CHECK_INT(dlm_loop_set_demand(x.loop, "dc1", 40), 0);
	fx_step(&x);
	CHECK_NEAR(x.sp[8].power_kw, 40, EPS);
	fx_fini(&x);
}

/* A DC charger that starts: its first non-zero setpoint is its minimum
 * (20 kW), not a climb from 0 through the range where it cannot run (which
 * the capability turns into 0 for 2 s at 200 ms cycles); then the ramp. */
static void test_dc_start_at_minimum(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	x.step = 200;
	x.now = x.step;
	for (int i = 0; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], i == 8 ? 100 : 0), 0);
	double seq[12];
	for (int c = 0; c < 12; c++) {
		fx_step(&x);
		seq[c] = x.sp[8].power_kw;
	}
	/* the first cycle only starts the ramp clock; then 20, +2 kW a cycle */
	CHECK_NEAR(seq[0], 0, 0);
	CHECK_NEAR(seq[1], 20, 1e-9);
	for (int c = 2; c < 12; c++)
		CHECK_NEAR(seq[c], 20 + 2 * (c - 1), 1e-9);
	/* stopped (no demand) and back: the minimum again at once */
	CHECK_INT(dlm_loop_set_demand(x.loop, "dc1", 0), 0);
	fx_step(&x);
	CHECK_NEAR(x.sp[8].power_kw, 0, 0);
	CHECK_INT(dlm_loop_set_demand(x.loop, "dc1", 100), 0);
	fx_step(&x);
	CHECK_NEAR(x.sp[8].power_kw, 20, 1e-9);
	/* a new charger learned later, with a 50 kW minimum (dcfc_ccs_high):
	 * 0, then 50 */
	CHECK_INT(dlm_cap_discover(x.caps, "dcx", "ocpp", "dcfc_ccs_high", NULL, NULL), 0);
	struct dlm_loop_station_cfg sc = { .id = "dcx", .priority = 5, .demand_kw = 80 };
	CHECK_INT(dlm_loop_add_station(x.loop, &sc, x.now), 0);
	struct dlm_setpoint sp[NST + 1];
	size_t n;
	double got[3];
	for (int c = 0; c < 3; c++) {
		CHECK_INT(dlm_loop_cycle(x.loop, x.now, sp, NST + 1, &n), 0);
		CHECK_INT(n, NST + 1);
		got[c] = sp[NST].power_kw;
		x.now += x.step;
	}
	CHECK_NEAR(got[0], 0, 0);
	CHECK_NEAR(got[1], 50, 1e-9);
	CHECK_NEAR(got[2], 52, 1e-9);
	fx_fini(&x);
}

/* Eight single-phase chargers on phase A of an otherwise empty site: the
 * 32 A floor allows 5 x 6.4 A. The three lowest-priority ones stop (not
 * all eight, as when every charger was scaled under 6 A), the same ones
 * every cycle, and the spread stays within the floor rule. */
static void run_eight_singles(const int prio[8], const int stop[8])
{
	static const char *const ids[8] = { "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8" };
	struct dlm_site *site = dlm_site_new();
	struct dlm_shed *shed = dlm_shed_new(NULL);
	struct dlm_failsafe *fs = dlm_failsafe_new(NULL);
	struct dlm_cap_registry *caps = dlm_cap_registry_alloc();
	struct dlm_loop *l = dlm_loop_new(NULL, site, shed, fs, caps);
	CHECK(l != NULL);
	for (int i = 0; i < 8; i++) {
		CHECK_INT(dlm_cap_discover(caps, ids[i], "ocpp", "ac_level2_single", NULL, NULL),
		          0);
		struct dlm_loop_station_cfg sc = {
			.id = ids[i], .priority = prio[i], .demand_kw = -1, .rotation = 0
		};
		CHECK_INT(dlm_loop_add_station(l, &sc, 0), 0);
	}
	struct dlm_setpoint sp[8];
	size_t n = 0;
	int64_t now = STEP;
	for (int c = 0; c < 30; c++, now += STEP) {
		double total = 0;
		for (int i = 0; c > 0 && i < 8; i++) {
			CHECK_INT(dlm_loop_station_meter(l, ids[i], sp[i].power_kw, NULL, NAN, NAN,
			                                 "charging", now),
			          0);
			total += sp[i].power_kw;
		}
		struct dlm_service_meas m = { .power_kw = total,
			                      .current_a = { NAN, NAN, NAN },
			                      .voltage_v = { NAN, NAN, NAN },
			                      .power_factor = NAN,
			                      .frequency_hz = NAN };
		CHECK_INT(dlm_loop_site_meter(l, &m, now), 0);
		CHECK_INT(dlm_loop_cycle(l, now, sp, 8, &n), 0);
		CHECK_INT(n, 8);
		double a = 0;
		int running = 0;
		for (int i = 0; i < 8; i++) {
			double cur = sp[i].current_a[0];
			CHECK(cur == 0 || cur >= 6 - EPS);
			a += cur;
			running += cur > 0;
			CHECK_INT(cur > 0, !stop[i]);
		}
		/* phases B and C carry nothing: the spread is phase A itself */
		CHECK(a <= fmax(0.2 * a, 32) + 1e-6);
		CHECK_INT(running, 5);
		CHECK_NEAR(dlm_loop_stats(l)->imbalance, a > 0 ? 1 : 0, 1e-9);
	}
	for (int i = 0; i < 8; i++)
		if (!stop[i])
			CHECK_NEAR(sp[i].current_a[0], 6.4, 1e-6);
	dlm_loop_free(l);
	dlm_cap_registry_free(caps);
	dlm_failsafe_free(fs);
	dlm_shed_free(shed);
	dlm_site_free(site);
}

static void test_balance_stops_fewest(void)
{
	/* s1..s3 have the lowest priority: they stop (not s6..s8, which the
	 * id order alone would pick) */
	const int prio[8] = { 2, 3, 2, 5, 5, 5, 5, 5 }, stop[8] = { 1, 1, 1, 0, 0, 0, 0, 0 };
	run_eight_singles(prio, stop);
	/* equal priorities: the greatest ids stop */
	const int same[8] = { 5, 5, 5, 5, 5, 5, 5, 5 }, last[8] = { 0, 0, 0, 0, 0, 1, 1, 1 };
	run_eight_singles(same, last);
}

static void test_ac_ramp_and_priority(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	/* Two three-phase stations, short capacity: the priority-9 one gets
	 * its demand, the priority-2 one the rest. */
	for (int i = 0; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], (i == 4 || i == 5) ? 22.08 : 0), 0);
	CHECK_INT(dlm_loop_set_priority(x.loop, "ac5", 9), 0);
	CHECK_INT(dlm_loop_set_priority(x.loop, "ac6", 2), 0);
	x.base_kw = 180 - 30; /* 30 kW left under 0.90 x 200 */
	double prev = 0;
	for (int c = 0; c < 30; c++) {
		fx_step(&x);
		/* AC ramp: +4 A per 2 s at most (after the jump to 6 A). */
		double a = x.sp[4].current_a[0];
		CHECK(a - prev <= 6 + EPS || prev == 0);
		CHECK(a - prev <= 4 + EPS || prev == 0);
		prev = a;
	}
	CHECK_NEAR(x.sp[4].current_a[0], 32, EPS);
	CHECK_NEAR(x.sp[5].power_kw, 30 - 22.08, 0.01);
	fx_fini(&x);
}

static void test_min_current_stops_instead(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	/* 8 single-phase-sized shares of 2 kW would be 8.3 A... only 5 kW
	 * for four three-phase stations (min 4.14 kW each): one runs. */
	for (int i = 0; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], (i >= 4 && i < 8) ? 22 : 0), 0);
	x.base_kw = 175;
	for (int c = 0; c < 10; c++)
		fx_step(&x);
	int running = 0;
	for (int i = 4; i < 8; i++) {
		for (int p = 0; p < 3; p++)
			CHECK(x.sp[i].current_a[p] == 0 || x.sp[i].current_a[p] >= 6 - EPS);
		running += x.sp[i].power_kw > 0;
	}
	CHECK_INT(running, 1);
	CHECK(x.base_kw + sum_sp(&x, 0, NST) <= 180 + EPS);
	fx_fini(&x);
}

static void test_available_and_status(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	for (int i = 0; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], i == 8 ? 50 : 0), 0);
	for (int c = 0; c < 20; c++)
		fx_step(&x);
	/* 200 - 20 base - 50 dc1 = 130 kW left for others. */
	CHECK_NEAR(dlm_loop_available_kw(x.loop), 130, 1e-6);
	char *js = dlm_loop_status_json(x.loop);
	CHECK(js != NULL);
	json_t *j = js ? json_loads(js, 0, NULL) : NULL;
	CHECK(j != NULL);
	CHECK_INT(json_integer_value(json_object_get(j, "cycles")), 20);
	CHECK_INT(json_array_size(json_object_get(j, "station_list")), NST);
	CHECK_STR(json_string_value(json_object_get(
	                  json_array_get(json_object_get(j, "station_list"), 8), "feeder")),
	          "F-DC");
	json_decref(j);
	free(js);
	struct dlm_setpoint sp;
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "dc1", &sp), 0);
	CHECK_NEAR(sp.power_kw, 50, EPS);
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "nope", &sp), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_loop_remove_station(x.loop, "ac1"), 0);
	CHECK_INT(dlm_loop_station_count(x.loop), NST - 1);
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "ac1", &sp), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "dc4", &sp), 0);
	struct dlm_loop_station_cfg bad = { .id = "ghost", .priority = 5, .demand_kw = -1 };
	CHECK_INT(dlm_loop_add_station(x.loop, &bad, 0), V2G_ERR_NOTFOUND);
	fx_fini(&x);
}

static void test_override_caps_station(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	/* Plenty of room: only ac5, ac6 (three-phase) and dc1 want power. */
	for (int i = 0; i < NST; i++)
		CHECK_INT(
		        dlm_loop_set_demand(x.loop, IDS[i], (i == 4 || i == 5 || i == 8) ? -1 : 0),
		        0);
	CHECK_INT(dlm_loop_set_override_current(x.loop, "ac5", 10), 0);
	CHECK_INT(dlm_loop_set_override(x.loop, "dc1", 30), 0);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac5"), 3 * 230 * 10 / 1000.0, 1e-9);
	CHECK_NEAR(dlm_loop_override(x.loop, "dc1"), 30, 1e-9);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac6"), -1, 0);
	for (int c = 0; c < 30; c++) {
		fx_step(&x);
		CHECK(x.sp[4].current_a[0] <= 10 + EPS);
		CHECK(x.sp[8].power_kw <= 30 + EPS);
	}
	/* Held at the operator's limit while ac6 runs at its maximum. */
	for (int p = 0; p < 3; p++)
		CHECK_NEAR(x.sp[4].current_a[p], 10, 1e-6);
	CHECK_NEAR(x.sp[5].current_a[0], 32, 1e-6);
	CHECK_NEAR(x.sp[8].power_kw, 30, 1e-6);
	/* The status shows it. */
	json_t *j = dlm_loop_status_obj(x.loop);
	json_t *list = json_object_get(j, "station_list");
	CHECK_NEAR(json_real_value(json_object_get(json_array_get(list, 8), "override_kw")), 30,
	           1e-9);
	CHECK(json_is_null(json_object_get(json_array_get(list, 5), "override_kw")));
	json_decref(j);

	/* Reconfiguring the station keeps the override. */
	struct dlm_loop_station_cfg sc;
	CHECK_INT(dlm_loop_station_info(x.loop, "dc1", &sc), 0);
	CHECK_STR(sc.id, "dc1");
	CHECK_INT(sc.priority, 5);
	sc.priority = 7;
	CHECK_INT(dlm_loop_add_station(x.loop, &sc, x.now), 0);
	CHECK_NEAR(dlm_loop_override(x.loop, "dc1"), 30, 1e-9);
	CHECK_INT(dlm_loop_station_info(x.loop, "ac2", &sc), 0);
	CHECK_INT(sc.rotation, 1);

	/* Under the DC minimum (20 kW) or the IEC 6 A: a stop. */
	CHECK_INT(dlm_loop_set_override(x.loop, "dc1", 5), 0);
	CHECK_INT(dlm_loop_set_override_current(x.loop, "ac5", 4), 0);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac5"), 0, 0);
	fx_step(&x);
	CHECK_NEAR(x.sp[8].power_kw, 0, EPS);
	CHECK_NEAR(x.sp[4].power_kw, 0, EPS);

	/* The site limit still wins over a generous override: 40 kW left. */
	CHECK_INT(dlm_loop_set_override(x.loop, "dc1", 1000), 0);
	CHECK_INT(dlm_loop_set_demand(x.loop, "ac6", 0), 0);
	x.base_kw = 180 - 40;
	for (int c = 0; c < 20; c++)
		fx_step(&x);
	CHECK(x.sp[8].power_kw <= 40 + EPS);
	CHECK(x.sp[8].power_kw > 30);

	/* Released: back to its fair share (ac5 up to 32 A again). */
	x.base_kw = 20;
	CHECK_INT(dlm_loop_set_override_current(x.loop, "ac5", -1), 0);
	CHECK_INT(dlm_loop_set_override(x.loop, "dc1", -1), 0);
	CHECK_NEAR(dlm_loop_override(x.loop, "dc1"), -1, 0);
	for (int c = 0; c < 30; c++)
		fx_step(&x);
	CHECK_NEAR(x.sp[4].current_a[0], 32, 1e-6);
	CHECK(x.sp[8].power_kw > 100);

	/* Refused. */
	CHECK_INT(dlm_loop_set_override(x.loop, "nope", 1), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_loop_set_override(x.loop, "dc1", NAN), V2G_ERR_INVAL);
	CHECK_INT(dlm_loop_set_override_current(x.loop, "dc1", 10), V2G_ERR_INVAL);
	CHECK_INT(dlm_loop_set_override_current(x.loop, "nope", 10), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_loop_station_info(x.loop, "nope", &sc), V2G_ERR_NOTFOUND);
	fx_fini(&x);
}

static void test_rediscovered_limits(void)
{
	struct fx x;
	fx_init(&x, NULL, 0);
	for (int i = 0; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], i == 8 ? -1 : 0), 0);
	for (int c = 0; c < 25; c++)
		fx_step(&x);
	CHECK_NEAR(x.sp[8].power_kw, 120, EPS); /* the DC feeder's 120 kW */
	/* The same DC charger rediscovered with a 60 kW rating: the loop takes
	 * the new limit at once (a reduction), its priority too. */
	struct dlm_cap_overrides ov = { .power_max_kw = 60 };
	CHECK_INT(dlm_cap_discover(x.caps, "dc1", "ocpp", "dcfc_ccs_medium", &ov, NULL), 0);
	struct dlm_loop_station_cfg sc;
	CHECK_INT(dlm_loop_station_info(x.loop, "dc1", &sc), 0);
	sc.priority = 8;
	CHECK_INT(dlm_loop_add_station(x.loop, &sc, x.now), 0);
	fx_step(&x);
	CHECK_NEAR(x.sp[8].power_kw, 60, EPS);
	CHECK_INT(dlm_loop_station_info(x.loop, "dc1", &sc), 0);
	CHECK_INT(sc.priority, 8);
	/* An AC station rediscovered as three-phase: balanced currents on its
	 * three phases from then on. */
	CHECK_INT(dlm_loop_set_demand(x.loop, "ac1", -1), 0);
	CHECK_INT(dlm_cap_discover(x.caps, "ac1", "ocpp", "ac_level2_three", NULL, NULL), 0);
	CHECK_INT(dlm_loop_station_info(x.loop, "ac1", &sc), 0);
	CHECK_INT(dlm_loop_add_station(x.loop, &sc, x.now), 0);
	for (int c = 0; c < 20; c++)
		fx_step(&x);
	CHECK_NEAR(x.sp[0].current_a[0], 32, EPS);
	CHECK_NEAR(x.sp[0].current_a[2], 32, EPS);
	fx_fini(&x);
}

/* An operator's limit in amps stays that many amps when the station is
 * rediscovered with other phases: 16 A on a single-phase charger later
 * planned three-phase is 16 A per phase (not its 3.68 kW, which is under
 * the three-phase 6 A minimum: a stop), and 10 A on a three-phase one later
 * single-phase is 10 A (not 6.9 kW = 30 A). A limit in kW stays in kW. */
static void test_override_amps_survive_rediscovery(void)
{
	struct fx x;
	struct dlm_loop_station_cfg sc;
	fx_init(&x, NULL, 0);
	for (int i = 0; i < NST; i++)
		CHECK_INT(dlm_loop_set_demand(x.loop, IDS[i], (i == 0 || i == 4) ? -1 : 0), 0);
	CHECK_INT(dlm_loop_set_override_current(x.loop, "ac1", 16), 0); /* single-phase */
	CHECK_INT(dlm_loop_set_override_current(x.loop, "ac5", 10), 0); /* three-phase */
	CHECK_INT(dlm_cap_discover(x.caps, "ac1", "ocpp", "ac_level2_three", NULL, NULL), 0);
	CHECK_INT(dlm_loop_station_info(x.loop, "ac1", &sc), 0);
	CHECK_INT(dlm_loop_add_station(x.loop, &sc, x.now), 0);
	CHECK_INT(dlm_cap_discover(x.caps, "ac5", "ocpp", "ac_level2_single", NULL, NULL), 0);
	CHECK_INT(dlm_loop_station_info(x.loop, "ac5", &sc), 0);
	CHECK_INT(dlm_loop_add_station(x.loop, &sc, x.now), 0);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac1"), 3 * 230 * 16 / 1000.0, 1e-9);
	for (int c = 0; c < 30; c++)
		fx_step(&x);
	for (int p = 0; p < 3; p++)
		CHECK_NEAR(x.sp[0].current_a[p], 16, 1e-6);
	CHECK_NEAR(x.sp[4].current_a[0], 10, 1e-6);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac5"), 240 * 10 / 1000.0, 1e-9);
	/* Released after that: no cap. */
	CHECK_INT(dlm_loop_set_override_current(x.loop, "ac1", -1), 0);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac1"), -1, 0);
	/* A kW limit (set after amps) is not converted again; nor is an amps
	 * limit on a station that turns DC. */
	CHECK_INT(dlm_loop_set_override_current(x.loop, "ac5", 20), 0);
	CHECK_INT(dlm_loop_set_override(x.loop, "ac5", 2.4), 0);
	CHECK_INT(dlm_cap_discover(x.caps, "ac5", "ocpp", "ac_level2_three", NULL, NULL), 0);
	CHECK_INT(dlm_loop_station_info(x.loop, "ac5", &sc), 0);
	CHECK_INT(dlm_loop_add_station(x.loop, &sc, x.now), 0);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac5"), 2.4, 1e-9);
	CHECK_INT(dlm_loop_set_override_current(x.loop, "ac5", 10), 0);
	CHECK_INT(dlm_cap_discover(x.caps, "ac5", "ocpp", "dcfc_ccs_medium", NULL, NULL), 0);
	CHECK_INT(dlm_loop_station_info(x.loop, "ac5", &sc), 0);
	CHECK_INT(dlm_loop_add_station(x.loop, &sc, x.now), 0);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac5"), 6.9, 1e-9);
	fx_fini(&x);
}

/* A meter glitch (a power no charger draws) is refused: taken, it would
 * stay in the site's running sums, whose rounding at 1e20 loses every other
 * station's kW (the feeder's load, unmetered, would read low for good). */
static void test_meter_glitch_refused(void)
{
	struct fx x;
	struct dlm_headroom h0, h1;
	fx_init(&x, NULL, 0);
	for (int c = 0; c < 5; c++)
		fx_step(&x);
	for (int i = 0; i < 8; i++)
		CHECK_INT(dlm_loop_station_meter(x.loop, IDS[i], 3.5 + i, NULL, NAN, NAN,
		                                 "charging", x.now),
		          0);
	CHECK_INT(dlm_site_feeder_available(x.site, "F-AC", &h0), 0);
	CHECK_NEAR(h0.load_kw, 8 * 3.5 + 28, 1e-9);
	CHECK_INT(dlm_loop_station_meter(x.loop, "ac5", 1e20, NULL, NAN, NAN, "charging", x.now),
	          V2G_ERR_INVAL);
	CHECK_INT(dlm_loop_station_meter(x.loop, "ac5", -1e20, NULL, NAN, NAN, "charging", x.now),
	          V2G_ERR_INVAL);
	CHECK_INT(
	        dlm_loop_station_meter(x.loop, "ac5", INFINITY, NULL, NAN, NAN, "charging", x.now),
	        V2G_ERR_INVAL);
	CHECK_INT(dlm_loop_station_meter(x.loop, "ac5", 3.5 + 4, NULL, NAN, NAN, "charging", x.now),
	          0);
	CHECK_INT(dlm_site_feeder_available(x.site, "F-AC", &h1), 0);
	CHECK_NEAR(h1.load_kw, h0.load_kw, 1e-9);
	/* A big charger is not a glitch: V2G export included. */
	CHECK_INT(dlm_loop_station_meter(x.loop, "dc2", -350, NULL, NAN, NAN, "charging", x.now),
	          0);
	fx_fini(&x);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_steady_state_within_limits),
		HCASE(test_overload_cleared_in_one_cycle),
		HCASE(test_hysteresis_no_flapping),
		HCASE(test_failsafe_silent_station),
		HCASE(test_feeder_limit_binds),
		HCASE(test_transformer_limit_binds),
		HCASE(test_phase_imbalance_limited),
		HCASE(test_dc_ramped_not_stepped),
		HCASE(test_ac_ramp_and_priority),
		HCASE(test_min_current_stops_instead),
		HCASE(test_available_and_status),
		HCASE(test_override_caps_station),
		HCASE(test_rediscovered_limits),
		HCASE(test_dc_start_at_minimum),
		HCASE(test_balance_stops_fewest),
		HCASE(test_override_amps_survive_rediscovery),
		HCASE(test_meter_glitch_refused),
	};
	return harness_main("site-dlm-loop", cases, HARNESS_N(cases));
}
