/* Gateway wiring: MQTT callbacks feed three queues (states, meters, acks);
 * worker threads drain them to the bus and InfluxDB; the command thread
 * publishes CommandBatches (and reports their outcome) and SetpointBatches. */
#include "gateway.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "influx.h"
#include "mqtt_edge.h"
#include "payload.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"
#include "v2g/sync.h"

#define STATES_EARLY_FLUSH 5000  /* publish sooner past this many states */
#define STATES_MAX         50000 /* pending states beyond are dropped */
#define METERS_EARLY_FLUSH 5000  /* station + site meters */
#define METERS_MAX         50000 /* of each kind */
#define SETPOINT_MAX_BYTES 256
#define ACKS_FLUSH_N       1000
#define ACKS_FLUSH_MS      2
#define ACKS_MAX           100000
#define DRAIN_PUBLISH_MS   2000 /* wait for in-flight command publishes */
#define MQTT_CLOSE_MS      3000
#define INFLUX_FLUSH_MS    5000
#define RECV_POLL_MS       200
#define LOG_EVERY_MS       1000

/* One CommandBatch being published; the paho context of all its messages.
 * Reported once: when the last confirmation arrives, or at once when the
 * connection is lost (paho only fails in-flight messages at the next
 * connect). Freed by whoever drops the last reference (the loop holds one). */
struct cmd_batch {
	struct vgw_mqtt_pending pending; /* first: paho hands this pointer back */
	struct vgw_gateway *g;
	char *dispatch_id;
	uint32_t total;
	atomic_uint refs;
	atomic_uint published;
	atomic_uint failed;
	atomic_int reported;
	_Atomic int64_t last_ms;
	int64_t start_mono;
	int expired;                   /* too late to publish: every command failed, logged apart */
	struct cmd_batch *prev, *next; /* live list, under g->bmu */
};

struct report {
	char *dispatch_id;
	uint32_t published, failed;
	int64_t last_ms;
};

/* Meters waiting for the next MeterBatch (swapped whole with a spare). */
struct meter_queue {
	struct vgw_station_meter *st;
	size_t nst, cap_st;
	struct vgw_site_meter *si;
	size_t nsi, cap_si;
};

/* The paho context of every setpoint publish: outcomes are only counted. */
struct setpoint_ctx {
	struct vgw_mqtt_pending pending; /* first: paho hands this pointer back */
	struct vgw_gateway *g;
};

/* A "1 line per second" log limiter. */
struct rate_log {
	pthread_mutex_t mu;
	int64_t last_ms;
	unsigned suppressed;
};

struct vgw_gateway {
	const struct vgw_settings *cfg;
	struct v2g_health *health;
	int bus_timeout_ms;

	struct vgw_mqtt *mqtt;
	struct vgw_influx *influx;
	nng_socket pub, pull, push;
	int pub_open, pull_open, push_open;
	struct v2g_bus_server *rep;
	struct v2g_bus_client *dispatch_peer;

	/* fresh states: filled by paho, drained by the telemetry thread */
	pthread_mutex_t tmu;
	pthread_cond_t tcond;
	struct vgw_state *states, *spare;
	size_t nstates, cap_states, cap_spare;
	int tstop;
	pthread_t tthread;
	int tthread_on;
	/* protobuf scratch of the telemetry thread */
	V2g__V1__VehicleState *pb_states;
	V2g__V1__VehicleState **pb_ptrs;
	size_t pb_cap, pb_ptrs_cap;
	int64_t next_pull_mono;
	/* fresh meters, same thread and window as states (under tmu) */
	struct meter_queue meters, meters_spare;

	/* outbox: acks (from paho) and publish reports, to bus.dispatch_in */
	pthread_mutex_t omu;
	pthread_cond_t ocond;
	struct vgw_ack *acks, *acks_spare;
	size_t nacks, cap_acks, cap_acks_spare;
	int64_t first_ack_mono;
	struct report *reports;
	size_t nreports, cap_reports;
	int ostop;
	pthread_t othread;
	int othread_on;

	/* commands */
	atomic_int cstop;
	pthread_t cthread;
	int cthread_on;
	pthread_mutex_t bmu;
	pthread_cond_t bcond;
	struct cmd_batch *live;
	struct setpoint_ctx setpoint_ctx;

	struct rate_log bad_payload_log, bus_fail_log, bad_command_log, ignored_field_log,
	        expired_log;

	struct v2g_metric *m_connected, *m_received, *m_rejected, *m_pub_ok, *m_pub_fail,
	        *m_tel_batches, *m_states_dropped, *m_acks_fwd, *m_acks_dropped, *m_bus_fail,
	        *m_cmd_batches, *m_cmd_seconds, *m_meter_batches, *m_meters_dropped,
	        *m_setpoints_ok, *m_setpoints_bad, *m_fields_ignored, *m_cmd_expired;
};

static void batches_lost(struct vgw_gateway *g);

/* --- small helpers ------------------------------------------------------------ */

static void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *mu, int64_t mono_ms)
{
	v2g_cond_wait_ms(c, mu, mono_ms - v2g_mono_ms());
}

/* Returns 1 if a line may be logged now, with *suppressed = lines skipped
 * since the last one. */
static int rate_log_ok(struct rate_log *r, unsigned *suppressed)
{
	int ok = 0;
	pthread_mutex_lock(&r->mu);
	int64_t now = v2g_mono_ms();
	if (r->last_ms == 0 || now - r->last_ms >= LOG_EVERY_MS) {
		*suppressed = r->suppressed;
		r->suppressed = 0;
		r->last_ms = now;
		ok = 1;
	} else {
		r->suppressed++;
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}

/* Grows *arr (elements of size sz) to hold at least need; 0 or -1. */
static int grow(void **arr, size_t *cap, size_t need, size_t sz)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	void *p = realloc(*arr, n * sz);
	if (!p)
		return -1;
	*arr = p;
	*cap = n;
	return 0;
}

static const char *kind_name(enum vgw_topic_kind k)
{
	switch (k) {
	case VGW_TOPIC_STATE: return "state";
	case VGW_TOPIC_ACK: return "ack";
	case VGW_TOPIC_TELEMETRY: return "telemetry";
	case VGW_TOPIC_STATION_METER: return "station_meter";
	case VGW_TOPIC_SITE_METER: return "site_meter";
	case VGW_TOPIC_OTHER: break;
	}
	return "other";
}

/* --- MQTT side (paho threads: decode, enqueue, signal) -------------------------- */

static void reject_message(struct vgw_gateway *g, enum vgw_topic_kind kind, const char *topic,
                           size_t tlen, enum vgw_reject reason, const char *msg)
{
	unsigned suppressed;
	char more[48] = "";
	v2g_counter_inc(g->m_rejected, vgw_reject_name(reason));
	if (!rate_log_ok(&g->bad_payload_log, &suppressed))
		return;
	if (suppressed)
		snprintf(more, sizeof(more), " (%u more since the last line)", suppressed);
	v2g_warn("GW-BAD-PAYLOAD", "%s message on %.*s dropped (%s): %s%s", kind_name(kind),
	         (int)(tlen > 200 ? 200 : tlen), topic, vgw_reject_name(reason), msg, more);
}

/* A station meter kept without its invalid extensions (payload.h). */
static void ignored_fields(struct vgw_gateway *g, const char *topic, size_t tlen,
                           const struct vgw_station_meter *m, const char *msg)
{
	unsigned suppressed;
	char more[48] = "";
	for (unsigned bit = 1; bit <= VGW_METER_EXT_PRIORITY; bit <<= 1)
		if (m->ignored & bit)
			v2g_counter_inc(g->m_fields_ignored, vgw_meter_ext_name(bit));
	if (!rate_log_ok(&g->ignored_field_log, &suppressed))
		return;
	if (suppressed)
		snprintf(more, sizeof(more), " (%u more since the last line)", suppressed);
	v2g_warn("GW-METER-FIELD-IGNORED", "station meter on %.*s kept without %s%s%s",
	         (int)(tlen > 200 ? 200 : tlen), topic, msg,
	         m->ignored & (m->ignored - 1) ? " and more" : "", more);
}

static void enqueue_state(struct vgw_gateway *g, const struct vgw_state *s)
{
	int dropped = 0;
	pthread_mutex_lock(&g->tmu);
	if (g->nstates >= STATES_MAX ||
	    grow((void **)&g->states, &g->cap_states, g->nstates + 1, sizeof(*g->states))) {
		dropped = 1;
	} else {
		g->states[g->nstates++] = *s;
		if (g->nstates == STATES_EARLY_FLUSH)
			pthread_cond_signal(&g->tcond);
	}
	pthread_mutex_unlock(&g->tmu);
	if (dropped)
		v2g_counter_inc(g->m_states_dropped, NULL);
}

static size_t meters_pending(const struct vgw_gateway *g)
{
	return g->meters.nst + g->meters.nsi;
}

/* Queues one meter: st or si, the other NULL. */
static void enqueue_meter(struct vgw_gateway *g, const struct vgw_station_meter *st,
                          const struct vgw_site_meter *si)
{
	struct meter_queue *q = &g->meters;
	int dropped = 0;
	pthread_mutex_lock(&g->tmu);
	if (st) {
		if (q->nst >= METERS_MAX ||
		    grow((void **)&q->st, &q->cap_st, q->nst + 1, sizeof(*st)))
			dropped = 1;
		else
			q->st[q->nst++] = *st;
	} else {
		if (q->nsi >= METERS_MAX ||
		    grow((void **)&q->si, &q->cap_si, q->nsi + 1, sizeof(*si)))
			dropped = 1;
		else
			q->si[q->nsi++] = *si;
	}
	if (!dropped && meters_pending(g) == METERS_EARLY_FLUSH)
		pthread_cond_signal(&g->tcond);
	pthread_mutex_unlock(&g->tmu);
	if (dropped)
		v2g_counter_inc(g->m_meters_dropped, NULL);
}

static void enqueue_ack(struct vgw_gateway *g, const struct vgw_ack *a)
{
	int dropped = 0;
	pthread_mutex_lock(&g->omu);
	if (g->nacks >= ACKS_MAX ||
	    grow((void **)&g->acks, &g->cap_acks, g->nacks + 1, sizeof(*g->acks))) {
		dropped = 1;
	} else {
		g->acks[g->nacks++] = *a;
		/* Wake the outbox on the first ack (starts the 2 ms window) and
		 * when a batch is full; not on every ack. */
		if (g->nacks == 1) {
			g->first_ack_mono = v2g_mono_ms();
			pthread_cond_signal(&g->ocond);
		} else if (g->nacks == ACKS_FLUSH_N) {
			pthread_cond_signal(&g->ocond);
		}
	}
	pthread_mutex_unlock(&g->omu);
	if (dropped)
		v2g_counter_inc(g->m_acks_dropped, NULL);
}

static void on_mqtt_message(void *arg, const char *topic, size_t tlen, const void *payload,
                            size_t len)
{
	struct vgw_gateway *g = arg;
	const struct vgw_settings *c = g->cfg;
	char id[VGW_ID_MAX + 1];
	struct vgw_payload_err err = { VGW_REJECT_NONE, "" };
	int bad_id;

	char station[VGW_ID_MAX + 1];

	enum vgw_topic_kind kind =
	        vgw_payload_classify(topic, tlen, c->state_prefix, c->ack_prefix,
	                             c->pull ? c->response_prefix : NULL, id, &bad_id);
	if (kind == VGW_TOPIC_OTHER)
		kind = vgw_payload_classify_meter(topic, tlen, c->site_prefix, id, station,
		                                  &bad_id);
	if (kind == VGW_TOPIC_OTHER)
		return;
	v2g_counter_inc(g->m_received, kind_name(kind));
	if (bad_id) {
		reject_message(g, kind, topic, tlen, VGW_REJECT_BAD_TOPIC,
		               kind == VGW_TOPIC_STATION_METER || kind == VGW_TOPIC_SITE_METER
		                       ? "site and station ids must be 1-64 characters of "
		                         "[A-Za-z0-9_.:-]"
		                       : "vehicle id must be 1-64 characters of [A-Za-z0-9_.:-]");
		return;
	}

	int64_t now = v2g_now_ms();
	if (kind == VGW_TOPIC_STATION_METER) {
		struct vgw_station_meter m;
		if (vgw_payload_decode_station_meter(payload, len, (size_t)c->max_payload_bytes,
		                                     now, &m, &err)) {
			reject_message(g, kind, topic, tlen, err.reason, err.msg);
			return;
		}
		if (m.ignored)
			ignored_fields(g, topic, tlen, &m, err.msg);
		memcpy(m.site, id, sizeof(m.site));
		memcpy(m.station, station, sizeof(m.station));
		enqueue_meter(g, &m, NULL);
	} else if (kind == VGW_TOPIC_SITE_METER) {
		struct vgw_site_meter m;
		if (vgw_payload_decode_site_meter(payload, len, (size_t)c->max_payload_bytes, now,
		                                  &m, &err)) {
			reject_message(g, kind, topic, tlen, err.reason, err.msg);
			return;
		}
		memcpy(m.site, id, sizeof(m.site));
		enqueue_meter(g, NULL, &m);
	} else if (kind == VGW_TOPIC_ACK) {
		struct vgw_ack a;
		if (vgw_payload_decode_ack(payload, len, (size_t)c->max_payload_bytes, now, &a,
		                           &err)) {
			reject_message(g, kind, topic, tlen, err.reason, err.msg);
			return;
		}
		memcpy(a.vehicle_id, id, sizeof(a.vehicle_id));
		enqueue_ack(g, &a);
	} else {
		struct vgw_state s;
		if (vgw_payload_decode_state(payload, len, (size_t)c->max_payload_bytes, now, &s,
		                             &err)) {
			reject_message(g, kind, topic, tlen, err.reason, err.msg);
			return;
		}
		memcpy(s.vehicle_id, id, sizeof(s.vehicle_id));
		enqueue_state(g, &s);
	}
}

static void on_mqtt_link(void *arg, int up, const char *detail)
{
	struct vgw_gateway *g = arg;
	v2g_health_set(g->health, "mqtt", up, detail);
	v2g_gauge_set(g->m_connected, NULL, up ? 1 : 0);
	if (!up)
		batches_lost(g);
}

/* --- bus sends ------------------------------------------------------------------ */

static void bus_failed(struct vgw_gateway *g, const char *what, int rc)
{
	unsigned suppressed;
	v2g_counter_inc(g->m_bus_fail, what);
	if (rate_log_ok(&g->bus_fail_log, &suppressed))
		v2g_warn("GW-BUS-SEND-FAILED",
		         "cannot send %s on the bus: %s (%u similar suppressed)", what,
		         v2g_strerror(rc), suppressed);
}

/* --- telemetry thread --------------------------------------------------------- */

static void publish_states(struct vgw_gateway *g, struct vgw_state *s, size_t n)
{
	if (grow((void **)&g->pb_states, &g->pb_cap, n, sizeof(*g->pb_states)) ||
	    grow((void **)&g->pb_ptrs, &g->pb_ptrs_cap, n, sizeof(*g->pb_ptrs))) {
		v2g_counter_add(g->m_states_dropped, NULL, (double)n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		V2g__V1__VehicleState *p = &g->pb_states[i];
		v2g__v1__vehicle_state__init(p);
		/* Borrowed strings: protobuf-c only reads them while packing. */
		p->vehicle_id = s[i].vehicle_id;
		p->soc = s[i].soc;
		p->max_power_kw = s[i].max_power_kw;
		p->available = s[i].available;
		p->priority = s[i].priority;
		p->tariff = s[i].tariff;
		p->segment = s[i].segment;
		p->fleet_id = s[i].fleet_id;
		p->site = s[i].site;
		p->cluster = s[i].cluster;
		p->battery_kwh = s[i].battery_kwh;
		p->ts_ms = s[i].ts_ms;
		p->power_kw = s[i].power_kw;
		g->pb_ptrs[i] = p;
	}
	V2g__V1__TelemetryBatch batch = V2G__V1__TELEMETRY_BATCH__INIT;
	batch.n_states = n;
	batch.states = g->pb_ptrs;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_TELEMETRY;
	env.telemetry = &batch;
	int rc = v2g_bus_send(g->pub, &env, 0);
	if (rc)
		bus_failed(g, "telemetry", rc);
	else
		v2g_counter_inc(g->m_tel_batches, NULL);
}

/* Takes every pending state and hands it to the bus and InfluxDB. Called
 * by the telemetry thread, and once more after MQTT is closed. */
static void flush_states(struct vgw_gateway *g)
{
	pthread_mutex_lock(&g->tmu);
	struct vgw_state *batch = g->states;
	size_t n = g->nstates, cap = g->cap_states;
	g->states = g->spare;
	g->cap_states = g->cap_spare;
	g->nstates = 0;
	g->spare = batch;
	g->cap_spare = cap;
	pthread_mutex_unlock(&g->tmu);
	if (n == 0)
		return;
	publish_states(g, batch, n);
	vgw_influx_add(g->influx, batch, n);
}

/* Fills ph from p and returns it, or NULL when has is 0 (not reported). */
static V2g__V1__Phases *pb_phases(V2g__V1__Phases *ph, int has, const struct vgw_phases *p)
{
	if (!has)
		return NULL;
	v2g__v1__phases__init(ph);
	ph->a = p->a;
	ph->b = p->b;
	ph->c = p->c;
	return ph;
}

/* One MeterBatch of every queued meter. The protobuf scratch is per call:
 * meters are far fewer than states. */
static void publish_meters(struct vgw_gateway *g, const struct meter_queue *q)
{
	size_t nst = q->nst, nsi = q->nsi;
	V2g__V1__StationMeter *st = calloc(nst ? nst : 1, sizeof(*st));
	V2g__V1__StationMeter **stp = calloc(nst ? nst : 1, sizeof(*stp));
	V2g__V1__SiteMeter *si = calloc(nsi ? nsi : 1, sizeof(*si));
	V2g__V1__SiteMeter **sip = calloc(nsi ? nsi : 1, sizeof(*sip));
	/* current and voltage of each meter */
	V2g__V1__Phases *ph = calloc(2 * (nst + nsi) + 1, sizeof(*ph));

	if (!st || !stp || !si || !sip || !ph) {
		v2g_counter_add(g->m_meters_dropped, NULL, (double)(nst + nsi));
		goto out;
	}
	V2g__V1__Phases *php = ph;
	for (size_t i = 0; i < nst; i++) {
		const struct vgw_station_meter *m = &q->st[i];
		V2g__V1__StationMeter *p = &st[i];
		v2g__v1__station_meter__init(p);
		/* Borrowed strings: protobuf-c only reads them while packing. */
		p->site = (char *)m->site;
		p->station = (char *)m->station;
		p->power_kw = m->power_kw;
		p->current_a = pb_phases(php++, m->has_current, &m->current_a);
		p->voltage_v = pb_phases(php++, m->has_voltage, &m->voltage_v);
		p->temperature_c = m->temperature_c;
		p->soc = m->soc;
		p->status = (char *)m->status;
		p->received_ms = m->received_ms;
		p->kind = (char *)m->kind;
		p->phases = m->phases;
		p->max_kw = m->max_kw;
		p->priority = m->priority;
		stp[i] = p;
	}
	for (size_t i = 0; i < nsi; i++) {
		const struct vgw_site_meter *m = &q->si[i];
		V2g__V1__SiteMeter *p = &si[i];
		v2g__v1__site_meter__init(p);
		p->site = (char *)m->site;
		p->power_kw = m->power_kw;
		p->current_a = pb_phases(php++, m->has_current, &m->current_a);
		p->voltage_v = pb_phases(php++, m->has_voltage, &m->voltage_v);
		p->power_factor = m->power_factor;
		p->frequency_hz = m->frequency_hz;
		p->received_ms = m->received_ms;
		sip[i] = p;
	}
	V2g__V1__MeterBatch batch = V2G__V1__METER_BATCH__INIT;
	batch.n_stations = nst;
	batch.stations = stp;
	batch.n_sites = nsi;
	batch.sites = sip;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_METERS;
	env.meters = &batch;
	int rc = v2g_bus_send(g->pub, &env, 0);
	if (rc)
		bus_failed(g, "meters", rc);
	else
		v2g_counter_inc(g->m_meter_batches, NULL);
out:
	free(st);
	free(stp);
	free(si);
	free(sip);
	free(ph);
}

/* Takes every pending meter and publishes one MeterBatch. Called with the
 * states, by the telemetry thread and once more after MQTT is closed. */
static void flush_meters(struct vgw_gateway *g)
{
	pthread_mutex_lock(&g->tmu);
	struct meter_queue q = g->meters;
	g->meters = g->meters_spare;
	g->meters.nst = g->meters.nsi = 0;
	pthread_mutex_unlock(&g->tmu);
	if (q.nst + q.nsi)
		publish_meters(g, &q);
	/* Only this function touches the spare, and never concurrently: the
	 * telemetry thread is joined before the final flush. */
	g->meters_spare = q;
}

static void send_pull_request(struct vgw_gateway *g)
{
	char id[37];
	v2g_uuid(id);
	char *body = vgw_payload_pull_request(id);
	if (!body)
		return;
	int rc = vgw_mqtt_publish(g->mqtt, g->cfg->request_topic, body, strlen(body), 0, 0, NULL);
	if (rc)
		v2g_debug("GW-PULL-SKIPPED", "telemetry request not sent: %s", v2g_strerror(rc));
	else
		v2g_debug("GW-PULL", "telemetry request %s on %s", id, g->cfg->request_topic);
	free(body);
}

static void *telemetry_main(void *arg)
{
	struct vgw_gateway *g = arg;
	const int64_t window = g->cfg->batch_ms;
	const int64_t pull_every = (int64_t)g->cfg->pull_interval_seconds * 1000;
	int64_t next_flush = v2g_mono_ms() + window;

	pthread_mutex_lock(&g->tmu);
	while (!g->tstop) {
		int64_t now = v2g_mono_ms();
		int pull_due = g->cfg->pull && now >= g->next_pull_mono;
		if (now < next_flush && g->nstates < STATES_EARLY_FLUSH &&
		    meters_pending(g) < METERS_EARLY_FLUSH && !pull_due) {
			int64_t until = next_flush;
			if (g->cfg->pull && g->next_pull_mono < until)
				until = g->next_pull_mono;
			cond_wait_until(&g->tcond, &g->tmu, until);
			continue;
		}
		pthread_mutex_unlock(&g->tmu);

		flush_states(g);
		flush_meters(g);
		if (pull_due) {
			send_pull_request(g);
			g->next_pull_mono += pull_every;
			if (g->next_pull_mono <= now)
				g->next_pull_mono = now + pull_every;
		}
		now = v2g_mono_ms();
		if (now >= next_flush)
			next_flush = now + window;

		pthread_mutex_lock(&g->tmu);
	}
	pthread_mutex_unlock(&g->tmu);
	flush_states(g);
	flush_meters(g);
	return NULL;
}

/* --- outbox thread: acks and publish reports -------------------------------------- */

static void send_report(struct vgw_gateway *g, const struct report *r)
{
	V2g__V1__PublishReport pr = V2G__V1__PUBLISH_REPORT__INIT;
	pr.dispatch_id = r->dispatch_id;
	pr.published = r->published;
	pr.failed = r->failed;
	pr.last_published_ms = r->last_ms;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_PUBLISH_REPORT;
	env.publish_report = &pr;
	int rc = v2g_bus_send(g->push, &env, g->bus_timeout_ms);
	if (rc)
		bus_failed(g, "publish_report", rc);
}

static void send_acks(struct vgw_gateway *g, struct vgw_ack *a, size_t n)
{
	V2g__V1__Ack pb[ACKS_FLUSH_N];
	V2g__V1__Ack *ptrs[ACKS_FLUSH_N];

	for (size_t off = 0; off < n; off += ACKS_FLUSH_N) {
		size_t k = n - off < ACKS_FLUSH_N ? n - off : ACKS_FLUSH_N;
		for (size_t i = 0; i < k; i++) {
			const struct vgw_ack *x = &a[off + i];
			v2g__v1__ack__init(&pb[i]);
			pb[i].vehicle_id = (char *)x->vehicle_id;
			pb[i].dispatch_id = (char *)x->dispatch_id;
			pb[i].accepted = x->accepted;
			pb[i].reason = (char *)x->reason;
			pb[i].received_ms = x->received_ms;
			ptrs[i] = &pb[i];
		}
		V2g__V1__AckBatch batch = V2G__V1__ACK_BATCH__INIT;
		batch.n_acks = k;
		batch.acks = ptrs;
		v2g_env env = V2G__V1__ENVELOPE__INIT;
		env.body_case = V2G__V1__ENVELOPE__BODY_ACKS;
		env.acks = &batch;
		int rc = v2g_bus_send(g->push, &env, g->bus_timeout_ms);
		if (rc) {
			bus_failed(g, "acks", rc);
			v2g_counter_add(g->m_acks_dropped, NULL, (double)k);
		} else {
			v2g_counter_add(g->m_acks_fwd, NULL, (double)k);
		}
	}
}

static void *outbox_main(void *arg)
{
	struct vgw_gateway *g = arg;
	struct report *reports = NULL;
	size_t cap_reports = 0;

	pthread_mutex_lock(&g->omu);
	for (;;) {
		int acks_due = g->nacks >= ACKS_FLUSH_N ||
		               (g->nacks > 0 && v2g_mono_ms() >= g->first_ack_mono + ACKS_FLUSH_MS);
		if (!acks_due && g->nreports == 0) {
			if (g->ostop && g->nacks == 0)
				break;
			if (!g->ostop) {
				if (g->nacks == 0)
					pthread_cond_wait(&g->ocond, &g->omu);
				else
					cond_wait_until(&g->ocond, &g->omu,
					                g->first_ack_mono + ACKS_FLUSH_MS);
				continue;
			}
		}
		/* Take everything queued: acks by swapping buffers, reports by
		 * swapping arrays. */
		struct vgw_ack *acks = g->acks;
		size_t nacks = g->nacks, cap = g->cap_acks;
		g->acks = g->acks_spare;
		g->cap_acks = g->cap_acks_spare;
		g->acks_spare = acks;
		g->cap_acks_spare = cap;
		g->nacks = 0;
		struct report *r = g->reports;
		size_t nr = g->nreports, rcap = g->cap_reports;
		g->reports = reports;
		g->cap_reports = cap_reports;
		g->nreports = 0;
		reports = r;
		cap_reports = rcap;
		pthread_mutex_unlock(&g->omu);

		for (size_t i = 0; i < nr; i++) {
			send_report(g, &reports[i]);
			free(reports[i].dispatch_id);
		}
		if (nacks)
			send_acks(g, acks, nacks);

		pthread_mutex_lock(&g->omu);
	}
	pthread_mutex_unlock(&g->omu);
	free(reports);
	return NULL;
}

/* --- commands ------------------------------------------------------------------ */

/* Queues b's PublishReport unless already done. lost: the connection went
 * away, every command not confirmed yet counts as failed. Any thread
 * (usually paho's): short locks only. */
static void batch_report(struct cmd_batch *b, int lost)
{
	struct vgw_gateway *g = b->g;
	int expected = 0;
	if (!atomic_compare_exchange_strong(&b->reported, &expected, 1))
		return;
	uint32_t ok = atomic_load(&b->published);
	uint32_t failed = lost ? b->total - ok : atomic_load(&b->failed);
	int64_t last = atomic_load(&b->last_ms);
	double secs = (double)(v2g_mono_ms() - b->start_mono) / 1000.0;

	/* An expired batch was never offered to MQTT: expire_batch counted and
	 * logged it (rate-limited); only its report goes out from here. */
	if (!b->expired) {
		v2g_counter_add(g->m_pub_ok, NULL, ok);
		v2g_counter_add(g->m_pub_fail, NULL, failed);
		v2g_histogram_observe(g->m_cmd_seconds, NULL, secs);
		if (failed)
			v2g_warn("GW-COMMANDS-PUBLISHED",
			         "dispatch %s: %u of %u commands published, %u failed%s "
			         "(%.3f s)",
			         b->dispatch_id, ok, b->total, failed,
			         lost ? " (MQTT connection lost)" : "", secs);
		else
			v2g_info("GW-COMMANDS-PUBLISHED",
			         "dispatch %s: %u commands published in %.3f s", b->dispatch_id, ok,
			         secs);
	}

	char *id = strdup(b->dispatch_id);
	pthread_mutex_lock(&g->omu);
	if (id && grow((void **)&g->reports, &g->cap_reports, g->nreports + 1,
	               sizeof(*g->reports)) == 0) {
		struct report *r = &g->reports[g->nreports++];
		r->dispatch_id = id;
		r->published = ok;
		r->failed = failed;
		r->last_ms = last;
		id = NULL;
		pthread_cond_signal(&g->ocond);
	}
	pthread_mutex_unlock(&g->omu);
	if (id) {
		free(id);
		v2g_error("GW-NOMEM", "publish report of dispatch %s lost", b->dispatch_id);
	}
}

static void batch_free(struct cmd_batch *b)
{
	struct vgw_gateway *g = b->g;
	pthread_mutex_lock(&g->bmu);
	if (b->prev)
		b->prev->next = b->next;
	else
		g->live = b->next;
	if (b->next)
		b->next->prev = b->prev;
	pthread_cond_broadcast(&g->bcond);
	pthread_mutex_unlock(&g->bmu);
	free(b->dispatch_id);
	free(b);
}

/* Last reference gone: every publish has its outcome. */
static void batch_finish(struct cmd_batch *b)
{
	batch_report(b, 0);
	batch_free(b);
}

/* The connection is gone: report every batch still waiting. */
static void batches_lost(struct vgw_gateway *g)
{
	pthread_mutex_lock(&g->bmu);
	for (struct cmd_batch *b = g->live; b; b = b->next)
		batch_report(b, 1);
	pthread_cond_broadcast(&g->bcond);
	pthread_mutex_unlock(&g->bmu);
}

static void batch_unref(struct cmd_batch *b)
{
	if (atomic_fetch_sub(&b->refs, 1) == 1)
		batch_finish(b);
}

static void batch_done(struct vgw_mqtt_pending *p, int ok)
{
	struct cmd_batch *b = (struct cmd_batch *)p;
	if (ok) {
		int64_t now = v2g_now_ms();
		int64_t prev = atomic_load(&b->last_ms);
		while (prev < now && !atomic_compare_exchange_weak(&b->last_ms, &prev, now))
			;
		atomic_fetch_add(&b->published, 1);
	} else {
		atomic_fetch_add(&b->failed, 1);
	}
	batch_unref(b);
}

static void bad_command(struct vgw_gateway *g, const char *dispatch_id, const char *msg)
{
	unsigned suppressed;
	if (rate_log_ok(&g->bad_command_log, &suppressed))
		v2g_warn("GW-BAD-COMMAND", "dispatch %s: %s (%u more since the last line)",
		         dispatch_id, msg, suppressed);
}

/* A batch too late to publish (vgw_command_batch_expired), typically one
 * that waited out a gateway outage in the bus buffer while the engine gave
 * up on its dispatch: marks b so that its report says every command failed,
 * as for a batch that could not be published, counts and logs it. Call
 * before b is on the live list. Returns 1 when b expired. */
static int expire_batch(struct vgw_gateway *g, struct cmd_batch *b, const V2g__V1__CommandBatch *cb)
{
	int64_t now = v2g_now_ms();
	enum vgw_cmd_expiry why = vgw_command_batch_expired(cb->issued_at_ms, cb->duration_min, now,
	                                                    g->cfg->command_max_age_ms);
	unsigned suppressed;

	if (why == VGW_CMD_FRESH)
		return 0;
	b->expired = 1;
	atomic_fetch_add(&b->failed, b->total);
	v2g_counter_add(g->m_cmd_expired, NULL, b->total);
	if (!rate_log_ok(&g->expired_log, &suppressed))
		return 1;
	if (why == VGW_CMD_TOO_OLD)
		v2g_warn("GW-COMMAND-EXPIRED",
		         "dispatch %s: %u commands not published, reported failed: issued %lld ms "
		         "ago (gateway.command_max_age_ms %d) (%u more since the last line)",
		         b->dispatch_id, b->total, (long long)(now - cb->issued_at_ms),
		         g->cfg->command_max_age_ms, suppressed);
	else
		v2g_warn("GW-COMMAND-EXPIRED",
		         "dispatch %s: %u commands not published, reported failed: the signal "
		         "(%u min, issued %lld ms ago) has ended (%u more since the last line)",
		         b->dispatch_id, b->total, cb->duration_min,
		         (long long)(now - cb->issued_at_ms), suppressed);
	return 1;
}

/* Publishes every command of cb in one tight loop: MQTTAsync_sendMessage
 * only queues, so 10k commands cost about what a bare paho publisher does.
 * An expired batch (expire_batch) is reported failed, nothing published. */
static void publish_batch(struct vgw_gateway *g, const V2g__V1__CommandBatch *cb)
{
	const struct vgw_settings *c = g->cfg;
	struct vgw_cmd_enc enc = { NULL, 0 };
	char topic[512];
	char *payload = NULL;
	size_t plen_max = 0;

	struct cmd_batch *b = calloc(1, sizeof(*b));
	if (!b || !(b->dispatch_id = strdup(cb->dispatch_id ? cb->dispatch_id : ""))) {
		free(b);
		v2g_error("GW-NOMEM", "out of memory for dispatch %s", cb->dispatch_id);
		return;
	}
	b->pending.done = batch_done;
	b->g = g;
	b->total = (uint32_t)cb->n_commands;
	b->start_mono = v2g_mono_ms();
	atomic_init(&b->refs, 1); /* ours, until the loop is over */
	atomic_init(&b->published, 0);
	atomic_init(&b->failed, 0);
	atomic_init(&b->last_ms, 0);
	atomic_init(&b->reported, 0);
	int expired = expire_batch(g, b, cb);
	pthread_mutex_lock(&g->bmu);
	b->next = g->live;
	if (g->live)
		g->live->prev = b;
	g->live = b;
	pthread_mutex_unlock(&g->bmu);
	v2g_counter_inc(g->m_cmd_batches, NULL);
	if (expired)
		goto out;

	int rc = vgw_cmd_enc_init(&enc, cb->dispatch_id, cb->signal_type, cb->duration_min,
	                          cb->issued_at_ms);
	if (rc == 0) {
		plen_max = enc.prefix_len + 64;
		payload = malloc(plen_max);
	}
	if (rc || !payload) {
		bad_command(g, b->dispatch_id,
		            rc == V2G_ERR_INVAL
		                    ? "cannot encode: unknown signal type or empty dispatch id"
		                    : "cannot encode: out of memory");
		atomic_fetch_add(&b->failed, b->total);
		goto out;
	}

	size_t pl = strlen(c->command_prefix);
	memcpy(topic, c->command_prefix, pl);
	for (size_t i = 0; i < cb->n_commands; i++) {
		const V2g__V1__Command *cmd = cb->commands[i];
		size_t idl = cmd->vehicle_id ? strlen(cmd->vehicle_id) : 0;
		if (!vgw_payload_id_valid(cmd->vehicle_id, idl)) {
			bad_command(g, b->dispatch_id, "command for an invalid vehicle id");
			atomic_fetch_add(&b->failed, 1);
			continue;
		}
		memcpy(topic + pl, cmd->vehicle_id, idl);
		memcpy(topic + pl + idl, "/command", sizeof("/command"));
		int n = vgw_cmd_enc_command(&enc, cmd->power_kw, payload, plen_max);
		if (n < 0) {
			bad_command(g, b->dispatch_id, "power_kw is not a finite number");
			atomic_fetch_add(&b->failed, 1);
			continue;
		}
		atomic_fetch_add(&b->refs, 1);
		if (vgw_mqtt_publish(g->mqtt, topic, payload, (size_t)n, c->qos_command, 0,
		                     &b->pending) != 0) {
			/* Refused at once (disconnected): no callback will come. */
			atomic_fetch_sub(&b->refs, 1);
			atomic_fetch_add(&b->failed, 1);
		}
	}
out:
	free(payload);
	vgw_cmd_enc_fini(&enc);
	batch_unref(b);
}

static void setpoint_done(struct vgw_mqtt_pending *p, int ok)
{
	struct setpoint_ctx *ctx = (struct setpoint_ctx *)p;
	if (ok) {
		v2g_counter_inc(ctx->g->m_pub_ok, NULL);
		v2g_counter_inc(ctx->g->m_setpoints_ok, NULL);
	} else {
		v2g_counter_inc(ctx->g->m_pub_fail, NULL);
	}
}

static void bad_setpoint(struct vgw_gateway *g, const V2g__V1__Setpoint *sp, const char *msg)
{
	unsigned suppressed;
	v2g_counter_inc(g->m_setpoints_bad, NULL);
	v2g_counter_inc(g->m_pub_fail, NULL);
	if (rate_log_ok(&g->bad_command_log, &suppressed))
		v2g_warn("GW-BAD-SETPOINT",
		         "setpoint for site %.64s station %.64s: %s (%u more since "
		         "the last line)",
		         sp->site ? sp->site : "", sp->station ? sp->station : "", msg, suppressed);
}

/* Publishes each setpoint of sb on {site_prefix}{site}/station/{station}/
 * setpoint at mqtt.qos_command. Outcomes are counted, not reported: the
 * next control cycle sends fresh setpoints anyway. */
static void publish_setpoints(struct vgw_gateway *g, const V2g__V1__SetpointBatch *sb)
{
	const struct vgw_settings *c = g->cfg;
	char topic[512], payload[SETPOINT_MAX_BYTES];

	for (size_t i = 0; i < sb->n_setpoints; i++) {
		const V2g__V1__Setpoint *sp = sb->setpoints[i];
		size_t sl = sp->site ? strlen(sp->site) : 0;
		size_t tl = sp->station ? strlen(sp->station) : 0;
		if (!vgw_payload_id_valid(sp->site, sl) || !vgw_payload_id_valid(sp->station, tl)) {
			bad_setpoint(g, sp, "invalid site or station id");
			continue;
		}
		struct vgw_phases ph;
		if (sp->phase_currents_a) {
			ph.a = sp->phase_currents_a->a;
			ph.b = sp->phase_currents_a->b;
			ph.c = sp->phase_currents_a->c;
		}
		int n = vgw_payload_setpoint(sp->power_kw, sp->phase_currents_a ? &ph : NULL,
		                             payload, sizeof(payload));
		if (n < 0) {
			bad_setpoint(g, sp, "power_kw or a phase current is not a number in range");
			continue;
		}
		snprintf(topic, sizeof(topic), "%s%s/station/%s/setpoint", c->site_prefix, sp->site,
		         sp->station);
		if (vgw_mqtt_publish(g->mqtt, topic, payload, (size_t)n, c->qos_command, 0,
		                     &g->setpoint_ctx.pending) != 0)
			v2g_counter_inc(g->m_pub_fail, NULL); /* refused at once: no callback */
	}
}

static void *command_main(void *arg)
{
	struct vgw_gateway *g = arg;
	while (!atomic_load(&g->cstop)) {
		v2g_env *env = NULL;
		int rc = v2g_bus_recv(g->pull, &env, RECV_POLL_MS);
		if (rc == V2G_ERR_TIMEOUT || rc == V2G_ERR_PROTO)
			continue;
		if (rc == V2G_ERR_CLOSED)
			break;
		if (rc) {
			v2g_warn("GW-BUS-RECV", "bus.gateway_in: %s", v2g_strerror(rc));
			continue;
		}
		if (env->body_case == V2G__V1__ENVELOPE__BODY_COMMANDS && env->commands)
			publish_batch(g, env->commands);
		else if (env->body_case == V2G__V1__ENVELOPE__BODY_SETPOINTS && env->setpoints)
			publish_setpoints(g, env->setpoints);
		else
			v2g_warn("GW-BUS-UNEXPECTED",
			         "bus.gateway_in: unexpected message (body %d) from %s",
			         (int)env->body_case, env->sender ? env->sender : "?");
		v2g_env_free(env);
	}
	return NULL;
}

/* --- REP server ------------------------------------------------------------------ */

static void rep_handler(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	(void)arg;
	(void)req;
	v2g_bus_reply_error(rep, 400, "vehicle-gateway: unsupported request");
}

static int rep_ready(void *arg)
{
	return v2g_health_ready(arg);
}

/* --- lifecycle -------------------------------------------------------------------- */

static void register_metrics(struct vgw_gateway *g)
{
	g->m_connected = v2g_gauge("mqtt_connected", "1 while connected to the MQTT broker", NULL);
	g->m_received = v2g_counter("mqtt_messages_received_total",
	                            "MQTT messages received, by kind", "kind");
	g->m_rejected = v2g_counter("mqtt_messages_rejected_total",
	                            "MQTT messages dropped as invalid, by reason", "reason");
	g->m_pub_ok =
	        v2g_counter("mqtt_publish_success_total",
	                    "Vehicle commands and station setpoints confirmed by the broker", NULL);
	g->m_pub_fail = v2g_counter("mqtt_publish_failure_total",
	                            "Vehicle commands and station setpoints that could not be "
	                            "published",
	                            NULL);
	g->m_tel_batches = v2g_counter("telemetry_batches_published_total",
	                               "TelemetryBatch messages published on the bus", NULL);
	g->m_states_dropped = v2g_counter("telemetry_states_dropped_total",
	                                  "Decoded states dropped (queue full)", NULL);
	g->m_acks_fwd =
	        v2g_counter("acks_forwarded_total", "Acks forwarded to the dispatch engine", NULL);
	g->m_acks_dropped = v2g_counter("acks_dropped_total",
	                                "Acks dropped (queue full or bus send failed)", NULL);
	g->m_bus_fail = v2g_counter("gateway_bus_send_failures_total",
	                            "Bus sends that failed, by message", "message");
	g->m_cmd_batches = v2g_counter("command_batches_total", "CommandBatches received", NULL);
	g->m_cmd_seconds = v2g_histogram("command_batch_publish_seconds",
	                                 "From CommandBatch receipt to the last confirmation", NULL,
	                                 v2g_latency_buckets, v2g_latency_nbuckets);
	g->m_meter_batches = v2g_counter("meter_batches_published_total",
	                                 "MeterBatch messages published on the bus", NULL);
	g->m_meters_dropped =
	        v2g_counter("meters_dropped_total", "Decoded meters dropped (queue full)", NULL);
	g->m_fields_ignored = v2g_counter("mqtt_meter_fields_ignored_total",
	                                  "Invalid optional station meter fields ignored (the "
	                                  "meter is kept)",
	                                  "field");
	g->m_setpoints_ok = v2g_counter("setpoints_published_total",
	                                "Station setpoints confirmed by the broker", NULL);
	g->m_setpoints_bad =
	        v2g_counter("setpoints_invalid_total", "Setpoints skipped: bad ids or power", NULL);
	g->m_cmd_expired = v2g_counter("gateway_commands_expired_total",
	                               "Vehicle commands not published because their CommandBatch "
	                               "was too old or its signal had ended (reported failed)",
	                               NULL);
	v2g_gauge_set(g->m_connected, NULL, 0);
}

static int open_bus(struct vgw_gateway *g, const struct v2g_common_cfg *cc)
{
	int rc;
	if ((rc = v2g_bus_open(&g->pub, V2G_BUS_PUB, cc->bus_telemetry, 1))) {
		v2g_error("GW-BUS-OPEN", "bus.telemetry: cannot listen on %s: %s",
		          cc->bus_telemetry, v2g_strerror(rc));
		return rc;
	}
	g->pub_open = 1;
	if ((rc = v2g_bus_open(&g->pull, V2G_BUS_PULL, cc->bus_gateway_in, 1))) {
		v2g_error("GW-BUS-OPEN", "bus.gateway_in: cannot listen on %s: %s",
		          cc->bus_gateway_in, v2g_strerror(rc));
		return rc;
	}
	g->pull_open = 1;
	if ((rc = v2g_bus_open(&g->push, V2G_BUS_PUSH, cc->bus_dispatch_in, 0))) {
		v2g_error("GW-BUS-OPEN", "bus.dispatch_in: cannot dial %s: %s", cc->bus_dispatch_in,
		          v2g_strerror(rc));
		return rc;
	}
	g->push_open = 1;
	if ((rc = v2g_bus_server_start(&g->rep, cc->bus_gateway, 2, rep_handler, g, rep_ready,
	                               g->health))) {
		v2g_error("GW-BUS-OPEN", "bus.gateway: cannot listen on %s: %s", cc->bus_gateway,
		          v2g_strerror(rc));
		return rc;
	}
	if (v2g_bus_client_open(&g->dispatch_peer, cc->bus_dispatch) == 0)
		v2g_health_add(g->health, "dispatch", 0, v2g_health_bus_peer, g->dispatch_peer);
	return 0;
}

static int open_mqtt(struct vgw_gateway *g)
{
	const struct vgw_settings *c = g->cfg;
	char state[300], ack[300], tel[300], stmeter[300], simeter[300];
	const char *subs[5];
	int qos[5];
	int n = 0;

	snprintf(state, sizeof(state), "%s+/state", c->state_prefix);
	snprintf(ack, sizeof(ack), "%s+/ack", c->ack_prefix);
	snprintf(tel, sizeof(tel), "%s+/telemetry", c->response_prefix);
	snprintf(stmeter, sizeof(stmeter), "%s+/station/+/meter", c->site_prefix);
	snprintf(simeter, sizeof(simeter), "%s+/meter", c->site_prefix);
	/* Telemetry is periodic, the next state replaces a lost one: QoS 0.
	 * Acks decide dispatches: mqtt.qos_ack. */
	subs[n] = state;
	qos[n++] = 0;
	subs[n] = ack;
	qos[n++] = c->qos_ack;
	if (c->pull) {
		subs[n] = tel;
		qos[n++] = 0;
	}
	/* Meters are periodic too. */
	subs[n] = stmeter;
	qos[n++] = 0;
	subs[n] = simeter;
	qos[n++] = 0;
	struct vgw_mqtt_opts o = {
		.broker = c->broker,
		.client_id = c->client_id,
		.username = c->username,
		.password = c->password,
		.ca_bundle = c->ca_bundle,
		.client_cert = c->client_cert,
		.client_key = c->client_key,
		.keepalive_s = c->keepalive_seconds,
		.reconnect_min_ms = c->reconnect_min_ms,
		.reconnect_max_ms = c->reconnect_max_ms,
		.lwt_topic = c->lwt_topic,
		.subs = subs,
		.sub_qos = qos,
		.nsubs = n,
	};
	struct vgw_mqtt_handlers h = { on_mqtt_message, on_mqtt_link, g };
	return vgw_mqtt_open(&g->mqtt, &o, &h);
}

/* Caller holds bmu. */
static int batches_unreported(struct vgw_gateway *g)
{
	for (struct cmd_batch *b = g->live; b; b = b->next)
		if (!atomic_load(&b->reported))
			return 1;
	return 0;
}

/* Waits (bounded) until every live batch has its report. Batches already
 * reported (connection lost) only wait for paho's late callbacks. */
static void wait_batches(struct vgw_gateway *g, int timeout_ms)
{
	int64_t deadline = v2g_mono_ms() + timeout_ms;
	pthread_mutex_lock(&g->bmu);
	while (batches_unreported(g) && v2g_mono_ms() < deadline)
		cond_wait_until(&g->bcond, &g->bmu, deadline);
	pthread_mutex_unlock(&g->bmu);
}

/* After MQTT is closed no callback comes any more: report what is left
 * (unconfirmed = failed) and free it. */
static void fail_live_batches(struct vgw_gateway *g)
{
	for (;;) {
		pthread_mutex_lock(&g->bmu);
		struct cmd_batch *b = g->live;
		pthread_mutex_unlock(&g->bmu);
		if (!b)
			break;
		batch_report(b, 1);
		batch_free(b);
	}
}

int vgw_gateway_start(struct vgw_gateway **out, struct v2g_service *svc,
                      const struct vgw_settings *cfg)
{
	int rc;
	struct vgw_gateway *g = calloc(1, sizeof(*g));
	if (!g)
		return V2G_ERR_NOMEM;
	g->cfg = cfg;
	g->health = svc->health;
	g->bus_timeout_ms = svc->common.bus_timeout_ms;
	pthread_mutex_init(&g->tmu, NULL);
	pthread_mutex_init(&g->omu, NULL);
	pthread_mutex_init(&g->bmu, NULL);
	pthread_mutex_init(&g->bad_payload_log.mu, NULL);
	pthread_mutex_init(&g->bus_fail_log.mu, NULL);
	pthread_mutex_init(&g->bad_command_log.mu, NULL);
	pthread_mutex_init(&g->ignored_field_log.mu, NULL);
	pthread_mutex_init(&g->expired_log.mu, NULL);
	v2g_cond_init_mono(&g->tcond);
	v2g_cond_init_mono(&g->ocond);
	v2g_cond_init_mono(&g->bcond);
	atomic_init(&g->cstop, 0);
	g->setpoint_ctx.pending.done = setpoint_done;
	g->setpoint_ctx.g = g;
	g->next_pull_mono = v2g_mono_ms() + 1000; /* first request once connected, roughly */
	register_metrics(g);

	if (grow((void **)&g->states, &g->cap_states, STATES_EARLY_FLUSH + 1, sizeof(*g->states)) ||
	    grow((void **)&g->spare, &g->cap_spare, STATES_EARLY_FLUSH + 1, sizeof(*g->spare)) ||
	    grow((void **)&g->acks, &g->cap_acks, ACKS_FLUSH_N, sizeof(*g->acks)) ||
	    grow((void **)&g->acks_spare, &g->cap_acks_spare, ACKS_FLUSH_N, sizeof(*g->acks))) {
		rc = V2G_ERR_NOMEM;
		goto fail;
	}

	struct vgw_influx_opts io = {
		.url = cfg->influx_url,
		.database = cfg->influx_db,
		.batch_size = cfg->influx_batch_size,
		.flush_ms = cfg->influx_flush_ms,
		.queue_max = cfg->influx_queue_max,
	};
	if ((rc = vgw_influx_start(&g->influx, &io))) {
		v2g_error("GW-INFLUX-START", "cannot start the InfluxDB writer: %s",
		          v2g_strerror(rc));
		goto fail;
	}
	v2g_health_add(g->health, "mqtt", 1, NULL, NULL);
	v2g_health_add(g->health, "influxdb", 1, vgw_influx_probe, g->influx);

	if ((rc = open_bus(g, &svc->common)))
		goto fail;

	if (pthread_create(&g->tthread, NULL, telemetry_main, g)) {
		rc = V2G_ERR_IO;
		goto fail;
	}
	g->tthread_on = 1;
	if (pthread_create(&g->othread, NULL, outbox_main, g)) {
		rc = V2G_ERR_IO;
		goto fail;
	}
	g->othread_on = 1;
	if ((rc = open_mqtt(g))) {
		v2g_error("GW-MQTT-START", "cannot start the MQTT client: %s", v2g_strerror(rc));
		goto fail;
	}
	if (pthread_create(&g->cthread, NULL, command_main, g)) {
		rc = V2G_ERR_IO;
		goto fail;
	}
	g->cthread_on = 1;
	v2g_info("GW-STARTED", "MQTT %s (%s mode), InfluxDB %s/%s, commands on %s", cfg->broker,
	         cfg->mode, cfg->influx_url, cfg->influx_db, svc->common.bus_gateway_in);
	*out = g;
	return 0;
fail:
	vgw_gateway_drain(g);
	vgw_gateway_free(g);
	return rc;
}

void vgw_gateway_drain(struct vgw_gateway *g)
{
	if (!g)
		return;
	/* 1. no new commands; closing the socket wakes the command thread at
	 *    once (a batch it is publishing is finished first) */
	atomic_store(&g->cstop, 1);
	if (g->pull_open) {
		nng_close(g->pull);
		g->pull_open = 0;
	}
	if (g->cthread_on) {
		pthread_join(g->cthread, NULL);
		g->cthread_on = 0;
	}
	/* 2. let in-flight publishes confirm, then stop the telemetry thread
	 *    (it publishes pull requests) and leave MQTT: no callback after. */
	if (g->mqtt)
		wait_batches(g, DRAIN_PUBLISH_MS);
	if (g->tthread_on) {
		pthread_mutex_lock(&g->tmu);
		g->tstop = 1;
		pthread_cond_signal(&g->tcond);
		pthread_mutex_unlock(&g->tmu);
		pthread_join(g->tthread, NULL);
		g->tthread_on = 0;
	}
	vgw_mqtt_close(g->mqtt, MQTT_CLOSE_MS);
	g->mqtt = NULL;
	fail_live_batches(g);
	/* 3. what arrived meanwhile: states to bus + InfluxDB queue, acks and
	 *    reports by the outbox's last round. */
	if (g->influx) {
		flush_states(g);
		flush_meters(g);
	}
	if (g->othread_on) {
		pthread_mutex_lock(&g->omu);
		g->ostop = 1;
		pthread_cond_signal(&g->ocond);
		pthread_mutex_unlock(&g->omu);
		pthread_join(g->othread, NULL);
		g->othread_on = 0;
	}
	if (g->rep) {
		v2g_bus_server_stop(g->rep);
		g->rep = NULL;
	}
	if (g->pull_open) {
		nng_close(g->pull);
		g->pull_open = 0;
	}
	if (g->pub_open) {
		nng_close(g->pub);
		g->pub_open = 0;
	}
	if (g->push_open) {
		nng_close(g->push);
		g->push_open = 0;
	}
	g->cfg = NULL;
}

void vgw_gateway_free(struct vgw_gateway *g)
{
	if (!g)
		return;
	vgw_influx_stop(g->influx, INFLUX_FLUSH_MS);
	if (g->dispatch_peer)
		v2g_bus_client_close(g->dispatch_peer);
	for (size_t i = 0; i < g->nreports; i++)
		free(g->reports[i].dispatch_id);
	free(g->reports);
	free(g->states);
	free(g->spare);
	free(g->acks);
	free(g->acks_spare);
	free(g->pb_states);
	free(g->pb_ptrs);
	free(g->meters.st);
	free(g->meters.si);
	free(g->meters_spare.st);
	free(g->meters_spare.si);
	pthread_mutex_destroy(&g->tmu);
	pthread_mutex_destroy(&g->omu);
	pthread_mutex_destroy(&g->bmu);
	pthread_mutex_destroy(&g->bad_payload_log.mu);
	pthread_mutex_destroy(&g->bus_fail_log.mu);
	pthread_mutex_destroy(&g->bad_command_log.mu);
	pthread_mutex_destroy(&g->ignored_field_log.mu);
	pthread_mutex_destroy(&g->expired_log.mu);
	pthread_cond_destroy(&g->tcond);
	pthread_cond_destroy(&g->ocond);
	pthread_cond_destroy(&g->bcond);
	free(g);
}
