/* MQTT payload decoding and encoding (jansson). Pure: no I/O, no globals. */
#include "payload.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/json.h"
#include "v2g/err.h"
#include "v2g/timeutil.h"

const char *vgw_reject_name(enum vgw_reject r)
{
	switch (r) {
	case VGW_REJECT_TOO_LARGE: return "too_large";
	case VGW_REJECT_BAD_JSON: return "bad_json";
	case VGW_REJECT_BAD_FIELD: return "bad_field";
	case VGW_REJECT_BAD_TOPIC: return "bad_topic";
	case VGW_REJECT_NONE: break;
	}
	return "none";
}

static int reject(struct vgw_payload_err *err, enum vgw_reject reason, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int reject(struct vgw_payload_err *err, enum vgw_reject reason, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		err->reason = reason;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return reason == VGW_REJECT_TOO_LARGE ? V2G_ERR_TOOBIG : V2G_ERR_INVAL;
}

/* --- topics ------------------------------------------------------------ */

int vgw_payload_id_valid(const char *id, size_t len)
{
	if (len == 0 || len > VGW_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-';
		if (!ok)
			return 0;
	}
	return 1;
}

int vgw_payload_topic_id(const char *topic, size_t len, const char *prefix, const char *suffix,
                         char out[VGW_ID_MAX + 1])
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	if (len < pl + sl + 1 || memcmp(topic, prefix, pl) != 0 ||
	    memcmp(topic + len - sl, suffix, sl) != 0)
		return V2G_ERR_NOTFOUND;
	const char *id = topic + pl;
	size_t idlen = len - pl - sl;
	/* The subscription is prefix+/suffix: the id is exactly one level. */
	if (memchr(id, '/', idlen))
		return V2G_ERR_NOTFOUND;
	if (!vgw_payload_id_valid(id, idlen))
		return V2G_ERR_INVAL;
	memcpy(out, id, idlen);
	out[idlen] = '\0';
	return 0;
}

enum vgw_topic_kind vgw_payload_classify(const char *topic, size_t len, const char *state_prefix,
                                         const char *ack_prefix, const char *resp_prefix,
                                         char out[VGW_ID_MAX + 1], int *bad_id)
{
	static const struct {
		enum vgw_topic_kind kind;
		const char *suffix;
	} kinds[] = {
		{ VGW_TOPIC_STATE, "/state" },
		{ VGW_TOPIC_ACK, "/ack" },
		{ VGW_TOPIC_TELEMETRY, "/telemetry" },
	};
	const char *prefixes[] = { state_prefix, ack_prefix, resp_prefix };

	*bad_id = 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (!prefixes[i])
			continue;
		int rc = vgw_payload_topic_id(topic, len, prefixes[i], kinds[i].suffix, out);
		if (rc == 0)
			return kinds[i].kind;
		if (rc == V2G_ERR_INVAL) {
			*bad_id = 1;
			return kinds[i].kind;
		}
	}
	return VGW_TOPIC_OTHER;
}

enum vgw_topic_kind vgw_payload_classify_meter(const char *topic, size_t len,
                                               const char *site_prefix, char site[VGW_ID_MAX + 1],
                                               char station[VGW_ID_MAX + 1], int *bad_id)
{
	static const char st_mid[] = "/station/", st_end[] = "/meter", si_end[] = "/meter";
	size_t pl = strlen(site_prefix);

	*bad_id = 0;
	if (len <= pl || memcmp(topic, site_prefix, pl) != 0)
		return VGW_TOPIC_OTHER;
	const char *p = topic + pl, *end = topic + len;
	const char *slash = memchr(p, '/', (size_t)(end - p));
	if (!slash)
		return VGW_TOPIC_OTHER;
	size_t sitelen = (size_t)(slash - p);
	size_t rest = (size_t)(end - slash);
	enum vgw_topic_kind kind;
	const char *stid = NULL;
	size_t stlen = 0;

	if (rest == sizeof(si_end) - 1 && memcmp(slash, si_end, rest) == 0) {
		kind = VGW_TOPIC_SITE_METER;
	} else if (rest >= sizeof(st_mid) - 1 + sizeof(st_end) - 1 &&
	           memcmp(slash, st_mid, sizeof(st_mid) - 1) == 0 &&
	           memcmp(end - (sizeof(st_end) - 1), st_end, sizeof(st_end) - 1) == 0) {
		stid = slash + sizeof(st_mid) - 1;
		stlen = (size_t)(end - (sizeof(st_end) - 1) - stid);
		/* The subscription is +/station/+/meter: one level each. */
		if (memchr(stid, '/', stlen))
			return VGW_TOPIC_OTHER;
		kind = VGW_TOPIC_STATION_METER;
	} else {
		return VGW_TOPIC_OTHER;
	}
	if (!vgw_payload_id_valid(p, sitelen) ||
	    (kind == VGW_TOPIC_STATION_METER && !vgw_payload_id_valid(stid, stlen))) {
		*bad_id = 1;
		return kind;
	}
	memcpy(site, p, sitelen);
	site[sitelen] = '\0';
	memcpy(station, stid ? stid : "", stlen);
	station[stlen] = '\0';
	return kind;
}

/* --- field helpers ------------------------------------------------------- */

/* A member that is absent or JSON null counts as absent. */
static json_t *member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_null(v) ? NULL : v;
}

static int get_number(json_t *o, const char *key, int required, double def, double min, double max,
                      double *out, struct vgw_payload_err *err)
{
	json_t *v = member(o, key);
	if (!v) {
		if (required)
			return reject(err, VGW_REJECT_BAD_FIELD, "%s: required", key);
		*out = def;
		return 0;
	}
	if (!json_is_number(v))
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: must be a number", key);
	double d = json_number_value(v);
	if (!(d >= min && d <= max))
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: must be between %g and %g, got %g",
		              key, min, max, d);
	*out = d;
	return 0;
}

static int get_bool(json_t *o, const char *key, int *out, struct vgw_payload_err *err)
{
	json_t *v = member(o, key);
	if (!v)
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: required", key);
	if (!json_is_boolean(v))
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

static int get_int32(json_t *o, const char *key, int32_t def, int32_t *out,
                     struct vgw_payload_err *err)
{
	json_t *v = member(o, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: must be an integer", key);
	json_int_t i = json_integer_value(v);
	if (i < INT32_MIN || i > INT32_MAX)
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: out of range", key);
	*out = (int32_t)i;
	return 0;
}

/* An optional {"A":..,"B":..,"C":..} object of numbers in min..max; absent
 * phases (and an absent object) are NaN. */
static int get_phases(json_t *o, const char *key, double min, double max, int *has,
                      struct vgw_phases *out, struct vgw_payload_err *err)
{
	static const char *const names[] = { "A", "B", "C" };
	double *dst[] = { &out->a, &out->b, &out->c };
	json_t *v = member(o, key);

	out->a = out->b = out->c = NAN;
	*has = 0;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: must be an object of phases A, B, C",
		              key);
	for (size_t i = 0; i < 3; i++) {
		json_t *x = member(v, names[i]);
		if (!x)
			continue;
		if (!json_is_number(x))
			return reject(err, VGW_REJECT_BAD_FIELD, "%s.%s: must be a number", key,
			              names[i]);
		double d = json_number_value(x);
		if (!(d >= min && d <= max))
			return reject(err, VGW_REJECT_BAD_FIELD,
			              "%s.%s: must be between %g and %g, got %g", key, names[i],
			              min, max, d);
		*dst[i] = d;
	}
	*has = 1;
	return 0;
}

/* Strings end up as InfluxDB tags and in logs: no control characters. */
static int get_string(json_t *o, const char *key, int required, const char *def, char *buf,
                      size_t size, struct vgw_payload_err *err)
{
	json_t *v = member(o, key);
	if (!v) {
		if (required)
			return reject(err, VGW_REJECT_BAD_FIELD, "%s: required", key);
		snprintf(buf, size, "%s", def);
		return 0;
	}
	if (!json_is_string(v))
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: must be a string", key);
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n >= size)
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: longer than %zu bytes", key,
		              size - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return reject(err, VGW_REJECT_BAD_FIELD, "%s: control character", key);
	if (required && n == 0)
		return reject(err, VGW_REJECT_BAD_FIELD, "%s: must not be empty", key);
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

/* Copies at most size-1 bytes of s, cutting at a UTF-8 character boundary. */
static void copy_truncated(char *buf, size_t size, const char *s, size_t n)
{
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
}

/* Parses the payload as one JSON object; *out is a new reference. */
static int load_object(const void *payload, size_t len, size_t max_len, json_t **out,
                       struct vgw_payload_err *err)
{
	json_error_t je;
	if (len > max_len)
		return reject(err, VGW_REJECT_TOO_LARGE,
		              "payload of %zu bytes over the limit of %zu", len, max_len);
	json_t *root = v2g_json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return reject(err, VGW_REJECT_BAD_JSON, "not JSON: %s (byte %d)", je.text,
		              je.position);
	if (!json_is_object(root)) {
		json_decref(root);
		return reject(err, VGW_REJECT_BAD_JSON, "not a JSON object");
	}
	*out = root;
	return 0;
}

/* --- decoders ----------------------------------------------------------- */

int vgw_payload_decode_state(const void *payload, size_t len, size_t max_len, int64_t now_ms,
                             struct vgw_state *out, struct vgw_payload_err *err)
{
	json_t *o;
	int rc = load_object(payload, len, max_len, &o, err);
	if (rc)
		return rc;

	if ((rc = get_number(o, "soc", 1, 0, 0, 100, &out->soc, err)) ||
	    (rc = get_number(o, "max_power_kw", 1, 0, 0, 1000, &out->max_power_kw, err)) ||
	    (rc = get_bool(o, "available", &out->available, err)) ||
	    (rc = get_int32(o, "priority", 0, &out->priority, err)) ||
	    (rc = get_number(o, "tariff", 0, 0, -1e6, 1e6, &out->tariff, err)) ||
	    (rc = get_string(o, "segment", 0, "default", out->segment, sizeof(out->segment),
	                     err)) ||
	    (rc = get_string(o, "fleet_id", 0, "", out->fleet_id, sizeof(out->fleet_id), err)) ||
	    (rc = get_string(o, "site", 0, "", out->site, sizeof(out->site), err)) ||
	    (rc = get_string(o, "cluster", 0, "", out->cluster, sizeof(out->cluster), err)) ||
	    (rc = get_number(o, "battery_kwh", 0, 0, 0, 1e5, &out->battery_kwh, err)) ||
	    (rc = get_number(o, "power_kw", 0, 0, -1000, 1000, &out->power_kw, err)) ||
	    (rc = get_string(o, "request_id", 0, "", out->request_id, sizeof(out->request_id),
	                     err)))
		goto out;
	/* An empty segment would be an empty tag: keep the documented default. */
	if (out->segment[0] == '\0')
		snprintf(out->segment, sizeof(out->segment), "default");

	json_t *ts = member(o, "ts");
	out->ts_ms = now_ms;
	if (ts) {
		if (!json_is_string(ts)) {
			rc = reject(err, VGW_REJECT_BAD_FIELD, "ts: must be an RFC 3339 string");
			goto out;
		}
		if (v2g_time_parse(json_string_value(ts), &out->ts_ms) != 0) {
			rc = reject(err, VGW_REJECT_BAD_FIELD, "ts: not an RFC 3339 time");
			goto out;
		}
	}
out:
	json_decref(o);
	return rc;
}

int vgw_payload_decode_ack(const void *payload, size_t len, size_t max_len, int64_t now_ms,
                           struct vgw_ack *out, struct vgw_payload_err *err)
{
	json_t *o;
	int rc = load_object(payload, len, max_len, &o, err);
	if (rc)
		return rc;

	if ((rc = get_string(o, "dispatch_id", 1, "", out->dispatch_id, sizeof(out->dispatch_id),
	                     err)) ||
	    (rc = get_bool(o, "accepted", &out->accepted, err)))
		goto out;

	json_t *r = member(o, "reason");
	out->reason[0] = '\0';
	if (r) {
		if (!json_is_string(r)) {
			rc = reject(err, VGW_REJECT_BAD_FIELD, "reason: must be a string");
			goto out;
		}
		/* A long reason is no reason to lose the ack. */
		copy_truncated(out->reason, sizeof(out->reason), json_string_value(r),
		               json_string_length(r));
	}
	out->received_ms = now_ms;
out:
	json_decref(o);
	return rc;
}

const char *vgw_meter_ext_name(unsigned bit)
{
	switch (bit) {
	case VGW_METER_EXT_KIND: return "kind";
	case VGW_METER_EXT_PHASES: return "phases";
	case VGW_METER_EXT_MAX_KW: return "max_kw";
	case VGW_METER_EXT_PRIORITY: return "priority";
	default: return NULL;
	}
}

/* Records an ignored extension: its bit, and the first one's reason in
 * err->msg. */
static void ignore_ext(struct vgw_station_meter *out, struct vgw_payload_err *err, unsigned bit,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void ignore_ext(struct vgw_station_meter *out, struct vgw_payload_err *err, unsigned bit,
                       const char *fmt, ...)
{
	if (!out->ignored && err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	out->ignored |= bit;
}

/* An integer extension: one of lo and hi (one_of) or in lo..hi; 0 when
 * absent or ignored. */
static int32_t ext_int(json_t *o, const char *key, int32_t lo, int32_t hi, int one_of, unsigned bit,
                       struct vgw_station_meter *out, struct vgw_payload_err *err)
{
	json_t *v = member(o, key);
	if (!v)
		return 0;
	/* 3.0 is a fine 3 (JSON has one number type); 3.5 is not */
	double d = json_is_integer(v) ? (double)json_integer_value(v)
	           : json_is_real(v)  ? json_real_value(v)
	                              : NAN;
	if (isnan(d) || d != floor(d)) {
		ignore_ext(out, err, bit, "%s: must be an integer", key);
		return 0;
	}
	if (one_of ? (d != lo && d != hi) : !(d >= lo && d <= hi)) {
		ignore_ext(out, err, bit,
		           one_of ? "%s: must be %d or %d, got %g" : "%s: must be %d..%d, got %g",
		           key, (int)lo, (int)hi, d);
		return 0;
	}
	return (int32_t)d;
}

static void decode_extensions(json_t *o, struct vgw_station_meter *out, struct vgw_payload_err *err)
{
	json_t *v;

	out->kind[0] = '\0';
	out->max_kw = 0;
	out->ignored = 0;
	if (err)
		err->msg[0] = '\0';
	if ((v = member(o, "kind"))) {
		const char *k = json_is_string(v) ? json_string_value(v) : NULL;
		if (k && (!strcmp(k, "ac") || !strcmp(k, "dc")) && json_string_length(v) == 2)
			memcpy(out->kind, k, 3);
		else
			ignore_ext(out, err, VGW_METER_EXT_KIND, "kind: must be \"ac\" or \"dc\"");
	}
	out->phases = ext_int(o, "phases", 1, 3, 1, VGW_METER_EXT_PHASES, out, err);
	if ((v = member(o, "max_kw"))) {
		double d = json_is_number(v) ? json_number_value(v) : NAN;
		if (d > 0 && d <= VGW_METER_EXT_MAX_KW_LIMIT)
			out->max_kw = d;
		else if (isnan(d))
			ignore_ext(out, err, VGW_METER_EXT_MAX_KW, "max_kw: must be a number");
		else
			ignore_ext(out, err, VGW_METER_EXT_MAX_KW,
			           "max_kw: must be > 0 and <= %g, got %g",
			           VGW_METER_EXT_MAX_KW_LIMIT, d);
	}
	out->priority = ext_int(o, "priority", 1, 10, 0, VGW_METER_EXT_PRIORITY, out, err);
}

#define METER_KW_MAX 10000.0
#define METER_A_MAX  5000.0
#define METER_V_MAX  1000.0

int vgw_payload_decode_station_meter(const void *payload, size_t len, size_t max_len,
                                     int64_t now_ms, struct vgw_station_meter *out,
                                     struct vgw_payload_err *err)
{
	json_t *o;
	int rc = load_object(payload, len, max_len, &o, err);
	if (rc)
		return rc;

	if ((rc = get_number(o, "power_kw", 1, 0, -METER_KW_MAX, METER_KW_MAX, &out->power_kw,
	                     err)) ||
	    (rc = get_phases(o, "current_a", 0, METER_A_MAX, &out->has_current, &out->current_a,
	                     err)) ||
	    (rc = get_phases(o, "voltage_v", 0, METER_V_MAX, &out->has_voltage, &out->voltage_v,
	                     err)) ||
	    (rc = get_number(o, "temperature_c", 0, NAN, -50, 200, &out->temperature_c, err)) ||
	    (rc = get_number(o, "soc", 0, NAN, 0, 100, &out->soc, err)) ||
	    (rc = get_string(o, "status", 0, "", out->status, sizeof(out->status), err)))
		goto out;
	decode_extensions(o, out, err);
	out->received_ms = now_ms;
out:
	json_decref(o);
	return rc;
}

int vgw_payload_decode_site_meter(const void *payload, size_t len, size_t max_len, int64_t now_ms,
                                  struct vgw_site_meter *out, struct vgw_payload_err *err)
{
	json_t *o;
	int rc = load_object(payload, len, max_len, &o, err);
	if (rc)
		return rc;

	if ((rc = get_number(o, "power_kw", 1, 0, -METER_KW_MAX, METER_KW_MAX, &out->power_kw,
	                     err)) ||
	    (rc = get_phases(o, "current_a", 0, METER_A_MAX, &out->has_current, &out->current_a,
	                     err)) ||
	    (rc = get_phases(o, "voltage_v", 0, METER_V_MAX, &out->has_voltage, &out->voltage_v,
	                     err)) ||
	    (rc = get_number(o, "power_factor", 0, NAN, -1, 1, &out->power_factor, err)) ||
	    (rc = get_number(o, "frequency_hz", 0, NAN, 40, 70, &out->frequency_hz, err)))
		goto out;
	out->received_ms = now_ms;
out:
	json_decref(o);
	return rc;
}

/* --- encoders ----------------------------------------------------------- */

const char *vgw_signal_type_name(int type)
{
	static const char *const names[] = { "FCR", "AFRR", "LOAD_SHEDDING" };
	if (type < 0 || type > 2)
		return NULL;
	return names[type];
}

int vgw_payload_number(double v, char *buf, size_t len)
{
	if (!isfinite(v))
		return -1;
	if (v == 0)
		v = 0; /* no "-0" */
	int n = snprintf(buf, len, "%.15g", v);
	if (n > 0 && (size_t)n < len && strtod(buf, NULL) != v)
		n = snprintf(buf, len, "%.17g", v);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}

enum vgw_cmd_expiry vgw_command_batch_expired(int64_t issued_at_ms, uint32_t duration_min,
                                              int64_t now_ms, int64_t max_age_ms)
{
	if (issued_at_ms <= 0 || now_ms <= issued_at_ms)
		return VGW_CMD_FRESH;
	/* both positive, now_ms larger: the age cannot overflow */
	int64_t age = now_ms - issued_at_ms;
	if (age > max_age_ms)
		return VGW_CMD_TOO_OLD;
	if (duration_min > 0 && age >= (int64_t)duration_min * 60000)
		return VGW_CMD_SIGNAL_ENDED;
	return VGW_CMD_FRESH;
}

int vgw_cmd_enc_init(struct vgw_cmd_enc *e, const char *dispatch_id, int signal_type,
                     unsigned duration_min, int64_t issued_at_ms)
{
	const char *type = vgw_signal_type_name(signal_type);
	char issued[40];

	e->prefix = NULL;
	e->prefix_len = 0;
	if (!type || !dispatch_id || !dispatch_id[0])
		return V2G_ERR_INVAL;
	v2g_time_format(issued_at_ms, issued, sizeof(issued));

	json_t *o = json_object();
	if (!o)
		return V2G_ERR_NOMEM;
	if (json_object_set_new(o, "dispatch_id", json_string(dispatch_id)) ||
	    json_object_set_new(o, "signal_type", json_string(type)) ||
	    json_object_set_new(o, "duration_min", json_integer((json_int_t)duration_min)) ||
	    json_object_set_new(o, "issued_at", json_string(issued))) {
		json_decref(o);
		/* json_string() refuses invalid UTF-8 */
		return V2G_ERR_INVAL;
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return V2G_ERR_NOMEM;
	size_t n = strlen(s);
	/* Drop the closing brace: power_kw comes last, per command. */
	s[n - 1] = '\0';
	e->prefix = s;
	e->prefix_len = n - 1;
	return 0;
}

int vgw_cmd_enc_command(const struct vgw_cmd_enc *e, double power_kw, char *buf, size_t len)
{
	static const char key[] = ",\"power_kw\":";
	char num[32];
	int nl = vgw_payload_number(power_kw, num, sizeof(num));
	if (nl < 0)
		return -1;
	size_t total = e->prefix_len + sizeof(key) - 1 + (size_t)nl + 1;
	if (total + 1 > len)
		return -1;
	char *p = buf;
	memcpy(p, e->prefix, e->prefix_len);
	p += e->prefix_len;
	memcpy(p, key, sizeof(key) - 1);
	p += sizeof(key) - 1;
	memcpy(p, num, (size_t)nl);
	p += nl;
	*p++ = '}';
	*p = '\0';
	return (int)total;
}

void vgw_cmd_enc_fini(struct vgw_cmd_enc *e)
{
	free(e->prefix);
	e->prefix = NULL;
	e->prefix_len = 0;
}

/* Sets key to v; 0, or -1 when v is out of range or jansson fails. */
static int set_real(json_t *o, const char *key, double v, double min, double max)
{
	if (!(v >= min && v <= max))
		return -1;
	return json_object_set_new(o, key, json_real(v)) ? -1 : 0;
}

int vgw_payload_setpoint(double power_kw, const struct vgw_phases *phase_currents, char *buf,
                         size_t len)
{
	int n = -1;
	json_t *o = json_object();
	if (!o || set_real(o, "power_kw", power_kw, -METER_KW_MAX, METER_KW_MAX))
		goto out;
	if (phase_currents) {
		const char *names[] = { "A", "B", "C" };
		double v[] = { phase_currents->a, phase_currents->b, phase_currents->c };
		json_t *ph = json_object();
		if (!ph || json_object_set_new(o, "phase_currents_a", ph))
			goto out;
		for (size_t i = 0; i < 3; i++)
			if (!isnan(v[i]) && set_real(ph, names[i], v[i], 0, METER_A_MAX))
				goto out;
	}
	/* 15 digits: 7.2 stays "7.2", not 7.2000000000000002. */
	size_t need = json_dumpb(o, buf, len,
	                         JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	if (need == 0 || need >= len)
		goto out;
	buf[need] = '\0';
	n = (int)need;
out:
	json_decref(o);
	return n;
}

char *vgw_payload_pull_request(const char *request_id)
{
	json_t *o = json_pack("{s:s}", "request_id", request_id);
	if (!o)
		return NULL;
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}
