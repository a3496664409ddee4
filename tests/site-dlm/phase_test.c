/* AC per-phase current control (DLM guide 2.2) with the guide's numbers:
 * 11 kW three-phase at 230 V -> 15.94 A per phase, 7.4 kW single-phase ->
 * 32.2 A, 16 A x 3 x 230 V = 11.04 kW; the 6 A IEC floor; auto-balance;
 * ramping in 2 s steps; system balance against the 0.20 default. */
#include <math.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/phase.h"
#include "v2g/err.h"

static struct dlm_phase_cfg three(void)
{
	struct dlm_phase_cfg c;
	dlm_phase_cfg_init(&c);
	return c;
}

static struct dlm_phase_cfg single(void)
{
	struct dlm_phase_cfg c;
	dlm_phase_cfg_init(&c);
	c.phases = 1;
	return c;
}

static void test_defaults(void)
{
	struct dlm_phase_cfg c = three();
	CHECK_NEAR(c.voltage_v, 230, 0);
	CHECK_INT(c.phases, 3);
	CHECK_NEAR(c.power_factor, 1.0, 0);
	CHECK_NEAR(c.min_a, 6, 0);
	CHECK(dlm_phase_cfg_valid(&c));
	struct dlm_phase_policy p;
	dlm_phase_policy_init(&p);
	CHECK_NEAR(p.max_imbalance, 0.20, 0);
	CHECK(p.balancing);
	CHECK_INT(p.def, DLM_IMBALANCE_OF_MAX);
	c.phases = 2;
	CHECK(!dlm_phase_cfg_valid(&c));
	c = three();
	c.power_factor = 1.2;
	CHECK(!dlm_phase_cfg_valid(&c));
	c = three();
	c.min_a = 4; /* under the IEC floor */
	CHECK(!dlm_phase_cfg_valid(&c));
}

static void test_cfg_from_capability(void)
{
	struct dlm_phase_cfg c;
	CHECK_INT(dlm_phase_cfg_from_cap(&c, dlm_cap_profile_find("ac_level2_three")), 0);
	CHECK_NEAR(c.voltage_v, 230, 0); /* 400 V network -> 230 V per phase */
	CHECK_INT(c.phases, 3);
	CHECK_NEAR(c.max_a, 32, 0);
	CHECK_INT(dlm_phase_cfg_from_cap(&c, dlm_cap_profile_find("ac_level2_single")), 0);
	CHECK_NEAR(c.voltage_v, 240, 0);
	CHECK_INT(c.phases, 1);
	CHECK_NEAR(c.max_a, 80, 0);
	CHECK_INT(dlm_phase_cfg_from_cap(&c, dlm_cap_profile_find("dcfc_ccs_high")), V2G_ERR_INVAL);
	CHECK_INT(dlm_phase_cfg_from_cap(&c, NULL), V2G_ERR_INVAL);
}

static void test_power_to_currents(void)
{
	struct dlm_phase_cfg c = three();
	double i[3];
	/* guide: 11 kW three-phase at 230 V -> ~15.9 A per phase */
	CHECK_INT(dlm_phase_power_to_currents(&c, 11, i), 0);
	for (int p = 0; p < 3; p++)
		CHECK_NEAR(i[p], 11000.0 / 690.0, 1e-9);
	CHECK_NEAR(i[0], 15.94, 0.005);
	/* 7.4 kW single-phase at 230 V -> ~32 A */
	struct dlm_phase_cfg s = single();
	CHECK_INT(dlm_phase_power_to_currents(&s, 7.4, i), 0);
	CHECK_NEAR(i[0], 32.17, 0.005);
	CHECK_NEAR(i[1], 0, 0);
	CHECK_NEAR(i[2], 0, 0);
	/* power factor 0.9: more current for the same power */
	c.power_factor = 0.9;
	CHECK_INT(dlm_phase_power_to_currents(&c, 11, i), 0);
	CHECK_NEAR(i[0], 11000.0 / (3 * 230 * 0.9), 1e-9);
	CHECK_INT(dlm_phase_power_to_currents(&c, NAN, i), V2G_ERR_INVAL);
	c.phases = 2;
	CHECK_INT(dlm_phase_power_to_currents(&c, 11, i), V2G_ERR_INVAL);
}

static void test_currents_to_power(void)
{
	struct dlm_phase_cfg c = three();
	const double sixteen[3] = { 16, 16, 16 };
	/* guide: 16 A x 3 x 230 V = 11.04 kW */
	CHECK_NEAR(dlm_phase_currents_to_power(&c, sixteen), 11.04, 1e-9);
	const double uneven[3] = { 16, 10, 0 };
	CHECK_NEAR(dlm_phase_currents_to_power(&c, uneven), 26 * 230 / 1000.0, 1e-9);
	c.power_factor = 0.95;
	CHECK_NEAR(dlm_phase_currents_to_power(&c, sixteen), 11.04 * 0.95, 1e-9);
	/* a single-phase station counts only its phase */
	struct dlm_phase_cfg s = single();
	CHECK_NEAR(dlm_phase_currents_to_power(&s, sixteen), 3.68, 1e-9);
	/* round trip */
	double i[3];
	c = three();
	dlm_phase_power_to_currents(&c, 7.5, i);
	CHECK_NEAR(dlm_phase_currents_to_power(&c, i), 7.5, 1e-9);
}

static void test_iec_minimum(void)
{
	struct dlm_phase_cfg c = three();
	CHECK_NEAR(dlm_phase_limit_one(&c, 6), 6, 0);
	CHECK_NEAR(dlm_phase_limit_one(&c, 5.99), 0, 0);
	CHECK_NEAR(dlm_phase_limit_one(&c, 1), 0, 0);
	CHECK_NEAR(dlm_phase_limit_one(&c, 0), 0, 0);
	CHECK_NEAR(dlm_phase_limit_one(&c, -4), 0, 0);
	CHECK_NEAR(dlm_phase_limit_one(&c, NAN), 0, 0);
	CHECK_NEAR(dlm_phase_limit_one(&c, 40), 32, 0);
	/* 3 kW three-phase is 4.35 A per phase: not a session, stop */
	double i[3], sp[3];
	dlm_phase_power_to_currents(&c, 3, i);
	CHECK_NEAR(i[0], 4.35, 0.01);
	CHECK_INT(dlm_phase_setpoint(&c, i, 0, DLM_BALANCE_MIN, sp), 0);
	CHECK_NEAR(sp[0] + sp[1] + sp[2], 0, 0);
	/* 4.14 kW = exactly 6 A per phase */
	dlm_phase_power_to_currents(&c, 4.14, i);
	CHECK_INT(dlm_phase_setpoint(&c, i, 0, DLM_BALANCE_MIN, sp), 0);
	CHECK_NEAR(sp[0], 6, 1e-9);
	/* a station minimum above 6 A */
	c.min_a = 8;
	CHECK_NEAR(dlm_phase_limit_one(&c, 7), 0, 0);
}

static void test_setpoint_and_balance(void)
{
	struct dlm_phase_cfg c = three();
	double sp[3];
	const double guide[3] = { 16, 16, 16 };
	CHECK_INT(dlm_phase_setpoint(&c, guide, 1, DLM_BALANCE_MIN, sp), 0);
	CHECK_NEAR(sp[0], 16, 0);
	CHECK_NEAR(sp[1], 16, 0);
	CHECK_NEAR(sp[2], 16, 0);
	const double uneven[3] = { 20, 10, 15 };
	/* no balance: each phase limited on its own */
	CHECK_INT(dlm_phase_setpoint(&c, uneven, 0, DLM_BALANCE_MIN, sp), 0);
	CHECK_NEAR(sp[0], 20, 0);
	CHECK_NEAR(sp[1], 10, 0);
	/* to the min: 10 A everywhere */
	CHECK_INT(dlm_phase_setpoint(&c, uneven, 1, DLM_BALANCE_MIN, sp), 0);
	for (int p = 0; p < 3; p++)
		CHECK_NEAR(sp[p], 10, 0);
	/* to the mean: 15 A everywhere, same power */
	CHECK_INT(dlm_phase_setpoint(&c, uneven, 1, DLM_BALANCE_MEAN, sp), 0);
	for (int p = 0; p < 3; p++)
		CHECK_NEAR(sp[p], 15, 1e-12);
	CHECK_NEAR(dlm_phase_currents_to_power(&c, sp), dlm_phase_currents_to_power(&c, uneven),
	           1e-9);
	/* min-balance of a phase under 6 A stops the whole station */
	const double weak[3] = { 16, 16, 4 };
	CHECK_INT(dlm_phase_setpoint(&c, weak, 1, DLM_BALANCE_MIN, sp), 0);
	CHECK_NEAR(sp[0] + sp[1] + sp[2], 0, 0);
	/* without balance only that phase stops */
	CHECK_INT(dlm_phase_setpoint(&c, weak, 0, DLM_BALANCE_MIN, sp), 0);
	CHECK_NEAR(sp[0], 16, 0);
	CHECK_NEAR(sp[2], 0, 0);
	/* over max on the mean */
	const double hot[3] = { 40, 40, 40 };
	CHECK_INT(dlm_phase_setpoint(&c, hot, 1, DLM_BALANCE_MEAN, sp), 0);
	CHECK_NEAR(sp[1], 32, 0);
	/* single phase: B and C are 0 whatever was asked; balance is a no-op */
	struct dlm_phase_cfg s = single();
	CHECK_INT(dlm_phase_setpoint(&s, uneven, 1, DLM_BALANCE_MIN, sp), 0);
	CHECK_NEAR(sp[0], 20, 0);
	CHECK_NEAR(sp[1], 0, 0);
	CHECK_NEAR(sp[2], 0, 0);
	const double bad[3] = { NAN, 1, 1 };
	CHECK_INT(dlm_phase_setpoint(&c, bad, 0, DLM_BALANCE_MIN, sp), V2G_ERR_INVAL);
}

static void test_ramp_up_in_steps(void)
{
	struct dlm_phase_cfg c = three();
	struct dlm_phase_ramp r;
	dlm_phase_ramp_init(&r);
	CHECK_INT(r.interval_ms, 2000);
	r.step_a = 4;
	double cur[3] = { 16, 16, 16 }, next[3];
	const double target[3] = { 32, 32, 32 }; /* the guide's ramp target */
	/* not yet due: nothing moves */
	CHECK_INT(dlm_phase_ramp_step(&c, &r, cur, target, 1999, next), 0);
	CHECK_NEAR(next[0], 16, 0);
	/* every 2 s, 4 A: 20, 24, 28, 32 */
	double expect[] = { 20, 24, 28, 32 };
	for (int k = 0; k < 4; k++) {
		int rc = dlm_phase_ramp_step(&c, &r, cur, target, 2000, next);
		CHECK_INT(rc, k == 3 ? 2 : 1);
		for (int p = 0; p < 3; p++)
			CHECK_NEAR(next[p], expect[k], 1e-12);
		memcpy(cur, next, sizeof(cur));
	}
	/* late by a minute: still one step */
	double cur2[3] = { 16, 16, 16 };
	CHECK_INT(dlm_phase_ramp_step(&c, &r, cur2, target, 60000, next), 1);
	CHECK_NEAR(next[0], 20, 0);
	/* already there */
	CHECK_INT(dlm_phase_ramp_step(&c, &r, target, target, 0, next), 2);
	/* step as a fraction of max: 0.25 x 32 = 8 A */
	r.step_a = 0;
	r.step_fraction = 0.25;
	CHECK_INT(dlm_phase_ramp_step(&c, &r, cur2, target, 2000, next), 1);
	CHECK_NEAR(next[0], 24, 1e-12);
	/* bad arguments */
	r.step_fraction = 0;
	CHECK_INT(dlm_phase_ramp_step(&c, &r, cur2, target, 2000, next), -1);
}

static void test_ramp_floor_and_down(void)
{
	struct dlm_phase_cfg c = three();
	struct dlm_phase_ramp r;
	dlm_phase_ramp_init(&r);
	r.step_a = 2;
	double zero[3] = { 0, 0, 0 }, next[3];
	const double target[3] = { 16, 16, 16 };
	/* starting from 0 a session starts at 6 A, not at 2 A */
	CHECK_INT(dlm_phase_ramp_step(&c, &r, zero, target, 2000, next), 1);
	CHECK_NEAR(next[0], 6, 0);
	double cur[3] = { 6, 6, 6 };
	CHECK_INT(dlm_phase_ramp_step(&c, &r, cur, target, 2000, next), 1);
	CHECK_NEAR(next[0], 8, 0);
	/* decreases land at once by default, even before the interval */
	double high[3] = { 32, 32, 32 };
	CHECK_INT(dlm_phase_ramp_step(&c, &r, high, target, 0, next), 2);
	CHECK_NEAR(next[0], 16, 0);
	/* mixed: A falls now, B waits for its step */
	double mixed[3] = { 20, 10, 16 };
	CHECK_INT(dlm_phase_ramp_step(&c, &r, mixed, target, 100, next), 1);
	CHECK_NEAR(next[0], 16, 0);
	CHECK_NEAR(next[1], 10, 0);
	/* ramp_down: 10 -> 8 -> 6 -> 0, never 4 */
	r.ramp_down = 1;
	double d[3] = { 10, 10, 10 };
	double seq[] = { 8, 6, 0 };
	for (int k = 0; k < 3; k++) {
		int rc = dlm_phase_ramp_step(&c, &r, d, zero, 2000, next);
		CHECK_INT(rc, k == 2 ? 2 : 1);
		CHECK_NEAR(next[0], seq[k], 0);
		memcpy(d, next, sizeof(d));
	}
	/* ramp_down but not due: nothing moves */
	double e[3] = { 10, 10, 10 };
	CHECK_INT(dlm_phase_ramp_step(&c, &r, e, zero, 500, next), 0);
	CHECK_NEAR(next[0], 10, 0);
}

static void test_rotation(void)
{
	struct dlm_phase_cfg s = single();
	double st[3] = { 16, 0, 0 }, site[3], back[3];
	s.rotation = 2; /* L1 wired to site phase C */
	dlm_phase_to_site(&s, st, site);
	CHECK_NEAR(site[0], 0, 0);
	CHECK_NEAR(site[2], 16, 0);
	dlm_phase_from_site(&s, site, back);
	CHECK_NEAR(back[0], 16, 0);
	struct dlm_phase_cfg t = three();
	t.rotation = 1;
	double s3[3] = { 1, 2, 3 };
	dlm_phase_to_site(&t, s3, site);
	CHECK_NEAR(site[1], 1, 0);
	CHECK_NEAR(site[2], 2, 0);
	CHECK_NEAR(site[0], 3, 0);
	dlm_phase_from_site(&t, site, back);
	for (int p = 0; p < 3; p++)
		CHECK_NEAR(back[p], s3[p], 0);
}

static void test_system_balance(void)
{
	struct dlm_phase_system s;
	/* three 16 A three-phase stations and one 32 A single-phase on A */
	double site[4][3] = { { 16, 16, 16 }, { 16, 16, 16 }, { 16, 16, 16 }, { 32, 0, 0 } };
	dlm_phase_system_balance((const double(*)[3])site, 4, 0.20, DLM_IMBALANCE_OF_MAX, &s);
	CHECK_NEAR(s.total[0], 80, 0);
	CHECK_NEAR(s.total[1], 48, 0);
	CHECK_NEAR(s.total[2], 48, 0);
	CHECK_INT(s.heaviest, 0);
	/* (80 - 48) / 80 = 0.40 > 0.20 */
	CHECK_NEAR(s.imbalance, 0.40, 1e-12);
	CHECK(!s.balanced);
	/* of the mean: 32 / 58.67 = 0.545 */
	dlm_phase_system_balance((const double(*)[3])site, 4, 0.20, DLM_IMBALANCE_OF_MEAN, &s);
	CHECK_NEAR(s.imbalance, 32 / (176 / 3.0), 1e-12);
	/* 16 A on A instead: (64 - 48) / 64 = 0.25, unbalanced; a 10 A one:
	 * (58 - 48) / 58 = 0.172, balanced */
	site[3][0] = 16;
	dlm_phase_system_balance((const double(*)[3])site, 4, 0.20, DLM_IMBALANCE_OF_MAX, &s);
	CHECK_NEAR(s.imbalance, 0.25, 1e-12);
	CHECK(!s.balanced);
	site[3][0] = 10;
	dlm_phase_system_balance((const double(*)[3])site, 4, 0.20, DLM_IMBALANCE_OF_MAX, &s);
	CHECK_NEAR(s.imbalance, 10.0 / 58, 1e-12);
	CHECK(s.balanced);
	/* exactly at the limit is balanced: (60 - 48) / 60 = 0.20 */
	site[3][0] = 12;
	dlm_phase_system_balance((const double(*)[3])site, 4, 0.20, DLM_IMBALANCE_OF_MAX, &s);
	CHECK_NEAR(s.imbalance, 0.20, 1e-12);
	CHECK(s.balanced);
	/* nothing flowing: balanced, imbalance 0 */
	dlm_phase_system_balance(NULL, 0, 0.20, DLM_IMBALANCE_OF_MAX, &s);
	CHECK_NEAR(s.imbalance, 0, 0);
	CHECK(s.balanced);
	json_t *j = dlm_phase_system_json(&s, 0.20, DLM_IMBALANCE_OF_MAX);
	CHECK(json_is_true(json_object_get(j, "balanced")));
	CHECK_STR(json_string_value(json_object_get(j, "definition")), "of_max");
	CHECK_NEAR(json_real_value(json_object_get(j, "max_imbalance")), 0.20, 0);
	json_decref(j);
}

static void test_rebalance_of_max(void)
{
	/* A carries 80 A, B and C 48 A: A must come down to 48 / 0.8 = 60 A */
	double site[4][3] = { { 16, 16, 16 }, { 16, 16, 16 }, { 16, 16, 16 }, { 32, 0, 0 } };
	size_t n = dlm_phase_system_rebalance(site, 4, 0.20, DLM_IMBALANCE_OF_MAX);
	CHECK_INT(n, 4); /* every contribution to A, none to B or C */
	struct dlm_phase_system s;
	dlm_phase_system_balance((const double(*)[3])site, 4, 0.20, DLM_IMBALANCE_OF_MAX, &s);
	CHECK_NEAR(s.total[0], 60, 1e-6);
	CHECK_NEAR(s.total[1], 48, 0);
	CHECK_NEAR(s.total[2], 48, 0);
	CHECK(s.balanced);
	/* proportional: each scaled by 60/80 */
	CHECK_NEAR(site[0][0], 12, 1e-6);
	CHECK_NEAR(site[3][0], 24, 1e-6);
	/* balanced already: nothing changes */
	CHECK_INT(dlm_phase_system_rebalance(site, 4, 0.20, DLM_IMBALANCE_OF_MAX), 0);
}

static void test_rebalance_stops_under_6a(void)
{
	/* A: 30 + 6 = 36, B = C = 20; limit (L - 20)/L <= 0.2 -> L = 25.
	 * Scaling by 25/36 would leave the 6 A station at 4.2 A: it stops
	 * and the 30 A one keeps 25 A. */
	double site[3][3] = { { 30, 0, 0 }, { 6, 0, 0 }, { 0, 20, 20 } };
	dlm_phase_system_rebalance(site, 3, 0.20, DLM_IMBALANCE_OF_MAX);
	CHECK_NEAR(site[1][0], 0, 0);
	CHECK_NEAR(site[0][0], 25, 1e-6);
	CHECK_NEAR(site[2][1], 20, 0);
	struct dlm_phase_system s;
	dlm_phase_system_balance((const double(*)[3])site, 3, 0.20, DLM_IMBALANCE_OF_MAX, &s);
	CHECK(s.balanced);
}

static void test_rebalance_of_mean(void)
{
	/* totals 80/48/48 under (max - min) / mean <= 0.20: the level L with
	 * (L - 48) / ((L + 96) / 3) = 0.2 -> L = 58.286 */
	double site[2][3] = { { 40, 24, 24 }, { 40, 24, 24 } };
	dlm_phase_system_rebalance(site, 2, 0.20, DLM_IMBALANCE_OF_MEAN);
	struct dlm_phase_system s;
	dlm_phase_system_balance((const double(*)[3])site, 2, 0.20, DLM_IMBALANCE_OF_MEAN, &s);
	double L = (48 + 0.2 * 96 / 3) / (1 - 0.2 / 3);
	CHECK_NEAR(L, 58.286, 0.001);
	CHECK_NEAR(s.total[0], L, 1e-6);
	CHECK(s.balanced);
	CHECK_NEAR(s.imbalance, 0.20, 1e-6);
	/* two heavy phases: both cut to the same level, the light one kept */
	double two[1][3] = { { 30, 30, 10 } };
	dlm_phase_system_rebalance(two, 1, 0.20, DLM_IMBALANCE_OF_MAX);
	CHECK_NEAR(two[0][0], 12.5, 1e-6);
	CHECK_NEAR(two[0][1], 12.5, 1e-6);
	CHECK_NEAR(two[0][2], 10, 0);
	/* a dead phase forces the others to 0 */
	double dead[1][3] = { { 16, 16, 0 } };
	dlm_phase_system_rebalance(dead, 1, 0.20, DLM_IMBALANCE_OF_MAX);
	CHECK_NEAR(dead[0][0] + dead[0][1], 0, 0);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults),          HCASE(test_cfg_from_capability),
		HCASE(test_power_to_currents), HCASE(test_currents_to_power),
		HCASE(test_iec_minimum),       HCASE(test_setpoint_and_balance),
		HCASE(test_ramp_up_in_steps),  HCASE(test_ramp_floor_and_down),
		HCASE(test_rotation),          HCASE(test_system_balance),
		HCASE(test_rebalance_of_max),  HCASE(test_rebalance_stops_under_6a),
		HCASE(test_rebalance_of_mean),
	};
	return harness_main("site-dlm-phase", cases, HARNESS_N(cases));
}
