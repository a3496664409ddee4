#include "v2g/httpd.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/sync.h"
#include "v2g/timeutil.h"

#define MAX_LISTENERS 4
/* At stop, requests in progress get this long to finish (see
 * v2g_httpd_stop). */
#define DRAIN_MS 5000

struct v2g_httpd {
	struct mg_context *ctx;
	struct v2g_health *health;
	/* civetweb's listening sockets (see wake_master) */
	int listen_fd[MAX_LISTENERS];
	int n_listen;
	/* requests between civetweb's begin_request and end_request; once
	 * draining (stop), new ones are refused */
	pthread_mutex_t mu;
	pthread_cond_t idle;
	int inflight, draining;
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

/* Counts the request in progress (the connection is marked, so that only
 * a counted request is uncounted), or refuses it while stopping. */
static int begin_request(struct mg_connection *c)
{
	struct v2g_httpd *h = mg_get_user_data(mg_get_context(c));
	pthread_mutex_lock(&h->mu);
	int draining = h->draining;
	if (!draining)
		h->inflight++;
	pthread_mutex_unlock(&h->mu);
	if (draining) {
		v2g_http_error_hdr(c, 503, "Retry-After: 1\r\n", "shutting down");
		return 503; /* answered: civetweb does nothing more */
	}
	mg_set_user_connection_data(c, h);
	return 0; /* civetweb goes on with the request */
}

static void end_request(const struct mg_connection *c, int status)
{
	struct v2g_httpd *h = mg_get_user_data(mg_get_context(c));
	(void)status;
	if (mg_get_user_connection_data(c) != h)
		return;
	mg_set_user_connection_data(c, NULL);
	pthread_mutex_lock(&h->mu);
	if (--h->inflight <= 0)
		pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->mu);
}

static int log_message(const struct mg_connection *c, const char *msg)
{
	(void)c;
	v2g_warn("HTTP-SERVER", "%s", msg);
	return 1;
}

/* civetweb 1.15's master thread polls its listening sockets for 2 s at a
 * time and only then sees that mg_stop() asked it to end: mg_stop() waited
 * up to 2 s on an idle server. civetweb gives no handle on those sockets,
 * so we find them right after mg_start(): the listening TCP sockets of this
 * process bound to our port (no other socket can listen there). */
static void find_listeners(struct v2g_httpd *h, int port)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d)) != NULL && h->n_listen < MAX_LISTENERS) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		int on = 0, type = 0;
		socklen_t l1 = sizeof(on), l2 = sizeof(type);
		struct sockaddr_storage a;
		socklen_t al = sizeof(a);
		if (*end || fd < 0 || fd == dirfd(d))
			continue;
		if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &l1) || !on ||
		    getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &l2) || type != SOCK_STREAM ||
		    getsockname((int)fd, (struct sockaddr *)&a, &al))
			continue;
		int p = a.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&a)->sin_port)
		        : a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
		                                  : -1;
		if (p == port)
			h->listen_fd[h->n_listen++] = (int)fd;
	}
	closedir(d);
}

/* Wakes the master thread out of its poll: a listening socket shut down
 * polls readable at once (its accept() then fails, which civetweb ignores).
 * Until mg_stop() raises the stop flag the master goes round its loop a few
 * times; no connection is accepted any more. */
static void wake_master(struct v2g_httpd *h)
{
	for (int i = 0; i < h->n_listen; i++)
		shutdown(h->listen_fd[i], SHUT_RDWR);
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
	pthread_mutex_init(&h->mu, NULL);
	v2g_cond_init_mono(&h->idle);
	snprintf(ports, sizeof(ports), "%s:%d", addr && *addr ? addr : "127.0.0.1", port);
	snprintf(nthreads, sizeof(nthreads), "%d", threads > 0 ? threads : 4);
	const char *opts[] = {
		"listening_ports",  ports,   "num_threads", nthreads, "request_timeout_ms", "10000",
		"max_request_size", "65536", NULL
	};
	memset(&cbs, 0, sizeof(cbs));
	cbs.log_message = log_message;
	cbs.http_error = http_error;
	cbs.begin_request = begin_request;
	cbs.end_request = end_request;
	mg_init_library(0);
	h->ctx = mg_start(&cbs, h, opts);
	if (!h->ctx) {
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->idle);
		free(h);
		return V2G_ERR_IO;
	}
	mg_set_request_handler(h->ctx, "/health", health_handler, h);
	mg_set_request_handler(h->ctx, "/metrics$", metrics_handler, h);
	find_listeners(h, port);
	if (h->n_listen == 0)
		v2g_warn("HTTP-NO-LISTENER",
		         "listening socket on port %d not found: stopping may take 2 s", port);
	*out = h;
	return V2G_OK;
}

void v2g_httpd_stop(struct v2g_httpd *h)
{
	if (!h)
		return;
	if (h->ctx) {
		/* Once mg_stop() raised its stop flag civetweb writes nothing
		 * more: a request in progress would lose its answer. So first
		 * let those finish; new ones get 503 meanwhile. */
		int64_t until = v2g_mono_ms() + DRAIN_MS;
		pthread_mutex_lock(&h->mu);
		h->draining = 1;
		while (h->inflight > 0 && v2g_mono_ms() < until)
			v2g_cond_wait_ms(&h->idle, &h->mu, until - v2g_mono_ms());
		int left = h->inflight;
		pthread_mutex_unlock(&h->mu);
		if (left > 0)
			v2g_warn("HTTP-DRAIN",
			         "%d request%s still in progress after %d ms: cut short", left,
			         left == 1 ? "" : "s", DRAIN_MS);
		/* No new connection from here. */
		wake_master(h);
		mg_stop(h->ctx);
	}
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->idle);
	free(h);
}

struct mg_context *v2g_httpd_ctx(struct v2g_httpd *h)
{
	return h ? h->ctx : NULL;
}
