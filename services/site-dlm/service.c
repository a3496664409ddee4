#include "service.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capability.h"
#include "control.h"
#include "learn.h"
#include "loop.h"
#include "v2g/audit_sink.h"
#include "v2g/breaker.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/sync.h"
#include "v2g/timeutil.h"
#include "v2g/watchdog.h"

/* --- the running service ------------------------------------------------- */

/* One cycle's SetpointBatch: built under mu (station ids copied out of the
 * loop, which may drop a station once mu is released), sent after it, so
 * that a slow gateway holds neither the REST operations nor the meters. */
struct sp_batch {
	size_t n, cap;
	V2g__V1__Setpoint *v;
	V2g__V1__Setpoint **pv;
	V2g__V1__Phases *ph;
	char (*ids)[DLM_CAP_ID_LEN];
};

struct dlm_service {
	struct v2g_service *svc;
	const struct dlm_settings *st;
	char site[64];
	pthread_mutex_t mu;
	struct dlm_site *dsite;
	struct dlm_shed *shed;
	struct dlm_failsafe *fs;
	struct dlm_cap_registry *caps;
	struct dlm_learned *learned; /* stations' last announcements (learn.h) */
	struct dlm_loop *loop;
	struct dlm_setpoint *sp; /* cycle output, sp_cap entries */
	size_t sp_cap;
	struct sp_batch batch;  /* the cycle thread's */
	struct dlm_ctl_ctx ctl; /* the REST operations (control.h), under mu */
	struct v2g_audit_sink *audit;
	struct v2g_breaker_registry *breakers;
	struct v2g_breaker *gw_breaker; /* around the setpoint PUSH */
	struct v2g_watchdog_registry *wd;
	struct v2g_watchdog *wd_cycle, *wd_meters;
	int cap_failing; /* the last SiteCapacity could not be sent */
	struct v2g_bus_server *rep;
	struct v2g_bus_peers *tel_peers;
	nng_socket tel_sub, gw_push, cap_push;
	pthread_t tel_thread, cycle_thread;
	int threads;
	volatile int stopping;
	pthread_mutex_t stop_mu; /* with stop_cv: wakes the cycle thread's wait */
	pthread_cond_t stop_cv;
	_Atomic int64_t last_push_ms; /* monotonic; last batch handed to a PUSH socket */
	struct v2g_metric *m_cycle, *m_avail, *m_shed, *m_fs, *m_sent, *m_stations, *m_bad,
	        *m_send_fail, *m_held, *m_cap_sent, *m_cap_fail, *m_wd;
};

/* Who asks, from the request (the api-gateway's actor; "api" when none). */
static void request_actor(const V2g__V1__DlmActor *a, struct v2g_audit_actor *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->type, sizeof(out->type), "%s", a && a->type && a->type[0] ? a->type : "api");
	snprintf(out->id, sizeof(out->id), "%s", a && a->id ? a->id : "");
	snprintf(out->name, sizeof(out->name), "%s", a && a->name ? a->name : "");
}

/* bus.dlm: one DlmRequest -> one DlmReply (control.h), under mu. */
static void handle(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	struct dlm_service *s = arg;
	if (req->body_case != V2G__V1__ENVELOPE__BODY_DLM_REQUEST || !req->dlm_request) {
		v2g_counter_inc(s->m_bad, "request");
		v2g_bus_reply_error(rep, 400, "site-dlm: expected a DlmRequest");
		return;
	}
	const V2g__V1__DlmRequest *q = req->dlm_request;
	struct v2g_audit_actor actor;
	json_t *body = NULL;
	request_actor(q->actor, &actor);
	pthread_mutex_lock(&s->mu);
	int status = dlm_control(&s->ctl, q->op, q->station, q->body_json,
	                         q->body_json ? strlen(q->body_json) : 0, q->query, &actor,
	                         v2g_mono_ms(), &body);
	pthread_mutex_unlock(&s->mu);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text) {
		v2g_bus_reply_error(rep, 500, "site-dlm: out of memory");
		return;
	}
	V2g__V1__DlmReply r = V2G__V1__DLM_REPLY__INIT;
	r.status = status;
	r.body_json = text;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_DLM_REPLY;
	env.dlm_reply = &r;
	v2g_bus_reply_send(rep, &env);
	free(text);
}

/* The audit callback of the control operations and the cycle. */
static void audit_out(void *arg, const struct v2g_audit_event *ev)
{
	struct dlm_service *s = arg;
	int rc = v2g_audit_sink_emit(s->audit, ev);
	if (rc)
		v2g_warn("DLM-AUDIT", "site=%s: audit event %s not queued: %s", s->site, ev->action,
		         v2g_strerror(rc));
}

static void on_watchdog(void *arg, const char *name, int64_t overdue_ms)
{
	struct dlm_service *s = arg;
	v2g_counter_inc(s->m_wd, name);
	if (strcmp(name, "control_cycle") == 0)
		v2g_error("DLM-WATCHDOG",
		          "site=%s watchdog %s: no control cycle for %lld ms (timeout %d ms): "
		          "not ready",
		          s->site, name, (long long)(5 * s->st->cycle_ms + overdue_ms),
		          5 * s->st->cycle_ms);
	else
		v2g_warn("DLM-WATCHDOG", "site=%s watchdog %s: no meter from the site for %lld ms",
		         s->site, name, (long long)(s->st->comm_timeout_ms + overdue_ms));
}

/* Health check "control-cycle" (critical): fails while the control_cycle
 * watchdog has expired. Polls the watchdogs too (a stalled cycle thread
 * cannot). */
static int cycle_probe(void *arg, char *detail, size_t len)
{
	struct dlm_service *s = arg;
	v2g_watchdog_poll(s->wd, v2g_mono_ms());
	if (v2g_watchdog_expired(s->wd_cycle)) {
		snprintf(detail, len, "no control cycle for over %d ms", 5 * s->st->cycle_ms);
		return 1;
	}
	return 0;
}

static int phases_ok(const V2g__V1__Phases *p)
{
	return p && !isnan(p->a) && !isnan(p->b) && !isnan(p->c);
}

/* What the meter says about its charger (learn.h). */
static void meter_shape(const V2g__V1__StationMeter *m, struct dlm_meter_shape *sh)
{
	memset(sh, 0, sizeof(*sh));
	if (m->kind && (!strcmp(m->kind, "ac") || !strcmp(m->kind, "dc")))
		memcpy(sh->ann.kind, m->kind, 3);
	sh->ann.phases = m->phases == 1 || m->phases == 3 ? m->phases : 0;
	sh->ann.max_kw = m->max_kw > 0 && isfinite(m->max_kw) ? m->max_kw : 0;
	sh->ann.priority = m->priority >= 1 && m->priority <= 10 ? m->priority : 0;
	sh->has_current = m->current_a != NULL;
	sh->current_a[0] = m->current_a ? m->current_a->a : NAN;
	sh->current_a[1] = m->current_a ? m->current_a->b : NAN;
	sh->current_a[2] = m->current_a ? m->current_a->c : NAN;
}

static int plan_has_overrides(const struct dlm_station_plan *p)
{
	return p->ov.current_max > 0 || p->ov.power_max_kw > 0 || p->ov.power_min_kw > 0;
}

/* Overrides that rebuild cap exactly from its profile (to undo a change). */
static void cap_overrides(const struct dlm_cap *cap, struct dlm_cap_overrides *ov)
{
	*ov = (struct dlm_cap_overrides){ .type = cap->type,
		                          .connector = cap->connector,
		                          .voltage_min = cap->voltage_min,
		                          .voltage_max = cap->voltage_max,
		                          .current_min = cap->current_min,
		                          .current_max = cap->current_max,
		                          .power_min_kw = cap->power_min_kw,
		                          .power_max_kw = cap->power_max_kw,
		                          .phases = cap->phases,
		                          .features_set = 1,
		                          .features = cap->features };
}

/* Records the station's capability per plan, then adds (or reconfigures)
 * it in the loop, keeping its demand and its operator override. On error
 * the station is left as it was (or, when even that fails, forgotten: the
 * next meter learns it again). */
static int apply_plan(struct dlm_service *s, const char *station, const struct dlm_station_plan *p,
                      int64_t now)
{
	const struct dlm_cap *old = dlm_cap_get(s->caps, station);
	struct dlm_cap before;
	struct dlm_loop_station_cfg sc = { .id = station,
		                           .priority = p->priority,
		                           .demand_kw = -1,
		                           .rotation = p->rotation,
		                           .failsafe = NULL },
	                            prev = sc;
	int rc;

	if (old) {
		before = *old;
		if (dlm_loop_station_info(s->loop, station, &prev) == 0) {
			sc.demand_kw = prev.demand_kw;
			prev.id = station;
		}
	}
	rc = dlm_cap_discover(s->caps, station, "mqtt", p->profile,
	                      plan_has_overrides(p) ? &p->ov : NULL, NULL);
	if (rc)
		return rc;
	rc = dlm_loop_add_station(s->loop, &sc, now);
	if (rc) {
		struct dlm_cap_overrides ov;
		if (!old) {
			dlm_cap_remove(s->caps, station);
			return rc;
		}
		cap_overrides(&before, &ov);
		if (dlm_cap_discover(s->caps, station, before.protocol, before.profile, &ov,
		                     NULL) ||
		    dlm_loop_add_station(s->loop, &prev, now)) {
			dlm_loop_remove_station(s->loop, station);
			dlm_cap_remove(s->caps, station);
		}
		return rc;
	}
	/* its operator override is kept by the loop (in amps if given so) */
	return V2G_OK;
}

/* A station first heard: its capability from its meter (learn.h). */
static int learn_station(struct dlm_service *s, const V2g__V1__StationMeter *m, int64_t now)
{
	struct dlm_meter_shape sh;
	struct dlm_station_plan p;

	if (dlm_loop_station_count(s->loop) >= (size_t)s->st->max_stations)
		return V2G_ERR_TOOBIG;
	meter_shape(m, &sh);
	dlm_learn_plan(&sh, s->st->default_priority, &p);
	int rc = apply_plan(s, m->station, &p, now);
	if (rc)
		return rc;
	if (dlm_learned_put(s->learned, m->station, &sh.ann))
		v2g_warn("DLM-STATION-NOMEM", "site=%s station=%s: its announcement is not kept",
		         s->site, m->station);
	static const struct dlm_announce none;
	v2g_info("DLM-STATION-NEW",
	         "site=%s station=%s profile=%s max=%.1f kW rotation=%d priority=%d (%s)", s->site,
	         m->station, p.profile, dlm_cap_get(s->caps, m->station)->power_max_kw, p.rotation,
	         p.priority,
	         !dlm_announce_diff(&sh.ann, &none) ? "inferred from the meter"
	         : p.inferred                       ? "announced in part"
	                                            : "announced");
	return V2G_OK;
}

/* A known station: when its announcement changed since it was last
 * applied, plan it again (capability) or just move its priority. */
static void relearn_station(struct dlm_service *s, const V2g__V1__StationMeter *m, int64_t now)
{
	struct dlm_meter_shape sh;
	struct dlm_announce last;
	struct dlm_station_plan p;

	meter_shape(m, &sh);
	if (dlm_learned_get(s->learned, m->station, &last)) {
		/* Added by an operator (capabilities/discover) before its first
		 * meter: that announcement is the baseline; only a later change
		 * re-plans the station (see service.h). */
		if (dlm_learned_put(s->learned, m->station, &sh.ann))
			v2g_warn("DLM-STATION-NOMEM",
			         "site=%s station=%s: its announcement is not kept", s->site,
			         m->station);
		return;
	}
	unsigned diff = dlm_announce_diff(&last, &sh.ann);
	if (!diff)
		return;
	dlm_learn_plan(&sh, s->st->default_priority, &p);
	int rc = 0;
	if (diff & DLM_ANN_CAP)
		rc = apply_plan(s, m->station, &p, now);
	else
		rc = dlm_loop_set_priority(s->loop, m->station, p.priority);
	/* Recorded even on failure: one attempt (and line) per change. */
	dlm_learned_put(s->learned, m->station, &sh.ann);
	if (rc) {
		v2g_warn("DLM-STATION-CHANGE-FAIL",
		         "site=%s station=%s: new announcement (kind=%s phases=%d max_kw=%g "
		         "priority=%d) not applied: %s",
		         s->site, m->station, sh.ann.kind[0] ? sh.ann.kind : "-", sh.ann.phases,
		         sh.ann.max_kw, sh.ann.priority, v2g_strerror(rc));
		return;
	}
	dlm_control_station_learned(&s->ctl, "station_changed", m->station, "announcement");
	if (diff & DLM_ANN_CAP)
		v2g_info("DLM-STATION-CHANGE",
		         "site=%s station=%s announces kind=%s phases=%d max_kw=%g: profile=%s "
		         "max=%.1f kW priority=%d",
		         s->site, m->station, sh.ann.kind[0] ? sh.ann.kind : "-", sh.ann.phases,
		         sh.ann.max_kw, p.profile, dlm_cap_get(s->caps, m->station)->power_max_kw,
		         p.priority);
	else
		v2g_info("DLM-STATION-CHANGE", "site=%s station=%s priority %d -> %d", s->site,
		         m->station, last.priority ? last.priority : s->st->default_priority,
		         p.priority);
}

static void feed_station(struct dlm_service *s, const V2g__V1__StationMeter *m, int64_t now)
{
	if (!m->site || strcmp(m->site, s->site) != 0 || !m->station || !m->station[0])
		return;
	if (!isfinite(m->power_kw) || fabs(m->power_kw) > DLM_METER_MAX_KW) {
		v2g_counter_inc(s->m_bad, "station_meter"); /* not learnt from either */
		return;
	}
	if (!dlm_cap_get(s->caps, m->station)) {
		int rc = learn_station(s, m, now);
		if (rc) {
			v2g_counter_inc(s->m_bad, "station_meter");
			return;
		}
		dlm_control_station_learned(&s->ctl, "station_added", m->station, "meter");
	} else {
		relearn_station(s, m, now);
	}
	double cur[3];
	const double *pc = NULL;
	if (phases_ok(m->current_a)) {
		cur[0] = m->current_a->a;
		cur[1] = m->current_a->b;
		cur[2] = m->current_a->c;
		pc = cur;
	}
	if (dlm_loop_station_meter(s->loop, m->station, m->power_kw, pc, m->temperature_c, m->soc,
	                           m->status && m->status[0] ? m->status : NULL, now))
		v2g_counter_inc(s->m_bad, "station_meter");
}

static void feed_site(struct dlm_service *s, const V2g__V1__SiteMeter *m, int64_t now)
{
	if (!m->site || strcmp(m->site, s->site) != 0)
		return;
	struct dlm_service_meas meas = { .power_kw = m->power_kw,
		                         .current_a = { NAN, NAN, NAN },
		                         /* the simulator and most meters report
		                          * phase-to-neutral voltage; the service is
		                          * configured line-to-line: not compared */
		                         .voltage_v = { NAN, NAN, NAN },
		                         .power_factor = m->power_factor,
		                         .frequency_hz = m->frequency_hz };
	if (phases_ok(m->current_a)) {
		meas.current_a[0] = m->current_a->a;
		meas.current_a[1] = m->current_a->b;
		meas.current_a[2] = m->current_a->c;
	}
	if (isnan(m->power_kw) || dlm_loop_site_meter(s->loop, &meas, now))
		v2g_counter_inc(s->m_bad, "site_meter");
}

static void *telemetry_main(void *arg)
{
	struct dlm_service *s = arg;
	while (!s->stopping) {
		v2g_env *env;
		v2g_watchdog_poll(s->wd, v2g_mono_ms());
		int rc = v2g_bus_recv(s->tel_sub, &env, 200);
		if (rc == V2G_ERR_TIMEOUT)
			continue;
		if (rc == V2G_ERR_CLOSED)
			break;
		if (rc) {
			v2g_counter_inc(s->m_bad, "telemetry");
			continue;
		}
		if (env->body_case == V2G__V1__ENVELOPE__BODY_METERS && env->meters) {
			int64_t now = v2g_mono_ms();
			int ours = 0;
			for (size_t i = 0; !ours && i < env->meters->n_stations; i++)
				ours = env->meters->stations[i]->site &&
				       !strcmp(env->meters->stations[i]->site, s->site);
			for (size_t i = 0; !ours && i < env->meters->n_sites; i++)
				ours = env->meters->sites[i]->site &&
				       !strcmp(env->meters->sites[i]->site, s->site);
			if (ours)
				v2g_watchdog_kick(s->wd_meters, now);
			pthread_mutex_lock(&s->mu);
			for (size_t i = 0; i < env->meters->n_stations; i++)
				feed_station(s, env->meters->stations[i], now);
			for (size_t i = 0; i < env->meters->n_sites; i++)
				feed_site(s, env->meters->sites[i], now);
			pthread_mutex_unlock(&s->mu);
		}
		/* vehicle telemetry shares this publisher: not ours */
		v2g_env_free(env);
	}
	return NULL;
}

static int grow_batch(struct sp_batch *b, size_t n)
{
	if (n <= b->cap)
		return 0;
	void *v = realloc(b->v, n * sizeof(*b->v));
	if (v)
		b->v = v;
	void *pv = realloc(b->pv, n * sizeof(*b->pv));
	if (pv)
		b->pv = pv;
	void *ph = realloc(b->ph, n * sizeof(*b->ph));
	if (ph)
		b->ph = ph;
	void *ids = realloc(b->ids, n * sizeof(*b->ids));
	if (ids)
		b->ids = ids;
	if (!v || !pv || !ph || !ids)
		return V2G_ERR_NOMEM;
	b->cap = n;
	return 0;
}

/* The cycle's setpoints s->sp[0..n) into s->batch, under mu. */
static int prepare_setpoints(struct dlm_service *s, size_t n)
{
	struct sp_batch *b = &s->batch;
	b->n = 0;
	if (grow_batch(b, n)) {
		v2g_counter_inc(s->m_send_fail, NULL);
		return V2G_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct dlm_setpoint *p = &s->sp[i];
		V2g__V1__Setpoint *v = &b->v[i];
		v2g__v1__setpoint__init(v);
		snprintf(b->ids[i], sizeof(b->ids[i]), "%s", p->station);
		v->site = s->site;
		v->station = b->ids[i];
		v->power_kw = p->power_kw;
		if (p->type == DLM_CAP_AC) {
			/* A single-phase station's L1 current is given on every
			 * site phase: the station takes the one it is wired on
			 * (the gateway's setpoint names no wiring). Three-phase
			 * stations are balanced: L1..L3 = A..C. */
			const struct dlm_cap *cap = dlm_cap_get(s->caps, p->station);
			int single = cap && cap->phases == 1;
			V2g__V1__Phases *ph = &b->ph[i];
			v2g__v1__phases__init(ph);
			ph->a = p->current_a[0];
			ph->b = single ? p->current_a[0] : p->current_a[1];
			ph->c = single ? p->current_a[0] : p->current_a[2];
			v->phase_currents_a = ph;
		}
		b->pv[i] = v;
	}
	b->n = n;
	return 0;
}

/* The send timeout of a batch: half a cycle, at most 500 ms (the socket
 * has no buffer, so a send waits for the gateway's connection). */
static int setpoint_timeout_ms(const struct dlm_service *s)
{
	int t = s->st->cycle_ms / 2;
	return t > 500 ? 500 : t < 10 ? 10 : t;
}

/* s->batch to the gateway, outside mu. */
static void send_setpoints(struct dlm_service *s)
{
	struct sp_batch *bt = &s->batch;
	size_t n = bt->n;
	V2g__V1__SetpointBatch b = V2G__V1__SETPOINT_BATCH__INIT;
	b.n_setpoints = n;
	b.setpoints = bt->pv;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_SETPOINTS;
	env.setpoints = &b;
	/* Through the gateway_setpoints breaker: while the gateway does not
	 * take them, the cycle stops waiting on it (each batch carries every
	 * setpoint, so the first one through after the reset catches up). */
	enum v2g_breaker_state before = v2g_breaker_state(s->gw_breaker);
	int64_t t0 = v2g_now_ms();
	int rc = v2g_breaker_allow(s->gw_breaker, t0);
	if (rc) {
		v2g_counter_inc(s->m_held, NULL);
		return;
	}
	rc = v2g_bus_send(s->gw_push, &env, setpoint_timeout_ms(s));
	atomic_store(&s->last_push_ms, v2g_mono_ms());
	int64_t t1 = v2g_now_ms();
	if (rc) {
		v2g_breaker_failure(s->gw_breaker, t1);
		v2g_counter_inc(s->m_send_fail, NULL);
		v2g_warn("DLM-BUS-SEND", "site=%s: %zu setpoints not handed to the gateway: %s",
		         s->site, n, v2g_strerror(rc));
	} else {
		v2g_breaker_success(s->gw_breaker, t1, t1 - t0);
		v2g_counter_add(s->m_sent, s->site, (double)n);
	}
	enum v2g_breaker_state after = v2g_breaker_state(s->gw_breaker);
	if (after != before)
		v2g_log(after == V2G_BREAKER_OPEN ? V2G_LOG_ERROR : V2G_LOG_INFO, "DLM-BREAKER",
		        "site=%s breaker gateway_setpoints %s -> %s%s", s->site,
		        v2g_breaker_state_name(before), v2g_breaker_state_name(after),
		        after == V2G_BREAKER_OPEN ? ": setpoints held back until it resets" : "");
}

/* SiteCapacity to the dispatch engine (bus.dispatch_in), outside mu. */
static void send_capacity(struct dlm_service *s, double avail, double limit, double load)
{
	V2g__V1__SiteCapacity c = V2G__V1__SITE_CAPACITY__INIT;
	c.site = s->site;
	c.available_kw = avail;
	c.ts_ms = v2g_now_ms();
	c.limit_kw = limit;
	c.load_kw = load;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_SITE_CAPACITY;
	env.site_capacity = &c;
	int rc = v2g_bus_send(s->cap_push, &env, 20);
	atomic_store(&s->last_push_ms, v2g_mono_ms());
	if (rc) {
		v2g_counter_inc(s->m_cap_fail, NULL);
		if (!s->cap_failing)
			v2g_warn("DLM-CAPACITY-SEND",
			         "site=%s: capacity not handed to the dispatch engine: %s "
			         "(counted in dlm_capacity_send_failures_total until it is)",
			         s->site, v2g_strerror(rc));
		s->cap_failing = 1;
		return;
	}
	if (s->cap_failing)
		v2g_info("DLM-CAPACITY-SEND", "site=%s: capacity reaches the dispatch engine again",
		         s->site);
	s->cap_failing = 0;
	v2g_counter_inc(s->m_cap_sent, s->site);
}

static void run_cycle(struct dlm_service *s)
{
	size_t n = 0;
	double t0 = v2g_mono_s();

	if (v2g_watchdog_expired(s->wd_cycle))
		v2g_info("DLM-WATCHDOG", "site=%s watchdog control_cycle: cycles again", s->site);
	v2g_watchdog_kick(s->wd_cycle, v2g_mono_ms());
	pthread_mutex_lock(&s->mu);
	size_t want = dlm_loop_station_count(s->loop);
	if (want > s->sp_cap) {
		struct dlm_setpoint *ns = realloc(s->sp, want * sizeof(*ns));
		if (ns) {
			s->sp = ns;
			s->sp_cap = want;
		}
	}
	int rc = dlm_loop_cycle(s->loop, v2g_mono_ms(), s->sp, s->sp_cap, &n);
	if (n > s->sp_cap)
		n = s->sp_cap;
	if (rc) {
		pthread_mutex_unlock(&s->mu);
		v2g_warn("DLM-CYCLE-FAIL", "site=%s: %s", s->site, v2g_strerror(rc));
		return;
	}
	const struct dlm_loop_stats *ls = dlm_loop_stats(s->loop);
	double avail = dlm_loop_available_kw(s->loop);
	v2g_histogram_observe(s->m_cycle, NULL, v2g_mono_s() - t0);
	v2g_gauge_set(s->m_avail, s->site, avail);
	v2g_gauge_set(s->m_shed, s->site, ls->shed_level);
	v2g_gauge_set(s->m_fs, s->site, (double)ls->in_failsafe);
	v2g_gauge_set(s->m_stations, s->site, (double)ls->stations);
	v2g_debug("DLM-CYCLE",
	          "site=%s cycle=%llu stations=%zu load=%.1f limit=%.1f available=%.1f "
	          "setpoints=%.1f kW shed=%d binding=%s",
	          s->site, (unsigned long long)ls->cycles, ls->stations, ls->site_load_kw,
	          ls->site_limit_kw, avail, ls->setpoint_kw, ls->shed_level, ls->binding);
	dlm_control_after_cycle(&s->ctl, v2g_mono_ms());
	int have = n > 0 && prepare_setpoints(s, n) == 0;
	double limit = ls->site_limit_kw, load = ls->site_load_kw;
	pthread_mutex_unlock(&s->mu);
	if (have)
		send_setpoints(s);
	send_capacity(s, avail, limit, load);
}

static void *cycle_main(void *arg)
{
	struct dlm_service *s = arg;
	int64_t next = v2g_mono_ms();
	while (!s->stopping) {
		int64_t now = v2g_mono_ms();
		if (now < next) {
			/* stop wakes it */
			pthread_mutex_lock(&s->stop_mu);
			if (!s->stopping)
				v2g_cond_wait_ms(&s->stop_cv, &s->stop_mu, next - now);
			pthread_mutex_unlock(&s->stop_mu);
			continue;
		}
		run_cycle(s);
		next += s->st->cycle_ms;
		if (next < now)
			next = now + s->st->cycle_ms; /* fell behind: no burst */
	}
	return NULL;
}

int dlm_service_start(struct dlm_service **out, struct v2g_service *svc,
                      const struct dlm_settings *st)
{
	struct dlm_service *s = calloc(1, sizeof(*s));
	const struct v2g_common_cfg *c = &svc->common;
	int rc;

	if (!s)
		return V2G_ERR_NOMEM;
	s->svc = svc;
	s->st = st;
	snprintf(s->site, sizeof(s->site), "%s", st->site);
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->stop_mu, NULL);
	v2g_cond_init_mono(&s->stop_cv);
	static const double buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
		                          0.005,  0.01,    0.025,  0.05,  0.1 };
	s->m_cycle = v2g_histogram("dlm_cycle_seconds", "Computation time of a DLM control cycle",
	                           NULL, buckets, sizeof(buckets) / sizeof(buckets[0]));
	s->m_avail = v2g_gauge("dlm_site_available_kw",
	                       "Capacity the site can still take after the last cycle", "site");
	s->m_shed = v2g_gauge("dlm_shedding_level", "Load shedding level (0-5)", "site");
	s->m_fs =
	        v2g_gauge("dlm_failsafe_stations", "Stations on their fail-safe setpoint", "site");
	s->m_stations = v2g_gauge("dlm_stations", "Stations under control", "site");
	s->m_sent =
	        v2g_counter("dlm_setpoints_sent_total", "Setpoints handed to the gateway", "site");
	s->m_bad = v2g_counter("dlm_bad_messages_total", "Meter messages refused", "kind");
	s->m_send_fail =
	        v2g_counter("dlm_bus_send_failures_total",
	                    "Setpoint batches that could not be handed to the gateway", NULL);
	s->m_held = v2g_counter("dlm_setpoints_held_total",
	                        "Setpoint batches held back by the open gateway_setpoints breaker",
	                        NULL);
	s->m_cap_sent = v2g_counter("dlm_capacity_sent_total",
	                            "SiteCapacity messages handed to the dispatch engine", "site");
	s->m_cap_fail =
	        v2g_counter("dlm_capacity_send_failures_total",
	                    "SiteCapacity messages not handed to the dispatch engine", NULL);
	s->m_wd = v2g_counter("dlm_watchdog_timeouts_total", "Watchdog expiries", "watchdog");
	v2g_counter_add(s->m_cap_sent, s->site, 0);
	v2g_gauge_set(s->m_avail, s->site, 0);
	v2g_gauge_set(s->m_shed, s->site, 0);
	v2g_gauge_set(s->m_fs, s->site, 0);
	v2g_gauge_set(s->m_stations, s->site, 0);
	v2g_counter_add(s->m_sent, s->site, 0);

	struct dlm_loop_cfg lc;
	dlm_loop_cfg_init(&lc);
	/* Always evaluated: dlm.shedding.enabled (which the API may change at
	 * run time) is the shedding state's own switch. */
	lc.shedding = 1;
	s->dsite = dlm_site_new();
	s->shed = dlm_shed_new(&st->shed);
	s->fs = dlm_failsafe_new(&st->failsafe);
	s->caps = dlm_cap_registry_alloc();
	s->learned = dlm_learned_alloc();
	if (!s->dsite || !s->shed || !s->fs || !s->caps || !s->learned) {
		rc = V2G_ERR_NOMEM;
		goto fail;
	}
	if ((rc = dlm_site_configure_service(s->dsite, &st->service)))
		goto fail;
	{
		/* feeders and transformers of the config file (checked already) */
		char why[256];
		if ((rc = dlm_settings_configure_site(st, s->dsite, why, sizeof(why)))) {
			v2g_error("DLM-START-FAIL", "site=%s: %s", s->site, why);
			goto fail;
		}
	}
	s->loop = dlm_loop_new(&lc, s->dsite, s->shed, s->fs, s->caps);
	if (!s->loop) {
		rc = V2G_ERR_NOMEM;
		goto fail;
	}
	/* Breakers and watchdogs (GET /api/circuit-breakers, /api/watchdogs). */
	struct v2g_breaker_opts bo = V2G_BREAKER_OPTS_DEFAULT;
	bo.failure_threshold = 3;
	bo.success_threshold = 1;
	bo.timeout_ms = 2000;
	bo.reset_timeout_ms = 10000;
	bo.max_retries = 0;
	s->breakers = v2g_breaker_registry_new();
	s->wd = v2g_watchdog_registry_new();
	if (!s->breakers || !s->wd) {
		rc = V2G_ERR_NOMEM;
		goto fail;
	}
	if ((rc = v2g_breaker_registry_get(s->breakers, "gateway_setpoints", &bo,
	                                   &s->gw_breaker)) ||
	    (rc = v2g_watchdog_create(s->wd, "control_cycle", 5 * (int64_t)st->cycle_ms,
	                              on_watchdog, s, &s->wd_cycle)) ||
	    (rc = v2g_watchdog_create(s->wd, "meters", st->comm_timeout_ms, on_watchdog, s,
	                              &s->wd_meters)))
		goto fail;
	v2g_watchdog_start(s->wd_cycle, v2g_mono_ms());
	v2g_watchdog_start(s->wd_meters, v2g_mono_ms());
	if ((rc = v2g_audit_sink_start(&s->audit, c->bus_store_in, 0)))
		goto fail;
	s->ctl = (struct dlm_ctl_ctx){ .site = s->site,
		                       .dsite = s->dsite,
		                       .shed = s->shed,
		                       .fs = s->fs,
		                       .caps = s->caps,
		                       .loop = s->loop,
		                       .breakers = s->breakers,
		                       .watchdogs = s->wd,
		                       .heartbeat_timeout_ms = 5 * (int64_t)st->cycle_ms,
		                       .max_stations = (size_t)st->max_stations,
		                       .default_priority = st->default_priority,
		                       .audit = audit_out,
		                       .audit_arg = s };
	if ((rc = v2g_bus_open_watched(&s->tel_sub, V2G_BUS_SUB, c->bus_telemetry, 0,
	                               &s->tel_peers)) ||
	    /* Unbuffered (PUSH_SYNC): buffered, a peer that is away would
	     * neither fail a send (no breaker, no failure counted) nor miss a
	     * batch: on its return it would get up to 1024 stale ones first. */
	    (rc = v2g_bus_open(&s->gw_push, V2G_BUS_PUSH_SYNC, c->bus_gateway_in, 0)) ||
	    (rc = v2g_bus_open(&s->cap_push, V2G_BUS_PUSH_SYNC, c->bus_dispatch_in, 0)))
		goto fail;
	v2g_health_add(svc->health, "control-cycle", 1, cycle_probe, s);
	/* Meters published before the subscription is up are lost. */
	v2g_health_add(svc->health, "telemetry-subscription", 1, v2g_health_bus_connected,
	               s->tel_peers);
	if (pthread_create(&s->tel_thread, NULL, telemetry_main, s)) {
		rc = V2G_ERR_IO;
		goto fail;
	}
	s->threads = 1;
	if (pthread_create(&s->cycle_thread, NULL, cycle_main, s)) {
		rc = V2G_ERR_IO;
		goto fail;
	}
	s->threads = 2;
	if ((rc = v2g_bus_server_start(&s->rep, c->bus_dlm, 1, handle, s, NULL, NULL)))
		goto fail;
	v2g_info("DLM-START",
	         "site=%s cycle=%d ms service=%.1f kW %.0f A x%.2f shedding %.2f/%.2f "
	         "fail-safe %.1f kW %s after %d ms",
	         s->site, st->cycle_ms, st->service.max_power_kw, st->service.max_current_a,
	         st->service.nec625_factor, st->shed.upper_threshold, st->shed.lower_threshold,
	         st->failsafe.safe_power_limit_kw,
	         dlm_offline_action_name(st->failsafe.offline_action), st->comm_timeout_ms);
	*out = s;
	return V2G_OK;
fail:
	/* start-up failure: the process exits; the OS reclaims the rest */
	v2g_error("DLM-START-FAIL", "cannot start: %s", v2g_strerror(rc));
	return rc;
}

void dlm_service_stop(struct dlm_service *s)
{
	if (!s)
		return;
	v2g_bus_server_stop(s->rep);
	pthread_mutex_lock(&s->stop_mu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->stop_cv);
	pthread_mutex_unlock(&s->stop_mu);
	/* Closing the subscriber wakes the telemetry thread's receive. */
	nng_close(s->tel_sub);
	if (s->threads >= 2)
		pthread_join(s->cycle_thread, NULL);
	if (s->threads >= 1)
		pthread_join(s->tel_thread, NULL);
	v2g_bus_peers_free(s->tel_peers);
	/* Let the PUSH sockets' connections finish writing the last batch
	 * before closing: only what was sent in the last 100 ms may not be
	 * written yet. */
	int64_t last = atomic_load(&s->last_push_ms);
	int64_t left = last ? last + 100 - v2g_mono_ms() : 0;
	if (left > 0)
		usleep((useconds_t)left * 1000);
	nng_close(s->gw_push);
	nng_close(s->cap_push);
	/* Nothing emits any more: hand the last events to the store. */
	v2g_audit_sink_stop(s->audit, 500);
	v2g_watchdog_registry_free(s->wd);
	v2g_breaker_registry_free(s->breakers);
	dlm_loop_free(s->loop);
	dlm_cap_registry_free(s->caps);
	dlm_learned_free(s->learned);
	dlm_failsafe_free(s->fs);
	dlm_shed_free(s->shed);
	dlm_site_free(s->dsite);
	free(s->sp);
	free(s->batch.v);
	free(s->batch.pv);
	free(s->batch.ph);
	free(s->batch.ids);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->stop_mu);
	pthread_cond_destroy(&s->stop_cv);
	free(s);
}
