/* Capability discovery (DLM guide 2.1): the five built-in profiles with
 * their numbers, derived AC power ranges, features, the registry, command
 * validation listing every error, recommended (clamped) setpoints, and the
 * JSON of GET /api/capabilities/{station}. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/capability.h"
#include "v2g/err.h"

static void check_profile(const char *name, enum dlm_cap_type type, const char *conn, double vmin,
                          double vmax, double imin, double imax, double pmin, double pmax,
                          int phases)
{
	const struct dlm_cap *c = dlm_cap_profile_find(name);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_STR(c->profile, name);
	CHECK_INT(c->type, type);
	CHECK_STR(c->connector, conn);
	CHECK_NEAR(c->voltage_min, vmin, 1e-9);
	CHECK_NEAR(c->voltage_max, vmax, 1e-9);
	CHECK_NEAR(c->current_min, imin, 1e-9);
	CHECK_NEAR(c->current_max, imax, 1e-9);
	CHECK_NEAR(c->power_min_kw, pmin, 1e-9);
	CHECK_NEAR(c->power_max_kw, pmax, 1e-9);
	CHECK_INT(c->phases, phases);
}

static void test_builtin_profiles(void)
{
	CHECK_INT(dlm_cap_profile_count(), 5);
	check_profile("ac_level2_single", DLM_CAP_AC, "J1772", 240, 240, 6, 80, 1.44, 19.2, 1);
	check_profile("ac_level2_three", DLM_CAP_AC, "Type 2", 400, 400, 6, 32, 4.14, 22.08, 3);
	check_profile("dcfc_ccs_medium", DLM_CAP_DC, "CCS", 200, 500, 10, 200, 20, 150, 0);
	check_profile("dcfc_ccs_high", DLM_CAP_DC, "CCS", 200, 920, 10, 500, 50, 350, 0);
	check_profile("dcfc_chademo", DLM_CAP_DC, "CHAdeMO", 50, 500, 10, 125, 10, 62.5, 0);
	CHECK(dlm_cap_profile_find("ac_level3") == NULL);
	CHECK(dlm_cap_profile_find(NULL) == NULL);
	CHECK(dlm_cap_profile_at(5) == NULL);
	CHECK_STR(dlm_cap_profile_at(0)->profile, "ac_level2_single");
}

static void test_ac_power_derived_from_phase_voltage(void)
{
	const struct dlm_cap *s = dlm_cap_profile_find("ac_level2_single");
	const struct dlm_cap *t = dlm_cap_profile_find("ac_level2_three");
	/* 240 V single phase is phase to neutral; 400 V three phase -> 230 V */
	CHECK_NEAR(dlm_cap_phase_voltage(s), 240, 1e-9);
	CHECK_NEAR(dlm_cap_phase_voltage(t), 230, 1e-9);
	CHECK_NEAR(dlm_cap_phase_voltage(dlm_cap_profile_find("dcfc_ccs_high")), 0, 0);
	for (size_t i = 0; i < dlm_cap_profile_count(); i++) {
		const struct dlm_cap *c = dlm_cap_profile_at(i);
		if (c->type != DLM_CAP_AC)
			continue;
		double v = dlm_cap_phase_voltage(c);
		CHECK_NEAR(c->power_min_kw, c->phases * v * c->current_min / 1000, 1e-9);
		CHECK_NEAR(c->power_max_kw, c->phases * v * c->current_max / 1000, 1e-9);
	}
	/* a 480 V three-phase station: 480 / sqrt(3) = 277.1 V per phase */
	struct dlm_cap x = *t;
	x.voltage_max = 480;
	CHECK_NEAR(dlm_cap_phase_voltage(&x), 480 / sqrt(3.0), 1e-9);
}

static void test_features(void)
{
	struct dlm_cap_registry *r = dlm_cap_registry_alloc();
	CHECK_INT(dlm_cap_discover(r, "s1", "ocpp", "ac_level2_single", NULL, NULL), 0);
	CHECK_INT(dlm_cap_discover(r, "s3", "ocpp", "ac_level2_three", NULL, NULL), 0);
	CHECK_INT(dlm_cap_discover(r, "dm", "ocpp", "dcfc_ccs_medium", NULL, NULL), 0);
	CHECK_INT(dlm_cap_discover(r, "dh", "ocpp", "dcfc_ccs_high", NULL, NULL), 0);
	CHECK_INT(dlm_cap_discover(r, "dc", "ocpp", "dcfc_chademo", NULL, NULL), 0);
	/* bidirectional: CCS high and CHAdeMO only */
	CHECK(!dlm_cap_supports(r, "s1", DLM_FEAT_BIDIRECTIONAL));
	CHECK(!dlm_cap_supports(r, "s3", DLM_FEAT_BIDIRECTIONAL));
	CHECK(!dlm_cap_supports(r, "dm", DLM_FEAT_BIDIRECTIONAL));
	CHECK(dlm_cap_supports(r, "dh", DLM_FEAT_BIDIRECTIONAL));
	CHECK(dlm_cap_supports(r, "dc", DLM_FEAT_BIDIRECTIONAL));
	const char *all[] = { "s1", "s3", "dm", "dh", "dc" };
	for (int i = 0; i < 5; i++) {
		CHECK(dlm_cap_supports(r, all[i], DLM_FEAT_SMART_CHARGING));
		CHECK(dlm_cap_supports(r, all[i], DLM_FEAT_CURRENT_LIMIT));
	}
	CHECK(dlm_cap_supports(r, "s3", DLM_FEAT_PHASE_SWITCHING | DLM_FEAT_PER_PHASE_CURRENT));
	CHECK(!dlm_cap_supports(r, "s1", DLM_FEAT_PHASE_SWITCHING));
	CHECK(!dlm_cap_supports(r, "s1", DLM_FEAT_POWER_LIMIT));
	CHECK(dlm_cap_supports(r, "dm", DLM_FEAT_POWER_LIMIT));
	/* both bits needed */
	CHECK(!dlm_cap_supports(r, "dm", DLM_FEAT_POWER_LIMIT | DLM_FEAT_BIDIRECTIONAL));
	CHECK(!dlm_cap_supports(r, "nobody", DLM_FEAT_SMART_CHARGING));
	CHECK(!dlm_cap_supports(r, "dh", 0));
	dlm_cap_registry_free(r);
}

static void test_feature_names(void)
{
	const char *names[] = { "bidirectional",     "smart_charging", "phase_switching",
		                "per_phase_current", "power_limit",    "current_limit" };
	for (int i = 0; i < DLM_FEAT_COUNT; i++) {
		CHECK_STR(dlm_feature_name(1u << i), names[i]);
		CHECK_INT(dlm_feature_parse(names[i]), 1u << i);
	}
	CHECK(dlm_feature_name(3) == NULL);
	CHECK_INT(dlm_feature_parse("v2x"), 0);
	CHECK_STR(dlm_cmd_type_name(DLM_CMD_AC_CURRENT_LIMIT), "ac_current_limit");
	CHECK_INT(dlm_cmd_type_parse("dc_power_limit"), DLM_CMD_DC_POWER_LIMIT);
	CHECK_INT(dlm_cmd_type_parse("dc_current_limit"), DLM_CMD_DC_CURRENT_LIMIT);
	CHECK_INT(dlm_cmd_type_parse("set_power"), DLM_CMD_SET_POWER);
	CHECK_INT(dlm_cmd_type_parse("boost"), -1);
}

static void test_registry_discover_get_remove(void)
{
	struct dlm_cap_registry *r = dlm_cap_registry_alloc();
	const struct dlm_cap *c = NULL;
	CHECK(r != NULL);
	CHECK_INT(dlm_cap_registry_count(r), 0);
	/* the guide: discover station_1 over OCPP as ac_level2_three */
	CHECK_INT(dlm_cap_discover(r, "station_1", "ocpp", "ac_level2_three", NULL, &c), 0);
	CHECK(c == dlm_cap_get(r, "station_1"));
	CHECK_STR(c->station, "station_1");
	CHECK_STR(c->protocol, "ocpp");
	CHECK_NEAR(c->current_min, 6, 0);
	CHECK_NEAR(c->current_max, 32, 0);
	CHECK_INT(c->phases, 3);
	/* no profile: the default, the smallest AC station */
	CHECK_INT(dlm_cap_discover(r, "anon", NULL, NULL, NULL, &c), 0);
	CHECK_STR(c->profile, DLM_CAP_DEFAULT_PROFILE);
	CHECK_STR(c->protocol, "");
	CHECK_INT(dlm_cap_registry_count(r), 2);
	/* unknown profile, bad ids: refused, registry unchanged */
	CHECK_INT(dlm_cap_discover(r, "x", "ocpp", "ac_level9", NULL, NULL), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_cap_discover(r, "", "ocpp", NULL, NULL, NULL), V2G_ERR_INVAL);
	char longid[100];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	CHECK_INT(dlm_cap_discover(r, longid, "ocpp", NULL, NULL, NULL), V2G_ERR_INVAL);
	CHECK_INT(dlm_cap_registry_count(r), 2);
	/* rediscovery replaces */
	CHECK_INT(dlm_cap_discover(r, "station_1", "modbus", "dcfc_ccs_high", NULL, NULL), 0);
	CHECK_INT(dlm_cap_get(r, "station_1")->type, DLM_CAP_DC);
	CHECK_STR(dlm_cap_get(r, "station_1")->protocol, "modbus");
	CHECK_INT(dlm_cap_registry_count(r), 2);
	CHECK_INT(dlm_cap_remove(r, "station_1"), 0);
	CHECK(dlm_cap_get(r, "station_1") == NULL);
	CHECK_INT(dlm_cap_remove(r, "station_1"), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_cap_registry_count(r), 1);
	dlm_cap_registry_free(r);
	dlm_cap_registry_free(NULL);
}

static void count_cb(const struct dlm_cap *cap, void *arg)
{
	(void)cap;
	(*(int *)arg)++;
}

static void test_registry_many(void)
{
	struct dlm_cap_registry *r = dlm_cap_registry_alloc();
	char id[32];
	const struct dlm_cap *first = NULL;
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "st-%d", i);
		CHECK_INT(dlm_cap_discover(r, id, "ocpp", i % 2 ? "dcfc_chademo" : NULL, NULL,
		                           i == 0 ? &first : NULL),
		          0);
	}
	CHECK_INT(dlm_cap_registry_count(r), 3000);
	/* records do not move when the table grows */
	CHECK(first == dlm_cap_get(r, "st-0"));
	for (int i = 0; i < 3000; i += 7) {
		snprintf(id, sizeof(id), "st-%d", i);
		const struct dlm_cap *c = dlm_cap_get(r, id);
		CHECK(c != NULL && strcmp(c->station, id) == 0);
		CHECK(c && c->type == (i % 2 ? DLM_CAP_DC : DLM_CAP_AC));
	}
	for (int i = 0; i < 3000; i += 2) {
		snprintf(id, sizeof(id), "st-%d", i);
		CHECK_INT(dlm_cap_remove(r, id), 0);
	}
	int n = 0;
	dlm_cap_foreach(r, count_cb, &n);
	CHECK_INT(n, 1500);
	CHECK(dlm_cap_get(r, "st-2") == NULL);
	CHECK(dlm_cap_get(r, "st-2999") != NULL);
	dlm_cap_registry_free(r);
}

static void test_overrides(void)
{
	struct dlm_cap_registry *r = dlm_cap_registry_alloc();
	struct dlm_cap_overrides ov = { 0 };
	const struct dlm_cap *c;
	/* an ac_level2_three station on a 16 A circuit */
	ov.current_max = 16;
	CHECK_INT(dlm_cap_discover(r, "s16", "ocpp", "ac_level2_three", &ov, &c), 0);
	CHECK_NEAR(c->current_max, 16, 0);
	CHECK_NEAR(c->power_max_kw, 11.04, 1e-9); /* 3 x 230 V x 16 A */
	CHECK_NEAR(c->power_min_kw, 4.14, 1e-9);
	CHECK_STR(c->connector, "Type 2");
	/* a fully custom DC station on an AC base */
	struct dlm_cap_overrides dc = { 0 };
	dc.type = DLM_CAP_DC;
	dc.connector = "CCS";
	dc.voltage_min = 150;
	dc.voltage_max = 1000;
	dc.current_min = 5;
	dc.current_max = 300;
	dc.power_min_kw = 5;
	dc.power_max_kw = 240;
	dc.features_set = 1;
	dc.features = DLM_FEAT_POWER_LIMIT | DLM_FEAT_BIDIRECTIONAL;
	CHECK_INT(dlm_cap_discover(r, "custom", "ocpp", NULL, &dc, &c), 0);
	CHECK_INT(c->type, DLM_CAP_DC);
	CHECK_INT(c->phases, 0);
	CHECK_NEAR(c->power_max_kw, 240, 0);
	CHECK(dlm_cap_supports(r, "custom", DLM_FEAT_BIDIRECTIONAL));
	CHECK(!dlm_cap_supports(r, "custom", DLM_FEAT_SMART_CHARGING));
	/* explicit power overrides win over the derived range */
	struct dlm_cap_overrides pw = { 0 };
	pw.current_max = 16;
	pw.power_max_kw = 10;
	CHECK_INT(dlm_cap_discover(r, "p", NULL, "ac_level2_three", &pw, &c), 0);
	CHECK_NEAR(c->power_max_kw, 10, 0);
	/* inconsistent results are refused and change nothing */
	struct dlm_cap_overrides bad = { 0 };
	bad.phases = 2;
	CHECK_INT(dlm_cap_discover(r, "s16", NULL, "ac_level2_three", &bad, NULL), V2G_ERR_INVAL);
	bad.phases = 0;
	bad.current_min = 5; /* below the IEC minimum on AC */
	CHECK_INT(dlm_cap_discover(r, "s16", NULL, "ac_level2_three", &bad, NULL), V2G_ERR_INVAL);
	bad.current_min = 40; /* above the 32 A max */
	CHECK_INT(dlm_cap_discover(r, "s16", NULL, "ac_level2_three", &bad, NULL), V2G_ERR_INVAL);
	CHECK_NEAR(dlm_cap_get(r, "s16")->current_max, 16, 0);
	CHECK_INT(dlm_cap_registry_count(r), 3);
	dlm_cap_registry_free(r);
}

static struct dlm_cap_registry *fleet(void)
{
	struct dlm_cap_registry *r = dlm_cap_registry_alloc();
	struct dlm_cap_overrides ov16 = { 0 };
	ov16.current_max = 16;
	dlm_cap_discover(r, "single", "ocpp", "ac_level2_single", NULL, NULL);
	dlm_cap_discover(r, "three", "ocpp", "ac_level2_three", NULL, NULL);
	dlm_cap_discover(r, "three16", "ocpp", "ac_level2_three", &ov16, NULL);
	dlm_cap_discover(r, "ccs", "ocpp", "dcfc_ccs_medium", NULL, NULL);
	dlm_cap_discover(r, "ccsh", "ocpp", "dcfc_ccs_high", NULL, NULL);
	dlm_cap_discover(r, "chademo", "ocpp", "dcfc_chademo", NULL, NULL);
	return r;
}

static struct dlm_cap_command ac(double a, double b, double c, unsigned mask)
{
	struct dlm_cap_command cmd = { DLM_CMD_AC_CURRENT_LIMIT, mask, { a, b, c }, 0 };
	return cmd;
}

static struct dlm_cap_command val(enum dlm_cmd_type t, double v)
{
	struct dlm_cap_command cmd = { t, 0, { 0, 0, 0 }, v };
	return cmd;
}

static void test_validate_ac(void)
{
	struct dlm_cap_registry *r = fleet();
	struct dlm_cap_validation v;
	struct dlm_cap_command cmd;

	/* the guide: 16 A on A, B, C */
	cmd = ac(16, 16, 16, 7);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), 0);
	CHECK(v.valid);
	CHECK_INT(v.nerrors, 0);
	/* every error, each phase on its own: A over 32 A, B under 6 A, C = 0
	 * (stop) is fine */
	cmd = ac(40, 3, 0, 7);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK(!v.valid);
	CHECK_INT(v.nerrors, 2);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_ABOVE_MAX);
	CHECK_STR(v.errors[0].field, "A");
	CHECK_INT(v.errors[1].code, DLM_CAPERR_BELOW_IEC_MIN);
	CHECK_STR(v.errors[1].field, "B");
	CHECK(strstr(v.errors[1].msg, "IEC 61851") != NULL);
	/* 6 A exactly is a session; 5.9 A is not */
	cmd = ac(6, 6, 6, 7);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), 0);
	cmd = ac(5.9, 6, 6, 7);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_BELOW_IEC_MIN);
	/* 32 A max exactly is fine, 16 A station refuses 18 A on each phase */
	cmd = ac(32, 32, 32, 7);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), 0);
	cmd = ac(18, 18, 18, 7);
	CHECK_INT(dlm_cap_validate(r, "three16", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.nerrors, 3);
	for (int i = 0; i < 3; i++)
		CHECK_INT(v.errors[i].code, DLM_CAPERR_ABOVE_MAX);
	/* phases the station lacks, plus an out-of-range A */
	cmd = ac(90, 16, 16, 7);
	CHECK_INT(dlm_cap_validate(r, "single", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.nerrors, 3);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_ABOVE_MAX); /* 80 A max */
	CHECK_INT(v.errors[1].code, DLM_CAPERR_NO_SUCH_PHASE);
	CHECK_STR(v.errors[1].field, "B");
	CHECK_INT(v.errors[2].code, DLM_CAPERR_NO_SUCH_PHASE);
	CHECK_STR(v.errors[2].field, "C");
	/* a single phase given alone */
	cmd = ac(80, 0, 0, 1);
	CHECK_INT(dlm_cap_validate(r, "single", &cmd, &v), 0);
	/* negative, NaN, none */
	cmd = ac(-1, NAN, 10, 7);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.nerrors, 2);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_NEGATIVE);
	CHECK_INT(v.errors[1].code, DLM_CAPERR_NOT_A_NUMBER);
	cmd = ac(10, 10, 10, 0);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_NO_PHASES);
	/* AC command to a DC station */
	cmd = ac(16, 16, 16, 7);
	CHECK_INT(dlm_cap_validate(r, "ccs", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_WRONG_TYPE);
	/* unknown station */
	CHECK_INT(dlm_cap_validate(r, "ghost", &cmd, &v), V2G_ERR_NOTFOUND);
	CHECK_INT(v.nerrors, 1);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_UNKNOWN_STATION);
	dlm_cap_registry_free(r);
}

static void test_validate_dc_and_power(void)
{
	struct dlm_cap_registry *r = fleet();
	struct dlm_cap_validation v;
	struct dlm_cap_command cmd;

	cmd = val(DLM_CMD_DC_POWER_LIMIT, 150);
	CHECK_INT(dlm_cap_validate(r, "ccs", &cmd, &v), 0);
	cmd = val(DLM_CMD_DC_POWER_LIMIT, 151);
	CHECK_INT(dlm_cap_validate(r, "ccs", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_ABOVE_MAX);
	cmd = val(DLM_CMD_DC_POWER_LIMIT, 350);
	CHECK_INT(dlm_cap_validate(r, "ccsh", &cmd, &v), 0);
	cmd = val(DLM_CMD_DC_POWER_LIMIT, 40); /* CCS high minimum 50 kW */
	CHECK_INT(dlm_cap_validate(r, "ccsh", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_BELOW_MIN);
	cmd = val(DLM_CMD_DC_POWER_LIMIT, 0);
	CHECK_INT(dlm_cap_validate(r, "ccsh", &cmd, &v), 0);
	/* export: only on a bidirectional station, within its power */
	cmd = val(DLM_CMD_DC_POWER_LIMIT, -50);
	CHECK_INT(dlm_cap_validate(r, "ccs", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_NOT_BIDIRECTIONAL);
	CHECK_INT(dlm_cap_validate(r, "chademo", &cmd, &v), 0);
	cmd = val(DLM_CMD_DC_POWER_LIMIT, -62.5);
	CHECK_INT(dlm_cap_validate(r, "chademo", &cmd, &v), 0);
	cmd = val(DLM_CMD_DC_POWER_LIMIT, -70);
	CHECK_INT(dlm_cap_validate(r, "chademo", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_ABOVE_MAX);
	/* DC current: 10..200 A on CCS medium, no IEC AC floor but the 10 A min */
	cmd = val(DLM_CMD_DC_CURRENT_LIMIT, 200);
	CHECK_INT(dlm_cap_validate(r, "ccs", &cmd, &v), 0);
	cmd = val(DLM_CMD_DC_CURRENT_LIMIT, 8);
	CHECK_INT(dlm_cap_validate(r, "ccs", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_BELOW_MIN);
	cmd = val(DLM_CMD_DC_CURRENT_LIMIT, 126);
	CHECK_INT(dlm_cap_validate(r, "chademo", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_ABOVE_MAX);
	cmd = val(DLM_CMD_DC_CURRENT_LIMIT, 16);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_WRONG_TYPE);
	cmd = val(DLM_CMD_DC_POWER_LIMIT, 11);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_WRONG_TYPE);
	/* set_power on AC uses the derived range: 4.14 .. 22.08 kW */
	cmd = val(DLM_CMD_SET_POWER, 11);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), 0);
	cmd = val(DLM_CMD_SET_POWER, 22.5);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_ABOVE_MAX);
	cmd = val(DLM_CMD_SET_POWER, 3);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_BELOW_MIN);
	cmd = val(DLM_CMD_SET_POWER, -7);
	CHECK_INT(dlm_cap_validate(r, "three", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_NOT_BIDIRECTIONAL);
	cmd = val(DLM_CMD_SET_POWER, INFINITY);
	CHECK_INT(dlm_cap_validate(r, "ccsh", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_NOT_A_NUMBER);
	cmd = val((enum dlm_cmd_type)42, 1);
	CHECK_INT(dlm_cap_validate(r, "ccsh", &cmd, &v), V2G_ERR_INVAL);
	CHECK_INT(v.errors[0].code, DLM_CAPERR_WRONG_TYPE);
	dlm_cap_registry_free(r);
}

static void test_recommended(void)
{
	struct dlm_cap_registry *r = fleet();
	double out = -1;
	/* the guide: 18 A on a station configured for 16 A max -> 16 A */
	CHECK_INT(dlm_cap_recommended(r, "three16", DLM_UNIT_AMPS, 18, &out), 0);
	CHECK_NEAR(out, 16, 0);
	/* the ac_level2_three profile itself goes to 32 A: 18 A stays */
	CHECK_INT(dlm_cap_recommended(r, "three", DLM_UNIT_AMPS, 18, &out), 0);
	CHECK_NEAR(out, 18, 0);
	CHECK_INT(dlm_cap_recommended(r, "three", DLM_UNIT_AMPS, 40, &out), 0);
	CHECK_NEAR(out, 32, 0);
	/* under the 6 A minimum: stop, never raised */
	CHECK_INT(dlm_cap_recommended(r, "three", DLM_UNIT_AMPS, 5, &out), 0);
	CHECK_NEAR(out, 0, 0);
	CHECK_INT(dlm_cap_recommended(r, "three", DLM_UNIT_AMPS, 6, &out), 0);
	CHECK_NEAR(out, 6, 0);
	CHECK_INT(dlm_cap_recommended(r, "three", DLM_UNIT_AMPS, -3, &out), 0);
	CHECK_NEAR(out, 0, 0);
	CHECK_INT(dlm_cap_recommended(r, "single", DLM_UNIT_AMPS, 100, &out), 0);
	CHECK_NEAR(out, 80, 0);
	/* kW */
	CHECK_INT(dlm_cap_recommended(r, "ccsh", DLM_UNIT_KW, 400, &out), 0);
	CHECK_NEAR(out, 350, 0);
	CHECK_INT(dlm_cap_recommended(r, "ccsh", DLM_UNIT_KW, -400, &out), 0);
	CHECK_NEAR(out, -350, 0);
	CHECK_INT(dlm_cap_recommended(r, "ccsh", DLM_UNIT_KW, 30, &out), 0);
	CHECK_NEAR(out, 0, 0); /* under 50 kW */
	CHECK_INT(dlm_cap_recommended(r, "ccs", DLM_UNIT_KW, -50, &out), 0);
	CHECK_NEAR(out, 0, 0); /* not bidirectional */
	CHECK_INT(dlm_cap_recommended(r, "ccs", DLM_UNIT_KW, 100, &out), 0);
	CHECK_NEAR(out, 100, 0);
	CHECK_INT(dlm_cap_recommended(r, "three16", DLM_UNIT_KW, 22, &out), 0);
	CHECK_NEAR(out, 11.04, 1e-9);
	CHECK_INT(dlm_cap_recommended(r, "chademo", DLM_UNIT_AMPS, 130, &out), 0);
	CHECK_NEAR(out, 125, 0);
	CHECK_INT(dlm_cap_recommended(r, "ghost", DLM_UNIT_AMPS, 10, &out), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_cap_recommended(r, "three", DLM_UNIT_AMPS, NAN, &out), V2G_ERR_INVAL);
	dlm_cap_registry_free(r);
}

static void test_status_json(void)
{
	struct dlm_cap_registry *r = fleet();
	json_t *j = dlm_cap_status_json(r, "three16");
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(j, "station")), "three16");
	CHECK_STR(json_string_value(json_object_get(j, "profile")), "ac_level2_three");
	CHECK_STR(json_string_value(json_object_get(j, "type")), "ac");
	CHECK_STR(json_string_value(json_object_get(j, "connector")), "Type 2");
	CHECK_INT(json_integer_value(json_object_get(j, "phases")), 3);
	CHECK_NEAR(json_real_value(json_object_get(json_object_get(j, "current"), "max")), 16, 0);
	CHECK_NEAR(json_real_value(json_object_get(json_object_get(j, "power"), "max")), 11.04,
	           1e-9);
	CHECK_NEAR(json_real_value(json_object_get(j, "phase_voltage")), 230, 0);
	json_t *f = json_object_get(j, "features");
	CHECK(json_is_false(json_object_get(f, "bidirectional")));
	CHECK(json_is_true(json_object_get(f, "phase_switching")));
	json_decref(j);
	j = dlm_cap_status_json(r, "chademo");
	CHECK(json_is_true(json_object_get(json_object_get(j, "features"), "bidirectional")));
	CHECK_STR(json_string_value(json_object_get(j, "type")), "dc");
	json_decref(j);
	CHECK(dlm_cap_status_json(r, "ghost") == NULL);
	j = dlm_cap_registry_json(r);
	CHECK_INT(json_integer_value(json_object_get(j, "count")), 6);
	CHECK_INT(json_object_size(json_object_get(j, "stations")), 6);
	json_decref(j);
	dlm_cap_registry_free(r);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_builtin_profiles),
		HCASE(test_ac_power_derived_from_phase_voltage),
		HCASE(test_features),
		HCASE(test_feature_names),
		HCASE(test_registry_discover_get_remove),
		HCASE(test_registry_many),
		HCASE(test_overrides),
		HCASE(test_validate_ac),
		HCASE(test_validate_dc_and_power),
		HCASE(test_recommended),
		HCASE(test_status_json),
	};
	return harness_main("site-dlm-capability", cases, HARNESS_N(cases));
}
