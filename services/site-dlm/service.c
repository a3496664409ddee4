#include "service.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capability.h"
#include "loop.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

/* --- the running service ------------------------------------------------- */

struct dlm_service {
	struct v2g_service *svc;
	const struct dlm_settings *st;
	char site[64];
	pthread_mutex_t mu;
	struct dlm_site *dsite;
	struct dlm_shed *shed;
	struct dlm_failsafe *fs;
	struct dlm_cap_registry *caps;
	struct dlm_loop *loop;
	struct dlm_setpoint *sp; /* cycle output, sp_cap entries */
	size_t sp_cap;
	int last_shed_level;
	struct v2g_bus_server *rep;
	struct v2g_bus_peers *tel_peers;
	nng_socket tel_sub, gw_push;
	pthread_t tel_thread, cycle_thread;
	int threads;
	volatile int stopping;
	struct v2g_metric *m_cycle, *m_avail, *m_shed, *m_fs, *m_sent, *m_stations, *m_bad,
	        *m_send_fail;
};

static void handle(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	(void)arg;
	(void)req;
	v2g_bus_reply_error(rep, 501, "site-dlm: no control requests are served yet");
}

static int phases_ok(const V2g__V1__Phases *p)
{
	return p && !isnan(p->a) && !isnan(p->b) && !isnan(p->c);
}

/* The capability of a station first heard, from its meter (see service.h). */
static int learn_station(struct dlm_service *s, const V2g__V1__StationMeter *m, int64_t now)
{
	const char *profile = "ac_level2_three";
	int rotation = 0;

	if (dlm_loop_station_count(s->loop) >= (size_t)s->st->max_stations)
		return V2G_ERR_TOOBIG;
	if (!m->current_a) {
		profile = "dcfc_ccs_medium";
	} else if (phases_ok(m->current_a)) {
		double c[3] = { m->current_a->a, m->current_a->b, m->current_a->c };
		int on = 0;
		for (int i = 0; i < 3; i++) {
			if (c[i] > 0.5) {
				on++;
				rotation = i;
			}
		}
		if (on == 1)
			profile = "ac_level2_single";
		else
			rotation = 0;
	}
	int rc = dlm_cap_discover(s->caps, m->station, "mqtt", profile, NULL, NULL);
	if (rc)
		return rc;
	struct dlm_loop_station_cfg sc = { .id = m->station,
		                           .priority = s->st->default_priority,
		                           .demand_kw = -1,
		                           .rotation = rotation,
		                           .failsafe = NULL };
	rc = dlm_loop_add_station(s->loop, &sc, now);
	if (rc) {
		dlm_cap_remove(s->caps, m->station);
		return rc;
	}
	v2g_info("DLM-STATION-NEW", "site=%s station=%s profile=%s rotation=%d", s->site,
	         m->station, profile, rotation);
	return V2G_OK;
}

static void feed_station(struct dlm_service *s, const V2g__V1__StationMeter *m, int64_t now)
{
	if (!m->site || strcmp(m->site, s->site) != 0 || !m->station || !m->station[0])
		return;
	if (isnan(m->power_kw)) {
		v2g_counter_inc(s->m_bad, "station_meter");
		return;
	}
	if (!dlm_cap_get(s->caps, m->station)) {
		int rc = learn_station(s, m, now);
		if (rc) {
			v2g_counter_inc(s->m_bad, "station_meter");
			return;
		}
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

/* Logs level and fail-safe changes of the cycle just run (under mu). */
static void log_changes(struct dlm_service *s, const struct dlm_loop_stats *ls, size_t n)
{
	if (ls->shed_level != s->last_shed_level) {
		v2g_info("DLM-SHED", "site=%s level %d -> %d (%s) load=%.1f kW limit=%.1f kW",
		         s->site, s->last_shed_level, ls->shed_level,
		         dlm_shed_level_name(ls->shed_level), ls->site_load_kw, ls->site_limit_kw);
		s->last_shed_level = ls->shed_level;
	}
	if (!ls->fs_applied && !ls->fs_restored)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct dlm_setpoint *p = &s->sp[i];
		if (!p->changed)
			continue;
		int in = dlm_failsafe_in_failsafe(s->fs, p->station);
		if (p->failsafe && in == 1)
			v2g_info("DLM-FAILSAFE", "site=%s station=%s silent: fail-safe %.1f kW",
			         s->site, p->station, p->power_kw);
	}
	v2g_info("DLM-FAILSAFE", "site=%s applied=%zu restored=%zu in_failsafe=%zu", s->site,
	         ls->fs_applied, ls->fs_restored, ls->in_failsafe);
}

static void send_setpoints(struct dlm_service *s, size_t n)
{
	V2g__V1__Setpoint *v = calloc(n ? n : 1, sizeof(*v));
	V2g__V1__Setpoint **pv = calloc(n ? n : 1, sizeof(*pv));
	V2g__V1__Phases *ph = calloc(n ? n : 1, sizeof(*ph));
	if (!v || !pv || !ph) {
		v2g_counter_inc(s->m_send_fail, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct dlm_setpoint *p = &s->sp[i];
		v2g__v1__setpoint__init(&v[i]);
		v[i].site = s->site;
		v[i].station = (char *)p->station;
		v[i].power_kw = p->power_kw;
		if (p->type == DLM_CAP_AC) {
			/* A single-phase station's L1 current is given on every
			 * site phase: the station takes the one it is wired on
			 * (the gateway's setpoint names no wiring). Three-phase
			 * stations are balanced: L1..L3 = A..C. */
			const struct dlm_cap *cap = dlm_cap_get(s->caps, p->station);
			int single = cap && cap->phases == 1;
			v2g__v1__phases__init(&ph[i]);
			ph[i].a = p->current_a[0];
			ph[i].b = single ? p->current_a[0] : p->current_a[1];
			ph[i].c = single ? p->current_a[0] : p->current_a[2];
			v[i].phase_currents_a = &ph[i];
		}
		pv[i] = &v[i];
	}
	V2g__V1__SetpointBatch b = V2G__V1__SETPOINT_BATCH__INIT;
	b.n_setpoints = n;
	b.setpoints = pv;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_SETPOINTS;
	env.setpoints = &b;
	int rc = v2g_bus_send(s->gw_push, &env, 500);
	if (rc) {
		v2g_counter_inc(s->m_send_fail, NULL);
		v2g_warn("DLM-BUS-SEND", "site=%s: %zu setpoints not handed to the gateway: %s",
		         s->site, n, v2g_strerror(rc));
	} else {
		v2g_counter_add(s->m_sent, s->site, (double)n);
	}
out:
	free(v);
	free(pv);
	free(ph);
}

static void run_cycle(struct dlm_service *s)
{
	size_t n = 0;
	double t0 = v2g_mono_s();

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
	log_changes(s, ls, n);
	if (n > 0)
		send_setpoints(s, n);
	pthread_mutex_unlock(&s->mu);
}

static void *cycle_main(void *arg)
{
	struct dlm_service *s = arg;
	int64_t next = v2g_mono_ms();
	while (!s->stopping) {
		int64_t now = v2g_mono_ms();
		if (now < next) {
			int64_t wait = next - now;
			usleep((useconds_t)(wait > 100 ? 100 : wait) * 1000);
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
	v2g_gauge_set(s->m_avail, s->site, 0);
	v2g_gauge_set(s->m_shed, s->site, 0);
	v2g_gauge_set(s->m_fs, s->site, 0);
	v2g_gauge_set(s->m_stations, s->site, 0);
	v2g_counter_add(s->m_sent, s->site, 0);

	struct dlm_loop_cfg lc;
	dlm_loop_cfg_init(&lc);
	lc.shedding = st->shed_enabled;
	s->dsite = dlm_site_new();
	s->shed = dlm_shed_new(&st->shed);
	s->fs = dlm_failsafe_new(&st->failsafe);
	s->caps = dlm_cap_registry_alloc();
	if (!s->dsite || !s->shed || !s->fs || !s->caps) {
		rc = V2G_ERR_NOMEM;
		goto fail;
	}
	if ((rc = dlm_site_configure_service(s->dsite, &st->service)))
		goto fail;
	s->loop = dlm_loop_new(&lc, s->dsite, s->shed, s->fs, s->caps);
	if (!s->loop) {
		rc = V2G_ERR_NOMEM;
		goto fail;
	}
	if ((rc = v2g_bus_open_watched(&s->tel_sub, V2G_BUS_SUB, c->bus_telemetry, 0,
	                               &s->tel_peers)) ||
	    (rc = v2g_bus_open(&s->gw_push, V2G_BUS_PUSH, c->bus_gateway_in, 0)))
		goto fail;
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
	if ((rc = v2g_bus_server_start(&s->rep, c->bus_dlm, 1, handle, NULL, NULL, NULL)))
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
	s->stopping = 1;
	if (s->threads >= 2)
		pthread_join(s->cycle_thread, NULL);
	if (s->threads >= 1)
		pthread_join(s->tel_thread, NULL);
	/* Let the PUSH socket deliver the last batch before closing. */
	usleep(100 * 1000);
	nng_close(s->tel_sub);
	v2g_bus_peers_free(s->tel_peers);
	nng_close(s->gw_push);
	dlm_loop_free(s->loop);
	dlm_cap_registry_free(s->caps);
	dlm_failsafe_free(s->fs);
	dlm_shed_free(s->shed);
	dlm_site_free(s->dsite);
	free(s->sp);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
