/* The prediction engines: what the learning engine learns from simulated
 * telemetry (availability by hour of week, window, SoC trend), how it
 * treats unknown vehicles, out-of-order states and gaps, the fixed engine,
 * the memory budget and concurrent use. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/dispatch-engine/prediction.h"

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  (24 * HOUR_MS)
/* Monday 2024-01-01 00:00:00 UTC */
#define MONDAY 1704067200000LL

/* Plugged in from 18:00 to 07:00 every day; states every 15 minutes. */
static int commuter_plugged(int64_t t)
{
	int h = (int)((t / HOUR_MS) % 24);
	return h >= 18 || h < 7;
}

static struct disp_predictor *commuter_two_weeks(void)
{
	struct disp_predictor *p = disp_predictor_learning(16);
	CHECK(p != NULL);
	for (int64_t t = MONDAY; t < MONDAY + 14 * DAY_MS; t += 15 * MIN_MS)
		disp_predictor_observe(p, "commuter-1", commuter_plugged(t), 60.0, t);
	return p;
}

static void test_commuter_availability(void)
{
	struct disp_predictor *p = commuter_two_weeks();
	if (!p)
		return;
	int64_t day = MONDAY + 14 * DAY_MS; /* the third Monday */
	for (int d = 0; d < 7; d++, day += DAY_MS) {
		struct disp_forecast f =
		        disp_predictor_forecast(p, "commuter-1", day + 20 * HOUR_MS, 15);
		CHECK(f.avail_prob >= 0.9);
		CHECK_NEAR(f.window_h, 11.0, 1e-3); /* leaves at 07:00 */
		f = disp_predictor_forecast(p, "commuter-1", day + 12 * HOUR_MS, 15);
		CHECK(f.avail_prob <= 0.1);
		CHECK_NEAR(f.window_h, 0.0, 1e-6);
		f = disp_predictor_forecast(p, "commuter-1", day + 5 * HOUR_MS, 15);
		CHECK(f.avail_prob >= 0.9);
		CHECK_NEAR(f.window_h, 2.0, 1e-3);
		f = disp_predictor_forecast(p, "commuter-1", day + 5 * HOUR_MS + 30 * MIN_MS, 15);
		CHECK_NEAR(f.window_h, 1.5, 1e-3);
		/* a signal that runs past 07:00 will lose the car */
		f = disp_predictor_forecast(p, "commuter-1", day + 6 * HOUR_MS + 50 * MIN_MS, 15);
		CHECK(f.avail_prob <= 0.1);
		/* a long one inside the night keeps it */
		f = disp_predictor_forecast(p, "commuter-1", day + 19 * HOUR_MS, 8 * 60);
		CHECK(f.avail_prob >= 0.9);
		/* arriving at 18:00: from 17:00 the window is 0 (away now) */
		f = disp_predictor_forecast(p, "commuter-1", day + 17 * HOUR_MS, 15);
		CHECK(f.avail_prob <= 0.1);
	}
	disp_predictor_free(p);
}

/* Hour of WEEK: home all weekend, away 9:00-17:00 on weekdays. */
static void test_weekday_vs_weekend(void)
{
	struct disp_predictor *p = disp_predictor_learning(0);
	for (int64_t t = MONDAY; t < MONDAY + 21 * DAY_MS; t += 10 * MIN_MS) {
		int dow = (int)(((t - MONDAY) / DAY_MS) % 7), h = (int)((t / HOUR_MS) % 24);
		int plugged = dow >= 5 || h < 9 || h >= 17;
		disp_predictor_observe(p, "v", plugged, 50, t);
	}
	int64_t week4 = MONDAY + 21 * DAY_MS;
	struct disp_forecast sat =
	        disp_predictor_forecast(p, "v", week4 + 5 * DAY_MS + 12 * HOUR_MS, 30);
	struct disp_forecast wed =
	        disp_predictor_forecast(p, "v", week4 + 2 * DAY_MS + 12 * HOUR_MS, 30);
	CHECK(sat.avail_prob >= 0.9);
	CHECK(wed.avail_prob <= 0.1);
	/* Sunday 20:00: home until Monday 09:00 (13 h) */
	struct disp_forecast sun =
	        disp_predictor_forecast(p, "v", week4 + 6 * DAY_MS + 20 * HOUR_MS, 15);
	CHECK_NEAR(sun.window_h, 13.0, 1e-3);
	/* Friday 18:00: home for the weekend and beyond: capped at 24 */
	struct disp_forecast fri =
	        disp_predictor_forecast(p, "v", week4 + 4 * DAY_MS + 18 * HOUR_MS, 15);
	CHECK_NEAR(fri.window_h, 24.0, 1e-6);
	disp_predictor_free(p);
}

/* A slot follows its recent weeks: one week away from a slot learned as
 * always plugged in lowers it by the EWMA weight, not to 0. */
static void test_slot_is_ewma(void)
{
	struct disp_predictor *p = disp_predictor_learning(0);
	int64_t t = MONDAY;
	for (; t < MONDAY + 7 * DAY_MS; t += 15 * MIN_MS)
		disp_predictor_observe(p, "e", 1, 50, t);
	for (; t < MONDAY + 14 * DAY_MS; t += 15 * MIN_MS)
		disp_predictor_observe(p, "e", (t / HOUR_MS) % 24 != 10, 50, t);
	disp_predictor_observe(p, "e", 1, 50, t);
	struct disp_forecast f = disp_predictor_forecast(p, "e", t + 10 * HOUR_MS, 15);
	CHECK(f.avail_prob > 0.55 && f.avail_prob < 0.85); /* 1 - ALPHA */
	f = disp_predictor_forecast(p, "e", t + 9 * HOUR_MS, 15);
	CHECK(f.avail_prob >= 0.99);
	CHECK_NEAR(f.window_h, 24.0, 1e-6); /* 0.7 >= 0.5: not "leaving" */
	disp_predictor_free(p);
}

/* A vehicle that reports only on change is learned from the time each
 * state held, not from the number of messages. */
static void test_change_only_reports(void)
{
	struct disp_predictor *p = disp_predictor_learning(0);
	for (int d = 0; d < 14; d++) {
		int64_t day = MONDAY + d * DAY_MS;
		disp_predictor_observe(p, "c", 1, 80, day + 1 * HOUR_MS);  /* plugged */
		disp_predictor_observe(p, "c", 0, 80, day + 6 * HOUR_MS);  /* leaves */
		disp_predictor_observe(p, "c", 1, 40, day + 11 * HOUR_MS); /* back */
		disp_predictor_observe(p, "c", 0, 40, day + 15 * HOUR_MS);
		disp_predictor_observe(p, "c", 1, 30, day + 20 * HOUR_MS);
	}
	int64_t day = MONDAY + 14 * DAY_MS;
	CHECK(disp_predictor_forecast(p, "c", day + 3 * HOUR_MS, 60).avail_prob >= 0.9);
	CHECK(disp_predictor_forecast(p, "c", day + 8 * HOUR_MS, 60).avail_prob <= 0.1);
	CHECK(disp_predictor_forecast(p, "c", day + 12 * HOUR_MS, 60).avail_prob >= 0.9);
	CHECK_NEAR(disp_predictor_forecast(p, "c", day + 12 * HOUR_MS, 60).window_h, 3.0, 1e-3);
	disp_predictor_free(p);
}

static void test_soc_trend(void)
{
	struct disp_predictor *p = disp_predictor_learning(0);
	int64_t t = MONDAY;
	/* charging at 10 points per hour, a state every 5 minutes, 4 hours */
	for (int i = 0; i <= 48; i++, t += 5 * MIN_MS)
		disp_predictor_observe(p, "up", 1, 20 + 10.0 * i / 12, t);
	struct disp_forecast f = disp_predictor_forecast(p, "up", t, 15);
	CHECK(f.soc_trend > 0);
	CHECK_NEAR(f.soc_trend, 10.0, 0.5);

	/* discharging at 6 points per hour in quantised 0.1 steps, a state
	 * every 10 s: the many small intervals average out */
	t = MONDAY;
	for (int i = 0; i <= 6 * 360; i++, t += 10000) {
		double soc = 90 - 6.0 * (double)i / 360;
		disp_predictor_observe(p, "down", 1, (double)(long)(soc * 10) / 10.0, t);
	}
	f = disp_predictor_forecast(p, "down", t, 15);
	CHECK(f.soc_trend < 0);
	CHECK_NEAR(f.soc_trend, -6.0, 0.5);

	/* idle: flat */
	t = MONDAY;
	for (int i = 0; i < 100; i++, t += 5 * MIN_MS)
		disp_predictor_observe(p, "flat", 1, 55, t);
	CHECK_NEAR(disp_predictor_forecast(p, "flat", t, 15).soc_trend, 0.0, 1e-6);

	/* a trend older than 6 h is not a forecast any more */
	CHECK(disp_predictor_forecast(p, "up", MONDAY + 4 * HOUR_MS + 5 * HOUR_MS, 15).soc_trend >
	      9);
	CHECK_NEAR(disp_predictor_forecast(p, "up", MONDAY + 12 * HOUR_MS, 15).soc_trend, 0.0,
	           1e-9);
	disp_predictor_free(p);
}

static void test_unknown_vehicle_neutral(void)
{
	struct disp_predictor *p = commuter_two_weeks();
	if (!p)
		return;
	struct disp_forecast f =
	        disp_predictor_forecast(p, "never-seen", MONDAY + 12 * HOUR_MS, 15);
	CHECK_NEAR(f.avail_prob, 1.0, 0);
	CHECK_NEAR(f.window_h, 0.0, 0);
	CHECK_NEAR(f.soc_trend, 0.0, 0);
	f = disp_predictor_forecast(p, NULL, MONDAY, 15);
	CHECK_NEAR(f.avail_prob, 1.0, 0);
	f = disp_predictor_forecast(NULL, "commuter-1", MONDAY, 15);
	CHECK_NEAR(f.avail_prob, 1.0, 0);
	/* seen once: nothing learned yet, still neutral */
	disp_predictor_observe(p, "new", 1, 50, MONDAY);
	f = disp_predictor_forecast(p, "new", MONDAY + MIN_MS, 15);
	CHECK_NEAR(f.avail_prob, 1.0, 0);
	CHECK_NEAR(f.window_h, 0.0, 0);
	CHECK_NEAR(f.soc_trend, 0.0, 0);
	/* seen once, unplugged: unknown hours are not assumed available */
	disp_predictor_observe(p, "gone", 0, 50, MONDAY);
	f = disp_predictor_forecast(p, "gone", MONDAY + MIN_MS, 15);
	CHECK_NEAR(f.avail_prob, 0.0, 0);
	disp_predictor_free(p);
}

static void test_out_of_order(void)
{
	struct disp_predictor *p = disp_predictor_learning(0);
	disp_predictor_observe(p, "o", 1, 50, MONDAY);
	disp_predictor_observe(p, "o", 1, 60, MONDAY + HOUR_MS);
	double t1 = disp_predictor_forecast(p, "o", MONDAY + HOUR_MS, 15).soc_trend;
	CHECK_NEAR(t1, 10.0 * (1 - exp(-1.0)), 1e-4);
	/* older than the last state: ignored (no trend, no availability) */
	disp_predictor_observe(p, "o", 0, 0, MONDAY + HOUR_MS / 2);
	CHECK_NEAR(disp_predictor_forecast(p, "o", MONDAY + HOUR_MS, 15).soc_trend, t1, 1e-6);
	disp_predictor_observe(p, "o", 1, 70, MONDAY + 2 * HOUR_MS);
	double t2 = t1 + (1 - exp(-1.0)) * (10.0 - t1);
	CHECK_NEAR(disp_predictor_forecast(p, "o", MONDAY + 2 * HOUR_MS, 15).soc_trend, t2, 1e-4);
	/* the hour 00:00-01:00 was learned available despite the late "0" */
	disp_predictor_observe(p, "o", 1, 70, MONDAY + 3 * HOUR_MS);
	struct disp_forecast f = disp_predictor_forecast(p, "o", MONDAY + 7 * DAY_MS, 180);
	CHECK_NEAR(f.avail_prob, 1.0, 1e-6);
	CHECK_NEAR(f.window_h, 24.0, 1e-6); /* 00:00-03:00 learned, all plugged */
	disp_predictor_free(p);
}

/* Silences over 6 h teach nothing: neither the hours they span nor the
 * trend; shorter ones are learned with the state that held. */
static void test_gaps(void)
{
	struct disp_predictor *p = disp_predictor_learning(0);
	/* unplugged 00:00-01:00, then 7 h of silence, then plugged in */
	for (int64_t t = MONDAY; t <= MONDAY + HOUR_MS; t += 15 * MIN_MS)
		disp_predictor_observe(p, "gap7", 0, 50, t);
	disp_predictor_observe(p, "gap7", 1, 90, MONDAY + 8 * HOUR_MS);
	disp_predictor_observe(p, "gap7", 1, 90, MONDAY + 9 * HOUR_MS);
	/* the same with 5 h of silence */
	for (int64_t t = MONDAY; t <= MONDAY + HOUR_MS; t += 15 * MIN_MS)
		disp_predictor_observe(p, "gap5", 0, 50, t);
	disp_predictor_observe(p, "gap5", 1, 90, MONDAY + 6 * HOUR_MS);

	int64_t next = MONDAY + 7 * DAY_MS;
	/* 04:00: unknown after the long gap (counts 1), learned 0 after the short */
	CHECK_NEAR(disp_predictor_forecast(p, "gap7", next + 4 * HOUR_MS, 15).avail_prob, 1.0,
	           1e-6);
	CHECK_NEAR(disp_predictor_forecast(p, "gap5", next + 4 * HOUR_MS, 15).avail_prob, 0.0,
	           1e-6);
	/* 00:00 was learned unplugged by both */
	CHECK_NEAR(disp_predictor_forecast(p, "gap7", next, 15).avail_prob, 0.0, 1e-6);
	/* trend: 40 points over 7 h ignored; over 5 h learned */
	CHECK_NEAR(disp_predictor_forecast(p, "gap7", MONDAY + 9 * HOUR_MS, 15).soc_trend, 0.0,
	           1e-9);
	CHECK(disp_predictor_forecast(p, "gap5", MONDAY + 6 * HOUR_MS, 15).soc_trend > 7);
	disp_predictor_free(p);
}

static void test_fixed_engine(void)
{
	struct disp_forecast want = { 0.75f, 3.5f, -2.0f };
	struct disp_predictor *p = disp_predictor_fixed(want);
	CHECK(p != NULL);
	if (!p)
		return;
	disp_predictor_observe(p, "a", 0, 10, MONDAY); /* ignored */
	struct disp_forecast f = disp_predictor_forecast(p, "a", MONDAY, 15);
	CHECK_NEAR(f.avail_prob, 0.75, 1e-6);
	CHECK_NEAR(f.window_h, 3.5, 1e-6);
	CHECK_NEAR(f.soc_trend, -2.0, 1e-6);
	f = disp_predictor_forecast(p, "anyone", MONDAY + 3 * DAY_MS, 600);
	CHECK_NEAR(f.avail_prob, 0.75, 1e-6);
	struct disp_cand c[3];
	memset(c, 0, sizeof(c));
	c[0].id = "x";
	c[1].id = "y";
	c[2].id = "z";
	c[1].soc = 42;
	disp_predictor_fill(p, c, 3, MONDAY, 15);
	for (int i = 0; i < 3; i++) {
		CHECK_NEAR(c[i].avail_prob, 0.75, 1e-6);
		CHECK_NEAR(c[i].window_h, 3.5, 1e-6);
	}
	CHECK_NEAR(c[1].soc, 42, 0);
	CHECK_INT(disp_predictor_bytes_per_vehicle(p), 0);
	disp_predictor_free(p);
	disp_predictor_free(NULL);
}

static void test_fill_learning(void)
{
	struct disp_predictor *p = commuter_two_weeks();
	if (!p)
		return;
	struct disp_cand c[2];
	memset(c, 0, sizeof(c));
	c[0].id = "commuter-1";
	c[1].id = "stranger";
	c[0].soc = 61;
	c[0].cap_kw = 7;
	int64_t now = MONDAY + 14 * DAY_MS + 5 * HOUR_MS;
	disp_predictor_fill(p, c, 2, now, 15);
	CHECK(c[0].avail_prob >= 0.9);
	CHECK_NEAR(c[0].window_h, 2.0, 1e-3);
	CHECK_NEAR(c[1].avail_prob, 1.0, 0);
	CHECK_NEAR(c[1].window_h, 0.0, 0);
	CHECK_NEAR(c[0].soc, 61, 0);
	CHECK_NEAR(c[0].cap_kw, 7, 0);
	disp_predictor_free(p);
}

static void make_id(char *buf, size_t len, int i)
{
	snprintf(buf, len, "veh-%06d", i);
}

/* A large batch (fill() pipelines its lookups) in scrambled order, with
 * unknown and NULL ids among them: each candidate gets exactly its own
 * forecast. */
static void test_fill_large_batch_matches_forecast(void)
{
	enum { N = 5000, M = 6000 };
	struct disp_predictor *p = disp_predictor_learning(0);
	static char ids[M][32];
	static struct disp_cand c[M];
	for (int i = 0; i < M; i++)
		make_id(ids[i], sizeof(ids[i]), i);
	/* vehicle i: plugged in except during hour i % 24; observed hourly */
	for (int64_t t = MONDAY; t < MONDAY + 7 * DAY_MS; t += HOUR_MS) {
		for (int i = 0; i < N; i++)
			disp_predictor_observe(p, ids[i], (t / HOUR_MS) % 24 != i % 24, 50, t);
	}
	for (int i = 0; i < M; i++) {
		int k = (int)(((long long)i * 7919) % M); /* a permutation of 0..M-1 */
		memset(&c[i], 0, sizeof(c[i]));
		c[i].id = k % 97 == 5 ? NULL : ids[k];
	}
	int64_t now = MONDAY + 7 * DAY_MS + 3 * HOUR_MS;
	disp_predictor_fill(p, c, M, now, 30);
	int wrong = 0, learned = 0;
	for (int i = 0; i < M; i++) {
		struct disp_forecast f = disp_predictor_forecast(p, c[i].id, now, 30);
		wrong += c[i].avail_prob != f.avail_prob || c[i].window_h != f.window_h;
		learned += f.window_h > 0 && f.window_h < 24;
	}
	CHECK_INT(wrong, 0);
	CHECK(learned > N / 2); /* the forecasts differ: the check means something */
	/* vehicle 4 is away 04:00-05:00: from 03:00 its window is 1 h */
	CHECK_NEAR(disp_predictor_forecast(p, ids[4], now, 30).window_h, 1.0, 1e-6);
	CHECK_NEAR(disp_predictor_forecast(p, ids[3], now, 30).avail_prob, 0.0, 1e-6);
	disp_predictor_free(p);
}

/* The budget: <= 128 bytes per vehicle, everything allocated included. */
static void test_bytes_per_vehicle(void)
{
	enum { N = 100000 };
	struct disp_predictor *sized = disp_predictor_learning(N);
	struct disp_predictor *grown = disp_predictor_learning(0);
	char id[32];
	for (int i = 0; i < N; i++) {
		make_id(id, sizeof(id), i);
		disp_predictor_observe(sized, id, 1, 50, MONDAY);
		disp_predictor_observe(sized, id, 1, 51, MONDAY + HOUR_MS);
		disp_predictor_observe(grown, id, 1, 50, MONDAY);
	}
	size_t b1 = disp_predictor_bytes_per_vehicle(sized);
	size_t b2 = disp_predictor_bytes_per_vehicle(grown);
	printf("    bytes per vehicle at %d: %zu (sized), %zu (grown)\n", N, b1, b2);
	CHECK(b1 <= 128);
	CHECK(b2 <= 128);
	CHECK(b1 >= 84); /* the slots alone: the measure is not a fake */
	/* every vehicle is found, none mixed up with another */
	int found = 0;
	for (int i = 0; i < N; i++) {
		make_id(id, sizeof(id), i);
		found += disp_predictor_forecast(sized, id, MONDAY + HOUR_MS, 15).soc_trend > 0.6;
	}
	CHECK_INT(found, N);
	CHECK_NEAR(disp_predictor_forecast(sized, "veh-x", MONDAY + HOUR_MS, 15).soc_trend, 0, 0);
	disp_predictor_free(sized);
	disp_predictor_free(grown);
}

/* --- concurrency --------------------------------------------------------- */

enum { CONC_VEH = 2000, CONC_ROUNDS = 40 };

static void *observer(void *arg)
{
	struct disp_predictor *p = arg;
	char id[32];
	for (int r = 0; r < CONC_ROUNDS; r++) {
		for (int i = 0; i < CONC_VEH; i++) {
			make_id(id, sizeof(id), i);
			int64_t t = MONDAY + (int64_t)r * 30 * MIN_MS;
			disp_predictor_observe(p, id, 1, 20 + r, t);
		}
	}
	return NULL;
}

static void *reader(void *arg)
{
	struct disp_predictor *p = arg;
	static struct disp_cand c[CONC_VEH];
	static char ids[CONC_VEH][32];
	long bad = 0;
	for (int i = 0; i < CONC_VEH; i++) {
		make_id(ids[i], sizeof(ids[i]), i);
		c[i].id = ids[i];
	}
	for (int r = 0; r < CONC_ROUNDS; r++) {
		disp_predictor_fill(p, c, CONC_VEH, MONDAY + r * 30 * MIN_MS, 15);
		for (int i = 0; i < CONC_VEH; i += 7) {
			struct disp_forecast f =
			        disp_predictor_forecast(p, ids[i], MONDAY + r * 30 * MIN_MS, 15);
			bad += !(f.avail_prob >= 0 && f.avail_prob <= 1) || f.soc_trend < 0;
		}
		(void)disp_predictor_bytes_per_vehicle(p);
	}
	return (void *)bad;
}

static void test_concurrent_smoke(void)
{
	struct disp_predictor *p = disp_predictor_learning(0);
	pthread_t a, b;
	void *bad = (void *)1;
	CHECK(pthread_create(&a, NULL, observer, p) == 0);
	CHECK(pthread_create(&b, NULL, reader, p) == 0);
	pthread_join(a, NULL);
	pthread_join(b, &bad);
	CHECK(bad == NULL);
	/* every vehicle saw 40 half-hourly states rising 1 point each: 2/h */
	char id[32];
	for (int i = 0; i < CONC_VEH; i += 97) {
		make_id(id, sizeof(id), i);
		struct disp_forecast f = disp_predictor_forecast(
		        p, id, MONDAY + (CONC_ROUNDS - 1) * 30 * MIN_MS, 15);
		CHECK_NEAR(f.soc_trend, 2.0, 0.1);
	}
	disp_predictor_free(p);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_commuter_availability),
		HCASE(test_weekday_vs_weekend),
		HCASE(test_slot_is_ewma),
		HCASE(test_change_only_reports),
		HCASE(test_soc_trend),
		HCASE(test_unknown_vehicle_neutral),
		HCASE(test_out_of_order),
		HCASE(test_gaps),
		HCASE(test_fixed_engine),
		HCASE(test_fill_learning),
		HCASE(test_fill_large_batch_matches_forecast),
		HCASE(test_bytes_per_vehicle),
		HCASE(test_concurrent_smoke),
	};
	return harness_main("prediction", cases, HARNESS_N(cases));
}
