#include "service.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"
#include "v2g/signal_type.h"

#define S(f) offsetof(struct disp_settings, f)

const struct v2g_cfg_item disp_settings_items[] = {
	{ "dispatch.ack_timeout_seconds", V2G_CFG_INT, S(ack_timeout_seconds), 1, 3600, "5", NULL,
	  "seconds to wait for acks before reallocating" },
	{ "dispatch.max_rounds", V2G_CFG_INT, S(max_rounds), 0, 20, "3", NULL,
	  "reallocation rounds after the first" },
	{ "dispatch.max_state_age_seconds", V2G_CFG_INT, S(max_state_age_seconds), 1, 86400, "300",
	  NULL, "older vehicle state is not eligible" },
	{ "dispatch.realloc_min_soc", V2G_CFG_DOUBLE, S(realloc_min_soc), 0, 100, "20", NULL,
	  "reallocation skips vehicles below this SoC" },
	{ "dispatch.site_capacity_ttl_ms", V2G_CFG_INT, S(site_capacity_ttl_ms), 100, 3600000,
	  "10000", NULL, "a site capacity from site-dlm older than this is ignored" },
	{ "dispatch.soc.fcr.low", V2G_CFG_DOUBLE, S(band[0][0]), 0, 100, "20", NULL,
	  "FCR SoC low" },
	{ "dispatch.soc.fcr.high", V2G_CFG_DOUBLE, S(band[0][1]), 0, 100, "100", NULL,
	  "FCR SoC high" },
	{ "dispatch.soc.afrr.low", V2G_CFG_DOUBLE, S(band[1][0]), 0, 100, "20", NULL,
	  "aFRR SoC low" },
	{ "dispatch.soc.afrr.high", V2G_CFG_DOUBLE, S(band[1][1]), 0, 100, "100", NULL,
	  "aFRR SoC high" },
	{ "dispatch.soc.load_shedding.low", V2G_CFG_DOUBLE, S(band[2][0]), 0, 100, "10", NULL,
	  "load shedding SoC low" },
	{ "dispatch.soc.load_shedding.high", V2G_CFG_DOUBLE, S(band[2][1]), 0, 100, "100", NULL,
	  "load shedding SoC high" },
	{ "dispatch.strategy", V2G_CFG_STRING, S(pol.strategy), 1, 16, "priority", NULL,
	  "priority | equal | smart | lp" },
	{ "dispatch.lp_first", V2G_CFG_STRING, S(pol.lp_first), 0, 128, "", NULL,
	  "signal types (names or indexes) tried with LP first, then Smart" },
	{ "dispatch.fallback", V2G_CFG_STRING, S(pol.fallback), 1, 16, "noop", NULL,
	  "noop | balanced | probabilistic: residual over acked vehicles" },
	{ "dispatch.prediction", V2G_CFG_STRING, S(pol.prediction), 1, 16, "learning", NULL,
	  "learning | fixed" },
	{ "dispatch.smart_max_rounds", V2G_CFG_INT, S(pol.smart_max_rounds), 1, 1000, "5", NULL,
	  "bound on the Smart allocation loop" },
	{ "dispatch.weights.fcr.soc", V2G_CFG_DOUBLE, S(pol.weights[0][0]), -1, 1000, "-1", NULL,
	  "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.fcr.time", V2G_CFG_DOUBLE, S(pol.weights[0][1]), -1, 1000, "-1", NULL,
	  "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.fcr.priority", V2G_CFG_DOUBLE, S(pol.weights[0][2]), -1, 1000, "-1",
	  NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.fcr.price", V2G_CFG_DOUBLE, S(pol.weights[0][3]), -1, 1000, "-1", NULL,
	  "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.fcr.availability", V2G_CFG_DOUBLE, S(pol.weights[0][4]), -1, 1000, "-1",
	  NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.fcr.wear", V2G_CFG_DOUBLE, S(pol.weights[0][5]), -1, 1000, "-1", NULL,
	  "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.fcr.participation", V2G_CFG_DOUBLE, S(pol.weights[0][6]), -1, 1000,
	  "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.afrr.soc", V2G_CFG_DOUBLE, S(pol.weights[1][0]), -1, 1000, "-1", NULL,
	  "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.afrr.time", V2G_CFG_DOUBLE, S(pol.weights[1][1]), -1, 1000, "-1", NULL,
	  "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.afrr.priority", V2G_CFG_DOUBLE, S(pol.weights[1][2]), -1, 1000, "-1",
	  NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.afrr.price", V2G_CFG_DOUBLE, S(pol.weights[1][3]), -1, 1000, "-1", NULL,
	  "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.afrr.availability", V2G_CFG_DOUBLE, S(pol.weights[1][4]), -1, 1000,
	  "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.afrr.wear", V2G_CFG_DOUBLE, S(pol.weights[1][5]), -1, 1000, "-1", NULL,
	  "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.afrr.participation", V2G_CFG_DOUBLE, S(pol.weights[1][6]), -1, 1000,
	  "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.load_shedding.soc", V2G_CFG_DOUBLE, S(pol.weights[2][0]), -1, 1000,
	  "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.load_shedding.time", V2G_CFG_DOUBLE, S(pol.weights[2][1]), -1, 1000,
	  "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.load_shedding.priority", V2G_CFG_DOUBLE, S(pol.weights[2][2]), -1, 1000,
	  "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.load_shedding.price", V2G_CFG_DOUBLE, S(pol.weights[2][3]), -1, 1000,
	  "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.load_shedding.availability", V2G_CFG_DOUBLE, S(pol.weights[2][4]), -1,
	  1000, "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.load_shedding.wear", V2G_CFG_DOUBLE, S(pol.weights[2][5]), -1, 1000,
	  "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.weights.load_shedding.participation", V2G_CFG_DOUBLE, S(pol.weights[2][6]), -1,
	  1000, "-1", NULL, "Smart weight (-1: the default for the signal type)" },
	{ "dispatch.tuner.enabled", V2G_CFG_BOOL, S(pol.tuner_enabled), 0, 1, "false", NULL,
	  "adjust the availability weight from ack rates" },
	{ "dispatch.tuner.step_up", V2G_CFG_DOUBLE, S(pol.tuner[0]), 0, 10, "0.05", NULL, "" },
	{ "dispatch.tuner.step_down", V2G_CFG_DOUBLE, S(pol.tuner[1]), 0, 10, "0.05", NULL, "" },
	{ "dispatch.tuner.low_threshold", V2G_CFG_DOUBLE, S(pol.tuner[2]), 0, 1, "0.8", NULL, "" },
	{ "dispatch.tuner.high_threshold", V2G_CFG_DOUBLE, S(pol.tuner[3]), 0, 1, "0.95", NULL,
	  "" },
	{ "dispatch.tuner.min_weight", V2G_CFG_DOUBLE, S(pol.tuner[4]), 0, 1000, "0", NULL, "" },
	{ "dispatch.tuner.max_weight", V2G_CFG_DOUBLE, S(pol.tuner[5]), 0, 1000, "1", NULL, "" },
};
const size_t disp_settings_n = sizeof(disp_settings_items) / sizeof(disp_settings_items[0]);

int disp_settings_check(void *settings, const char *file, char *err, size_t len)
{
	struct disp_settings *s = settings;
	static const char *const keys[] = { "fcr", "afrr", "load_shedding" };
	for (int t = 0; t < 3; t++) {
		if (!(s->band[t][0] < s->band[t][1])) {
			snprintf(err, len, "dispatch.soc.%s: low (%g) must be below high (%g)",
			         keys[t], s->band[t][0], s->band[t][1]);
			return V2G_ERR_CONFIG;
		}
	}
	return disp_policy_build(&s->pol, file, &s->policy, err, len);
}

void disp_settings_to_config(const struct disp_settings *s, struct disp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (int t = 0; t < 3; t++) {
		cfg->band[t].low = s->band[t][0];
		cfg->band[t].high = s->band[t][1];
	}
	cfg->ack_timeout_ms = s->ack_timeout_seconds * 1000;
	cfg->max_rounds = s->max_rounds;
	cfg->max_state_age_ms = (int64_t)s->max_state_age_seconds * 1000;
	cfg->realloc_min_soc = s->realloc_min_soc;
	cfg->policy = s->policy;
	cfg->site_capacity_ttl_ms = s->site_capacity_ttl_ms;
}

struct disp_service {
	struct v2g_service *svc;
	struct disp_fleet *fleet;
	struct disp_predictor *pred;
	struct disp_engine *engine;
	struct v2g_bus_server *rep;
	struct v2g_bus_client *gw_client, *store_client;
	struct v2g_bus_peers *tel_peers;
	nng_socket tel_sub, in_pull, gw_push, store_push;
	pthread_t tel_thread, in_thread, timer_thread;
	volatile int stopping, accepting;
	_Atomic int64_t last_push_ms; /* monotonic; last message handed to a PUSH socket */
	struct v2g_metric *m_fleet, *m_states, *m_bad, *m_send_fail, *m_signals;
};

/* How long a message handed to a PUSH socket is given to go out before the
 * socket is closed at shutdown (closing drops what it still holds). */
#define PUSH_FLUSH_MS 200

/* ops: the engine's outputs go straight to PUSH sockets. A PUSH send only
 * blocks when the peer is gone and the buffer is full; bounded by 2 s. */
static void send_commands(void *arg, V2g__V1__CommandBatch *b)
{
	struct disp_service *s = arg;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_COMMANDS;
	env.commands = b;
	int rc = v2g_bus_send(s->gw_push, &env, 2000);
	atomic_store(&s->last_push_ms, v2g_mono_ms());
	if (rc) {
		v2g_counter_inc(s->m_send_fail, "gateway");
		v2g_error("DISP-BUS-SEND",
		          "dispatch=%s: %zu commands not handed to the gateway: %s", b->dispatch_id,
		          b->n_commands, v2g_strerror(rc));
	}
}

static void send_decision(void *arg, V2g__V1__DispatchDecision *d)
{
	struct disp_service *s = arg;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_DECISION;
	env.decision = d;
	int rc = v2g_bus_send(s->store_push, &env, 2000);
	atomic_store(&s->last_push_ms, v2g_mono_ms());
	if (rc) {
		v2g_counter_inc(s->m_send_fail, "store");
		v2g_error("DISP-BUS-SEND", "dispatch=%s: decision not handed to the store: %s",
		          d->dispatch_id, v2g_strerror(rc));
	}
}

static void handle_request(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	struct disp_service *s = arg;
	char id[37];

	if (req->body_case != V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL ||
	    !req->submit_signal->signal) {
		v2g_counter_inc(s->m_bad, "request");
		v2g_bus_reply_error(rep, 400, "dispatch-engine: expected submit_signal");
		return;
	}
	if (!s->accepting) {
		v2g_bus_reply_error(rep, 503, "dispatch-engine is shutting down");
		return;
	}
	const V2g__V1__Signal *sig = req->submit_signal->signal;
	int rc = disp_engine_submit(s->engine, sig, v2g_now_ms(), v2g_mono_ms(), id);
	if (rc) {
		v2g_bus_reply_error(rep, rc == V2G_ERR_INVAL ? 400 : 500, v2g_strerror(rc));
		return;
	}
	v2g_counter_inc(s->m_signals, v2g_signal_type_name(sig->type));
	V2g__V1__SubmitSignalReply r = V2G__V1__SUBMIT_SIGNAL_REPLY__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	r.signal_id = sig->signal_id;
	r.dispatch_id = id;
	env.body_case = V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL_REPLY;
	env.submit_signal_reply = &r;
	v2g_bus_reply_send(rep, &env);
}

static void *telemetry_main(void *arg)
{
	struct disp_service *s = arg;
	while (!s->stopping) {
		v2g_env *env;
		int rc = v2g_bus_recv(s->tel_sub, &env, 200);
		if (rc == V2G_ERR_TIMEOUT)
			continue;
		if (rc == V2G_ERR_CLOSED)
			break;
		if (rc) {
			v2g_counter_inc(s->m_bad, "telemetry");
			continue;
		}
		if (env->body_case == V2G__V1__ENVELOPE__BODY_TELEMETRY) {
			for (size_t i = 0; i < env->telemetry->n_states; i++) {
				const V2g__V1__VehicleState *st = env->telemetry->states[i];
				if (disp_fleet_update(s->fleet, st) != V2G_OK) {
					v2g_counter_inc(s->m_bad, "state");
					continue;
				}
				v2g_counter_inc(s->m_states, NULL);
				disp_predictor_observe(s->pred, st->vehicle_id, st->available,
				                       st->soc, st->ts_ms);
			}
			v2g_gauge_set(s->m_fleet, NULL, (double)disp_fleet_size(s->fleet));
		} else if (env->body_case != V2G__V1__ENVELOPE__BODY_METERS) {
			/* meter batches share this publisher: they are site-dlm's */
			v2g_counter_inc(s->m_bad, "telemetry");
		}
		v2g_env_free(env);
	}
	return NULL;
}

/* site-dlm's figure for its site (engine.h); a bad one is counted. */
static void site_capacity(struct disp_service *s, const V2g__V1__SiteCapacity *c)
{
	int rc = disp_engine_site_capacity(s->engine, c, v2g_now_ms());
	if (!rc)
		return;
	v2g_counter_inc(s->m_bad, "site_capacity");
	if (rc == V2G_ERR_TOOBIG)
		v2g_warn("DISP-SITE-CAPACITY-REFUSED",
		         "site=%.64s: capacity dropped: more than %d sites report one",
		         c && c->site ? c->site : "", DISP_MAX_DLM_SITES);
	else
		v2g_debug("DISP-SITE-CAPACITY-REFUSED", "site=%.64s: bad capacity: %s",
		          c && c->site ? c->site : "", v2g_strerror(rc));
}

static void *inbound_main(void *arg)
{
	struct disp_service *s = arg;
	while (!s->stopping) {
		v2g_env *env;
		int rc = v2g_bus_recv(s->in_pull, &env, 200);
		if (rc == V2G_ERR_TIMEOUT)
			continue;
		if (rc == V2G_ERR_CLOSED)
			break;
		if (rc) {
			v2g_counter_inc(s->m_bad, "inbound");
			continue;
		}
		if (env->body_case == V2G__V1__ENVELOPE__BODY_ACKS)
			disp_engine_acks(s->engine, env->acks, v2g_now_ms(), v2g_mono_ms());
		else if (env->body_case == V2G__V1__ENVELOPE__BODY_PUBLISH_REPORT)
			disp_engine_published(s->engine, env->publish_report);
		else if (env->body_case == V2G__V1__ENVELOPE__BODY_SITE_CAPACITY)
			site_capacity(s, env->site_capacity);
		else
			v2g_counter_inc(s->m_bad, "inbound");
		v2g_env_free(env);
	}
	return NULL;
}

static void *timer_main(void *arg)
{
	struct disp_service *s = arg;
	while (!s->stopping) {
		disp_engine_tick(s->engine, v2g_now_ms(), v2g_mono_ms());
		usleep(20 * 1000);
	}
	return NULL;
}

static int engine_ready(void *arg)
{
	struct disp_service *s = arg;
	return v2g_health_ready(s->svc->health);
}

int disp_service_start(struct disp_service **out, struct v2g_service *svc,
                       const struct disp_config *cfg)
{
	struct disp_service *s = calloc(1, sizeof(*s));
	const struct v2g_common_cfg *c = &svc->common;
	int rc;

	if (!s)
		return V2G_ERR_NOMEM;
	s->svc = svc;
	s->m_fleet = v2g_gauge("fleet_vehicles", "Vehicles known to the dispatch engine", NULL);
	s->m_states = v2g_counter("fleet_states_applied_total", "Vehicle states applied", NULL);
	s->m_bad = v2g_counter("dispatch_bad_messages_total", "Bus messages refused", "kind");
	s->m_send_fail = v2g_counter("dispatch_bus_send_failures_total",
	                             "Messages that could not be handed to a peer", "peer");
	s->m_signals = v2g_counter("dispatch_signals_total", "Signals accepted", "signal_type");
	s->fleet = disp_fleet_new();
	s->pred = cfg->policy.prediction_fixed
	                  ? disp_predictor_fixed((struct disp_forecast){ 1, 0, 0 })
	                  : disp_predictor_learning(1024);
	struct disp_engine_ops ops = { send_commands, send_decision, s };
	s->engine = s->fleet && s->pred ? disp_engine_new(cfg, s->fleet, s->pred, &ops) : NULL;
	if (!s->engine) {
		rc = V2G_ERR_NOMEM;
		goto fail;
	}
	if ((rc = v2g_bus_open_watched(&s->tel_sub, V2G_BUS_SUB, c->bus_telemetry, 0,
	                               &s->tel_peers)) ||
	    (rc = v2g_bus_open(&s->in_pull, V2G_BUS_PULL, c->bus_dispatch_in, 1)) ||
	    (rc = v2g_bus_open(&s->gw_push, V2G_BUS_PUSH, c->bus_gateway_in, 0)) ||
	    (rc = v2g_bus_open(&s->store_push, V2G_BUS_PUSH, c->bus_store_in, 0)) ||
	    (rc = v2g_bus_client_open(&s->gw_client, c->bus_gateway)) ||
	    (rc = v2g_bus_client_open(&s->store_client, c->bus_store)))
		goto fail;
	v2g_health_add(svc->health, "vehicle-gateway", 1, v2g_health_bus_peer, s->gw_client);
	v2g_health_add(svc->health, "store", 1, v2g_health_bus_peer, s->store_client);
	/* States published before the subscription is up are lost: not ready
	 * until it is. */
	v2g_health_add(svc->health, "telemetry-subscription", 1, v2g_health_bus_connected,
	               s->tel_peers);
	s->accepting = 1;
	if (pthread_create(&s->tel_thread, NULL, telemetry_main, s) ||
	    pthread_create(&s->in_thread, NULL, inbound_main, s) ||
	    pthread_create(&s->timer_thread, NULL, timer_main, s)) {
		rc = V2G_ERR_IO;
		goto fail;
	}
	if ((rc = v2g_bus_server_start(&s->rep, c->bus_dispatch, 2, handle_request, s, engine_ready,
	                               s)))
		goto fail;
	*out = s;
	return V2G_OK;
fail:
	/* start-up failure: the process exits; the OS reclaims the rest */
	v2g_error("DISP-START-FAIL", "cannot start: %s", v2g_strerror(rc));
	return rc;
}

void disp_service_stop(struct disp_service *s, int drain_ms)
{
	if (!s)
		return;
	s->accepting = 0;
	int64_t until = v2g_mono_ms() + drain_ms;
	size_t n;
	while ((n = disp_engine_active(s->engine)) > 0 && v2g_mono_ms() < until)
		usleep(50 * 1000);
	if (n)
		v2g_warn("DISP-DRAIN",
		         "%zu dispatches still waiting for acks at shutdown: finished as they are",
		         n);
	disp_engine_finish_all(s->engine, v2g_now_ms());
	v2g_bus_server_stop(s->rep);
	s->stopping = 1;
	/* Closing the receiving sockets wakes their threads at once. */
	nng_close(s->tel_sub);
	nng_close(s->in_pull);
	pthread_join(s->timer_thread, NULL);
	pthread_join(s->tel_thread, NULL);
	pthread_join(s->in_thread, NULL);
	v2g_bus_peers_free(s->tel_peers);
	/* Let the PUSH sockets deliver what they hold before closing: only
	 * what was sent in the last PUSH_FLUSH_MS may still be there. */
	int64_t flush = atomic_load(&s->last_push_ms);
	int64_t left = flush ? flush + PUSH_FLUSH_MS - v2g_mono_ms() : 0;
	if (left > 0)
		usleep((useconds_t)left * 1000);
	nng_close(s->gw_push);
	nng_close(s->store_push);
	v2g_bus_client_close(s->gw_client);
	v2g_bus_client_close(s->store_client);
	disp_engine_free(s->engine);
	disp_predictor_free(s->pred);
	disp_fleet_free(s->fleet);
	free(s);
}
