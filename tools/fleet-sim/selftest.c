/* Self-test of the vehicle model; see selftest.h. */
#include "selftest.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vehicle.h"

static int checks, failures;

#define EXPECT(c)              expect((c), #c, __LINE__)
#define EXPECT_NEAR(a, b, eps) expect_near((a), (b), (eps), #a, __LINE__)

static void expect(int ok, const char *what, int line)
{
	checks++;
	if (!ok) {
		failures++;
		printf("FAIL selftest.c:%d: %s\n", line, what);
	}
}

static void expect_near(double a, double b, double eps, const char *what, int line)
{
	checks++;
	if (!(fabs(a - b) <= eps)) {
		failures++;
		printf("FAIL selftest.c:%d: %s == %.6f, expected %.6f\n", line, what, a, b);
	}
}

/* A vehicle with round numbers, for the arithmetic. */
static void plain_vehicle(struct sim_vehicle *v, const struct sim_model_cfg *cfg)
{
	sim_vehicle_init(v, cfg, 1, 7, 0);
	v->soc = 50.0;
	v->battery_kwh = 50.0;
	v->max_power_kw = 11.0;
	v->target_soc = 100.0;
	v->available = 1;
}

static void test_ids(void)
{
	char id[SIM_ID_MAX];
	int idx = -1;

	sim_vehicle_id_format("sim", 42, id);
	EXPECT(strcmp(id, "sim-00042") == 0);
	EXPECT(sim_vehicle_id_parse("sim", "sim-00042", 9, 100, &idx) == 0 && idx == 42);
	EXPECT(sim_vehicle_id_parse("sim", "sim-00000", 9, 1, &idx) == 0 && idx == 0);
	EXPECT(sim_vehicle_id_parse("sim", "sim-00100", 9, 100, &idx) != 0); /* out of fleet */
	EXPECT(sim_vehicle_id_parse("sim", "sim-42", 6, 100, &idx) != 0);    /* not canonical */
	EXPECT(sim_vehicle_id_parse("sim", "sim-000042", 10, 100, &idx) != 0);
	EXPECT(sim_vehicle_id_parse("sim", "car-00042", 9, 100, &idx) != 0);
	EXPECT(sim_vehicle_id_parse("sim", "sim-0004x", 9, 100, &idx) != 0);
	EXPECT(sim_vehicle_id_parse("sim", "sim-", 4, 100, &idx) != 0);
	sim_vehicle_id_format("sim", 123456, id);
	EXPECT(sim_vehicle_id_parse("sim", id, strlen(id), 200000, &idx) == 0 && idx == 123456);
}

static void test_attributes(void)
{
	struct sim_model_cfg cfg;
	struct sim_vehicle a, b;
	int i, power[3] = { 0 }, seg[3] = { 0 }, f1 = 0, avail = 0, ok = 1;

	sim_model_cfg_default(&cfg);
	sim_vehicle_init(&a, &cfg, 99, 1234, 0);
	sim_vehicle_init(&b, &cfg, 99, 1234, 5000);
	EXPECT(a.soc == b.soc && a.max_power_kw == b.max_power_kw && strcmp(a.site, b.site) == 0);
	sim_vehicle_init(&b, &cfg, 100, 1234, 0);
	EXPECT(a.soc != b.soc || a.battery_kwh != b.battery_kwh || a.priority != b.priority);
	for (i = 0; i < 10000; i++) {
		sim_vehicle_init(&a, &cfg, 5, i, 0);
		power[a.max_power_kw == 7.4 ? 0 : a.max_power_kw == 11.0 ? 1 : 2]++;
		ok &= a.max_power_kw == 7.4 || a.max_power_kw == 11.0 || a.max_power_kw == 22.0;
		ok &= a.battery_kwh >= 40.0 && a.battery_kwh <= 100.0;
		ok &= a.priority >= 1 && a.priority <= 10;
		ok &= a.tariff >= 0.10 - 1e-9 && a.tariff <= 0.30 + 1e-9;
		ok &= a.soc >= 20.0 && a.soc <= 95.0;
		ok &= strncmp(a.site, "site-", 5) == 0 && atoi(a.site + 5) < cfg.sites;
		seg[strcmp(a.segment, "commuter") == 0 ? 0
		    : strcmp(a.segment, "fleet") == 0  ? 1
		                                       : 2]++;
		f1 += strcmp(a.fleet_id, "f1") == 0;
		avail += a.available;
	}
	EXPECT(ok);
	EXPECT(power[0] > 4000 && power[1] > 3000 && power[2] > 1000);
	EXPECT(seg[0] > 4000 && seg[1] > 2000 && seg[2] > 1500);
	EXPECT(f1 > 4500 && f1 < 5500);
	EXPECT(avail > 8700 && avail < 9300); /* availability 0.9 */
}

static void test_drift(void)
{
	struct sim_model_cfg cfg;
	struct sim_vehicle v;
	struct sim_command c;
	struct sim_rng r;

	sim_model_cfg_default(&cfg);
	cfg.availability = 1.0; /* never unplugged: deterministic */
	sim_rng_seed(&r, 3);

	/* Charging: 11 kW * 0.92 for 1 h into 50 kWh = +20.24 points. */
	plain_vehicle(&v, &cfg);
	sim_vehicle_advance(&v, &cfg, &r, 3600000);
	EXPECT_NEAR(v.soc, 70.24, 1e-9);
	EXPECT(v.available);
	/* Stops at the target. */
	v.target_soc = 80.0;
	sim_vehicle_advance(&v, &cfg, &r, 3 * 3600000);
	EXPECT_NEAR(v.soc, 80.0, 1e-9);
	/* Time going backwards changes nothing. */
	sim_vehicle_advance(&v, &cfg, &r, 1000);
	EXPECT_NEAR(v.soc, 80.0, 1e-9);

	/* Dispatch 10 kW for 30 min on 50 kWh: -10 points, then charging resumes. */
	plain_vehicle(&v, &cfg);
	memset(&c, 0, sizeof(c));
	strcpy(c.dispatch_id, "d1");
	c.power_kw = 10.0;
	c.duration_min = 30.0;
	sim_vehicle_apply(&v, &c, 0);
	EXPECT(strcmp(v.dispatch_id, "d1") == 0);
	sim_vehicle_advance(&v, &cfg, &r, 15 * 60000);
	EXPECT_NEAR(v.soc, 45.0, 1e-9);
	sim_vehicle_advance(&v, &cfg, &r, 30 * 60000);
	EXPECT_NEAR(v.soc, 40.0, 1e-9);
	EXPECT(v.dispatch_id[0] == '\0');
	sim_vehicle_advance(&v, &cfg, &r, 90 * 60000); /* 1 h of charging after the end */
	EXPECT_NEAR(v.soc, 60.24, 1e-9);

	/* Commanded power above max_power_kw is clamped; SoC floors at 0. */
	plain_vehicle(&v, &cfg);
	c.power_kw = 100.0;
	c.duration_min = 600.0;
	sim_vehicle_apply(&v, &c, 0);
	EXPECT_NEAR(v.dispatch_kw, 11.0, 1e-9);
	sim_vehicle_advance(&v, &cfg, &r, 5 * 3600000);
	EXPECT_NEAR(v.soc, 0.0, 1e-9);

	/* Same dispatch id replaces the earlier command; power 0 releases. */
	plain_vehicle(&v, &cfg);
	c.power_kw = 5.0;
	c.duration_min = 15.0;
	sim_vehicle_apply(&v, &c, 0);
	c.power_kw = 2.5;
	sim_vehicle_apply(&v, &c, 0);
	EXPECT_NEAR(v.dispatch_kw, 2.5, 1e-9);
	c.power_kw = 0.0;
	sim_vehicle_apply(&v, &c, 0);
	EXPECT(v.dispatch_id[0] == '\0' && v.dispatch_kw == 0.0);

	/* Unplugged: drains at drive_kw. */
	cfg.availability = 0.0;
	plain_vehicle(&v, &cfg);
	v.available = 0;
	sim_vehicle_advance(&v, &cfg, &r, 3600000);
	EXPECT_NEAR(v.soc, 46.0, 1e-9); /* 2 kW for 1 h on 50 kWh */
	EXPECT(!v.available);
}

static void test_availability_flips(void)
{
	struct sim_model_cfg cfg;
	struct sim_vehicle v;
	struct sim_rng r;
	int64_t t;
	long plugged = 0, steps = 0, flips = 0;
	int prev;

	sim_model_cfg_default(&cfg);
	sim_rng_seed(&r, 11);
	plain_vehicle(&v, &cfg);
	prev = v.available;
	/* 2000 simulated hours in 10 s steps. */
	for (t = 10000; t <= 2000LL * 3600000; t += 10000) {
		sim_vehicle_advance(&v, &cfg, &r, t);
		plugged += v.available;
		flips += v.available != prev;
		prev = v.available;
		steps++;
	}
	EXPECT_NEAR((double)plugged / (double)steps, 0.9, 0.05);
	/* Rarely: about two flips per 8 h cycle, i.e. ~500 in 2000 h. */
	EXPECT(flips > 300 && flips < 700);
}

static void test_decide(void)
{
	struct sim_model_cfg cfg;
	struct sim_vehicle v;
	struct sim_rng r;
	const char *reason;
	int i, n[3] = { 0 };

	sim_model_cfg_default(&cfg);
	sim_rng_seed(&r, 17);
	plain_vehicle(&v, &cfg);
	EXPECT(sim_vehicle_decide(&v, &cfg, &r, &reason) == SIM_ACK_ACCEPT &&
	       strcmp(reason, "") == 0);
	cfg.silent_rate = 0.1;
	cfg.reject_rate = 0.2;
	for (i = 0; i < 100000; i++)
		n[sim_vehicle_decide(&v, &cfg, &r, &reason)]++;
	EXPECT_NEAR(n[SIM_ACK_SILENT] / 100000.0, 0.1, 0.01);
	EXPECT_NEAR(n[SIM_ACK_REJECT] / 100000.0, 0.2, 0.01);
	cfg.silent_rate = 0.0;
	cfg.reject_rate = 1.0;
	v.soc = 10.0;
	EXPECT(sim_vehicle_decide(&v, &cfg, &r, &reason) == SIM_ACK_REJECT &&
	       strcmp(reason, "soc_too_low") == 0);
	v.soc = 90.0;
	EXPECT(sim_vehicle_decide(&v, &cfg, &r, &reason) == SIM_ACK_REJECT &&
	       strcmp(reason, "user_override") == 0);
	cfg.reject_rate = 0.0;
	v.force_reject = 1;
	EXPECT(sim_vehicle_decide(&v, &cfg, &r, &reason) == SIM_ACK_REJECT);
	v.force_silent = 1;
	EXPECT(sim_vehicle_decide(&v, &cfg, &r, &reason) == SIM_ACK_SILENT);
}

static int parse(const char *s, struct sim_command *c)
{
	return sim_command_parse(s, strlen(s), c);
}

static void test_command_parse(void)
{
	struct sim_command c;

	EXPECT(parse("{\"dispatch_id\":\"d-1\",\"signal_type\":\"FCR\",\"power_kw\":7.2,"
	             "\"duration_min\":30,\"issued_at\":\"2026-01-01T00:00:00Z\"}",
	             &c) == 0);
	EXPECT(strcmp(c.dispatch_id, "d-1") == 0 && strcmp(c.signal_type, "FCR") == 0);
	EXPECT_NEAR(c.power_kw, 7.2, 1e-12);
	EXPECT_NEAR(c.duration_min, 30.0, 1e-12);
	EXPECT(parse("{\"dispatch_id\":\"d\",\"power_kw\":0}", &c) == 0 && c.power_kw == 0.0 &&
	       c.duration_min == 15.0);
	EXPECT(parse("{\"power_kw\":1}", &c) != 0);
	EXPECT(parse("{\"dispatch_id\":\"\",\"power_kw\":1}", &c) != 0);
	EXPECT(parse("{\"dispatch_id\":\"d\",\"power_kw\":-1}", &c) != 0);
	EXPECT(parse("{\"dispatch_id\":\"d\",\"power_kw\":\"7\"}", &c) != 0);
	EXPECT(parse("{\"dispatch_id\":7,\"power_kw\":1}", &c) != 0);
	EXPECT(parse("not json", &c) != 0);
	EXPECT(parse("[1,2]", &c) != 0);
	/* Only len bytes count: the payload need not be NUL-terminated. */
	EXPECT(sim_command_parse("{\"dispatch_id\":\"d\",\"power_kw\":1}garbage", 32, &c) == 0);
}

static void test_payloads(void)
{
	struct sim_model_cfg cfg;
	struct sim_vehicle v;
	json_t *o;
	char *s;

	sim_model_cfg_default(&cfg);
	plain_vehicle(&v, &cfg);
	v.soc = 72.456;
	s = sim_vehicle_state_json(&v, 1763724744123LL, NULL);
	o = s ? json_loads(s, 0, NULL) : NULL;
	EXPECT(o != NULL);
	EXPECT_NEAR(json_real_value(json_object_get(o, "soc")), 72.46, 1e-9);
	EXPECT(json_is_true(json_object_get(o, "available")));
	EXPECT_NEAR(json_number_value(json_object_get(o, "max_power_kw")), 11.0, 1e-9);
	EXPECT(json_is_integer(json_object_get(o, "priority")));
	EXPECT(json_is_string(json_object_get(o, "segment")) &&
	       json_is_string(json_object_get(o, "fleet_id")));
	EXPECT(json_is_string(json_object_get(o, "site")) &&
	       json_is_string(json_object_get(o, "cluster")));
	EXPECT(json_is_number(json_object_get(o, "tariff")) &&
	       json_is_number(json_object_get(o, "battery_kwh")));
	EXPECT(json_object_get(o, "request_id") == NULL);
	EXPECT(json_string_value(json_object_get(o, "ts")) &&
	       strcmp(json_string_value(json_object_get(o, "ts")), "2025-11-21T11:32:24.123Z") ==
	               0);
	EXPECT(s && strstr(s, "\"soc\":72.46,") != NULL); /* no float noise on the wire */
	json_decref(o);
	free(s);

	s = sim_vehicle_state_json(&v, 0, "req-9");
	o = s ? json_loads(s, 0, NULL) : NULL;
	EXPECT(o && strcmp(json_string_value(json_object_get(o, "request_id")), "req-9") == 0);
	json_decref(o);
	free(s);

	s = sim_ack_json("d-1", 0, "soc_too_low");
	EXPECT(s &&
	       strcmp(s,
	              "{\"dispatch_id\":\"d-1\",\"accepted\":false,\"reason\":\"soc_too_low\"}") ==
	               0);
	free(s);
	s = sim_ack_json("d-2", 1, "");
	EXPECT(s && strcmp(s, "{\"dispatch_id\":\"d-2\",\"accepted\":true,\"reason\":\"\"}") == 0);
	free(s);
}

int sim_selftest_run(void)
{
	checks = failures = 0;
	test_ids();
	test_attributes();
	test_drift();
	test_availability_flips();
	test_decide();
	test_command_parse();
	test_payloads();
	printf("fleet-sim self-test: %d checks, %d failed\n", checks, failures);
	return failures;
}
