/* Audit events: the guide's four log calls and logError, the JSON form and
 * its validation, the bounded log's query by category/date/limit and its
 * stats over N days. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "v2g/audit.h"
#include "v2g/err.h"

#define DAY  86400000LL
#define JAN1 1735689600000LL /* 2025-01-01T00:00:00Z */

static const struct v2g_audit_actor admin = { "user", "admin", "Admin User" };

static json_t *details_of(const struct v2g_audit_event *ev)
{
	return ev->details ? json_loads(ev->details, 0, NULL) : NULL;
}

static void test_category_names(void)
{
	CHECK_STR(v2g_audit_category_name(V2G_AUDIT_CONFIG_CHANGE), "config_change");
	CHECK_STR(v2g_audit_category_name(V2G_AUDIT_STATION_CONTROL), "station_control");
	CHECK_STR(v2g_audit_category_name(V2G_AUDIT_AUTH), "auth");
	CHECK_STR(v2g_audit_category_name(V2G_AUDIT_LOAD_MANAGEMENT), "load_management");
	enum v2g_audit_category c;
	CHECK_INT(v2g_audit_category_parse("auth", &c), 0);
	CHECK_INT(c, V2G_AUDIT_AUTH);
	CHECK_INT(v2g_audit_category_parse("system", &c), V2G_ERR_INVAL);
}

static void test_config_change(void)
{
	/* logConfigChange({type:'user',id:'admin',name:'Admin User'},
	 *                 'max_grid_capacity', {old: 100, new: 150}) */
	struct v2g_audit_event ev;
	json_t *ch = json_pack("{s:i, s:i}", "old", 100, "new", 150);
	CHECK_INT(v2g_audit_config_change(&ev, JAN1, &admin, "max_grid_capacity", ch), 0);
	json_decref(ch);
	CHECK_INT(ev.category, V2G_AUDIT_CONFIG_CHANGE);
	CHECK_STR(ev.action, "config_update");
	CHECK_STR(ev.target, "max_grid_capacity");
	CHECK_STR(ev.actor.type, "user");
	CHECK_STR(ev.actor.id, "admin");
	CHECK_STR(ev.actor.name, "Admin User");
	CHECK_INT(ev.success, 1);
	CHECK_INT(ev.ts_ms, JAN1);
	CHECK_INT(strlen(ev.id), 36);
	json_t *d = details_of(&ev);
	CHECK_INT(json_integer_value(json_object_get(d, "old")), 100);
	CHECK_INT(json_integer_value(json_object_get(d, "new")), 150);
	json_decref(d);
	struct v2g_audit_event ev2;
	CHECK_INT(v2g_audit_config_change(&ev2, JAN1, &admin, "k", NULL), 0);
	CHECK(strcmp(ev.id, ev2.id) != 0); /* each event its own id */
	CHECK(ev2.details == NULL);
	v2g_audit_event_fini(&ev);
	v2g_audit_event_fini(&ev2);
}

static void test_station_control(void)
{
	/* logStationControl({type:'user',id:'admin'}, 'station_1', 'set_power',
	 * {power: 7.4}) */
	struct v2g_audit_actor a = { "user", "admin", "" };
	struct v2g_audit_event ev;
	json_t *p = json_pack("{s:f}", "power", 7.4);
	CHECK_INT(v2g_audit_station_control(&ev, JAN1, &a, "station_1", "set_power", p), 0);
	json_decref(p);
	CHECK_INT(ev.category, V2G_AUDIT_STATION_CONTROL);
	CHECK_STR(ev.action, "set_power");
	CHECK_STR(ev.target, "station_1");
	json_t *d = details_of(&ev);
	CHECK_NEAR(json_real_value(json_object_get(d, "power")), 7.4, 1e-9);
	json_decref(d);
	v2g_audit_event_fini(&ev);
}

static void test_auth(void)
{
	/* logAuth('login', user, true, {ip: req.ip}) */
	struct v2g_audit_event ev;
	json_t *m = json_pack("{s:s}", "ip", "10.0.0.7");
	CHECK_INT(v2g_audit_auth(&ev, JAN1, "login", &admin, 1, m), 0);
	CHECK_INT(ev.category, V2G_AUDIT_AUTH);
	CHECK_STR(ev.action, "login");
	CHECK_STR(ev.target, "admin");
	CHECK_INT(ev.success, 1);
	v2g_audit_event_fini(&ev);
	CHECK_INT(v2g_audit_auth(&ev, JAN1, "login", &admin, 0, m), 0);
	CHECK_INT(ev.success, 0);
	v2g_audit_event_fini(&ev);
	CHECK_INT(v2g_audit_auth(&ev, JAN1, "login", NULL, 1, m), V2G_ERR_INVAL);
	json_decref(m);
}

static void test_load_management_and_error(void)
{
	/* logLoadManagement({action:'redistribute', stationsAffected:5,
	 * totalPowerChange:10}) */
	struct v2g_audit_event ev;
	json_t *d = json_pack("{s:i, s:i, s:s}", "stationsAffected", 5, "totalPowerChange", 10,
	                      "site", "site-7");
	CHECK_INT(v2g_audit_load_management(&ev, JAN1, "redistribute", d), 0);
	json_decref(d);
	CHECK_INT(ev.category, V2G_AUDIT_LOAD_MANAGEMENT);
	CHECK_STR(ev.action, "redistribute");
	CHECK_STR(ev.actor.type, "system");
	CHECK_STR(ev.target, "site-7");
	d = details_of(&ev);
	CHECK_INT(json_integer_value(json_object_get(d, "stationsAffected")), 5);
	json_decref(d);
	v2g_audit_event_fini(&ev);

	/* logError('load_management', error) */
	CHECK_INT(v2g_audit_error(&ev, JAN1, V2G_AUDIT_LOAD_MANAGEMENT, "balance failed"), 0);
	CHECK_STR(ev.action, "error");
	CHECK_INT(ev.success, 0);
	d = details_of(&ev);
	CHECK_STR(json_string_value(json_object_get(d, "error")), "balance failed");
	json_decref(d);
	v2g_audit_event_fini(&ev);
}

static void test_constructor_validation(void)
{
	struct v2g_audit_event ev;
	json_t *arr = json_array();
	CHECK_INT(v2g_audit_station_control(&ev, 0, &admin, "s1", "", NULL), V2G_ERR_INVAL);
	CHECK_INT(v2g_audit_station_control(&ev, 0, &admin, "s1", "x", arr), V2G_ERR_INVAL);
	CHECK_INT(v2g_audit_station_control(&ev, 0, &admin, NULL, "x", NULL), V2G_ERR_INVAL);
	CHECK_INT(v2g_audit_config_change(&ev, 0, &admin, "", NULL), V2G_ERR_INVAL);
	struct v2g_audit_actor noname = { "", "x", "" };
	CHECK_INT(v2g_audit_config_change(&ev, 0, &noname, "k", NULL), V2G_ERR_INVAL);
	char big[300];
	memset(big, 's', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CHECK_INT(v2g_audit_station_control(&ev, 0, &admin, big, "x", NULL), V2G_ERR_TOOBIG);
	CHECK(ev.details == NULL && ev.action[0] == 0); /* zeroed on error */
	char *huge = malloc(V2G_AUDIT_DETAILS_MAX + 10);
	memset(huge, 'h', V2G_AUDIT_DETAILS_MAX + 9);
	huge[V2G_AUDIT_DETAILS_MAX + 9] = 0;
	json_t *hd = json_pack("{s:s}", "blob", huge);
	CHECK_INT(v2g_audit_station_control(&ev, 0, &admin, "s1", "x", hd), V2G_ERR_TOOBIG);
	CHECK_INT(v2g_audit_error(&ev, 0, (enum v2g_audit_category)9, "x"), V2G_ERR_INVAL);
	json_decref(hd);
	free(huge);
	json_decref(arr);
}

static void test_json_round_trip(void)
{
	struct v2g_audit_event ev, back;
	json_t *p = json_pack("{s:f, s:[i,i]}", "power", 7.4, "phases", 1, 3);
	CHECK_INT(v2g_audit_station_control(&ev, JAN1 + 12 * 3600000LL, &admin, "station_1",
	                                    "set_power", p),
	          0);
	json_decref(p);
	char *s = v2g_audit_event_encode(&ev);
	CHECK(s != NULL);
	json_t *j = json_loads(s, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(j, "timestamp")), "2025-01-01T12:00:00.000Z");
	CHECK_STR(json_string_value(json_object_get(j, "category")), "station_control");
	CHECK(json_is_true(json_object_get(j, "success")));
	json_decref(j);
	CHECK_INT(v2g_audit_event_decode(s, strlen(s), &back), 0);
	free(s);
	CHECK_STR(back.id, ev.id);
	CHECK_INT(back.ts_ms, ev.ts_ms);
	CHECK_INT(back.category, ev.category);
	CHECK_STR(back.action, ev.action);
	CHECK_STR(back.actor.type, "user");
	CHECK_STR(back.actor.id, "admin");
	CHECK_STR(back.actor.name, "Admin User");
	CHECK_STR(back.target, "station_1");
	CHECK_STR(back.details, ev.details);
	CHECK_INT(back.success, 1);
	v2g_audit_event_fini(&ev);
	v2g_audit_event_fini(&back);
}

static int decode_str(const char *s, struct v2g_audit_event *ev)
{
	int rc = v2g_audit_event_decode(s, strlen(s), ev);
	return rc;
}

static void test_decode_validation(void)
{
	struct v2g_audit_event ev;
	const char *ok = "{\"category\":\"auth\",\"action\":\"login\",\"ts_ms\":1000,"
	                 "\"actor\":{\"type\":\"user\",\"id\":\"u1\"}}";
	CHECK_INT(decode_str(ok, &ev), 0);
	CHECK_INT(strlen(ev.id), 36); /* generated */
	CHECK_INT(ev.success, 1);     /* default */
	CHECK(ev.details == NULL);
	CHECK_STR(ev.target, "");
	v2g_audit_event_fini(&ev);

	CHECK_INT(decode_str("{\"category\":\"auth\",\"action\":\"login\","
	                     "\"timestamp\":\"2025-01-01T00:00:01Z\",\"actor\":{\"type\":\"api\"},"
	                     "\"success\":false,\"details\":{\"ip\":\"1.2.3.4\"}}",
	                     &ev),
	          0);
	CHECK_INT(ev.ts_ms, JAN1 + 1000);
	CHECK_INT(ev.success, 0);
	CHECK_STR(ev.details, "{\"ip\":\"1.2.3.4\"}");
	v2g_audit_event_fini(&ev);

	static const char *const bad[] = {
		"not json",
		"[]",
		"{\"action\":\"a\",\"ts_ms\":1,\"actor\":{\"type\":\"u\"}}",
		"{\"category\":\"system\",\"action\":\"a\",\"ts_ms\":1,\"actor\":{"
		"\"type\":\"u\"}}",
		"{\"category\":\"auth\",\"action\":\"\",\"ts_ms\":1,\"actor\":{\"type\":"
		"\"u\"}}",
		"{\"category\":\"auth\",\"action\":7,\"ts_ms\":1,\"actor\":{\"type\":"
		"\"u\"}}",
		"{\"category\":\"auth\",\"action\":\"a\",\"actor\":{\"type\":\"u\"}}",
		"{\"category\":\"auth\",\"action\":\"a\",\"ts_ms\":-1,\"actor\":{"
		"\"type\":\"u\"}}",
		"{\"category\":\"auth\",\"action\":\"a\",\"ts_ms\":\"1\",\"actor\":{"
		"\"type\":\"u\"}}",
		"{\"category\":\"auth\",\"action\":\"a\",\"timestamp\":\"yesterday\","
		"\"actor\":{\"type\":\"u\"}}",
		"{\"category\":\"auth\",\"action\":\"a\",\"ts_ms\":1}",
		"{\"category\":\"auth\",\"action\":\"a\",\"ts_ms\":1,\"actor\":{\"id\":"
		"\"x\"}}",
		"{\"category\":\"auth\",\"action\":\"a\",\"ts_ms\":1,\"actor\":{\"type\":"
		"\"u\"},"
		"\"success\":1}",
		"{\"category\":\"auth\",\"action\":\"a\",\"ts_ms\":1,\"actor\":{\"type\":"
		"\"u\"},"
		"\"details\":[1]}",
		"{\"category\":\"auth\",\"action\":\"a\",\"ts_ms\":1,\"actor\":{\"type\":"
		"\"u\"},"
		"\"target\":5}",
	};
	for (size_t i = 0; i < HARNESS_N(bad); i++) {
		int rc = decode_str(bad[i], &ev);
		if (rc != V2G_ERR_INVAL)
			harness_fail(__FILE__, __LINE__, "bad[%zu] gave %d", i, rc);
		CHECK(ev.details == NULL);
	}
	/* a field over its size is TOOBIG, not cut */
	char buf[512];
	snprintf(buf, sizeof(buf),
	         "{\"category\":\"auth\",\"action\":\"%0100d\",\"ts_ms\":1,"
	         "\"actor\":{\"type\":\"u\"}}",
	         0);
	CHECK_INT(decode_str(buf, &ev), V2G_ERR_TOOBIG);
	/* deep nesting refused before parsing */
	char deep[400] = "{\"details\":";
	for (int i = 0; i < 100; i++)
		strcat(deep, "[");
	CHECK_INT(decode_str(deep, &ev), V2G_ERR_INVAL);
}

static void test_parse_date(void)
{
	int64_t ms;
	CHECK_INT(v2g_audit_parse_date("2025-01-01", 0, &ms), 0);
	CHECK_INT(ms, JAN1);
	CHECK_INT(v2g_audit_parse_date("2025-01-01", 1, &ms), 0);
	CHECK_INT(ms, JAN1 + DAY);
	CHECK_INT(v2g_audit_parse_date("2025-01-01T06:00:00Z", 1, &ms), 0);
	CHECK_INT(ms, JAN1 + 6 * 3600000LL);
	CHECK_INT(v2g_audit_parse_date("2025-13-01", 0, &ms), V2G_ERR_INVAL);
	CHECK_INT(v2g_audit_parse_date("soon", 0, &ms), V2G_ERR_INVAL);
}

/* appends an event of category c at ts with the given action */
static void add(struct v2g_audit_log *log, enum v2g_audit_category c, int64_t ts,
                const char *action, int success)
{
	struct v2g_audit_event ev;
	switch (c) {
	case V2G_AUDIT_CONFIG_CHANGE:
		CHECK_INT(v2g_audit_config_change(&ev, ts, &admin, action, NULL), 0);
		break;
	case V2G_AUDIT_STATION_CONTROL:
		CHECK_INT(v2g_audit_station_control(&ev, ts, &admin, "station_1", action, NULL), 0);
		break;
	case V2G_AUDIT_AUTH:
		CHECK_INT(v2g_audit_auth(&ev, ts, action, &admin, success, NULL), 0);
		break;
	case V2G_AUDIT_LOAD_MANAGEMENT:
		CHECK_INT(v2g_audit_load_management(&ev, ts, action, NULL), 0);
		break;
	}
	ev.success = success;
	CHECK_INT(v2g_audit_log_append(log, &ev), 0);
	v2g_audit_event_fini(&ev);
}

static void test_ring_drops_oldest(void)
{
	struct v2g_audit_log *log = v2g_audit_log_new(5);
	char a[16];
	for (int i = 0; i < 8; i++) {
		snprintf(a, sizeof(a), "a%d", i);
		add(log, V2G_AUDIT_STATION_CONTROL, JAN1 + i, a, 1);
	}
	CHECK_INT(v2g_audit_log_count(log), 5);
	CHECK_INT(v2g_audit_log_dropped(log), 3);
	struct v2g_audit_query q = { .category = -1 };
	struct v2g_audit_event *evs;
	size_t n;
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 5);
	CHECK_STR(evs[0].action, "a7"); /* newest first */
	CHECK_STR(evs[4].action, "a3"); /* a0..a2 gone */
	v2g_audit_events_free(evs, n);
	v2g_audit_log_free(log);
}

static void test_query_category_dates_limit(void)
{
	struct v2g_audit_log *log = v2g_audit_log_new(0);
	for (int d = 0; d < 10; d++) { /* Jan 1..10, one of each category at noon */
		int64_t t = JAN1 + d * DAY + 12 * 3600000LL;
		add(log, V2G_AUDIT_CONFIG_CHANGE, t, "k", 1);
		add(log, V2G_AUDIT_STATION_CONTROL, t + 1, "set_power", 1);
		add(log, V2G_AUDIT_AUTH, t + 2, "login", d % 2);
		add(log, V2G_AUDIT_LOAD_MANAGEMENT, t + 3, "rebalance", 1);
	}
	struct v2g_audit_event *evs;
	size_t n;
	/* ?category=station_control&limit=50 */
	struct v2g_audit_query q = { .category = V2G_AUDIT_STATION_CONTROL, .limit = 50 };
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 10);
	int same = 1;
	for (size_t i = 0; i < n; i++)
		same &= evs[i].category == V2G_AUDIT_STATION_CONTROL;
	CHECK(same);
	CHECK_INT(evs[0].ts_ms, JAN1 + 9 * DAY + 12 * 3600000LL + 1);
	v2g_audit_events_free(evs, n);

	/* startDate=2025-01-03, endDate=2025-01-05: three whole days */
	q = (struct v2g_audit_query){ .category = -1 };
	CHECK_INT(v2g_audit_parse_date("2025-01-03", 0, &q.from_ms), 0);
	CHECK_INT(v2g_audit_parse_date("2025-01-05", 1, &q.to_ms), 0);
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 12);
	CHECK_INT(evs[11].ts_ms, JAN1 + 2 * DAY + 12 * 3600000LL);
	v2g_audit_events_free(evs, n);

	/* from is inclusive, to exclusive */
	q = (struct v2g_audit_query){ .category = V2G_AUDIT_CONFIG_CHANGE,
		                      .from_ms = JAN1 + 12 * 3600000LL,
		                      .to_ms = JAN1 + DAY + 12 * 3600000LL };
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(evs[0].ts_ms, JAN1 + 12 * 3600000LL);
	v2g_audit_events_free(evs, n);

	q = (struct v2g_audit_query){ .category = -1, .limit = 3 };
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 3);
	CHECK_INT(evs[0].category, V2G_AUDIT_LOAD_MANAGEMENT);
	json_t *j = v2g_audit_events_to_json(evs, n);
	CHECK_INT(json_integer_value(json_object_get(j, "count")), 3);
	CHECK_INT(json_array_size(json_object_get(j, "events")), 3);
	CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "events"), 0),
	                                            "category")),
	          "load_management");
	json_decref(j);
	v2g_audit_events_free(evs, n);

	q = (struct v2g_audit_query){ .category = 4 };
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), V2G_ERR_INVAL);
	q = (struct v2g_audit_query){ .category = -1, .from_ms = 10, .to_ms = 5 };
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), V2G_ERR_INVAL);
	q = (struct v2g_audit_query){ .category = -1, .from_ms = JAN1 + 100 * DAY };
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 0);
	CHECK(evs == NULL);
	v2g_audit_log_free(log);
}

static void test_query_default_and_max_limit(void)
{
	struct v2g_audit_log *log = v2g_audit_log_new(2000);
	for (int i = 0; i < 1500; i++)
		add(log, V2G_AUDIT_LOAD_MANAGEMENT, JAN1 + i, "rebalance", 1);
	struct v2g_audit_event *evs;
	size_t n;
	struct v2g_audit_query q = { .category = -1 };
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 100);
	v2g_audit_events_free(evs, n);
	q.limit = 5000;
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 1000);
	v2g_audit_events_free(evs, n);
	v2g_audit_log_free(log);
}

static void test_query_orders_by_time_not_arrival(void)
{
	struct v2g_audit_log *log = v2g_audit_log_new(0);
	add(log, V2G_AUDIT_AUTH, JAN1 + 300, "third", 1);
	add(log, V2G_AUDIT_AUTH, JAN1 + 100, "first", 1);
	add(log, V2G_AUDIT_AUTH, JAN1 + 200, "second", 1);
	add(log, V2G_AUDIT_AUTH, JAN1 + 200, "second_later", 1);
	struct v2g_audit_query q = { .category = V2G_AUDIT_AUTH };
	struct v2g_audit_event *evs;
	size_t n;
	CHECK_INT(v2g_audit_log_query(log, &q, &evs, &n), 0);
	CHECK_INT(n, 4);
	CHECK_STR(evs[0].action, "third");
	CHECK_STR(evs[1].action, "second_later");
	CHECK_STR(evs[2].action, "second");
	CHECK_STR(evs[3].action, "first");
	v2g_audit_events_free(evs, n);
	v2g_audit_log_free(log);
}

static void test_stats_over_7_days(void)
{
	struct v2g_audit_log *log = v2g_audit_log_new(0);
	int64_t now = JAN1 + 6 * DAY + 12 * 3600000LL;  /* 2025-01-07 noon */
	add(log, V2G_AUDIT_AUTH, JAN1 - 1, "login", 1); /* 2024-12-31: outside */
	add(log, V2G_AUDIT_AUTH, JAN1, "login", 0);     /* first day, first ms */
	add(log, V2G_AUDIT_STATION_CONTROL, JAN1 + 2 * DAY + 5, "set_power", 1);
	add(log, V2G_AUDIT_LOAD_MANAGEMENT, JAN1 + 2 * DAY + 6, "shed", 1);
	add(log, V2G_AUDIT_CONFIG_CHANGE, JAN1 + 7 * DAY - 1, "max_grid_capacity", 1);
	add(log, V2G_AUDIT_CONFIG_CHANGE, JAN1 + 7 * DAY, "tomorrow", 1); /* outside */
	struct v2g_audit_stats st;
	CHECK_INT(v2g_audit_log_stats(log, now, 7, &st), 0);
	CHECK_INT(st.from_ms, JAN1);
	CHECK_INT(st.total, 4);
	CHECK_INT(st.failures, 1);
	CHECK_INT(st.by_category[V2G_AUDIT_AUTH], 1);
	CHECK_INT(st.by_category[V2G_AUDIT_STATION_CONTROL], 1);
	CHECK_INT(st.by_category[V2G_AUDIT_LOAD_MANAGEMENT], 1);
	CHECK_INT(st.by_category[V2G_AUDIT_CONFIG_CHANGE], 1);
	CHECK_INT(st.by_day[0], 1);
	CHECK_INT(st.by_day[1], 0);
	CHECK_INT(st.by_day[2], 2);
	CHECK_INT(st.by_day[6], 1);
	json_t *j = v2g_audit_stats_to_json(&st);
	CHECK_INT(json_integer_value(json_object_get(j, "days")), 7);
	CHECK_STR(json_string_value(json_object_get(j, "from")), "2025-01-01");
	CHECK_STR(json_string_value(json_object_get(j, "to")), "2025-01-07");
	json_t *bd = json_object_get(j, "by_day");
	CHECK_INT(json_object_size(bd), 7);
	CHECK_INT(json_integer_value(json_object_get(bd, "2025-01-03")), 2);
	CHECK(json_is_integer(json_object_get(bd, "2025-01-02")));
	CHECK_INT(json_integer_value(json_object_get(bd, "2025-01-02")), 0);
	CHECK_INT(json_integer_value(
	                  json_object_get(json_object_get(j, "by_category"), "load_management")),
	          1);
	json_decref(j);

	CHECK_INT(v2g_audit_log_stats(log, now, 1, &st), 0); /* today only */
	CHECK_INT(st.total, 1);
	CHECK_INT(v2g_audit_log_stats(log, now, 0, &st), V2G_ERR_INVAL);
	CHECK_INT(v2g_audit_log_stats(log, now, 367, &st), V2G_ERR_INVAL);
	v2g_audit_log_free(log);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_category_names),
		HCASE(test_config_change),
		HCASE(test_station_control),
		HCASE(test_auth),
		HCASE(test_load_management_and_error),
		HCASE(test_constructor_validation),
		HCASE(test_json_round_trip),
		HCASE(test_decode_validation),
		HCASE(test_parse_date),
		HCASE(test_ring_drops_oldest),
		HCASE(test_query_category_dates_limit),
		HCASE(test_query_default_and_max_limit),
		HCASE(test_query_orders_by_time_not_arrival),
		HCASE(test_stats_over_7_days),
	};
	return harness_main("audit", cases, HARNESS_N(cases));
}
