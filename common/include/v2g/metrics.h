/* Prometheus metrics: counters, gauges and histograms with at most one
 * label, rendered in the text exposition format (passes promtool check).
 * Metrics live for the whole process; every call is thread-safe. */
#ifndef V2G_METRICS_H
#define V2G_METRICS_H

#include <stddef.h>

struct v2g_metric;

/* Registers (or returns the already registered) metric. label is the label
 * name ("signal_type") or NULL for an unlabelled metric. Never NULL: a
 * failed allocation at start-up aborts. */
struct v2g_metric *v2g_counter(const char *name, const char *help, const char *label);
struct v2g_metric *v2g_gauge(const char *name, const char *help, const char *label);
/* buckets: ascending upper bounds (copied); +Inf is implicit. */
struct v2g_metric *v2g_histogram(const char *name, const char *help, const char *label,
                                 const double *buckets, size_t nbuckets);

/* lv is the label value (NULL for unlabelled metrics). */
void v2g_counter_add(struct v2g_metric *m, const char *lv, double v);
#define v2g_counter_inc(m, lv) v2g_counter_add((m), (lv), 1.0)
void v2g_gauge_set(struct v2g_metric *m, const char *lv, double v);
void v2g_gauge_add(struct v2g_metric *m, const char *lv, double v);
void v2g_histogram_observe(struct v2g_metric *m, const char *lv, double v);

/* Current value of a counter or gauge series (0 if never set); for tests. */
double v2g_metric_value(struct v2g_metric *m, const char *lv);

/* Renders every metric; returns a heap string the caller frees. */
char *v2g_metrics_render(void);

/* Default latency buckets in seconds (1 ms .. 60 s). */
extern const double v2g_latency_buckets[];
extern const size_t v2g_latency_nbuckets;

#endif
