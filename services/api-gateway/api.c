#include "api.h"

#include <civetweb.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "gate.h"
#include "limits.h"
#include "query.h"
#include "render.h"
#include "route.h"
#include "v2g/audit.h"
#include "v2g/audit_sink.h"
#include "v2g/breaker.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/httpd.h"
#include "v2g/json.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

#define JSON_TYPE "application/json"
#define ID_WHY    "must be 1 to 64 characters of A-Z a-z 0-9 _ . : -"
/* At most one API-AUTH-FAIL line per this interval. */
#define AUTH_LOG_INTERVAL_MS 10000
/* At most one audit event (and one API-RATE-LIMITED line) per client and
 * action per this interval; the gate's table size. */
#define GATE_INTERVAL_MS 60000
#define GATE_SLOTS       4096
/* Longest query string relayed to site-dlm. */
#define DLM_QUERY_MAX 2048
/* Longest request path kept in an audit event. */
#define AUDIT_PATH_MAX 128

/* A bus peer behind the API. */
struct peer {
	const char *name; /* "signal-ingest", "store", "site-dlm": errors, logs, metrics */
	struct v2g_bus_client *client;
	struct v2g_breaker *br; /* borrowed from the registry */
};

struct api {
	struct mg_context *ctx;
	const char *token;
	size_t max_body;
	int timeout_ms;
	struct peer ingest, store, dlm;
	struct v2g_breaker_registry *breakers;
	struct api_limits *limits;
	struct api_gate *gate;
	struct v2g_audit_sink *sink;

	struct v2g_metric *m_requests, *m_duration, *m_responses, *m_auth_fail, *m_bus_err,
	        *m_limited, *m_br_rejected, *m_br_state;

	pthread_mutex_t auth_mu; /* guards the auth-failure log rate limit */
	int64_t auth_logged_ms;
	unsigned long auth_suppressed;
};

/* One request being answered. */
struct req {
	struct api *a;
	struct mg_connection *c;
	const struct mg_request_info *ri;
	const char *client; /* the peer's IP: the rate-limit key and audit actor */
	char hdr[192];      /* header lines every answer carries (RateLimit-*) */
};

/* --- responses -------------------------------------------------------- */

/* {"error": msg} with status, the request's headers and one more header
 * (name NULL: none). */
static int reply_error_hdr(struct req *r, int status, const char *msg, const char *name,
                           const char *value)
{
	char extra[sizeof(r->hdr) + 160];
	size_t n = (size_t)snprintf(extra, sizeof(extra), "%s", r->hdr);
	if (name && n < sizeof(extra))
		snprintf(extra + n, sizeof(extra) - n, "%s: %s\r\n", name, value);
	v2g_http_error_hdr(r->c, status, extra, msg);
	return status;
}

static int reply_error(struct req *r, int status, const char *msg)
{
	return reply_error_hdr(r, status, msg, NULL, NULL);
}

/* Sends a JSON body as is (borrowed). */
static int reply_text(struct req *r, int status, const char *body)
{
	v2g_http_send_hdr(r->c, status, JSON_TYPE, r->hdr, body, strlen(body));
	return status;
}

/* Sends a rendered body (taking it), or 500 when rendering ran out of memory. */
static int reply_json(struct req *r, int status, char *body)
{
	if (!body)
		return reply_error(r, 500, "out of memory");
	reply_text(r, status, body);
	free(body);
	return status;
}

/* --- helpers ---------------------------------------------------------- */

/* Copies s into buf for a log line: printable ASCII only, truncated. */
static const char *log_safe(const char *s, char *buf, size_t cap)
{
	size_t o = 0;
	for (; s && *s && o + 1 < cap; s++)
		buf[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	buf[o] = '\0';
	return buf;
}

/* Records an auth-category audit event (action "login_failed" or
 * "rate_limited") for the request's client, at most one per client and
 * action a minute; the recorded one counts those held back. */
static void audit_auth(struct req *r, const char *action, const char *reason)
{
	struct api *a = r->a;
	struct v2g_audit_actor actor;
	struct v2g_audit_event ev;
	char key[API_GATE_KEY_MAX], path[AUDIT_PATH_MAX], method[16];
	unsigned long held = 0;
	json_t *details;
	int rc;

	if (!a->sink)
		return;
	snprintf(key, sizeof(key), "%s|%s", action, r->client);
	if (!api_gate_pass(a->gate, key, v2g_mono_ms(), &held))
		return;
	memset(&actor, 0, sizeof(actor));
	snprintf(actor.type, sizeof(actor.type), "api");
	snprintf(actor.id, sizeof(actor.id), "bearer");
	snprintf(actor.name, sizeof(actor.name), "%s", r->client);
	details = json_pack("{s:s, s:s, s:s, s:s, s:I}", "ip", r->client, "method",
	                    log_safe(r->ri->request_method, method, sizeof(method)), "path",
	                    log_safe(r->ri->local_uri, path, sizeof(path)), "reason", reason,
	                    "not_recorded_since_last", (json_int_t)held);
	memset(&ev, 0, sizeof(ev));
	rc = v2g_audit_auth(&ev, v2g_now_ms(), action, &actor, 0, details);
	json_decref(details);
	if (rc == 0)
		rc = v2g_audit_sink_emit(a->sink, &ev);
	if (rc)
		v2g_warn("API-AUDIT", "could not record %s from %s: %s", action, r->client,
		         v2g_strerror(rc));
	v2g_audit_event_fini(&ev);
}

static void auth_failed(struct req *r)
{
	struct api *a = r->a;
	int64_t now = v2g_mono_ms();
	unsigned long suppressed = 0;
	int log = 0;

	v2g_counter_inc(a->m_auth_fail, NULL);
	pthread_mutex_lock(&a->auth_mu);
	if (a->auth_logged_ms == 0 || now - a->auth_logged_ms >= AUTH_LOG_INTERVAL_MS) {
		log = 1;
		suppressed = a->auth_suppressed;
		a->auth_suppressed = 0;
		a->auth_logged_ms = now;
	} else {
		a->auth_suppressed++;
	}
	pthread_mutex_unlock(&a->auth_mu);
	if (log)
		v2g_warn("API-AUTH-FAIL",
		         "rejected a request from %s without a valid bearer token (%lu more "
		         "not logged since the previous report)",
		         r->client, suppressed);
}

/* Adds the RateLimit-* lines of a verdict to the request's headers. */
static void limit_headers(struct req *r, const struct api_verdict *v)
{
	if (v->limit > 0)
		snprintf(r->hdr, sizeof(r->hdr),
		         "RateLimit-Limit: %d\r\nRateLimit-Remaining: %d\r\n", v->limit,
		         v->remaining);
}

/* 429 for a refused verdict: counted, logged once a minute per client and
 * tier, and an audit event on the strict tiers. */
static int rate_limited(struct req *r, const struct api_verdict *v)
{
	struct api *a = r->a;
	char msg[80], ra[16], key[API_GATE_KEY_MAX];
	unsigned long held = 0;

	v2g_counter_inc(a->m_limited, v->tier);
	snprintf(key, sizeof(key), "log|%s|%s", v->tier, r->client);
	if (api_gate_pass(a->gate, key, v2g_mono_ms(), &held))
		v2g_warn("API-RATE-LIMITED",
		         "%s is over the %s rate limit (%d per window): 429 for %d s (%lu more "
		         "429s not logged since the previous report)",
		         r->client, v->tier, v->limit, v->retry_after_s, held);
	if (!strcmp(v->tier, "auth") || !strcmp(v->tier, "strict"))
		audit_auth(r, "rate_limited",
		           !strcmp(v->tier, "auth") ? "too many failed authentications"
		                                    : "too many configuration requests");
	snprintf(msg, sizeof(msg), "rate limit exceeded, retry after %d s", v->retry_after_s);
	snprintf(ra, sizeof(ra), "%d", v->retry_after_s);
	limit_headers(r, v);
	return reply_error_hdr(r, 429, msg, "Retry-After", ra);
}

/* Reads the whole request body, at most max bytes, into a NUL-terminated
 * heap buffer the caller frees. The declared Content-Length is checked
 * first; chunked or length-less bodies are read up to max + 1 bytes.
 * Returns 0, V2G_ERR_TOOBIG, V2G_ERR_IO or V2G_ERR_NOMEM. */
static int read_body(struct mg_connection *c, const struct mg_request_info *ri, size_t max,
                     char **out, size_t *outlen)
{
	size_t cap, n = 0;
	char *buf;

	if (ri->content_length > (long long)max)
		return V2G_ERR_TOOBIG;
	cap = ri->content_length >= 0 ? (size_t)ri->content_length + 1 : max + 1;
	buf = malloc(cap + 1);
	if (!buf)
		return V2G_ERR_NOMEM;
	while (n < cap) {
		int rd = mg_read(c, buf + n, cap - n);
		if (rd < 0) {
			free(buf);
			return V2G_ERR_IO;
		}
		if (rd == 0)
			break;
		n += (size_t)rd;
	}
	if (n > max) {
		free(buf);
		return V2G_ERR_TOOBIG;
	}
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
}

/* Reads a body that must be a JSON object into *out (the text as received,
 * heap, caller frees). Returns 0, or the status it has already answered
 * (413, 400 naming "body", 500). */
static int read_object_body(struct req *r, char **out)
{
	char msg[256], *body = NULL;
	json_error_t jerr;
	json_t *j;
	size_t len = 0;
	int ok;

	switch (read_body(r->c, r->ri, r->a->max_body, &body, &len)) {
	case 0: break;
	case V2G_ERR_TOOBIG:
		snprintf(msg, sizeof(msg), "body: larger than %zu bytes", r->a->max_body);
		return reply_error(r, 413, msg);
	case V2G_ERR_NOMEM: return reply_error(r, 500, "out of memory");
	default: return reply_error(r, 400, "body: could not be read");
	}
	if (len == 0) {
		free(body);
		return reply_error(r, 400, "body: must be a JSON object");
	}
	/* A NUL byte cannot travel as a protobuf string; JSON never needs one. */
	j = memchr(body, '\0', len) ? NULL : v2g_json_loadb(body, len, 0, &jerr);
	if (!j) {
		if (memchr(body, '\0', len))
			snprintf(msg, sizeof(msg), "body: invalid JSON (NUL byte)");
		else
			snprintf(msg, sizeof(msg), "body: invalid JSON at line %d column %d: %s",
			         jerr.line, jerr.column, jerr.text);
		free(body);
		return reply_error(r, 400, msg);
	}
	ok = json_is_object(j);
	json_decref(j);
	if (!ok) {
		free(body);
		return reply_error(r, 400, "body: must be a JSON object");
	}
	*out = body;
	return 0;
}

/* The {param} of a route as a NUL-terminated id in buf (API_ID_MAX + 1
 * bytes). Returns 0, or 400 (answered) naming the parameter. */
static int path_id(struct req *r, const struct api_match *m, char *buf)
{
	char msg[96];

	if (m->param_len > 0 && m->param_len <= API_ID_MAX) {
		memcpy(buf, m->param, m->param_len);
		buf[m->param_len] = '\0';
		if (api_id_valid(buf))
			return 0;
	}
	snprintf(msg, sizeof(msg), "%s: " ID_WHY, m->param_name ? m->param_name : "id");
	return reply_error(r, 400, msg);
}

/* --- bus peers -------------------------------------------------------- */

static void breaker_gauge(struct api *a, const struct peer *p, enum v2g_breaker_state before)
{
	enum v2g_breaker_state now = v2g_breaker_state(p->br);

	v2g_gauge_set(a->m_br_state, p->name, (double)now);
	if (now == before)
		return;
	if (now == V2G_BREAKER_OPEN)
		v2g_warn("API-BREAKER-OPEN",
		         "%s stopped answering: its calls get 503 at once until a trial call "
		         "succeeds",
		         p->name);
	else if (now == V2G_BREAKER_CLOSED)
		v2g_info("API-BREAKER-CLOSED", "%s answers again", p->name);
}

/* Sends req to p through its breaker. Returns 0 with *rep (free with
 * v2g_env_free), or a v2g error with the reason in why: V2G_ERR_UNAVAILABLE
 * "circuit open" when the breaker refused, else the bus error. Any reply
 * (an Error body too) counts as a success: the peer is there. */
static int peer_call(struct api *a, const struct peer *p, v2g_env *req, v2g_env **rep, char *why,
                     size_t len)
{
	enum v2g_breaker_state before = v2g_breaker_state(p->br);
	int64_t t0 = v2g_now_ms(), t1;
	int rc;

	if (v2g_breaker_allow(p->br, t0) != 0) {
		v2g_counter_inc(a->m_br_rejected, p->name);
		snprintf(why, len, "circuit open");
		return V2G_ERR_UNAVAILABLE;
	}
	rc = v2g_bus_call(p->client, req, rep, a->timeout_ms);
	t1 = v2g_now_ms();
	if (rc) {
		v2g_breaker_failure(p->br, t1);
		v2g_counter_inc(a->m_bus_err, p->name);
		v2g_warn("API-BUS-DOWN", "%s did not answer: %s", p->name, v2g_strerror(rc));
		snprintf(why, len, "%s", v2g_strerror(rc));
	} else {
		v2g_breaker_success(p->br, t1, t1 - t0);
	}
	breaker_gauge(a, p, before);
	return rc;
}

/* Seconds until an open breaker lets a trial through (at least 1). */
static int breaker_retry_after(struct v2g_breaker *b)
{
	json_t *st = v2g_breaker_status(b);
	json_t *next = st ? json_object_get(st, "next_attempt_at") : NULL;
	int64_t left = json_is_integer(next) ? json_integer_value(next) - v2g_now_ms() : 0;
	json_decref(st);
	return left > 1000 ? (int)((left + 999) / 1000) : 1;
}

/* Sends req to a peer and waits for a reply whose body is want. Returns 0
 * with *rep set (free with v2g_env_free), or the HTTP status it has already
 * answered: the peer's Error as is, 503 when the peer is down, silent or
 * its circuit open (with Retry-After then), 502 for a reply of the wrong
 * kind. */
static int bus_call(struct req *r, const struct peer *p, v2g_env *req, int want, v2g_env **rep)
{
	char msg[160], why[64];
	v2g_env *e = NULL;
	int rc = peer_call(r->a, p, req, &e, why, sizeof(why));

	if (rc) {
		snprintf(msg, sizeof(msg), "%s unavailable: %s", p->name, why);
		if (rc == V2G_ERR_UNAVAILABLE) {
			char ra[16];
			snprintf(ra, sizeof(ra), "%d", breaker_retry_after(p->br));
			return reply_error_hdr(r, 503, msg, "Retry-After", ra);
		}
		return reply_error(r, 503, msg);
	}
	if ((int)e->body_case == want) {
		*rep = e;
		return 0;
	}
	if (e->body_case == V2G__V1__ENVELOPE__BODY_ERROR && e->error) {
		int code = e->error->code;
		const char *m = e->error->message;
		if (code < 400 || code > 599)
			code = 500;
		if (code >= 500)
			v2g_warn("API-BUS-ERROR", "%s answered %d: %s", p->name, code, m);
		if (m && *m)
			snprintf(msg, sizeof(msg), "%s", m);
		else
			snprintf(msg, sizeof(msg), "%s error", p->name);
		v2g_env_free(e);
		return reply_error(r, code, msg);
	}
	v2g_counter_inc(r->a->m_bus_err, p->name);
	v2g_warn("API-BUS-PROTO", "%s answered an unexpected message (body %d)", p->name,
	         (int)e->body_case);
	v2g_env_free(e);
	snprintf(msg, sizeof(msg), "unexpected reply from %s", p->name);
	return reply_error(r, 502, msg);
}

static int bad_reply(struct req *r, const struct peer *p, const char *what)
{
	char msg[96];
	v2g_counter_inc(r->a->m_bus_err, p->name);
	v2g_warn("API-BUS-PROTO", "%s answered %s", p->name, what);
	snprintf(msg, sizeof(msg), "unexpected reply from %s", p->name);
	return reply_error(r, 502, msg);
}

/* --- routes: dispatch ------------------------------------------------- */

/* POST /api/signals: the body goes to signal-ingest as received; it owns
 * the field validation. */
static int signal_submit(struct req *r)
{
	V2g__V1__IngestSignal in = V2G__V1__INGEST_SIGNAL__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	char *body = NULL;
	int st;

	if ((st = read_object_body(r, &body)))
		return st;
	in.json = body;
	in.source = "api";
	req.body_case = V2G__V1__ENVELOPE__BODY_INGEST_SIGNAL;
	req.ingest_signal = &in;
	st = bus_call(r, &r->a->ingest, &req, V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL_REPLY, &rep);
	free(body);
	if (st)
		return st;
	st = reply_json(r, 202, api_render_submit(rep->submit_signal_reply));
	v2g_env_free(rep);
	return st;
}

/* GET /api/dispatches/{dispatch_id} */
static int dispatch_get(struct req *r, const struct api_match *m)
{
	V2g__V1__GetDispatch get = V2G__V1__GET_DISPATCH__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	char id[API_ID_MAX + 1];
	int st;

	if ((st = path_id(r, m, id)))
		return st;
	get.dispatch_id = id;
	req.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	req.get_dispatch = &get;
	st = bus_call(r, &r->a->store, &req, V2G__V1__ENVELOPE__BODY_DISPATCH_REPLY, &rep);
	if (st)
		return st;
	if (!rep->dispatch_reply->found)
		st = reply_error(r, 404, "dispatch not found");
	else if (!rep->dispatch_reply->decision)
		st = bad_reply(r, &r->a->store, "found without a decision");
	else
		st = reply_json(r, 200, api_render_dispatch(rep->dispatch_reply->decision));
	v2g_env_free(rep);
	return st;
}

/* GET /api/dispatch/logs?start=&end=&vehicle_id=&signal_type=&limit= */
static int logs_get(struct req *r)
{
	V2g__V1__LogQuery lq = V2G__V1__LOG_QUERY__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	struct api_log_query q;
	char err[160];
	int st;

	if (api_log_query_parse(r->ri->query_string, &q, err, sizeof(err)))
		return reply_error(r, 400, err);
	if (q.none) { /* before 1970 or after 9999: the store holds nothing there */
		V2g__V1__LogReply empty = V2G__V1__LOG_REPLY__INIT;
		return reply_json(r, 200, api_render_logs(&empty));
	}
	lq.start_ms = q.has_start ? q.start_ms : 0;
	lq.end_ms = q.has_end ? q.end_ms : 0;
	lq.vehicle_id = q.vehicle_id;
	lq.signal_type = q.signal_type;
	lq.limit = q.limit;
	req.body_case = V2G__V1__ENVELOPE__BODY_LOG_QUERY;
	req.log_query = &lq;
	st = bus_call(r, &r->a->store, &req, V2G__V1__ENVELOPE__BODY_LOG_REPLY, &rep);
	if (st)
		return st;
	st = reply_json(r, 200, api_render_logs(rep->log_reply));
	v2g_env_free(rep);
	return st;
}

/* --- routes: audit (store) -------------------------------------------- */

/* Answers a rendered audit reply: 200, 502 for a reply we cannot use, 500
 * out of memory. */
static int audit_answer(struct req *r, int rc, char *body, const char *what)
{
	if (rc == V2G_ERR_PROTO)
		return bad_reply(r, &r->a->store, what);
	if (rc)
		return reply_error(r, 500, "out of memory");
	return reply_json(r, 200, body);
}

/* GET /api/audit/logs?category=&startDate=&endDate=&limit= */
static int audit_logs(struct req *r)
{
	V2g__V1__AuditQuery aq = V2G__V1__AUDIT_QUERY__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	struct api_audit_query q;
	char err[160], *body = NULL;
	int st;

	if (api_audit_query_parse(r->ri->query_string, &q, err, sizeof(err)))
		return reply_error(r, 400, err);
	if (q.none) { /* before 1970 or after 9999: the store holds nothing there */
		V2g__V1__AuditReply empty = V2G__V1__AUDIT_REPLY__INIT;
		st = api_render_audit_logs(&empty, &body);
		return audit_answer(r, st, body, "");
	}
	aq.category = q.category;
	aq.start_ms = q.has_start ? q.start_ms : 0;
	aq.end_ms = q.has_end ? q.end_ms : 0;
	aq.limit = q.limit;
	req.body_case = V2G__V1__ENVELOPE__BODY_AUDIT_QUERY;
	req.audit_query = &aq;
	if ((st = bus_call(r, &r->a->store, &req, V2G__V1__ENVELOPE__BODY_AUDIT_REPLY, &rep)))
		return st;
	st = api_render_audit_logs(rep->audit_reply, &body);
	v2g_env_free(rep);
	return audit_answer(r, st, body, "an audit event that is not a JSON object");
}

/* GET /api/audit/stats?days=7 */
static int audit_stats(struct req *r)
{
	V2g__V1__AuditStatsQuery sq = V2G__V1__AUDIT_STATS_QUERY__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	char err[160], *body = NULL;
	unsigned days;
	int st;

	if (api_audit_stats_parse(r->ri->query_string, &days, err, sizeof(err)))
		return reply_error(r, 400, err);
	sq.days = days;
	req.body_case = V2G__V1__ENVELOPE__BODY_AUDIT_STATS_QUERY;
	req.audit_stats_query = &sq;
	if ((st = bus_call(r, &r->a->store, &req, V2G__V1__ENVELOPE__BODY_AUDIT_STATS_REPLY, &rep)))
		return st;
	st = api_render_audit_stats(rep->audit_stats_reply, days, &body);
	v2g_env_free(rep);
	return audit_answer(r, st, body, "audit stats of another shape than asked");
}

/* --- routes: DLM (site-dlm) ------------------------------------------- */

/* A query string fit to relay: percent-encoded printable ASCII. */
static int query_ok(const char *q)
{
	size_t n = 0;
	for (; q && q[n]; n++)
		if ((unsigned char)q[n] <= 0x20 || (unsigned char)q[n] >= 0x7f)
			return 0;
	return n <= DLM_QUERY_MAX;
}

static void dlm_request_init(struct req *r, V2g__V1__DlmRequest *dr, V2g__V1__DlmActor *actor,
                             const char *op)
{
	v2g__v1__dlm_request__init(dr);
	v2g__v1__dlm_actor__init(actor);
	actor->type = "api";
	actor->id = "bearer";
	actor->name = (char *)r->client;
	dr->op = (char *)op;
	dr->actor = actor;
}

/* Every DLM route but the circuit breakers: the request goes to site-dlm
 * as a DlmRequest (op, station, body, actor, query); its DlmReply's status
 * and body are the answer. */
static int dlm_relay(struct req *r, const struct api_match *m)
{
	V2g__V1__DlmRequest dr;
	V2g__V1__DlmActor actor;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	char station[API_ID_MAX + 1] = "", *body = NULL;
	int st, post = !strcmp(r->ri->request_method, "POST");

	if (m->param_name && (st = path_id(r, m, station)))
		return st;
	if (!post && !query_ok(r->ri->query_string))
		return reply_error(r, 400,
		                   "query: must be percent-encoded ASCII, at most 2048 characters");
	if (post && (st = read_object_body(r, &body)))
		return st;
	dlm_request_init(r, &dr, &actor, m->op);
	dr.station = station;
	dr.body_json = body ? body : "";
	dr.query = (!post && r->ri->query_string) ? (char *)r->ri->query_string : "";
	req.body_case = V2G__V1__ENVELOPE__BODY_DLM_REQUEST;
	req.dlm_request = &dr;
	st = bus_call(r, &r->a->dlm, &req, V2G__V1__ENVELOPE__BODY_DLM_REPLY, &rep);
	free(body);
	if (st)
		return st;
	if (api_dlm_reply_check(rep->dlm_reply))
		st = bad_reply(r, &r->a->dlm, "a status or body the API cannot relay");
	else
		st = reply_text(r, rep->dlm_reply->status, rep->dlm_reply->body_json);
	v2g_env_free(rep);
	return st;
}

/* {"error": msg} as a new JSON object. */
static json_t *error_obj(const char *msg)
{
	return json_pack("{s:s}", "error", msg ? msg : "error");
}

/* site-dlm's part of GET /api/circuit-breakers: its answer body, or
 * {"error": …} when it has none to give. New reference (NULL: no memory). */
static json_t *dlm_breakers(struct req *r, const struct api_match *m)
{
	V2g__V1__DlmRequest dr;
	V2g__V1__DlmActor actor;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	const struct peer *p = &r->a->dlm;
	char why[64], msg[160];
	json_t *out;

	dlm_request_init(r, &dr, &actor, m->op);
	req.body_case = V2G__V1__ENVELOPE__BODY_DLM_REQUEST;
	req.dlm_request = &dr;
	if (peer_call(r->a, p, &req, &rep, why, sizeof(why))) {
		snprintf(msg, sizeof(msg), "%s unavailable: %s", p->name, why);
		return error_obj(msg);
	}
	if (rep->body_case == V2G__V1__ENVELOPE__BODY_DLM_REPLY &&
	    api_dlm_reply_check(rep->dlm_reply) == 0) {
		const char *b = rep->dlm_reply->body_json;
		out = v2g_json_loadb(b, strlen(b), 0, NULL);
	} else if (rep->body_case == V2G__V1__ENVELOPE__BODY_ERROR && rep->error) {
		snprintf(msg, sizeof(msg), "%s: %s", p->name,
		         rep->error->message && *rep->error->message ? rep->error->message
		                                                     : "error");
		out = error_obj(msg);
	} else {
		v2g_counter_inc(r->a->m_bus_err, p->name);
		out = error_obj("unexpected reply from site-dlm");
	}
	v2g_env_free(rep);
	return out;
}

/* GET /api/circuit-breakers: {"site-dlm": <site-dlm's breakers>,
 * "api-gateway": <ours, one per bus peer>}; 200 even when site-dlm is
 * down (its entry is then {"error": …}). */
static int circuit_breakers(struct req *r, const struct api_match *m)
{
	json_t *o = json_object(), *dlm = dlm_breakers(r, m);
	json_t *ours = v2g_breaker_registry_status(r->a->breakers);
	char *body = NULL;

	if (o && dlm && ours) {
		/* set_new takes the value even when it fails */
		int bad = json_object_set_new(o, "site-dlm", dlm);
		bad |= json_object_set_new(o, "api-gateway", ours);
		dlm = ours = NULL;
		if (!bad)
			body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	}
	json_decref(o);
	json_decref(dlm);
	json_decref(ours);
	return reply_json(r, 200, body);
}

/* --- the handler ------------------------------------------------------ */

static int route(struct req *r, const struct api_match *m)
{
	switch (m->route) {
	case API_ROUTE_SIGNAL_SUBMIT: return signal_submit(r);
	case API_ROUTE_DISPATCH_GET: return dispatch_get(r, m);
	case API_ROUTE_LOGS_GET: return logs_get(r);
	case API_ROUTE_DLM: return dlm_relay(r, m);
	case API_ROUTE_CIRCUIT_BREAKERS: return circuit_breakers(r, m);
	case API_ROUTE_AUDIT_LOGS: return audit_logs(r);
	case API_ROUTE_AUDIT_STATS: return audit_stats(r);
	default: return reply_error(r, 404, "no such route");
	}
}

/* Every request under /api lands here: authenticate, rate-limit, route,
 * answer, measure. Always answers; returns the status for civetweb's
 * access log. */
static int api_handler(struct mg_connection *c, void *cbdata)
{
	struct api *a = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(c);
	const char *method = ri->request_method ? ri->request_method : "";
	const char *path = ri->local_uri ? ri->local_uri : "";
	double t0 = v2g_mono_s();
	struct req r;
	struct api_match m;
	struct api_verdict v;
	char code[8], lpath[200], lmethod[16];
	int st;

	memset(&r, 0, sizeof(r));
	r.a = a;
	r.c = c;
	r.ri = ri;
	r.client = ri->remote_addr[0] ? ri->remote_addr : "unknown";
	api_route_match(method, path, &m);
	if (strcmp(path, "/api") != 0 && strncmp(path, "/api/", 5) != 0) {
		/* civetweb hands us "/apix" too: not an API path at all. */
		st = reply_error(&r, 404, "not found");
	} else if (!api_auth_check(mg_get_header(c, "Authorization"), a->token)) {
		auth_failed(&r);
		api_limits_auth_failure(a->limits, r.client, v2g_mono_ms(), &v);
		if (!v.allowed) {
			st = rate_limited(&r, &v);
		} else {
			limit_headers(&r, &v);
			audit_auth(&r, "login_failed",
			           mg_get_header(c, "Authorization") ? "invalid bearer token"
			                                             : "no bearer token");
			st = reply_error_hdr(&r, 401, "missing or invalid bearer token",
			                     "WWW-Authenticate", "Bearer");
		}
	} else {
		api_limits_request(a->limits, &m, r.client, v2g_mono_ms(), &v);
		if (!v.allowed) {
			st = rate_limited(&r, &v);
		} else {
			limit_headers(&r, &v);
			if (m.status == 405)
				st = reply_error_hdr(&r, 405, "method not allowed", "Allow",
				                     m.allow);
			else
				st = route(&r, &m);
		}
	}

	snprintf(code, sizeof(code), "%d", st);
	v2g_counter_inc(a->m_requests, m.label);
	v2g_histogram_observe(a->m_duration, m.label, v2g_mono_s() - t0);
	v2g_counter_inc(a->m_responses, code);
	log_safe(path, lpath, sizeof(lpath));
	log_safe(method, lmethod, sizeof(lmethod));
	if (st >= 500)
		v2g_warn("API-REQ", "%s %s -> %d (%.1f ms)", lmethod, lpath, st,
		         (v2g_mono_s() - t0) * 1000.0);
	else
		v2g_debug("API-REQ", "%s %s -> %d (%.1f ms)", lmethod, lpath, st,
		          (v2g_mono_s() - t0) * 1000.0);
	return st;
}

/* --- life cycle ------------------------------------------------------- */

static int add_peer(struct api *a, struct peer *p, const char *name, struct v2g_bus_client *client,
                    const struct v2g_breaker_opts *o)
{
	p->name = name;
	p->client = client;
	v2g_gauge_set(a->m_br_state, name, 0);
	return v2g_breaker_registry_get(a->breakers, name, o, &p->br);
}

int api_start(struct api **out, struct mg_context *ctx, const struct api_cfg *cfg,
              const struct api_peers *peers, struct v2g_audit_sink *sink, int bus_timeout_ms)
{
	struct v2g_breaker_opts bo = V2G_BREAKER_OPTS_DEFAULT;
	struct api *a;
	int rc;

	if (!ctx || !cfg || !cfg->token || !*cfg->token || cfg->max_body_bytes <= 0 || !peers ||
	    !peers->ingest || !peers->store || !peers->dlm)
		return V2G_ERR_INVAL;
	bo.failure_threshold = cfg->breaker.failure_threshold;
	bo.success_threshold = cfg->breaker.success_threshold;
	bo.reset_timeout_ms = cfg->breaker.reset_timeout_ms;
	/* A reply is a success however slow: the bus timeout bounds it. */
	bo.timeout_ms = 2 * (int64_t)bus_timeout_ms + 1000;
	bo.max_retries = 0;
	if (v2g_breaker_opts_check(&bo))
		return V2G_ERR_INVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return V2G_ERR_NOMEM;
	a->ctx = ctx;
	a->token = cfg->token;
	a->max_body = (size_t)cfg->max_body_bytes;
	a->timeout_ms = bus_timeout_ms;
	a->sink = sink;
	pthread_mutex_init(&a->auth_mu, NULL);

	a->m_requests = v2g_counter("http_requests_total", "REST requests by route", "route");
	a->m_duration =
	        v2g_histogram("http_request_duration_seconds", "REST request duration by route",
	                      "route", v2g_latency_buckets, v2g_latency_nbuckets);
	a->m_responses =
	        v2g_counter("http_responses_total", "REST responses by status code", "code");
	a->m_auth_fail = v2g_counter("api_auth_failures_total",
	                             "REST requests refused for a missing or wrong token", NULL);
	a->m_bus_err = v2g_counter("api_bus_errors_total",
	                           "bus calls that failed (timeout, peer down, bad reply)", "peer");
	a->m_limited = v2g_counter("http_rate_limited_total",
	                           "REST requests answered 429, by rate-limit tier", "tier");
	a->m_br_rejected = v2g_counter("api_breaker_rejected_total",
	                               "REST requests answered 503 at once: the peer's circuit "
	                               "is open",
	                               "peer");
	a->m_br_state =
	        v2g_gauge("api_breaker_state",
	                  "circuit of each bus peer: 0 closed, 1 open, 2 half-open", "peer");

	rc = V2G_ERR_NOMEM;
	if (!(a->breakers = v2g_breaker_registry_new()) ||
	    !(a->gate = api_gate_new(GATE_SLOTS, GATE_INTERVAL_MS)))
		goto fail;
	if ((rc = add_peer(a, &a->ingest, "signal-ingest", peers->ingest, &bo)) ||
	    (rc = add_peer(a, &a->store, "store", peers->store, &bo)) ||
	    (rc = add_peer(a, &a->dlm, "site-dlm", peers->dlm, &bo)) ||
	    (rc = api_limits_new(&cfg->rate, &a->limits)))
		goto fail;

	/* civetweb matches "/api" and every "/api/..." path. */
	mg_set_request_handler(ctx, "/api", api_handler, a);
	*out = a;
	return V2G_OK;
fail:
	api_free(a);
	return rc;
}

void api_free(struct api *a)
{
	if (!a)
		return;
	api_limits_free(a->limits);
	api_gate_free(a->gate);
	v2g_breaker_registry_free(a->breakers);
	pthread_mutex_destroy(&a->auth_mu);
	free(a);
}
