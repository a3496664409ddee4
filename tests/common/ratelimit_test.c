/* Rate limiter: the guide's tiers with their numbers, Retry-After values,
 * window edges, bounded memory, threads. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "v2g/err.h"
#include "v2g/ratelimit.h"

static struct v2g_ratelimit *tier(enum v2g_ratelimit_tier t)
{
	struct v2g_ratelimit *l = NULL;
	CHECK_INT(v2g_ratelimit_new_tier(t, 0, &l), 0);
	return l;
}

/* n checks at t, returns how many were allowed */
static int burst(struct v2g_ratelimit *l, const char *key, int n, int64_t t)
{
	int ok = 0;
	for (int i = 0; i < n; i++)
		ok += v2g_ratelimit_check(l, key, t, NULL);
	return ok;
}

static void test_tier_numbers(void)
{
	int64_t w;
	int m;
	CHECK_INT(v2g_ratelimit_tier_params(V2G_RATELIMIT_STRICT, &w, &m), 0);
	CHECK_INT(w, 15 * 60 * 1000);
	CHECK_INT(m, 10);
	CHECK_INT(v2g_ratelimit_tier_params(V2G_RATELIMIT_STANDARD, &w, &m), 0);
	CHECK_INT(w, 60 * 1000);
	CHECK_INT(m, 100);
	CHECK_INT(v2g_ratelimit_tier_params(V2G_RATELIMIT_RELAXED, &w, &m), 0);
	CHECK_INT(w, 60 * 1000);
	CHECK_INT(m, 300);
	CHECK_INT(v2g_ratelimit_tier_params((enum v2g_ratelimit_tier)7, &w, &m), V2G_ERR_INVAL);
	enum v2g_ratelimit_tier t;
	CHECK_INT(v2g_ratelimit_tier_parse("relaxed", &t), 0);
	CHECK_INT(t, V2G_RATELIMIT_RELAXED);
	CHECK_INT(v2g_ratelimit_tier_parse("lax", &t), V2G_ERR_INVAL);
	CHECK_STR(v2g_ratelimit_tier_name(V2G_RATELIMIT_STRICT), "strict");
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	CHECK_STR(v2g_ratelimit_name(l), "standard");
	CHECK_INT(v2g_ratelimit_window_ms(l), 60000);
	CHECK_INT(v2g_ratelimit_max_requests(l), 100);
	json_t *s = v2g_ratelimit_status(l);
	CHECK_INT(json_integer_value(json_object_get(s, "max_keys")), 100000);
	json_decref(s);
	v2g_ratelimit_free(l);
}

static void test_bad_limits_refused(void)
{
	struct v2g_ratelimit *l = NULL;
	CHECK_INT(v2g_ratelimit_new("x", 0, 10, 0, &l), V2G_ERR_INVAL);
	CHECK_INT(v2g_ratelimit_new("x", 1000, 0, 0, &l), V2G_ERR_INVAL);
	CHECK_INT(v2g_ratelimit_new("x", V2G_RATELIMIT_MAX_WINDOW_MS + 1, 10, 0, &l),
	          V2G_ERR_INVAL);
	CHECK_INT(v2g_ratelimit_new("x", 1000, V2G_RATELIMIT_MAX_REQUESTS + 1, 0, &l),
	          V2G_ERR_INVAL);
	CHECK_INT(v2g_ratelimit_new(NULL, 1000, 10, 0, &l), V2G_ERR_INVAL);
	CHECK(l == NULL);
}

static void test_strict_10_per_15_min(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STRICT);
	int ra = -1;
	for (int i = 0; i < 10; i++) {
		CHECK_INT(v2g_ratelimit_check(l, "10.0.0.1", i * 100, &ra), 1);
		CHECK_INT(ra, 0);
	}
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.1", 1000, &ra), 0);
	/* the window's 10 become the next window's carry: 16.5 min after t=0 */
	CHECK_INT(ra, 989); /* (990000 - 1000) ms */
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.1", 500000, &ra), 0);
	CHECK_INT(ra, 490);
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.1", 900000, &ra), 0); /* new window, full carry */
	CHECK_INT(ra, 90);
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.1", 989999, &ra), 0);
	CHECK_INT(ra, 1);
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.1", 990000, &ra), 1);
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.1", 990000, &ra), 0);
	v2g_ratelimit_free(l);
}

static void test_standard_100_per_min(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	int ra;
	CHECK_INT(burst(l, "tok-a", 100, 0), 100);
	CHECK_INT(v2g_ratelimit_check(l, "tok-a", 0, &ra), 0);
	CHECK_INT(ra, 61); /* 60.6 s, rounded up */
	CHECK_INT(v2g_ratelimit_check(l, "tok-a", 60599, &ra), 0);
	CHECK_INT(ra, 1);
	CHECK_INT(v2g_ratelimit_check(l, "tok-a", 60600, &ra), 1);
	v2g_ratelimit_free(l);
}

static void test_relaxed_300_per_min(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_RELAXED);
	int ra;
	CHECK_INT(burst(l, "10.0.0.2", 300, 30000), 300);
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.2", 30000, &ra), 0);
	CHECK_INT(ra, 31); /* 60000 + 200 - 30000 ms */
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.2", 60199, NULL), 0);
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.2", 60200, NULL), 1);
	v2g_ratelimit_free(l);
}

static void test_custom_endpoint_50_per_min(void)
{
	/* createEndpointLimiter('/api/stations', { windowMs: 60000, maxRequests: 50
	 * }) */
	struct v2g_ratelimit *l = NULL;
	int ra;
	CHECK_INT(v2g_ratelimit_new("/api/stations", 60000, 50, 0, &l), 0);
	CHECK_STR(v2g_ratelimit_name(l), "/api/stations");
	CHECK_INT(burst(l, "10.0.0.3", 60, 0), 50);
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.3", 0, &ra), 0);
	CHECK_INT(ra, 62); /* 60 s + 60000 * (1 - 49/50) = 61.2 s */
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.3", 61199, NULL), 0);
	CHECK_INT(v2g_ratelimit_check(l, "10.0.0.3", 61200, NULL), 1);
	v2g_ratelimit_free(l);
}

static void test_no_double_burst_at_window_edge(void)
{
	/* a plain fixed window would take 100 at 59.999 s and 100 more at 60 s */
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	int ra;
	CHECK_INT(burst(l, "c", 100, 59999), 100);
	CHECK_INT(v2g_ratelimit_check(l, "c", 60000, &ra), 0);
	CHECK_INT(ra, 1); /* one request frees up every 600 ms */
	CHECK_INT(v2g_ratelimit_check(l, "c", 60599, NULL), 0);
	CHECK_INT(v2g_ratelimit_check(l, "c", 60600, NULL), 1);
	CHECK_INT(v2g_ratelimit_check(l, "c", 60600, NULL), 0);
	CHECK_INT(burst(l, "c", 100, 90000), 49); /* half the old window has slid out */
	v2g_ratelimit_free(l);
}

static void test_sustained_rate(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	/* just under 100/min: never refused over 10 minutes */
	int ok = 0, n = 0;
	for (int64_t t = 0; t < 600000; t += 610, n++)
		ok += v2g_ratelimit_check(l, "steady", t, NULL);
	CHECK_INT(ok, n);
	/* twice the rate: held to about 100 in any 60 s */
	static int64_t at[4000];
	int k = 0;
	for (int64_t t = 0; t < 600000; t += 300)
		if (v2g_ratelimit_check(l, "greedy", t, NULL))
			at[k++] = t;
	int worst = 0;
	for (int i = 0, j = 0; i < k; i++) {
		while (at[i] - at[j] >= 60000)
			j++;
		if (i - j + 1 > worst)
			worst = i - j + 1;
	}
	CHECK(worst <= 102);
	CHECK(k >= 950 && k <= 1010);
	v2g_ratelimit_free(l);
}

static void test_refused_requests_not_counted(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	int ra;
	CHECK_INT(burst(l, "x", 100, 0), 100);
	CHECK_INT(burst(l, "x", 5000, 1000), 0);
	CHECK_INT(v2g_ratelimit_check(l, "x", 60600, &ra), 1);
	struct v2g_ratelimit_stats st;
	v2g_ratelimit_get_stats(l, &st);
	CHECK_INT(st.allowed, 101);
	CHECK_INT(st.limited, 5000);
	v2g_ratelimit_free(l);
}

static void test_clients_and_limiters_independent(void)
{
	struct v2g_ratelimit *strict = tier(V2G_RATELIMIT_STRICT);
	struct v2g_ratelimit *std = tier(V2G_RATELIMIT_STANDARD);
	CHECK_INT(burst(strict, "10.0.0.1", 11, 0), 10);
	CHECK_INT(burst(strict, "10.0.0.2", 11, 0), 10);
	CHECK_INT(burst(std, "10.0.0.1", 101, 0), 100);
	CHECK_INT(v2g_ratelimit_check(strict, NULL, 0, NULL), 1); /* NULL key is "" */
	v2g_ratelimit_free(strict);
	v2g_ratelimit_free(std);
}

static void test_remaining(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	CHECK_INT(v2g_ratelimit_remaining(l, "r", 0), 100);
	burst(l, "r", 30, 0);
	CHECK_INT(v2g_ratelimit_remaining(l, "r", 0), 70);
	CHECK_INT(v2g_ratelimit_remaining(l, "r", 0), 70); /* peeking counts nothing */
	burst(l, "r", 70, 0);
	CHECK_INT(v2g_ratelimit_remaining(l, "r", 0), 0);
	CHECK_INT(v2g_ratelimit_remaining(l, "r", 90000), 50); /* half the carry left */
	CHECK_INT(v2g_ratelimit_remaining(l, "r", 120000), 100);
	v2g_ratelimit_free(l);
}

static void test_idle_clients_expire(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	char key[16];
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "c%d", i);
		v2g_ratelimit_check(l, key, 1000, NULL);
	}
	struct v2g_ratelimit_stats st;
	v2g_ratelimit_get_stats(l, &st);
	CHECK_INT(st.keys, 10);
	CHECK_INT(v2g_ratelimit_sweep(l, 119999), 0); /* previous window still counts */
	CHECK_INT(v2g_ratelimit_sweep(l, 120000), 10);
	v2g_ratelimit_get_stats(l, &st);
	CHECK_INT(st.keys, 0);
	CHECK_INT(st.expired, 10);
	/* and checks drop a few idle ones as they go */
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "c%d", i);
		v2g_ratelimit_check(l, key, 200000, NULL);
	}
	v2g_ratelimit_check(l, "late", 400000, NULL);
	v2g_ratelimit_get_stats(l, &st);
	CHECK_INT(st.keys, 7); /* 4 dropped by that one check, "late" added */
	v2g_ratelimit_free(l);
}

static void test_full_table_evicts_oldest(void)
{
	struct v2g_ratelimit *l = NULL;
	CHECK_INT(v2g_ratelimit_new("tiny", 60000, 2, 3, &l), 0);
	burst(l, "a", 2, 0);
	burst(l, "b", 2, 10);
	burst(l, "c", 2, 20);
	CHECK_INT(v2g_ratelimit_check(l, "a", 30, NULL), 0); /* a is now most recent */
	CHECK_INT(v2g_ratelimit_check(l, "d", 40, NULL), 1); /* evicts b, the stalest */
	struct v2g_ratelimit_stats st;
	v2g_ratelimit_get_stats(l, &st);
	CHECK_INT(st.keys, 3);
	CHECK_INT(st.evicted, 1);
	CHECK_INT(v2g_ratelimit_check(l, "a", 50, NULL), 0); /* kept */
	CHECK_INT(v2g_ratelimit_check(l, "b", 60, NULL), 1); /* fresh budget */
	v2g_ratelimit_free(l);
}

static void test_default_cap_100k(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	char key[32];
	for (int i = 0; i <= 100000; i++) {
		snprintf(key, sizeof(key), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		v2g_ratelimit_check(l, key, i / 10, NULL);
	}
	struct v2g_ratelimit_stats st;
	v2g_ratelimit_get_stats(l, &st);
	CHECK_INT(st.keys, 100000);
	CHECK_INT(st.evicted, 1);
	v2g_ratelimit_free(l);
}

static void test_keys_found_after_table_growth(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STRICT);
	char key[16];
	int ok = 0;
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "c%d", i);
		ok += burst(l, key, 10, 0);
	}
	CHECK_INT(ok, 30000);
	ok = 0;
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "c%d", i);
		ok += v2g_ratelimit_check(l, key, 0, NULL);
	}
	CHECK_INT(ok, 0); /* every client found again, none forgotten */
	struct v2g_ratelimit_stats st;
	v2g_ratelimit_get_stats(l, &st);
	CHECK_INT(st.keys, 3000);
	v2g_ratelimit_free(l);
}

static void test_long_keys_cut(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STRICT);
	char *a = malloc(2000), *b = malloc(2000);
	memset(a, 'k', 1999);
	a[1999] = 0;
	memcpy(b, a, 2000);
	b[1500] = 'z'; /* differs only past the cut */
	CHECK_INT(burst(l, a, 10, 0), 10);
	CHECK_INT(v2g_ratelimit_check(l, b, 0, NULL), 0);
	b[10] = 'z';
	CHECK_INT(v2g_ratelimit_check(l, b, 0, NULL), 1);
	free(a);
	free(b);
	v2g_ratelimit_free(l);
}

struct worker {
	struct v2g_ratelimit *l;
	int ok;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	char key[16];
	for (int i = 0; i < 20000; i++) {
		w->ok += v2g_ratelimit_check(w->l, "shared", 5000, NULL);
		snprintf(key, sizeof(key), "k%d", i % 500);
		v2g_ratelimit_check(w->l, key, 5000, NULL);
	}
	return NULL;
}

static void test_threads(void)
{
	struct v2g_ratelimit *l = tier(V2G_RATELIMIT_STANDARD);
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .l = l };
		pthread_create(&th[i], NULL, hammer, &w[i]);
	}
	int ok = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ok += w[i].ok;
	}
	CHECK_INT(ok, 100);
	struct v2g_ratelimit_stats st;
	v2g_ratelimit_get_stats(l, &st);
	CHECK_INT(st.keys, 501);
	v2g_ratelimit_free(l);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_tier_numbers),
		HCASE(test_bad_limits_refused),
		HCASE(test_strict_10_per_15_min),
		HCASE(test_standard_100_per_min),
		HCASE(test_relaxed_300_per_min),
		HCASE(test_custom_endpoint_50_per_min),
		HCASE(test_no_double_burst_at_window_edge),
		HCASE(test_sustained_rate),
		HCASE(test_refused_requests_not_counted),
		HCASE(test_clients_and_limiters_independent),
		HCASE(test_remaining),
		HCASE(test_idle_clients_expire),
		HCASE(test_full_table_evicts_oldest),
		HCASE(test_default_cap_100k),
		HCASE(test_keys_found_after_table_growth),
		HCASE(test_long_keys_cut),
		HCASE(test_threads),
	};
	return harness_main("ratelimit", cases, HARNESS_N(cases));
}
