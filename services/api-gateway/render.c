#include "render.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "v2g/audit.h"
#include "v2g/err.h"
#include "v2g/json.h"
#include "v2g/timeutil.h"
#include "v2g/signal_type.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

const char *api_signal_type_name(int type)
{
	return type >= 0 && type < V2G_SIGNAL_TYPES ? v2g_signal_type_name(type) : NULL;
}

const char *api_status_name(int status)
{
	static const char *const names[] = { "pending", "complete", "partial", "failed" };
	return status >= 0 && status < 4 ? names[status] : NULL;
}

/* Builders that never return NULL for a bad value: a missing or invalid
 * value becomes JSON null. They return NULL only when out of memory. */
static json_t *jstr(const char *s)
{
	json_t *j = s ? json_string(s) : NULL; /* NULL also for invalid UTF-8 */
	return j ? j : json_null();
}

static json_t *jnum(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *jtime(int64_t ms)
{
	char buf[40];
	if (ms == 0)
		return json_null();
	v2g_time_format(ms, buf, sizeof(buf));
	return json_string(buf);
}

/* Sets o[k] = v (stealing v); a failure (v NULL: out of memory) is
 * remembered in *bad so that builders check once at the end. */
static void set(json_t *o, const char *k, json_t *v, int *bad)
{
	if (json_object_set_new(o, k, v) != 0)
		*bad = 1;
}

static json_t *render_allocations(V2g__V1__Allocation *const *a, size_t n, int *bad)
{
	json_t *arr = json_array();
	if (!arr) {
		*bad = 1;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		if (!o || json_array_append_new(arr, o) != 0) {
			*bad = 1;
			break;
		}
		set(o, "vehicle_id", jstr(a[i]->vehicle_id), bad);
		set(o, "power_kw", jnum(a[i]->power_kw), bad);
		set(o, "acked", json_boolean(a[i]->acked), bad);
		set(o, "reallocated", json_boolean(a[i]->reallocated), bad);
		set(o, "rejected", json_boolean(a[i]->rejected), bad);
		set(o, "reason", jstr(a[i]->reason), bad);
		set(o, "round", json_integer(a[i]->round), bad);
	}
	return arr;
}

static json_t *render_signal(const V2g__V1__Signal *s, int *bad)
{
	const char *type;
	json_t *o;

	if (!s)
		return json_null();
	o = json_object();
	if (!o) {
		*bad = 1;
		return NULL;
	}
	type = api_signal_type_name(s->type);
	set(o, "signal_id", jstr(s->signal_id), bad);
	set(o, "type", jstr(type ? type : "UNKNOWN"), bad);
	set(o, "power_kw", jnum(s->power_kw), bad);
	set(o, "duration_min", json_integer(s->duration_min), bad);
	set(o, "timestamp", jtime(s->timestamp_ms), bad);
	if (s->has_market_price)
		set(o, "market_price", jnum(s->market_price), bad);
	set(o, "source", jstr(s->source), bad);
	return o;
}

/* completed_at stays null while a dispatch is pending. */
static json_t *completed_at(int status, int64_t ms)
{
	return status == V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PENDING ? json_null()
	                                                                   : jtime(ms);
}

static char *dump(json_t *root, int bad)
{
	char *out = NULL;
	if (root && !bad)
		out = json_dumps(root, DUMP_FLAGS);
	json_decref(root);
	return out;
}

char *api_render_dispatch(const V2g__V1__DispatchDecision *d)
{
	const char *status = api_status_name(d->status);
	json_t *o = json_object();
	int bad = 0;

	if (!o)
		return NULL;
	set(o, "dispatch_id", jstr(d->dispatch_id), &bad);
	set(o, "signal", render_signal(d->signal, &bad), &bad);
	set(o, "status", jstr(status ? status : "unknown"), &bad);
	set(o, "target_power_kw", jnum(d->target_power_kw), &bad);
	set(o, "allocated_power_kw", jnum(d->allocated_power_kw), &bad);
	set(o, "acked_power_kw", jnum(d->acked_power_kw), &bad);
	set(o, "shortfall_kw", jnum(d->shortfall_kw), &bad);
	set(o, "dispatcher", jstr(d->dispatcher), &bad);
	set(o, "rounds", json_integer(d->rounds), &bad);
	set(o, "allocations", render_allocations(d->allocations, d->n_allocations, &bad), &bad);
	set(o, "started_at", jtime(d->started_ms), &bad);
	set(o, "completed_at", completed_at(d->status, d->completed_ms), &bad);
	return dump(o, bad);
}

static json_t *render_record(const V2g__V1__LogRecord *r, int *bad)
{
	const char *type = api_signal_type_name(r->signal_type);
	const char *status = api_status_name(r->status);
	json_t *o = json_object();

	if (!o) {
		*bad = 1;
		return NULL;
	}
	set(o, "dispatch_id", jstr(r->dispatch_id), bad);
	set(o, "signal_id", jstr(r->signal_id), bad);
	set(o, "signal_type", jstr(type ? type : "UNKNOWN"), bad);
	set(o, "target_power_kw", jnum(r->target_power_kw), bad);
	set(o, "allocated_power_kw", jnum(r->allocated_power_kw), bad);
	set(o, "acked_power_kw", jnum(r->acked_power_kw), bad);
	set(o, "status", jstr(status ? status : "unknown"), bad);
	set(o, "dispatcher", jstr(r->dispatcher), bad);
	set(o, "started_at", jtime(r->started_ms), bad);
	set(o, "completed_at", completed_at(r->status, r->completed_ms), bad);
	set(o, "allocations", render_allocations(r->allocations, r->n_allocations, bad), bad);
	return o;
}

char *api_render_logs(const V2g__V1__LogReply *r)
{
	json_t *arr = json_array();
	int bad = 0;

	if (!arr)
		return NULL;
	for (size_t i = 0; i < r->n_records && !bad; i++)
		if (json_array_append_new(arr, render_record(r->records[i], &bad)) != 0)
			bad = 1;
	return dump(arr, bad);
}

char *api_render_submit(const V2g__V1__SubmitSignalReply *r)
{
	json_t *o = json_object();
	int bad = 0;

	if (!o)
		return NULL;
	set(o, "signal_id", jstr(r->signal_id), &bad);
	set(o, "dispatch_id", jstr(r->dispatch_id), &bad);
	return dump(o, bad);
}

/* --- audit and DLM replies -------------------------------------------- */

/* Parses a JSON object handed over by a peer (NULL when it is not one). */
static json_t *peer_object(const char *text)
{
	json_t *j;
	if (!text)
		return NULL;
	j = v2g_json_loadb(text, strlen(text), 0, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The audit answers are relayed as the store has them: jansson's full
 * precision (DUMP_FLAGS' 15 digits would change a real that needs 17, and
 * write DBL_MAX as a number past it). */
static int dump_to(json_t *j, char **out)
{
	*out = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	return *out ? V2G_OK : V2G_ERR_NOMEM;
}

int api_render_audit_logs(const V2g__V1__AuditReply *r, char **out)
{
	json_t *events = json_array(), *o;

	*out = NULL;
	if (!events)
		return V2G_ERR_NOMEM;
	for (size_t i = 0; i < r->n_events_json; i++) {
		json_t *ev = peer_object(r->events_json[i]);
		if (!ev) {
			json_decref(events);
			return V2G_ERR_PROTO;
		}
		if (json_array_append_new(events, ev)) {
			json_decref(events);
			return V2G_ERR_NOMEM;
		}
	}
	o = json_pack("{s:I, s:o}", "count", (json_int_t)r->n_events_json, "events", events);
	return dump_to(o, out);
}

int api_render_audit_stats(const V2g__V1__AuditStatsReply *r, unsigned days, char **out)
{
	struct v2g_audit_stats st;

	*out = NULL;
	if (days < 1 || days > V2G_AUDIT_STATS_MAX_DAYS || r->days != days || r->n_by_day != days ||
	    r->n_by_category > V2G_AUDIT_NCATEGORIES)
		return V2G_ERR_PROTO;
	memset(&st, 0, sizeof(st));
	st.days = (int)days;
	st.from_ms = r->from_ms;
	st.total = (size_t)r->total;
	st.failures = (size_t)r->failures;
	for (size_t i = 0; i < r->n_by_category; i++)
		st.by_category[i] = (size_t)r->by_category[i];
	for (size_t i = 0; i < r->n_by_day; i++)
		st.by_day[i] = (size_t)r->by_day[i];
	return dump_to(v2g_audit_stats_to_json(&st), out);
}

int api_dlm_reply_check(const V2g__V1__DlmReply *r)
{
	json_t *j;

	if (!r || r->status < 200 || r->status > 599)
		return V2G_ERR_PROTO;
	if (!(j = peer_object(r->body_json)))
		return V2G_ERR_PROTO;
	json_decref(j);
	return V2G_OK;
}
