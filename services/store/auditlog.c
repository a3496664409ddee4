#include "auditlog.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

#define DAY_MS 86400000LL

int store_audit_is_uuid(const char *s)
{
	static const char hex[] = "0123456789abcdefABCDEF";
	if (!s || strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!strchr(hex, s[i])) {
			return 0;
		}
	}
	return 1;
}

int store_audit_decode(const char *json, struct v2g_audit_event *ev, char *err, size_t len)
{
	char probe[STORE_TEXT_MAX];
	int rc = v2g_audit_event_decode(json, json ? strlen(json) : 0, ev);
	if (rc) {
		snprintf(err, len, "not a valid audit event: %s", v2g_strerror(rc));
		return rc;
	}
	if (!store_audit_is_uuid(ev->id)) {
		snprintf(err, len, "id: not a UUID");
		rc = V2G_ERR_INVAL;
	} else if (store_ms_to_pg(ev->ts_ms, probe, sizeof probe)) {
		snprintf(err, len, "ts_ms: out of range");
		rc = V2G_ERR_INVAL;
	}
	if (rc) {
		v2g_audit_event_fini(ev);
		memset(ev, 0, sizeof(*ev));
	}
	return rc;
}

void store_audit_row_params(const struct v2g_audit_event *ev, const char *service,
                            struct store_audit_row *r)
{
	memset(r->values, 0, sizeof r->values);
	store_ms_to_pg(ev->ts_ms, r->ts, sizeof r->ts); /* checked by store_audit_decode */
	r->values[0] = ev->id;
	r->values[1] = r->ts;
	r->values[2] = v2g_audit_category_name(ev->category);
	r->values[3] = ev->action;
	r->values[4] = ev->actor.type;
	r->values[5] = ev->actor.id;
	r->values[6] = ev->actor.name;
	r->values[7] = ev->target;
	r->values[8] = ev->success ? "true" : "false";
	r->values[9] = ev->details; /* NULL: SQL NULL */
	r->values[10] = service ? service : "";
}

int store_audit_insert_sql(size_t nrows, struct store_buf *out)
{
	/* Casts name every parameter's type: nothing is left to inference. */
	static const char *const casts[STORE_AUDIT_NCOLS] = {
		"uuid", "timestamptz", "text", "text",  "text", "text",
		"text", "text",        "bool", "jsonb", "text",
	};
	store_buf_reset(out);
	if (nrows == 0 || nrows > STORE_AUDIT_ROWS_PER_INSERT)
		return V2G_ERR_INVAL;
	int rc = store_buf_puts(out, "INSERT INTO audit_log (id, ts, category, action, actor_type,"
	                             " actor_id, actor_name, target, success, details, service)"
	                             " VALUES ");
	for (size_t i = 0; i < nrows && !rc; i++) {
		rc = store_buf_puts(out, i ? ", (" : "(");
		for (int c = 0; c < STORE_AUDIT_NCOLS && !rc; c++) {
			char p[32];
			snprintf(p, sizeof p, "%s$%zu::%s", c ? ", " : "",
			         i * STORE_AUDIT_NCOLS + (size_t)c + 1, casts[c]);
			rc = store_buf_puts(out, p);
		}
		rc = rc ? rc : store_buf_puts(out, ")");
	}
	rc = rc ? rc : store_buf_puts(out, " ON CONFLICT (id) DO NOTHING");
	return rc ? V2G_ERR_NOMEM : 0;
}

/* Copies a column into dst (NULL as ""). */
static int col_copy(char *dst, size_t cap, const char *v, int isnull)
{
	if (isnull || !v)
		v = "";
	size_t n = strlen(v);
	if (n >= cap)
		return V2G_ERR_TOOBIG;
	memcpy(dst, v, n + 1);
	return 0;
}

/* 1 when the integer literal s[0..n) does not fit a json_int_t. */
static int int_too_wide(const char *s, size_t n)
{
	int neg = s[0] == '-';
	/* INT64_MAX, and the magnitude of INT64_MIN */
	const char *max = neg ? "9223372036854775808" : "9223372036854775807";
	size_t m = strlen(max);
	s += neg;
	n -= (size_t)neg;
	if (n != m) /* jsonb writes no leading zeros */
		return n > m;
	return memcmp(s, max, m) > 0;
}

/* A copy of the JSON text in which each integer literal too wide for
 * jansson is written as a real ("…e0"), everything else untouched. jsonb
 * prints numbers as numeric does, so a real such as 1e20 or 1.5e300 comes
 * back as a plain run of digits; read as a whole with
 * JSON_DECODE_INT_AS_REAL it would turn every integer of the object into a
 * real (1 -> 1.0, INT64_MAX rounded). NULL when out of memory. */
static char *widen_big_ints(const char *text)
{
	size_t len = strlen(text), o = 0;
	char *out = malloc(len + len / 2 + 3); /* each number of >= 20 digits gains 2 */
	int in_str = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		char c = text[i];
		if (in_str) {
			out[o++] = c;
			i++;
			if (c == '\\' && i < len)
				out[o++] = text[i++];
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"')
			in_str = 1;
		if (c != '-' && (c < '0' || c > '9')) {
			out[o++] = c;
			i++;
			continue;
		}
		size_t n = strspn(text + i, "-+.0123456789eE");
		int integer = 1;
		for (size_t k = 0; k < n; k++)
			if (text[i + k] == '.' || text[i + k] == 'e' || text[i + k] == 'E')
				integer = 0;
		memcpy(out + o, text + i, n);
		o += n;
		if (integer && int_too_wide(text + i, n)) {
			out[o++] = 'e';
			out[o++] = '0';
		}
		i += n;
	}
	out[o] = '\0';
	return out;
}

/* jsonb text -> jansson's compact text of the object (what the producer's
 * encoder writes). jsonb prints numbers as numeric does: an integer too big
 * for jansson is read as the real it was written from (only that one). */
static int details_from_text(const char *text, char **out)
{
	*out = NULL;
	json_t *j = json_loads(text, 0, NULL);
	if (!j) {
		char *wide = widen_big_ints(text);
		if (!wide)
			return V2G_ERR_NOMEM;
		j = json_loads(wide, 0, NULL);
		free(wide);
	}
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return V2G_ERR_INVAL;
	}
	*out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return *out ? 0 : V2G_ERR_NOMEM;
}

static int from_row(const char *const *v, const int *null, struct v2g_audit_event *ev)
{
	int rc;
	if (null[0] || !store_audit_is_uuid(v[0]))
		return V2G_ERR_INVAL;
	memcpy(ev->id, v[0], 37);
	if (null[1] || store_pg_to_ms(v[1], &ev->ts_ms))
		return V2G_ERR_INVAL;
	if (null[2] || v2g_audit_category_parse(v[2], &ev->category))
		return V2G_ERR_INVAL;
	if ((rc = col_copy(ev->action, sizeof ev->action, v[3], null[3])) ||
	    (rc = col_copy(ev->actor.type, sizeof ev->actor.type, v[4], null[4])) ||
	    (rc = col_copy(ev->actor.id, sizeof ev->actor.id, v[5], null[5])) ||
	    (rc = col_copy(ev->actor.name, sizeof ev->actor.name, v[6], null[6])) ||
	    (rc = col_copy(ev->target, sizeof ev->target, v[7], null[7])))
		return rc;
	if (!ev->action[0] || !ev->actor.type[0])
		return V2G_ERR_INVAL;
	ev->success = null[8] || v[8][0] != 'f';
	return null[9] ? 0 : details_from_text(v[9], &ev->details);
}

int store_audit_event_from_row(const char *const values[STORE_AUDIT_NSELECT],
                               const int isnull[STORE_AUDIT_NSELECT], struct v2g_audit_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	int rc = from_row(values, isnull, ev);
	if (rc) {
		v2g_audit_event_fini(ev);
		memset(ev, 0, sizeof(*ev));
	}
	return rc;
}

/* Adds a text parameter and returns its number ($n). */
static int add_param(struct store_auditq *o, const char *value)
{
	o->values[o->nparams] = value;
	return ++o->nparams;
}

static int add_ms(struct store_auditq *o, int64_t ms)
{
	int i = o->nparams;
	store_ms_to_pg(ms, o->text[i], STORE_TEXT_MAX);
	return add_param(o, o->text[i]);
}

int store_auditq_build(const V2g__V1__AuditQuery *q, struct store_auditq *o, char *err, size_t len)
{
	char where[256] = "true", probe[STORE_TEXT_MAX];
	size_t w = strlen(where);
	enum v2g_audit_category cat;
	const char *category = q->category ? q->category : "";

	memset(o, 0, sizeof *o);
	if (category[0] && v2g_audit_category_parse(category, &cat)) {
		snprintf(err, len,
		         "category: unknown \"%.64s\" (config_change, station_control, auth,"
		         " load_management)",
		         category);
		return V2G_ERR_INVAL;
	}
	if (q->start_ms < 0 || store_ms_to_pg(q->start_ms, probe, sizeof probe)) {
		snprintf(err, len, "start_ms: out of range");
		return V2G_ERR_INVAL;
	}
	if (q->end_ms < 0 || store_ms_to_pg(q->end_ms, probe, sizeof probe)) {
		snprintf(err, len, "end_ms: out of range");
		return V2G_ERR_INVAL;
	}
	if (q->start_ms && q->end_ms && q->start_ms > q->end_ms) {
		snprintf(err, len, "start_ms: after end_ms");
		return V2G_ERR_INVAL;
	}
	o->limit = q->limit == 0                          ? V2G_AUDIT_QUERY_DEFAULT_LIMIT
	           : q->limit > V2G_AUDIT_QUERY_MAX_LIMIT ? V2G_AUDIT_QUERY_MAX_LIMIT
	                                                  : (int)q->limit;

	if (category[0])
		w += (size_t)snprintf(where + w, sizeof where - w, " AND category = $%d",
		                      add_param(o, category));
	if (q->start_ms > 0)
		w += (size_t)snprintf(where + w, sizeof where - w, " AND ts >= $%d::timestamptz",
		                      add_ms(o, q->start_ms));
	if (q->end_ms > 0)
		w += (size_t)snprintf(where + w, sizeof where - w, " AND ts < $%d::timestamptz",
		                      add_ms(o, q->end_ms));
	int i = o->nparams;
	snprintf(o->text[i], STORE_TEXT_MAX, "%d", o->limit);
	int lim = add_param(o, o->text[i]);
	snprintf(o->sql, sizeof o->sql,
	         "SELECT " STORE_AUDIT_SELECT_COLS " FROM audit_log WHERE %s"
	         " ORDER BY ts DESC, received_at DESC, seq DESC LIMIT $%d::int",
	         where, lim);
	return 0;
}

const char store_audit_stats_sql[] =
        "SELECT category, (ts AT TIME ZONE 'UTC')::date - $3::date, count(*),"
        " count(*) FILTER (WHERE success IS FALSE)"
        " FROM audit_log WHERE ts >= $1::timestamptz AND ts < $2::timestamptz"
        " GROUP BY 1, 2";

static int64_t day_start(int64_t ms)
{
	int64_t q = ms / DAY_MS;
	if (ms % DAY_MS != 0 && ms < 0)
		q--;
	return q * DAY_MS;
}

int store_audit_statsq_build(uint32_t days, int64_t now_ms, struct store_audit_statsq *o, char *err,
                             size_t len)
{
	memset(o, 0, sizeof *o);
	if (days < 1 || days > V2G_AUDIT_STATS_MAX_DAYS) {
		snprintf(err, len, "days: must be 1..%d, got %u", V2G_AUDIT_STATS_MAX_DAYS, days);
		return V2G_ERR_INVAL;
	}
	o->days = (int)days;
	o->from_ms = day_start(now_ms) - (int64_t)(days - 1) * DAY_MS;
	o->to_ms = day_start(now_ms) + DAY_MS;
	if (store_ms_to_pg(o->from_ms, o->text[0], STORE_TEXT_MAX) ||
	    store_ms_to_pg(o->to_ms, o->text[1], STORE_TEXT_MAX)) {
		snprintf(err, len, "now_ms: out of range");
		return V2G_ERR_INVAL;
	}
	memcpy(o->text[2], o->text[0], 10); /* "YYYY-MM-DD" */
	o->text[2][10] = '\0';
	for (int i = 0; i < 3; i++)
		o->values[i] = o->text[i];
	return 0;
}

void store_audit_stats_add(struct v2g_audit_stats *st, const char *category, long long day,
                           uint64_t count, uint64_t failures)
{
	enum v2g_audit_category c;
	st->total += count;
	st->failures += failures;
	if (category && v2g_audit_category_parse(category, &c) == 0)
		st->by_category[c] += count;
	if (day >= 0 && day < st->days && day < V2G_AUDIT_STATS_MAX_DAYS)
		st->by_day[day] += count;
}
