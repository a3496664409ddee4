/* Prometheus metrics: values, label escaping, histograms and the rendered
 * text, checked by promtool when it is installed. Metrics are process-wide,
 * so every test uses its own names. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/harness.h"
#include "v2g/metrics.h"

/* The rendered line that starts with prefix (series name and labels, then
 * a space), or NULL. */
static const char *find_line(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p = text;
	while (p) {
		if (!strncmp(p, prefix, n) && p[n] == ' ')
			return p;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* The value of the series line "prefix value", or NAN when absent. */
static double series_value(const char *text, const char *prefix)
{
	const char *p = find_line(text, prefix);
	return p ? strtod(p + strlen(prefix) + 1, NULL) : NAN;
}

static void test_counter(void)
{
	struct v2g_metric *m = v2g_counter("test_events_total", "Events seen", NULL);
	CHECK(m != NULL);
	CHECK_NEAR(v2g_metric_value(m, NULL), 0, 0);
	v2g_counter_inc(m, NULL);
	v2g_counter_add(m, NULL, 2.5);
	CHECK_NEAR(v2g_metric_value(m, NULL), 3.5, 0);
	v2g_counter_add(m, NULL, -10); /* a counter never goes down */
	CHECK_NEAR(v2g_metric_value(m, NULL), 3.5, 0);
	char *text = v2g_metrics_render();
	CHECK(strstr(text, "# HELP test_events_total Events seen\n") != NULL);
	CHECK(strstr(text, "# TYPE test_events_total counter\n") != NULL);
	CHECK_NEAR(series_value(text, "test_events_total"), 3.5, 0);
	free(text);
}

static void test_unlabelled_shows_zero(void)
{
	v2g_counter("test_never_touched_total", "Registered, never incremented", NULL);
	char *text = v2g_metrics_render();
	CHECK_NEAR(series_value(text, "test_never_touched_total"), 0, 0);
	free(text);
}

static void test_labelled_counter(void)
{
	struct v2g_metric *m = v2g_counter("test_signals_total", "Signals by type", "signal_type");
	v2g_counter_inc(m, "FCR");
	v2g_counter_inc(m, "FCR");
	v2g_counter_inc(m, "AFRR");
	CHECK_NEAR(v2g_metric_value(m, "FCR"), 2, 0);
	CHECK_NEAR(v2g_metric_value(m, "AFRR"), 1, 0);
	char *text = v2g_metrics_render();
	CHECK_NEAR(series_value(text, "test_signals_total{signal_type=\"FCR\"}"), 2, 0);
	CHECK_NEAR(series_value(text, "test_signals_total{signal_type=\"AFRR\"}"), 1, 0);
	CHECK(find_line(text, "test_signals_total") == NULL); /* no unlabelled series */
	free(text);
}

static void test_gauge(void)
{
	struct v2g_metric *m = v2g_gauge("test_queue_depth", "Items queued", NULL);
	v2g_gauge_set(m, NULL, 10);
	v2g_gauge_add(m, NULL, -3);
	CHECK_NEAR(v2g_metric_value(m, NULL), 7, 0);
	v2g_gauge_set(m, NULL, -2.25);
	CHECK_NEAR(v2g_metric_value(m, NULL), -2.25, 0);
	char *text = v2g_metrics_render();
	CHECK(strstr(text, "# TYPE test_queue_depth gauge\n") != NULL);
	CHECK_NEAR(series_value(text, "test_queue_depth"), -2.25, 0);
	free(text);
}

static void test_reregistration_same_metric(void)
{
	struct v2g_metric *a = v2g_counter("test_rereg_total", "first help", "k");
	struct v2g_metric *b = v2g_counter("test_rereg_total", "second help", "k");
	CHECK(a == b);
	v2g_counter_inc(a, "x");
	v2g_counter_inc(b, "x");
	CHECK_NEAR(v2g_metric_value(a, "x"), 2, 0);
	char *text = v2g_metrics_render();
	/* one family, rendered once */
	const char *first = strstr(text, "# TYPE test_rereg_total");
	CHECK(first != NULL);
	CHECK(first && strstr(first + 1, "# TYPE test_rereg_total") == NULL);
	free(text);
}

static void test_label_escaping(void)
{
	struct v2g_metric *m = v2g_counter("test_escape_total", "Help with \\ and\nnewline", "id");
	v2g_counter_inc(m, "a\"b\\c\nd");
	char *text = v2g_metrics_render();
	CHECK(find_line(text, "test_escape_total{id=\"a\\\"b\\\\c\\nd\"}") != NULL);
	CHECK(strstr(text, "# HELP test_escape_total Help with \\\\ and\\nnewline\n") != NULL);
	free(text);
}

static void test_histogram(void)
{
	static const double b[] = { 0.1, 0.5, 1 };
	struct v2g_metric *m = v2g_histogram("test_latency_seconds", "Latency", NULL, b, 3);
	v2g_histogram_observe(m, NULL, 0.05);
	v2g_histogram_observe(m, NULL, 0.1); /* le is inclusive */
	v2g_histogram_observe(m, NULL, 0.3);
	v2g_histogram_observe(m, NULL, 0.9);
	v2g_histogram_observe(m, NULL, 7);           /* only +Inf */
	CHECK_NEAR(v2g_metric_value(m, NULL), 5, 0); /* the count */
	char *text = v2g_metrics_render();
	CHECK(strstr(text, "# TYPE test_latency_seconds histogram\n") != NULL);
	CHECK_NEAR(series_value(text, "test_latency_seconds_bucket{le=\"0.1\"}"), 2, 0);
	CHECK_NEAR(series_value(text, "test_latency_seconds_bucket{le=\"0.5\"}"), 3, 0);
	CHECK_NEAR(series_value(text, "test_latency_seconds_bucket{le=\"1\"}"), 4, 0);
	CHECK_NEAR(series_value(text, "test_latency_seconds_bucket{le=\"+Inf\"}"), 5, 0);
	CHECK_NEAR(series_value(text, "test_latency_seconds_count"), 5, 0);
	CHECK_NEAR(series_value(text, "test_latency_seconds_sum"), 8.35, 1e-9);
	free(text);
}

static void test_histogram_labelled_cumulative(void)
{
	struct v2g_metric *m = v2g_histogram("test_call_seconds", "Bus call latency", "target",
	                                     v2g_latency_buckets, v2g_latency_nbuckets);
	for (int i = 0; i < 1000; i++)
		v2g_histogram_observe(m, "store", (double)i / 10.0); /* 0 .. 99.9 s */
	v2g_histogram_observe(m, "dispatch", 0.002);
	char *text = v2g_metrics_render();
	double prev = -1;
	char prefix[128];
	for (size_t i = 0; i < v2g_latency_nbuckets; i++) {
		snprintf(prefix, sizeof(prefix),
		         "test_call_seconds_bucket{target=\"store\",le=\"%g\"}",
		         v2g_latency_buckets[i]);
		double v = series_value(text, prefix);
		CHECK(!isnan(v));
		CHECK(v >= prev);
		prev = v;
	}
	CHECK_NEAR(prev, 601, 0); /* 0.0 .. 60.0 */
	CHECK_NEAR(series_value(text, "test_call_seconds_bucket{target=\"store\",le=\"+Inf\"}"),
	           1000, 0);
	CHECK_NEAR(series_value(text, "test_call_seconds_count{target=\"store\"}"), 1000, 0);
	CHECK_NEAR(series_value(text, "test_call_seconds_bucket{target=\"dispatch\",le=\"0.001\"}"),
	           0, 0);
	CHECK_NEAR(
	        series_value(text, "test_call_seconds_bucket{target=\"dispatch\",le=\"0.0025\"}"),
	        1, 0);
	CHECK_NEAR(series_value(text, "test_call_seconds_count{target=\"dispatch\"}"), 1, 0);
	free(text);
}

struct hammer {
	struct v2g_metric *c, *h;
	int n;
};

static void *hammer_main(void *arg)
{
	struct hammer *hm = arg;
	for (int i = 0; i < hm->n; i++) {
		v2g_counter_inc(hm->c, (i & 1) ? "odd" : "even");
		v2g_histogram_observe(hm->h, NULL, 0.01);
		/* registering again from many threads returns the same metric */
		if (v2g_counter("test_hammer_total", "", "parity") != hm->c)
			abort();
	}
	return NULL;
}

static void test_concurrent_updates(void)
{
	static const double b[] = { 1 };
	struct hammer hm = {
		v2g_counter("test_hammer_total", "Concurrent increments", "parity"),
		v2g_histogram("test_hammer_seconds", "Concurrent observations", NULL, b, 1),
		20000,
	};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer_main, &hm);
	for (int i = 0; i < 4; i++) {
		char *s = v2g_metrics_render(); /* rendering while others write */
		free(s);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_NEAR(v2g_metric_value(hm.c, "odd"), 40000, 0);
	CHECK_NEAR(v2g_metric_value(hm.c, "even"), 40000, 0);
	CHECK_NEAR(v2g_metric_value(hm.h, NULL), 80000, 0);
}

static void test_special_values(void)
{
	struct v2g_metric *m = v2g_gauge("test_special_value", "Non-finite gauge values", "kind");
	v2g_gauge_set(m, "pinf", INFINITY);
	v2g_gauge_set(m, "ninf", -INFINITY);
	v2g_gauge_set(m, "nan", NAN);
	v2g_gauge_set(m, "tiny", 1e-300);
	v2g_gauge_set(m, "", 1); /* an empty label value */
	char *text = v2g_metrics_render();
	CHECK(isinf(series_value(text, "test_special_value{kind=\"pinf\"}")));
	CHECK(isnan(series_value(text, "test_special_value{kind=\"nan\"}")));
	CHECK_NEAR(series_value(text, "test_special_value{kind=\"tiny\"}"), 1e-300, 0);
	free(text);
}

static void test_nan_does_not_poison(void)
{
	/* one bad sample (0/0 from a broken payload) must not turn a counter
	 * or a histogram sum into NaN for the rest of the process */
	static const double b[] = { 1 };
	struct v2g_metric *c = v2g_counter("test_energy_kwh_total", "Energy", NULL);
	struct v2g_metric *h = v2g_histogram("test_size_ratio", "Ratios", NULL, b, 1);
	v2g_counter_add(c, NULL, 2);
	v2g_counter_add(c, NULL, NAN);
	v2g_counter_add(c, NULL, INFINITY);
	CHECK_NEAR(v2g_metric_value(c, NULL), 2, 0);
	v2g_histogram_observe(h, NULL, 0.5);
	v2g_histogram_observe(h, NULL, NAN);
	v2g_histogram_observe(h, NULL, -INFINITY);
	CHECK_NEAR(v2g_metric_value(h, NULL), 1, 0);
	char *text = v2g_metrics_render();
	CHECK_NEAR(series_value(text, "test_size_ratio_sum"), 0.5, 0);
	CHECK_NEAR(series_value(text, "test_energy_kwh_total"), 2, 0);
	free(text);
}

static void test_bucket_bounds_exact(void)
{
	/* le labels carry the bound exactly: 1 MiB is not "1.04858e+06" */
	static const double b[] = { 0.0005, 16384, 1048576, 4194304, 123456789 };
	struct v2g_metric *m = v2g_histogram("test_message_bytes", "Message sizes", NULL, b, 5);
	v2g_histogram_observe(m, NULL, 2000000);
	char *text = v2g_metrics_render();
	CHECK_NEAR(series_value(text, "test_message_bytes_bucket{le=\"0.0005\"}"), 0, 0);
	CHECK_NEAR(series_value(text, "test_message_bytes_bucket{le=\"16384\"}"), 0, 0);
	CHECK_NEAR(series_value(text, "test_message_bytes_bucket{le=\"1048576\"}"), 0, 0);
	CHECK_NEAR(series_value(text, "test_message_bytes_bucket{le=\"4194304\"}"), 1, 0);
	CHECK_NEAR(series_value(text, "test_message_bytes_bucket{le=\"123456789\"}"), 1, 0);
	free(text);
}

/* Must run last: checks everything the other tests registered. */
static void test_promtool_check(void)
{
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		printf("SKIP metrics.test_promtool_check: promtool not installed\n");
		return;
	}
	char *text = v2g_metrics_render();
	CHECK(text != NULL);
	if (!text)
		return;
	FILE *p = popen("promtool check metrics >/dev/null", "w");
	CHECK(p != NULL);
	if (!p) {
		free(text);
		return;
	}
	fputs(text, p);
	int st = pclose(p);
	CHECK(WIFEXITED(st));
	CHECK_INT(WEXITSTATUS(st), 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "---- rendered metrics ----\n%s---- promtool says ----\n", text);
		FILE *q = popen("promtool check metrics 1>&2", "w");
		if (q) {
			fputs(text, q);
			pclose(q);
		}
	}
	free(text);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_counter),
		HCASE(test_unlabelled_shows_zero),
		HCASE(test_labelled_counter),
		HCASE(test_gauge),
		HCASE(test_reregistration_same_metric),
		HCASE(test_label_escaping),
		HCASE(test_histogram),
		HCASE(test_histogram_labelled_cumulative),
		HCASE(test_concurrent_updates),
		HCASE(test_special_values),
		HCASE(test_nan_does_not_poison),
		HCASE(test_bucket_bounds_exact),
		HCASE(test_promtool_check),
	};
	return harness_main("metrics", cases, HARNESS_N(cases));
}
