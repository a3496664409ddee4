#include "convert.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

/* 9999-12-31T23:59:59.999Z: the last instant every formatter here handles. */
#define STORE_MS_MAX INT64_C(253402300799999)
#define STORE_ID_MAX 256

int store_buf_append(struct store_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return V2G_ERR_NOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int store_buf_puts(struct store_buf *b, const char *s)
{
	return store_buf_append(b, s, strlen(s));
}

void store_buf_reset(struct store_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void store_buf_free(struct store_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so that no libc time zone state is involved. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

int store_ms_to_pg(int64_t ms, char *buf, size_t len)
{
	if (ms < 0 || ms > STORE_MS_MAX)
		return V2G_ERR_INVAL;
	int64_t days = ms / 86400000, rem = ms % 86400000;
	int y, mo, d;
	civil_from_days(days, &y, &mo, &d);
	int n = snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", y, mo, d,
	                 (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
	                 (int)(rem % 1000));
	return n < 0 || (size_t)n >= len ? V2G_ERR_INVAL : 0;
}

/* Reads exactly n digits at *p into *out and advances. */
static int read_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int store_pg_to_ms(const char *s, int64_t *ms)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *p = s;
	int y, mo, d, h, mi, sec, frac = 0;

	if (!s || read_digits(&p, 4, &y) || *p++ != '-' || read_digits(&p, 2, &mo) || *p++ != '-' ||
	    read_digits(&p, 2, &d) || (*p != ' ' && *p != 'T'))
		return V2G_ERR_INVAL;
	p++;
	if (read_digits(&p, 2, &h) || *p++ != ':' || read_digits(&p, 2, &mi) || *p++ != ':' ||
	    read_digits(&p, 2, &sec))
		return V2G_ERR_INVAL;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)) ||
	    h > 23 || mi > 59 || sec > 59)
		return V2G_ERR_INVAL;
	if (*p == '.') {
		int digits = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				frac = frac * 10 + (*p - '0');
		if (digits == 0)
			return V2G_ERR_INVAL;
		for (; digits < 3; digits++)
			frac *= 10;
	}
	int64_t off_s = 0;
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om = 0, os = 0;
		if (read_digits(&p, 2, &oh))
			return V2G_ERR_INVAL;
		if (*p == ':' && (p++, read_digits(&p, 2, &om)))
			return V2G_ERR_INVAL;
		if (*p == ':' && (p++, read_digits(&p, 2, &os)))
			return V2G_ERR_INVAL;
		if (oh > 15 || om > 59 || os > 59)
			return V2G_ERR_INVAL;
		off_s = sign * (oh * 3600 + om * 60 + os);
	} else {
		return V2G_ERR_INVAL; /* timestamptz text always carries its offset */
	}
	if (*p != '\0')
		return V2G_ERR_INVAL;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
	*ms = secs * 1000 + frac;
	return 0;
}

void store_double_text(double v, char buf[STORE_TEXT_MAX])
{
	if (isnan(v))
		strcpy(buf, "NaN");
	else if (isinf(v))
		strcpy(buf, v > 0 ? "Infinity" : "-Infinity");
	else
		snprintf(buf, STORE_TEXT_MAX, "%.17g", v); /* 17 digits round-trip a double */
}

static const char *const status_names[] = { "pending", "complete", "partial", "failed" };

const char *store_status_name(int status)
{
	if (status < 0 || status >= (int)(sizeof(status_names) / sizeof(status_names[0])))
		return NULL;
	return status_names[status];
}

int store_status_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof(status_names) / sizeof(status_names[0]); i++)
		if (strcmp(name, status_names[i]) == 0)
			return (int)i;
	return -1;
}

int store_copy_append_text(struct store_buf *b, const char *s)
{
	const char *run = s;
	for (; *s; s++) {
		const char *esc;
		switch (*s) {
		case '\\': esc = "\\\\"; break;
		case '\t': esc = "\\t"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		default: continue;
		}
		if (store_buf_append(b, run, (size_t)(s - run)) || store_buf_append(b, esc, 2))
			return V2G_ERR_NOMEM;
		run = s + 1;
	}
	return store_buf_append(b, run, (size_t)(s - run));
}

int store_copy_append_allocation(struct store_buf *b, const char *dispatch_id,
                                 const V2g__V1__Allocation *a)
{
	char num[STORE_TEXT_MAX], power[STORE_TEXT_MAX], acked_at[STORE_TEXT_MAX];
	snprintf(num, sizeof num, "%" PRIu32, a->round);
	store_double_text(a->power_kw, power);
	if (a->acked_ms == 0 || store_ms_to_pg(a->acked_ms, acked_at, sizeof acked_at))
		strcpy(acked_at, "\\N");

	int rc = store_copy_append_text(b, dispatch_id);
	rc = rc ? rc : store_buf_puts(b, "\t");
	rc = rc ? rc : store_copy_append_text(b, a->vehicle_id);
	rc = rc ? rc : store_buf_puts(b, "\t");
	rc = rc ? rc : store_buf_puts(b, num);
	rc = rc ? rc : store_buf_puts(b, "\t");
	rc = rc ? rc : store_buf_puts(b, power);
	rc = rc ? rc : store_buf_puts(b, a->acked ? "\tt" : "\tf");
	rc = rc ? rc : store_buf_puts(b, a->rejected ? "\tt" : "\tf");
	rc = rc ? rc : store_buf_puts(b, a->reallocated ? "\tt\t" : "\tf\t");
	rc = rc ? rc : store_copy_append_text(b, a->reason);
	rc = rc ? rc : store_buf_puts(b, "\t");
	rc = rc ? rc : store_buf_puts(b, acked_at);
	rc = rc ? rc : store_buf_puts(b, "\n");
	return rc;
}

static int check_ms(int64_t ms)
{
	return ms >= 0 && ms <= STORE_MS_MAX;
}

int store_decision_check(const V2g__V1__DispatchDecision *d, char *err, size_t len)
{
	size_t idlen = strlen(d->dispatch_id);
	if (idlen == 0 || idlen > STORE_ID_MAX) {
		snprintf(err, len, "dispatch_id: must be 1..%d bytes, got %zu", STORE_ID_MAX,
		         idlen);
		return V2G_ERR_INVAL;
	}
	if (!store_status_name((int)d->status)) {
		snprintf(err, len, "status: unknown value %d", (int)d->status);
		return V2G_ERR_INVAL;
	}
	if (d->signal && ((int)d->signal->type < 0 || (int)d->signal->type > 2)) {
		snprintf(err, len, "signal.type: unknown value %d", (int)d->signal->type);
		return V2G_ERR_INVAL;
	}
	if (d->signal &&
	    (d->signal->duration_min > INT_MAX || !check_ms(d->signal->timestamp_ms))) {
		snprintf(err, len, "signal: duration_min or timestamp_ms out of range");
		return V2G_ERR_INVAL;
	}
	if (d->rounds > INT_MAX || !check_ms(d->started_ms) || !check_ms(d->completed_ms) ||
	    !check_ms(d->first_command_ms)) {
		snprintf(err, len, "rounds or a timestamp out of range");
		return V2G_ERR_INVAL;
	}
	for (size_t i = 0; i < d->n_allocations; i++) {
		const V2g__V1__Allocation *a = d->allocations[i];
		if (a->vehicle_id[0] == '\0' || a->round > INT_MAX || !check_ms(a->acked_ms)) {
			snprintf(err, len,
			         "allocations[%zu]: empty vehicle_id or value out of range", i);
			return V2G_ERR_INVAL;
		}
	}
	return 0;
}
