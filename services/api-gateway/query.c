#include "query.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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

enum { P_START, P_END, P_VEHICLE, P_TYPE, P_LIMIT, P_COUNT };
static const char *const param_names[P_COUNT] = { "start", "end", "vehicle_id", "signal_type",
	                                          "limit" };

static int fail(char *err, size_t errlen, const char *field, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", field, why);
	return V2G_ERR_INVAL;
}

/* Decodes the value of parameter i into buf. Returns 0 (buf "" when absent)
 * or V2G_ERR_INVAL with err set. */
static int param_value(const struct raw *r, int i, char *buf, size_t cap, const char *toolong,
                       char *err, size_t errlen)
{
	int rc;

	buf[0] = '\0';
	if (!r->p)
		return 0;
	rc = pct_decode(r->p, r->n, buf, cap);
	if (rc == -1)
		return fail(err, errlen, param_names[i], "bad percent-encoding");
	if (rc == -2)
		return fail(err, errlen, param_names[i], toolong);
	return 0;
}

static int parse_time(const struct raw *r, int i, int64_t *ms, int *has, char *err, size_t errlen)
{
	static const char why[] = "must be an RFC 3339 time";
	char buf[64];
	int rc = param_value(r, i, buf, sizeof(buf), why, err, errlen);

	*has = 0;
	if (rc)
		return rc;
	if (buf[0] == '\0')
		return 0;
	if (v2g_time_parse(buf, ms))
		return fail(err, errlen, param_names[i], why);
	*has = 1;
	return 0;
}

static int parse_limit(const char *s, unsigned *out)
{
	unsigned long v = 0;

	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > API_LOGS_LIMIT_MAX)
			return -1;
	}
	if (v < 1)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int api_log_query_parse(const char *qs, struct api_log_query *q, char *err, size_t errlen)
{
	static const char id_why[] = "must be 1 to 64 characters of A-Z a-z 0-9 _ . : -";
	static const char type_why[] = "must be FCR, AFRR or LOAD_SHEDDING";
	static const char limit_why[] = "must be an integer between 1 and 1000";
	struct raw raw[P_COUNT];
	char buf[API_ID_MAX + 2];
	int rc;

	memset(raw, 0, sizeof(raw));
	memset(q, 0, sizeof(*q));
	q->signal_type = -1;
	q->limit = API_LOGS_LIMIT_DEFAULT;

	/* Split into name=value pairs; remember the last raw value of ours. */
	for (const char *p = qs; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t seg = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', seg);
		size_t klen = eq ? (size_t)(eq - p) : seg;
		char key[32];

		/* A name we cannot decode is not one of ours: ignored. */
		if (klen > 0 && pct_decode(p, klen, key, sizeof(key)) == 0) {
			for (int i = 0; i < P_COUNT; i++) {
				if (!strcmp(key, param_names[i])) {
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
	for (int i = 0; i < P_COUNT; i++)
		if (raw[i].p && raw[i].n == 0)
			raw[i].p = NULL;

	rc = parse_time(&raw[P_START], P_START, &q->start_ms, &q->has_start, err, errlen);
	if (rc)
		return rc;
	rc = parse_time(&raw[P_END], P_END, &q->end_ms, &q->has_end, err, errlen);
	if (rc)
		return rc;
	if (q->has_start && q->has_end && q->start_ms > q->end_ms)
		return fail(err, errlen, "end", "must not be before start");

	rc = param_value(&raw[P_VEHICLE], P_VEHICLE, buf, sizeof(buf), id_why, err, errlen);
	if (rc)
		return rc;
	if (buf[0]) {
		if (!api_id_valid(buf))
			return fail(err, errlen, "vehicle_id", id_why);
		memcpy(q->vehicle_id, buf, strlen(buf) + 1);
	}

	rc = param_value(&raw[P_TYPE], P_TYPE, buf, sizeof(buf), type_why, err, errlen);
	if (rc)
		return rc;
	if (buf[0] && (q->signal_type = v2g_signal_type_parse(buf, 1)) < 0)
		return fail(err, errlen, "signal_type", type_why);

	rc = param_value(&raw[P_LIMIT], P_LIMIT, buf, sizeof(buf), limit_why, err, errlen);
	if (rc)
		return rc;
	if (buf[0] && parse_limit(buf, &q->limit))
		return fail(err, errlen, "limit", limit_why);
	return 0;
}
