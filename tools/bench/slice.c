/* POST-to-last-command measurement; see slice.h. */
#include "slice.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mq.h"

#define CMD_PREFIX "vehicle/"
#define CMD_SUFFIX "/command"
#define POLL_US    2000

/* One received command, timestamped on paho's thread, parsed later. */
struct rec {
	struct rec *next;
	double t;
	char *vehicle;
	char *payload;
	size_t len;
};

struct inbox {
	pthread_mutex_t mu;
	struct rec *head, *tail;
	unsigned long lost; /* out of memory in the callback */
};

static int on_command(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct inbox *in = ctx;
	double t = bench_now();
	size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	size_t pl = strlen(CMD_PREFIX), sl = strlen(CMD_SUFFIX);
	struct rec *r = NULL;

	if (tl > pl + sl && (r = calloc(1, sizeof(*r))) &&
	    (r->vehicle = strndup(topic + pl, tl - pl - sl)) &&
	    (r->payload = malloc((size_t)msg->payloadlen + 1))) {
		memcpy(r->payload, msg->payload, (size_t)msg->payloadlen);
		r->payload[msg->payloadlen] = '\0';
		r->len = (size_t)msg->payloadlen;
		r->t = t;
		pthread_mutex_lock(&in->mu);
		if (in->tail)
			in->tail->next = r;
		else
			in->head = r;
		in->tail = r;
		pthread_mutex_unlock(&in->mu);
	} else if (r) {
		free(r->vehicle);
		free(r);
		pthread_mutex_lock(&in->mu);
		in->lost++;
		pthread_mutex_unlock(&in->mu);
	}
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static struct rec *inbox_take(struct inbox *in)
{
	struct rec *r;

	pthread_mutex_lock(&in->mu);
	r = in->head;
	in->head = in->tail = NULL;
	pthread_mutex_unlock(&in->mu);
	return r;
}

static void recs_free(struct rec *r)
{
	struct rec *next;

	for (; r; r = next) {
		next = r->next;
		free(r->vehicle);
		free(r->payload);
		free(r);
	}
}

/* The state of one dispatch round being counted. */
struct round {
	const char *dispatch_id;
	json_t *seen; /* vehicle id -> true */
	int count;
	double t_last_new; /* receipt of the last new vehicle's command */
};

/* Counts every pending record that commands a new vehicle of this dispatch
 * with power_kw > 0; everything else (other dispatches, releases) is
 * dropped. With rd == NULL it just drains. */
static void inbox_count(struct inbox *in, struct round *rd)
{
	struct rec *list = inbox_take(in), *r;

	for (r = list; r && rd; r = r->next) {
		json_t *o = json_loadb(r->payload, r->len, 0, NULL);
		const char *d = json_string_value(json_object_get(o, "dispatch_id"));
		json_t *p = json_object_get(o, "power_kw");

		if (d && strcmp(d, rd->dispatch_id) == 0 && json_is_number(p) &&
		    json_number_value(p) > 0 && !json_object_get(rd->seen, r->vehicle)) {
			json_object_set_new(rd->seen, r->vehicle, json_true());
			rd->count++;
			if (r->t > rd->t_last_new)
				rd->t_last_new = r->t;
		}
		json_decref(o);
	}
	recs_free(list);
}

struct buf {
	char *p;
	size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct buf *b = ctx;
	size_t n = size * nmemb;
	char *np;

	if (b->len + n > 1 << 20 || !(np = realloc(b->p, b->len + n + 1)))
		return 0;
	memcpy(np + b->len, data, n);
	b->p = np;
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* POSTs the signal; on 2xx with a dispatch_id copies it into dispatch_id.
 * Returns 0 or -1 after printing why. */
static int post_signal(CURL *h, const struct bench_slice_opts *o, const char *url,
                       struct curl_slist *hdrs, char *dispatch_id, size_t dlen)
{
	char body[256];
	struct buf resp = { NULL, 0 };
	long code = 0;
	CURLcode cc;
	json_t *j = NULL;
	const char *d;
	int rc = -1;

	snprintf(body, sizeof(body), "{\"type\":\"%s\",\"power_kw\":%.3f,\"duration_min\":%d}",
	         o->signal_type, o->power_kw, o->duration_min);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		fprintf(stderr, "v2g-bench-slice: POST %s failed: %s\n", url,
		        curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		fprintf(stderr,
		        "v2g-bench-slice: the API refused the signal: POST %s answered HTTP %ld: "
		        "%s\n",
		        url, code, resp.p ? resp.p : "");
		goto out;
	}
	j = resp.p ? json_loads(resp.p, 0, NULL) : NULL;
	d = json_string_value(json_object_get(j, "dispatch_id"));
	if (!d || !*d || strlen(d) >= dlen) {
		fprintf(stderr,
		        "v2g-bench-slice: POST %s answered HTTP %ld without a dispatch_id: %s\n",
		        url, code, resp.p ? resp.p : "");
		goto out;
	}
	memcpy(dispatch_id, d, strlen(d) + 1);
	rc = 0;
out:
	json_decref(j);
	free(resp.p);
	return rc;
}

/* Drains the inbox until `until` (monotonic seconds). */
static void drain_until(struct inbox *in, double until)
{
	while (bench_now() < until) {
		inbox_count(in, NULL);
		usleep(20000);
	}
	inbox_count(in, NULL);
}

int bench_slice_run(const struct bench_slice_opts *o, double *ms, int *commands)
{
	struct inbox in;
	struct bench_mq sub;
	struct curl_slist *hdrs = NULL, *tmp;
	char url[1024], auth[1024], cid[64], dispatch_id[256];
	size_t alen = strlen(o->api);
	CURL *h = NULL;
	int i, rc = -1;

	memset(&in, 0, sizeof(in));
	pthread_mutex_init(&in.mu, NULL);
	while (alen && o->api[alen - 1] == '/')
		alen--;
	snprintf(url, sizeof(url), "%.*s/api/signals", (int)alen, o->api);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);

	snprintf(cid, sizeof(cid), "v2g-bench-slice-%d", (int)getpid());
	if (bench_mq_open(&sub, o->mqtt_uri, cid, on_command, &in, 5000) != 0)
		goto out_inbox;
	if (bench_mq_subscribe(&sub, CMD_PREFIX "+" CMD_SUFFIX, 1, 5000) != 0)
		goto out_sub;
	h = curl_easy_init();
	hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	tmp = hdrs ? curl_slist_append(hdrs, auth) : NULL;
	if (!h || !tmp) {
		fprintf(stderr, "v2g-bench-slice: cannot set up libcurl\n");
		goto out_curl;
	}
	hdrs = tmp;

	for (i = 0; i < o->repeat; i++) {
		struct round rd = { dispatch_id, json_object(), 0, 0.0 };
		double t0, idle_from;

		if (!rd.seen) {
			fprintf(stderr, "v2g-bench-slice: out of memory\n");
			goto out_curl;
		}
		inbox_count(&in, NULL); /* leftovers of earlier dispatches */
		t0 = bench_now();
		if (post_signal(h, o, url, hdrs, dispatch_id, sizeof(dispatch_id)) != 0) {
			json_decref(rd.seen);
			goto out_curl;
		}
		for (;;) {
			double now;
			usleep(POLL_US);
			inbox_count(&in, &rd);
			now = bench_now();
			idle_from = rd.count ? rd.t_last_new : t0;
			if (rd.count >= o->expect)
				break;
			if (rd.count && now - idle_from > o->idle_s)
				break;
			if (!rd.count && now - t0 > o->first_timeout_s)
				break;
		}
		json_decref(rd.seen);
		if (!rd.count) {
			fprintf(stderr,
			        "v2g-bench-slice: no command of dispatch %s arrived on %s within "
			        "%.0f s "
			        "(is the vehicle-gateway on this broker, and does the fleet have "
			        "available vehicles "
			        "not busy with an earlier dispatch?)\n",
			        dispatch_id, o->mqtt_uri, o->first_timeout_s);
			goto out_curl;
		}
		ms[i] = (rd.t_last_new - t0) * 1000.0;
		commands[i] = rd.count;
		fprintf(stderr,
		        "slice run %d/%d: dispatch %s, %d vehicles commanded, last command after "
		        "%.1f ms%s\n",
		        i + 1, o->repeat, dispatch_id, rd.count, ms[i],
		        rd.count < o->expect ? " (fewer than --expect)" : "");
		if (i + 1 < o->repeat)
			drain_until(&in, rd.t_last_new + 1.0 + o->ack_timeout_s);
	}
	rc = 0;
out_curl:
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
out_sub:
	bench_mq_close(&sub);
out_inbox:
	recs_free(inbox_take(&in));
	if (in.lost)
		fprintf(stderr, "v2g-bench-slice: %lu commands lost to memory exhaustion\n",
		        in.lost);
	pthread_mutex_destroy(&in.mu);
	return rc;
}
