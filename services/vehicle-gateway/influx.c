/* InfluxDB writer: a bounded queue of line-protocol points drained by one
 * thread that POSTs batches to /write with libcurl. */
#include "influx.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"
#include "v2g/sync.h"

#define BACKOFF_MIN_MS  250
#define BACKOFF_MAX_MS  10000
#define HTTP_TIMEOUT_MS 5000
#define POINT_MAX       2048

enum write_result { WRITE_OK, WRITE_DOWN, WRITE_REJECTED, WRITE_NO_DB };

struct vgw_influx {
	char *url;
	char *database;
	char *write_url;
	char *query_url;
	char *ping_url;
	size_t batch_size;
	int flush_ms;

	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cond;

	/* Ring of heap lines; ring[head] has sequence number head_seq. */
	char **ring;
	size_t cap, head, count;
	uint64_t head_seq;
	int stopping;
	int64_t stop_deadline; /* mono ms */

	/* writer thread only */
	CURL *curl;
	int db_ready;
	int down;
	char *body;
	size_t body_cap;

	struct v2g_metric *m_written, *m_failures, *m_dropped, *m_queue;
};

/* --- line protocol (pure) ---------------------------------------------------- */

int vgw_influx_escape_tag(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = in; *p; p++) {
		int esc = *p == ',' || *p == '=' || *p == ' ';
		/* InfluxDB 1.x keeps a backslash literally, but cannot parse one
		 * that ends the value or precedes an escaped character: those are
		 * dropped (the bus keeps the original string). */
		if (*p == '\\' &&
		    (p[1] == '\0' || p[1] == ',' || p[1] == '=' || p[1] == ' ' || p[1] == '\\'))
			continue;
		if (o + (size_t)esc + 1 >= len)
			return -1;
		if (esc)
			out[o++] = '\\';
		out[o++] = *p;
	}
	if (o >= len)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/* Appends ",key=value" (escaped) unless value is empty. */
static int put_tag(char *buf, size_t len, size_t *o, const char *key, const char *value)
{
	if (!value[0])
		return 0;
	int n = snprintf(buf + *o, len - *o, ",%s=", key);
	if (n < 0 || (size_t)n >= len - *o)
		return -1;
	*o += (size_t)n;
	n = vgw_influx_escape_tag(value, buf + *o, len - *o);
	if (n < 0)
		return -1;
	*o += (size_t)n;
	return 0;
}

int vgw_influx_line(const struct vgw_state *s, char *buf, size_t len)
{
	char soc[32], maxp[32], pw[32];
	size_t o;
	int n;

	if (vgw_payload_number(s->soc, soc, sizeof(soc)) < 0 ||
	    vgw_payload_number(s->max_power_kw, maxp, sizeof(maxp)) < 0 ||
	    vgw_payload_number(s->power_kw, pw, sizeof(pw)) < 0)
		return -1;
	n = snprintf(buf, len, "vehicle_state");
	if (n < 0 || (size_t)n >= len)
		return -1;
	o = (size_t)n;
	/* Tags in key order, as InfluxDB stores them. */
	if (put_tag(buf, len, &o, "fleet_id", s->fleet_id) ||
	    put_tag(buf, len, &o, "segment", s->segment) ||
	    put_tag(buf, len, &o, "site", s->site) ||
	    put_tag(buf, len, &o, "vehicle_id", s->vehicle_id))
		return -1;
	n = snprintf(buf + o, len - o, " soc=%s,max_power_kw=%s,available=%s,power_kw=%s %" PRId64,
	             soc, maxp, s->available ? "true" : "false", pw, s->ts_ms);
	if (n < 0 || (size_t)n >= len - o)
		return -1;
	return (int)(o + (size_t)n);
}

/* --- queue ------------------------------------------------------------------ */

/* Caller holds mu. */
static void pop_front(struct vgw_influx *w)
{
	free(w->ring[w->head]);
	w->ring[w->head] = NULL;
	w->head = (w->head + 1) % w->cap;
	w->head_seq++;
	w->count--;
}

void vgw_influx_add(struct vgw_influx *w, const struct vgw_state *states, size_t n)
{
	char line[POINT_MAX];
	size_t dropped = 0, added = 0;

	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < n; i++) {
		int len = vgw_influx_line(&states[i], line, sizeof(line));
		char *copy;
		if (len < 0 || !(copy = malloc((size_t)len + 1))) {
			dropped++;
			continue;
		}
		memcpy(copy, line, (size_t)len + 1);
		if (w->count == w->cap) {
			pop_front(w);
			dropped++;
		}
		w->ring[(w->head + w->count) % w->cap] = copy;
		w->count++;
		added++;
	}
	size_t count = w->count;
	if (added && (count >= w->batch_size))
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
	if (dropped)
		v2g_counter_add(w->m_dropped, NULL, (double)dropped);
	v2g_gauge_set(w->m_queue, NULL, (double)count);
}

size_t vgw_influx_queued(struct vgw_influx *w)
{
	pthread_mutex_lock(&w->mu);
	size_t n = w->count;
	pthread_mutex_unlock(&w->mu);
	return n;
}

/* --- HTTP --------------------------------------------------------------------- */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

/* POSTs body to url; returns the HTTP status or -1 on a transport error. */
static long http_post(CURL *c, const char *url, const char *body, size_t len, long timeout_ms,
                      char *errbuf)
{
	long status = -1;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	errbuf[0] = '\0';
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		if (!errbuf[0])
			snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static int create_database(struct vgw_influx *w, long timeout_ms)
{
	char errbuf[CURL_ERROR_SIZE];
	char q[512];
	char stmt[300];

	snprintf(stmt, sizeof(stmt), "CREATE DATABASE \"%s\"", w->database);
	char *enc = curl_easy_escape(w->curl, stmt, 0);
	if (!enc)
		return -1;
	snprintf(q, sizeof(q), "q=%s", enc);
	curl_free(enc);
	long st = http_post(w->curl, w->query_url, q, strlen(q), timeout_ms, errbuf);
	if (st != 200) {
		v2g_debug("GW-INFLUX-CREATE-DB", "CREATE DATABASE failed: %s",
		          st < 0 ? errbuf : "unexpected status");
		return -1;
	}
	v2g_info("GW-INFLUX-DB", "database \"%s\" ready at %s", w->database, w->url);
	return 0;
}

static enum write_result write_body(struct vgw_influx *w, size_t len, long timeout_ms, char *why,
                                    size_t whylen)
{
	char errbuf[CURL_ERROR_SIZE];
	if (!w->db_ready) {
		if (create_database(w, timeout_ms) != 0) {
			snprintf(why, whylen, "cannot create database \"%s\"", w->database);
			return WRITE_DOWN;
		}
		w->db_ready = 1;
	}
	long st = http_post(w->curl, w->write_url, w->body, len, timeout_ms, errbuf);
	if (st == 204)
		return WRITE_OK;
	if (st < 0) {
		snprintf(why, whylen, "%s", errbuf);
		return WRITE_DOWN;
	}
	snprintf(why, whylen, "HTTP %ld", st);
	if (st == 404) {
		w->db_ready = 0; /* dropped behind our back: create again */
		return WRITE_NO_DB;
	}
	if (st == 400)
		return WRITE_REJECTED;
	return WRITE_DOWN;
}

/* --- writer thread ---------------------------------------------------------- */

static void cond_wait_until(struct vgw_influx *w, int64_t mono_deadline_ms)
{
	v2g_cond_wait_ms(&w->cond, &w->mu, mono_deadline_ms - v2g_mono_ms());
}

/* Copies the first k queued lines into w->body, newline-separated. Caller
 * holds mu. Returns the body length. */
static size_t build_body(struct vgw_influx *w, size_t k)
{
	size_t need = 0;
	for (size_t i = 0; i < k; i++)
		need += strlen(w->ring[(w->head + i) % w->cap]) + 1;
	if (need + 1 > w->body_cap) {
		char *nb = realloc(w->body, need + 1);
		if (!nb)
			return 0;
		w->body = nb;
		w->body_cap = need + 1;
	}
	size_t o = 0;
	for (size_t i = 0; i < k; i++) {
		const char *l = w->ring[(w->head + i) % w->cap];
		size_t n = strlen(l);
		memcpy(w->body + o, l, n);
		o += n;
		w->body[o++] = '\n';
	}
	w->body[o] = '\0';
	return o;
}

static void *writer_main(void *arg)
{
	struct vgw_influx *w = arg;
	int64_t next_flush = v2g_mono_ms() + w->flush_ms;
	int64_t retry_at = 0;
	int backoff = BACKOFF_MIN_MS;
	char why[CURL_ERROR_SIZE + 32];

	pthread_mutex_lock(&w->mu);
	for (;;) {
		int64_t now = v2g_mono_ms();
		if (w->stopping && (w->count == 0 || now >= w->stop_deadline))
			break;
		int due = w->count >= w->batch_size || (w->count > 0 && now >= next_flush) ||
		          (w->stopping && w->count > 0);
		if (!due || now < retry_at) {
			int64_t until = now < retry_at ? retry_at : next_flush;
			if (w->stopping && until > w->stop_deadline)
				until = w->stop_deadline;
			if (!due && w->count == 0 && !w->stopping)
				until = now + w->flush_ms;
			cond_wait_until(w, until);
			continue;
		}

		size_t k = w->count < w->batch_size ? w->count : w->batch_size;
		uint64_t first = w->head_seq;
		size_t len = build_body(w, k);
		long timeout = HTTP_TIMEOUT_MS;
		if (w->stopping) {
			int64_t left = w->stop_deadline - now;
			timeout =
			        left < 100 ? 100 : (left < HTTP_TIMEOUT_MS ? (long)left : timeout);
		}
		pthread_mutex_unlock(&w->mu);

		enum write_result r =
		        len ? write_body(w, len, timeout, why, sizeof(why)) : WRITE_DOWN;
		if (!len)
			snprintf(why, sizeof(why), "out of memory");

		pthread_mutex_lock(&w->mu);
		now = v2g_mono_ms();
		if (r == WRITE_OK || r == WRITE_REJECTED) {
			/* Points dropped by the queue meanwhile are already gone. */
			while (w->count > 0 && w->head_seq < first + k)
				pop_front(w);
			next_flush = now + w->flush_ms;
			retry_at = 0;
			backoff = BACKOFF_MIN_MS;
		}
		size_t count = w->count;
		pthread_mutex_unlock(&w->mu);

		v2g_gauge_set(w->m_queue, NULL, (double)count);
		if (r == WRITE_OK) {
			v2g_counter_add(w->m_written, NULL, (double)k);
			if (w->down) {
				w->down = 0;
				v2g_info("GW-INFLUX-UP", "InfluxDB at %s is reachable again",
				         w->url);
			}
		} else if (r == WRITE_REJECTED) {
			v2g_counter_inc(w->m_failures, NULL);
			v2g_counter_add(w->m_dropped, NULL, (double)k);
			v2g_warn("GW-INFLUX-REJECTED",
			         "InfluxDB refused a batch of %zu points (%s)", k, why);
		} else {
			v2g_counter_inc(w->m_failures, NULL);
			if (r == WRITE_NO_DB) {
				/* Retry at once: the next attempt creates the database. */
				v2g_warn("GW-INFLUX-NO-DB", "database \"%s\" missing, creating it",
				         w->database);
			} else if (!w->down) {
				w->down = 1;
				v2g_warn("GW-INFLUX-DOWN",
				         "InfluxDB at %s unreachable (%s); buffering up to %zu "
				         "points",
				         w->url, why, w->cap);
			}
		}

		pthread_mutex_lock(&w->mu);
		if (r == WRITE_DOWN) {
			retry_at = v2g_mono_ms() + backoff;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* --- lifecycle -------------------------------------------------------------- */

static char *join_url(const char *base, const char *path)
{
	size_t n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	size_t len = n + strlen(path) + 1;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%.*s%s", (int)n, base, path);
	return s;
}

static void influx_free(struct vgw_influx *w)
{
	if (!w)
		return;
	if (w->ring) {
		while (w->count > 0)
			pop_front(w);
		free(w->ring);
	}
	if (w->curl)
		curl_easy_cleanup(w->curl);
	free(w->body);
	free(w->url);
	free(w->database);
	free(w->write_url);
	free(w->query_url);
	free(w->ping_url);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w);
}

int vgw_influx_start(struct vgw_influx **out, const struct vgw_influx_opts *o)
{
	struct vgw_influx *w = calloc(1, sizeof(*w));
	char path[512];

	if (!w)
		return V2G_ERR_NOMEM;
	pthread_mutex_init(&w->mu, NULL);
	v2g_cond_init_mono(&w->cond);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	w->curl = curl_easy_init();
	w->url = strdup(o->url);
	w->database = strdup(o->database);
	w->batch_size = (size_t)o->batch_size;
	w->flush_ms = o->flush_ms;
	w->cap = (size_t)o->queue_max;
	w->ring = calloc(w->cap, sizeof(char *));
	if (!w->curl || !w->url || !w->database || !w->ring)
		goto nomem;
	char *db = curl_easy_escape(w->curl, o->database, 0);
	if (!db)
		goto nomem;
	snprintf(path, sizeof(path), "/write?db=%s&precision=ms", db);
	curl_free(db);
	w->write_url = join_url(o->url, path);
	w->query_url = join_url(o->url, "/query");
	w->ping_url = join_url(o->url, "/ping");
	if (!w->write_url || !w->query_url || !w->ping_url)
		goto nomem;

	w->m_written = v2g_counter("influx_points_written_total",
	                           "Telemetry points written to InfluxDB", NULL);
	w->m_failures =
	        v2g_counter("influx_write_failures_total", "Failed InfluxDB write requests", NULL);
	w->m_dropped = v2g_counter("influx_points_dropped_total",
	                           "Telemetry points dropped (queue full or refused)", NULL);
	w->m_queue =
	        v2g_gauge("influx_queue_points", "Telemetry points waiting for InfluxDB", NULL);

	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		influx_free(w);
		return V2G_ERR_IO;
	}
	w->thread_started = 1;
	*out = w;
	return 0;
nomem:
	influx_free(w);
	return V2G_ERR_NOMEM;
}

void vgw_influx_stop(struct vgw_influx *w, int timeout_ms)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	w->stop_deadline = v2g_mono_ms() + timeout_ms;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	if (w->count > 0) {
		v2g_counter_add(w->m_dropped, NULL, (double)w->count);
		v2g_warn("GW-INFLUX-LOST", "%zu points not written to InfluxDB at shutdown",
		         w->count);
	}
	v2g_gauge_set(w->m_queue, NULL, 0);
	influx_free(w);
}

int vgw_influx_probe(void *arg, char *detail, size_t len)
{
	struct vgw_influx *w = arg;
	char errbuf[CURL_ERROR_SIZE];
	long st = -1;
	CURL *c = curl_easy_init();

	if (!c) {
		snprintf(detail, len, "out of memory");
		return -1;
	}
	curl_easy_setopt(c, CURLOPT_URL, w->ping_url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	errbuf[0] = '\0';
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(c);

	if (rc != CURLE_OK) {
		snprintf(detail, len, "%s: %s", w->ping_url,
		         errbuf[0] ? errbuf : curl_easy_strerror(rc));
		return -1;
	}
	if (st != 204) {
		snprintf(detail, len, "%s answered HTTP %ld", w->ping_url, st);
		return -1;
	}
	size_t q = vgw_influx_queued(w);
	snprintf(detail, len, "ok, %zu points queued", q);
	return 0;
}
