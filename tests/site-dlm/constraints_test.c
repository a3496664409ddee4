/* Site constraints against the DLM guide 3.1: the guide's service (400 A,
 * 250 kW, 480 V, 3 phases, NEC 0.80), feeder (225 A breaker, 200 A cable,
 * 120 kW) and transformer (300 kVA x 0.80, 80 C), its measurement example
 * (180 kW, 250/260/255 A, 480/478/482 V, pf 0.95, 60.1 Hz), the headroom
 * under every constraint at once, per-feeder headroom, and each violation
 * with its severity. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/constraints.h"
#include "../../services/site-dlm/phase.h"
#include "v2g/err.h"

/* The guide's measurement example. */
static struct dlm_service_meas guide_meas(void)
{
	return (struct dlm_service_meas){ .power_kw = 180,
		                          .current_a = { 250, 260, 255 },
		                          .voltage_v = { 480, 478, 482 },
		                          .power_factor = 0.95,
		                          .frequency_hz = 60.1 };
}

static const char *const FEEDER1_STATIONS[] = { "station_1", "station_2", "station_3" };

static struct dlm_feeder_cfg guide_feeder(void)
{
	struct dlm_feeder_cfg f = dlm_feeder_defaults();
	f.name = "Main Parking Lot";
	f.stations = FEEDER1_STATIONS;
	f.n_stations = 3;
	return f;
}

static const char *const XFMR1_FEEDERS[] = { "feeder_1", "feeder_2" };

static struct dlm_transformer_cfg guide_xfmr(void)
{
	struct dlm_transformer_cfg t = dlm_transformer_defaults();
	t.name = "Main Transformer";
	t.feeders = XFMR1_FEEDERS;
	t.n_feeders = 2;
	return t;
}

/* Does the active list hold (type, subject) with this severity? */
static int has_viol(const struct dlm_site *s, enum dlm_violation_type type, const char *subject,
                    int severity)
{
	struct dlm_violation v[64];
	size_t n = dlm_site_violations(s, DLM_SEV_ANY, 64, v);
	for (size_t i = 0; i < n; i++)
		if (v[i].type == type && strcmp(v[i].subject, subject) == 0)
			return (int)v[i].severity == severity;
	return 0;
}

static int has_type(const struct dlm_site *s, enum dlm_violation_type type)
{
	struct dlm_violation v[64];
	size_t n = dlm_site_violations(s, DLM_SEV_ANY, 64, v);
	for (size_t i = 0; i < n; i++)
		if (v[i].type == type)
			return 1;
	return 0;
}

static void test_defaults_are_the_guides(void)
{
	struct dlm_service_cfg c = dlm_service_defaults();
	CHECK_NEAR(c.max_current_a, 400, 0);
	CHECK_NEAR(c.max_power_kw, 250, 0);
	CHECK_NEAR(c.voltage_v, 480, 0);
	CHECK_INT(c.phases, 3);
	CHECK_NEAR(c.max_imbalance, 0.10, 0);
	CHECK_NEAR(c.min_power_factor, 0.90, 0);
	CHECK_NEAR(c.frequency_hz, 60, 0);
	CHECK_NEAR(c.frequency_tolerance_hz, 0.5, 0);
	CHECK_NEAR(c.nec625_factor, 0.80, 0);
	struct dlm_feeder_cfg f = dlm_feeder_defaults();
	CHECK_NEAR(f.max_current_a, 200, 0);
	CHECK_NEAR(f.max_power_kw, 120, 0);
	CHECK_INT(f.phases, 3);
	CHECK_NEAR(f.breaker_rating_a, 225, 0);
	CHECK_NEAR(f.cable_ampacity_a, 200, 0);
	struct dlm_transformer_cfg t = dlm_transformer_defaults();
	CHECK_NEAR(t.rated_kva, 300, 0);
	CHECK_NEAR(t.continuous_factor, 0.80, 0);
	CHECK_NEAR(t.max_temp_c, 80, 0);
	CHECK_NEAR(t.derate_band_c, 10, 0);
	CHECK_STR(t.cooling, "ONAN");
}

static void test_conversions(void)
{
	/* 400 A at 480 V three-phase: sqrt(3) * 480 * 400 = 332.55 kW */
	CHECK_NEAR(dlm_current_to_kw(3, 480, 400, 1.0), 332.554, 0.001);
	CHECK_NEAR(dlm_current_to_kw(3, 480, 400, 0.95), 315.926, 0.001);
	CHECK_NEAR(dlm_current_to_kw(1, 240, 32, 1.0), 7.68, 1e-9);
	CHECK_NEAR(dlm_kw_to_current(3, 480, 332.554, 1.0), 400, 0.01);
	CHECK_NEAR(dlm_kw_to_current(1, 240, 7.68, 1.0), 32, 1e-9);
	CHECK_NEAR(dlm_kw_to_current(3, 0, 10, 1.0), 0, 0);
	/* the guide's currents: (260 - 250) / 260 = 3.85 % (max - min over max) */
	double cur[3] = { 250, 260, 255 };
	CHECK_NEAR(dlm_phase_imbalance(cur, DLM_IMBALANCE_OF_MAX), 10.0 / 260.0, 1e-12);
	CHECK_NEAR(dlm_phase_imbalance(cur, DLM_IMBALANCE_OF_MAX), 0.0385, 0.0001);
	double zero[3] = { 0, 0, 0 };
	CHECK_NEAR(dlm_phase_imbalance(zero, DLM_IMBALANCE_OF_MAX), 0, 0);
}

static void test_nec_power_limit_no_load(void)
{
	struct dlm_site *s = dlm_site_new();
	/* 250 kW x 0.8 = 200 kW continuous; the current allows 332.6 kW */
	struct dlm_headroom h;
	CHECK_INT(dlm_site_capacity(s, &h, NULL, 0), 0);
	CHECK_NEAR(h.available_kw, 200, 1e-9);
	CHECK_NEAR(h.limit_kw, 200, 1e-9);
	CHECK_NEAR(h.load_kw, 0, 0);
	CHECK_STR(h.binding, "service_power");
	CHECK_NEAR(dlm_site_available_kw(s), 200, 1e-9);
	dlm_site_free(s);
}

static void test_current_limit_binds(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_cfg c = dlm_service_defaults();
	c.max_power_kw = 1000; /* 800 kW continuous: the 400 A bind */
	CHECK_INT(dlm_site_configure_service(s, &c), 0);
	struct dlm_headroom h;
	dlm_site_capacity(s, &h, NULL, 0);
	CHECK_NEAR(h.available_kw, 332.554, 0.001);
	CHECK_STR(h.binding, "service_current");

	/* the guide's measurements: the heaviest phase (260 A) leaves 140 A,
	 * at pf 0.95: sqrt(3) * 480 * 140 * 0.95 / 1000 = 110.57 kW */
	struct dlm_service_meas m = guide_meas();
	CHECK_INT(dlm_site_update_service(s, &m, 1000), 0);
	dlm_site_capacity(s, &h, NULL, 0);
	CHECK_NEAR(h.available_kw, 110.574, 0.001);
	CHECK_NEAR(h.load_kw, 180, 0);
	CHECK_NEAR(h.limit_kw, 290.574, 0.001);
	CHECK_STR(h.binding, "service_current");
	/* at pf 1: 116.39 kW */
	m.power_factor = 1.0;
	dlm_site_update_service(s, &m, 1000);
	CHECK_NEAR(dlm_site_available_kw(s), 116.394, 0.001);
	dlm_site_free(s);
}

static void test_guide_example(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_meas m = guide_meas();
	CHECK_INT(dlm_site_update_service(s, &m, 1000), 0);
	/* 200 kW continuous - 180 kW = 20 kW; the current would allow 110.6 */
	struct dlm_headroom h;
	dlm_site_capacity(s, &h, NULL, 0);
	CHECK_NEAR(h.available_kw, 20, 1e-9);
	CHECK_NEAR(h.limit_kw, 200, 1e-9);
	CHECK_STR(h.binding, "service_power");
	/* inside every limit: imbalance 3.85 % < 10 %, pf 0.95 >= 0.90,
	 * voltages within 0.5 %, 60.1 Hz within 0.5 Hz */
	CHECK_INT(dlm_site_check(s, 1000), 0);
	CHECK_INT(dlm_site_violation_count(s, DLM_SEV_ANY), 0);

	/* the guide's feeder and transformer too: still 20 kW for the site */
	struct dlm_feeder_cfg f = guide_feeder();
	CHECK_INT(dlm_site_configure_feeder(s, "feeder_1", &f), 0);
	struct dlm_transformer_cfg t = guide_xfmr();
	CHECK_INT(dlm_site_configure_transformer(s, "transformer_1", &t), 0);
	CHECK_NEAR(dlm_site_available_kw(s), 20, 1e-9);
	dlm_site_free(s);
}

static void test_over_power(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_meas m = guide_meas();
	m.power_kw = 210; /* over 200 continuous, under the 250 rating */
	dlm_site_update_service(s, &m, 0);
	CHECK_NEAR(dlm_site_available_kw(s), -10, 1e-9);
	CHECK_INT(dlm_site_check(s, 0), 1);
	CHECK(has_viol(s, DLM_VIOL_SERVICE_POWER, "service", DLM_SEV_WARNING));
	m.power_kw = 260; /* over the rating */
	dlm_site_update_service(s, &m, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_SERVICE_POWER, "service", DLM_SEV_CRITICAL));
	struct dlm_violation v;
	CHECK_INT(dlm_site_violations(s, DLM_SEV_CRITICAL, 1, &v), 1);
	CHECK_NEAR(v.value, 260, 0);
	CHECK_NEAR(v.limit, 250, 0);
	CHECK(strstr(v.message, "260.0 kW") != NULL);
	m.power_kw = 200; /* exactly at the limit is fine */
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_check(s, 0), 0);
	dlm_site_free(s);
}

static void test_over_current_per_phase(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_meas m = guide_meas();
	m.current_a[0] = 395;
	m.current_a[1] = 410;
	m.current_a[2] = 400;
	dlm_site_update_service(s, &m, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_SERVICE_CURRENT, "B", DLM_SEV_CRITICAL));
	CHECK(!has_viol(s, DLM_VIOL_SERVICE_CURRENT, "A", DLM_SEV_CRITICAL));
	CHECK(!has_viol(s, DLM_VIOL_SERVICE_CURRENT, "C", DLM_SEV_CRITICAL));
	CHECK_INT(dlm_site_violation_count(s, DLM_SEV_CRITICAL), 1);
	/* the headroom under the current is negative: 10 A over on B */
	struct dlm_service_cfg c = dlm_service_defaults();
	c.max_power_kw = 1000;
	dlm_site_configure_service(s, &c);
	CHECK_NEAR(dlm_site_available_kw(s), dlm_current_to_kw(3, 480, -10, 0.95), 1e-9);
	dlm_site_free(s);
}

static void test_imbalance(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_meas m = guide_meas();
	/* (260 - 230) / 260 = 11.5 % > 10 %: warning */
	m.current_a[0] = 230;
	dlm_site_update_service(s, &m, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_PHASE_IMBALANCE, "service", DLM_SEV_WARNING));
	struct dlm_violation v;
	dlm_site_violations(s, DLM_SEV_WARNING, 1, &v);
	CHECK_NEAR(v.value, 30.0 / 260.0, 1e-12);
	CHECK_NEAR(v.limit, 0.10, 0);
	/* (260 - 200) / 260 = 23 % > 2 x 10 %: critical */
	m.current_a[0] = 200;
	dlm_site_update_service(s, &m, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_PHASE_IMBALANCE, "service", DLM_SEV_CRITICAL));
	/* (260 - 236) / 260 = 9.2 %: fine */
	m.current_a[0] = 236;
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_check(s, 0), 0);
	/* single phase: no imbalance */
	struct dlm_service_cfg c = dlm_service_defaults();
	c.phases = 1;
	c.voltage_v = 240;
	dlm_site_configure_service(s, &c);
	m.current_a[0] = 100;
	m.voltage_v[0] = 240;
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_check(s, 0), 0);
	dlm_site_free(s);
}

static void test_power_factor(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_meas m = guide_meas();
	m.power_factor = 0.85;
	dlm_site_update_service(s, &m, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_POWER_FACTOR, "service", DLM_SEV_WARNING));
	m.power_factor = 0.90; /* at the minimum is fine */
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_check(s, 0), 0);
	m.power_factor = 0; /* not measured: skipped */
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_check(s, 0), 0);
	dlm_site_free(s);
}

static void test_voltage_deviation(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_meas m = guide_meas();
	m.voltage_v[0] = 456; /* -5.0 %: at the limit */
	m.voltage_v[1] = 450; /* -6.25 %: warning */
	m.voltage_v[2] = 530; /* +10.4 %: critical */
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_check(s, 0), 2);
	CHECK(!has_type(s, DLM_VIOL_SERVICE_POWER));
	CHECK(has_viol(s, DLM_VIOL_VOLTAGE, "B", DLM_SEV_WARNING));
	CHECK(has_viol(s, DLM_VIOL_VOLTAGE, "C", DLM_SEV_CRITICAL));
	CHECK(!has_viol(s, DLM_VIOL_VOLTAGE, "A", DLM_SEV_WARNING));
	m.voltage_v[0] = 430; /* -10.4 % */
	m.voltage_v[1] = 504; /* +5.0 % */
	m.voltage_v[2] = 0;   /* not measured */
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_check(s, 0), 1);
	CHECK(has_viol(s, DLM_VIOL_VOLTAGE, "A", DLM_SEV_CRITICAL));
	dlm_site_free(s);
}

static void test_frequency_deviation(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_meas m = guide_meas();
	m.frequency_hz = 60.5; /* at the 0.5 Hz limit */
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_check(s, 0), 0);
	m.frequency_hz = 59.4; /* 0.6 Hz: warning */
	dlm_site_update_service(s, &m, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_FREQUENCY, "service", DLM_SEV_WARNING));
	m.frequency_hz = 61.1; /* 1.1 Hz > 2 x 0.5: critical */
	dlm_site_update_service(s, &m, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_FREQUENCY, "service", DLM_SEV_CRITICAL));
	dlm_site_free(s);
}

static void test_filter_limit_order_since(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_meas m = guide_meas();
	m.power_factor = 0.85; /* warning */
	m.frequency_hz = 61.5; /* critical */
	m.current_a[2] = 420;  /* critical on C */
	m.voltage_v[0] = 450;  /* warning on A */
	dlm_site_update_service(s, &m, 1000);
	CHECK_INT(dlm_site_check(s, 1000), 5); /* and imbalance (420-250)/420 critical */
	struct dlm_violation v[8];
	size_t n = dlm_site_violations(s, DLM_SEV_ANY, 8, v);
	CHECK_INT(n, 5);
	/* most severe first */
	for (size_t i = 1; i < n; i++)
		CHECK(v[i - 1].severity >= v[i].severity);
	CHECK_INT(dlm_site_violations(s, DLM_SEV_CRITICAL, 8, v), 3);
	for (int i = 0; i < 3; i++)
		CHECK_INT(v[i].severity, DLM_SEV_CRITICAL);
	CHECK_INT(dlm_site_violations(s, DLM_SEV_WARNING, 8, v), 2);
	CHECK_INT(dlm_site_violations(s, DLM_SEV_INFO, 8, v), 0);
	/* limit */
	CHECK_INT(dlm_site_violations(s, DLM_SEV_CRITICAL, 2, v), 2);
	CHECK_INT(dlm_site_violations(s, DLM_SEV_ANY, 0, v), 0);
	CHECK_INT(dlm_site_violation_count(s, DLM_SEV_CRITICAL), 3);
	CHECK_INT(dlm_severity_parse("critical"), DLM_SEV_CRITICAL);
	CHECK_INT(dlm_severity_parse("warning"), DLM_SEV_WARNING);
	CHECK_INT(dlm_severity_parse("info"), DLM_SEV_INFO);
	CHECK_INT(dlm_severity_parse("bogus"), DLM_SEV_ANY);

	/* since_ms is kept while a violation stays; a new one starts now */
	m.power_factor = 0.95;
	dlm_site_update_service(s, &m, 2000);
	dlm_site_check(s, 2000);
	n = dlm_site_violations(s, DLM_SEV_ANY, 8, v);
	CHECK_INT(n, 4);
	for (size_t i = 0; i < n; i++)
		CHECK_INT(v[i].since_ms, 1000);
	m.power_factor = 0.85;
	dlm_site_update_service(s, &m, 3000);
	dlm_site_check(s, 3000);
	n = dlm_site_violations(s, DLM_SEV_WARNING, 8, v);
	int seen = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].type == DLM_VIOL_POWER_FACTOR) {
			CHECK_INT(v[i].since_ms, 3000);
			seen = 1;
		}
	CHECK(seen);
	dlm_site_free(s);
}

static void test_feeder_limits(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_feeder_cfg f = guide_feeder();
	CHECK_INT(dlm_site_configure_feeder(s, "feeder_1", &f), 0);
	CHECK_INT(dlm_site_feeder_count(s), 1);
	CHECK_STR(dlm_site_feeder_id(s, 0), "feeder_1");
	CHECK(dlm_site_feeder_id(s, 1) == NULL);
	/* 225 A x 0.8 = 180 A (under the 200 A cable) -> 149.6 kW; 120 kW binds */
	struct dlm_headroom h;
	CHECK_INT(dlm_site_feeder_available(s, "feeder_1", &h), 0);
	CHECK_NEAR(h.available_kw, 120, 1e-9);
	CHECK_STR(h.binding, "feeder_power");
	/* no separate power or current limit: the breaker x NEC binds */
	f.max_power_kw = 0;
	f.max_current_a = 0;
	dlm_site_configure_feeder(s, "feeder_1", &f);
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.available_kw, dlm_current_to_kw(3, 480, 180, 1), 1e-9);
	CHECK_NEAR(h.available_kw, 149.649, 0.001);
	CHECK_STR(h.binding, "feeder_breaker");
	/* a 150 A cable binds below the 180 A */
	f.cable_ampacity_a = 150;
	dlm_site_configure_feeder(s, "feeder_1", &f);
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.available_kw, dlm_current_to_kw(3, 480, 150, 1), 1e-9);
	CHECK_STR(h.binding, "feeder_ampacity");
	/* max_current below both */
	f.max_current_a = 100;
	dlm_site_configure_feeder(s, "feeder_1", &f);
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.available_kw, dlm_current_to_kw(3, 480, 100, 1), 1e-9);
	CHECK_STR(h.binding, "feeder_current");
	CHECK_INT(dlm_site_feeder_available(s, "nope", &h), V2G_ERR_NOTFOUND);
	dlm_site_free(s);
}

/* The "a feeder limit respected even when the service would allow
 * more". */
static void test_feeder_binds_below_service(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_feeder_cfg f = guide_feeder();
	dlm_site_configure_feeder(s, "feeder_1", &f);
	struct dlm_service_meas m = guide_meas();
	m.power_kw = 100;
	m.power_factor = 1.0;
	dlm_site_update_service(s, &m, 0);
	CHECK_INT(dlm_site_update_feeder(s, "feeder_1", 100, 130, 0), 0);
	struct dlm_headroom site, fh[2];
	CHECK_INT(dlm_site_capacity(s, &site, fh, 2), 1);
	CHECK_NEAR(site.available_kw, 100, 1e-9); /* 200 - 100 */
	/* min(120 - 100, (180 - 130) A -> 41.6 kW) = 20 kW */
	CHECK_NEAR(fh[0].available_kw, 20, 1e-9);
	CHECK_NEAR(fh[0].load_kw, 100, 0);
	CHECK_NEAR(fh[0].limit_kw, 120, 1e-9);
	CHECK_STR(fh[0].binding, "feeder_power");
	/* current binding: 170 A leaves 10 A = 8.3 kW */
	dlm_site_update_feeder(s, "feeder_1", 100, 170, 0);
	dlm_site_capacity(s, NULL, fh, 1);
	CHECK_NEAR(fh[0].available_kw, dlm_current_to_kw(3, 480, 10, 1), 1e-9);
	CHECK_STR(fh[0].binding, "feeder_breaker");
	CHECK_INT(dlm_site_update_feeder(s, "nope", 1, 1, 0), V2G_ERR_NOTFOUND);
	dlm_site_free(s);
}

static void test_feeder_load_from_stations(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_feeder_cfg f = guide_feeder();
	dlm_site_configure_feeder(s, "feeder_1", &f);
	CHECK_INT(dlm_site_station_feeder(s, "station_2"), 0);
	CHECK_INT(dlm_site_station_feeder(s, "station_9"), -1);
	CHECK_INT(dlm_site_update_station(s, "station_1", 40, 0), 0);
	CHECK_INT(dlm_site_update_station(s, "station_2", 40, 0), 0);
	CHECK_INT(dlm_site_update_station(s, "station_3", 30, 0), 0);
	CHECK_INT(dlm_site_update_station(s, "station_9", 50, 0), 0); /* on no feeder */
	struct dlm_headroom h, site;
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.load_kw, 110, 1e-9);
	CHECK_NEAR(h.available_kw, 10, 1e-9);
	/* no service meter: the site load is every station */
	dlm_site_capacity(s, &site, NULL, 0);
	CHECK_NEAR(site.load_kw, 160, 1e-9);
	CHECK_NEAR(site.available_kw, 40, 1e-9);
	/* an update replaces, not adds */
	dlm_site_update_station(s, "station_3", 10, 1);
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.load_kw, 90, 1e-9);
	/* stations over the feeder's 120 kW: a critical feeder_power violation */
	dlm_site_update_station(s, "station_3", 45, 2);
	dlm_site_check(s, 2);
	CHECK(has_viol(s, DLM_VIOL_FEEDER_POWER, "feeder_1", DLM_SEV_CRITICAL));
	/* a measured feeder power wins over the stations' sum */
	dlm_site_update_feeder(s, "feeder_1", 60, NAN, 3);
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.load_kw, 60, 1e-9);
	/* a station cannot sit on two feeders */
	struct dlm_feeder_cfg g = dlm_feeder_defaults();
	const char *const one[] = { "station_2" };
	g.stations = one;
	g.n_stations = 1;
	CHECK_INT(dlm_site_configure_feeder(s, "feeder_2", &g), V2G_ERR_INVAL);
	CHECK_INT(dlm_site_feeder_count(s), 1);
	/* moving it: take it off feeder_1 first */
	const char *const two[] = { "station_1", "station_3" };
	f.stations = two;
	f.n_stations = 2;
	CHECK_INT(dlm_site_configure_feeder(s, "feeder_1", &f), 0);
	CHECK_INT(dlm_site_configure_feeder(s, "feeder_2", &g), 0);
	CHECK_INT(dlm_site_station_feeder(s, "station_2"), 1);
	dlm_site_update_feeder(s, "feeder_1", NAN, NAN, 4);
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.load_kw, 85, 1e-9); /* 40 + 45 */
	dlm_site_feeder_available(s, "feeder_2", &h);
	CHECK_NEAR(h.load_kw, 40, 1e-9);
	/* removal */
	CHECK_INT(dlm_site_remove_feeder(s, "feeder_1"), 0);
	CHECK_INT(dlm_site_remove_feeder(s, "feeder_1"), V2G_ERR_NOTFOUND);
	CHECK_INT(dlm_site_station_feeder(s, "station_1"), -1);
	CHECK_INT(dlm_site_station_feeder(s, "station_2"), 0);
	CHECK_STR(dlm_site_feeder_id(s, 0), "feeder_2");
	dlm_site_free(s);
}

static void test_feeder_violations(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_feeder_cfg f = guide_feeder();
	dlm_site_configure_feeder(s, "feeder_1", &f);
	/* 190 A: over 225 x 0.8 = 180 A continuous (warning), under the cable */
	dlm_site_update_feeder(s, "feeder_1", 100, 190, 0);
	CHECK_INT(dlm_site_check(s, 0), 1);
	CHECK(has_viol(s, DLM_VIOL_FEEDER_BREAKER, "feeder_1", DLM_SEV_WARNING));
	/* 210 A: over the cable and max current, under the breaker */
	dlm_site_update_feeder(s, "feeder_1", 100, 210, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_FEEDER_BREAKER, "feeder_1", DLM_SEV_WARNING));
	CHECK(has_viol(s, DLM_VIOL_FEEDER_AMPACITY, "feeder_1", DLM_SEV_CRITICAL));
	CHECK(has_viol(s, DLM_VIOL_FEEDER_CURRENT, "feeder_1", DLM_SEV_CRITICAL));
	/* 230 A: over the breaker too */
	dlm_site_update_feeder(s, "feeder_1", 100, 230, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_FEEDER_BREAKER, "feeder_1", DLM_SEV_CRITICAL));
	/* power over 120 kW */
	dlm_site_update_feeder(s, "feeder_1", 125, 150, 0);
	CHECK_INT(dlm_site_check(s, 0), 1);
	CHECK(has_viol(s, DLM_VIOL_FEEDER_POWER, "feeder_1", DLM_SEV_CRITICAL));
	/* no current measured: derived from the power, 125 kW -> 150.4 A */
	dlm_site_update_feeder(s, "feeder_1", 125, NAN, 0);
	struct dlm_headroom h;
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.available_kw, -5, 1e-9);
	dlm_site_free(s);
}

static void test_transformer(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_cfg c = dlm_service_defaults();
	c.max_power_kw = 500;   /* 400 continuous */
	c.max_current_a = 2000; /* and plenty of current: the transformer binds */
	dlm_site_configure_service(s, &c);
	struct dlm_transformer_cfg t = guide_xfmr();
	CHECK_INT(dlm_site_configure_transformer(s, "transformer_1", &t), 0);
	/* 300 kVA x 0.8 = 240 kVA, at pf 1 = 240 kW */
	struct dlm_headroom h;
	dlm_site_capacity(s, &h, NULL, 0);
	CHECK_NEAR(h.available_kw, 240, 1e-9);
	CHECK_STR(h.binding, "transformer:transformer_1");
	/* 200 kVA measured: 40 kW left */
	CHECK_INT(dlm_site_update_transformer(s, "transformer_1", 200, 60, 0), 0);
	CHECK_NEAR(dlm_site_available_kw(s), 40, 1e-9);
	/* hot: 75 C is half way into the 70..80 C band: x 0.75 = 180 kVA */
	dlm_site_update_transformer(s, "transformer_1", 200, 75, 0);
	CHECK_NEAR(dlm_site_available_kw(s), -20, 1e-9);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_TRANSFORMER_TEMP, "transformer_1", DLM_SEV_INFO));
	/* over 80 C: x 0.5 = 120 kVA and critical */
	dlm_site_update_transformer(s, "transformer_1", 100, 85, 0);
	CHECK_NEAR(dlm_site_available_kw(s), 20, 1e-9);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_TRANSFORMER_TEMP, "transformer_1", DLM_SEV_CRITICAL));
	/* load over continuous 240 kVA: warning; over 300 kVA: critical */
	dlm_site_update_transformer(s, "transformer_1", 250, 60, 0);
	CHECK_INT(dlm_site_check(s, 0), 1);
	CHECK(has_viol(s, DLM_VIOL_TRANSFORMER_LOAD, "transformer_1", DLM_SEV_WARNING));
	dlm_site_update_transformer(s, "transformer_1", 310, 60, 0);
	dlm_site_check(s, 0);
	CHECK(has_viol(s, DLM_VIOL_TRANSFORMER_LOAD, "transformer_1", DLM_SEV_CRITICAL));
	/* at pf 0.95: (240 - 200) kVA x 0.95 = 38 kW */
	struct dlm_service_meas m = guide_meas();
	m.power_kw = 190;
	dlm_site_update_service(s, &m, 0);
	dlm_site_update_transformer(s, "transformer_1", 200, 60, 0);
	CHECK_NEAR(dlm_site_available_kw(s), 38, 1e-9);
	/* not measured: its feeders' load (feeder_1 at 95 kW) / pf */
	struct dlm_feeder_cfg f = guide_feeder();
	dlm_site_configure_feeder(s, "feeder_1", &f);
	dlm_site_update_feeder(s, "feeder_1", 95, NAN, 0);
	dlm_site_update_transformer(s, "transformer_1", NAN, NAN, 0);
	CHECK_NEAR(dlm_site_available_kw(s), 240 * 0.95 - 95, 1e-9);
	dlm_site_free(s);
}

static void test_transformer_caps_feeder(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_feeder_cfg f = guide_feeder();
	dlm_site_configure_feeder(s, "feeder_1", &f);
	struct dlm_transformer_cfg t = guide_xfmr();
	dlm_site_configure_transformer(s, "transformer_1", &t);
	/* the transformer has 240 - 230 = 10 kVA left; the feeder 120 - 50 */
	dlm_site_update_transformer(s, "transformer_1", 230, NAN, 0);
	dlm_site_update_feeder(s, "feeder_1", 50, NAN, 0);
	struct dlm_headroom h;
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.available_kw, 10, 1e-9);
	CHECK_STR(h.binding, "transformer:transformer_1");
	/* a feeder under two transformers is refused */
	struct dlm_transformer_cfg t2 = dlm_transformer_defaults();
	const char *const fd[] = { "feeder_1" };
	t2.feeders = fd;
	t2.n_feeders = 1;
	CHECK_INT(dlm_site_configure_transformer(s, "transformer_2", &t2), V2G_ERR_INVAL);
	/* two transformers: their headroom adds up for the site */
	t2.n_feeders = 0;
	CHECK_INT(dlm_site_configure_transformer(s, "transformer_2", &t2), 0);
	dlm_site_update_transformer(s, "transformer_2", 200, NAN, 0);
	struct dlm_service_cfg c = dlm_service_defaults();
	c.max_power_kw = 1000;
	c.max_current_a = 2000;
	dlm_site_configure_service(s, &c);
	struct dlm_headroom site;
	dlm_site_capacity(s, &site, NULL, 0);
	CHECK_NEAR(site.available_kw, 10 + 40, 1e-9);
	CHECK_STR(site.binding, "transformers");
	CHECK_INT(dlm_site_remove_transformer(s, "transformer_1"), 0);
	CHECK_INT(dlm_site_remove_transformer(s, "transformer_1"), V2G_ERR_NOTFOUND);
	dlm_site_feeder_available(s, "feeder_1", &h);
	CHECK_NEAR(h.available_kw, 70, 1e-9); /* no longer capped */
	dlm_site_free(s);
}

static void test_validation(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_service_cfg c = dlm_service_defaults();
	c.phases = 2;
	CHECK_INT(dlm_site_configure_service(s, &c), V2G_ERR_INVAL);
	c = dlm_service_defaults();
	c.nec625_factor = 1.2;
	CHECK_INT(dlm_site_configure_service(s, &c), V2G_ERR_INVAL);
	c = dlm_service_defaults();
	c.max_imbalance = -0.1;
	CHECK_INT(dlm_site_configure_service(s, &c), V2G_ERR_INVAL);
	c = dlm_service_defaults();
	c.voltage_v = NAN;
	CHECK_INT(dlm_site_configure_service(s, &c), V2G_ERR_INVAL);
	CHECK_NEAR(dlm_site_service(s)->nec625_factor, 0.80, 0); /* unchanged */

	struct dlm_feeder_cfg f = dlm_feeder_defaults();
	f.breaker_rating_a = 0;
	CHECK_INT(dlm_site_configure_feeder(s, "f", &f), V2G_ERR_INVAL);
	f = dlm_feeder_defaults();
	char long_id[DLM_ID_MAX + 1];
	memset(long_id, 'x', DLM_ID_MAX);
	long_id[DLM_ID_MAX] = 0;
	CHECK_INT(dlm_site_configure_feeder(s, long_id, &f), V2G_ERR_INVAL);
	CHECK_INT(dlm_site_configure_feeder(s, "", &f), V2G_ERR_INVAL);
	CHECK_INT(dlm_site_update_station(s, long_id, 1, 0), V2G_ERR_INVAL);
	CHECK_INT(dlm_site_feeder_count(s), 0);
	struct dlm_transformer_cfg t = dlm_transformer_defaults();
	t.continuous_factor = 0;
	CHECK_INT(dlm_site_configure_transformer(s, "t", &t), V2G_ERR_INVAL);
	CHECK_INT(dlm_site_update_transformer(s, "t", 1, 1, 0), V2G_ERR_NOTFOUND);
	dlm_site_free(s);
	dlm_site_free(NULL);
}

static void test_status_json(void)
{
	struct dlm_site *s = dlm_site_new();
	struct dlm_feeder_cfg f = guide_feeder();
	dlm_site_configure_feeder(s, "feeder_1", &f);
	struct dlm_transformer_cfg t = guide_xfmr();
	dlm_site_configure_transformer(s, "transformer_1", &t);
	struct dlm_service_meas m = guide_meas();
	m.power_factor = 0.85;
	dlm_site_update_service(s, &m, 5000);
	dlm_site_update_feeder(s, "feeder_1", 100, 130, 5000);
	dlm_site_check(s, 5000);
	char *txt = dlm_site_status_json(s);
	CHECK(txt != NULL);
	json_error_t err;
	json_t *j = txt ? json_loads(txt, 0, &err) : NULL;
	CHECK(j != NULL);
	if (j) {
		json_t *cap = json_object_get(j, "capacity");
		CHECK_NEAR(json_real_value(json_object_get(cap, "available_kw")), 20, 1e-9);
		CHECK_STR(json_string_value(json_object_get(cap, "binding")), "service_power");
		json_t *svc = json_object_get(j, "service");
		CHECK_NEAR(json_real_value(json_object_get(json_object_get(svc, "config"),
		                                           "nec625_factor")),
		           0.8, 1e-12);
		json_t *meas = json_object_get(svc, "measurements");
		CHECK_NEAR(
		        json_real_value(json_object_get(json_object_get(meas, "current_a"), "B")),
		        260, 0);
		CHECK_NEAR(json_real_value(json_object_get(meas, "imbalance")), 10.0 / 260, 1e-9);
		json_t *f0 = json_array_get(json_object_get(j, "feeders"), 0);
		CHECK_STR(json_string_value(json_object_get(f0, "name")), "Main Parking Lot");
		CHECK_STR(json_string_value(json_object_get(f0, "transformer")), "transformer_1");
		CHECK_INT(json_array_size(json_object_get(f0, "stations")), 3);
		CHECK_NEAR(json_real_value(json_object_get(json_object_get(f0, "headroom"),
		                                           "available_kw")),
		           20, 1e-9);
		json_t *x0 = json_array_get(json_object_get(j, "transformers"), 0);
		CHECK_STR(json_string_value(json_object_get(x0, "cooling")), "ONAN");
		CHECK(json_is_null(json_object_get(x0, "temp_c")));
		json_t *viol = json_object_get(j, "violations");
		CHECK_INT(json_integer_value(json_object_get(viol, "warning")), 1);
		CHECK_INT(json_integer_value(json_object_get(viol, "critical")), 0);
		json_t *v0 = json_array_get(json_object_get(viol, "active"), 0);
		CHECK_STR(json_string_value(json_object_get(v0, "type")), "power_factor");
		CHECK_STR(json_string_value(json_object_get(v0, "severity")), "warning");
		CHECK_INT(json_integer_value(json_object_get(v0, "since_ms")), 5000);
		json_decref(j);
	}
	free(txt);
	/* an empty site: measurements null */
	struct dlm_site *e = dlm_site_new();
	json_t *je = dlm_site_status_obj(e);
	CHECK(je && json_is_null(json_object_get(json_object_get(je, "service"), "measurements")));
	json_decref(je);
	dlm_site_free(e);
	dlm_site_free(s);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults_are_the_guides),
		HCASE(test_conversions),
		HCASE(test_nec_power_limit_no_load),
		HCASE(test_current_limit_binds),
		HCASE(test_guide_example),
		HCASE(test_over_power),
		HCASE(test_over_current_per_phase),
		HCASE(test_imbalance),
		HCASE(test_power_factor),
		HCASE(test_voltage_deviation),
		HCASE(test_frequency_deviation),
		HCASE(test_filter_limit_order_since),
		HCASE(test_feeder_limits),
		HCASE(test_feeder_binds_below_service),
		HCASE(test_feeder_load_from_stations),
		HCASE(test_feeder_violations),
		HCASE(test_transformer),
		HCASE(test_transformer_caps_feeder),
		HCASE(test_validation),
		HCASE(test_status_json),
	};
	return harness_main("site-dlm-constraints", cases, HARNESS_N(cases));
}
