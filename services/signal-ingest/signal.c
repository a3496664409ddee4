#include "signal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "v2g/json.h"
#include "v2g/err.h"
#include "v2g/timeutil.h"
#include "v2g/signal_type.h"

#define BAD(...)                                    \
	do {                                        \
		snprintf(err, errlen, __VA_ARGS__); \
		rc = V2G_ERR_INVAL;                 \
		goto out;                           \
	} while (0)

int ingest_signal_parse(const char *json, size_t len, const struct ingest_limits *lim,
                        int64_t now_ms, struct ingest_signal *out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root, *v;
	int rc = V2G_OK;

	memset(out, 0, sizeof(*out));
	if (len == 0) {
		snprintf(err, errlen, "body: empty; expected a JSON object");
		return V2G_ERR_INVAL;
	}
	root = v2g_json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "body: invalid JSON at line %d column %d: %s", jerr.line,
		         jerr.column, jerr.text);
		return V2G_ERR_INVAL;
	}
	if (!json_is_object(root))
		BAD("body: must be a JSON object");

	v = json_object_get(root, "type");
	if (!v)
		BAD("type: required (FCR, AFRR or LOAD_SHEDDING)");
	if (json_is_string(v)) {
		out->type = v2g_signal_type_parse(json_string_value(v), 0);
		if (out->type < 0)
			BAD("type: unknown signal type \"%.40s\" (FCR, PRIMARY_RESERVE, AFRR, "
			    "SECONDARY_RESERVE, LOAD_SHEDDING)",
			    json_string_value(v));
	} else if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 2) {
		out->type = (int)json_integer_value(v);
	} else {
		BAD("type: must be a signal type name or index 0..2");
	}

	v = json_object_get(root, "power_kw");
	if (!v)
		BAD("power_kw: required");
	if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
		BAD("power_kw: must be a number > 0");
	out->power_kw = json_number_value(v);
	if (out->power_kw > lim->max_power_kw)
		BAD("power_kw: must not exceed %g", lim->max_power_kw);

	v = json_object_get(root, "duration_min");
	if (!v || json_is_null(v)) {
		out->duration_min = lim->default_duration_min;
	} else {
		if (!json_is_integer(v) &&
		    !(json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))
			BAD("duration_min: must be an integer number of minutes");
		double d = json_number_value(v);
		if (d < 1 || d > lim->max_duration_min)
			BAD("duration_min: must be between 1 and %d", lim->max_duration_min);
		out->duration_min = (int)d;
	}

	v = json_object_get(root, "timestamp");
	if (!v || json_is_null(v)) {
		out->timestamp_ms = now_ms;
	} else if (!json_is_string(v) || v2g_time_parse(json_string_value(v), &out->timestamp_ms)) {
		BAD("timestamp: must be an RFC 3339 time such as 2026-11-21T10:00:00Z");
	}

	v = json_object_get(root, "market_price");
	if (v && !json_is_null(v)) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)))
			BAD("market_price: must be a number (EUR/kWh)");
		out->market_price = json_number_value(v);
		out->has_market_price = 1;
	}
out:
	json_decref(root);
	return rc;
}
