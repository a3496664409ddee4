/* Charging-site model of v2g-site-sim; contract in site.h. */
#include "site.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"
#include "v2g/json.h"
#include "v2g/log.h"

/* Temperature rise at full power above ambient, and its time constant: a DC
 * cable heats a lot, an AC wallbox a little. */
#define DC_RISE_C  40.0
#define AC_RISE_C  15.0
#define TEMP_TAU_S 120.0
/* A DC charger tapers linearly from this SoC to zero at 100 %. */
#define DC_TAPER_SOC 80.0
#define CHARGING_KW  0.01

static const char *const phase_names[3] = { "A", "B", "C" };

int site_model_init(struct site_model *m, struct scn_scenario *sc)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	m->st = calloc(sc->nstations, sizeof(*m->st));
	if (!m->st)
		return V2G_ERR_NOMEM;
	m->n = sc->nstations;
	for (i = 0; i < m->n; i++) {
		m->st[i].cfg = sc->stations[i];
		m->st[i].temperature_c = sc->ambient_c;
	}
	m->base_load_kw = sc->base_load_kw;
	m->sc = *sc;
	memset(sc, 0, sizeof(*sc));
	/* Stations start at their steady state, not ramping up from zero. */
	for (i = 0; i < m->n; i++)
		m->st[i].power_kw = site_station_target(m, i);
	return 0;
}

void site_model_fini(struct site_model *m)
{
	free(m->st);
	scn_scenario_fini(&m->sc);
	memset(m, 0, sizeof(*m));
}

int site_model_find(const struct site_model *m, const char *id)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->st[i].cfg.id, id) == 0)
			return (int)i;
	return -1;
}

int site_setpoint_parse(const char *payload, size_t len, struct site_setpoint *sp, const char **why)
{
	json_t *root, *v, *pc;
	int k, rc = V2G_ERR_INVAL;

	memset(sp, 0, sizeof(*sp));
	root = v2g_json_loadb(payload, len, 0, NULL);
	if (!json_is_object(root)) {
		*why = "not a JSON object";
		goto out;
	}
	v = json_object_get(root, "power_kw");
	if (v && !json_is_null(v)) {
		if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
		    !isfinite(json_number_value(v))) {
			*why = "power_kw: not a number >= 0";
			goto out;
		}
		sp->has_power = 1;
		sp->power_kw = json_number_value(v);
	}
	pc = json_object_get(root, "phase_currents_a");
	if (pc && !json_is_null(pc)) {
		if (!json_is_object(pc)) {
			*why = "phase_currents_a: not an object";
			goto out;
		}
		for (k = 0; k < 3; k++) {
			v = json_object_get(pc, phase_names[k]);
			if (!v || json_is_null(v))
				continue;
			if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
			    !isfinite(json_number_value(v))) {
				*why = "phase_currents_a: a current is not a number >= 0";
				goto out;
			}
			sp->has_phase[k] = 1;
			sp->phase_a[k] = json_number_value(v);
		}
	}
	if (!sp->has_power && !sp->has_phase[0] && !sp->has_phase[1] && !sp->has_phase[2]) {
		*why = "neither power_kw nor phase_currents_a";
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

double site_setpoint_limit(const struct site_model *m, size_t i, const struct site_setpoint *sp)
{
	const struct scn_station *c = &m->st[i].cfg;
	double limit = -1, v = m->sc.voltage_v, pf = m->sc.power_factor;
	int k;

	if (sp->has_power)
		limit = sp->power_kw;
	if (c->kind != SCN_AC)
		return limit;
	if (c->phases == 1) {
		k = c->wiring;
		if (sp->has_phase[k]) {
			double p = v * sp->phase_a[k] * pf / 1000.0;
			limit = limit < 0 || p < limit ? p : limit;
		}
	} else {
		double imin = -1;
		for (k = 0; k < 3; k++)
			if (sp->has_phase[k] && (imin < 0 || sp->phase_a[k] < imin))
				imin = sp->phase_a[k];
		if (imin >= 0) {
			double p = 3.0 * v * imin * pf / 1000.0;
			limit = limit < 0 || p < limit ? p : limit;
		}
	}
	return limit;
}

int site_model_setpoint(struct site_model *m, size_t i, double limit_kw)
{
	struct site_station *s = &m->st[i];

	if (s->silent)
		return V2G_ERR_CLOSED;
	if (s->npending == SITE_PENDING_MAX) {
		/* Setpoints faster than the response delay: the oldest one takes
		 * effect early rather than being lost. */
		s->has_limit = 1;
		s->limit_kw = s->pending[0].limit_kw;
		memmove(&s->pending[0], &s->pending[1],
		        (SITE_PENDING_MAX - 1) * sizeof(s->pending[0]));
		s->npending--;
	}
	s->pending[s->npending].due_s = m->now_s + m->sc.response_delay_s;
	s->pending[s->npending].limit_kw = limit_kw;
	s->npending++;
	if (m->sc.response_delay_s <= 0)
		site_model_step(m, m->now_s);
	return 0;
}

static double station_demand(const struct site_station *s)
{
	double d = s->cfg.demand_kw;

	if (s->cfg.soc >= 100.0)
		return 0;
	if (s->cfg.kind == SCN_DC && s->cfg.soc > DC_TAPER_SOC)
		d *= (100.0 - s->cfg.soc) / (100.0 - DC_TAPER_SOC);
	return d;
}

double site_station_target(const struct site_model *m, size_t i)
{
	const struct site_station *s = &m->st[i];
	double t;

	if (s->faulted)
		return 0;
	t = station_demand(s);
	if (t > s->cfg.max_kw)
		t = s->cfg.max_kw;
	if (s->has_limit && s->limit_kw < t)
		t = s->limit_kw;
	return t < 0 ? 0 : t;
}

enum site_status site_station_status(const struct site_station *s)
{
	if (s->faulted)
		return SITE_FAULTED;
	return s->power_kw > CHARGING_KW ? SITE_CHARGING : SITE_IDLE;
}

static void fire_event(struct site_model *m, const struct scn_event *ev)
{
	struct site_station *s = ev->station >= 0 ? &m->st[ev->station] : NULL;
	const char *who = s ? s->cfg.id : m->sc.site;

	switch (ev->action) {
	case SCN_DEMAND: s->cfg.demand_kw = ev->value; break;
	case SCN_SILENT:
		s->silent = 1;
		s->npending = 0; /* what was in flight is lost with the link */
		break;
	case SCN_RETURN:
		s->silent = 0;
		s->faulted = 0;
		break;
	case SCN_FAULT:
		s->faulted = 1;
		s->power_kw = 0;
		break;
	case SCN_BASE_LOAD: m->base_load_kw = ev->value; break;
	}
	if (ev->action == SCN_DEMAND || ev->action == SCN_BASE_LOAD)
		v2g_info("SITESIM-EVENT", "t=%.1fs %s: %s %.1f kW", m->now_s, who,
		         scn_action_name(ev->action), ev->value);
	else
		v2g_info("SITESIM-EVENT", "t=%.1fs %s: %s", m->now_s, who,
		         scn_action_name(ev->action));
}

void site_model_step(struct site_model *m, double now_s)
{
	double dt = now_s > m->now_s ? now_s - m->now_s : 0;
	double ramp = m->sc.ramp_kw_per_s;
	size_t i, k;

	m->now_s = now_s > m->now_s ? now_s : m->now_s;
	while (m->next_event < m->sc.nevents && m->sc.events[m->next_event].at_s <= m->now_s)
		fire_event(m, &m->sc.events[m->next_event++]);

	for (i = 0; i < m->n; i++) {
		struct site_station *s = &m->st[i];
		double target, rise, full;

		for (k = 0; k < s->npending && s->pending[k].due_s <= m->now_s; k++) {
			s->has_limit = 1;
			s->limit_kw = s->pending[k].limit_kw;
		}
		if (k > 0) {
			memmove(&s->pending[0], &s->pending[k],
			        (s->npending - k) * sizeof(s->pending[0]));
			s->npending -= k;
		}

		target = site_station_target(m, i);
		if (s->faulted || ramp <= 0)
			s->power_kw = target;
		else if (s->power_kw < target)
			s->power_kw = fmin(target, s->power_kw + ramp * dt);
		else
			s->power_kw = fmax(target, s->power_kw - ramp * dt);

		s->cfg.soc += s->power_kw * dt / 3600.0 / s->cfg.battery_kwh * 100.0;
		if (s->cfg.soc > 100.0)
			s->cfg.soc = 100.0;

		rise = s->cfg.kind == SCN_DC ? DC_RISE_C : AC_RISE_C;
		full = m->sc.ambient_c + rise * s->power_kw / s->cfg.max_kw;
		s->temperature_c += (full - s->temperature_c) * (1.0 - exp(-dt / TEMP_TAU_S));
	}
}

/* Per-phase current of station i (A), AC side; DC chargers draw balanced. */
static void station_currents(const struct site_model *m, size_t i, double out[3])
{
	const struct site_station *s = &m->st[i];
	double va = m->sc.voltage_v * m->sc.power_factor;

	out[0] = out[1] = out[2] = 0;
	if (s->cfg.phases == 1)
		out[s->cfg.wiring] = s->power_kw * 1000.0 / va;
	else
		out[0] = out[1] = out[2] = s->power_kw * 1000.0 / (3.0 * va);
}

double site_model_power_kw(const struct site_model *m)
{
	double p = m->base_load_kw;
	size_t i;

	for (i = 0; i < m->n; i++)
		p += m->st[i].power_kw;
	return p;
}

void site_model_currents(const struct site_model *m, double out_a[3])
{
	double base = m->base_load_kw * 1000.0 / (3.0 * m->sc.voltage_v * m->sc.power_factor);
	double c[3];
	size_t i;
	int k;

	for (k = 0; k < 3; k++)
		out_a[k] = base;
	for (i = 0; i < m->n; i++) {
		station_currents(m, i, c);
		for (k = 0; k < 3; k++)
			out_a[k] += c[k];
	}
}

static json_t *real(double v, double scale)
{
	return json_real(round(v * scale) / scale);
}

static json_t *phases_json(const double v[3], double scale)
{
	json_t *o = json_object();
	int k;

	for (k = 0; o && k < 3; k++)
		json_object_set_new(o, phase_names[k], real(v[k], scale));
	return o;
}

static char *dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;

	json_decref(o);
	return s;
}

char *site_station_meter_json(const struct site_model *m, size_t i)
{
	static const char *const status_names[] = { "idle", "charging", "faulted" };
	const struct site_station *s = &m->st[i];
	double cur[3], volt[3] = { m->sc.voltage_v, m->sc.voltage_v, m->sc.voltage_v };
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "power_kw", real(s->power_kw, 1000));
	if (s->cfg.kind == SCN_AC) {
		station_currents(m, i, cur);
		json_object_set_new(o, "current_a", phases_json(cur, 100));
	}
	json_object_set_new(o, "voltage_v", phases_json(volt, 10));
	json_object_set_new(o, "temperature_c", real(s->temperature_c, 10));
	json_object_set_new(o, "soc", real(s->cfg.soc, 100));
	json_object_set_new(o, "status", json_string(status_names[site_station_status(s)]));
	/* Extensions (README): what a DLM would otherwise learn from config. */
	json_object_set_new(o, "kind", json_string(s->cfg.kind == SCN_AC ? "ac" : "dc"));
	json_object_set_new(o, "phases", json_integer(s->cfg.phases));
	json_object_set_new(o, "max_kw", real(s->cfg.max_kw, 1000));
	json_object_set_new(o, "priority", json_integer(s->cfg.priority));
	return dump(o);
}

char *site_meter_json(const struct site_model *m)
{
	double cur[3], volt[3] = { m->sc.voltage_v, m->sc.voltage_v, m->sc.voltage_v };
	json_t *o = json_object();

	if (!o)
		return NULL;
	site_model_currents(m, cur);
	json_object_set_new(o, "power_kw", real(site_model_power_kw(m), 1000));
	json_object_set_new(o, "current_a", phases_json(cur, 100));
	json_object_set_new(o, "voltage_v", phases_json(volt, 10));
	json_object_set_new(o, "power_factor", real(m->sc.power_factor, 1000));
	json_object_set_new(o, "frequency_hz", real(m->sc.frequency_hz, 1000));
	return dump(o);
}
