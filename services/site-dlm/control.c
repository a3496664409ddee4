/* The DLM operations (see control.h): one function per op, each parsing its
 * body, checking every field before it changes anything, applying the
 * change to the modules and recording it. */
#include "control.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sitecfg.h"
#include "v2g/err.h"
#include "v2g/json.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

#define ERR_LEN 320

enum op_kind { OP_READ, OP_STATION, OP_CONFIG };

struct req {
	struct dlm_ctl_ctx *ctx;
	const char *station;
	const char *body;
	size_t len;
	const struct v2g_audit_actor *actor;
	int64_t now;
	json_t *reply;
	int known;   /* the station exists: a refusal is audited */
	json_t *obj; /* the parsed body, freed by dlm_control */
	char err[ERR_LEN];
};

struct op {
	const char *name;
	enum op_kind kind;
	int station; /* needs the route's {station} */
	int (*fn)(struct req *r);
	const char *audit; /* station_control action, or config key, of a refusal */
};

/* ---- replies ---- */

static json_t *num(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

/* The length of the valid UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing over U+10FFFF), 0 when there is none. */
static size_t utf8_seq(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	size_t n = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
	           : p[0] >= 0xe0 && p[0] <= 0xef ? 3
	           : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
	                                          : 0;
	unsigned char lo = p[0] == 0xe0 ? 0xa0 : p[0] == 0xf0 ? 0x90 : 0x80;
	unsigned char hi = p[0] == 0xed ? 0x9f : p[0] == 0xf4 ? 0x8f : 0xbf;
	if (n < 2 || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

static int utf8_valid(const char *s)
{
	for (size_t n; *s; s += n)
		if (!(n = utf8_seq((const unsigned char *)s)))
			return 0;
	return 1;
}

/* A message is JSON text: what is not UTF-8 in it (a station id from the
 * bus, a key cut by a "%.64s" or by the buffer's end) becomes '?', or
 * json_pack would refuse it and the answer would be lost. */
static void utf8_clean(char *s)
{
	for (size_t n; *s; s += n ? n : 1)
		if (!(n = utf8_seq((const unsigned char *)s)))
			*s = '?';
}

static int fail(struct req *r, int status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int fail(struct req *r, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	utf8_clean(r->err);
	json_decref(r->reply);
	r->reply = json_pack("{s:s}", "error", r->err);
	return status;
}

static int nomem(struct req *r)
{
	return fail(r, 500, "out of memory");
}

/* Takes ownership of j; 200, or 500 when j is NULL. */
static int ok(struct req *r, json_t *j)
{
	if (!j)
		return nomem(r);
	json_decref(r->reply);
	r->reply = j;
	return 200;
}

static const char *actor_desc(const struct v2g_audit_actor *a, char *buf, size_t len)
{
	if (!a)
		return "system";
	snprintf(buf, len, "%s/%s%s%s", a->type, a->id, a->name[0] ? "@" : "", a->name);
	return buf;
}

/* ---- audit ---- */

static void emit(struct dlm_ctl_ctx *ctx, struct v2g_audit_event *ev, int rc, const char *action)
{
	if (rc) {
		v2g_warn("DLM-AUDIT", "site=%s: audit event %s not recorded: %s", ctx->site, action,
		         v2g_strerror(rc));
		return;
	}
	ctx->audit(ctx->audit_arg, ev);
	v2g_audit_event_fini(ev);
}

/* details is stolen. */
static void audit_station(struct req *r, const char *action, json_t *details, int success)
{
	struct dlm_ctl_ctx *ctx = r->ctx;
	if (ctx->audit && details) {
		struct v2g_audit_event ev;
		int rc = v2g_audit_station_control(&ev, v2g_now_ms(), r->actor, r->station, action,
		                                   details);
		ev.success = success;
		emit(ctx, &ev, rc, action);
	}
	json_decref(details);
}

/* {old, new} for key; both stolen. */
static void audit_config(struct req *r, const char *key, json_t *old, json_t *nw)
{
	struct dlm_ctl_ctx *ctx = r->ctx;
	json_t *d = json_pack("{s:o,s:o}", "old", old ? old : json_null(), "new",
	                      nw ? nw : json_null());
	if (ctx->audit && d) {
		struct v2g_audit_event ev;
		int rc = v2g_audit_config_change(&ev, v2g_now_ms(), r->actor, key, d);
		emit(ctx, &ev, rc, key);
	}
	json_decref(d);
}

static void audit_config_refused(struct req *r, const char *key)
{
	struct dlm_ctl_ctx *ctx = r->ctx;
	json_t *d = json_pack("{s:s}", "error", r->err);
	if (ctx->audit && d) {
		struct v2g_audit_event ev;
		int rc = v2g_audit_config_change(&ev, v2g_now_ms(), r->actor, key, d);
		ev.success = 0;
		emit(ctx, &ev, rc, key);
	}
	json_decref(d);
}

/* details stolen; target "" = the site (from details). */
static void audit_lm(struct dlm_ctl_ctx *ctx, const char *action, const char *target,
                     json_t *details)
{
	if (ctx->audit && details) {
		struct v2g_audit_event ev;
		int rc = v2g_audit_load_management(&ev, v2g_now_ms(), action, details);
		if (!rc && target && target[0])
			snprintf(ev.target, sizeof(ev.target), "%s", target);
		emit(ctx, &ev, rc, action);
	}
	json_decref(details);
}

/* ---- body parsing ---- */

/* The body as an object into r->obj (an empty body is {} when empty_ok).
 * 0 or 400. */
static int parse_body(struct req *r, int empty_ok)
{
	if (!r->body || r->len == 0) {
		if (!empty_ok)
			return fail(r, 400, "body: a JSON object is required");
		r->obj = json_object();
		return r->obj ? 0 : nomem(r);
	}
	json_error_t e;
	json_t *j = v2g_json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &e);
	if (!j)
		return fail(r, 400, "body: not valid JSON: %s", e.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return fail(r, 400, "body: must be a JSON object");
	}
	r->obj = j;
	return 0;
}

/* 400 naming the first key of o not in keys (NULL-terminated). */
static int only_keys(struct req *r, json_t *o, const char *prefix, const char *const *keys)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		size_t i = 0;
		while (keys[i] && strcmp(keys[i], k) != 0)
			i++;
		if (!keys[i]) {
			char list[160] = "";
			for (i = 0; keys[i]; i++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				         i ? ", " : "", keys[i]);
			return fail(r, 400, "%s%.64s: unknown field (expected %s)", prefix, k,
			            list);
		}
	}
	return 0;
}

/* A number field: 0 absent, 1 set, or the 400 status. */
static int get_num(struct req *r, json_t *o, const char *key, const char *prefix, double *out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_number(v))
		return -fail(r, 400, "%s%s: must be a number", prefix, key);
	*out = json_number_value(v);
	return 1;
}

/* An integer field in [lo, hi]: 0 absent, 1 set, or -400. */
static int get_int(struct req *r, json_t *o, const char *key, const char *prefix, long lo, long hi,
                   long *out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return -fail(r, 400, "%s%s: must be an integer from %ld to %ld", prefix, key, lo,
		             hi);
	*out = (long)json_integer_value(v);
	return 1;
}

/* {"release": true}: 1 (and no other key), 0 when absent or false, -400. */
static int get_release(struct req *r, json_t *o)
{
	json_t *v = json_object_get(o, "release");
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return -fail(r, 400, "release: must be true or false");
	if (json_is_true(v) && json_object_size(o) > 1)
		return -fail(r, 400, "release: cannot be combined with a new limit");
	return json_is_true(v);
}

/* ---- read ops ---- */

static int op_status(struct req *r)
{
	json_t *j = dlm_loop_status_obj(r->ctx->loop);
	if (j)
		json_object_set_new(j, "site", json_string(r->ctx->site));
	return ok(r, j);
}

static int op_breakers(struct req *r)
{
	json_t *a = r->ctx->breakers ? v2g_breaker_registry_status(r->ctx->breakers) : json_array();
	if (!a)
		return nomem(r);
	return ok(r,
	          json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(a), "breakers", a));
}

static int op_watchdogs(struct req *r)
{
	json_t *a = r->ctx->watchdogs ? v2g_watchdog_registry_status(r->ctx->watchdogs, r->now)
	                              : json_array();
	if (!a)
		return nomem(r);
	return ok(r,
	          json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(a), "watchdogs", a));
}

static int op_failsafe(struct req *r)
{
	return ok(r, dlm_failsafe_status_obj(r->ctx->fs, r->now, r->ctx->heartbeat_timeout_ms));
}

static int op_shedding(struct req *r)
{
	return ok(r, dlm_shed_status_obj(r->ctx->shed));
}

static int op_constraints(struct req *r)
{
	return ok(r, dlm_site_status_obj(r->ctx->dsite));
}

static int op_capabilities(struct req *r)
{
	const struct dlm_cap *c = dlm_cap_get(r->ctx->caps, r->station);
	if (!c)
		return fail(r, 404, "no such station: %s", r->station);
	return ok(r, dlm_cap_to_json(c));
}

/* ---- station control ---- */

/* The station must be under control (404 otherwise); *cap its capability. */
static int known_station(struct req *r, const struct dlm_cap **cap)
{
	struct dlm_loop_station_cfg info;
	*cap = dlm_cap_get(r->ctx->caps, r->station);
	if (!*cap || dlm_loop_station_info(r->ctx->loop, r->station, &info))
		return fail(r, 404, "no such station: %s", r->station);
	r->known = 1;
	return 0;
}

static int do_release(struct req *r)
{
	char who[256];
	double prev = dlm_loop_override(r->ctx->loop, r->station);
	if (dlm_loop_set_override(r->ctx->loop, r->station, -1))
		return fail(r, 404, "no such station: %s", r->station);
	v2g_info("DLM-CONTROL", "site=%s station=%s release_override (was %s%.2f kW) by %s",
	         r->ctx->site, r->station, prev < 0 ? "none, " : "", prev < 0 ? 0.0 : prev,
	         actor_desc(r->actor, who, sizeof(who)));
	audit_station(r, "release_override",
	              json_pack("{s:o}", "previous_kw", prev < 0 ? json_null() : json_real(prev)),
	              1);
	return ok(r, json_pack("{s:s,s:s,s:o,s:n}", "station", r->station, "action",
	                       "release_override", "previous_kw",
	                       prev < 0 ? json_null() : json_real(prev), "override_kw"));
}

/* A capability error that a clamp fixes (vs one that is refused). */
static int soft_error(enum dlm_cap_error_code c)
{
	return c == DLM_CAPERR_BELOW_IEC_MIN || c == DLM_CAPERR_BELOW_MIN ||
	       c == DLM_CAPERR_ABOVE_MAX;
}

/* msg without a leading "<field>: ". */
static const char *bare_msg(const struct dlm_cap_error *e)
{
	size_t n = strlen(e->field);
	if (n && strncmp(e->msg, e->field, n) == 0 && strncmp(e->msg + n, ": ", 2) == 0)
		return e->msg + n + 2;
	return e->msg;
}

static int op_phase_currents(struct req *r)
{
	static const char *const keys[] = { "phases", "release", NULL };
	static const char *const pn[3] = { "A", "B", "C" };
	const struct dlm_cap *cap;
	int rc;

	if ((rc = known_station(r, &cap)) || (rc = parse_body(r, 0)) ||
	    (rc = only_keys(r, r->obj, "", keys)))
		return rc;
	if ((rc = get_release(r, r->obj)) < 0)
		return -rc;
	if (rc == 1)
		return do_release(r);
	json_t *ph = json_object_get(r->obj, "phases");
	if (!ph)
		return fail(r, 400,
		            "phases: required, e.g. {\"A\":16,\"B\":16,\"C\":16} (or "
		            "\"release\": true)");
	if (!json_is_object(ph))
		return fail(r, 400, "phases: must be an object of amps per phase A, B, C");
	if (json_object_size(ph) == 0)
		return fail(r, 400, "phases: give at least one of A, B, C");
	struct dlm_cap_command cmd = { .type = DLM_CMD_AC_CURRENT_LIMIT };
	const char *k;
	json_t *v;
	json_object_foreach(ph, k, v)
	{
		int p = (k[0] >= 'A' && k[0] <= 'C' && !k[1]) ? k[0] - 'A' : -1;
		if (p < 0)
			return fail(r, 400, "phases.%.16s: unknown phase (A, B or C)", k);
		if (!json_is_number(v))
			return fail(r, 400, "phases.%s: must be a number of amps", k);
		cmd.phase[p] = json_number_value(v);
		cmd.phase_mask |= 1u << p;
	}
	if (cap->type != DLM_CAP_AC)
		return fail(r, 400, "station: %s is a DC charger: set its limit with dc-power",
		            r->station);
	struct dlm_cap_validation val;
	dlm_cap_validate(r->ctx->caps, r->station, &cmd, &val);
	json_t *notes = json_array();
	for (int i = 0; i < val.nerrors; i++) {
		const struct dlm_cap_error *e = &val.errors[i];
		if (!soft_error(e->code)) {
			json_decref(notes);
			return fail(r, 400, "phases%s%s: %s", e->field[0] ? "." : "", e->field,
			            bare_msg(e));
		}
		json_array_append_new(notes, json_sprintf("%s: %s", e->field, bare_msg(e)));
	}
	double applied[3] = { 0, 0, 0 }, amps = INFINITY;
	int clamped = 0;
	json_t *req_j = json_object(), *app_j = json_object();
	for (int p = 0; p < 3; p++) {
		if (!(cmd.phase_mask & (1u << p)))
			continue;
		if (dlm_cap_recommended(r->ctx->caps, r->station, DLM_UNIT_AMPS, cmd.phase[p],
		                        &applied[p]))
			applied[p] = 0;
		clamped |= fabs(applied[p] - cmd.phase[p]) > 1e-9;
		amps = fmin(amps, applied[p]);
		json_object_set_new(req_j, pn[p], json_real(cmd.phase[p]));
		json_object_set_new(app_j, pn[p], json_real(applied[p]));
	}
	if (cap->phases == 3 && json_object_size(app_j) > 1) {
		int uneven = 0;
		for (int p = 0; p < 3; p++)
			if ((cmd.phase_mask & (1u << p)) && applied[p] > amps + 1e-9)
				uneven = 1;
		if (uneven)
			json_array_append_new(notes,
			                      json_sprintf("a three-phase station runs balanced: "
			                                   "every phase limited to %.1f A",
			                                   amps));
	}
	if ((rc = dlm_loop_set_override_current(r->ctx->loop, r->station, amps))) {
		json_decref(notes);
		json_decref(req_j);
		json_decref(app_j);
		return fail(r, 500, "the control loop refused the limit: %s", v2g_strerror(rc));
	}
	double kw = dlm_loop_override(r->ctx->loop, r->station);
	char who[256];
	v2g_info("DLM-CONTROL", "site=%s station=%s set_phase_currents %.1f A (%.2f kW)%s by %s",
	         r->ctx->site, r->station, amps, kw, clamped ? " clamped" : "",
	         actor_desc(r->actor, who, sizeof(who)));
	audit_station(r, "set_phase_currents",
	              json_pack("{s:O,s:O,s:f,s:f,s:b}", "requested", req_j, "applied", app_j,
	                        "current_a", amps, "override_kw", kw, "clamped", clamped),
	              1);
	return ok(r,
	          json_pack("{s:s,s:s,s:o,s:o,s:b,s:f,s:f,s:o}", "station", r->station, "action",
	                    "set_phase_currents", "requested", req_j, "applied", app_j, "clamped",
	                    clamped, "current_a", amps, "override_kw", kw, "notes", notes));
}

static int op_dc_power(struct req *r)
{
	static const char *const keys[] = { "power_kw", "release", NULL };
	const struct dlm_cap *cap;
	int rc;

	if ((rc = known_station(r, &cap)) || (rc = parse_body(r, 0)) ||
	    (rc = only_keys(r, r->obj, "", keys)))
		return rc;
	if ((rc = get_release(r, r->obj)) < 0)
		return -rc;
	if (rc == 1)
		return do_release(r);
	double want = 0;
	if ((rc = get_num(r, r->obj, "power_kw", "", &want)) < 0)
		return -rc;
	if (rc == 0)
		return fail(r, 400, "power_kw: required (or \"release\": true)");
	if (want < 0)
		return fail(r, 400, "power_kw: must be >= 0 (a limit on what the station draws)");
	if (cap->type != DLM_CAP_DC)
		return fail(r, 400,
		            "station: %s is an AC station: set its limit with phase-currents",
		            r->station);
	struct dlm_cap_command cmd = { .type = DLM_CMD_DC_POWER_LIMIT, .value = want };
	struct dlm_cap_validation val;
	dlm_cap_validate(r->ctx->caps, r->station, &cmd, &val);
	json_t *notes = json_array();
	for (int i = 0; i < val.nerrors; i++) {
		const struct dlm_cap_error *e = &val.errors[i];
		if (!soft_error(e->code)) {
			json_decref(notes);
			return fail(r, 400, "power_kw: %s", bare_msg(e));
		}
		json_array_append_new(notes, json_sprintf("power_kw: %s", bare_msg(e)));
	}
	double kw = 0;
	if (dlm_cap_recommended(r->ctx->caps, r->station, DLM_UNIT_KW, want, &kw))
		kw = 0;
	int clamped = fabs(kw - want) > 1e-9;
	if ((rc = dlm_loop_set_override(r->ctx->loop, r->station, kw))) {
		json_decref(notes);
		return fail(r, 500, "the control loop refused the limit: %s", v2g_strerror(rc));
	}
	char who[256];
	v2g_info("DLM-CONTROL", "site=%s station=%s set_dc_power %.2f kW%s by %s", r->ctx->site,
	         r->station, kw, clamped ? " clamped" : "", actor_desc(r->actor, who, sizeof(who)));
	audit_station(r, "set_dc_power",
	              json_pack("{s:f,s:f,s:b}", "requested_kw", want, "override_kw", kw, "clamped",
	                        clamped),
	              1);
	return ok(r, json_pack("{s:s,s:s,s:f,s:f,s:b,s:o}", "station", r->station, "action",
	                       "set_dc_power", "requested_kw", want, "override_kw", kw, "clamped",
	                       clamped, "notes", notes));
}

/* ---- discover ---- */

static int station_id_ok(struct req *r)
{
	const char *s = r->station;
	if (strlen(s) >= DLM_CAP_ID_LEN)
		return fail(r, 400, "station: longer than %d characters", DLM_CAP_ID_LEN - 1);
	if (!utf8_valid(s))
		return fail(r, 400, "station: not UTF-8");
	for (; *s; s++)
		if (*s == '/' || *s == '+' || *s == '#' || (unsigned char)*s < 0x20)
			return fail(r, 400,
			            "station: no '/', '+', '#' or control characters allowed");
	return 0;
}

/* overrides -> ov (strings borrowed from o). base: the profile's features. */
static int parse_overrides(struct req *r, json_t *o, unsigned base, struct dlm_cap_overrides *ov)
{
	static const char *const keys[] = {
		"type",        "connector",    "voltage_min",  "voltage_max", "current_min",
		"current_max", "power_min_kw", "power_max_kw", "phases",      "features",
		NULL
	};
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
		{ "voltage_min", offsetof(struct dlm_cap_overrides, voltage_min) },
		{ "voltage_max", offsetof(struct dlm_cap_overrides, voltage_max) },
		{ "current_min", offsetof(struct dlm_cap_overrides, current_min) },
		{ "current_max", offsetof(struct dlm_cap_overrides, current_max) },
		{ "power_min_kw", offsetof(struct dlm_cap_overrides, power_min_kw) },
		{ "power_max_kw", offsetof(struct dlm_cap_overrides, power_max_kw) },
	};
	int rc;

	memset(ov, 0, sizeof(*ov));
	if (!json_is_object(o))
		return fail(r, 400, "overrides: must be an object");
	if ((rc = only_keys(r, o, "overrides.", keys)))
		return rc;
	json_t *v = json_object_get(o, "type");
	if (v) {
		const char *t = json_string_value(v);
		if (t && strcmp(t, "ac") == 0)
			ov->type = DLM_CAP_AC;
		else if (t && strcmp(t, "dc") == 0)
			ov->type = DLM_CAP_DC;
		else
			return fail(r, 400, "overrides.type: must be \"ac\" or \"dc\"");
	}
	if ((v = json_object_get(o, "connector"))) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= DLM_CAP_NAME_LEN)
			return fail(r, 400,
			            "overrides.connector: must be a string of 1 to %d characters",
			            DLM_CAP_NAME_LEN - 1);
		ov->connector = json_string_value(v);
	}
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		double x = 0;
		if ((rc = get_num(r, o, nums[i].key, "overrides.", &x)) < 0)
			return -rc;
		if (rc && !(x > 0 && x < 1e6))
			return fail(r, 400, "overrides.%s: must be > 0 (and < 1e6)", nums[i].key);
		if (rc)
			*(double *)((char *)ov + nums[i].off) = x;
	}
	long ph = 0;
	if ((rc = get_int(r, o, "phases", "overrides.", 1, 3, &ph)) < 0)
		return -rc;
	if (rc && ph == 2)
		return fail(r, 400, "overrides.phases: must be 1 or 3");
	ov->phases = (int)ph;
	if ((v = json_object_get(o, "features"))) {
		unsigned f = 0;
		if (json_is_array(v)) {
			size_t i;
			json_t *e;
			json_array_foreach(v, i, e)
			{
				unsigned bit = dlm_feature_parse(json_string_value(e));
				if (!bit)
					return fail(r, 400,
					            "overrides.features[%zu]: unknown feature "
					            "(bidirectional, "
					            "smart_charging, phase_switching, "
					            "per_phase_current, "
					            "power_limit, current_limit)",
					            i);
				f |= bit;
			}
		} else if (json_is_object(v)) {
			const char *k;
			json_t *e;
			f = base;
			json_object_foreach(v, k, e)
			{
				unsigned bit = dlm_feature_parse(k);
				if (!bit)
					return fail(r, 400,
					            "overrides.features.%.32s: unknown feature", k);
				if (!json_is_boolean(e))
					return fail(r, 400,
					            "overrides.features.%s: must be true or false",
					            k);
				f = json_is_true(e) ? (f | bit) : (f & ~bit);
			}
		} else {
			return fail(r, 400,
			            "overrides.features: must be a list of names or {name: bool}");
		}
		ov->features_set = 1;
		ov->features = f;
	}
	return 0;
}

/* Puts a copied capability record back (after a refused rediscovery). */
static void restore_cap(struct dlm_cap_registry *caps, const struct dlm_cap *old)
{
	struct dlm_cap_overrides ov = {
		.type = old->type,
		.connector = old->connector[0] ? old->connector : NULL,
		.voltage_min = old->voltage_min,
		.voltage_max = old->voltage_max,
		.current_min = old->current_min,
		.current_max = old->current_max,
		.power_min_kw = old->power_min_kw,
		.power_max_kw = old->power_max_kw,
		.phases = old->phases,
		.features_set = 1,
		.features = old->features,
	};
	if (dlm_cap_discover(caps, old->station, old->protocol[0] ? old->protocol : NULL,
	                     old->profile, &ov, NULL))
		v2g_error("DLM-CONTROL",
		          "station=%s: the previous capability could not be restored",
		          old->station);
}

static int op_discover(struct req *r)
{
	static const char *const keys[] = { "profile",  "protocol", "overrides",
		                            "priority", "rotation", NULL };
	struct dlm_ctl_ctx *ctx = r->ctx;
	int rc;

	if ((rc = station_id_ok(r)))
		return rc;
	const struct dlm_cap *cur = dlm_cap_get(ctx->caps, r->station);
	struct dlm_loop_station_cfg sc;
	int exists = dlm_loop_station_info(ctx->loop, r->station, &sc) == 0;
	r->known = 1;
	if ((rc = parse_body(r, 1)) || (rc = only_keys(r, r->obj, "", keys)))
		return rc;

	const char *profile = cur && exists ? cur->profile : DLM_CAP_DEFAULT_PROFILE;
	json_t *v = json_object_get(r->obj, "profile");
	if (v && !json_is_string(v))
		return fail(r, 400, "profile: must be a string");
	if (v)
		profile = json_string_value(v);
	const struct dlm_cap *prof = dlm_cap_profile_find(profile);
	if (!prof) {
		char list[200] = "";
		for (size_t i = 0; i < dlm_cap_profile_count(); i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			         i ? ", " : "", dlm_cap_profile_at(i)->profile);
		return fail(r, 400, "profile: unknown profile \"%.40s\" (one of %s)", profile,
		            list);
	}
	profile = prof->profile; /* static: the station's record is replaced below */
	const char *protocol = cur && cur->protocol[0] ? cur->protocol : "api";
	if ((v = json_object_get(r->obj, "protocol"))) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= DLM_CAP_NAME_LEN)
			return fail(r, 400, "protocol: must be a string of 1 to %d characters",
			            DLM_CAP_NAME_LEN - 1);
		protocol = json_string_value(v);
	}
	struct dlm_cap_overrides ov;
	json_t *ovj = json_object_get(r->obj, "overrides");
	memset(&ov, 0, sizeof(ov));
	if (ovj && (rc = parse_overrides(r, ovj, prof->features, &ov)))
		return rc;
	long prio = 0, rot = 0;
	int has_prio, has_rot;
	if ((has_prio = get_int(r, r->obj, "priority", "", 1, 10, &prio)) < 0)
		return -has_prio;
	if ((has_rot = get_int(r, r->obj, "rotation", "", 0, 2, &rot)) < 0)
		return -has_rot;
	if (!exists) {
		if (ctx->max_stations && dlm_loop_station_count(ctx->loop) >= ctx->max_stations)
			return fail(r, 409,
			            "station: the site already has %zu stations (max_stations)",
			            ctx->max_stations);
		sc = (struct dlm_loop_station_cfg){ .priority = ctx->default_priority,
			                            .demand_kw = -1 };
	}
	/* The station id outlives the capability record it may point into. */
	char id[DLM_CAP_ID_LEN], proto[DLM_CAP_NAME_LEN];
	snprintf(id, sizeof(id), "%s", r->station);
	snprintf(proto, sizeof(proto), "%s", protocol);
	sc.id = id;
	sc.failsafe = NULL;
	if (has_prio)
		sc.priority = (int)prio;
	if (has_rot)
		sc.rotation = (int)rot;

	struct dlm_cap old;
	int had = cur != NULL;
	if (had)
		old = *cur;
	const struct dlm_cap *nc = NULL;
	rc = dlm_cap_discover(ctx->caps, id, proto, profile, ovj ? &ov : NULL, &nc);
	if (rc == V2G_ERR_NOMEM)
		return nomem(r);
	if (rc)
		return fail(r, 400,
		            "%s: the resulting capability is inconsistent (AC phases 1 or 3, "
		            "min <= max, AC current >= 6 A, maxima > 0)",
		            ovj ? "overrides" : "profile");
	if ((rc = dlm_loop_add_station(ctx->loop, &sc, r->now))) {
		if (had)
			restore_cap(ctx->caps, &old);
		else
			dlm_cap_remove(ctx->caps, id);
		if (rc == V2G_ERR_NOMEM)
			return nomem(r);
		return fail(r, 400, "%s: refused by the control loop: %s",
		            ovj ? "overrides" : "profile", v2g_strerror(rc));
	}
	nc = dlm_cap_get(ctx->caps, id);
	char who[256];
	v2g_info("DLM-CONTROL", "site=%s station=%s discover_capabilities profile=%s%s %s by %s",
	         ctx->site, id, profile, ovj ? " with overrides" : "", exists ? "updated" : "added",
	         actor_desc(r->actor, who, sizeof(who)));
	audit_station(r, "discover_capabilities",
	              json_pack("{s:s,s:s,s:O,s:i,s:i,s:b}", "profile", profile, "protocol", proto,
	                        "overrides", ovj ? ovj : json_null(), "priority", sc.priority,
	                        "rotation", sc.rotation, "created", !exists),
	              1);
	return ok(r, json_pack("{s:s,s:s,s:b,s:i,s:i,s:o}", "station", id, "action",
	                       "discover_capabilities", "created", !exists, "priority", sc.priority,
	                       "rotation", sc.rotation, "capabilities", dlm_cap_to_json(nc)));
}

/* ---- configuration ---- */

static json_t *changed_list(const char *const *names, const int *changed, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (changed[i])
			json_array_append_new(a, json_string(names[i]));
	return a;
}

static int op_shedding_configure(struct req *r)
{
	static const char *const keys[] = { "enabled", "upper_threshold", "lower_threshold",
		                            "mode",    "min_hold_ms",     "escalate_hold_ms",
		                            NULL };
	int rc;

	if ((rc = parse_body(r, 0)) || (rc = only_keys(r, r->obj, "", keys)))
		return rc;
	const struct dlm_shed_cfg old = *dlm_shed_config(r->ctx->shed);
	struct dlm_shed_cfg nw = old;
	json_t *v = json_object_get(r->obj, "enabled");
	if (v && !json_is_boolean(v))
		return fail(r, 400, "enabled: must be true or false");
	if (v)
		nw.enabled = json_is_true(v);
	int has_up, has_lo;
	if ((has_up = get_num(r, r->obj, "upper_threshold", "", &nw.upper_threshold)) < 0)
		return -has_up;
	if (has_up && !(nw.upper_threshold > 0 && nw.upper_threshold <= 1))
		return fail(r, 400, "upper_threshold: must be in (0, 1], got %g",
		            nw.upper_threshold);
	if ((has_lo = get_num(r, r->obj, "lower_threshold", "", &nw.lower_threshold)) < 0)
		return -has_lo;
	if (has_lo && !(nw.lower_threshold > 0 && nw.lower_threshold < 1))
		return fail(r, 400, "lower_threshold: must be in (0, 1), got %g",
		            nw.lower_threshold);
	if (!(nw.lower_threshold < nw.upper_threshold))
		return fail(r, 400, "%s: lower_threshold (%g) must be below upper_threshold (%g)",
		            has_lo ? "lower_threshold" : "upper_threshold", nw.lower_threshold,
		            nw.upper_threshold);
	if ((v = json_object_get(r->obj, "mode"))) {
		const char *m = json_string_value(v);
		if (m && strcmp(m, "step") == 0)
			nw.mode = DLM_SHED_STEP;
		else if (m && strcmp(m, "jump") == 0)
			nw.mode = DLM_SHED_JUMP;
		else
			return fail(r, 400, "mode: must be \"step\" or \"jump\"");
	}
	long hold = 0;
	if ((rc = get_int(r, r->obj, "min_hold_ms", "", 0, 86400000, &hold)) < 0)
		return -rc;
	if (rc)
		nw.min_hold_ms = hold;
	if ((rc = get_int(r, r->obj, "escalate_hold_ms", "", 0, 86400000, &hold)) < 0)
		return -rc;
	if (rc)
		nw.escalate_hold_ms = hold;
	if (dlm_shed_configure(r->ctx->shed, &nw))
		return fail(r, 400, "body: the shedding configuration was refused");

	static const char *const names[] = { "enabled", "upper_threshold", "lower_threshold",
		                             "mode",    "min_hold_ms",     "escalate_hold_ms" };
	enum { NSHED = sizeof(names) / sizeof(names[0]) };
	const char *mode_name[2] = { "step", "jump" };
	int ch[NSHED] = { old.enabled != nw.enabled,
		          old.upper_threshold != nw.upper_threshold,
		          old.lower_threshold != nw.lower_threshold,
		          old.mode != nw.mode,
		          old.min_hold_ms != nw.min_hold_ms,
		          old.escalate_hold_ms != nw.escalate_hold_ms };
	json_t *olds[NSHED] = {
		json_boolean(old.enabled),      json_real(old.upper_threshold),
		json_real(old.lower_threshold), json_string(mode_name[old.mode != 0]),
		json_integer(old.min_hold_ms),  json_integer(old.escalate_hold_ms)
	};
	json_t *news[NSHED] = { json_boolean(nw.enabled),      json_real(nw.upper_threshold),
		                json_real(nw.lower_threshold), json_string(mode_name[nw.mode != 0]),
		                json_integer(nw.min_hold_ms),  json_integer(nw.escalate_hold_ms) };
	char who[256], key[64];
	for (int i = 0; i < NSHED; i++) {
		if (!ch[i]) {
			json_decref(olds[i]);
			json_decref(news[i]);
			continue;
		}
		size_t fl = JSON_ENCODE_ANY | JSON_REAL_PRECISION(12);
		char *a = json_dumps(olds[i], fl), *b = json_dumps(news[i], fl);
		v2g_info("DLM-CONTROL", "site=%s dlm.shedding.%s %s -> %s by %s", r->ctx->site,
		         names[i], a ? a : "?", b ? b : "?",
		         actor_desc(r->actor, who, sizeof(who)));
		free(a);
		free(b);
		snprintf(key, sizeof(key), "dlm.shedding.%s", names[i]);
		audit_config(r, key, olds[i], news[i]);
	}
	json_t *j = dlm_shed_status_obj(r->ctx->shed);
	if (j)
		json_object_set_new(j, "changed", changed_list(names, ch, NSHED));
	return ok(r, j);
}

/* The service entrance as service_configure takes it ("voltage"). */
static const struct svc_field {
	const char *name;
	size_t off;
	int is_int;
} svc_fields[] = {
	{ "max_power_kw", offsetof(struct dlm_service_cfg, max_power_kw), 0 },
	{ "max_current_a", offsetof(struct dlm_service_cfg, max_current_a), 0 },
	{ "voltage", offsetof(struct dlm_service_cfg, voltage_v), 0 },
	{ "phases", offsetof(struct dlm_service_cfg, phases), 1 },
	{ "nec625_factor", offsetof(struct dlm_service_cfg, nec625_factor), 0 },
	{ "max_imbalance", offsetof(struct dlm_service_cfg, max_imbalance), 0 },
	{ "min_power_factor", offsetof(struct dlm_service_cfg, min_power_factor), 0 },
	{ "frequency_hz", offsetof(struct dlm_service_cfg, frequency_hz), 0 },
	{ "frequency_tolerance_hz", offsetof(struct dlm_service_cfg, frequency_tolerance_hz), 0 },
};
#define N_SVC_FIELDS (sizeof(svc_fields) / sizeof(svc_fields[0]))

static json_t *svc_value(const struct dlm_service_cfg *c, size_t i)
{
	const char *p = (const char *)c + svc_fields[i].off;
	return svc_fields[i].is_int ? json_integer(*(const int *)p) : json_real(*(const double *)p);
}

static json_t *svc_json(const struct dlm_service_cfg *c)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < N_SVC_FIELDS; i++)
		json_object_set_new(o, svc_fields[i].name, svc_value(c, i));
	return o;
}

static int op_service_configure(struct req *r)
{
	int rc;

	if ((rc = parse_body(r, 0)))
		return rc;
	const struct dlm_service_cfg old = *dlm_site_service(r->ctx->dsite);
	struct dlm_service_cfg nw = old;
	char err[ERR_LEN - 16];
	if ((rc = dlm_service_cfg_merge_json(&nw, r->obj, err, sizeof(err))))
		return rc == V2G_ERR_NOMEM ? nomem(r) : fail(r, 400, "%s", err);
	if ((rc = dlm_site_configure_service(r->ctx->dsite, &nw)))
		return fail(r, 400, "body: the service entrance was refused: %s", v2g_strerror(rc));
	int ch[N_SVC_FIELDS];
	const char *names[N_SVC_FIELDS];
	char who[256], key[64];
	for (size_t i = 0; i < N_SVC_FIELDS; i++) {
		names[i] = svc_fields[i].name;
		const char *a = (const char *)&old + svc_fields[i].off;
		const char *b = (const char *)&nw + svc_fields[i].off;
		ch[i] = svc_fields[i].is_int ? *(const int *)a != *(const int *)b
		                             : *(const double *)a != *(const double *)b;
		if (!ch[i])
			continue;
		snprintf(key, sizeof(key), "dlm.service.%s", names[i]);
		v2g_info("DLM-CONTROL", "site=%s %s %g -> %g by %s", r->ctx->site, key,
		         svc_fields[i].is_int ? (double)*(const int *)a : *(const double *)a,
		         svc_fields[i].is_int ? (double)*(const int *)b : *(const double *)b,
		         actor_desc(r->actor, who, sizeof(who)));
		audit_config(r, key, svc_value(&old, i), svc_value(&nw, i));
	}
	return ok(r, json_pack("{s:o,s:o}", "service", svc_json(&nw), "changed",
	                       changed_list(names, ch, N_SVC_FIELDS)));
}

/* The configuration fields of a feeder or transformer in the site status
 * (measurements left out), or NULL when there is none with that id. */
static json_t *site_item(struct dlm_site *site, const char *list, const char *id,
                         const char *const *fields)
{
	json_t *st = dlm_site_status_obj(site), *out = NULL;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(st, list), i, e)
	{
		if (!json_is_string(json_object_get(e, "id")) ||
		    strcmp(json_string_value(json_object_get(e, "id")), id) != 0)
			continue;
		out = json_object();
		for (size_t k = 0; out && fields[k]; k++) {
			json_t *v = json_object_get(e, fields[k]);
			if (v)
				json_object_set(out, fields[k], v);
		}
		break;
	}
	json_decref(st);
	return out;
}

static const char *const feeder_fields[] = { "id",
	                                     "name",
	                                     "breaker_rating_a",
	                                     "cable_ampacity_a",
	                                     "max_current_a",
	                                     "max_power_kw",
	                                     "phases",
	                                     "stations",
	                                     NULL };
static const char *const xfmr_fields[] = {
	"id",      "name",    "rated_kva", "continuous_factor", "max_temp_c", "derate_band_c",
	"cooling", "feeders", NULL
};

/* After a feeder or transformer was configured: log, audit {old, new},
 * answer {"<one>": the item, "created"}. list is "feeders" or
 * "transformers"; old (taken) is the item before, NULL if new. */
static int item_configured(struct req *r, const char *list, const char *one, const char *id,
                           json_t *old, const char *const *fields)
{
	json_t *nw = site_item(r->ctx->dsite, list, id, fields);
	char key[DLM_ID_MAX + 24], who[256];
	snprintf(key, sizeof(key), "dlm.%s.%s", list, id);
	v2g_info("DLM-CONTROL", "site=%s %s %s by %s", r->ctx->site, key,
	         old ? "replaced" : "added", actor_desc(r->actor, who, sizeof(who)));
	int created = old == NULL;
	audit_config(r, key, old, json_incref(nw));
	return ok(r, json_pack("{s:o,s:b}", one, nw ? nw : json_null(), "created", created));
}

static int op_feeder_configure(struct req *r)
{
	struct dlm_feeder_spec spec;
	char err[ERR_LEN - 16];
	int rc;

	if ((rc = parse_body(r, 0)))
		return rc;
	memset(&spec, 0, sizeof(spec));
	if ((rc = dlm_feeder_cfg_from_json(r->obj, &spec, err, sizeof(err)))) {
		dlm_feeder_spec_fini(&spec);
		return rc == V2G_ERR_NOMEM ? nomem(r) : fail(r, 400, "%s", err);
	}
	json_t *old = site_item(r->ctx->dsite, "feeders", spec.id, feeder_fields);
	rc = dlm_site_configure_feeder(r->ctx->dsite, spec.id, &spec.cfg);
	if (rc) {
		json_decref(old);
		dlm_feeder_spec_fini(&spec);
		return rc == V2G_ERR_NOMEM ? nomem(r)
		                           : fail(r, 400,
		                                  "stations: the feeder was refused (a station "
		                                  "already on another feeder, or a bad value): %s",
		                                  v2g_strerror(rc));
	}
	rc = item_configured(r, "feeders", "feeder", spec.id, old, feeder_fields);
	dlm_feeder_spec_fini(&spec);
	return rc;
}

static int op_transformer_configure(struct req *r)
{
	struct dlm_transformer_spec spec;
	char err[ERR_LEN - 16];
	int rc;

	if ((rc = parse_body(r, 0)))
		return rc;
	memset(&spec, 0, sizeof(spec));
	if ((rc = dlm_transformer_cfg_from_json(r->obj, &spec, err, sizeof(err)))) {
		dlm_transformer_spec_fini(&spec);
		return rc == V2G_ERR_NOMEM ? nomem(r) : fail(r, 400, "%s", err);
	}
	json_t *old = site_item(r->ctx->dsite, "transformers", spec.id, xfmr_fields);
	rc = dlm_site_configure_transformer(r->ctx->dsite, spec.id, &spec.cfg);
	if (rc) {
		json_decref(old);
		dlm_transformer_spec_fini(&spec);
		return rc == V2G_ERR_NOMEM ? nomem(r)
		                           : fail(r, 400,
		                                  "feeders: the transformer was refused (a feeder "
		                                  "already under another transformer, or a bad "
		                                  "value): %s",
		                                  v2g_strerror(rc));
	}
	rc = item_configured(r, "transformers", "transformer", spec.id, old, xfmr_fields);
	dlm_transformer_spec_fini(&spec);
	return rc;
}

/* ---- dispatch ---- */

static const struct op ops[] = {
	{ "status", OP_READ, 0, op_status, NULL },
	{ "circuit_breakers", OP_READ, 0, op_breakers, NULL },
	{ "watchdogs", OP_READ, 0, op_watchdogs, NULL },
	{ "failsafe_status", OP_READ, 0, op_failsafe, NULL },
	{ "shedding_status", OP_READ, 0, op_shedding, NULL },
	{ "constraints_status", OP_READ, 0, op_constraints, NULL },
	{ "capabilities", OP_READ, 1, op_capabilities, NULL },
	{ "phase_currents", OP_STATION, 1, op_phase_currents, "set_phase_currents" },
	{ "dc_power", OP_STATION, 1, op_dc_power, "set_dc_power" },
	{ "discover", OP_STATION, 1, op_discover, "discover_capabilities" },
	{ "shedding_configure", OP_CONFIG, 0, op_shedding_configure, "dlm.shedding" },
	{ "service_configure", OP_CONFIG, 0, op_service_configure, "dlm.service" },
	{ "feeder_configure", OP_CONFIG, 0, op_feeder_configure, "dlm.feeders" },
	{ "transformer_configure", OP_CONFIG, 0, op_transformer_configure, "dlm.transformers" },
};

static struct v2g_metric *m_requests(void)
{
	return v2g_counter("dlm_control_requests_total",
	                   "DLM REST operations received, by op (\"unknown\" for others)", "op");
}

static struct v2g_metric *m_responses(void)
{
	return v2g_counter("dlm_control_responses_total", "DLM REST operations answered, by status",
	                   "status");
}

int dlm_control(struct dlm_ctl_ctx *ctx, const char *op, const char *station, const char *body,
                size_t len, const char *query, const struct v2g_audit_actor *actor, int64_t now_ms,
                json_t **reply)
{
	struct req r = { .ctx = ctx,
		         .station = station ? station : "",
		         .body = body,
		         .len = body ? len : 0,
		         .actor = actor,
		         .now = now_ms };
	const struct op *o = NULL;
	int status;
	char code[8];

	(void)query;
	if (!op)
		op = "";
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].name, op) == 0)
			o = &ops[i];
	v2g_counter_inc(m_requests(), o ? o->name : "unknown");
	if (!o) {
		status = fail(&r, 404, "no such DLM operation: %.64s", op);
	} else if (o->station && !r.station[0]) {
		status = fail(&r, 400, "station: required");
	} else {
		status = o->fn(&r);
		if (status == 400 && o->kind == OP_STATION && r.known)
			audit_station(&r, o->audit, json_pack("{s:s}", "error", r.err), 0);
		else if (status == 400 && o->kind == OP_CONFIG)
			audit_config_refused(&r, o->audit);
		if (status >= 400 && o->kind != OP_READ)
			v2g_info("DLM-CONTROL", "site=%s op=%s station=%s refused (%d): %s",
			         ctx->site, o->name, r.station, status, r.err);
	}
	json_decref(r.obj);
	snprintf(code, sizeof(code), "%d", status);
	v2g_counter_inc(m_responses(), code);
	*reply = r.reply;
	return status;
}

/* ---- the controller's own decisions ---- */

void dlm_control_after_cycle(struct dlm_ctl_ctx *ctx, int64_t now_ms)
{
	const struct dlm_loop_stats *ls = dlm_loop_stats(ctx->loop);
	(void)now_ms;
	if (!ls)
		return;
	if (ls->shed_level != ctx->shed_level) {
		v2g_info("DLM-SHED", "site=%s level %d -> %d (%s) load=%.1f kW limit=%.1f kW",
		         ctx->site, ctx->shed_level, ls->shed_level,
		         dlm_shed_level_name(ls->shed_level), ls->site_load_kw, ls->site_limit_kw);
		audit_lm(ctx, "shedding_level_change", NULL,
		         json_pack("{s:s,s:i,s:i,s:s,s:o,s:o}", "site", ctx->site, "from",
		                   ctx->shed_level, "to", ls->shed_level, "level_name",
		                   dlm_shed_level_name(ls->shed_level), "load_kw",
		                   num(ls->site_load_kw), "limit_kw", num(ls->site_limit_kw)));
		ctx->shed_level = ls->shed_level;
	}
	struct dlm_fs_actions fa;
	dlm_loop_failsafe_actions(ctx->loop, &fa);
	for (size_t i = 0; i < fa.n; i++) {
		const struct dlm_fs_action *a = &fa.v[i];
		if (a->kind == DLM_FS_APPLY) {
			v2g_info("DLM-FAILSAFE",
			         "site=%s station=%s silent %lld ms: fail-safe %s %.1f kW",
			         ctx->site, a->station, (long long)a->silent_ms,
			         dlm_offline_action_name(a->offline_action), a->power_kw);
			audit_lm(ctx, "failsafe_apply", a->station,
			         json_pack("{s:s,s:s,s:s,s:o,s:I}", "site", ctx->site, "station",
			                   a->station, "offline_action",
			                   dlm_offline_action_name(a->offline_action), "power_kw",
			                   num(a->power_kw), "silent_ms",
			                   (json_int_t)a->silent_ms));
		} else {
			v2g_info("DLM-FAILSAFE",
			         "site=%s station=%s heard again: back under control", ctx->site,
			         a->station);
			audit_lm(ctx, "failsafe_restore", a->station,
			         json_pack("{s:s,s:s,s:o}", "site", ctx->site, "station",
			                   a->station, "power_kw", num(a->power_kw)));
		}
	}
}

void dlm_control_station_learned(struct dlm_ctl_ctx *ctx, const char *action, const char *station,
                                 const char *how)
{
	const struct dlm_cap *c = dlm_cap_get(ctx->caps, station);
	if (!c)
		return;
	audit_lm(ctx, action, station,
	         json_pack("{s:s,s:s,s:s,s:s,s:i,s:f,s:s}", "site", ctx->site, "station", station,
	                   "profile", c->profile, "type", c->type == DLM_CAP_DC ? "dc" : "ac",
	                   "phases", c->phases, "power_max_kw", c->power_max_kw, "how",
	                   how ? how : "meter"));
}
