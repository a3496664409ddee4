/* v2g-site-sim: plays a charging site -- its meter and its AC and DC chargers
 * -- over MQTT from a scenario file (scenario.h, README.md).
 *
 * Threads: paho's callbacks only copy what arrives into an inbox and signal;
 * the main thread is the worker that owns the model, parses setpoints,
 * advances simulated time and publishes the meters. */
#include <MQTTAsync.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scenario.h"
#include "site.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/sync.h"
#include "v2g/timeutil.h"

#define STEP_MAX_MS        100 /* model resolution, wall clock */
#define RECONNECT_MAX_MS   10000
#define DISCONNECT_WAIT_MS 2000
#define BAD_LOG_EVERY      100

static volatile sig_atomic_t stop_flag;

enum ev_type { EV_CONNECTED, EV_CONNECT_FAILED, EV_LOST, EV_SUBSCRIBE_FAILED, EV_MESSAGE };

/* Filled by a paho callback, consumed and freed by the worker. */
struct event {
	struct event *next;
	enum ev_type type;
	int code;
	char *topic;
	char *payload;
	size_t len;
};

struct sim {
	const char *broker;
	double duration_s, speed;
	struct site_model m;
	MQTTAsync cli;
	char sub_topic[160];

	pthread_mutex_t mu; /* guards the inbox */
	pthread_cond_t cv;
	struct event *head, *tail;
	atomic_ulong cb_dropped;

	int connected, connecting;
	int64_t next_attempt_ms;
	int backoff_ms;
	unsigned long published, pub_failed, setpoints, ignored, bad, unknown;
};

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* ------------------------------------------------------ paho callbacks */

static void inbox_push(struct sim *s, struct event *e)
{
	pthread_mutex_lock(&s->mu);
	if (s->tail)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void post(struct sim *s, enum ev_type type, int code)
{
	struct event *e = calloc(1, sizeof(*e));

	if (!e) {
		atomic_fetch_add(&s->cb_dropped, 1);
		return;
	}
	e->type = type;
	e->code = code;
	inbox_push(s, e);
}

static void on_connected(void *ctx, char *cause)
{
	(void)cause;
	post(ctx, EV_CONNECTED, 0);
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *resp)
{
	post(ctx, EV_CONNECT_FAILED, resp ? resp->code : 0);
}

static void on_connection_lost(void *ctx, char *cause)
{
	(void)cause;
	post(ctx, EV_LOST, 0);
}

static void on_subscribe_failure(void *ctx, MQTTAsync_failureData *resp)
{
	post(ctx, EV_SUBSCRIBE_FAILED, resp ? resp->code : 0);
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct sim *s = ctx;
	struct event *e = calloc(1, sizeof(*e));
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	size_t plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;

	if (e && (e->topic = malloc(tlen + 1)) && (e->payload = malloc(plen + 1))) {
		memcpy(e->topic, topic, tlen);
		e->topic[tlen] = '\0';
		memcpy(e->payload, msg->payload, plen);
		e->payload[plen] = '\0';
		e->len = plen;
		e->type = EV_MESSAGE;
		inbox_push(s, e);
	} else {
		if (e)
			free(e->topic);
		free(e);
		atomic_fetch_add(&s->cb_dropped, 1);
	}
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

/* ------------------------------------------------------------ worker */

static void mqtt_connect(struct sim *s, int64_t now)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	int rc;

	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.connectTimeout = 5;
	co.automaticReconnect = 1;
	co.minRetryInterval = 1;
	co.maxRetryInterval = RECONNECT_MAX_MS / 1000;
	co.onFailure = on_connect_failure;
	co.context = s;
	rc = MQTTAsync_connect(s->cli, &co);
	if (rc == MQTTASYNC_SUCCESS) {
		s->connecting = 1;
		return;
	}
	v2g_warn("SITESIM-CONNECT-FAILED", "MQTTAsync_connect refused (%d), retry in %d ms", rc,
	         s->backoff_ms);
	s->next_attempt_ms = now + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : s->backoff_ms * 2;
}

static void mqtt_subscribe(struct sim *s)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	ro.onFailure = on_subscribe_failure;
	ro.context = s;
	rc = MQTTAsync_subscribe(s->cli, s->sub_topic, 1, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		v2g_warn("SITESIM-SUBSCRIBE-FAILED", "subscribe %s refused (%d)", s->sub_topic, rc);
}

/* site/{site}/station/{station}/setpoint -> station index, or -1. */
static int station_of(const struct sim *s, const char *topic)
{
	size_t pre = strlen(s->sub_topic) - strlen("+/setpoint");
	const char *id = topic + pre, *slash;
	char buf[SCN_ID_MAX];

	if (strncmp(topic, s->sub_topic, pre) != 0 || !(slash = strchr(id, '/')) ||
	    strcmp(slash, "/setpoint") != 0 || (size_t)(slash - id) >= sizeof(buf))
		return -1;
	memcpy(buf, id, (size_t)(slash - id));
	buf[slash - id] = '\0';
	return site_model_find(&s->m, buf);
}

static void handle_setpoint(struct sim *s, const struct event *e)
{
	struct site_setpoint sp;
	const char *why = "";
	int i = station_of(s, e->topic);
	double limit;

	if (i < 0) {
		if (s->unknown++ % BAD_LOG_EVERY == 0)
			v2g_warn("SITESIM-UNKNOWN-STATION",
			         "setpoint on %s: no such station (%lu so far)", e->topic,
			         s->unknown);
		return;
	}
	if (site_setpoint_parse(e->payload, e->len, &sp, &why) != 0) {
		if (s->bad++ % BAD_LOG_EVERY == 0)
			v2g_warn("SITESIM-BAD-SETPOINT", "setpoint for %s refused: %s (%lu bad)",
			         s->m.st[i].cfg.id, why, s->bad);
		return;
	}
	limit = site_setpoint_limit(&s->m, (size_t)i, &sp);
	if (limit < 0) {
		s->ignored++;
		v2g_debug("SITESIM-SETPOINT-IGNORED", "%s: setpoint names none of its phases",
		          s->m.st[i].cfg.id);
		return;
	}
	if (site_model_setpoint(&s->m, (size_t)i, limit) != 0) {
		s->ignored++;
		v2g_debug("SITESIM-SETPOINT-IGNORED", "%s is silent: setpoint %.2f kW dropped",
		          s->m.st[i].cfg.id, limit);
		return;
	}
	s->setpoints++;
	v2g_debug("SITESIM-SETPOINT", "%s: limit %.2f kW in %.1f s", s->m.st[i].cfg.id, limit,
	          s->m.sc.response_delay_s);
}

static void handle(struct sim *s, const struct event *e, int64_t now)
{
	switch (e->type) {
	case EV_CONNECTED:
		s->connected = 1;
		s->connecting = 0;
		s->backoff_ms = 200;
		v2g_info("SITESIM-CONNECTED", "connected to %s, site %s, %zu stations", s->broker,
		         s->m.sc.site, s->m.n);
		mqtt_subscribe(s);
		break;
	case EV_CONNECT_FAILED:
		s->connecting = 0;
		v2g_warn("SITESIM-CONNECT-FAILED", "cannot connect to %s (%d), retry in %d ms",
		         s->broker, e->code, s->backoff_ms);
		s->next_attempt_ms = now + s->backoff_ms;
		s->backoff_ms =
		        s->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : s->backoff_ms * 2;
		break;
	case EV_LOST:
		s->connected = 0;
		v2g_warn("SITESIM-CONNECTION-LOST", "lost %s; reconnecting", s->broker);
		break;
	case EV_SUBSCRIBE_FAILED:
		v2g_warn("SITESIM-SUBSCRIBE-FAILED", "subscribe %s failed (%d)", s->sub_topic,
		         e->code);
		break;
	case EV_MESSAGE: handle_setpoint(s, e); break;
	}
}

static void publish(struct sim *s, const char *topic, char *payload)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	int rc;

	if (!payload) {
		s->pub_failed++;
		return;
	}
	msg.payload = payload;
	msg.payloadlen = (int)strlen(payload);
	msg.qos = 0; /* a meter reading is superseded by the next one */
	rc = MQTTAsync_sendMessage(s->cli, topic, &msg, NULL); /* paho copies */
	free(payload);
	if (rc == MQTTASYNC_SUCCESS)
		s->published++;
	else
		s->pub_failed++;
}

static void publish_meters(struct sim *s)
{
	char topic[256];
	size_t i;

	for (i = 0; i < s->m.n; i++) {
		if (s->m.st[i].silent)
			continue;
		snprintf(topic, sizeof(topic), "site/%s/station/%s/meter", s->m.sc.site,
		         s->m.st[i].cfg.id);
		publish(s, topic, site_station_meter_json(&s->m, i));
	}
	snprintf(topic, sizeof(topic), "site/%s/meter", s->m.sc.site);
	publish(s, topic, site_meter_json(&s->m));
}

static int run(struct sim *s)
{
	int64_t t0 = v2g_mono_ms(), next_pub = t0, now;
	int64_t interval = s->m.sc.publish_interval_ms;
	int64_t step = interval < STEP_MAX_MS ? interval : STEP_MAX_MS;

	s->backoff_ms = 200;
	mqtt_connect(s, t0);
	while (!stop_flag) {
		struct event *e;
		int64_t wait;

		now = v2g_mono_ms();
		if (s->duration_s > 0 && (double)(now - t0) >= s->duration_s * 1000.0)
			break;
		pthread_mutex_lock(&s->mu);
		wait = next_pub - now < step ? next_pub - now : step;
		if (!s->head && wait > 0)
			v2g_cond_wait_ms(&s->cv, &s->mu, wait);
		e = s->head;
		s->head = s->tail = NULL;
		pthread_mutex_unlock(&s->mu);

		now = v2g_mono_ms();
		site_model_step(&s->m, (double)(now - t0) / 1000.0 * s->speed);
		while (e) {
			struct event *next = e->next;
			handle(s, e, now);
			free(e->topic);
			free(e->payload);
			free(e);
			e = next;
		}
		if (!s->connected && !s->connecting && now >= s->next_attempt_ms)
			mqtt_connect(s, now);
		if (now >= next_pub) {
			if (s->connected)
				publish_meters(s);
			next_pub += interval;
			if (next_pub <= now) /* late (stopped, slow): no burst */
				next_pub = now + interval;
		}
	}
	v2g_info("SITESIM-STOP",
	         "t=%.1fs site %s %.1f kW; %lu published, %lu failed, %lu setpoints, %lu ignored, "
	         "%lu bad, %lu unknown, %lu dropped",
	         s->m.now_s, s->m.sc.site, site_model_power_kw(&s->m), s->published, s->pub_failed,
	         s->setpoints, s->ignored, s->bad, s->unknown, atomic_load(&s->cb_dropped));
	return 0;
}

/* ------------------------------------------------------------ start-up */

static void usage(FILE *out)
{
	fputs("usage: v2g-site-sim --scenario FILE [options]\n"
	      "  --broker URI      MQTT broker (tcp://127.0.0.1:1883)\n"
	      "  --scenario FILE   the site, its stations and timeline (README.md)\n"
	      "  --duration S      exit after S wall-clock seconds; 0 = until signalled (0)\n"
	      "  --speed X         simulated seconds per wall-clock second (1)\n"
	      "  --log-level L     debug|info|warn|error (info)\n"
	      "  --log-json        JSON log lines\n"
	      "  --check           load the scenario, print a summary and exit\n",
	      out);
}

static int parse_double(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "v2g-site-sim: --%s: '%s' is not a number in [%g, %g]\n", name, s,
		        lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

enum { O_BROKER = 256, O_SCENARIO, O_DURATION, O_SPEED, O_LEVEL, O_JSON, O_CHECK, O_HELP };

static const struct option long_opts[] = {
	{ "broker", required_argument, NULL, O_BROKER },
	{ "scenario", required_argument, NULL, O_SCENARIO },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "speed", required_argument, NULL, O_SPEED },
	{ "log-level", required_argument, NULL, O_LEVEL },
	{ "log-json", no_argument, NULL, O_JSON },
	{ "check", no_argument, NULL, O_CHECK },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

static void summary(const struct site_model *m)
{
	double demand = m->base_load_kw, maxp = m->base_load_kw;
	size_t i;

	for (i = 0; i < m->n; i++) {
		demand += site_station_target(m, i);
		maxp += m->st[i].cfg.max_kw;
	}
	v2g_info("SITESIM-SCENARIO",
	         "site %s: %zu stations, base load %.1f kW, demand %.1f kW (max %.1f kW), "
	         "%zu events, response delay %.1f s, ramp %.1f kW/s",
	         m->sc.site, m->n, m->base_load_kw, demand, maxp, m->sc.nevents,
	         m->sc.response_delay_s, m->sc.ramp_kw_per_s);
}

int main(int argc, char **argv)
{
	struct sim s;
	struct scn_scenario sc;
	enum v2g_log_level level = V2G_LOG_INFO;
	const char *scenario = NULL;
	char err[512];
	int c, json = 0, check = 0, rc = 1;
	struct sigaction sa;
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
	MQTTAsync_disconnectOptions dop = MQTTAsync_disconnectOptions_initializer;
	char client_id[64];

	memset(&s, 0, sizeof(s));
	s.broker = "tcp://127.0.0.1:1883";
	s.speed = 1;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case O_BROKER: s.broker = optarg; break;
		case O_SCENARIO: scenario = optarg; break;
		case O_DURATION:
			if (parse_double("duration", optarg, 0, 1e9, &s.duration_s))
				return 2;
			break;
		case O_SPEED:
			if (parse_double("speed", optarg, 0.001, 10000, &s.speed))
				return 2;
			break;
		case O_LEVEL:
			if (v2g_log_level_parse(optarg, &level) != 0) {
				fprintf(stderr,
				        "v2g-site-sim: --log-level: '%s' is not "
				        "debug|info|warn|error\n",
				        optarg);
				return 2;
			}
			break;
		case O_JSON: json = 1; break;
		case O_CHECK: check = 1; break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !scenario) {
		usage(stderr);
		return 2;
	}
	v2g_log_init("site-sim", level, json);
	if (scn_scenario_load(scenario, &sc, err, sizeof(err)) != 0) {
		v2g_error("SITESIM-BAD-SCENARIO", "%s: %s", scenario, err);
		return 2;
	}
	if (site_model_init(&s.m, &sc) != 0) {
		scn_scenario_fini(&sc);
		v2g_error("SITESIM-NOMEM", "out of memory");
		return 1;
	}
	summary(&s.m);
	if (check) {
		site_model_fini(&s.m);
		return 0;
	}
	snprintf(s.sub_topic, sizeof(s.sub_topic), "site/%s/station/+/setpoint", s.m.sc.site);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	if (pthread_mutex_init(&s.mu, NULL) != 0)
		goto out_model;
	if (v2g_cond_init_mono(&s.cv) != 0)
		goto out_mutex;
	snprintf(client_id, sizeof(client_id), "v2g-site-sim-%d", (int)getpid());
	cro.sendWhileDisconnected = 0;
	cro.MQTTVersion = MQTTVERSION_3_1_1;
	if (MQTTAsync_createWithOptions(&s.cli, s.broker, client_id, MQTTCLIENT_PERSISTENCE_NONE,
	                                NULL, &cro) != MQTTASYNC_SUCCESS) {
		v2g_error("SITESIM-BAD-BROKER", "cannot create an MQTT client for %s", s.broker);
		rc = 2;
		goto out_cond;
	}
	MQTTAsync_setCallbacks(s.cli, &s, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(s.cli, &s, on_connected);

	rc = run(&s);

	dop.timeout = DISCONNECT_WAIT_MS;
	if (MQTTAsync_isConnected(s.cli))
		MQTTAsync_disconnect(s.cli, &dop);
	/* Give the DISCONNECT a moment to leave: the call above is async. */
	for (c = 0; c < 20 && MQTTAsync_isConnected(s.cli); c++)
		usleep(50000);
	MQTTAsync_destroy(&s.cli);
	while (s.head) {
		struct event *e = s.head;
		s.head = e->next;
		free(e->topic);
		free(e->payload);
		free(e);
	}
out_cond:
	pthread_cond_destroy(&s.cv);
out_mutex:
	pthread_mutex_destroy(&s.mu);
out_model:
	site_model_fini(&s.m);
	return rc;
}
