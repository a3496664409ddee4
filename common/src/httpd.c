#include "v2g/httpd.h"

#include <civetweb.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"

struct v2g_httpd {
	struct mg_context *ctx;
	struct v2g_health *health;
};

static const char *const status_text[][2] = {
	{ "200", "OK" },
	{ "201", "Created" },
	{ "202", "Accepted" },
	{ "204", "No Content" },
	{ "400", "Bad Request" },
	{ "401", "Unauthorized" },
	{ "403", "Forbidden" },
	{ "404", "Not Found" },
	{ "405", "Method Not Allowed" },
	{ "409", "Conflict" },
	{ "413", "Payload Too Large" },
	{ "415", "Unsupported Media Type" },
	{ "429", "Too Many Requests" },
	{ "500", "Internal Server Error" },
	{ "501", "Not Implemented" },
	{ "502", "Bad Gateway" },
	{ "503", "Service Unavailable" },
	{ "504", "Gateway Timeout" },
};

static const char *reason(int status)
{
	char code[8];
	snprintf(code, sizeof(code), "%d", status);
	for (size_t i = 0; i < sizeof(status_text) / sizeof(status_text[0]); i++) {
		if (!strcmp(status_text[i][0], code))
			return status_text[i][1];
	}
	return "Status";
}

void v2g_http_send_hdr(struct mg_connection *c, int status, const char *ctype, const char *headers,
                       const char *body, size_t len)
{
	mg_printf(c,
	          "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	          "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
	          status, reason(status), ctype, len, headers ? headers : "");
	if (len)
		mg_write(c, body, len);
}

void v2g_http_send(struct mg_connection *c, int status, const char *ctype, const char *body,
                   size_t len)
{
	v2g_http_send_hdr(c, status, ctype, NULL, body, len);
}

void v2g_http_error(struct mg_connection *c, int status, const char *msg)
{
	v2g_http_error_hdr(c, status, NULL, msg);
}

void v2g_http_error_hdr(struct mg_connection *c, int status, const char *headers, const char *msg)
{
	json_t *o = json_pack("{s:s}", "error", msg ? msg : reason(status));
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (s)
		v2g_http_send_hdr(c, status, "application/json", headers, s, strlen(s));
	else
		v2g_http_send(c, 500, "application/json", "{\"error\":\"internal\"}", 20);
	free(s);
	json_decref(o);
}

static int health_handler(struct mg_connection *c, void *cb)
{
	struct v2g_httpd *h = cb;
	const struct mg_request_info *ri = mg_get_request_info(c);
	const char *uri = ri->local_uri ? ri->local_uri : "";

	if (strcmp(ri->request_method, "GET") && strcmp(ri->request_method, "HEAD")) {
		v2g_http_error(c, 405, "method not allowed");
		return 405;
	}
	if (!strcmp(uri, "/health/live")) {
		const char *b = "{\"status\":\"alive\"}";
		v2g_http_send(c, 200, "application/json", b, strlen(b));
		return 200;
	}
	if (!strcmp(uri, "/health/ready") || !strcmp(uri, "/health")) {
		char *s = v2g_health_json(h->health);
		int st = v2g_health_ready(h->health) ? 200 : 503;
		if (!s) {
			v2g_http_error(c, 500, "out of memory");
			return 500;
		}
		v2g_http_send(c, st, "application/json", s, strlen(s));
		free(s);
		return st;
	}
	v2g_http_error(c, 404, "not found");
	return 404;
}

static int metrics_handler(struct mg_connection *c, void *cb)
{
	(void)cb;
	char *s = v2g_metrics_render();
	if (!s) {
		v2g_http_error(c, 500, "out of memory");
		return 500;
	}
	v2g_http_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", s, strlen(s));
	free(s);
	return 200;
}

/* civetweb's own refusals (bad request line, oversized headers, …) in our
 * JSON error shape. */
static int http_error(struct mg_connection *c, int status, const char *msg)
{
	v2g_http_error(c, status, msg && *msg ? msg : reason(status));
	return 0;
}

static int log_message(const struct mg_connection *c, const char *msg)
{
	(void)c;
	v2g_warn("HTTP-SERVER", "%s", msg);
	return 1;
}

int v2g_httpd_start(struct v2g_httpd **out, const char *addr, int port, struct v2g_health *health,
                    int threads)
{
	char ports[96], nthreads[16];
	struct mg_callbacks cbs;
	struct v2g_httpd *h;

	if (port <= 0 || port > 65535)
		return V2G_ERR_INVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return V2G_ERR_NOMEM;
	h->health = health;
	snprintf(ports, sizeof(ports), "%s:%d", addr && *addr ? addr : "127.0.0.1", port);
	snprintf(nthreads, sizeof(nthreads), "%d", threads > 0 ? threads : 4);
	const char *opts[] = {
		"listening_ports",  ports,   "num_threads", nthreads, "request_timeout_ms", "10000",
		"max_request_size", "65536", NULL
	};
	memset(&cbs, 0, sizeof(cbs));
	cbs.log_message = log_message;
	cbs.http_error = http_error;
	mg_init_library(0);
	h->ctx = mg_start(&cbs, h, opts);
	if (!h->ctx) {
		free(h);
		return V2G_ERR_IO;
	}
	mg_set_request_handler(h->ctx, "/health", health_handler, h);
	mg_set_request_handler(h->ctx, "/metrics$", metrics_handler, h);
	*out = h;
	return V2G_OK;
}

void v2g_httpd_stop(struct v2g_httpd *h)
{
	if (!h)
		return;
	if (h->ctx)
		mg_stop(h->ctx);
	free(h);
}

struct mg_context *v2g_httpd_ctx(struct v2g_httpd *h)
{
	return h ? h->ctx : NULL;
}
