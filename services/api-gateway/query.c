#include "query.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "v2g/audit.h"
#include "v2g/err.h"
#include "v2g/timeutil.h"
#include "v2g/signal_type.h"

int api_id_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return 0;
	for (; s[n]; n++) {
		char c = s[n];
		int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-';
		if (!ok || n >= API_ID_MAX)
			return 0;
	}
	return n > 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes src[0..n) into dst (NUL-terminated). Returns 0, -1 for a
 * bad or NUL escape, -2 when the result does not fit in cap bytes. */
static int pct_decode(const char *src, size_t n, char *dst, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				return -1;
			hi = hexval(src[i + 1]);
			lo = hexval(src[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (o + 1 >= cap)
			return -2;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return 0;
}

/* The raw (encoded) value of one parameter we read. */
struct raw {
	const char *p;
	size_t n;
};

/* Splits qs into name=value pairs and keeps, for each of names[0..n), the
 * raw value of its last occurrence (p NULL when absent or empty). */
static void split_params(const char *qs, const char *const *names, int n, struct raw *raw)
{
	memset(raw, 0, sizeof(*raw) * (size_t)n);
	for (const char *p = qs; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t seg = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', seg);
		size_t klen = eq ? (size_t)(eq - p) : seg;
		char key[32];

		/* A name we cannot decode is not one of ours: ignored. */
		if (klen > 0 && pct_decode(p, klen, key, sizeof(key)) == 0) {
			for (int i = 0; i < n; i++) {
				if (!strcmp(key, names[i])) {
					raw[i].p = eq ? eq + 1 : p + seg;
					raw[i].n = eq ? seg - klen - 1 : 0;
				}
			}
		}
		p += seg;
		if (*p == '&')
			p++;
	}
	/* An empty value counts as absent. */
	for (int i = 0; i < n; i++)
		if (raw[i].p && raw[i].n == 0)
			raw[i].p = NULL;
}

static int fail(char *err, size_t errlen, const char *field, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", field, why);
	return V2G_ERR_INVAL;
}

/* Decodes the value of parameter name into buf. Returns 0 (buf "" when
 * absent) or V2G_ERR_INVAL with err set. */
static int param_value(const struct raw *r, const char *name, char *buf, size_t cap,
                       const char *toolong, char *err, size_t errlen)
{
	int rc;

	buf[0] = '\0';
	if (!r->p)
		return 0;
	rc = pct_decode(r->p, r->n, buf, cap);
	if (rc == -1)
		return fail(err, errlen, name, "bad percent-encoding");
	if (rc == -2)
		return fail(err, errlen, name, toolong);
	return 0;
}

static int parse_time(const struct raw *r, const char *name, int64_t *ms, int *has, char *err,
                      size_t errlen)
{
	static const char why[] = "must be an RFC 3339 time";
	char buf[64];
	int rc = param_value(r, name, buf, sizeof(buf), why, err, errlen);

	*has = 0;
	if (rc)
		return rc;
	if (buf[0] == '\0')
		return 0;
	if (v2g_time_parse(buf, ms))
		return fail(err, errlen, name, why);
	*has = 1;
	return 0;
}

/* A decimal integer in lo..hi, digits only. */
static int parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned *out)
{
	unsigned long v = 0;

	if (!*s)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > hi)
			return -1;
	}
	if (v < lo)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Brings the bounds asked for to the store's range, where a bound of 0
 * reads "no bound": sets *none when nothing the store can hold matches (an
 * end at or before the epoch, a start after API_STORE_MS_MAX), drops a
 * bound that lets everything of the range through (a start at or before
 * the epoch, an end after API_STORE_MS_MAX). Call after the order of the
 * bounds was checked on what was asked. */
static void to_store_range(int64_t start_ms, int *has_start, int64_t end_ms, int *has_end,
                           int *none)
{
	if ((*has_end && end_ms <= 0) || (*has_start && start_ms > API_STORE_MS_MAX))
		*none = 1;
	if (*has_start && start_ms <= 0)
		*has_start = 0;
	if (*has_end && end_ms > API_STORE_MS_MAX)
		*has_end = 0;
}

enum { P_START, P_END, P_VEHICLE, P_TYPE, P_LIMIT, P_COUNT };
static const char *const param_names[P_COUNT] = { "start", "end", "vehicle_id", "signal_type",
	                                          "limit" };

int api_log_query_parse(const char *qs, struct api_log_query *q, char *err, size_t errlen)
{
	static const char id_why[] = "must be 1 to 64 characters of A-Z a-z 0-9 _ . : -";
	static const char type_why[] = "must be FCR, AFRR or LOAD_SHEDDING";
	static const char limit_why[] = "must be an integer between 1 and 1000";
	struct raw raw[P_COUNT];
	char buf[API_ID_MAX + 2];
	int rc;

	memset(q, 0, sizeof(*q));
	q->signal_type = -1;
	q->limit = API_LOGS_LIMIT_DEFAULT;
	split_params(qs, param_names, P_COUNT, raw);

	rc = parse_time(&raw[P_START], "start", &q->start_ms, &q->has_start, err, errlen);
	if (rc)
		return rc;
	rc = parse_time(&raw[P_END], "end", &q->end_ms, &q->has_end, err, errlen);
	if (rc)
		return rc;
	if (q->has_start && q->has_end && q->start_ms > q->end_ms)
		return fail(err, errlen, "end", "must not be before start");
	to_store_range(q->start_ms, &q->has_start, q->end_ms, &q->has_end, &q->none);

	rc = param_value(&raw[P_VEHICLE], "vehicle_id", buf, sizeof(buf), id_why, err, errlen);
	if (rc)
		return rc;
	if (buf[0]) {
		if (!api_id_valid(buf))
			return fail(err, errlen, "vehicle_id", id_why);
		memcpy(q->vehicle_id, buf, strlen(buf) + 1);
	}

	rc = param_value(&raw[P_TYPE], "signal_type", buf, sizeof(buf), type_why, err, errlen);
	if (rc)
		return rc;
	if (buf[0] && (q->signal_type = v2g_signal_type_parse(buf, 1)) < 0)
		return fail(err, errlen, "signal_type", type_why);

	rc = param_value(&raw[P_LIMIT], "limit", buf, sizeof(buf), limit_why, err, errlen);
	if (rc)
		return rc;
	if (buf[0] && parse_uint(buf, 1, API_LOGS_LIMIT_MAX, &q->limit))
		return fail(err, errlen, "limit", limit_why);
	return 0;
}

/* --- audit ------------------------------------------------------------ */

enum { A_CATEGORY, A_START_DATE, A_START, A_END_DATE, A_END, A_LIMIT, A_COUNT };
static const char *const audit_names[A_COUNT] = { "category", "startDate", "start",
	                                          "endDate",  "end",       "limit" };

/* startDate (or its alias start): a date or an RFC 3339 time; end selects
 * the exclusive upper bound of a date. */
static int audit_date(const struct raw *raw, int i_main, int i_alias, int end, int64_t *ms,
                      int *has, char *err, size_t errlen)
{
	static const char why[] = "must be a date (YYYY-MM-DD) or an RFC 3339 time";
	const char *name = audit_names[i_main];
	const struct raw *r = &raw[i_main];
	char buf[64], msg[96];
	int rc;

	*has = 0;
	if (raw[i_main].p && raw[i_alias].p) {
		snprintf(msg, sizeof(msg), "give %s or %s, not both", audit_names[i_main],
		         audit_names[i_alias]);
		return fail(err, errlen, name, msg);
	}
	if (!r->p) {
		r = &raw[i_alias];
		name = audit_names[i_alias];
	}
	if ((rc = param_value(r, name, buf, sizeof(buf), why, err, errlen)))
		return rc;
	if (!buf[0])
		return 0;
	if (v2g_audit_parse_date(buf, end, ms))
		return fail(err, errlen, name, why);
	*has = 1;
	return 0;
}

int api_audit_query_parse(const char *qs, struct api_audit_query *q, char *err, size_t errlen)
{
	static const char cat_why[] =
	        "must be config_change, station_control, auth or load_management";
	static const char limit_why[] = "must be an integer between 1 and 1000";
	struct raw raw[A_COUNT];
	enum v2g_audit_category cat;
	char buf[40];
	int rc;

	memset(q, 0, sizeof(*q));
	q->limit = V2G_AUDIT_QUERY_DEFAULT_LIMIT;
	split_params(qs, audit_names, A_COUNT, raw);

	if ((rc = param_value(&raw[A_CATEGORY], "category", buf, sizeof(buf), cat_why, err,
	                      errlen)))
		return rc;
	if (buf[0]) {
		if (v2g_audit_category_parse(buf, &cat))
			return fail(err, errlen, "category", cat_why);
		snprintf(q->category, sizeof(q->category), "%s", v2g_audit_category_name(cat));
	}
	if ((rc = audit_date(raw, A_START_DATE, A_START, 0, &q->start_ms, &q->has_start, err,
	                     errlen)) ||
	    (rc = audit_date(raw, A_END_DATE, A_END, 1, &q->end_ms, &q->has_end, err, errlen)))
		return rc;
	/* the end is exclusive: an end at the start selects nothing */
	if (q->has_start && q->has_end && q->start_ms >= q->end_ms)
		return fail(err, errlen, raw[A_END_DATE].p ? "endDate" : "end",
		            "must come after the start");
	to_store_range(q->start_ms, &q->has_start, q->end_ms, &q->has_end, &q->none);
	if ((rc = param_value(&raw[A_LIMIT], "limit", buf, sizeof(buf), limit_why, err, errlen)))
		return rc;
	if (buf[0] && parse_uint(buf, 1, V2G_AUDIT_QUERY_MAX_LIMIT, &q->limit))
		return fail(err, errlen, "limit", limit_why);
	return 0;
}

int api_audit_stats_parse(const char *qs, unsigned *days, char *err, size_t errlen)
{
	static const char *const names[] = { "days" };
	static const char why[] = "must be an integer between 1 and 366";
	struct raw raw[1];
	char buf[16];
	int rc;

	*days = API_AUDIT_DAYS_DEFAULT;
	split_params(qs, names, 1, raw);
	if ((rc = param_value(&raw[0], "days", buf, sizeof(buf), why, err, errlen)))
		return rc;
	if (buf[0] && parse_uint(buf, 1, V2G_AUDIT_STATS_MAX_DAYS, days))
		return fail(err, errlen, "days", why);
	return 0;
}
