/* DC fast charging (DLM guide 2.3): limits from the capability, a setpoint
 * ramped at 10 kW/s (never stepped up), thermal derating (60..90 degC; the
 * guide's 65 degC), the taper curve (80 %, 0.7: 90 % SoC -> 0.65), the
 * guide's measurements, and bidirectional export. */
#include <math.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/dc.h"
#include "v2g/err.h"

static struct dlm_dc_charger charger(const char *profile)
{
	struct dlm_dc_charger ch;
	memset(&ch, 0, sizeof(ch));
	CHECK_INT(dlm_dc_init(&ch, "dcfc_1", dlm_cap_profile_find(profile)), 0);
	return ch;
}

static struct dlm_dc_meas meas(double kw, double a, double v, double t, double soc)
{
	struct dlm_dc_meas m = { kw, a, v, t, soc, 0, 0 };
	return m;
}

static void test_init_from_capability(void)
{
	struct dlm_dc_charger ch = charger("dcfc_ccs_medium");
	CHECK_STR(ch.id, "dcfc_1");
	CHECK_NEAR(ch.power_min_kw, 20, 0);
	CHECK_NEAR(ch.power_max_kw, 150, 0);
	CHECK_NEAR(ch.current_min_a, 10, 0);
	CHECK_NEAR(ch.current_max_a, 200, 0);
	CHECK_NEAR(ch.current_limit_a, 200, 0);
	CHECK_NEAR(ch.ramp_kw_per_s, 10, 0);
	CHECK_NEAR(ch.thermal.start_c, 60, 0);
	CHECK_NEAR(ch.thermal.zero_c, 90, 0);
	CHECK(!ch.taper.enabled);
	CHECK_NEAR(ch.taper.start_soc, 80, 0);
	CHECK_NEAR(ch.taper.rate, 0.7, 0);
	CHECK(!ch.bidi_capable);
	CHECK_NEAR(ch.setpoint_kw, 0, 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 150, 0);
	ch = charger("dcfc_ccs_high");
	CHECK_NEAR(ch.power_max_kw, 350, 0);
	CHECK_NEAR(ch.current_max_a, 500, 0);
	CHECK(ch.bidi_capable);
	ch = charger("dcfc_chademo");
	CHECK_NEAR(ch.power_max_kw, 62.5, 0);
	CHECK_NEAR(ch.current_max_a, 125, 0);
	CHECK(ch.bidi_capable);
	struct dlm_dc_charger x;
	CHECK_INT(dlm_dc_init(&x, "ac", dlm_cap_profile_find("ac_level2_three")), V2G_ERR_INVAL);
	CHECK_INT(dlm_dc_init(&x, "", dlm_cap_profile_find("dcfc_chademo")), V2G_ERR_INVAL);
	CHECK_INT(dlm_dc_init(&x, "x", NULL), V2G_ERR_INVAL);
}

static void test_thermal_curve(void)
{
	struct dlm_dc_thermal t = { 60, 90 };
	CHECK_NEAR(dlm_dc_thermal_factor(&t, 25), 1, 0);
	CHECK_NEAR(dlm_dc_thermal_factor(&t, 60), 1, 0);
	CHECK_NEAR(dlm_dc_thermal_factor(&t, 65), 1 - 5.0 / 30, 1e-12); /* the guide's 65 degC */
	CHECK_NEAR(dlm_dc_thermal_factor(&t, 75), 0.5, 1e-12);
	CHECK_NEAR(dlm_dc_thermal_factor(&t, 90), 0, 0);
	CHECK_NEAR(dlm_dc_thermal_factor(&t, 120), 0, 0);
	/* 150 kW charger with its cable at 65 degC: 125 kW */
	struct dlm_dc_charger ch = charger("dcfc_ccs_medium");
	struct dlm_dc_meas m = meas(0, 0, 0, 65, 50);
	CHECK_INT(dlm_dc_update(&ch, &m, 0), 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 125, 1e-9);
	m.temp_c = 90;
	dlm_dc_update(&ch, &m, 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 0, 0);
	struct dlm_dc_thermal bad = { 80, 70 };
	CHECK_INT(dlm_dc_set_thermal(&ch, &bad), V2G_ERR_INVAL);
	struct dlm_dc_thermal hot = { 70, 100 };
	CHECK_INT(dlm_dc_set_thermal(&ch, &hot), 0);
	m.temp_c = 85;
	dlm_dc_update(&ch, &m, 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 75, 1e-9);
}

static void test_taper_curve(void)
{
	struct dlm_dc_taper t = { 1, 80, 0.7 };
	CHECK_NEAR(dlm_dc_taper_factor(&t, 45), 1, 0);
	CHECK_NEAR(dlm_dc_taper_factor(&t, 80), 1, 0);
	CHECK_NEAR(dlm_dc_taper_factor(&t, 82), 1 - 0.7 * 2 / 20, 1e-12); /* 0.93 */
	CHECK_NEAR(dlm_dc_taper_factor(&t, 90), 0.65, 1e-12);
	CHECK_NEAR(dlm_dc_taper_factor(&t, 100), 0.30, 1e-12);
	t.enabled = 0;
	CHECK_NEAR(dlm_dc_taper_factor(&t, 95), 1, 0);
	/* the guide: setVehicleTaper(enabled, soc 45, 80 %, 0.7), then SoC 82 */
	struct dlm_dc_charger ch = charger("dcfc_ccs_medium");
	struct dlm_dc_taper g = { 1, 80, 0.7 };
	CHECK_INT(dlm_dc_set_taper(&ch, &g), 0);
	CHECK_INT(dlm_dc_update_soc(&ch, 45), 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 150, 1e-9);
	CHECK_INT(dlm_dc_update_soc(&ch, 82), 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 150 * 0.93, 1e-9);
	CHECK_INT(dlm_dc_update_soc(&ch, 90), 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 97.5, 1e-9);
	CHECK_INT(dlm_dc_update_soc(&ch, 101), V2G_ERR_INVAL);
	struct dlm_dc_taper bad = { 1, 100, 0.7 };
	CHECK_INT(dlm_dc_set_taper(&ch, &bad), V2G_ERR_INVAL);
	bad.start_soc = 80;
	bad.rate = 1.5;
	CHECK_INT(dlm_dc_set_taper(&ch, &bad), V2G_ERR_INVAL);
}

static void test_ramp_up_not_stepped(void)
{
	struct dlm_dc_charger ch = charger("dcfc_ccs_medium");
	/* the guide: setPowerLimit 150 kW with auto ramp */
	CHECK_INT(dlm_dc_set_power_limit(&ch, 150), 0);
	CHECK_NEAR(ch.target_kw, 150, 0);
	CHECK_NEAR(dlm_dc_step(&ch, 1000), 0, 0); /* first call: time only */
	/* the start: 10 kW of ramp would be under the 20 kW minimum */
	CHECK_NEAR(dlm_dc_step(&ch, 2000), 20, 1e-9);
	CHECK_NEAR(dlm_dc_step(&ch, 2100), 21, 1e-9);
	double prev = ch.setpoint_kw;
	/* 100 ms steps: never more than 1 kW each, reaches 150 at t = 15 s */
	for (int64_t t = 2200; t <= 20000; t += 100) {
		double sp = dlm_dc_step(&ch, t);
		CHECK(sp - prev <= 1.0 + 1e-9);
		CHECK(sp >= prev);
		prev = sp;
		if (t == 15000)
			CHECK_NEAR(sp, 150, 1e-9);
		if (t == 14900)
			CHECK_NEAR(sp, 149, 1e-9);
	}
	CHECK_NEAR(ch.setpoint_kw, 150, 1e-9);
	/* the same time twice: no movement */
	CHECK_INT(dlm_dc_set_power_limit(&ch, 150), 0);
	CHECK_NEAR(dlm_dc_step(&ch, 20000), 150, 1e-9);
	/* another rate */
	struct dlm_dc_charger h = charger("dcfc_ccs_high");
	CHECK_INT(dlm_dc_set_ramp_rate(&h, 25), 0);
	CHECK_INT(dlm_dc_set_ramp_rate(&h, 0), V2G_ERR_INVAL);
	dlm_dc_set_power_limit(&h, 350);
	dlm_dc_step(&h, 0);
	CHECK_NEAR(dlm_dc_step(&h, 2000), 50, 1e-9);
	/* clock going backwards: no movement */
	CHECK_NEAR(dlm_dc_step(&h, 1000), 50, 1e-9);
}

/* A start skips the range under the charger's minimum (where it cannot
 * run) and ramps on from the minimum; so does a setpoint left under it. */
static void test_start_at_minimum(void)
{
	struct dlm_dc_charger ch = charger("dcfc_ccs_medium"); /* 20..150 kW */
	CHECK_INT(dlm_dc_set_power_limit(&ch, 100), 0);
	dlm_dc_step(&ch, 0);
	/* 200 ms cycles: 0 -> 20 (not 2), then +2 kW per cycle */
	double want[] = { 20, 22, 24, 26 };
	for (int i = 0; i < 4; i++)
		CHECK_NEAR(dlm_dc_step(&ch, 200 * (i + 1)), want[i], 1e-9);
	/* a long gap: the ramp has had the time, more than the minimum */
	struct dlm_dc_charger g = charger("dcfc_ccs_medium");
	dlm_dc_set_power_limit(&g, 100);
	dlm_dc_step(&g, 0);
	CHECK_NEAR(dlm_dc_step(&g, 3000), 30, 1e-9);
	/* a goal under the minimum (derated to 15 kW): no jump to 20 */
	struct dlm_dc_charger d = charger("dcfc_ccs_medium");
	struct dlm_dc_meas hot = meas(0, 0, 0, 87, 50); /* 3/30 x 150 = 15 kW */
	CHECK_INT(dlm_dc_update(&d, &hot, 0), 0);
	dlm_dc_set_power_limit(&d, 100);
	dlm_dc_step(&d, 0);
	CHECK_NEAR(dlm_dc_step(&d, 200), 2, 1e-9);
	CHECK_NEAR(dlm_dc_step(&d, 2000), 15, 1e-9);
	/* cooled down: from 15 (under 20) straight to the minimum, then on */
	struct dlm_dc_meas cool = meas(0, 0, 0, 30, 50);
	CHECK_INT(dlm_dc_update(&d, &cool, 2000), 0);
	CHECK_NEAR(dlm_dc_step(&d, 2200), 20, 1e-9);
	CHECK_NEAR(dlm_dc_step(&d, 2400), 22, 1e-9);
	/* a stop and a restart: 0, then the minimum again */
	dlm_dc_set_power_limit(&d, 0);
	CHECK_NEAR(dlm_dc_step(&d, 2600), 0, 0);
	dlm_dc_set_power_limit(&d, 100);
	CHECK_NEAR(dlm_dc_step(&d, 2600), 0, 0); /* no time elapsed: no move */
	CHECK_NEAR(dlm_dc_step(&d, 2800), 20, 1e-9);
	/* ramp_down: falling to 0 passes under the minimum, no jump up */
	d.ramp_down = 1;
	dlm_dc_set_power_limit(&d, 0);
	CHECK_NEAR(dlm_dc_step(&d, 3800), 10, 1e-9);
	CHECK_NEAR(dlm_dc_step(&d, 4800), 0, 1e-9);
}

static void test_reductions(void)
{
	struct dlm_dc_charger ch = charger("dcfc_ccs_medium");
	dlm_dc_set_power_limit(&ch, 150);
	dlm_dc_step(&ch, 0);
	dlm_dc_step(&ch, 15000);
	CHECK_NEAR(ch.setpoint_kw, 150, 1e-9);
	/* lower target: lands at once (the site is protecting a limit) */
	dlm_dc_set_power_limit(&ch, 60);
	CHECK_NEAR(dlm_dc_step(&ch, 15000), 60, 1e-9);
	/* ramp_down: 10 kW/s down as well */
	dlm_dc_set_power_limit(&ch, 150);
	dlm_dc_step(&ch, 24000);
	CHECK_NEAR(ch.setpoint_kw, 150, 1e-9);
	ch.ramp_down = 1;
	dlm_dc_set_power_limit(&ch, 60);
	CHECK_NEAR(dlm_dc_step(&ch, 25000), 140, 1e-9);
	/* but a derating limit is a limit even with ramp_down */
	struct dlm_dc_meas m = meas(140, 300, 466, 75, 50);
	dlm_dc_update(&ch, &m, 25000);
	dlm_dc_set_power_limit(&ch, 150);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 75, 1e-9);
	CHECK_NEAR(dlm_dc_step(&ch, 25100), 75, 1e-9);
	/* target clamping and the minimum */
	CHECK_INT(dlm_dc_set_power_limit(&ch, 200), 0);
	CHECK_NEAR(ch.target_kw, 150, 0);
	CHECK_INT(dlm_dc_set_power_limit(&ch, 15), 0);
	CHECK_NEAR(ch.target_kw, 0, 0); /* under 20 kW: stop */
	CHECK_INT(dlm_dc_set_power_limit(&ch, NAN), V2G_ERR_INVAL);
}

static void test_guide_measurements_and_current_limit(void)
{
	struct dlm_dc_charger ch = charger("dcfc_ccs_medium");
	CHECK_INT(dlm_dc_set_power_limit(&ch, 150), 0);
	CHECK_INT(dlm_dc_set_current_limit(&ch, 200), 0); /* guide: 200 A */
	/* guide: power 145.2, current 195.5, voltage 742, temperature 65, soc 45 */
	struct dlm_dc_meas m = meas(145.2, 195.5, 742, 65, 45);
	CHECK_INT(dlm_dc_update(&ch, &m, 5000), 0);
	CHECK_NEAR(ch.meas.power_kw, 145.2, 0);
	CHECK_NEAR(ch.meas.voltage_v, 742, 0);
	CHECK_INT(ch.meas.at_ms, 5000);
	/* 200 A x 742 V = 148.4 kW; 65 degC -> 125 kW wins */
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 125, 1e-9);
	CHECK_NEAR(dlm_dc_effective_target(&ch), 125, 1e-9);
	/* 150 A x 742 V = 111.3 kW wins over the derating */
	CHECK_INT(dlm_dc_set_current_limit(&ch, 150), 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 111.3, 1e-9);
	/* clamped to 200 A; under 10 A is a stop */
	CHECK_INT(dlm_dc_set_current_limit(&ch, 300), 0);
	CHECK_NEAR(ch.current_limit_a, 200, 0);
	CHECK_INT(dlm_dc_set_current_limit(&ch, 5), 0);
	CHECK_NEAR(ch.current_limit_a, 0, 0);
	CHECK_NEAR(dlm_dc_import_limit_kw(&ch), 0, 0);
	CHECK_INT(dlm_dc_set_current_limit(&ch, -1), V2G_ERR_INVAL);
	/* bad readings are refused and nothing is stored */
	struct dlm_dc_meas bad = meas(NAN, 0, 0, 0, 50);
	CHECK_INT(dlm_dc_update(&ch, &bad, 6000), V2G_ERR_INVAL);
	bad = meas(1, 1, 1, 1, 120);
	CHECK_INT(dlm_dc_update(&ch, &bad, 6000), V2G_ERR_INVAL);
	CHECK_INT(ch.meas.at_ms, 5000);
}

static void test_bidirectional(void)
{
	/* CCS medium cannot export */
	struct dlm_dc_charger m = charger("dcfc_ccs_medium");
	CHECK_INT(dlm_dc_enable_bidirectional(&m, 50), V2G_ERR_INVAL);
	CHECK_INT(dlm_dc_set_power_limit(&m, -50), V2G_ERR_INVAL);
	CHECK_NEAR(dlm_dc_export_limit_kw(&m), 0, 0);

	struct dlm_dc_charger ch = charger("dcfc_ccs_high");
	/* export before enabling: refused */
	CHECK_INT(dlm_dc_set_power_limit(&ch, -50), V2G_ERR_INVAL);
	/* the guide: enableBidirectional 50 kW */
	CHECK_INT(dlm_dc_enable_bidirectional(&ch, 50), 0);
	CHECK_NEAR(dlm_dc_export_limit_kw(&ch), 50, 0);
	CHECK_INT(dlm_dc_set_power_limit(&ch, -80), 0);
	CHECK_NEAR(ch.target_kw, -50, 0);
	/* ramped too: -10 kW/s, from its 50 kW minimum */
	dlm_dc_step(&ch, 0);
	CHECK_NEAR(dlm_dc_step(&ch, 1000), -50, 1e-9);
	dlm_dc_set_power_limit(&ch, 0);
	CHECK_NEAR(dlm_dc_step(&ch, 1000), 0, 0);
	dlm_dc_set_power_limit(&ch, -80);
	CHECK_NEAR(dlm_dc_step(&ch, 1000), 0, 0);
	CHECK_NEAR(dlm_dc_step(&ch, 6000), -50, 1e-9);
	/* thermal derating limits export too */
	struct dlm_dc_meas hot = meas(-50, -100, 500, 88, 60);
	dlm_dc_update(&ch, &hot, 6000);
	/* 88 degC: 2/30 x 350 = 23.3 kW */
	CHECK_NEAR(dlm_dc_export_limit_kw(&ch), 350 * 2.0 / 30, 1e-9);
	CHECK_NEAR(dlm_dc_step(&ch, 6100), -350 * 2.0 / 30, 1e-9);
	struct dlm_dc_meas cool = meas(-20, -40, 500, 30, 60);
	dlm_dc_update(&ch, &cool, 6100);
	/* import -> export crossing: to 0 at once, then ramp */
	dlm_dc_set_power_limit(&ch, 100);
	dlm_dc_step(&ch, 7100);
	dlm_dc_step(&ch, 20000);
	CHECK_NEAR(ch.setpoint_kw, 100, 1e-9);
	/* (-30 kW would be under the 50 kW minimum of CCS high: a stop) */
	dlm_dc_set_power_limit(&ch, -30);
	CHECK_NEAR(ch.target_kw, 0, 0);
	dlm_dc_set_power_limit(&ch, -50);
	CHECK_NEAR(dlm_dc_step(&ch, 21000), -50, 1e-9); /* to 0, then its minimum */
	/* disable: the negative target becomes 0 and the setpoint follows */
	dlm_dc_disable_bidirectional(&ch);
	CHECK_NEAR(ch.target_kw, 0, 0);
	CHECK_NEAR(dlm_dc_step(&ch, 21000), 0, 0);
	/* CHAdeMO: export capped at its 62.5 kW */
	struct dlm_dc_charger c = charger("dcfc_chademo");
	CHECK_INT(dlm_dc_enable_bidirectional(&c, 100), 0);
	CHECK_NEAR(c.export_limit_kw, 62.5, 0);
	CHECK_INT(dlm_dc_enable_bidirectional(&c, 0), V2G_ERR_INVAL);
	/* under the 10 kW minimum: stop */
	CHECK_INT(dlm_dc_set_power_limit(&c, -5), 0);
	CHECK_NEAR(c.target_kw, 0, 0);
}

static void test_status_json(void)
{
	struct dlm_dc_charger ch = charger("dcfc_ccs_high");
	json_t *j = dlm_dc_status_json(&ch);
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(j, "id")), "dcfc_1");
	CHECK(json_is_null(json_object_get(j, "measurements")));
	CHECK(json_is_false(json_object_get(j, "ramping")));
	json_decref(j);
	dlm_dc_set_power_limit(&ch, 150);
	dlm_dc_enable_bidirectional(&ch, 50);
	struct dlm_dc_meas m = meas(145.2, 195.5, 742, 65, 45);
	dlm_dc_update(&ch, &m, 5000);
	dlm_dc_step(&ch, 5000);
	dlm_dc_step(&ch, 6000);
	j = dlm_dc_status_json(&ch);
	CHECK_NEAR(json_real_value(json_object_get(j, "target_kw")), 150, 0);
	CHECK_NEAR(json_real_value(json_object_get(j, "setpoint_kw")), 50, 1e-9);
	CHECK(json_is_true(json_object_get(j, "ramping")));
	CHECK_NEAR(json_real_value(json_object_get(j, "thermal_factor")), 1 - 5.0 / 30, 1e-9);
	json_t *b = json_object_get(j, "bidirectional");
	CHECK(json_is_true(json_object_get(b, "capable")));
	CHECK(json_is_true(json_object_get(b, "enabled")));
	CHECK_NEAR(json_real_value(json_object_get(b, "export_limit_kw")), 50, 0);
	json_t *mj = json_object_get(j, "measurements");
	CHECK_NEAR(json_real_value(json_object_get(mj, "voltage_v")), 742, 0);
	CHECK_NEAR(json_real_value(json_object_get(mj, "temperature_c")), 65, 0);
	json_decref(j);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_init_from_capability), HCASE(test_thermal_curve),
		HCASE(test_taper_curve),          HCASE(test_ramp_up_not_stepped),
		HCASE(test_reductions),           HCASE(test_guide_measurements_and_current_limit),
		HCASE(test_bidirectional),        HCASE(test_status_json),
		HCASE(test_start_at_minimum),
	};
	return harness_main("site-dlm-dc", cases, HARNESS_N(cases));
}
