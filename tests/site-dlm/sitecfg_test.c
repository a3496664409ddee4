/* The site configuration parsers shared by the REST routes and the config
 * file: good objects, every bad field named, unknown keys refused, the
 * service merged all-or-nothing, and a round trip through the constraints
 * module (parse -> configure -> status -> parse gives the same). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/sitecfg.h"
#include "v2g/err.h"

static json_t *js(const char *text)
{
	json_error_t e;
	json_t *o = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (!o)
		harness_fail(__FILE__, __LINE__, "test JSON: %s: %s", text, e.text);
	return o;
}

/* --- service ----------------------------------------------------------- */

static void test_service_merge(void)
{
	struct dlm_service_cfg c = dlm_service_defaults();
	char err[200];
	json_t *o = js("{\"max_power_kw\":180,\"max_current_a\":250.5,\"voltage\":400,"
	               "\"phases\":1,\"nec625_factor\":1,\"max_imbalance\":0,"
	               "\"min_power_factor\":0.95,\"frequency_hz\":50,"
	               "\"frequency_tolerance_hz\":0.2}");
	CHECK_INT(dlm_service_cfg_merge_json(&c, o, err, sizeof(err)), 0);
	json_decref(o);
	CHECK_NEAR(c.max_power_kw, 180, 0);
	CHECK_NEAR(c.max_current_a, 250.5, 0);
	CHECK_NEAR(c.voltage_v, 400, 0);
	CHECK_INT(c.phases, 1);
	CHECK_NEAR(c.nec625_factor, 1, 0);
	CHECK_NEAR(c.max_imbalance, 0, 0);
	CHECK_NEAR(c.min_power_factor, 0.95, 0);
	CHECK_NEAR(c.frequency_hz, 50, 0);
	CHECK_NEAR(c.frequency_tolerance_hz, 0.2, 0);

	/* a subset merges; the rest stays */
	o = js("{\"max_power_kw\":300,\"phases\":3.0}");
	CHECK_INT(dlm_service_cfg_merge_json(&c, o, err, sizeof(err)), 0);
	json_decref(o);
	CHECK_NEAR(c.max_power_kw, 300, 0);
	CHECK_INT(c.phases, 3);
	CHECK_NEAR(c.max_current_a, 250.5, 0);

	/* empty: nothing changes */
	struct dlm_service_cfg before = c;
	o = js("{}");
	CHECK_INT(dlm_service_cfg_merge_json(&c, o, err, sizeof(err)), 0);
	json_decref(o);
	CHECK(memcmp(&before, &c, sizeof(c)) == 0);
}

static void bad_service(int line, const char *text, const char *msg)
{
	struct dlm_service_cfg c = dlm_service_defaults(), before = c;
	char err[200] = "";
	json_t *o = js(text);
	int rc = dlm_service_cfg_merge_json(&c, o, err, sizeof(err));
	json_decref(o);
	if (rc != V2G_ERR_INVAL)
		harness_fail(__FILE__, line, "%s: rc %d", text, rc);
	if (strncmp(err, msg, strlen(msg)) != 0)
		harness_fail(__FILE__, line, "%s: \"%s\", expected \"%s...\"", text, err, msg);
	if (memcmp(&before, &c, sizeof(c)) != 0)
		harness_fail(__FILE__, line, "%s: the configuration changed", text);
}
#define BAD_SERVICE(text, msg) bad_service(__LINE__, text, msg)

static void test_service_bad(void)
{
	BAD_SERVICE("{\"max_power_kw\":0}", "max_power_kw: must be > 0 and <= 1e+06, got 0");
	/* no more than the config file takes (settings.c): a huge entrance
	 * would reach the dispatch engine as huge available capacity */
	BAD_SERVICE("{\"max_power_kw\":1e308}", "max_power_kw: must be > 0 and <= 1e+06");
	BAD_SERVICE("{\"max_current_a\":100001}", "max_current_a: must be > 0 and <= 100000");
	BAD_SERVICE("{\"voltage\":1e300}", "voltage: must be > 0 and <= 100000");
	BAD_SERVICE("{\"frequency_hz\":1001}", "frequency_hz: must be > 0 and <= 1000");
	BAD_SERVICE("{\"frequency_tolerance_hz\":1e200}",
	            "frequency_tolerance_hz: must be > 0 and <= 1000");
	BAD_SERVICE("{\"max_power_kw\":-5}", "max_power_kw: must be > 0");
	BAD_SERVICE("{\"max_power_kw\":\"250\"}", "max_power_kw: must be a number");
	BAD_SERVICE("{\"max_power_kw\":null}", "max_power_kw: must be a number");
	BAD_SERVICE("{\"max_current_a\":0}", "max_current_a: must be > 0");
	BAD_SERVICE("{\"voltage\":-400}", "voltage: must be > 0");
	BAD_SERVICE("{\"phases\":2}", "phases: must be 1 or 3, got 2");
	BAD_SERVICE("{\"phases\":3.5}", "phases: must be an integer");
	BAD_SERVICE("{\"phases\":\"3\"}", "phases: must be an integer");
	BAD_SERVICE("{\"nec625_factor\":0}", "nec625_factor: must be > 0 and <= 1, got 0");
	BAD_SERVICE("{\"nec625_factor\":1.2}", "nec625_factor: must be > 0 and <= 1");
	BAD_SERVICE("{\"max_imbalance\":-0.1}", "max_imbalance: must be >= 0 and <= 1");
	BAD_SERVICE("{\"max_imbalance\":1.5}", "max_imbalance: must be >= 0 and <= 1");
	BAD_SERVICE("{\"min_power_factor\":2}", "min_power_factor: must be >= 0 and <= 1");
	BAD_SERVICE("{\"frequency_hz\":0}", "frequency_hz: must be > 0");
	BAD_SERVICE("{\"frequency_tolerance_hz\":0}", "frequency_tolerance_hz: must be > 0");
	/* the struct's name is not the key; typos are refused, not skipped */
	BAD_SERVICE("{\"voltage_v\":400}", "voltage_v: unknown field (known: max_power_kw,");
	BAD_SERVICE("{\"max_power_kW\":100}", "max_power_kW: unknown field");
	/* all or nothing: a good key before a bad one is not applied */
	BAD_SERVICE("{\"max_power_kw\":100,\"phases\":4}", "phases: must be 1 or 3");
	BAD_SERVICE("[1]", "body: must be a JSON object");

	/* an unknown key is shown bounded and without control characters */
	struct dlm_service_cfg c = dlm_service_defaults();
	char err[200];
	json_t *o = js("{\"a\\nb0123456789012345678901234567890123456789xyz\":1}");
	CHECK_INT(dlm_service_cfg_merge_json(&c, o, err, sizeof(err)), V2G_ERR_INVAL);
	json_decref(o);
	CHECK(strncmp(err, "a?b0123456789012345678901234567890123456...: unknown", 52) == 0);
}

/* --- feeder ------------------------------------------------------------ */

static void test_feeder_good(void)
{
	struct dlm_feeder_spec f = { 0 };
	char err[200];
	json_t *o = js("{\"id\":\"F1\",\"name\":\"North bay\",\"breaker_rating_a\":125,"
	               "\"cable_ampacity_a\":110.5,\"max_current_a\":100,\"max_power_kw\":60,"
	               "\"phases\":3,\"stations\":[\"ac-01\",\"ac-02\",\"dc-01\"]}");
	CHECK_INT(dlm_feeder_cfg_from_json(o, &f, err, sizeof(err)), 0);
	json_decref(o);
	CHECK_STR(f.id, "F1");
	CHECK_STR(f.cfg.name, "North bay");
	CHECK_NEAR(f.cfg.breaker_rating_a, 125, 0);
	CHECK_NEAR(f.cfg.cable_ampacity_a, 110.5, 0);
	CHECK_NEAR(f.cfg.max_current_a, 100, 0);
	CHECK_NEAR(f.cfg.max_power_kw, 60, 0);
	CHECK_INT(f.cfg.phases, 3);
	CHECK_INT(f.cfg.n_stations, 3);
	CHECK_STR(f.cfg.stations[0], "ac-01");
	CHECK_STR(f.cfg.stations[2], "dc-01");
	dlm_feeder_spec_fini(&f);
	CHECK(f.name == NULL && f.stations == NULL && f.id[0] == '\0');
	dlm_feeder_spec_fini(&f); /* twice is fine */

	/* minimal: no name, no extra limits, no stations yet */
	o = js("{\"id\":\"F2\",\"breaker_rating_a\":63,\"cable_ampacity_a\":63,\"phases\":1}");
	CHECK_INT(dlm_feeder_cfg_from_json(o, &f, err, sizeof(err)), 0);
	json_decref(o);
	CHECK(f.cfg.name == NULL);
	CHECK_NEAR(f.cfg.max_current_a, 0, 0);
	CHECK_NEAR(f.cfg.max_power_kw, 0, 0);
	CHECK_INT(f.cfg.phases, 1);
	CHECK_INT(f.cfg.n_stations, 0);
	dlm_feeder_spec_fini(&f);

	o = js("{\"id\":\"F3\",\"breaker_rating_a\":63,\"cable_ampacity_a\":63,\"phases\":3,"
	       "\"stations\":[]}");
	CHECK_INT(dlm_feeder_cfg_from_json(o, &f, err, sizeof(err)), 0);
	json_decref(o);
	CHECK_INT(f.cfg.n_stations, 0);
	dlm_feeder_spec_fini(&f);
}

#define GOOD_FEEDER "\"id\":\"F1\",\"breaker_rating_a\":125,\"cable_ampacity_a\":125,\"phases\":3"

static void bad_feeder(int line, const char *text, const char *msg)
{
	struct dlm_feeder_spec f = { 0 };
	char err[200] = "";
	json_t *o = js(text);
	int rc = dlm_feeder_cfg_from_json(o, &f, err, sizeof(err));
	json_decref(o);
	if (rc != V2G_ERR_INVAL)
		harness_fail(__FILE__, line, "%s: rc %d", text, rc);
	if (strncmp(err, msg, strlen(msg)) != 0)
		harness_fail(__FILE__, line, "%s: \"%s\", expected \"%s...\"", text, err, msg);
	dlm_feeder_spec_fini(&f);
}
#define BAD_FEEDER(text, msg) bad_feeder(__LINE__, text, msg)

static void test_feeder_bad(void)
{
	BAD_FEEDER("{\"breaker_rating_a\":125,\"cable_ampacity_a\":125,\"phases\":3}",
	           "id: required");
	BAD_FEEDER("{\"id\":\"F1\",\"cable_ampacity_a\":125,\"phases\":3}",
	           "breaker_rating_a: required");
	BAD_FEEDER("{\"id\":\"F1\",\"breaker_rating_a\":125,\"phases\":3}",
	           "cable_ampacity_a: required");
	BAD_FEEDER("{\"id\":\"F1\",\"breaker_rating_a\":125,\"cable_ampacity_a\":125}",
	           "phases: required");
	BAD_FEEDER("{\"id\":\"\",\"breaker_rating_a\":125,\"cable_ampacity_a\":125,\"phases\":3}",
	           "id: must be a string of 1-63");
	BAD_FEEDER("{\"id\":7,\"breaker_rating_a\":125,\"cable_ampacity_a\":125,\"phases\":3}",
	           "id: must be a string");
	BAD_FEEDER("{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123\","
	           "\"breaker_rating_a\":125,\"cable_ampacity_a\":125,\"phases\":3}",
	           "id: must be a string of 1-63");
	BAD_FEEDER("{\"id\":\"F\\u0001\",\"breaker_rating_a\":125,\"cable_ampacity_a\":125,"
	           "\"phases\":3}",
	           "id: must be a string of 1-63 characters, no control");
	BAD_FEEDER("{" GOOD_FEEDER ",\"name\":\"\"}", "name: must be a string");
	BAD_FEEDER("{" GOOD_FEEDER ",\"name\":null}", "name: must be a string");
	BAD_FEEDER("{\"id\":\"F1\",\"breaker_rating_a\":0,\"cable_ampacity_a\":125,\"phases\":3}",
	           "breaker_rating_a: must be > 0 and <= 100000, got 0");
	BAD_FEEDER("{\"id\":\"F1\",\"breaker_rating_a\":-1,\"cable_ampacity_a\":125,\"phases\":3}",
	           "breaker_rating_a: must be > 0");
	BAD_FEEDER("{\"id\":\"F1\",\"breaker_rating_a\":\"125\",\"cable_ampacity_a\":125,"
	           "\"phases\":3}",
	           "breaker_rating_a: must be a number");
	BAD_FEEDER("{\"id\":\"F1\",\"breaker_rating_a\":125,\"cable_ampacity_a\":0,\"phases\":3}",
	           "cable_ampacity_a: must be > 0");
	BAD_FEEDER("{" GOOD_FEEDER ",\"max_current_a\":-1}", "max_current_a: must be >= 0");
	BAD_FEEDER("{" GOOD_FEEDER ",\"max_power_kw\":-0.5}", "max_power_kw: must be >= 0");
	BAD_FEEDER("{" GOOD_FEEDER ",\"max_power_kw\":true}", "max_power_kw: must be a number");
	BAD_FEEDER("{\"id\":\"F1\",\"breaker_rating_a\":125,\"cable_ampacity_a\":125,\"phases\":2}",
	           "phases: must be 1 or 3, got 2");
	BAD_FEEDER("{" GOOD_FEEDER ",\"stations\":\"ac-01\"}",
	           "stations: must be an array of station ids");
	BAD_FEEDER("{" GOOD_FEEDER ",\"stations\":[\"ac-01\",3]}",
	           "stations[1]: must be a station id of 1-63 characters");
	BAD_FEEDER("{" GOOD_FEEDER ",\"stations\":[\"\"]}", "stations[0]: must be a station id");
	BAD_FEEDER("{" GOOD_FEEDER ",\"stations\":[\"ac-01\",\"ac-02\",\"ac-01\"]}",
	           "stations[2]: \"ac-01\" is listed twice");
	/* typos in safety limits are refused */
	BAD_FEEDER("{" GOOD_FEEDER ",\"breaker_ratting_a\":100}",
	           "breaker_ratting_a: unknown field (known: id, name, breaker_rating_a,");
	BAD_FEEDER("{" GOOD_FEEDER ",\"rated_kva\":100}", "rated_kva: unknown field");
	BAD_FEEDER("{" GOOD_FEEDER ",\"feeders\":[]}", "feeders: unknown field");
	BAD_FEEDER("\"F1\"", "body: must be a JSON object");
}

/* --- transformer ------------------------------------------------------- */

static void test_transformer_good(void)
{
	struct dlm_transformer_spec t = { 0 };
	char err[200];
	json_t *o = js("{\"id\":\"T1\",\"name\":\"Main\",\"rated_kva\":630,"
	               "\"continuous_factor\":0.9,\"max_temp_c\":110,\"derate_band_c\":15,"
	               "\"cooling\":\"ONAF\",\"feeders\":[\"F1\",\"F2\"]}");
	CHECK_INT(dlm_transformer_cfg_from_json(o, &t, err, sizeof(err)), 0);
	json_decref(o);
	CHECK_STR(t.id, "T1");
	CHECK_STR(t.cfg.name, "Main");
	CHECK_NEAR(t.cfg.rated_kva, 630, 0);
	CHECK_NEAR(t.cfg.continuous_factor, 0.9, 0);
	CHECK_NEAR(t.cfg.max_temp_c, 110, 0);
	CHECK_NEAR(t.cfg.derate_band_c, 15, 0);
	CHECK_STR(t.cfg.cooling, "ONAF");
	CHECK_INT(t.cfg.n_feeders, 2);
	CHECK_STR(t.cfg.feeders[1], "F2");
	dlm_transformer_spec_fini(&t);
	dlm_transformer_spec_fini(&t);

	/* the defaults of the optional fields */
	o = js("{\"id\":\"T2\",\"rated_kva\":300}");
	CHECK_INT(dlm_transformer_cfg_from_json(o, &t, err, sizeof(err)), 0);
	json_decref(o);
	CHECK(t.cfg.name == NULL);
	CHECK_NEAR(t.cfg.continuous_factor, 0.8, 0);
	CHECK_NEAR(t.cfg.max_temp_c, 80, 0);
	CHECK_NEAR(t.cfg.derate_band_c, 10, 0);
	CHECK_STR(t.cfg.cooling, "ONAN");
	CHECK_INT(t.cfg.n_feeders, 0);
	dlm_transformer_spec_fini(&t);

	/* a cold climate's limit may be low, even negative */
	o = js("{\"id\":\"T3\",\"rated_kva\":300,\"max_temp_c\":-10}");
	CHECK_INT(dlm_transformer_cfg_from_json(o, &t, err, sizeof(err)), 0);
	json_decref(o);
	CHECK_NEAR(t.cfg.max_temp_c, -10, 0);
	dlm_transformer_spec_fini(&t);
}

static void bad_xfmr(int line, const char *text, const char *msg)
{
	struct dlm_transformer_spec t = { 0 };
	char err[200] = "";
	json_t *o = js(text);
	int rc = dlm_transformer_cfg_from_json(o, &t, err, sizeof(err));
	json_decref(o);
	if (rc != V2G_ERR_INVAL)
		harness_fail(__FILE__, line, "%s: rc %d", text, rc);
	if (strncmp(err, msg, strlen(msg)) != 0)
		harness_fail(__FILE__, line, "%s: \"%s\", expected \"%s...\"", text, err, msg);
	dlm_transformer_spec_fini(&t);
}
#define BAD_XFMR(text, msg) bad_xfmr(__LINE__, text, msg)

static void test_transformer_bad(void)
{
	BAD_XFMR("{\"rated_kva\":300}", "id: required");
	BAD_XFMR("{\"id\":\"T1\"}", "rated_kva: required");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":0}", "rated_kva: must be > 0");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":[300]}", "rated_kva: must be a number");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"continuous_factor\":0}",
	         "continuous_factor: must be > 0 and <= 1, got 0");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"continuous_factor\":1.01}",
	         "continuous_factor: must be > 0 and <= 1");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"max_temp_c\":300}",
	         "max_temp_c: must be >= -50 and <= 250, got 300");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"derate_band_c\":0}",
	         "derate_band_c: must be > 0");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"cooling\":5}", "cooling: must be a string");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"name\":\"a\\u0000b\"}",
	         "name: must be a string");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"feeders\":{\"F1\":1}}",
	         "feeders: must be an array of feeder ids");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"feeders\":[\"F1\",\"F1\"]}",
	         "feeders[1]: \"F1\" is listed twice");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"feeders\":[null]}",
	         "feeders[0]: must be a feeder id");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"rated_kVA\":300}", "rated_kVA: unknown field");
	BAD_XFMR("{\"id\":\"T1\",\"rated_kva\":300,\"stations\":[]}", "stations: unknown field");
	BAD_XFMR("null", "body: must be a JSON object");
}

/* --- round trip through the constraints module ------------------------- */

/* The config keys of one status entry (measurements dropped). */
static json_t *config_of(json_t *entry, const char *const *keys)
{
	json_t *o = json_object();
	for (size_t i = 0; keys[i]; i++) {
		json_t *v = json_object_get(entry, keys[i]);
		if (v)
			json_object_set(o, keys[i], v);
	}
	return o;
}

static void test_round_trip(void)
{
	static const char *const fkeys[] = { "id",
		                             "name",
		                             "breaker_rating_a",
		                             "cable_ampacity_a",
		                             "max_current_a",
		                             "max_power_kw",
		                             "phases",
		                             "stations",
		                             NULL };
	static const char *const tkeys[] = { "id",         "name",
		                             "rated_kva",  "continuous_factor",
		                             "max_temp_c", "cooling",
		                             "feeders",    NULL };
	struct dlm_site *site = dlm_site_new();
	struct dlm_feeder_spec f = { 0 }, f2 = { 0 };
	struct dlm_transformer_spec t = { 0 }, t2 = { 0 };
	char err[200];

	/* reals where the status has reals, so that json_equal can compare */
	json_t *fo = js("{\"id\":\"F1\",\"name\":\"North\",\"breaker_rating_a\":125.0,"
	                "\"cable_ampacity_a\":110.0,\"max_current_a\":0.0,\"max_power_kw\":60.0,"
	                "\"phases\":3,\"stations\":[\"ac-01\",\"ac-02\"]}");
	json_t *to = js("{\"id\":\"T1\",\"name\":\"Main\",\"rated_kva\":300.0,"
	                "\"continuous_factor\":0.8,\"max_temp_c\":110.0,\"cooling\":\"ONAN\","
	                "\"feeders\":[\"F1\"]}");
	CHECK_INT(dlm_feeder_cfg_from_json(fo, &f, err, sizeof(err)), 0);
	CHECK_INT(dlm_transformer_cfg_from_json(to, &t, err, sizeof(err)), 0);
	CHECK_INT(dlm_site_configure_feeder(site, f.id, &f.cfg), 0);
	CHECK_INT(dlm_site_configure_transformer(site, t.id, &t.cfg), 0);

	json_t *st = dlm_site_status_obj(site);
	json_t *fe = config_of(json_array_get(json_object_get(st, "feeders"), 0), fkeys);
	json_t *te = config_of(json_array_get(json_object_get(st, "transformers"), 0), tkeys);
	/* what the site reports is what was given, key for key */
	CHECK(json_equal(fe, fo));
	CHECK(json_equal(te, to));
	/* and parses back to the same configuration */
	CHECK_INT(dlm_feeder_cfg_from_json(fe, &f2, err, sizeof(err)), 0);
	CHECK_INT(dlm_transformer_cfg_from_json(te, &t2, err, sizeof(err)), 0);
	CHECK_NEAR(f2.cfg.breaker_rating_a, f.cfg.breaker_rating_a, 0);
	CHECK_NEAR(f2.cfg.cable_ampacity_a, f.cfg.cable_ampacity_a, 0);
	CHECK_NEAR(f2.cfg.max_power_kw, f.cfg.max_power_kw, 0);
	CHECK_INT(f2.cfg.n_stations, 2);
	CHECK_STR(f2.cfg.stations[1], "ac-02");
	CHECK_NEAR(t2.cfg.rated_kva, 300, 0);
	CHECK_STR(t2.cfg.feeders[0], "F1");

	/* the limits are in force: the feeder's current limit is min(breaker x
	 * NEC 0.8, cable) = min(100, 110) = 100 A; at the service's 480 V, 3
	 * phases, pf 1: sqrt(3) x 480 x 100 = 83.1 kW, under max_power_kw 60 ->
	 * 60 kW of headroom with nothing drawn */
	struct dlm_headroom h;
	CHECK_INT(dlm_site_feeder_available(site, "F1", &h), 0);
	CHECK_NEAR(h.available_kw, 60, 1e-6);
	CHECK_INT(dlm_site_station_feeder(site, "ac-02"), 0);
	json_decref(fe);
	json_decref(te);
	json_decref(st);
	json_decref(fo);
	json_decref(to);

	/* without max_power_kw the breaker binds: 83.1 kW */
	dlm_feeder_spec_fini(&f);
	fo = js("{\"id\":\"F1\",\"breaker_rating_a\":125,\"cable_ampacity_a\":110,\"phases\":3,"
	        "\"stations\":[\"ac-01\",\"ac-02\"]}");
	CHECK_INT(dlm_feeder_cfg_from_json(fo, &f, err, sizeof(err)), 0);
	CHECK_INT(dlm_site_configure_feeder(site, f.id, &f.cfg), 0);
	CHECK_INT(dlm_site_feeder_available(site, "F1", &h), 0);
	CHECK_NEAR(h.available_kw, sqrt(3) * 480 * 100 / 1000, 1e-6);
	json_decref(fo);

	dlm_feeder_spec_fini(&f);
	dlm_feeder_spec_fini(&f2);
	dlm_transformer_spec_fini(&t);
	dlm_transformer_spec_fini(&t2);
	dlm_site_free(site);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_service_merge),    HCASE(test_service_bad),
		HCASE(test_feeder_good),      HCASE(test_feeder_bad),
		HCASE(test_transformer_good), HCASE(test_transformer_bad),
		HCASE(test_round_trip),
	};
	return harness_main("site-dlm-sitecfg", cases, HARNESS_N(cases));
}
