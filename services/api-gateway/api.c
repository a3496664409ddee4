#include "api.h"

#include <civetweb.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "query.h"
#include "render.h"
#include "route.h"
#include "v2g/json.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/httpd.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

#define JSON_TYPE "application/json"
#define ID_WHY    "must be 1 to 64 characters of A-Z a-z 0-9 _ . : -"
/* At most one API-AUTH-FAIL line per this interval. */
#define AUTH_LOG_INTERVAL_MS 10000

/* A bus peer behind the API. */
struct peer {
	const char *name; /* "signal-ingest", "store": in errors, logs, metrics */
	struct v2g_bus_client *client;
};

struct api {
	struct mg_context *ctx;
	const char *token;
	size_t max_body;
	int timeout_ms;
	struct peer ingest, store;

	struct v2g_metric *m_requests, *m_duration, *m_responses, *m_auth_fail, *m_bus_err;

	pthread_mutex_t auth_mu; /* guards the auth-failure log rate limit */
	int64_t auth_logged_ms;
	unsigned long auth_suppressed;
};

/* --- responses -------------------------------------------------------- */

/* Sends a JSON response with one extra header (name NULL: none). Same
 * framing as v2g_http_send, which cannot add headers. */
/* {"error": msg} with status and one extra header (name may be NULL). */
static void error_with_header(struct mg_connection *c, int status, const char *msg,
                              const char *name, const char *value)
{
	char extra[160] = "";
	if (name)
		snprintf(extra, sizeof(extra), "%s: %s\r\n", name, value);
	v2g_http_error_hdr(c, status, extra, msg);
}

/* Sends a rendered body (taking it), or 500 when rendering ran out of memory. */
static int send_json(struct mg_connection *c, int status, char *body)
{
	if (!body) {
		v2g_http_error(c, 500, "out of memory");
		return 500;
	}
	v2g_http_send(c, status, JSON_TYPE, body, strlen(body));
	free(body);
	return status;
}

static int send_error(struct mg_connection *c, int status, const char *msg)
{
	v2g_http_error(c, status, msg);
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

static void auth_failed(struct api *a, const struct mg_request_info *ri)
{
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
		         ri->remote_addr, suppressed);
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
		int r = mg_read(c, buf + n, cap - n);
		if (r < 0) {
			free(buf);
			return V2G_ERR_IO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
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

/* Sends req to a peer and waits for a reply whose body is want. Returns 0
 * with *rep set (free with v2g_env_free), or the HTTP status it has already
 * answered: the peer's Error as is, 503 when the peer is down or silent,
 * 502 for a reply of the wrong kind. */
static int bus_call(struct api *a, struct mg_connection *c, const struct peer *p, v2g_env *req,
                    int want, v2g_env **rep)
{
	char msg[160];
	v2g_env *r = NULL;
	int rc = v2g_bus_call(p->client, req, &r, a->timeout_ms);

	if (rc) {
		v2g_counter_inc(a->m_bus_err, p->name);
		v2g_warn("API-BUS-DOWN", "%s did not answer: %s", p->name, v2g_strerror(rc));
		snprintf(msg, sizeof(msg), "%s unavailable", p->name);
		return send_error(c, 503, msg);
	}
	if ((int)r->body_case == want) {
		*rep = r;
		return 0;
	}
	if (r->body_case == V2G__V1__ENVELOPE__BODY_ERROR && r->error) {
		int code = r->error->code;
		const char *m = r->error->message;
		if (code < 400 || code > 599)
			code = 500;
		if (code >= 500)
			v2g_warn("API-BUS-ERROR", "%s answered %d: %s", p->name, code, m);
		if (m && *m)
			snprintf(msg, sizeof(msg), "%s", m);
		else
			snprintf(msg, sizeof(msg), "%s error", p->name);
		v2g_env_free(r);
		return send_error(c, code, msg);
	}
	v2g_counter_inc(a->m_bus_err, p->name);
	v2g_warn("API-BUS-PROTO", "%s answered an unexpected message (body %d)", p->name,
	         (int)r->body_case);
	v2g_env_free(r);
	snprintf(msg, sizeof(msg), "unexpected reply from %s", p->name);
	return send_error(c, 502, msg);
}

/* --- routes ----------------------------------------------------------- */

/* POST /api/signals: the body goes to signal-ingest as received; it owns
 * the field validation. */
static int signal_submit(struct api *a, struct mg_connection *c, const struct mg_request_info *ri)
{
	V2g__V1__IngestSignal in = V2G__V1__INGEST_SIGNAL__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	char msg[256], *body = NULL;
	json_error_t jerr;
	json_t *j;
	size_t len = 0;
	int st;

	switch (read_body(c, ri, a->max_body, &body, &len)) {
	case 0: break;
	case V2G_ERR_TOOBIG:
		snprintf(msg, sizeof(msg), "body: larger than %zu bytes", a->max_body);
		error_with_header(c, 413, msg, NULL, NULL);
		return 413;
	case V2G_ERR_NOMEM: return send_error(c, 500, "out of memory");
	default: return send_error(c, 400, "body: could not be read");
	}
	if (len == 0) {
		free(body);
		return send_error(c, 400, "body: must be a JSON object");
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
		return send_error(c, 400, msg);
	}
	st = json_is_object(j);
	json_decref(j);
	if (!st) {
		free(body);
		return send_error(c, 400, "body: must be a JSON object");
	}

	in.json = body;
	in.source = "api";
	req.body_case = V2G__V1__ENVELOPE__BODY_INGEST_SIGNAL;
	req.ingest_signal = &in;
	st = bus_call(a, c, &a->ingest, &req, V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL_REPLY, &rep);
	free(body);
	if (st)
		return st;
	st = send_json(c, 202, api_render_submit(rep->submit_signal_reply));
	v2g_env_free(rep);
	return st;
}

/* GET /api/dispatches/{dispatch_id} */
static int dispatch_get(struct api *a, struct mg_connection *c, const struct api_match *m)
{
	V2g__V1__GetDispatch get = V2G__V1__GET_DISPATCH__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	char id[API_ID_MAX + 1];
	int st;

	if (m->param_len == 0 || m->param_len > API_ID_MAX)
		return send_error(c, 400, "dispatch_id: " ID_WHY);
	memcpy(id, m->param, m->param_len);
	id[m->param_len] = '\0';
	if (!api_id_valid(id))
		return send_error(c, 400, "dispatch_id: " ID_WHY);

	get.dispatch_id = id;
	req.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	req.get_dispatch = &get;
	st = bus_call(a, c, &a->store, &req, V2G__V1__ENVELOPE__BODY_DISPATCH_REPLY, &rep);
	if (st)
		return st;
	if (!rep->dispatch_reply->found)
		st = send_error(c, 404, "dispatch not found");
	else if (!rep->dispatch_reply->decision)
		st = send_error(c, 502, "unexpected reply from store");
	else
		st = send_json(c, 200, api_render_dispatch(rep->dispatch_reply->decision));
	v2g_env_free(rep);
	return st;
}

/* GET /api/dispatch/logs?start=&end=&vehicle_id=&signal_type=&limit= */
static int logs_get(struct api *a, struct mg_connection *c, const struct mg_request_info *ri)
{
	V2g__V1__LogQuery lq = V2G__V1__LOG_QUERY__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	struct api_log_query q;
	char err[160];
	int st;

	if (api_log_query_parse(ri->query_string, &q, err, sizeof(err)))
		return send_error(c, 400, err);
	lq.start_ms = q.has_start ? q.start_ms : 0;
	lq.end_ms = q.has_end ? q.end_ms : 0;
	lq.vehicle_id = q.vehicle_id;
	lq.signal_type = q.signal_type;
	lq.limit = q.limit;
	req.body_case = V2G__V1__ENVELOPE__BODY_LOG_QUERY;
	req.log_query = &lq;
	st = bus_call(a, c, &a->store, &req, V2G__V1__ENVELOPE__BODY_LOG_REPLY, &rep);
	if (st)
		return st;
	st = send_json(c, 200, api_render_logs(rep->log_reply));
	v2g_env_free(rep);
	return st;
}

/* Every request under /api lands here: authenticate, route, answer,
 * measure. Always answers; returns the status for civetweb's access log. */
static int api_handler(struct mg_connection *c, void *cbdata)
{
	struct api *a = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(c);
	const char *method = ri->request_method ? ri->request_method : "";
	const char *path = ri->local_uri ? ri->local_uri : "";
	double t0 = v2g_mono_s();
	struct api_match m;
	char code[8], lpath[200], lmethod[16];
	int st;

	api_route_match(method, path, &m);
	if (strcmp(path, "/api") != 0 && strncmp(path, "/api/", 5) != 0) {
		/* civetweb hands us "/apix" too: not an API path at all. */
		st = send_error(c, 404, "not found");
	} else if (!api_auth_check(mg_get_header(c, "Authorization"), a->token)) {
		auth_failed(a, ri);
		error_with_header(c, 401, "missing or invalid bearer token", "WWW-Authenticate",
		                  "Bearer");
		st = 401;
	} else if (m.status == 404) {
		st = send_error(c, 404, "no such route");
	} else if (m.status == 405) {
		error_with_header(c, 405, "method not allowed", "Allow", m.allow);
		st = 405;
	} else if (m.route == API_ROUTE_SIGNAL_SUBMIT) {
		st = signal_submit(a, c, ri);
	} else if (m.route == API_ROUTE_DISPATCH_GET) {
		st = dispatch_get(a, c, &m);
	} else {
		st = logs_get(a, c, ri);
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

int api_start(struct api **out, struct mg_context *ctx, const struct api_cfg *cfg,
              struct v2g_bus_client *ingest, struct v2g_bus_client *store, int bus_timeout_ms)
{
	struct api *a;

	if (!ctx || !cfg || !cfg->token || !*cfg->token || cfg->max_body_bytes <= 0)
		return V2G_ERR_INVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return V2G_ERR_NOMEM;
	a->ctx = ctx;
	a->token = cfg->token;
	a->max_body = (size_t)cfg->max_body_bytes;
	a->timeout_ms = bus_timeout_ms;
	a->ingest.name = "signal-ingest";
	a->ingest.client = ingest;
	a->store.name = "store";
	a->store.client = store;
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

	/* civetweb matches "/api" and every "/api/..." path. */
	mg_set_request_handler(ctx, "/api", api_handler, a);
	*out = a;
	return V2G_OK;
}

void api_free(struct api *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->auth_mu);
	free(a);
}
