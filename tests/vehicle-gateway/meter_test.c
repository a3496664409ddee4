/* vehicle-gateway site DLM payloads: meter topics, station and site meter
 * decoding (every field good and bad), setpoint encoding, the
 * mqtt.site_topic_prefix setting. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/vehicle-gateway/payload.h"
#include "../../services/vehicle-gateway/settings.h"
#include "../harness/harness.h"
#include "v2g/err.h"

#define NOW  1700000000000LL
#define MAXB 16384

/* --- helpers ------------------------------------------------------------------ */

static int dec_station(const char *json, struct vgw_station_meter *m, struct vgw_payload_err *e)
{
	memset(m, 0x5a, sizeof(*m)); /* catch fields left unset */
	e->reason = VGW_REJECT_NONE;
	e->msg[0] = '\0';
	return vgw_payload_decode_station_meter(json, strlen(json), MAXB, NOW, m, e);
}

static int dec_site(const char *json, struct vgw_site_meter *m, struct vgw_payload_err *e)
{
	memset(m, 0x5a, sizeof(*m));
	e->reason = VGW_REJECT_NONE;
	e->msg[0] = '\0';
	return vgw_payload_decode_site_meter(json, strlen(json), MAXB, NOW, m, e);
}

static void check_rejected(int line, const char *json, int rc, const struct vgw_payload_err *e,
                           const char *field, enum vgw_reject reason)
{
	if (rc != V2G_ERR_INVAL && rc != V2G_ERR_TOOBIG) {
		harness_fail(__FILE__, line, "accepted: %s", json);
		return;
	}
	if (e->reason != reason)
		harness_fail(__FILE__, line, "%s: reason %s, expected %s", json,
		             vgw_reject_name(e->reason), vgw_reject_name(reason));
	if (field && strncmp(e->msg, field, strlen(field)) != 0)
		harness_fail(__FILE__, line, "%s: message \"%s\" does not name %s", json, e->msg,
		             field);
}

/* Expects a rejection of json whose message starts with field. */
#define BAD_STATION(json, field, reason)                                 \
	do {                                                             \
		struct vgw_station_meter _m;                             \
		struct vgw_payload_err _e;                               \
		int _rc = dec_station(json, &_m, &_e);                   \
		check_rejected(__LINE__, json, _rc, &_e, field, reason); \
	} while (0)
#define BAD_SITE(json, field, reason)                                    \
	do {                                                             \
		struct vgw_site_meter _m;                                \
		struct vgw_payload_err _e;                               \
		int _rc = dec_site(json, &_m, &_e);                      \
		check_rejected(__LINE__, json, _rc, &_e, field, reason); \
	} while (0)
#define GOOD_STATION(json)                                                                 \
	do {                                                                               \
		struct vgw_station_meter _m;                                               \
		struct vgw_payload_err _e;                                                 \
		if (dec_station(json, &_m, &_e) != 0)                                      \
			harness_fail(__FILE__, __LINE__, "rejected %s: %s", json, _e.msg); \
	} while (0)
#define GOOD_SITE(json)                                                                    \
	do {                                                                               \
		struct vgw_site_meter _m;                                                  \
		struct vgw_payload_err _e;                                                 \
		if (dec_site(json, &_m, &_e) != 0)                                         \
			harness_fail(__FILE__, __LINE__, "rejected %s: %s", json, _e.msg); \
	} while (0)

#define FIELD VGW_REJECT_BAD_FIELD

static enum vgw_topic_kind classify(const char *topic, char *site, char *station, int *bad)
{
	return vgw_payload_classify_meter(topic, strlen(topic), "site/", site, station, bad);
}

/* --- topics ------------------------------------------------------------------- */

static void test_meter_topics(void)
{
	char site[VGW_ID_MAX + 1], station[VGW_ID_MAX + 1];
	int bad;

	CHECK_INT(classify("site/paris-01/station/c.1:a_B/meter", site, station, &bad),
	          VGW_TOPIC_STATION_METER);
	CHECK_INT(bad, 0);
	CHECK_STR(site, "paris-01");
	CHECK_STR(station, "c.1:a_B");

	CHECK_INT(classify("site/paris-01/meter", site, station, &bad), VGW_TOPIC_SITE_METER);
	CHECK_INT(bad, 0);
	CHECK_STR(site, "paris-01");
	CHECK_STR(station, "");

	/* a topic not passed whole (not NUL-terminated at len) */
	const char *t = "site/s1/meterXYZ";
	CHECK_INT(vgw_payload_classify_meter(t, strlen(t) - 3, "site/", site, station, &bad),
	          VGW_TOPIC_SITE_METER);
	CHECK_STR(site, "s1");

	/* not ours */
	const char *other[] = {
		"site/s1/meterx",
		"site/s1/station/c1/meters",
		"site/s1/station/c1/setpoint",
		"site/s1/a/meter",
		"site/s1/station/a/b/meter",
		"site/s1",
		"site/",
		"sites/s1/meter",
		"vehicle/v1/state",
		"site/s1/station/c1/meter/x",
		"",
	};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		enum vgw_topic_kind k = classify(other[i], site, station, &bad);
		if (k != VGW_TOPIC_OTHER || bad)
			harness_fail(__FILE__, __LINE__, "%s: kind %d bad %d", other[i], (int)k,
			             bad);
	}

	/* ours, with an invalid id */
	char long_id[80], topic[200];
	memset(long_id, 'x', 65);
	long_id[65] = '\0';
	snprintf(topic, sizeof(topic), "site/%s/meter", long_id);
	const char *bad_ids[] = { "site//meter",
		                  "site/s 1/meter",
		                  "site/s1/station//meter",
		                  "site/s1/station/\xc3\xa9/meter",
		                  "site//station/c1/meter",
		                  topic };
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		enum vgw_topic_kind k = classify(bad_ids[i], site, station, &bad);
		if (k == VGW_TOPIC_OTHER || !bad)
			harness_fail(__FILE__, __LINE__, "%s: kind %d bad %d", bad_ids[i], (int)k,
			             bad);
	}
	snprintf(topic, sizeof(topic), "site/s1/station/%s/meter", long_id);
	CHECK_INT(classify(topic, site, station, &bad), VGW_TOPIC_STATION_METER);
	CHECK_INT(bad, 1);
	long_id[64] = '\0'; /* 64 is fine */
	snprintf(topic, sizeof(topic), "site/%s/station/%s/meter", long_id, long_id);
	CHECK_INT(classify(topic, site, station, &bad), VGW_TOPIC_STATION_METER);
	CHECK_INT(bad, 0);
	CHECK_INT(strlen(site), 64);
	CHECK_INT(strlen(station), 64);

	/* another prefix */
	t = "dlm/x/s1/meter";
	CHECK_INT(vgw_payload_classify_meter(t, strlen(t), "dlm/x/", site, station, &bad),
	          VGW_TOPIC_SITE_METER);
	CHECK_STR(site, "s1");
}

/* --- station meter ----------------------------------------------------------- */

static void test_station_full(void)
{
	struct vgw_station_meter m;
	struct vgw_payload_err e;
	const char *j = "{\"power_kw\":-7.5,\"current_a\":{\"A\":16,\"B\":15.5,\"C\":0},"
	                "\"voltage_v\":{\"A\":230,\"B\":231,\"C\":229.5},\"temperature_c\":41.5,"
	                "\"soc\":63,\"status\":\"charging\",\"extra\":[1,2]}";
	CHECK_INT(dec_station(j, &m, &e), 0);
	CHECK_NEAR(m.power_kw, -7.5, 1e-12);
	CHECK_INT(m.has_current, 1);
	CHECK_NEAR(m.current_a.a, 16, 1e-12);
	CHECK_NEAR(m.current_a.b, 15.5, 1e-12);
	CHECK_NEAR(m.current_a.c, 0, 1e-12);
	CHECK_INT(m.has_voltage, 1);
	CHECK_NEAR(m.voltage_v.a, 230, 1e-12);
	CHECK_NEAR(m.voltage_v.b, 231, 1e-12);
	CHECK_NEAR(m.voltage_v.c, 229.5, 1e-12);
	CHECK_NEAR(m.temperature_c, 41.5, 1e-12);
	CHECK_NEAR(m.soc, 63, 1e-12);
	CHECK_STR(m.status, "charging");
	CHECK_INT(m.received_ms, NOW);
}

static void test_station_minimal(void)
{
	struct vgw_station_meter m;
	struct vgw_payload_err e;
	CHECK_INT(dec_station("{\"power_kw\":11}", &m, &e), 0);
	CHECK_NEAR(m.power_kw, 11, 1e-12);
	CHECK_INT(m.has_current, 0);
	CHECK_INT(m.has_voltage, 0);
	CHECK(isnan(m.current_a.a) && isnan(m.current_a.b) && isnan(m.current_a.c));
	CHECK(isnan(m.voltage_v.a) && isnan(m.voltage_v.b) && isnan(m.voltage_v.c));
	CHECK(isnan(m.temperature_c));
	CHECK(isnan(m.soc));
	CHECK_STR(m.status, "");
	CHECK_INT(m.received_ms, NOW);

	/* null is absent */
	CHECK_INT(dec_station("{\"power_kw\":0,\"current_a\":null,\"soc\":null,\"status\":null,"
	                      "\"temperature_c\":null}",
	                      &m, &e),
	          0);
	CHECK_INT(m.has_current, 0);
	CHECK(isnan(m.soc));

	/* single-phase: one phase reported, the others NaN */
	CHECK_INT(dec_station("{\"power_kw\":3.7,\"current_a\":{\"A\":16,\"B\":null}}", &m, &e), 0);
	CHECK_INT(m.has_current, 1);
	CHECK_NEAR(m.current_a.a, 16, 1e-12);
	CHECK(isnan(m.current_a.b) && isnan(m.current_a.c));

	/* an empty phase object is reported, with no phase */
	CHECK_INT(dec_station("{\"power_kw\":3.7,\"voltage_v\":{}}", &m, &e), 0);
	CHECK_INT(m.has_voltage, 1);
	CHECK(isnan(m.voltage_v.a));
}

static void test_station_power(void)
{
	BAD_STATION("{}", "power_kw: required", FIELD);
	BAD_STATION("{\"power_kw\":null}", "power_kw: required", FIELD);
	BAD_STATION("{\"power_kw\":\"7\"}", "power_kw: must be a number", FIELD);
	BAD_STATION("{\"power_kw\":true}", "power_kw: must be a number", FIELD);
	BAD_STATION("{\"power_kw\":10000.5}", "power_kw: must be between", FIELD);
	BAD_STATION("{\"power_kw\":-10001}", "power_kw: must be between", FIELD);
	BAD_STATION("{\"power_kw\":1e999}", NULL, VGW_REJECT_BAD_JSON);
	GOOD_STATION("{\"power_kw\":10000}");
	GOOD_STATION("{\"power_kw\":-10000}");
	GOOD_STATION("{\"power_kw\":0}");
}

static void test_station_phases(void)
{
	BAD_STATION("{\"power_kw\":1,\"current_a\":16}", "current_a: must be an object", FIELD);
	BAD_STATION("{\"power_kw\":1,\"current_a\":[16,16,16]}", "current_a: must be an object",
	            FIELD);
	BAD_STATION("{\"power_kw\":1,\"current_a\":{\"A\":\"16\"}}",
	            "current_a.A: must be a number", FIELD);
	BAD_STATION("{\"power_kw\":1,\"current_a\":{\"B\":-0.1}}", "current_a.B: must be between",
	            FIELD);
	BAD_STATION("{\"power_kw\":1,\"current_a\":{\"C\":5000.1}}", "current_a.C: must be between",
	            FIELD);
	GOOD_STATION("{\"power_kw\":1,\"current_a\":{\"A\":0,\"B\":5000,\"C\":2500}}");
	BAD_STATION("{\"power_kw\":1,\"voltage_v\":\"230\"}", "voltage_v: must be an object",
	            FIELD);
	BAD_STATION("{\"power_kw\":1,\"voltage_v\":{\"A\":false}}", "voltage_v.A: must be a number",
	            FIELD);
	BAD_STATION("{\"power_kw\":1,\"voltage_v\":{\"A\":-1}}", "voltage_v.A: must be between",
	            FIELD);
	BAD_STATION("{\"power_kw\":1,\"voltage_v\":{\"C\":1000.01}}",
	            "voltage_v.C: must be between", FIELD);
	GOOD_STATION("{\"power_kw\":1,\"voltage_v\":{\"A\":0,\"B\":1000}}");
	/* lower-case or unknown phase names are ignored, not guessed */
	struct vgw_station_meter m;
	struct vgw_payload_err e;
	CHECK_INT(dec_station("{\"power_kw\":1,\"current_a\":{\"a\":16,\"D\":1}}", &m, &e), 0);
	CHECK(isnan(m.current_a.a));
}

static void test_station_optional(void)
{
	BAD_STATION("{\"power_kw\":1,\"temperature_c\":\"hot\"}", "temperature_c: must be a number",
	            FIELD);
	BAD_STATION("{\"power_kw\":1,\"temperature_c\":-50.5}", "temperature_c: must be between",
	            FIELD);
	BAD_STATION("{\"power_kw\":1,\"temperature_c\":200.5}", "temperature_c: must be between",
	            FIELD);
	GOOD_STATION("{\"power_kw\":1,\"temperature_c\":-50}");
	GOOD_STATION("{\"power_kw\":1,\"temperature_c\":200}");

	BAD_STATION("{\"power_kw\":1,\"soc\":[50]}", "soc: must be a number", FIELD);
	BAD_STATION("{\"power_kw\":1,\"soc\":-0.1}", "soc: must be between", FIELD);
	BAD_STATION("{\"power_kw\":1,\"soc\":100.1}", "soc: must be between", FIELD);
	GOOD_STATION("{\"power_kw\":1,\"soc\":0}");
	GOOD_STATION("{\"power_kw\":1,\"soc\":100}");

	BAD_STATION("{\"power_kw\":1,\"status\":1}", "status: must be a string", FIELD);
	BAD_STATION("{\"power_kw\":1,\"status\":\"a\\nb\"}", "status: control character", FIELD);
	BAD_STATION("{\"power_kw\":1,\"status\":\"123456789012345678901234567890123\"}",
	            "status: longer than 32", FIELD);
	struct vgw_station_meter m;
	struct vgw_payload_err e;
	CHECK_INT(dec_station("{\"power_kw\":1,\"status\":\"12345678901234567890123456789012\"}",
	                      &m, &e),
	          0);
	CHECK_INT(strlen(m.status), 32);
	CHECK_INT(dec_station("{\"power_kw\":1,\"status\":\"\"}", &m, &e), 0);
	CHECK_STR(m.status, "");
}

/* kind, phases, max_kw, priority: decoded when valid; an invalid one is
 * left "not reported" with its bit set, and the meter is still good. */
static void test_station_extensions(void)
{
	struct vgw_station_meter m;
	struct vgw_payload_err e;

	/* what v2g-site-sim sends */
	CHECK_INT(dec_station("{\"power_kw\":21.9,\"current_a\":{\"A\":31.7,\"B\":31.7,"
	                      "\"C\":31.7},\"kind\":\"ac\",\"phases\":3,\"max_kw\":22,"
	                      "\"priority\":5}",
	                      &m, &e),
	          0);
	CHECK_STR(m.kind, "ac");
	CHECK_INT(m.phases, 3);
	CHECK_NEAR(m.max_kw, 22, 1e-12);
	CHECK_INT(m.priority, 5);
	CHECK_INT(m.ignored, 0);
	CHECK_STR(e.msg, "");
	CHECK_INT(dec_station("{\"power_kw\":120,\"kind\":\"dc\",\"phases\":1.0,"
	                      "\"max_kw\":1000,\"priority\":10}",
	                      &m, &e),
	          0);
	CHECK_STR(m.kind, "dc");
	CHECK_INT(m.phases, 1);
	CHECK_NEAR(m.max_kw, 1000, 1e-12);
	CHECK_INT(m.priority, 10);
	CHECK_INT(m.ignored, 0);

	/* absent and null: not reported */
	CHECK_INT(dec_station("{\"power_kw\":1,\"kind\":null,\"priority\":null}", &m, &e), 0);
	CHECK_STR(m.kind, "");
	CHECK_INT(m.phases, 0);
	CHECK_NEAR(m.max_kw, 0, 0);
	CHECK_INT(m.priority, 0);
	CHECK_INT(m.ignored, 0);

	/* each invalid value: ignored, named, the rest of the meter kept */
	static const struct {
		const char *ext;
		unsigned bit;
		const char *msg;
	} bad[] = {
		{ "\"kind\":\"AC\"", VGW_METER_EXT_KIND, "kind: must be \"ac\" or \"dc\"" },
		{ "\"kind\":\"acx\"", VGW_METER_EXT_KIND, "kind: must be" },
		{ "\"kind\":\"\"", VGW_METER_EXT_KIND, "kind: must be" },
		{ "\"kind\":1", VGW_METER_EXT_KIND, "kind: must be" },
		{ "\"phases\":2", VGW_METER_EXT_PHASES, "phases: must be 1 or 3, got 2" },
		{ "\"phases\":0", VGW_METER_EXT_PHASES, "phases: must be 1 or 3" },
		{ "\"phases\":3.5", VGW_METER_EXT_PHASES, "phases: must be an integer" },
		{ "\"phases\":\"3\"", VGW_METER_EXT_PHASES, "phases: must be an integer" },
		{ "\"max_kw\":0", VGW_METER_EXT_MAX_KW, "max_kw: must be > 0 and <= 1000, got 0" },
		{ "\"max_kw\":-22", VGW_METER_EXT_MAX_KW, "max_kw: must be > 0" },
		{ "\"max_kw\":1000.5", VGW_METER_EXT_MAX_KW, "max_kw: must be > 0" },
		{ "\"max_kw\":\"22\"", VGW_METER_EXT_MAX_KW, "max_kw: must be a number" },
		{ "\"priority\":0", VGW_METER_EXT_PRIORITY, "priority: must be 1..10, got 0" },
		{ "\"priority\":11", VGW_METER_EXT_PRIORITY, "priority: must be 1..10" },
		{ "\"priority\":-3", VGW_METER_EXT_PRIORITY, "priority: must be 1..10" },
		{ "\"priority\":true", VGW_METER_EXT_PRIORITY, "priority: must be an integer" },
		{ "\"priority\":1e12", VGW_METER_EXT_PRIORITY, "priority: must be 1..10" },
	};
	static const char *const good[] = { "\"kind\":\"ac\"", "\"phases\":1", "\"max_kw\":7.4",
		                            "\"priority\":4" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* the other three good, this one bad (a duplicate key is bad JSON) */
		char j[256];
		int n = snprintf(j, sizeof(j), "{\"power_kw\":7.4,\"status\":\"charging\"");
		for (unsigned k = 0; k < 4; k++)
			n += snprintf(j + n, sizeof(j) - (size_t)n, ",%s",
			              (1u << k) == bad[i].bit ? bad[i].ext : good[k]);
		snprintf(j + n, sizeof(j) - (size_t)n, "}");
		CHECK_INT(dec_station(j, &m, &e), 0);
		if (m.ignored != bad[i].bit)
			harness_fail(__FILE__, __LINE__, "%s: ignored 0x%x, expected 0x%x", j,
			             m.ignored, bad[i].bit);
		if (strncmp(e.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
			harness_fail(__FILE__, __LINE__, "%s: message \"%s\", expected \"%s\"", j,
			             e.msg, bad[i].msg);
		CHECK_NEAR(m.power_kw, 7.4, 1e-12);
		CHECK_STR(m.status, "charging");
		/* the invalid field is not reported; the others are */
		CHECK(bad[i].bit == VGW_METER_EXT_KIND ? m.kind[0] == '\0' : !strcmp(m.kind, "ac"));
		CHECK_INT(m.phases, bad[i].bit == VGW_METER_EXT_PHASES ? 0 : 1);
		CHECK_NEAR(m.max_kw, bad[i].bit == VGW_METER_EXT_MAX_KW ? 0 : 7.4, 1e-12);
		CHECK_INT(m.priority, bad[i].bit == VGW_METER_EXT_PRIORITY ? 0 : 4);
	}

	/* several at once: every bit, the first named */
	CHECK_INT(dec_station("{\"power_kw\":1,\"kind\":\"hv\",\"phases\":2,\"max_kw\":0,"
	                      "\"priority\":99}",
	                      &m, &e),
	          0);
	CHECK_INT(m.ignored, VGW_METER_EXT_KIND | VGW_METER_EXT_PHASES | VGW_METER_EXT_MAX_KW |
	                             VGW_METER_EXT_PRIORITY);
	CHECK(strncmp(e.msg, "kind:", 5) == 0);
	CHECK_STR(vgw_meter_ext_name(VGW_METER_EXT_MAX_KW), "max_kw");
	CHECK(vgw_meter_ext_name(3) == NULL);

	/* a bad required field still drops the meter, extensions or not */
	BAD_STATION("{\"kind\":\"ac\",\"phases\":3}", "power_kw: required", FIELD);
}

static void test_station_not_json(void)
{
	BAD_STATION("", NULL, VGW_REJECT_BAD_JSON);
	BAD_STATION("not json", NULL, VGW_REJECT_BAD_JSON);
	BAD_STATION("[1,2]", NULL, VGW_REJECT_BAD_JSON);
	BAD_STATION("42", NULL, VGW_REJECT_BAD_JSON);
	BAD_STATION("{\"power_kw\":1,\"power_kw\":2}", NULL, VGW_REJECT_BAD_JSON);
	BAD_STATION("{\"power_kw\":NaN}", NULL, VGW_REJECT_BAD_JSON);

	/* over max_len: too_large, before any parsing */
	struct vgw_station_meter m;
	struct vgw_payload_err e;
	const char *j = "{\"power_kw\":1}";
	CHECK_INT(vgw_payload_decode_station_meter(j, strlen(j), strlen(j) - 1, NOW, &m, &e),
	          V2G_ERR_TOOBIG);
	CHECK_INT(e.reason, VGW_REJECT_TOO_LARGE);
	CHECK_INT(vgw_payload_decode_station_meter(j, strlen(j), strlen(j), NOW, &m, &e), 0);
}

/* --- site meter -------------------------------------------------------------- */

static void test_site_full(void)
{
	struct vgw_site_meter m;
	struct vgw_payload_err e;
	const char *j = "{\"power_kw\":250.5,\"current_a\":{\"A\":360,\"B\":355,\"C\":350},"
	                "\"voltage_v\":{\"A\":400,\"B\":401,\"C\":399},\"power_factor\":-0.95,"
	                "\"frequency_hz\":49.98}";
	CHECK_INT(dec_site(j, &m, &e), 0);
	CHECK_NEAR(m.power_kw, 250.5, 1e-12);
	CHECK_INT(m.has_current, 1);
	CHECK_NEAR(m.current_a.a, 360, 1e-12);
	CHECK_NEAR(m.current_a.c, 350, 1e-12);
	CHECK_INT(m.has_voltage, 1);
	CHECK_NEAR(m.voltage_v.b, 401, 1e-12);
	CHECK_NEAR(m.power_factor, -0.95, 1e-12);
	CHECK_NEAR(m.frequency_hz, 49.98, 1e-12);
	CHECK_INT(m.received_ms, NOW);

	CHECK_INT(dec_site("{\"power_kw\":-3}", &m, &e), 0);
	CHECK_INT(m.has_current, 0);
	CHECK_INT(m.has_voltage, 0);
	CHECK(isnan(m.current_a.b) && isnan(m.voltage_v.c));
	CHECK(isnan(m.power_factor));
	CHECK(isnan(m.frequency_hz));
}

static void test_site_fields(void)
{
	BAD_SITE("{}", "power_kw: required", FIELD);
	BAD_SITE("{\"power_kw\":\"1\"}", "power_kw: must be a number", FIELD);
	BAD_SITE("{\"power_kw\":10001}", "power_kw: must be between", FIELD);
	BAD_SITE("{\"power_kw\":-10001}", "power_kw: must be between", FIELD);
	GOOD_SITE("{\"power_kw\":10000}");
	GOOD_SITE("{\"power_kw\":-10000}");

	BAD_SITE("{\"power_kw\":1,\"current_a\":true}", "current_a: must be an object", FIELD);
	BAD_SITE("{\"power_kw\":1,\"current_a\":{\"A\":{}}}", "current_a.A: must be a number",
	         FIELD);
	BAD_SITE("{\"power_kw\":1,\"current_a\":{\"A\":5001}}", "current_a.A: must be between",
	         FIELD);
	BAD_SITE("{\"power_kw\":1,\"voltage_v\":{\"B\":-5}}", "voltage_v.B: must be between",
	         FIELD);
	BAD_SITE("{\"power_kw\":1,\"voltage_v\":{\"B\":1001}}", "voltage_v.B: must be between",
	         FIELD);
	GOOD_SITE("{\"power_kw\":1,\"current_a\":{\"A\":5000},\"voltage_v\":{\"C\":1000}}");

	BAD_SITE("{\"power_kw\":1,\"power_factor\":\"0.9\"}", "power_factor: must be a number",
	         FIELD);
	BAD_SITE("{\"power_kw\":1,\"power_factor\":1.01}", "power_factor: must be between", FIELD);
	BAD_SITE("{\"power_kw\":1,\"power_factor\":-1.01}", "power_factor: must be between", FIELD);
	GOOD_SITE("{\"power_kw\":1,\"power_factor\":1}");
	GOOD_SITE("{\"power_kw\":1,\"power_factor\":-1}");

	BAD_SITE("{\"power_kw\":1,\"frequency_hz\":\"50\"}", "frequency_hz: must be a number",
	         FIELD);
	BAD_SITE("{\"power_kw\":1,\"frequency_hz\":39.9}", "frequency_hz: must be between", FIELD);
	BAD_SITE("{\"power_kw\":1,\"frequency_hz\":70.1}", "frequency_hz: must be between", FIELD);
	GOOD_SITE("{\"power_kw\":1,\"frequency_hz\":40}");
	GOOD_SITE("{\"power_kw\":1,\"frequency_hz\":70}");

	BAD_SITE("null", NULL, VGW_REJECT_BAD_JSON);
	BAD_SITE("{\"power_kw\":", NULL, VGW_REJECT_BAD_JSON);
	struct vgw_site_meter m;
	struct vgw_payload_err e;
	CHECK_INT(vgw_payload_decode_site_meter("{\"power_kw\":1}", 14, 10, NOW, &m, &e),
	          V2G_ERR_TOOBIG);
	CHECK_INT(e.reason, VGW_REJECT_TOO_LARGE);
}

/* --- setpoint ------------------------------------------------------------------ */

/* Parses s and returns the number at key (or at key.sub), NaN if absent. */
static double json_at(const char *s, const char *key, const char *sub)
{
	json_error_t je;
	json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, &je);
	double d = NAN;
	if (!o)
		return d;
	json_t *v = json_object_get(o, key);
	if (v && sub)
		v = json_object_get(v, sub);
	if (v && json_is_number(v))
		d = json_number_value(v);
	json_decref(o);
	return d;
}

static void test_setpoint_encode(void)
{
	char buf[256];
	int n;

	/* DC: power only */
	n = vgw_payload_setpoint(7.2, NULL, buf, sizeof(buf));
	CHECK_STR(buf, "{\"power_kw\":7.2}");
	CHECK_INT(n, strlen("{\"power_kw\":7.2}"));

	/* AC: three phases, in A B C order */
	struct vgw_phases ph = { 16, 15.5, 0 };
	n = vgw_payload_setpoint(11, &ph, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK_INT((size_t)n, strlen(buf));
	CHECK_NEAR(json_at(buf, "power_kw", NULL), 11, 1e-12);
	CHECK_NEAR(json_at(buf, "phase_currents_a", "A"), 16, 1e-12);
	CHECK_NEAR(json_at(buf, "phase_currents_a", "B"), 15.5, 1e-12);
	CHECK_NEAR(json_at(buf, "phase_currents_a", "C"), 0, 1e-12);
	CHECK(strstr(buf, "\"A\"") < strstr(buf, "\"B\"") &&
	      strstr(buf, "\"B\"") < strstr(buf, "\"C\""));

	/* a NaN phase is omitted (single-phase charger) */
	ph.b = NAN;
	ph.c = NAN;
	CHECK(vgw_payload_setpoint(3.7, &ph, buf, sizeof(buf)) > 0);
	CHECK_NEAR(json_at(buf, "phase_currents_a", "A"), 16, 1e-12);
	CHECK(strstr(buf, "\"B\"") == NULL && strstr(buf, "\"C\"") == NULL);

	/* negative power (V2G discharge) and 0 (stop) are valid */
	CHECK(vgw_payload_setpoint(-10000, NULL, buf, sizeof(buf)) > 0);
	CHECK_NEAR(json_at(buf, "power_kw", NULL), -10000, 1e-12);
	CHECK(vgw_payload_setpoint(0, NULL, buf, sizeof(buf)) > 0);
	CHECK_NEAR(json_at(buf, "power_kw", NULL), 0, 1e-12);

	/* the value reads back exactly enough */
	CHECK(vgw_payload_setpoint(1.0 / 3.0, NULL, buf, sizeof(buf)) > 0);
	CHECK_NEAR(json_at(buf, "power_kw", NULL), 1.0 / 3.0, 1e-14);

	/* bad */
	CHECK_INT(vgw_payload_setpoint(NAN, NULL, buf, sizeof(buf)), -1);
	CHECK_INT(vgw_payload_setpoint(INFINITY, NULL, buf, sizeof(buf)), -1);
	CHECK_INT(vgw_payload_setpoint(10000.5, NULL, buf, sizeof(buf)), -1);
	CHECK_INT(vgw_payload_setpoint(-10000.5, NULL, buf, sizeof(buf)), -1);
	struct vgw_phases bad_ph = { -1, 0, 0 };
	CHECK_INT(vgw_payload_setpoint(1, &bad_ph, buf, sizeof(buf)), -1);
	bad_ph.a = 5000.5;
	CHECK_INT(vgw_payload_setpoint(1, &bad_ph, buf, sizeof(buf)), -1);
	bad_ph.a = INFINITY;
	CHECK_INT(vgw_payload_setpoint(1, &bad_ph, buf, sizeof(buf)), -1);

	/* buffer too small, with and without room for the NUL */
	const char *want = "{\"power_kw\":7.2}";
	CHECK_INT(vgw_payload_setpoint(7.2, NULL, buf, strlen(want)), -1);
	CHECK_INT(vgw_payload_setpoint(7.2, NULL, buf, strlen(want) + 1), (int)strlen(want));
	CHECK_INT(vgw_payload_setpoint(7.2, NULL, buf, 4), -1);
}

/* --- settings ------------------------------------------------------------------- */

static void settings_load(struct vgw_settings *s)
{
	char err[256];
	memset(s, 0, sizeof(*s));
	CHECK_INT(v2g_config_load(NULL, vgw_settings_items, vgw_settings_n, s, err, sizeof(err)),
	          0);
}

static void test_site_prefix_setting(void)
{
	struct vgw_settings s;
	char err[256];

	settings_load(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), 0);
	CHECK_STR(s.site_prefix, "site/");
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);

	setenv("K_MQTT__SITE_TOPIC_PREFIX", "dlm/site/", 1);
	settings_load(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), 0);
	CHECK_STR(s.site_prefix, "dlm/site/");
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);

	const char *bad[] = { "site/+/", "#", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("K_MQTT__SITE_TOPIC_PREFIX", bad[i], 1);
		settings_load(&s);
		CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG);
		CHECK(strncmp(err, "mqtt.site_topic_prefix:", 23) == 0);
		v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	}
	unsetenv("K_MQTT__SITE_TOPIC_PREFIX");
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_meter_topics),        HCASE(test_station_full),
		HCASE(test_station_minimal),     HCASE(test_station_power),
		HCASE(test_station_phases),      HCASE(test_station_optional),
		HCASE(test_station_not_json),    HCASE(test_site_full),
		HCASE(test_site_fields),         HCASE(test_setpoint_encode),
		HCASE(test_site_prefix_setting), HCASE(test_station_extensions),
	};
	return harness_main("vehicle-gateway-meter", cases, HARNESS_N(cases));
}
