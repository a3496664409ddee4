/* vehicle-gateway payloads: topic ids, state/telemetry/ack decoding, command
 * and pull-request encoding, command expiry, InfluxDB line protocol,
 * settings checks. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/vehicle-gateway/influx.h"
#include "../../services/vehicle-gateway/payload.h"
#include "../../services/vehicle-gateway/settings.h"
#include "../harness/harness.h"
#include "v2g/err.h"
#include "v2g/timeutil.h"

#define NOW  1700000000000LL
#define MAXB 16384

static int dec_state(const char *json, struct vgw_state *s, struct vgw_payload_err *e)
{
	memset(s, 0x5a, sizeof(*s)); /* catch fields left unset */
	e->reason = VGW_REJECT_NONE;
	e->msg[0] = '\0';
	return vgw_payload_decode_state(json, strlen(json), MAXB, NOW, s, e);
}

static int dec_ack(const char *json, struct vgw_ack *a, struct vgw_payload_err *e)
{
	memset(a, 0x5a, sizeof(*a));
	e->reason = VGW_REJECT_NONE;
	e->msg[0] = '\0';
	return vgw_payload_decode_ack(json, strlen(json), MAXB, NOW, a, e);
}

/* Expects a bad_field rejection whose message names field. */
static void expect_bad_state(const char *json, const char *field, enum vgw_reject reason)
{
	struct vgw_state s;
	struct vgw_payload_err e;
	int rc = dec_state(json, &s, &e);
	if (rc != V2G_ERR_INVAL && rc != V2G_ERR_TOOBIG)
		harness_fail(__FILE__, __LINE__, "accepted: %s", json);
	if (e.reason != reason)
		harness_fail(__FILE__, __LINE__, "%s: reason %s, expected %s", json,
		             vgw_reject_name(e.reason), vgw_reject_name(reason));
	if (field && strncmp(e.msg, field, strlen(field)) != 0)
		harness_fail(__FILE__, __LINE__, "%s: message \"%s\" does not name %s", json, e.msg,
		             field);
}

static void expect_bad_ack(const char *json, const char *field, enum vgw_reject reason)
{
	struct vgw_ack a;
	struct vgw_payload_err e;
	int rc = dec_ack(json, &a, &e);
	if (rc != V2G_ERR_INVAL && rc != V2G_ERR_TOOBIG)
		harness_fail(__FILE__, __LINE__, "accepted: %s", json);
	if (e.reason != reason)
		harness_fail(__FILE__, __LINE__, "%s: reason %s, expected %s", json,
		             vgw_reject_name(e.reason), vgw_reject_name(reason));
	if (field && strncmp(e.msg, field, strlen(field)) != 0)
		harness_fail(__FILE__, __LINE__, "%s: message \"%s\" does not name %s", json, e.msg,
		             field);
}

/* --- topics ------------------------------------------------------------------- */

static void test_topic_ids(void)
{
	char id[VGW_ID_MAX + 1];
	const char *t = "vehicle/EV-001_a.b:c/state";
	CHECK_INT(vgw_payload_topic_id(t, strlen(t), "vehicle/", "/state", id), 0);
	CHECK_STR(id, "EV-001_a.b:c");

	/* 64 characters are fine, 65 are not */
	char long_id[80], topic[128];
	memset(long_id, 'x', 64);
	long_id[64] = '\0';
	snprintf(topic, sizeof(topic), "vehicle/%s/state", long_id);
	CHECK_INT(vgw_payload_topic_id(topic, strlen(topic), "vehicle/", "/state", id), 0);
	CHECK_INT(strlen(id), 64);
	long_id[64] = 'x';
	long_id[65] = '\0';
	snprintf(topic, sizeof(topic), "vehicle/%s/state", long_id);
	CHECK_INT(vgw_payload_topic_id(topic, strlen(topic), "vehicle/", "/state", id),
	          V2G_ERR_INVAL);

	const char *bad[] = { "vehicle/a b/state", "vehicle/é/state", "vehicle/a$/state",
		              "vehicle/a#/state", "vehicle/a+b/state" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(vgw_payload_topic_id(bad[i], strlen(bad[i]), "vehicle/", "/state", id),
		          V2G_ERR_INVAL);

	const char *other[] = { "vehicle//state", "vehicle/a/b/state", "car/a/state",
		                "vehicle/a/ack",  "vehicle/a/statex",  "vehicle/a" };
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		CHECK_INT(
		        vgw_payload_topic_id(other[i], strlen(other[i]), "vehicle/", "/state", id),
		        V2G_ERR_NOTFOUND);

	/* not NUL-terminated: only len bytes count */
	const char buf[] = "vehicle/v1/stateGARBAGE";
	CHECK_INT(vgw_payload_topic_id(buf, 16, "vehicle/", "/state", id), 0);
	CHECK_STR(id, "v1");
}

static void test_classify(void)
{
	char id[VGW_ID_MAX + 1];
	int bad;
	const char *s = "vehicle/v1/state", *a = "vehicle/v2/ack", *t = "vehicle/v3/telemetry";

	CHECK_INT(vgw_payload_classify(s, strlen(s), "vehicle/", "vehicle/", NULL, id, &bad),
	          VGW_TOPIC_STATE);
	CHECK_STR(id, "v1");
	CHECK_INT(bad, 0);
	CHECK_INT(vgw_payload_classify(a, strlen(a), "vehicle/", "vehicle/", NULL, id, &bad),
	          VGW_TOPIC_ACK);
	CHECK_STR(id, "v2");
	/* telemetry replies only in pull mode */
	CHECK_INT(vgw_payload_classify(t, strlen(t), "vehicle/", "vehicle/", NULL, id, &bad),
	          VGW_TOPIC_OTHER);
	CHECK_INT(vgw_payload_classify(t, strlen(t), "vehicle/", "vehicle/", "vehicle/", id, &bad),
	          VGW_TOPIC_TELEMETRY);
	CHECK_STR(id, "v3");
	/* distinct prefixes */
	const char *a2 = "acks/v9/ack";
	CHECK_INT(vgw_payload_classify(a2, strlen(a2), "vehicle/", "acks/", NULL, id, &bad),
	          VGW_TOPIC_ACK);
	CHECK_INT(vgw_payload_classify(a, strlen(a), "vehicle/", "acks/", NULL, id, &bad),
	          VGW_TOPIC_OTHER);
	/* our shape with a bad id */
	const char *b = "vehicle/bad id/ack";
	CHECK_INT(vgw_payload_classify(b, strlen(b), "vehicle/", "vehicle/", NULL, id, &bad),
	          VGW_TOPIC_ACK);
	CHECK_INT(bad, 1);
}

/* --- state ------------------------------------------------------------------- */

static void test_state_full(void)
{
	struct vgw_state s;
	struct vgw_payload_err e;
	const char *j = "{\"soc\":72.5,\"max_power_kw\":11,\"available\":true,\"priority\":5,"
	                "\"tariff\":0.18,\"segment\":\"commuter\",\"fleet_id\":\"f1\","
	                "\"site\":\"paris-01\",\"cluster\":\"c3\",\"battery_kwh\":60,"
	                "\"power_kw\":-3.5,\"ts\":\"2026-11-21T11:32:24Z\",\"extra\":[1,2]}";
	CHECK_INT(dec_state(j, &s, &e), 0);
	CHECK_NEAR(s.soc, 72.5, 1e-12);
	CHECK_NEAR(s.max_power_kw, 11, 1e-12);
	CHECK_INT(s.available, 1);
	CHECK_INT(s.priority, 5);
	CHECK_NEAR(s.tariff, 0.18, 1e-12);
	CHECK_STR(s.segment, "commuter");
	CHECK_STR(s.fleet_id, "f1");
	CHECK_STR(s.site, "paris-01");
	CHECK_STR(s.cluster, "c3");
	CHECK_NEAR(s.battery_kwh, 60, 1e-12);
	CHECK_NEAR(s.power_kw, -3.5, 1e-12);
	int64_t ts;
	CHECK_INT(v2g_time_parse("2026-11-21T11:32:24Z", &ts), 0);
	CHECK_INT(s.ts_ms, ts);
	CHECK_STR(s.request_id, "");
}

static void test_state_defaults(void)
{
	struct vgw_state s;
	struct vgw_payload_err e;
	CHECK_INT(dec_state("{\"soc\":0,\"max_power_kw\":0,\"available\":false}", &s, &e), 0);
	CHECK_NEAR(s.soc, 0, 0);
	CHECK_INT(s.available, 0);
	CHECK_INT(s.priority, 0);
	CHECK_NEAR(s.tariff, 0, 0);
	CHECK_STR(s.segment, "default");
	CHECK_STR(s.fleet_id, "");
	CHECK_STR(s.site, "");
	CHECK_STR(s.cluster, "");
	CHECK_NEAR(s.battery_kwh, 0, 0);
	CHECK_NEAR(s.power_kw, 0, 0);
	CHECK_INT(s.ts_ms, NOW); /* receive time */

	/* null counts as absent for optional fields; bounds are inclusive */
	CHECK_INT(dec_state("{\"soc\":100,\"max_power_kw\":1000,\"available\":true,"
	                    "\"segment\":null,\"ts\":null,\"priority\":null}",
	                    &s, &e),
	          0);
	CHECK_STR(s.segment, "default");
	CHECK_INT(s.ts_ms, NOW);
	/* an empty segment keeps the default (no empty tag) */
	CHECK_INT(dec_state("{\"soc\":1,\"max_power_kw\":1,\"available\":true,\"segment\":\"\"}",
	                    &s, &e),
	          0);
	CHECK_STR(s.segment, "default");
}

static void test_state_ts(void)
{
	struct vgw_state s;
	struct vgw_payload_err e;
	int64_t want;

	CHECK_INT(dec_state("{\"soc\":1,\"max_power_kw\":1,\"available\":true,"
	                    "\"ts\":\"2024-01-02T03:04:05.678+01:00\"}",
	                    &s, &e),
	          0);
	CHECK_INT(v2g_time_parse("2024-01-02T02:04:05.678Z", &want), 0);
	CHECK_INT(s.ts_ms, want);
	expect_bad_state("{\"soc\":1,\"max_power_kw\":1,\"available\":true,\"ts\":\"yesterday\"}",
	                 "ts", VGW_REJECT_BAD_FIELD);
	expect_bad_state(
	        "{\"soc\":1,\"max_power_kw\":1,\"available\":true,\"ts\":\"2024-13-40T00:00:00Z\"}",
	        "ts", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":1,\"max_power_kw\":1,\"available\":true,\"ts\":1700000000}",
	                 "ts", VGW_REJECT_BAD_FIELD);
}

static void test_state_required(void)
{
	expect_bad_state("{\"max_power_kw\":11,\"available\":true}", "soc", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"available\":true}", "max_power_kw", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11}", "available", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":null,\"max_power_kw\":11,\"available\":true}", "soc",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{}", "soc", VGW_REJECT_BAD_FIELD);
}

static void test_state_types(void)
{
	expect_bad_state("{\"soc\":\"50\",\"max_power_kw\":11,\"available\":true}", "soc",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":true,\"available\":true}", "max_power_kw",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":1}", "available",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":\"true\"}", "available",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"priority\":1.5}",
	                 "priority", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"priority\":\"5\"}",
	                 "priority", VGW_REJECT_BAD_FIELD);
	expect_bad_state(
	        "{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"priority\":3000000000}",
	        "priority", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"tariff\":\"0.1\"}",
	                 "tariff", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"segment\":7}",
	                 "segment", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"fleet_id\":[]}",
	                 "fleet_id", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"site\":{}}", "site",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"cluster\":false}",
	                 "cluster", VGW_REJECT_BAD_FIELD);
	expect_bad_state(
	        "{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"battery_kwh\":\"60\"}",
	        "battery_kwh", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"power_kw\":\"1\"}",
	                 "power_kw", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"request_id\":5}",
	                 "request_id", VGW_REJECT_BAD_FIELD);
	/* a control character in a tag string */
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"site\":\"a\\nb\"}",
	                 "site", VGW_REJECT_BAD_FIELD);
}

static void test_state_ranges(void)
{
	expect_bad_state("{\"soc\":-0.1,\"max_power_kw\":11,\"available\":true}", "soc",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":100.01,\"max_power_kw\":11,\"available\":true}", "soc",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":-1,\"available\":true}", "max_power_kw",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":1000.5,\"available\":true}", "max_power_kw",
	                 VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"battery_kwh\":-1}",
	                 "battery_kwh", VGW_REJECT_BAD_FIELD);
	expect_bad_state("{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"power_kw\":1001}",
	                 "power_kw", VGW_REJECT_BAD_FIELD);
	/* strings over 128 bytes */
	char j[512], big[200];
	memset(big, 'a', 129);
	big[129] = '\0';
	snprintf(j, sizeof(j),
	         "{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"fleet_id\":\"%s\"}", big);
	expect_bad_state(j, "fleet_id", VGW_REJECT_BAD_FIELD);
	big[128] = '\0';
	snprintf(j, sizeof(j),
	         "{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"fleet_id\":\"%s\"}", big);
	struct vgw_state s;
	struct vgw_payload_err e;
	CHECK_INT(dec_state(j, &s, &e), 0);
	CHECK_INT(strlen(s.fleet_id), 128);
}

static void test_state_not_json(void)
{
	expect_bad_state("", NULL, VGW_REJECT_BAD_JSON);
	expect_bad_state("soc=50", NULL, VGW_REJECT_BAD_JSON);
	expect_bad_state("{\"soc\":50,", NULL, VGW_REJECT_BAD_JSON);
	expect_bad_state("[{\"soc\":50,\"max_power_kw\":11,\"available\":true}]", NULL,
	                 VGW_REJECT_BAD_JSON);
	expect_bad_state("42", NULL, VGW_REJECT_BAD_JSON);
	expect_bad_state("\"text\"", NULL, VGW_REJECT_BAD_JSON);
	expect_bad_state("{\"soc\":50,\"soc\":51,\"max_power_kw\":11,\"available\":true}", NULL,
	                 VGW_REJECT_BAD_JSON);
	/* not UTF-8 */
	expect_bad_state(
	        "{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"site\":\"\xff\xfe\"}", NULL,
	        VGW_REJECT_BAD_JSON);
	/* NaN is not JSON */
	expect_bad_state("{\"soc\":NaN,\"max_power_kw\":11,\"available\":true}", NULL,
	                 VGW_REJECT_BAD_JSON);
	/* embedded NUL in a string */
	expect_bad_state(
	        "{\"soc\":50,\"max_power_kw\":11,\"available\":true,\"site\":\"a\\u0000b\"}", NULL,
	        VGW_REJECT_BAD_JSON);

	/* the payload's length counts, not a NUL inside it */
	struct vgw_state s;
	struct vgw_payload_err e;
	const char raw[] = "{\"soc\":5,\"max_power_kw\":1,\"available\":true}\0garbage";
	CHECK_INT(vgw_payload_decode_state(raw, sizeof(raw) - 1, MAXB, NOW, &s, &e), V2G_ERR_INVAL);
	CHECK_INT(e.reason, VGW_REJECT_BAD_JSON);
	CHECK_INT(vgw_payload_decode_state(raw, strlen(raw), MAXB, NOW, &s, &e), 0);
}

static void test_state_too_large(void)
{
	struct vgw_state s;
	struct vgw_payload_err e;
	const char *j = "{\"soc\":50,\"max_power_kw\":11,\"available\":true}";
	size_t n = strlen(j);
	CHECK_INT(vgw_payload_decode_state(j, n, n, NOW, &s, &e), 0);
	CHECK_INT(vgw_payload_decode_state(j, n, n - 1, NOW, &s, &e), V2G_ERR_TOOBIG);
	CHECK_INT(e.reason, VGW_REJECT_TOO_LARGE);

	/* a padded but valid payload over 16 KiB */
	size_t big = MAXB + 100;
	char *p = malloc(big + 1);
	memset(p, ' ', big);
	memcpy(p, j, n);
	p[big] = '\0';
	CHECK_INT(vgw_payload_decode_state(p, big, MAXB, NOW, &s, &e), V2G_ERR_TOOBIG);
	CHECK_INT(e.reason, VGW_REJECT_TOO_LARGE);
	free(p);
}

static void test_telemetry_reply(void)
{
	struct vgw_state s;
	struct vgw_payload_err e;
	CHECK_INT(dec_state("{\"request_id\":\"6f1c\",\"soc\":33,\"max_power_kw\":7.4,"
	                    "\"available\":true}",
	                    &s, &e),
	          0);
	CHECK_STR(s.request_id, "6f1c");
	CHECK_NEAR(s.max_power_kw, 7.4, 1e-12);
}

/* --- ack ---------------------------------------------------------------------- */

static void test_ack(void)
{
	struct vgw_ack a;
	struct vgw_payload_err e;
	CHECK_INT(dec_ack("{\"dispatch_id\":\"d-1\",\"accepted\":true,\"reason\":\"\"}", &a, &e),
	          0);
	CHECK_STR(a.dispatch_id, "d-1");
	CHECK_INT(a.accepted, 1);
	CHECK_STR(a.reason, "");
	CHECK_INT(a.received_ms, NOW);

	CHECK_INT(dec_ack("{\"dispatch_id\":\"d-2\",\"accepted\":false,\"reason\":\"low soc\"}", &a,
	                  &e),
	          0);
	CHECK_INT(a.accepted, 0);
	CHECK_STR(a.reason, "low soc");
	/* reason optional */
	CHECK_INT(dec_ack("{\"dispatch_id\":\"d-3\",\"accepted\":false}", &a, &e), 0);
	CHECK_STR(a.reason, "");

	/* a long reason is cut at a character boundary, the ack kept */
	char j[1200], r[700];
	size_t o = 0;
	for (int i = 0; i < 300; i++) { /* 600 bytes of "é" */
		r[o++] = (char)0xc3;
		r[o++] = (char)0xa9;
	}
	r[o] = '\0';
	snprintf(j, sizeof(j), "{\"dispatch_id\":\"d\",\"accepted\":true,\"reason\":\"%s\"}", r);
	CHECK_INT(dec_ack(j, &a, &e), 0);
	CHECK_INT(strlen(a.reason), 256);
	CHECK(((unsigned char)a.reason[255] & 0xC0) != 0xC0); /* not a dangling lead byte */
	memset(r, 'r', 300);
	r[300] = '\0';
	snprintf(j, sizeof(j), "{\"dispatch_id\":\"d\",\"accepted\":true,\"reason\":\"%s\"}", r);
	CHECK_INT(dec_ack(j, &a, &e), 0);
	CHECK_INT(strlen(a.reason), VGW_REASON_MAX);
	CHECK_INT(a.received_ms, NOW);
}

static void test_ack_bad(void)
{
	expect_bad_ack("{\"accepted\":true}", "dispatch_id", VGW_REJECT_BAD_FIELD);
	expect_bad_ack("{\"dispatch_id\":\"\",\"accepted\":true}", "dispatch_id",
	               VGW_REJECT_BAD_FIELD);
	expect_bad_ack("{\"dispatch_id\":5,\"accepted\":true}", "dispatch_id",
	               VGW_REJECT_BAD_FIELD);
	expect_bad_ack("{\"dispatch_id\":\"d\"}", "accepted", VGW_REJECT_BAD_FIELD);
	expect_bad_ack("{\"dispatch_id\":\"d\",\"accepted\":\"yes\"}", "accepted",
	               VGW_REJECT_BAD_FIELD);
	expect_bad_ack("{\"dispatch_id\":\"d\",\"accepted\":true,\"reason\":3}", "reason",
	               VGW_REJECT_BAD_FIELD);
	expect_bad_ack("[\"d\",true]", NULL, VGW_REJECT_BAD_JSON);
	expect_bad_ack("ok", NULL, VGW_REJECT_BAD_JSON);

	struct vgw_ack a;
	struct vgw_payload_err e;
	const char *j = "{\"dispatch_id\":\"d\",\"accepted\":true}";
	CHECK_INT(vgw_payload_decode_ack(j, strlen(j), 10, NOW, &a, &e), V2G_ERR_TOOBIG);
	CHECK_INT(e.reason, VGW_REJECT_TOO_LARGE);
}

/* --- encoders ----------------------------------------------------------------- */

static void test_command_encode(void)
{
	struct vgw_cmd_enc enc;
	char buf[512];
	int64_t issued;
	CHECK_INT(v2g_time_parse("2026-11-21T11:32:24.123Z", &issued), 0);
	CHECK_INT(vgw_cmd_enc_init(&enc, "disp \"quoted\"", 1, 15, issued), 0);

	int n = vgw_cmd_enc_command(&enc, 7.2, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK_INT(strlen(buf), n);
	json_error_t je;
	json_t *o = json_loads(buf, 0, &je);
	CHECK(o != NULL);
	if (o) {
		CHECK_STR(json_string_value(json_object_get(o, "dispatch_id")), "disp \"quoted\"");
		CHECK_STR(json_string_value(json_object_get(o, "signal_type")), "AFRR");
		CHECK_NEAR(json_number_value(json_object_get(o, "power_kw")), 7.2, 0);
		CHECK_INT(json_integer_value(json_object_get(o, "duration_min")), 15);
		CHECK_STR(json_string_value(json_object_get(o, "issued_at")),
		          "2026-11-21T11:32:24.123Z");
		CHECK_INT(json_object_size(o), 5);
		json_decref(o);
	}
	/* power 0 releases; exact round trip of awkward values */
	double vals[] = { 0.0, -0.0, 0.1, 1e-7, 123456.789012345, -11.0, 1.0 / 3.0 };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		CHECK(vgw_cmd_enc_command(&enc, vals[i], buf, sizeof(buf)) > 0);
		o = json_loads(buf, 0, &je);
		CHECK(o != NULL);
		if (o) {
			CHECK(json_number_value(json_object_get(o, "power_kw")) == vals[i]);
			json_decref(o);
		}
	}
	CHECK_INT(vgw_cmd_enc_command(&enc, 1.0 / 0.0, buf, sizeof(buf)), -1);
	CHECK_INT(vgw_cmd_enc_command(&enc, 7.2, buf, 20), -1);
	vgw_cmd_enc_fini(&enc);
	vgw_cmd_enc_fini(&enc); /* idempotent */

	CHECK_INT(vgw_cmd_enc_init(&enc, "d", 0, 1, 0), 0);
	CHECK(vgw_cmd_enc_command(&enc, 1, buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\"signal_type\":\"FCR\"") != NULL);
	vgw_cmd_enc_fini(&enc);
	CHECK_INT(vgw_cmd_enc_init(&enc, "d", 2, 1, 0), 0);
	CHECK(vgw_cmd_enc_command(&enc, 1, buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "\"signal_type\":\"LOAD_SHEDDING\"") != NULL);
	vgw_cmd_enc_fini(&enc);

	CHECK_INT(vgw_cmd_enc_init(&enc, "d", 3, 1, 0), V2G_ERR_INVAL);
	CHECK_INT(vgw_cmd_enc_init(&enc, "d", -1, 1, 0), V2G_ERR_INVAL);
	CHECK_INT(vgw_cmd_enc_init(&enc, "", 0, 1, 0), V2G_ERR_INVAL);
	CHECK_INT(vgw_cmd_enc_init(&enc, "\xff", 0, 1, 0), V2G_ERR_INVAL);
}

/* When a CommandBatch is too late to go to the vehicles. */
static void test_command_expiry(void)
{
	const int64_t max = 30000, hour = 3600000;

	/* age: up to max_age_ms inclusive is fresh */
	CHECK_INT(vgw_command_batch_expired(NOW, 15, NOW, max), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(NOW - 5000, 15, NOW, max), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(NOW - max, 15, NOW, max), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(NOW - max - 1, 15, NOW, max), VGW_CMD_TOO_OLD);
	CHECK_INT(vgw_command_batch_expired(NOW - 60000, 15, NOW, max), VGW_CMD_TOO_OLD);
	CHECK_INT(vgw_command_batch_expired(NOW - 3 * hour, 15, NOW, hour), VGW_CMD_TOO_OLD);
	/* issued a little (or a lot) in the future: fresh */
	CHECK_INT(vgw_command_batch_expired(NOW + 2000, 15, NOW, max), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(INT64_MAX, 15, NOW, max), VGW_CMD_FRESH);
	/* unknown issue time: fresh, whatever the clock says */
	CHECK_INT(vgw_command_batch_expired(0, 15, NOW, max), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(-1, 15, NOW, max), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(INT64_MIN, 1, INT64_MAX, 1000), VGW_CMD_FRESH);
	/* no overflow at the extremes */
	CHECK_INT(vgw_command_batch_expired(1, 15, INT64_MAX, hour), VGW_CMD_TOO_OLD);
	CHECK_INT(vgw_command_batch_expired(NOW - hour, UINT32_MAX, NOW, hour), VGW_CMD_FRESH);

	/* the signal's end: issued_at + duration_min minutes <= now */
	CHECK_INT(vgw_command_batch_expired(NOW - 59999, 1, NOW, hour), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(NOW - 60000, 1, NOW, hour), VGW_CMD_SIGNAL_ENDED);
	CHECK_INT(vgw_command_batch_expired(NOW - 899999, 15, NOW, hour), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(NOW - 900000, 15, NOW, hour), VGW_CMD_SIGNAL_ENDED);
	/* duration 0 is unknown: only the age counts */
	CHECK_INT(vgw_command_batch_expired(NOW - 1000, 0, NOW, hour), VGW_CMD_FRESH);
	CHECK_INT(vgw_command_batch_expired(NOW - hour - 1, 0, NOW, hour), VGW_CMD_TOO_OLD);
	/* both: the age is named */
	CHECK_INT(vgw_command_batch_expired(NOW - 120000, 1, NOW, max), VGW_CMD_TOO_OLD);
}

static void test_pull_request(void)
{
	char *s = vgw_payload_pull_request("abc-123");
	CHECK_STR(s, "{\"request_id\":\"abc-123\"}");
	free(s);
}

static void test_number(void)
{
	char b[32];
	CHECK_INT(vgw_payload_number(11, b, sizeof(b)), 2);
	CHECK_STR(b, "11");
	vgw_payload_number(72.5, b, sizeof(b));
	CHECK_STR(b, "72.5");
	vgw_payload_number(-0.0, b, sizeof(b));
	CHECK_STR(b, "0");
	vgw_payload_number(0.1, b, sizeof(b));
	CHECK_STR(b, "0.1");
	CHECK_INT(vgw_payload_number(0.0 / 0.0, b, sizeof(b)), -1);
	CHECK_INT(vgw_payload_number(123456789.0, b, 4), -1);
}

/* --- line protocol ------------------------------------------------------------ */

static void test_escape_tag(void)
{
	char b[64];
	CHECK_INT(vgw_influx_escape_tag("paris 01", b, sizeof(b)), 9);
	CHECK_STR(b, "paris\\ 01");
	vgw_influx_escape_tag("a,b=c d\\e", b, sizeof(b));
	CHECK_STR(b, "a\\,b\\=c\\ d\\e");
	/* backslashes InfluxDB 1.x cannot parse are dropped */
	vgw_influx_escape_tag("x\\", b, sizeof(b));
	CHECK_STR(b, "x");
	vgw_influx_escape_tag("a\\,b\\\\c", b, sizeof(b));
	CHECK_STR(b, "a\\,b\\c");
	vgw_influx_escape_tag("plain", b, sizeof(b));
	CHECK_STR(b, "plain");
	CHECK_INT(vgw_influx_escape_tag("a,b", b, 4), -1);
	CHECK_INT(vgw_influx_escape_tag("abc", b, 4), 3);
	CHECK_INT(vgw_influx_escape_tag("abcd", b, 4), -1);
}

static void test_line(void)
{
	struct vgw_state s;
	char b[1024];
	memset(&s, 0, sizeof(s));
	snprintf(s.vehicle_id, sizeof(s.vehicle_id), "EV-1");
	snprintf(s.fleet_id, sizeof(s.fleet_id), "fleet one");
	snprintf(s.site, sizeof(s.site), "paris,01");
	snprintf(s.segment, sizeof(s.segment), "a=b");
	s.soc = 72.5;
	s.max_power_kw = 11;
	s.available = 1;
	s.power_kw = -3.25;
	s.ts_ms = 1700000000123LL;
	int n = vgw_influx_line(&s, b, sizeof(b));
	CHECK_STR(b, "vehicle_state,fleet_id=fleet\\ one,segment=a\\=b,site=paris\\,01,"
	             "vehicle_id=EV-1 soc=72.5,max_power_kw=11,available=true,power_kw=-3.25 "
	             "1700000000123");
	CHECK_INT(n, strlen(b));

	/* empty tags are left out */
	s.fleet_id[0] = s.site[0] = '\0';
	snprintf(s.segment, sizeof(s.segment), "default");
	s.available = 0;
	s.power_kw = 0;
	vgw_influx_line(&s, b, sizeof(b));
	CHECK_STR(b, "vehicle_state,segment=default,vehicle_id=EV-1 soc=72.5,max_power_kw=11,"
	             "available=false,power_kw=0 1700000000123");
	CHECK_INT(vgw_influx_line(&s, b, 30), -1);
}

/* --- settings ------------------------------------------------------------------- */

static void settings_defaults(struct vgw_settings *s)
{
	char err[256];
	memset(s, 0, sizeof(*s));
	CHECK_INT(v2g_config_load(NULL, vgw_settings_items, vgw_settings_n, s, err, sizeof(err)),
	          0);
}

static void test_settings(void)
{
	struct vgw_settings s;
	char err[256];

	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), 0);
	CHECK_INT(s.pull, 0);
	CHECK_STR(s.broker, "tcp://127.0.0.1:1883");
	CHECK_INT(s.qos_command, 1);
	CHECK_INT(s.max_payload_bytes, 16384);
	CHECK_INT(s.batch_ms, 50);
	CHECK_INT(s.influx_queue_max, 200000);
	CHECK_INT(s.command_max_age_ms, 30000);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);

	setenv("K_GATEWAY__COMMAND_MAX_AGE_MS", "120000", 1);
	settings_defaults(&s);
	CHECK_INT(s.command_max_age_ms, 120000);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	static const char *const bad_age[] = { "999", "3600001", "0", "-1", "30s" };
	for (size_t i = 0; i < sizeof(bad_age) / sizeof(bad_age[0]); i++) {
		setenv("K_GATEWAY__COMMAND_MAX_AGE_MS", bad_age[i], 1);
		memset(&s, 0, sizeof(s));
		CHECK_INT(v2g_config_load(NULL, vgw_settings_items, vgw_settings_n, &s, err,
		                          sizeof(err)),
		          V2G_ERR_CONFIG);
		CHECK(strncmp(err, "gateway.command_max_age_ms:", 27) == 0);
		v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	}
	unsetenv("K_GATEWAY__COMMAND_MAX_AGE_MS");

	setenv("K_TELEMETRY__MODE", "pull", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), 0);
	CHECK_INT(s.pull, 1);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);

	setenv("K_TELEMETRY__MODE", "poll", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strncmp(err, "telemetry.mode:", 15) == 0);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	unsetenv("K_TELEMETRY__MODE");

	setenv("K_MQTT__BROKER", "http://x:1883", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strncmp(err, "mqtt.broker:", 12) == 0);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	unsetenv("K_MQTT__BROKER");

	setenv("K_MQTT__STATE_TOPIC_PREFIX", "", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strncmp(err, "mqtt.state_topic_prefix:", 24) == 0);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	setenv("K_MQTT__STATE_TOPIC_PREFIX", "veh/+/", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	unsetenv("K_MQTT__STATE_TOPIC_PREFIX");

	/* the table's own bounds */
	setenv("K_MQTT__QOS_COMMAND", "3", 1);
	memset(&s, 0, sizeof(s));
	CHECK_INT(v2g_config_load(NULL, vgw_settings_items, vgw_settings_n, &s, err, sizeof(err)),
	          V2G_ERR_CONFIG);
	CHECK(strncmp(err, "mqtt.qos_command:", 17) == 0);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	unsetenv("K_MQTT__QOS_COMMAND");

	setenv("K_MQTT__RECONNECT_MIN_MS", "20000", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strncmp(err, "mqtt.reconnect_min_ms:", 22) == 0);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	unsetenv("K_MQTT__RECONNECT_MIN_MS");

	setenv("K_MQTT__CA_BUNDLE", "/tmp/ca.pem", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG); /* tcp:// */
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	setenv("K_MQTT__BROKER", "ssl://broker:8883", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), 0);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	unsetenv("K_MQTT__BROKER");
	unsetenv("K_MQTT__CA_BUNDLE");

	setenv("K_INFLUXDB__URL", "127.0.0.1:8086", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG);
	CHECK(strncmp(err, "influxdb.url:", 13) == 0);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	unsetenv("K_INFLUXDB__URL");

	setenv("K_INFLUXDB__DATABASE", "v2g\"; DROP", 1);
	settings_defaults(&s);
	CHECK_INT(vgw_settings_check(&s, err, sizeof(err)), V2G_ERR_CONFIG);
	v2g_config_free(vgw_settings_items, vgw_settings_n, &s);
	unsetenv("K_INFLUXDB__DATABASE");
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_topic_ids),
		HCASE(test_classify),
		HCASE(test_state_full),
		HCASE(test_state_defaults),
		HCASE(test_state_ts),
		HCASE(test_state_required),
		HCASE(test_state_types),
		HCASE(test_state_ranges),
		HCASE(test_state_not_json),
		HCASE(test_state_too_large),
		HCASE(test_telemetry_reply),
		HCASE(test_ack),
		HCASE(test_ack_bad),
		HCASE(test_command_encode),
		HCASE(test_command_expiry),
		HCASE(test_pull_request),
		HCASE(test_number),
		HCASE(test_escape_tag),
		HCASE(test_line),
		HCASE(test_settings),
	};
	return harness_main("vehicle-gateway-payload", cases, HARNESS_N(cases));
}
