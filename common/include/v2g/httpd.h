/* The per-service HTTP endpoint (civetweb): /health, /health/live,
 * /health/ready and /metrics, plus any handler a service adds (the
 * api-gateway adds the REST API on the same server). Plain HTTP only: TLS is
 * terminated in front (Debian's civetweb HTTPS is broken). */
#ifndef V2G_HTTPD_H
#define V2G_HTTPD_H

#include "v2g/health.h"

struct mg_context;
struct mg_connection;
struct v2g_httpd;

/* Listens on addr:port (addr "127.0.0.1" or "0.0.0.0"); port 0 is an error.
 * Borrows health (must outlive the server). threads: worker count. */
int v2g_httpd_start(struct v2g_httpd **out, const char *addr, int port, struct v2g_health *health,
                    int threads);
/* Lets the requests in progress finish and send their answers (up to 5 s;
 * a request that comes meanwhile gets 503 "shutting down" with
 * Retry-After: 1), then stops accepting connections and stops civetweb: no
 * handler runs after it returns. Frees. Prompt on an idle server (it does
 * not wait out civetweb's 2 s listener poll). NULL is fine. */
void v2g_httpd_stop(struct v2g_httpd *h);
struct mg_context *v2g_httpd_ctx(struct v2g_httpd *h);

/* Helpers for handlers: send a complete response. */
void v2g_http_send(struct mg_connection *c, int status, const char *ctype, const char *body,
                   size_t len);
/* The same with extra header lines (each ending "\r\n"), e.g.
 * "Retry-After: 1\r\n"; headers may be NULL. */
void v2g_http_send_hdr(struct mg_connection *c, int status, const char *ctype, const char *headers,
                       const char *body, size_t len);
/* {"error": msg} with the given status (and extra header lines). */
void v2g_http_error(struct mg_connection *c, int status, const char *msg);
void v2g_http_error_hdr(struct mg_connection *c, int status, const char *headers, const char *msg);

#endif
