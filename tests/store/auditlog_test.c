/* The audit log's pure pieces: validating incoming events, INSERT
 * parameters and statement, rows read back -> the producer's JSON form,
 * the AuditQuery and AuditStatsQuery statements, and stats folded from
 * grouped rows with the in-memory log's semantics. The SQL itself runs in
 * the e2e suite. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/store/auditlog.h"
#include "../../services/store/migrations.h"
#include "../harness/harness.h"
#include "v2g/audit.h"
#include "v2g/err.h"

#define DAY  86400000LL
#define JAN1 1735689600000LL /* 2025-01-01T00:00:00Z */

static const struct v2g_audit_actor admin = { "user", "admin", "Admin User" };

/* A station control event at ts with details {"i": 1, "kw": 7.5}. */
static void station_event(struct v2g_audit_event *ev, int64_t ts)
{
	json_t *d = json_pack("{s:i, s:f}", "i", 1, "kw", 7.5);
	CHECK_INT(v2g_audit_station_control(ev, ts, &admin, "st-1", "set_power", d), 0);
	json_decref(d);
}

static void test_is_uuid(void)
{
	CHECK(store_audit_is_uuid("0f8fad5b-d9cb-469f-a165-70867728950e"));
	CHECK(store_audit_is_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
	CHECK(!store_audit_is_uuid("0f8fad5bd9cb469fa16570867728950e"));
	CHECK(!store_audit_is_uuid("0f8fad5b-d9cb-469f-a165-70867728950"));
	CHECK(!store_audit_is_uuid("0f8fad5b-d9cb-469f-a165-70867728950g"));
	CHECK(!store_audit_is_uuid("0f8fad5b-d9cb-469f-a165+70867728950e"));
	CHECK(!store_audit_is_uuid(""));
	CHECK(!store_audit_is_uuid(NULL));
}

static void test_decode_ok(void)
{
	struct v2g_audit_event src, ev;
	char err[200];
	station_event(&src, JAN1 + 123);
	char *js = v2g_audit_event_encode(&src);
	CHECK_INT(store_audit_decode(js, &ev, err, sizeof err), 0);
	CHECK_STR(ev.id, src.id);
	CHECK_INT(ev.ts_ms, JAN1 + 123);
	CHECK_INT(ev.category, V2G_AUDIT_STATION_CONTROL);
	CHECK_STR(ev.target, "st-1");
	CHECK_STR(ev.details, src.details);
	free(js);
	v2g_audit_event_fini(&ev);
	v2g_audit_event_fini(&src);
}

static void test_decode_rejects(void)
{
	struct v2g_audit_event ev;
	char err[200];
	const char *base =
	        "\"category\":\"auth\",\"action\":\"login\",\"actor\":{\"type\":\"user\"}";
	char js[512];

	CHECK_INT(store_audit_decode("{not json", &ev, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strstr(err, "not a valid audit event") != NULL);
	CHECK(ev.details == NULL && ev.id[0] == '\0');
	CHECK_INT(store_audit_decode(NULL, &ev, err, sizeof err), V2G_ERR_INVAL);
	CHECK(store_audit_decode("{\"category\":\"system\",\"action\":\"x\",\"ts_ms\":1,"
	                         "\"actor\":{\"type\":\"user\"}}",
	                         &ev, err, sizeof err) != 0);

	snprintf(js, sizeof js, "{%s,\"ts_ms\":1,\"id\":\"abc\"}", base);
	CHECK_INT(store_audit_decode(js, &ev, err, sizeof err), V2G_ERR_INVAL);
	CHECK_STR(err, "id: not a UUID");
	CHECK(ev.id[0] == '\0');

	/* After 9999-12-31: the timestamptz formatter cannot write it. */
	snprintf(js, sizeof js, "{%s,\"ts_ms\":253402300800000,\"details\":{\"a\":1}}", base);
	CHECK_INT(store_audit_decode(js, &ev, err, sizeof err), V2G_ERR_INVAL);
	CHECK_STR(err, "ts_ms: out of range");
	CHECK(ev.details == NULL); /* freed on the way out */

	/* No id: one is generated, as for the in-memory log. */
	snprintf(js, sizeof js, "{%s,\"ts_ms\":253402300799999}", base);
	CHECK_INT(store_audit_decode(js, &ev, err, sizeof err), 0);
	CHECK(store_audit_is_uuid(ev.id));
	v2g_audit_event_fini(&ev);
}

static void test_row_params(void)
{
	struct v2g_audit_event ev;
	struct store_audit_row r;
	station_event(&ev, JAN1 + 12 * 3600000LL + 5);
	store_audit_row_params(&ev, "site-dlm", &r);
	CHECK_STR(r.values[0], ev.id);
	CHECK_STR(r.values[1], "2025-01-01 12:00:00.005+00");
	CHECK_STR(r.values[2], "station_control");
	CHECK_STR(r.values[3], "set_power");
	CHECK_STR(r.values[4], "user");
	CHECK_STR(r.values[5], "admin");
	CHECK_STR(r.values[6], "Admin User");
	CHECK_STR(r.values[7], "st-1");
	CHECK_STR(r.values[8], "true");
	CHECK(r.values[9] == ev.details); /* a parameter, never spliced into SQL */
	CHECK_STR(r.values[10], "site-dlm");
	v2g_audit_event_fini(&ev);

	CHECK_INT(v2g_audit_error(&ev, JAN1, V2G_AUDIT_AUTH, "bad token"), 0);
	free(ev.details);
	ev.details = NULL;
	store_audit_row_params(&ev, NULL, &r);
	CHECK_STR(r.values[8], "false");
	CHECK(r.values[9] == NULL); /* no details: SQL NULL */
	CHECK_STR(r.values[10], "");
}

static void test_insert_sql(void)
{
	struct store_buf b = { 0 };
	CHECK_INT(store_audit_insert_sql(1, &b), 0);
	CHECK_STR(b.p, "INSERT INTO audit_log (id, ts, category, action, actor_type, actor_id,"
	               " actor_name, target, success, details, service) VALUES ($1::uuid,"
	               " $2::timestamptz, $3::text, $4::text, $5::text, $6::text, $7::text,"
	               " $8::text, $9::bool, $10::jsonb, $11::text) ON CONFLICT (id) DO NOTHING");
	CHECK_INT(store_audit_insert_sql(3, &b), 0);
	CHECK(strstr(b.p, "$11::text), ($12::uuid, $13::timestamptz") != NULL);
	CHECK(strstr(b.p, "$33::text) ON CONFLICT (id) DO NOTHING") != NULL);
	CHECK(strstr(b.p, "$34") == NULL);
	CHECK_INT(store_audit_insert_sql(STORE_AUDIT_ROWS_PER_INSERT, &b), 0);
	CHECK(strstr(b.p, "$5500::text)") != NULL);
	CHECK_INT(store_audit_insert_sql(0, &b), V2G_ERR_INVAL);
	CHECK_INT(store_audit_insert_sql(STORE_AUDIT_ROWS_PER_INSERT + 1, &b), V2G_ERR_INVAL);
	store_buf_free(&b);
}

/* A row as PostgreSQL prints it (DateStyle ISO, TimeZone UTC, jsonb text)
 * comes back as the producer's JSON, byte for byte. */
static void test_row_roundtrip(void)
{
	struct v2g_audit_event src, ev;
	station_event(&src, JAN1 + 123);
	char *want = v2g_audit_event_encode(&src);
	const char *v[STORE_AUDIT_NSELECT] = {
		src.id,
		"2025-01-01 00:00:00.123+00",
		"station_control",
		"set_power",
		"user",
		"admin",
		"Admin User",
		"st-1",
		"t",
		"{\"i\": 1, \"kw\": 7.5}",
	};
	int null[STORE_AUDIT_NSELECT] = { 0 };
	CHECK_INT(store_audit_event_from_row(v, null, &ev), 0);
	char *got = v2g_audit_event_encode(&ev);
	CHECK_STR(got, want);
	free(got);
	v2g_audit_event_fini(&ev);

	/* A failure with no details and no actor id or name. */
	const char *v2[STORE_AUDIT_NSELECT] = {
		src.id, "2025-01-01 00:00:00+00", "auth", "login", "api", "", "", "", "f", "",
	};
	int null2[STORE_AUDIT_NSELECT] = { 0, 0, 0, 0, 0, 1, 1, 1, 0, 1 };
	CHECK_INT(store_audit_event_from_row(v2, null2, &ev), 0);
	CHECK_INT(ev.ts_ms, JAN1);
	CHECK_INT(ev.success, 0);
	CHECK(ev.details == NULL);
	CHECK_STR(ev.actor.id, "");
	got = v2g_audit_event_encode(&ev);
	CHECK(strstr(got, "\"details\":{}") != NULL);
	CHECK(strstr(got, "\"success\":false") != NULL);
	free(got);
	v2g_audit_event_fini(&ev);

	/* NULL success reads as true (the decoder's default). */
	null2[8] = 1;
	CHECK_INT(store_audit_event_from_row(v2, null2, &ev), 0);
	CHECK_INT(ev.success, 1);
	free(want);
	v2g_audit_event_fini(&src);
}

/* jsonb prints numbers as numeric does: an integer wider than jansson's is
 * read as a real instead of failing the row. */
static void test_row_wide_number(void)
{
	struct v2g_audit_event ev;
	const char *v[STORE_AUDIT_NSELECT] = {
		"0f8fad5b-d9cb-469f-a165-70867728950e",
		"2025-01-01 00:00:00+00",
		"load_management",
		"shed",
		"system",
		"site-dlm",
		"DLM controller",
		"",
		"t",
		"{\"x\": 100000000000000000000000000000}",
	};
	int null[STORE_AUDIT_NSELECT] = { 0 };
	CHECK_INT(store_audit_event_from_row(v, null, &ev), 0);
	json_t *d = ev.details ? json_loads(ev.details, 0, NULL) : NULL;
	CHECK(json_is_real(json_object_get(d, "x")));
	CHECK_NEAR(json_real_value(json_object_get(d, "x")), 1e29, 1e14);
	json_decref(d);
	v2g_audit_event_fini(&ev);
}

/* Appends n copies of c to b. */
static void put_rep(char *b, size_t cap, char c, size_t n)
{
	size_t at = strlen(b);
	for (size_t i = 0; i < n && at + 1 < cap; i++)
		b[at++] = c;
	b[at] = '\0';
}

/* Details with numbers of every width, unicode and nesting come back from
 * the table as the producer built them (types and values; jsonb's key order
 * aside), though jsonb prints large and tiny reals as plain decimals: such a
 * number must not turn every other number of the object into a real (1 ->
 * 1.0, and INT64_MAX rounded to 9223372036854775808). The row text is what
 * PostgreSQL 15 printed for the producer's text (details::text). */
static void test_row_numbers_kept(void)
{
	json_t *src = json_pack("{s:s, s:{s:[i, f, {s:n, s:b}]}, s:I, s:I, s:i, s:f, s:f, s:f,"
	                        " s:f, s:f, s:f}",
	                        "u", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"\\\n", "nested", "a", 1,
	                        2.5, "b", "c", 1, "imax", (json_int_t)INT64_MAX, "imin",
	                        (json_int_t)INT64_MIN, "n", 3, "r20", 1e20, "r300", 1.5e300, "rmax",
	                        1.7976931348623157e308, "tiny", 1e-300, "tenth", 0.1, "r15", 1e15);
	static char row[2048];
	row[0] = '\0';
	strcat(row, "{\"n\": 3, \"u\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\\"\\\\\\n\","
	            " \"r15\": 1000000000000000.0, \"r20\": 1");
	put_rep(row, sizeof row, '0', 20);
	strcat(row, ", \"imax\": 9223372036854775807, \"imin\": -9223372036854775808,"
	            " \"r300\": 15000000000000001");
	put_rep(row, sizeof row, '0', 284);
	strcat(row, ", \"rmax\": 17976931348623157");
	put_rep(row, sizeof row, '0', 292);
	strcat(row, ", \"tiny\": 0.");
	put_rep(row, sizeof row, '0', 299);
	strcat(row, "1, \"tenth\": 0.10000000000000001,"
	            " \"nested\": {\"a\": [1, 2.5, {\"b\": null, \"c\": true}]}}");
	const char *v[STORE_AUDIT_NSELECT] = {
		"0f8fad5b-d9cb-469f-a165-70867728950e",
		"2025-01-01 00:00:00+00",
		"load_management",
		"shed",
		"system",
		"site-dlm",
		"DLM controller",
		"",
		"t",
		row,
	};
	int null[STORE_AUDIT_NSELECT] = { 0 };
	struct v2g_audit_event ev;
	CHECK_INT(store_audit_event_from_row(v, null, &ev), 0);
	json_t *got = ev.details ? json_loads(ev.details, 0, NULL) : NULL;
	CHECK(got != NULL);
	CHECK(json_is_integer(json_object_get(got, "n")));
	CHECK(json_integer_value(json_object_get(got, "imax")) == INT64_MAX);
	CHECK(json_is_integer(
	        json_array_get(json_object_get(json_object_get(got, "nested"), "a"), 0)));
	if (!json_equal(got, src))
		harness_fail(__FILE__, __LINE__, "details changed: %s", ev.details);
	json_decref(got);
	v2g_audit_event_fini(&ev);

	/* What jsonb cannot tell apart: a real of 17 or more integral digits
	 * (jansson writes 1e17, jsonb 100000000000000000) comes back as the
	 * integer of the same value. */
	v[9] = "{\"r17\": 100000000000000000}";
	CHECK_INT(store_audit_event_from_row(v, null, &ev), 0);
	CHECK_STR(ev.details, "{\"r17\":100000000000000000}");
	v2g_audit_event_fini(&ev);
	json_decref(src);
}

static void test_row_bad(void)
{
	struct v2g_audit_event ev;
	char long_action[100];
	memset(long_action, 'a', sizeof long_action - 1);
	long_action[sizeof long_action - 1] = '\0';
	const char *good[STORE_AUDIT_NSELECT] = {
		"0f8fad5b-d9cb-469f-a165-70867728950e",
		"2025-01-01 00:00:00+00",
		"auth",
		"login",
		"user",
		"u",
		"U",
		"u",
		"t",
		"{}",
	};
	int null[STORE_AUDIT_NSELECT] = { 0 };
	const char *v[STORE_AUDIT_NSELECT];
	struct {
		int col;
		const char *value;
		int rc;
	} cases[] = {
		{ 0, "not-a-uuid", V2G_ERR_INVAL }, { 1, "yesterday", V2G_ERR_INVAL },
		{ 2, "system", V2G_ERR_INVAL },     { 3, "", V2G_ERR_INVAL },
		{ 3, long_action, V2G_ERR_TOOBIG }, { 4, "", V2G_ERR_INVAL },
		{ 9, "[1, 2]", V2G_ERR_INVAL },     { 9, "{broken", V2G_ERR_INVAL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memcpy(v, good, sizeof v);
		v[cases[i].col] = cases[i].value;
		int rc = store_audit_event_from_row(v, null, &ev);
		if (rc != cases[i].rc)
			harness_fail(__FILE__, __LINE__, "case %zu (column %d = \"%.20s\"): rc %d",
			             i, cases[i].col, cases[i].value, rc);
		CHECK(ev.details == NULL && ev.id[0] == '\0');
	}
	memcpy(v, good, sizeof v);
	CHECK_INT(store_audit_event_from_row(v, null, &ev), 0);
	v2g_audit_event_fini(&ev);
}

static void test_query_defaults(void)
{
	V2g__V1__AuditQuery q = V2G__V1__AUDIT_QUERY__INIT;
	struct store_auditq o;
	char err[200];
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), 0);
	CHECK_INT(o.limit, 100);
	CHECK_INT(o.nparams, 1);
	CHECK_STR(o.values[0], "100");
	CHECK(strstr(o.sql, "FROM audit_log WHERE true ORDER BY ts DESC, received_at DESC,"
	                    " seq DESC LIMIT $1::int") != NULL);
	CHECK(strncmp(o.sql, "SELECT " STORE_AUDIT_SELECT_COLS " FROM", 20) == 0);
	q.limit = 5000;
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), 0);
	CHECK_INT(o.limit, 1000);
	CHECK_STR(o.values[0], "1000");
}

static void test_query_filters(void)
{
	V2g__V1__AuditQuery q = V2G__V1__AUDIT_QUERY__INIT;
	struct store_auditq o;
	char err[200];
	q.category = "station_control";
	q.start_ms = JAN1;
	q.end_ms = JAN1 + DAY + 7;
	q.limit = 5;
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), 0);
	CHECK_INT(o.nparams, 4);
	CHECK(o.values[0] == q.category);
	CHECK_STR(o.values[1], "2025-01-01 00:00:00.000+00");
	CHECK_STR(o.values[2], "2025-01-02 00:00:00.007+00");
	CHECK_STR(o.values[3], "5");
	CHECK(strstr(o.sql, "WHERE true AND category = $1 AND ts >= $2::timestamptz AND ts <"
	                    " $3::timestamptz ORDER BY") != NULL);
	CHECK(strstr(o.sql, "LIMIT $4::int") != NULL);

	q.category = "";
	q.start_ms = 0;
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), 0);
	CHECK_INT(o.nparams, 2);
	CHECK(strstr(o.sql, "WHERE true AND ts < $1::timestamptz ORDER BY") != NULL);
	q.start_ms = q.end_ms; /* an empty range is fine */
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), 0);
}

static void test_query_rejects(void)
{
	V2g__V1__AuditQuery q = V2G__V1__AUDIT_QUERY__INIT;
	struct store_auditq o;
	char err[200];
	q.category = "system'; DROP TABLE audit_log; --";
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strncmp(err, "category: unknown", 17) == 0);
	q.category = "";
	q.start_ms = -1;
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK_STR(err, "start_ms: out of range");
	q.start_ms = 0;
	q.end_ms = INT64_MAX;
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK_STR(err, "end_ms: out of range");
	q.start_ms = JAN1 + 1;
	q.end_ms = JAN1;
	CHECK_INT(store_auditq_build(&q, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK_STR(err, "start_ms: after end_ms");
}

static void test_stats_query(void)
{
	struct store_audit_statsq o;
	char err[200];
	int64_t now = JAN1 + 6 * DAY + 15 * 3600000LL; /* 2025-01-07T15:00Z */
	CHECK_INT(store_audit_statsq_build(7, now, &o, err, sizeof err), 0);
	CHECK_INT(o.days, 7);
	CHECK_INT(o.from_ms, JAN1);
	CHECK_INT(o.to_ms, JAN1 + 7 * DAY);
	CHECK_STR(o.values[0], "2025-01-01 00:00:00.000+00");
	CHECK_STR(o.values[1], "2025-01-08 00:00:00.000+00");
	CHECK_STR(o.values[2], "2025-01-01");
	CHECK_INT(store_audit_statsq_build(1, JAN1, &o, err, sizeof err), 0);
	CHECK_INT(o.from_ms, JAN1);
	CHECK_INT(o.to_ms, JAN1 + DAY);

	CHECK_INT(store_audit_statsq_build(0, now, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK_STR(err, "days: must be 1..366, got 0");
	CHECK_INT(store_audit_statsq_build(367, now, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK_INT(store_audit_statsq_build(366, now, &o, err, sizeof err), 0);
	CHECK_INT(store_audit_statsq_build(7, 3 * DAY, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK_STR(err, "now_ms: out of range");
	CHECK(strstr(store_audit_stats_sql, "$3::date") != NULL);
}

/* Folding rows grouped as the stats statement groups them (category, UTC
 * day index) gives v2g_audit_log_stats's answer for the same events. */
static void test_stats_match_memory(void)
{
	struct v2g_audit_log *log = v2g_audit_log_new(0);
	struct v2g_audit_stats want, got;
	struct store_audit_statsq sq;
	char err[200];
	int64_t now = JAN1 + 6 * DAY + 15 * 3600000LL;
	/* ts offsets: before the range, first day, each later day, tomorrow */
	const int64_t ts[] = {
		-1, 0, DAY - 1, DAY, 3 * DAY + 5, 6 * DAY, 6 * DAY + 15 * 3600000LL, 7 * DAY, -DAY
	};
	struct {
		const char *cat;
		long long day;
		uint64_t n, fail;
	} rows[32];
	size_t nrows = 0;

	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
		struct v2g_audit_event ev;
		if (i % 3 == 0)
			CHECK_INT(v2g_audit_error(&ev, JAN1 + ts[i], V2G_AUDIT_AUTH, "x"), 0);
		else
			station_event(&ev, JAN1 + ts[i]);
		CHECK_INT(v2g_audit_log_append(log, &ev), 0);
		/* what GROUP BY category, day yields (one row per event here) */
		if (JAN1 + ts[i] >= JAN1 && JAN1 + ts[i] < JAN1 + 7 * DAY) {
			rows[nrows].cat = v2g_audit_category_name(ev.category);
			rows[nrows].day = (ts[i]) / DAY;
			rows[nrows].n = 1;
			rows[nrows].fail = !ev.success;
			nrows++;
		}
		v2g_audit_event_fini(&ev);
	}
	CHECK_INT(v2g_audit_log_stats(log, now, 7, &want), 0);
	CHECK_INT(store_audit_statsq_build(7, now, &sq, err, sizeof err), 0);
	memset(&got, 0, sizeof got);
	got.days = sq.days;
	got.from_ms = sq.from_ms;
	for (size_t i = 0; i < nrows; i++)
		store_audit_stats_add(&got, rows[i].cat, rows[i].day, rows[i].n, rows[i].fail);
	CHECK_INT(got.from_ms, want.from_ms);
	CHECK_INT(got.total, want.total);
	CHECK_INT(got.total, 6);
	CHECK_INT(got.failures, want.failures);
	for (int c = 0; c < V2G_AUDIT_NCATEGORIES; c++)
		CHECK_INT(got.by_category[c], want.by_category[c]);
	for (int d = 0; d < 7; d++)
		CHECK_INT(got.by_day[d], want.by_day[d]);
	v2g_audit_log_free(log);

	/* An unknown category (a row written by hand) counts in the total only;
	 * a day index outside the range in no day. */
	memset(&got, 0, sizeof got);
	got.days = 2;
	store_audit_stats_add(&got, "maintenance", 0, 3, 1);
	store_audit_stats_add(&got, "auth", 2, 1, 0);
	store_audit_stats_add(&got, "auth", -1, 1, 0);
	CHECK_INT(got.total, 5);
	CHECK_INT(got.failures, 1);
	CHECK_INT(got.by_category[V2G_AUDIT_AUTH], 2);
	CHECK_INT(got.by_day[0], 3);
	CHECK_INT(got.by_day[1], 0);
}

static void test_migration(void)
{
	const struct store_migration *m = NULL;
	for (size_t i = 0; i < store_nmigrations; i++)
		if (strstr(store_migrations[i].sql, "CREATE TABLE audit_log"))
			m = &store_migrations[i];
	CHECK(m != NULL);
	if (!m)
		return;
	CHECK_INT(m->version, 2);
	CHECK(strstr(m->sql, "id uuid PRIMARY KEY") != NULL);
	CHECK(strstr(m->sql, "details jsonb") != NULL);
	CHECK(strstr(m->sql, "ON audit_log (ts)") != NULL);
	CHECK(strstr(m->sql, "ON audit_log (category, ts)") != NULL);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_is_uuid),         HCASE(test_decode_ok),
		HCASE(test_decode_rejects),  HCASE(test_row_params),
		HCASE(test_insert_sql),      HCASE(test_row_roundtrip),
		HCASE(test_row_wide_number), HCASE(test_row_numbers_kept),
		HCASE(test_row_bad),         HCASE(test_query_defaults),
		HCASE(test_query_filters),   HCASE(test_query_rejects),
		HCASE(test_stats_query),     HCASE(test_stats_match_memory),
		HCASE(test_migration),
	};
	return harness_main("store_auditlog", cases, HARNESS_N(cases));
}
