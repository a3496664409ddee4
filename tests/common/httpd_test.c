/* The per-service HTTP endpoint on a real civetweb server on a free
 * loopback port: the health routes, and stopping (prompt when idle, a
 * request in progress still answered, no connection taken after). */
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../harness/harness.h"
#include "v2g/health.h"
#include "v2g/httpd.h"
#include "v2g/log.h"
#include "v2g/timeutil.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* A TCP port nobody listens on right now (the kernel picks it). */
static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int connect_to(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* GET path over a fresh connection; the HTTP status, or -1 (no server, or
 * the connection closed without an answer). */
static int http_get(int port, const char *path)
{
	char req[256], resp[512];
	int fd = connect_to(port), status = -1;
	size_t got = 0;
	ssize_t n;
	if (fd < 0)
		return -1;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
		while (got < sizeof(resp) - 1 &&
		       (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
			got += (size_t)n;
		resp[got] = '\0';
		if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
			status = -1;
	}
	close(fd);
	return status;
}

struct server {
	struct v2g_health *health;
	struct v2g_httpd *httpd;
	int port;
};

static int server_start(struct server *s)
{
	s->port = free_port();
	s->health = v2g_health_new("httpd-test", 1000);
	return v2g_httpd_start(&s->httpd, "127.0.0.1", s->port, s->health, 2);
}

static void server_free(struct server *s)
{
	v2g_health_free(s->health);
}

static void test_health_routes(void)
{
	struct server s;
	CHECK_INT(server_start(&s), 0);
	CHECK_INT(http_get(s.port, "/health/live"), 200);
	CHECK_INT(http_get(s.port, "/health/ready"), 200);
	CHECK_INT(http_get(s.port, "/metrics"), 200);
	v2g_httpd_stop(s.httpd);
	server_free(&s);
}

/* civetweb's listener poll runs 2 s at a time: stop must not wait it out. */
static void test_stop_idle_is_prompt(void)
{
	struct server s;
	CHECK_INT(server_start(&s), 0);
	CHECK_INT(http_get(s.port, "/health/live"), 200);
	sleep_ms(100); /* the master thread is back in its poll */
	int64_t t0 = v2g_mono_ms();
	v2g_httpd_stop(s.httpd);
	int64_t dt = v2g_mono_ms() - t0;
	CHECK(dt < 300);
	/* the port is closed */
	CHECK_INT(http_get(s.port, "/health/live"), -1);
	server_free(&s);
	v2g_httpd_stop(NULL);
}

static atomic_int slow_started;

static int slow_handler(struct mg_connection *c, void *arg)
{
	(void)arg;
	atomic_store(&slow_started, 1);
	sleep_ms(300);
	v2g_http_send(c, 200, "text/plain", "done", 4);
	return 200;
}

struct getter {
	int port, status;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	g->status = http_get(g->port, "/slow");
	return NULL;
}

struct stopper {
	struct v2g_httpd *httpd;
	int64_t took_ms;
};

static void *stopper_main(void *arg)
{
	struct stopper *st = arg;
	int64_t t0 = v2g_mono_ms();
	v2g_httpd_stop(st->httpd);
	st->took_ms = v2g_mono_ms() - t0;
	return NULL;
}

/* A request in progress when the stop comes is still answered (civetweb
 * writes nothing once its own stop began); one that comes meanwhile gets
 * 503; stop returns after the first, and no handler runs afterwards. */
static void test_stop_answers_request_in_progress(void)
{
	struct server s;
	struct getter g;
	struct stopper st;
	pthread_t tg, ts;
	CHECK_INT(server_start(&s), 0);
	mg_set_request_handler(v2g_httpd_ctx(s.httpd), "/slow$", slow_handler, NULL);
	atomic_store(&slow_started, 0);
	g.port = s.port;
	g.status = 0;
	CHECK_INT(pthread_create(&tg, NULL, getter_main, &g), 0);
	int64_t t0 = v2g_mono_ms();
	while (!atomic_load(&slow_started) && v2g_mono_ms() - t0 < 3000)
		sleep_ms(2);
	CHECK_INT(atomic_load(&slow_started), 1);
	st.httpd = s.httpd;
	st.took_ms = -1;
	CHECK_INT(pthread_create(&ts, NULL, stopper_main, &st), 0);
	sleep_ms(50);
	CHECK_INT(http_get(s.port, "/health/live"), 503);
	pthread_join(ts, NULL);
	pthread_join(tg, NULL);
	CHECK_INT(g.status, 200);
	CHECK(st.took_ms >= 150 && st.took_ms < 1500);
	server_free(&s);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_health_routes),
		HCASE(test_stop_idle_is_prompt),
		HCASE(test_stop_answers_request_in_progress),
	};
	v2g_log_init("httpd-test", V2G_LOG_ERROR, 0);
	return harness_main("httpd", cases, HARNESS_N(cases));
}
