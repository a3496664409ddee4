/* Fail-safe manager against the DLM guide 1.4: station_1 with a 3.7 kW safe
 * limit, offline action reduce, 30 s communication timeout and a last good
 * 7.4 kW; one fail-safe action per silence, one restore on return; the three
 * offline actions; the system heartbeat; the status. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/failsafe.h"
#include "v2g/err.h"

static struct dlm_failsafe_cfg cfg_of(double safe, enum dlm_offline_action a, int64_t timeout)
{
	return (struct dlm_failsafe_cfg){ .safe_power_limit_kw = safe,
		                          .offline_action = a,
		                          .comm_timeout_ms = timeout };
}

static struct dlm_fs_actions check(struct dlm_failsafe *m, int64_t now)
{
	struct dlm_fs_actions a = { 0, NULL };
	CHECK_INT(dlm_failsafe_check(m, now, &a), 0);
	return a;
}

static void test_defaults(void)
{
	struct dlm_failsafe_cfg d = dlm_failsafe_defaults();
	CHECK_NEAR(d.safe_power_limit_kw, 3.7, 0);
	CHECK_INT(d.offline_action, DLM_OFFLINE_REDUCE);
	CHECK_INT(d.comm_timeout_ms, 30000);
	enum dlm_offline_action a;
	CHECK_INT(dlm_offline_action_parse("maintain", &a), 0);
	CHECK_INT(a, DLM_OFFLINE_MAINTAIN);
	CHECK_INT(dlm_offline_action_parse("stop", &a), 0);
	CHECK_INT(a, DLM_OFFLINE_STOP);
	CHECK_INT(dlm_offline_action_parse("reduce", &a), 0);
	CHECK_INT(a, DLM_OFFLINE_REDUCE);
	CHECK_INT(dlm_offline_action_parse("explode", &a), V2G_ERR_INVAL);
	CHECK_STR(dlm_offline_action_name(DLM_OFFLINE_MAINTAIN), "maintain");
}

/* The guide's example, and the "a charger that goes silent put on
 * its fail-safe setpoint within its communication timeout and restored when
 * it returns". */
static void test_guide_example_once_and_restore(void)
{
	struct dlm_failsafe *m = dlm_failsafe_new(NULL);
	struct dlm_failsafe_cfg c = cfg_of(3.7, DLM_OFFLINE_REDUCE, 30000);
	CHECK_INT(dlm_failsafe_register(m, "station_1", &c, 0), 0);
	CHECK_INT(dlm_failsafe_update_comm(m, "station_1", 1000), 0);
	struct dlm_good_config good = { .power_kw = 7.4, .status = "charging" };
	CHECK_INT(dlm_failsafe_record_good_config(m, "station_1", &good, 1000), 0);

	CHECK_INT(check(m, 20000).n, 0);
	CHECK_INT(check(m, 31000).n, 0); /* exactly 30 s silent: not longer */
	struct dlm_fs_actions a = check(m, 31001);
	CHECK_INT(a.n, 1);
	if (a.n == 1) {
		CHECK_STR(a.v[0].station, "station_1");
		CHECK_INT(a.v[0].kind, DLM_FS_APPLY);
		CHECK_INT(a.v[0].offline_action, DLM_OFFLINE_REDUCE);
		CHECK_NEAR(a.v[0].power_kw, 3.7, 1e-12); /* min(7.4, 3.7) */
		CHECK_INT(a.v[0].silent_ms, 30001);
	}
	CHECK_INT(dlm_failsafe_in_failsafe(m, "station_1"), 1);
	CHECK_INT(dlm_failsafe_active_count(m), 1);
	/* once: no more actions while it stays silent */
	CHECK_INT(check(m, 32000).n, 0);
	CHECK_INT(check(m, 600000).n, 0);

	/* heard again: one restore */
	CHECK_INT(dlm_failsafe_update_comm(m, "station_1", 601000), 0);
	a = check(m, 601500);
	CHECK_INT(a.n, 1);
	if (a.n == 1) {
		CHECK_INT(a.v[0].kind, DLM_FS_RESTORE);
		CHECK_NEAR(a.v[0].power_kw, 7.4, 1e-12);
	}
	CHECK_INT(dlm_failsafe_in_failsafe(m, "station_1"), 0);
	CHECK_INT(check(m, 602000).n, 0);
	/* silent again: fail-safe again, counted from the last message */
	CHECK_INT(check(m, 631000).n, 0);
	a = check(m, 631001);
	CHECK_INT(a.n, 1);
	CHECK_INT(a.n ? (int)a.v[0].kind : -1, DLM_FS_APPLY);
	dlm_failsafe_free(m);
}

static void test_offline_actions(void)
{
	struct dlm_failsafe *m = dlm_failsafe_new(NULL);
	struct dlm_good_config good = { .power_kw = 7.4, .status = "charging" };
	struct dlm_good_config small = { .power_kw = 2.0, .status = "charging" };
	struct dlm_failsafe_cfg keep = cfg_of(3.7, DLM_OFFLINE_MAINTAIN, 30000);
	struct dlm_failsafe_cfg red = cfg_of(3.7, DLM_OFFLINE_REDUCE, 30000);
	struct dlm_failsafe_cfg stop = cfg_of(3.7, DLM_OFFLINE_STOP, 30000);
	dlm_failsafe_register(m, "maintain", &keep, 0);
	dlm_failsafe_register(m, "reduce", &red, 0);
	dlm_failsafe_register(m, "reduce_small", &red, 0);
	dlm_failsafe_register(m, "stop", &stop, 0);
	dlm_failsafe_register(m, "maintain_unknown", &keep, 0);
	dlm_failsafe_register(m, "reduce_unknown", &red, 0);
	dlm_failsafe_record_good_config(m, "maintain", &good, 0);
	dlm_failsafe_record_good_config(m, "reduce", &good, 0);
	dlm_failsafe_record_good_config(m, "reduce_small", &small, 0);
	dlm_failsafe_record_good_config(m, "stop", &good, 0);
	struct dlm_fs_actions a = check(m, 30001);
	CHECK_INT(a.n, 6);
	/* registration order */
	static const char *const ids[] = { "maintain", "reduce",           "reduce_small",
		                           "stop",     "maintain_unknown", "reduce_unknown" };
	static const double kw[] = { 7.4, 3.7, 2.0, 0, 3.7, 3.7 };
	for (size_t i = 0; i < a.n && i < 6; i++) {
		CHECK_STR(a.v[i].station, ids[i]);
		CHECK_INT(a.v[i].kind, DLM_FS_APPLY);
		CHECK_NEAR(a.v[i].power_kw, kw[i], 1e-12);
	}
	dlm_failsafe_free(m);
}

static void test_per_station_timeout_and_auto_register(void)
{
	struct dlm_failsafe_cfg d = cfg_of(5.0, DLM_OFFLINE_STOP, 10000);
	struct dlm_failsafe *m = dlm_failsafe_new(&d);
	struct dlm_failsafe_cfg fast = cfg_of(3.7, DLM_OFFLINE_REDUCE, 5000);
	dlm_failsafe_register(m, "fast", &fast, 0);
	/* first heard through update_comm: the manager's defaults */
	CHECK_INT(dlm_failsafe_update_comm(m, "auto", 0), 0);
	CHECK_INT(dlm_failsafe_count(m), 2);
	CHECK_INT(dlm_failsafe_in_failsafe(m, "nobody"), -1);
	struct dlm_fs_actions a = check(m, 5001);
	CHECK_INT(a.n, 1);
	CHECK_STR(a.n ? a.v[0].station : "", "fast");
	a = check(m, 10001);
	CHECK_INT(a.n, 1);
	if (a.n) {
		CHECK_STR(a.v[0].station, "auto");
		CHECK_INT(a.v[0].offline_action, DLM_OFFLINE_STOP);
		CHECK_NEAR(a.v[0].power_kw, 0, 0);
	}
	/* a station kept talking never fails safe */
	for (int64_t t = 10001; t < 100000; t += 4000) {
		dlm_failsafe_update_comm(m, "fast", t);
		struct dlm_fs_actions b = check(m, t + 1);
		for (size_t i = 0; i < b.n; i++)
			CHECK(!(strcmp(b.v[i].station, "fast") == 0 &&
			        b.v[i].kind == DLM_FS_APPLY));
	}
	/* a recorded good config registers too, and re-registering keeps state */
	struct dlm_good_config g = { 6.0, NULL };
	CHECK_INT(dlm_failsafe_record_good_config(m, "later", &g, 100000), 0);
	CHECK_INT(dlm_failsafe_count(m), 3);
	CHECK_INT(dlm_failsafe_register(m, "auto", &fast, 100000), 0);
	CHECK_INT(dlm_failsafe_in_failsafe(m, "auto"), 1);
	CHECK_INT(dlm_failsafe_unregister(m, "auto"), 0);
	CHECK_INT(dlm_failsafe_unregister(m, "auto"), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_failsafe_count(m), 2);
	dlm_failsafe_free(m);
}

static void test_validation(void)
{
	struct dlm_failsafe_cfg bad = cfg_of(-1, DLM_OFFLINE_REDUCE, 30000);
	CHECK(dlm_failsafe_new(&bad) == NULL);
	struct dlm_failsafe *m = dlm_failsafe_new(NULL);
	CHECK_INT(dlm_failsafe_register(m, "s", &bad, 0), V2G_ERR_INVAL);
	bad = cfg_of(3.7, DLM_OFFLINE_REDUCE, 0);
	CHECK_INT(dlm_failsafe_register(m, "s", &bad, 0), V2G_ERR_INVAL);
	bad = cfg_of(3.7, (enum dlm_offline_action)7, 1000);
	CHECK_INT(dlm_failsafe_register(m, "s", &bad, 0), V2G_ERR_INVAL);
	char long_id[DLM_FS_ID_MAX + 1];
	memset(long_id, 'x', DLM_FS_ID_MAX);
	long_id[DLM_FS_ID_MAX] = 0;
	CHECK_INT(dlm_failsafe_update_comm(m, long_id, 0), V2G_ERR_INVAL);
	CHECK_INT(dlm_failsafe_update_comm(m, "", 0), V2G_ERR_INVAL);
	struct dlm_good_config g = { NAN, "x" };
	CHECK_INT(dlm_failsafe_record_good_config(m, "s", &g, 0), V2G_ERR_INVAL);
	CHECK_INT(dlm_failsafe_count(m), 0);
	dlm_failsafe_free(m);
	dlm_failsafe_free(NULL);
}

static void test_heartbeat(void)
{
	struct dlm_failsafe *m = dlm_failsafe_new(NULL);
	CHECK_INT(dlm_failsafe_system_ok(m, 0, 10000), 0); /* none yet */
	dlm_failsafe_heartbeat(m, 1000);
	CHECK_INT(dlm_failsafe_system_ok(m, 1000, 10000), 1);
	CHECK_INT(dlm_failsafe_system_ok(m, 11000, 10000), 1);
	CHECK_INT(dlm_failsafe_system_ok(m, 11001, 10000), 0);
	dlm_failsafe_heartbeat(m, 11001);
	CHECK_INT(dlm_failsafe_system_ok(m, 11001, 10000), 1);
	dlm_failsafe_free(m);
}

static void test_many_stations(void)
{
	struct dlm_failsafe *m = dlm_failsafe_new(NULL);
	char id[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "st%04d", i);
		CHECK_INT(dlm_failsafe_update_comm(m, id, 0), 0);
	}
	for (int i = 0; i < 1000; i += 2) {
		snprintf(id, sizeof(id), "st%04d", i);
		dlm_failsafe_update_comm(m, id, 20000);
	}
	struct dlm_fs_actions a = check(m, 40000);
	CHECK_INT(a.n, 500);
	CHECK_INT(dlm_failsafe_active_count(m), 500);
	CHECK_INT(dlm_failsafe_in_failsafe(m, "st0001"), 1);
	CHECK_INT(dlm_failsafe_in_failsafe(m, "st0002"), 0);
	CHECK_INT(check(m, 41000).n, 0);
	dlm_failsafe_free(m);
}

static void test_status_json(void)
{
	struct dlm_failsafe *m = dlm_failsafe_new(NULL);
	struct dlm_failsafe_cfg c = cfg_of(3.7, DLM_OFFLINE_REDUCE, 30000);
	dlm_failsafe_register(m, "station_1", &c, 0);
	dlm_failsafe_update_comm(m, "station_2", 20000);
	struct dlm_good_config good = { .power_kw = 7.4, .status = "charging" };
	dlm_failsafe_record_good_config(m, "station_1", &good, 0);
	dlm_failsafe_heartbeat(m, 35000);
	check(m, 40000);
	char *txt = dlm_failsafe_status_json(m, 40000, 10000);
	json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
	CHECK(j != NULL);
	if (j) {
		CHECK(json_is_true(json_object_get(j, "system_ok")));
		CHECK_INT(json_integer_value(json_object_get(j, "heartbeat_age_ms")), 5000);
		CHECK_INT(json_integer_value(json_object_get(j, "stations_total")), 2);
		CHECK_INT(json_integer_value(json_object_get(j, "stations_in_failsafe")), 1);
		json_t *s1 = json_array_get(json_object_get(j, "stations"), 0);
		CHECK_STR(json_string_value(json_object_get(s1, "id")), "station_1");
		CHECK_STR(json_string_value(json_object_get(s1, "offline_action")), "reduce");
		CHECK(json_is_true(json_object_get(s1, "in_failsafe")));
		CHECK(json_is_false(json_object_get(s1, "online")));
		CHECK_INT(json_integer_value(json_object_get(s1, "silent_ms")), 40000);
		CHECK_NEAR(json_real_value(json_object_get(s1, "failsafe_power_kw")), 3.7, 1e-12);
		json_t *lg = json_object_get(s1, "last_good");
		CHECK_NEAR(json_real_value(json_object_get(lg, "power_kw")), 7.4, 1e-12);
		CHECK_STR(json_string_value(json_object_get(lg, "status")), "charging");
		json_t *s2 = json_array_get(json_object_get(j, "stations"), 1);
		CHECK(json_is_true(json_object_get(s2, "online")));
		CHECK(json_is_null(json_object_get(s2, "last_good")));
		CHECK(json_is_null(json_object_get(s2, "failsafe_power_kw")));
		json_decref(j);
	}
	free(txt);
	json_t *o = dlm_failsafe_status_obj(m, 50000, 10000);
	CHECK(o && json_is_false(json_object_get(o, "system_ok")));
	json_decref(o);
	dlm_failsafe_free(m);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults),        HCASE(test_guide_example_once_and_restore),
		HCASE(test_offline_actions), HCASE(test_per_station_timeout_and_auto_register),
		HCASE(test_validation),      HCASE(test_heartbeat),
		HCASE(test_many_stations),   HCASE(test_status_json),
	};
	return harness_main("site-dlm-failsafe", cases, HARNESS_N(cases));
}
