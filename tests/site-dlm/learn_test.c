/* Station plans from meters (learn.h): the announced kind, phases, rating
 * and priority pick the profile and cap it; what is not announced is
 * inferred from the meter's shape; every plan is one the capability
 * registry accepts; and the announcement table. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/learn.h"
#include "v2g/err.h"

static struct dlm_meter_shape shape(const char *kind, int phases, double max_kw, int priority,
                                    int has_current, double a, double b, double c)
{
	struct dlm_meter_shape m;
	memset(&m, 0, sizeof(m));
	snprintf(m.ann.kind, sizeof(m.ann.kind), "%s", kind);
	m.ann.phases = phases;
	m.ann.max_kw = max_kw;
	m.ann.priority = priority;
	m.has_current = has_current;
	m.current_a[0] = a;
	m.current_a[1] = b;
	m.current_a[2] = c;
	return m;
}

/* Plans m, records the capability, and checks profile and maximum power. */
static void check_plan(int line, const struct dlm_meter_shape *m, const char *profile,
                       double power_max_kw, int rotation, int priority)
{
	struct dlm_station_plan p;
	struct dlm_cap_registry *r = dlm_cap_registry_alloc();
	const struct dlm_cap *cap = NULL;

	dlm_learn_plan(m, 5, &p);
	if (strcmp(p.profile, profile) != 0)
		harness_fail(__FILE__, line, "profile %s, expected %s", p.profile, profile);
	if (p.rotation != rotation)
		harness_fail(__FILE__, line, "rotation %d, expected %d", p.rotation, rotation);
	if (p.priority != priority)
		harness_fail(__FILE__, line, "priority %d, expected %d", p.priority, priority);
	/* the plan is always one the registry takes */
	int rc = dlm_cap_discover(r, "s1", "mqtt", p.profile, &p.ov, &cap);
	if (rc)
		harness_fail(__FILE__, line, "discover refused the plan: %d", rc);
	else if (fabs(cap->power_max_kw - power_max_kw) > 1e-6)
		harness_fail(__FILE__, line, "power_max_kw %.6f, expected %.6f", cap->power_max_kw,
		             power_max_kw);
	dlm_cap_registry_free(r);
}
#define PLAN(m, profile, kw, rot, prio)                            \
	do {                                                       \
		struct dlm_meter_shape _m = m;                     \
		check_plan(__LINE__, &_m, profile, kw, rot, prio); \
	} while (0)

static void test_announced(void)
{
	/* what v2g-site-sim's demo site announces */
	PLAN(shape("ac", 3, 22, 5, 1, 31.7, 31.7, 31.7), "ac_level2_three", 22, 0, 5);
	PLAN(shape("ac", 3, 11, 8, 1, 15.9, 15.9, 15.9), "ac_level2_three", 11, 0, 8);
	/* single-phase, wired on B (the phase with current), 7.4 kW */
	PLAN(shape("ac", 1, 7.4, 2, 1, 0, 30.8, 0), "ac_level2_single", 7.4, 1, 2);
	/* ... and idle: no wiring to see yet -> L1 on A */
	PLAN(shape("ac", 1, 7.4, 9, 1, 0, 0, 0), "ac_level2_single", 7.4, 0, 9);
	PLAN(shape("ac", 1, 7.4, 9, 0, NAN, NAN, NAN), "ac_level2_single", 7.4, 0, 9);
	/* DC: by rating; 150 is the medium profile's own maximum */
	PLAN(shape("dc", 3, 150, 7, 0, NAN, NAN, NAN), "dcfc_ccs_medium", 150, 0, 7);
	PLAN(shape("dc", 3, 100, 5, 0, NAN, NAN, NAN), "dcfc_ccs_medium", 100, 0, 5);
	PLAN(shape("dc", 0, 150.5, 5, 0, NAN, NAN, NAN), "dcfc_ccs_high", 150.5, 0, 5);
	PLAN(shape("dc", 0, 350, 5, 0, NAN, NAN, NAN), "dcfc_ccs_high", 350, 0, 5);
	/* a rating caps, never raises the profile */
	PLAN(shape("dc", 0, 400, 5, 0, NAN, NAN, NAN), "dcfc_ccs_high", 350, 0, 5);
	PLAN(shape("ac", 3, 50, 5, 1, 10, 10, 10), "ac_level2_three", 22.08, 0, 5);
	/* a 10 kW DC wallbox under the medium profile's 20 kW minimum */
	PLAN(shape("dc", 0, 10, 5, 0, NAN, NAN, NAN), "dcfc_ccs_medium", 10, 0, 5);
	/* an AC rating under the IEC 6 A minimum: 6 A is the least it can run */
	PLAN(shape("ac", 1, 1, 5, 1, 0, 0, 0), "ac_level2_single", 6 * 240 / 1000.0, 0, 5);
	/* kind says DC although the meter has currents (its AC feed) */
	PLAN(shape("dc", 3, 50, 4, 1, 70, 70, 70), "dcfc_ccs_medium", 50, 0, 4);
	/* kind says AC although no currents are reported */
	PLAN(shape("ac", 3, 0, 0, 0, NAN, NAN, NAN), "ac_level2_three", 22.08, 0, 5);

	struct dlm_station_plan p;
	struct dlm_meter_shape m = shape("ac", 3, 11, 8, 1, 15.9, 15.9, 15.9);
	dlm_learn_plan(&m, 5, &p);
	CHECK_INT(p.inferred, 0);
	/* 11 kW over 3 x 230 V: 15.94 A per phase */
	CHECK_NEAR(p.ov.current_max, 11000.0 / 690.0, 1e-9);
}

static void test_inferred(void)
{
	struct dlm_station_plan p;
	struct dlm_meter_shape m;

	/* nothing announced: today's inference from the shape */
	PLAN(shape("", 0, 0, 0, 0, NAN, NAN, NAN), "dcfc_ccs_medium", 150, 0, 5);
	PLAN(shape("", 0, 0, 0, 1, 0, 0, 16), "ac_level2_single", 19.2, 2, 5);
	PLAN(shape("", 0, 0, 0, 1, 16, 16, 16), "ac_level2_three", 22.08, 0, 5);
	PLAN(shape("", 0, 0, 0, 1, 0, 0, 0), "ac_level2_three", 22.08, 0, 5);
	PLAN(shape("", 0, 0, 0, 1, 16, NAN, NAN), "ac_level2_single", 19.2, 0, 5);
	m = shape("", 0, 0, 0, 1, 16, 16, 16);
	dlm_learn_plan(&m, 5, &p);
	CHECK_INT(p.inferred, DLM_LEARN_INFERRED_TYPE | DLM_LEARN_INFERRED_PHASES);

	/* AC without phases: the shape decides single or three */
	PLAN(shape("ac", 0, 7.4, 3, 1, 0, 31, 0), "ac_level2_single", 7.4, 1, 3);
	m = shape("ac", 0, 7.4, 3, 1, 0, 31, 0);
	dlm_learn_plan(&m, 5, &p);
	CHECK_INT(p.inferred, DLM_LEARN_INFERRED_PHASES);
	/* a rating without a kind still caps, and picks the DC class */
	PLAN(shape("", 0, 60, 0, 0, NAN, NAN, NAN), "dcfc_ccs_medium", 60, 0, 5);
	PLAN(shape("", 0, 300, 0, 0, NAN, NAN, NAN), "dcfc_ccs_high", 300, 0, 5);
	PLAN(shape("", 3, 11, 0, 1, 15, 15, 15), "ac_level2_three", 11, 0, 5);

	/* priority: announced, else the default (clamped to 1..10) */
	m = shape("", 0, 0, 0, 0, NAN, NAN, NAN);
	dlm_learn_plan(&m, 7, &p);
	CHECK_INT(p.priority, 7);
	dlm_learn_plan(&m, 0, &p);
	CHECK_INT(p.priority, 1);
	m.ann.priority = 11; /* out of range: not an announcement */
	dlm_learn_plan(&m, 4, &p);
	CHECK_INT(p.priority, 4);
	m.ann.priority = 10;
	dlm_learn_plan(&m, 4, &p);
	CHECK_INT(p.priority, 10);
	/* nonsense values count as absent */
	m = shape("xx", 2, -5, 0, 0, NAN, NAN, NAN);
	dlm_learn_plan(&m, 5, &p);
	CHECK_STR(p.profile, "dcfc_ccs_medium");
	CHECK_NEAR(p.ov.power_max_kw, 0, 0);
}

static void test_announce_diff(void)
{
	struct dlm_announce a = { "ac", 3, 22, 5 }, b = a;
	CHECK_INT(dlm_announce_diff(&a, &b), 0);
	b.priority = 6;
	CHECK_INT(dlm_announce_diff(&a, &b), DLM_ANN_PRIORITY);
	b = a;
	b.max_kw = 11;
	CHECK_INT(dlm_announce_diff(&a, &b), DLM_ANN_CAP);
	b.phases = 1;
	b.priority = 0;
	CHECK_INT(dlm_announce_diff(&a, &b), DLM_ANN_CAP | DLM_ANN_PRIORITY);
	b = a;
	strcpy(b.kind, "dc");
	CHECK_INT(dlm_announce_diff(&a, &b), DLM_ANN_CAP);
	struct dlm_announce none;
	memset(&none, 0, sizeof(none));
	CHECK_INT(dlm_announce_diff(&none, &none), 0);
}

static void test_table(void)
{
	struct dlm_learned *t = dlm_learned_alloc();
	struct dlm_announce a = { "dc", 3, 150, 7 }, got;
	char id[32];

	CHECK(t != NULL);
	CHECK_INT(dlm_learned_get(t, "dc-01", &got), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_learned_put(t, "dc-01", &a), 0);
	CHECK_INT(dlm_learned_get(t, "dc-01", &got), 0);
	CHECK_STR(got.kind, "dc");
	CHECK_NEAR(got.max_kw, 150, 0);
	CHECK_INT(got.priority, 7);
	a.priority = 3;
	CHECK_INT(dlm_learned_put(t, "dc-01", &a), 0);
	CHECK_INT(dlm_learned_get(t, "dc-01", &got), 0);
	CHECK_INT(got.priority, 3);
	CHECK_INT(dlm_learned_count(t), 1);

	CHECK_INT(dlm_learned_put(t, "", &a), V2G_ERR_INVAL);
	CHECK_INT(
	        dlm_learned_put(
	                t, "0123456789012345678901234567890123456789012345678901234567890123", &a),
	        V2G_ERR_INVAL);

	/* many: the table grows and finds them all */
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "st-%d", i);
		a.priority = 1 + i % 10;
		CHECK_INT(dlm_learned_put(t, id, &a), 0);
	}
	CHECK_INT(dlm_learned_count(t), 3001);
	int bad = 0;
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "st-%d", i);
		bad += dlm_learned_get(t, id, &got) != 0 || got.priority != 1 + i % 10;
	}
	CHECK_INT(bad, 0);
	CHECK_INT(dlm_learned_remove(t, "st-5"), 0);
	CHECK_INT(dlm_learned_remove(t, "st-5"), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_learned_get(t, "st-5", NULL), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_learned_get(t, "st-6", NULL), 0);
	CHECK_INT(dlm_learned_count(t), 3000);
	dlm_learned_free(t);
	dlm_learned_free(NULL);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_announced),
		HCASE(test_inferred),
		HCASE(test_announce_diff),
		HCASE(test_table),
	};
	return harness_main("site-dlm-learn", cases, HARNESS_N(cases));
}
