#include "v2g/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

struct series {
	struct series *next;
	char *lv;     /* label value, NULL for unlabelled */
	double value; /* counter/gauge value; histogram sum */
	unsigned long long count;
	unsigned long long *buckets; /* histogram: per bucket (non-cumulative) */
};

struct v2g_metric {
	struct v2g_metric *next;
	enum kind kind;
	char *name, *help, *label;
	double *bounds;
	size_t nbounds;
	pthread_mutex_t mu;
	struct series *series;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct v2g_metric *reg_head, *reg_tail;

const double v2g_latency_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	                               0.5,   1,      2.5,   5,    10,    30,   60 };
const size_t v2g_latency_nbuckets = sizeof(v2g_latency_buckets) / sizeof(v2g_latency_buckets[0]);

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p) {
		fprintf(stderr, "v2g: out of memory registering metrics\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = xcalloc(strlen(s) + 1, 1);
	memcpy(p, s, strlen(s) + 1);
	return p;
}

static struct series *series_get(struct v2g_metric *m, const char *lv);

static struct v2g_metric *reg(enum kind kind, const char *name, const char *help, const char *label,
                              const double *b, size_t nb)
{
	struct v2g_metric *m;
	pthread_mutex_lock(&reg_mu);
	for (m = reg_head; m; m = m->next) {
		if (!strcmp(m->name, name))
			goto out;
	}
	m = xcalloc(1, sizeof(*m));
	m->kind = kind;
	m->name = xstrdup(name);
	m->help = xstrdup(help ? help : name);
	m->label = label ? xstrdup(label) : NULL;
	if (kind == K_HISTOGRAM) {
		m->bounds = xcalloc(nb, sizeof(double));
		memcpy(m->bounds, b, nb * sizeof(double));
		m->nbounds = nb;
	}
	pthread_mutex_init(&m->mu, NULL);
	if (!m->label)
		series_get(m, NULL); /* an unlabelled metric shows 0 from the start */
	if (reg_tail)
		reg_tail->next = m;
	else
		reg_head = m;
	reg_tail = m;
out:
	pthread_mutex_unlock(&reg_mu);
	return m;
}

struct v2g_metric *v2g_counter(const char *name, const char *help, const char *label)
{
	return reg(K_COUNTER, name, help, label, NULL, 0);
}

struct v2g_metric *v2g_gauge(const char *name, const char *help, const char *label)
{
	return reg(K_GAUGE, name, help, label, NULL, 0);
}

struct v2g_metric *v2g_histogram(const char *name, const char *help, const char *label,
                                 const double *buckets, size_t nbuckets)
{
	return reg(K_HISTOGRAM, name, help, label, buckets, nbuckets);
}

/* Finds or creates the series for lv; m->mu held. */
static struct series *series_get(struct v2g_metric *m, const char *lv)
{
	struct series **pp = &m->series;
	if (!m->label)
		lv = NULL;
	else if (!lv)
		lv = "";
	for (; *pp; pp = &(*pp)->next) {
		if ((!lv && !(*pp)->lv) || (lv && (*pp)->lv && !strcmp(lv, (*pp)->lv)))
			return *pp;
	}
	struct series *s = xcalloc(1, sizeof(*s));
	s->lv = lv ? xstrdup(lv) : NULL;
	if (m->kind == K_HISTOGRAM)
		s->buckets = xcalloc(m->nbounds, sizeof(*s->buckets));
	*pp = s;
	return s;
}

void v2g_counter_add(struct v2g_metric *m, const char *lv, double v)
{
	if (!m || !isfinite(v) || v < 0) /* one NaN would poison it for good */
		return;
	pthread_mutex_lock(&m->mu);
	series_get(m, lv)->value += v;
	pthread_mutex_unlock(&m->mu);
}

void v2g_gauge_set(struct v2g_metric *m, const char *lv, double v)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	series_get(m, lv)->value = v;
	pthread_mutex_unlock(&m->mu);
}

void v2g_gauge_add(struct v2g_metric *m, const char *lv, double v)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	series_get(m, lv)->value += v;
	pthread_mutex_unlock(&m->mu);
}

void v2g_histogram_observe(struct v2g_metric *m, const char *lv, double v)
{
	if (!m || !isfinite(v)) /* a NaN or infinite sum would stay so for good */
		return;
	pthread_mutex_lock(&m->mu);
	struct series *s = series_get(m, lv);
	s->value += v;
	s->count++;
	for (size_t i = 0; i < m->nbounds; i++) {
		if (v <= m->bounds[i]) {
			s->buckets[i]++;
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
}

double v2g_metric_value(struct v2g_metric *m, const char *lv)
{
	double v;
	if (!m)
		return 0;
	pthread_mutex_lock(&m->mu);
	struct series *s = series_get(m, lv);
	v = m->kind == K_HISTOGRAM ? (double)s->count : s->value;
	pthread_mutex_unlock(&m->mu);
	return v;
}

/* A growable string. */
struct buf {
	char *p;
	size_t len, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap * 2 + (size_t)n + 64;
		char *np = realloc(b->p, ncap);
		if (!np)
			return;
		b->p = np;
		b->cap = ncap;
	}
}

/* Shortest "%g" that reads back as exactly v (a bucket bound of 1048576
 * must not become le="1.04858e+06"). */
static void fmt_exact(char *buf, size_t len, double v)
{
	for (int prec = 6; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
	snprintf(buf, len, "%.17g", v);
}

/* Label value escaped per the exposition format. */
static void put_lv(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			bprintf(b, "\\\\");
		else if (*s == '"')
			bprintf(b, "\\\"");
		else if (*s == '\n')
			bprintf(b, "\\n");
		else
			bprintf(b, "%c", *s);
	}
}

static void put_labels(struct buf *b, const struct v2g_metric *m, const struct series *s,
                       const char *le)
{
	int any = 0;
	if (!(m->label && s->lv) && !le)
		return;
	bprintf(b, "{");
	if (m->label && s->lv) {
		bprintf(b, "%s=\"", m->label);
		put_lv(b, s->lv);
		bprintf(b, "\"");
		any = 1;
	}
	if (le)
		bprintf(b, "%sle=\"%s\"", any ? "," : "", le);
	bprintf(b, "}");
}

char *v2g_metrics_render(void)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	struct buf b = { malloc(4096), 0, 4096 };
	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	pthread_mutex_lock(&reg_mu);
	for (struct v2g_metric *m = reg_head; m; m = m->next) {
		pthread_mutex_lock(&m->mu);
		bprintf(&b, "# HELP %s ", m->name);
		for (const char *h = m->help; *h; h++)
			bprintf(&b, "%s",
			        *h == '\n'   ? "\\n"
			        : *h == '\\' ? "\\\\"
			                     : (char[2]){ *h, 0 });
		bprintf(&b, "\n# TYPE %s %s\n", m->name, types[m->kind]);
		for (struct series *s = m->series; s; s = s->next) {
			if (m->kind != K_HISTOGRAM) {
				bprintf(&b, "%s", m->name);
				put_labels(&b, m, s, NULL);
				bprintf(&b, " %.17g\n", s->value);
				continue;
			}
			unsigned long long cum = 0;
			char le[64];
			for (size_t i = 0; i < m->nbounds; i++) {
				cum += s->buckets[i];
				fmt_exact(le, sizeof(le), m->bounds[i]);
				bprintf(&b, "%s_bucket", m->name);
				put_labels(&b, m, s, le);
				bprintf(&b, " %llu\n", cum);
			}
			bprintf(&b, "%s_bucket", m->name);
			put_labels(&b, m, s, "+Inf");
			bprintf(&b, " %llu\n%s_sum", s->count, m->name);
			put_labels(&b, m, s, NULL);
			bprintf(&b, " %.17g\n%s_count", s->value, m->name);
			put_labels(&b, m, s, NULL);
			bprintf(&b, " %llu\n", s->count);
		}
		pthread_mutex_unlock(&m->mu);
	}
	pthread_mutex_unlock(&reg_mu);
	return b.p;
}
