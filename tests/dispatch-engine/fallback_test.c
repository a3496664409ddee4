/* Fallbacks after the ack timeout (strategy.h) against the v2 document:
 * Noop leaves the acked vehicles alone; Balanced spreads the residual over
 * them by remaining capacity weighted by SoC, skipping SoC < 30 %;
 * Probabilistic weights remaining capacity by availability and wear. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/dispatch-engine/strategy.h"

static struct disp_held held(float cap, double kw, float soc, float avail, float degr)
{
	struct disp_held h = { 0 };
	h.c.id = "v";
	h.c.cap_kw = cap;
	h.c.soc = soc;
	h.c.avail_prob = avail;
	h.c.degradation = degr;
	h.kw = kw;
	return h;
}

static void test_names(void)
{
	CHECK_STR(disp_fallback_name(DISP_FB_NOOP), "noop");
	CHECK_STR(disp_fallback_name(DISP_FB_BALANCED), "balanced");
	CHECK_STR(disp_fallback_name(DISP_FB_PROBABILISTIC), "probabilistic");
	for (int f = DISP_FB_NOOP; f <= DISP_FB_PROBABILISTIC; f++)
		CHECK_INT(disp_fallback_parse(disp_fallback_name(f)), f);
	CHECK_INT(disp_fallback_parse("random"), -1);
	CHECK_INT(disp_fallback_parse(NULL), -1);
}

static void test_noop(void)
{
	struct disp_held h[2] = { held(10, 2, 80, 1, 0), held(10, 2, 80, 1, 0) };
	double extra[2] = { 7, 7 };
	CHECK_NEAR(disp_fallback_apply(DISP_FB_NOOP, h, 2, 5, extra), 0, 0);
	CHECK_NEAR(extra[0], 0, 0);
	CHECK_NEAR(extra[1], 0, 0);
}

static void test_balanced_proportional_to_room_and_soc(void)
{
	/* rooms 8 and 4, SoC 50 and 100: weights 400 and 400 -> equal split */
	struct disp_held h[3] = { held(10, 2, 50, 1, 0), held(10, 6, 100, 1, 0),
		                  held(10, 0, 60, 1, 0) };
	double extra[3];
	h[2].c.cap_kw = 0; /* no room: nothing */
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 3, 3, extra), 3, 1e-9);
	CHECK_NEAR(extra[0], 1.5, 1e-9);
	CHECK_NEAR(extra[1], 1.5, 1e-9);
	CHECK_NEAR(extra[2], 0, 0);
	/* same room, SoC 40 vs 80: the fuller battery takes twice as much */
	struct disp_held g[2] = { held(10, 0, 40, 1, 0), held(10, 0, 80, 1, 0) };
	double e2[2];
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, g, 2, 6, e2), 6, 1e-9);
	CHECK_NEAR(e2[0], 2, 1e-9);
	CHECK_NEAR(e2[1], 4, 1e-9);
}

static void test_balanced_skips_low_soc(void)
{
	struct disp_held h[3] = { held(10, 0, 29.9f, 1, 0), held(10, 0, 30, 1, 0),
		                  held(10, 0, 5, 1, 0) };
	double extra[3];
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 3, 4, extra), 4, 1e-9);
	CHECK_NEAR(extra[0], 0, 0);
	CHECK_NEAR(extra[1], 4, 1e-9); /* 30 % exactly is not below 30 % */
	CHECK_NEAR(extra[2], 0, 0);
	/* only low-SoC vehicles: nothing placed */
	h[1].c.soc = 10;
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 3, 4, extra), 0, 0);
}

static void test_balanced_caps_and_redistributes(void)
{
	/* rooms 1 and 10 with SoC 100 and 50: weights 100 and 500; 6 kW
	 * would give the first 1 exactly (6 x 100 / 600); 9 kW would give it
	 * 1.5 > its room: it takes 1, the other the remaining 8 */
	struct disp_held h[2] = { held(5, 4, 100, 1, 0), held(10, 0, 50, 1, 0) };
	double extra[2];
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 2, 6, extra), 6, 1e-9);
	CHECK_NEAR(extra[0], 1, 1e-9);
	CHECK_NEAR(extra[1], 5, 1e-9);
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 2, 9, extra), 9, 1e-9);
	CHECK_NEAR(extra[0], 1, 1e-9);
	CHECK_NEAR(extra[1], 8, 1e-9);
}

static void test_residual_larger_than_room(void)
{
	struct disp_held h[2] = { held(5, 4, 100, 1, 0), held(10, 3, 50, 1, 0) };
	double extra[2];
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 2, 50, extra), 8, 1e-9);
	CHECK_NEAR(extra[0], 1, 1e-9);
	CHECK_NEAR(extra[1], 7, 1e-9);
	CHECK_NEAR(disp_fallback_apply(DISP_FB_PROBABILISTIC, h, 2, 50, extra), 8, 1e-9);
	CHECK_NEAR(extra[0], 1, 1e-9);
	CHECK_NEAR(extra[1], 7, 1e-9);
}

static void test_zero_acked_or_residual(void)
{
	double extra[1] = { 3 };
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, NULL, 0, 5, extra), 0, 0);
	CHECK_NEAR(disp_fallback_apply(DISP_FB_PROBABILISTIC, NULL, 0, 5, extra), 0, 0);
	struct disp_held h[1] = { held(10, 0, 80, 1, 0) };
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 1, 0, extra), 0, 0);
	CHECK_NEAR(extra[0], 0, 0);
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 1, -2, extra), 0, 0);
	CHECK_NEAR(extra[0], 0, 0);
	/* already at capacity */
	h[0].kw = 10;
	CHECK_NEAR(disp_fallback_apply(DISP_FB_BALANCED, h, 1, 5, extra), 0, 0);
}

static void test_probabilistic_weights(void)
{
	/* rooms 10, 10, 10: weights 10 x 1 x 1, 10 x 0.5 x 1, 10 x 1 x 0.5;
	 * SoC is not a criterion here (a 10 % vehicle takes its share) */
	struct disp_held h[4] = { held(10, 0, 10, 1, 0), held(10, 0, 80, 0.5f, 0),
		                  held(10, 0, 80, 1, 0.5f), held(10, 0, 80, 0, 0) };
	double extra[4];
	CHECK_NEAR(disp_fallback_apply(DISP_FB_PROBABILISTIC, h, 4, 8, extra), 8, 1e-9);
	CHECK_NEAR(extra[0], 4, 1e-9);
	CHECK_NEAR(extra[1], 2, 1e-9);
	CHECK_NEAR(extra[2], 2, 1e-9);
	CHECK_NEAR(extra[3], 0, 0); /* never available: nothing */
	/* capped: 24 kW puts 12 on the first, over its room of 10 */
	CHECK_NEAR(disp_fallback_apply(DISP_FB_PROBABILISTIC, h, 4, 24, extra), 24, 1e-9);
	CHECK_NEAR(extra[0], 10, 1e-9);
	CHECK_NEAR(extra[1], 7, 1e-9);
	CHECK_NEAR(extra[2], 7, 1e-9);
}

/* Random acked sets: within rooms, never over the residual, all of it when
 * there is room, and proportional among those not at their room. */
static uint64_t rng = 0xfa11bac4;

static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static void test_property_random(void)
{
	enum { N = 60 };
	for (int it = 0; it < 4000; it++) {
		struct disp_held h[N];
		double extra[N], w[N];
		size_t n = (size_t)(urand() * N);
		enum disp_fallback f = it & 1 ? DISP_FB_BALANCED : DISP_FB_PROBABILISTIC;
		double room_total = 0;
		for (size_t i = 0; i < n; i++) {
			float cap = (float)(urand() * 20);
			h[i] = held(cap, urand() < 0.2 ? cap : cap * urand(),
			            (float)(urand() * 100), urand() < 0.5 ? 1 : (float)urand(),
			            (float)(urand() * 0.5));
			double room = h[i].c.cap_kw - h[i].kw;
			w[i] = f == DISP_FB_BALANCED ? (h[i].c.soc >= 30 ? room * h[i].c.soc : 0)
			                             : room * h[i].c.avail_prob *
			                                       (1 - (double)h[i].c.degradation);
			if (w[i] > 0)
				room_total += room;
		}
		double residual = urand() < 0.2 ? room_total * (1 + urand()) : room_total * urand();
		double placed = disp_fallback_apply(f, h, n, residual, extra);
		double sum = 0, ratio = -1;
		int prop = 1;
		for (size_t i = 0; i < n; i++) {
			double room = h[i].c.cap_kw - h[i].kw;
			CHECK(extra[i] >= 0);
			CHECK(extra[i] <= room + 1e-9 || extra[i] == 0);
			if (!(w[i] > 0))
				CHECK(extra[i] == 0);
			sum += extra[i];
			if (w[i] > 0 && extra[i] < room - 1e-9) {
				double r = extra[i] / w[i];
				if (ratio < 0)
					ratio = r;
				prop &= fabs(r - ratio) <= 1e-9 * (1 + ratio);
			}
		}
		CHECK(prop);
		CHECK_NEAR(placed, sum, 1e-9 * (1 + sum));
		double want = residual < room_total ? residual : room_total;
		CHECK_NEAR(placed, want, 1e-9 * (1 + want));
	}
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_names),
		HCASE(test_noop),
		HCASE(test_balanced_proportional_to_room_and_soc),
		HCASE(test_balanced_skips_low_soc),
		HCASE(test_balanced_caps_and_redistributes),
		HCASE(test_residual_larger_than_room),
		HCASE(test_zero_acked_or_residual),
		HCASE(test_probabilistic_weights),
		HCASE(test_property_random),
	};
	return harness_main("fallback", cases, HARNESS_N(cases));
}
