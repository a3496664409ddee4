/* Bus replies -> REST JSON: field names, JSON types, null handling. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/api-gateway/render.h"
#include "../harness/harness.h"
#include "v2g/audit.h"
#include "v2g/err.h"
#include "v2g/timeutil.h"

/* 2026-11-21T11:32:24.123Z and one minute later */
#define T0 1795260744123LL
#define T1 (T0 + 60000)

static json_t *parse(char *s)
{
	json_error_t e;
	json_t *j = s ? json_loads(s, 0, &e) : NULL;
	free(s);
	return j;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A complete, two-allocation decision on a borrowed signal. */
struct fixture {
	V2g__V1__Signal sig;
	V2g__V1__Allocation a0, a1;
	V2g__V1__Allocation *allocs[2];
	V2g__V1__DispatchDecision d;
};

static void fixture_init(struct fixture *f)
{
	V2g__V1__Signal sig = V2G__V1__SIGNAL__INIT;
	V2g__V1__Allocation a = V2G__V1__ALLOCATION__INIT;
	V2g__V1__DispatchDecision d = V2G__V1__DISPATCH_DECISION__INIT;

	f->sig = sig;
	f->sig.signal_id = "sig-1";
	f->sig.type = V2G__V1__SIGNAL_TYPE__SIGNAL_TYPE_AFRR;
	f->sig.power_kw = 50;
	f->sig.duration_min = 15;
	f->sig.timestamp_ms = T0;
	f->sig.source = "api";

	f->a0 = a;
	f->a0.vehicle_id = "veh-1";
	f->a0.power_kw = 7.2;
	f->a0.acked = 1;
	f->a1 = a;
	f->a1.vehicle_id = "veh-2";
	f->a1.power_kw = 3.5;
	f->a1.rejected = 1;
	f->a1.reallocated = 1;
	f->a1.reason = "low battery";
	f->a1.round = 1;
	f->allocs[0] = &f->a0;
	f->allocs[1] = &f->a1;

	f->d = d;
	f->d.dispatch_id = "disp-1";
	f->d.signal = &f->sig;
	f->d.status = V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PARTIAL;
	f->d.target_power_kw = 50;
	f->d.allocated_power_kw = 10.7;
	f->d.acked_power_kw = 7.2;
	f->d.shortfall_kw = 42.8;
	f->d.dispatcher = "smart";
	f->d.rounds = 2;
	f->d.n_allocations = 2;
	f->d.allocations = f->allocs;
	f->d.started_ms = T0;
	f->d.completed_ms = T1;
}

static void test_dispatch_fields(void)
{
	struct fixture f;
	json_t *j, *s, *al, *a0, *a1;

	fixture_init(&f);
	j = parse(api_render_dispatch(&f.d));
	CHECK(json_is_object(j));
	if (!j)
		return;
	CHECK_STR(str(j, "dispatch_id"), "disp-1");
	CHECK_STR(str(j, "status"), "partial");
	CHECK(json_is_real(json_object_get(j, "target_power_kw")));
	CHECK_NEAR(json_number_value(json_object_get(j, "target_power_kw")), 50, 1e-9);
	CHECK_NEAR(json_number_value(json_object_get(j, "allocated_power_kw")), 10.7, 1e-9);
	CHECK_NEAR(json_number_value(json_object_get(j, "acked_power_kw")), 7.2, 1e-9);
	CHECK_NEAR(json_number_value(json_object_get(j, "shortfall_kw")), 42.8, 1e-9);
	CHECK_STR(str(j, "dispatcher"), "smart");
	CHECK(json_is_integer(json_object_get(j, "rounds")));
	CHECK_INT(json_integer_value(json_object_get(j, "rounds")), 2);
	CHECK_STR(str(j, "started_at"), "2026-11-21T11:32:24.123Z");
	CHECK_STR(str(j, "completed_at"), "2026-11-21T11:33:24.123Z");

	s = json_object_get(j, "signal");
	CHECK(json_is_object(s));
	CHECK_STR(str(s, "signal_id"), "sig-1");
	CHECK_STR(str(s, "type"), "AFRR");
	CHECK(json_is_real(json_object_get(s, "power_kw")));
	CHECK_NEAR(json_number_value(json_object_get(s, "power_kw")), 50, 1e-9);
	CHECK(json_is_integer(json_object_get(s, "duration_min")));
	CHECK_INT(json_integer_value(json_object_get(s, "duration_min")), 15);
	CHECK_STR(str(s, "timestamp"), "2026-11-21T11:32:24.123Z");
	CHECK_STR(str(s, "source"), "api");
	CHECK(json_object_get(s, "market_price") == NULL);

	al = json_object_get(j, "allocations");
	CHECK(json_is_array(al));
	CHECK_INT(json_array_size(al), 2);
	a0 = json_array_get(al, 0);
	a1 = json_array_get(al, 1);
	CHECK_STR(str(a0, "vehicle_id"), "veh-1");
	CHECK_NEAR(json_number_value(json_object_get(a0, "power_kw")), 7.2, 1e-9);
	CHECK(json_is_true(json_object_get(a0, "acked")));
	CHECK(json_is_false(json_object_get(a0, "reallocated")));
	CHECK(json_is_false(json_object_get(a0, "rejected")));
	CHECK_STR(str(a0, "reason"), "");
	CHECK(json_is_integer(json_object_get(a0, "round")));
	CHECK_INT(json_integer_value(json_object_get(a0, "round")), 0);
	CHECK_STR(str(a1, "vehicle_id"), "veh-2");
	CHECK(json_is_false(json_object_get(a1, "acked")));
	CHECK(json_is_true(json_object_get(a1, "reallocated")));
	CHECK(json_is_true(json_object_get(a1, "rejected")));
	CHECK_STR(str(a1, "reason"), "low battery");
	CHECK_INT(json_integer_value(json_object_get(a1, "round")), 1);
	json_decref(j);
}

/* The exact top-level key set: nothing missing, nothing extra. */
static void test_dispatch_keys(void)
{
	static const char *const keys[] = { "dispatch_id",
		                            "signal",
		                            "status",
		                            "target_power_kw",
		                            "allocated_power_kw",
		                            "acked_power_kw",
		                            "shortfall_kw",
		                            "dispatcher",
		                            "rounds",
		                            "allocations",
		                            "started_at",
		                            "completed_at" };
	struct fixture f;
	json_t *j;

	fixture_init(&f);
	j = parse(api_render_dispatch(&f.d));
	CHECK(j != NULL);
	if (!j)
		return;
	CHECK_INT(json_object_size(j), sizeof(keys) / sizeof(keys[0]));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!json_object_get(j, keys[i]))
			harness_fail(__FILE__, __LINE__, "missing key %s", keys[i]);
	CHECK_INT(json_object_size(json_array_get(json_object_get(j, "allocations"), 0)), 7);
	CHECK_INT(json_object_size(json_object_get(j, "signal")), 6);
	json_decref(j);
}

static void test_dispatch_pending(void)
{
	struct fixture f;
	json_t *j;

	fixture_init(&f);
	f.d.status = V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PENDING;
	f.d.completed_ms = 0;
	j = parse(api_render_dispatch(&f.d));
	CHECK_STR(str(j, "status"), "pending");
	CHECK(json_is_null(json_object_get(j, "completed_at")));
	CHECK_STR(str(j, "started_at"), "2026-11-21T11:32:24.123Z");
	json_decref(j);

	/* Pending wins even if a completion time slipped in. */
	f.d.completed_ms = T1;
	j = parse(api_render_dispatch(&f.d));
	CHECK(json_is_null(json_object_get(j, "completed_at")));
	json_decref(j);
}

static void test_dispatch_statuses(void)
{
	static const char *const want[] = { "pending", "complete", "partial", "failed" };
	struct fixture f;

	fixture_init(&f);
	for (int s = 0; s < 4; s++) {
		json_t *j;
		f.d.status = (V2g__V1__DispatchStatus)s;
		j = parse(api_render_dispatch(&f.d));
		CHECK_STR(str(j, "status"), want[s]);
		json_decref(j);
	}
}

static void test_market_price(void)
{
	struct fixture f;
	json_t *j, *mp;

	fixture_init(&f);
	f.sig.market_price = 0.12;
	f.sig.has_market_price = 1;
	j = parse(api_render_dispatch(&f.d));
	mp = json_object_get(json_object_get(j, "signal"), "market_price");
	CHECK(json_is_real(mp));
	CHECK_NEAR(json_number_value(mp), 0.12, 1e-12);
	json_decref(j);

	/* A price of zero is a real price when flagged present. */
	f.sig.market_price = 0;
	j = parse(api_render_dispatch(&f.d));
	CHECK(json_is_real(json_object_get(json_object_get(j, "signal"), "market_price")));
	json_decref(j);

	f.sig.has_market_price = 0;
	f.sig.market_price = 0.3;
	j = parse(api_render_dispatch(&f.d));
	CHECK(json_object_get(json_object_get(j, "signal"), "market_price") == NULL);
	json_decref(j);
}

static void test_signal_types(void)
{
	static const char *const want[] = { "FCR", "AFRR", "LOAD_SHEDDING" };
	struct fixture f;

	fixture_init(&f);
	for (int t = 0; t < 3; t++) {
		json_t *j;
		f.sig.type = (V2g__V1__SignalType)t;
		j = parse(api_render_dispatch(&f.d));
		CHECK_STR(str(json_object_get(j, "signal"), "type"), want[t]);
		json_decref(j);
	}
	CHECK(api_signal_type_name(3) == NULL);
	CHECK(api_signal_type_name(-1) == NULL);
	CHECK(api_status_name(4) == NULL);
}

/* Odd inputs still give valid JSON: no signal, no allocations, NaN. */
static void test_dispatch_degenerate(void)
{
	V2g__V1__DispatchDecision d = V2G__V1__DISPATCH_DECISION__INIT;
	json_t *j;

	d.dispatch_id = "x";
	d.target_power_kw = NAN;
	d.status = V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_FAILED;
	j = parse(api_render_dispatch(&d));
	CHECK(json_is_object(j));
	CHECK(json_is_null(json_object_get(j, "signal")));
	CHECK(json_is_null(json_object_get(j, "target_power_kw")));
	CHECK(json_is_array(json_object_get(j, "allocations")));
	CHECK_INT(json_array_size(json_object_get(j, "allocations")), 0);
	CHECK(json_is_null(json_object_get(j, "started_at")));
	CHECK(json_is_null(json_object_get(j, "completed_at")));
	json_decref(j);
}

static void test_logs(void)
{
	V2g__V1__LogRecord r0 = V2G__V1__LOG_RECORD__INIT, r1 = V2G__V1__LOG_RECORD__INIT;
	V2g__V1__LogRecord *recs[2] = { &r0, &r1 };
	V2g__V1__Allocation a = V2G__V1__ALLOCATION__INIT;
	V2g__V1__Allocation *allocs[1] = { &a };
	V2g__V1__LogReply rep = V2G__V1__LOG_REPLY__INIT;
	json_t *j, *o;

	a.vehicle_id = "v1";
	a.power_kw = 11;
	a.acked = 1;
	r0.dispatch_id = "d0";
	r0.signal_id = "s0";
	r0.signal_type = 2;
	r0.target_power_kw = 11;
	r0.allocated_power_kw = 11;
	r0.acked_power_kw = 11;
	r0.status = V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_COMPLETE;
	r0.dispatcher = "equal";
	r0.started_ms = T0;
	r0.completed_ms = T1;
	r0.n_allocations = 1;
	r0.allocations = allocs;
	r1.dispatch_id = "d1";
	r1.signal_id = "s1";
	r1.status = V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PENDING;
	r1.started_ms = T1;
	rep.n_records = 2;
	rep.records = recs;

	j = parse(api_render_logs(&rep));
	CHECK(json_is_array(j));
	CHECK_INT(json_array_size(j), 2);
	o = json_array_get(j, 0);
	CHECK_INT(json_object_size(o), 11);
	CHECK_STR(str(o, "dispatch_id"), "d0");
	CHECK_STR(str(o, "signal_id"), "s0");
	CHECK_STR(str(o, "signal_type"), "LOAD_SHEDDING");
	CHECK_NEAR(json_number_value(json_object_get(o, "target_power_kw")), 11, 1e-9);
	CHECK(json_is_real(json_object_get(o, "allocated_power_kw")));
	CHECK(json_is_real(json_object_get(o, "acked_power_kw")));
	CHECK_STR(str(o, "status"), "complete");
	CHECK_STR(str(o, "dispatcher"), "equal");
	CHECK_STR(str(o, "started_at"), "2026-11-21T11:32:24.123Z");
	CHECK_STR(str(o, "completed_at"), "2026-11-21T11:33:24.123Z");
	CHECK_INT(json_array_size(json_object_get(o, "allocations")), 1);
	CHECK_STR(str(json_array_get(json_object_get(o, "allocations"), 0), "vehicle_id"), "v1");
	o = json_array_get(j, 1);
	CHECK_STR(str(o, "signal_type"), "FCR");
	CHECK_STR(str(o, "status"), "pending");
	CHECK(json_is_null(json_object_get(o, "completed_at")));
	CHECK_STR(str(o, "dispatcher"), "");
	json_decref(j);

	/* No records: an empty array, not null. */
	rep.n_records = 0;
	rep.records = NULL;
	j = parse(api_render_logs(&rep));
	CHECK(json_is_array(j));
	CHECK_INT(json_array_size(j), 0);
	json_decref(j);
}

static void test_submit(void)
{
	V2g__V1__SubmitSignalReply r = V2G__V1__SUBMIT_SIGNAL_REPLY__INIT;
	char *s;

	r.signal_id = "s-1";
	r.dispatch_id = "d-1";
	s = api_render_submit(&r);
	CHECK_STR(s, "{\"signal_id\":\"s-1\",\"dispatch_id\":\"d-1\"}");
	free(s);
}

/* A numeric field renders without float noise (0.1 + 0.2 -> 0.3). */
static void test_number_format(void)
{
	struct fixture f;
	char *s;

	fixture_init(&f);
	f.d.acked_power_kw = 0.1 + 0.2;
	s = api_render_dispatch(&f.d);
	CHECK(s && strstr(s, "\"acked_power_kw\":0.3,") != NULL);
	free(s);
}

/* --- audit and DLM replies -------------------------------------------- */

/* Two real events as the store keeps them (v2g_audit_event_encode). */
static void test_audit_logs(void)
{
	struct v2g_audit_event ev[2];
	struct v2g_audit_actor who = { "api", "bearer", "10.1.2.3" };
	V2g__V1__AuditReply r = V2G__V1__AUDIT_REPLY__INIT;
	char *texts[2], *out = NULL;
	json_t *j, *evs;

	memset(ev, 0, sizeof(ev));
	CHECK_INT(v2g_audit_auth(&ev[0], T1, "login_failed", &who, 0, NULL), 0);
	CHECK_INT(v2g_audit_station_control(&ev[1], T0, NULL, "ac-01", "set_power", NULL), 0);
	texts[0] = v2g_audit_event_encode(&ev[0]);
	texts[1] = v2g_audit_event_encode(&ev[1]);
	r.n_events_json = 2;
	r.events_json = texts;
	CHECK_INT(api_render_audit_logs(&r, &out), 0);
	j = parse(out);
	CHECK(j != NULL);
	CHECK_INT(json_integer_value(json_object_get(j, "count")), 2);
	evs = json_object_get(j, "events");
	CHECK_INT(json_array_size(evs), 2);
	/* the same objects as v2g_audit_events_to_json's, in the store's order */
	json_t *want = v2g_audit_events_to_json(ev, 2);
	CHECK(json_equal(j, want));
	CHECK_STR(str(json_array_get(evs, 0), "action"), "login_failed");
	CHECK_STR(str(json_object_get(json_array_get(evs, 0), "actor"), "name"), "10.1.2.3");
	CHECK_STR(str(json_array_get(evs, 1), "target"), "ac-01");
	json_decref(want);
	json_decref(j);

	/* none */
	r.n_events_json = 0;
	CHECK_INT(api_render_audit_logs(&r, &out), 0);
	CHECK_STR(out, "{\"count\":0,\"events\":[]}");
	free(out);

	/* an event that is not an object: not relayed */
	char *badv[] = { texts[0], "[1,2]" };
	r.n_events_json = 2;
	r.events_json = badv;
	CHECK_INT(api_render_audit_logs(&r, &out), V2G_ERR_PROTO);
	CHECK(out == NULL);
	badv[1] = "{\"a\":";
	CHECK_INT(api_render_audit_logs(&r, &out), V2G_ERR_PROTO);
	free(texts[0]);
	free(texts[1]);
	v2g_audit_event_fini(&ev[0]);
	v2g_audit_event_fini(&ev[1]);
}

/* An event's details are relayed as the store has them: a real that needs
 * 17 digits keeps them (the dispatch renderings round to 15), integers of
 * every width stay integers. */
static void test_audit_logs_numbers_kept(void)
{
	struct v2g_audit_event ev;
	V2g__V1__AuditReply r = V2G__V1__AUDIT_REPLY__INIT;
	char *text, *out = NULL;
	json_t *d = json_pack("{s:f, s:f, s:f, s:I, s:{s:[f]}}", "sum", 0.1 + 0.2, "kw",
	                      1.2345678901234567, "big", 1.7976931348623157e308, "n",
	                      (json_int_t)INT64_MAX, "nested", "a", 2.0000000000000004);

	CHECK_INT(v2g_audit_station_control(&ev, T0, NULL, "ac-01", "set_power", d), 0);
	text = v2g_audit_event_encode(&ev);
	r.n_events_json = 1;
	r.events_json = &text;
	CHECK_INT(api_render_audit_logs(&r, &out), 0);
	CHECK(out && strstr(out, "\"sum\":0.30000000000000004") != NULL);
	json_t *j = parse(out);
	json_t *got = json_object_get(json_array_get(json_object_get(j, "events"), 0), "details");
	if (!json_equal(got, d)) {
		char *s = json_dumps(got, JSON_COMPACT);
		harness_fail(__FILE__, __LINE__, "details changed: %s", s ? s : "(none)");
		free(s);
	}
	json_decref(j);
	json_decref(d);
	free(text);
	v2g_audit_event_fini(&ev);
}

static void test_audit_stats(void)
{
	uint64_t cats[4] = { 1, 2, 3, 4 }, days[3] = { 0, 6, 4 };
	V2g__V1__AuditStatsReply r = V2G__V1__AUDIT_STATS_REPLY__INIT;
	char *out = NULL;
	json_t *j, *bd;

	r.days = 3;
	r.from_ms = 1735689600000LL; /* 2025-01-01 */
	r.total = 10;
	r.failures = 3;
	r.n_by_category = 4;
	r.by_category = cats;
	r.n_by_day = 3;
	r.by_day = days;
	CHECK_INT(api_render_audit_stats(&r, 3, &out), 0);
	j = parse(out);
	CHECK(j != NULL);
	CHECK_INT(json_integer_value(json_object_get(j, "days")), 3);
	CHECK_STR(str(j, "from"), "2025-01-01");
	CHECK_STR(str(j, "to"), "2025-01-03");
	CHECK_INT(json_integer_value(json_object_get(j, "total")), 10);
	CHECK_INT(json_integer_value(json_object_get(j, "failures")), 3);
	CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "by_category"), "auth")),
	          3);
	CHECK_INT(json_integer_value(
	                  json_object_get(json_object_get(j, "by_category"), "load_management")),
	          4);
	bd = json_object_get(j, "by_day");
	CHECK_INT(json_object_size(bd), 3);
	CHECK_INT(json_integer_value(json_object_get(bd, "2025-01-02")), 6);
	json_decref(j);

	/* fewer categories than we know: the others are 0 */
	r.n_by_category = 1;
	CHECK_INT(api_render_audit_stats(&r, 3, &out), 0);
	j = parse(out);
	CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "by_category"), "auth")),
	          0);
	json_decref(j);
	/* not what was asked */
	CHECK_INT(api_render_audit_stats(&r, 7, &out), V2G_ERR_PROTO);
	r.n_by_day = 2;
	CHECK_INT(api_render_audit_stats(&r, 3, &out), V2G_ERR_PROTO);
	r.n_by_day = 3;
	r.n_by_category = 5;
	CHECK_INT(api_render_audit_stats(&r, 3, &out), V2G_ERR_PROTO);
	r.n_by_category = 4;
	r.days = 0;
	r.n_by_day = 0;
	CHECK_INT(api_render_audit_stats(&r, 0, &out), V2G_ERR_PROTO);
}

static void test_dlm_reply_check(void)
{
	V2g__V1__DlmReply r = V2G__V1__DLM_REPLY__INIT;

	r.status = 200;
	r.body_json = "{\"running\":true}";
	CHECK_INT(api_dlm_reply_check(&r), 0);
	r.status = 404;
	r.body_json = "{\"error\":\"no such station: x\"}";
	CHECK_INT(api_dlm_reply_check(&r), 0);
	r.status = 599;
	CHECK_INT(api_dlm_reply_check(&r), 0);
	r.status = 600;
	CHECK_INT(api_dlm_reply_check(&r), V2G_ERR_PROTO);
	r.status = 0;
	CHECK_INT(api_dlm_reply_check(&r), V2G_ERR_PROTO);
	r.status = 101;
	CHECK_INT(api_dlm_reply_check(&r), V2G_ERR_PROTO);
	r.status = 200;
	static const char *const bad[] = { "", "[]", "\"x\"", "42", "{", "{} x", "null" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.body_json = (char *)bad[i];
		if (api_dlm_reply_check(&r) != V2G_ERR_PROTO)
			harness_fail(__FILE__, __LINE__, "body %s accepted", bad[i]);
	}
	CHECK_INT(api_dlm_reply_check(NULL), V2G_ERR_PROTO);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_dispatch_fields),
		HCASE(test_dispatch_keys),
		HCASE(test_dispatch_pending),
		HCASE(test_dispatch_statuses),
		HCASE(test_market_price),
		HCASE(test_signal_types),
		HCASE(test_dispatch_degenerate),
		HCASE(test_logs),
		HCASE(test_submit),
		HCASE(test_number_format),
		HCASE(test_audit_logs),
		HCASE(test_audit_logs_numbers_kept),
		HCASE(test_audit_stats),
		HCASE(test_dlm_reply_check),
	};
	return harness_main("api-render", cases, HARNESS_N(cases));
}
