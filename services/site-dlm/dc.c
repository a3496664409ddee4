/* DC fast-charger control: see dc.h for the curves and the ramp rules. */
#include "dc.h"

#include <math.h>
#include <string.h>

#include "v2g/err.h"

double dlm_dc_thermal_factor(const struct dlm_dc_thermal *t, double temp_c)
{
	if (isnan(temp_c) || temp_c <= t->start_c)
		return 1.0;
	if (temp_c >= t->zero_c)
		return 0.0;
	return 1.0 - (temp_c - t->start_c) / (t->zero_c - t->start_c);
}

double dlm_dc_taper_factor(const struct dlm_dc_taper *t, double soc)
{
	if (!t->enabled || isnan(soc) || soc <= t->start_soc)
		return 1.0;
	double x = (soc - t->start_soc) / (100.0 - t->start_soc);
	if (x > 1)
		x = 1;
	return 1.0 - t->rate * x;
}

int dlm_dc_init(struct dlm_dc_charger *ch, const char *id, const struct dlm_cap *cap)
{
	size_t len;
	if (!ch || !id || !cap || cap->type != DLM_CAP_DC)
		return V2G_ERR_INVAL;
	len = strlen(id);
	if (len == 0 || len >= sizeof(ch->id))
		return V2G_ERR_INVAL;
	memset(ch, 0, sizeof(*ch));
	memcpy(ch->id, id, len + 1);
	ch->power_min_kw = cap->power_min_kw;
	ch->power_max_kw = cap->power_max_kw;
	ch->current_min_a = cap->current_min;
	ch->current_max_a = cap->current_max;
	ch->bidi_capable = (cap->features & DLM_FEAT_BIDIRECTIONAL) != 0;
	ch->ramp_kw_per_s = DLM_DC_DEFAULT_RAMP_KW_S;
	ch->thermal.start_c = DLM_DC_DERATE_START_C;
	ch->thermal.zero_c = DLM_DC_DERATE_ZERO_C;
	ch->taper.enabled = 0;
	ch->taper.start_soc = DLM_DC_DEFAULT_TAPER_SOC;
	ch->taper.rate = DLM_DC_DEFAULT_TAPER_RATE;
	ch->current_limit_a = cap->current_max;
	ch->last_step_ms = -1;
	return 0;
}

int dlm_dc_set_power_limit(struct dlm_dc_charger *ch, double kw)
{
	double m, hi;
	if (isnan(kw))
		return V2G_ERR_INVAL;
	if (kw < 0 && !ch->export_enabled)
		return V2G_ERR_INVAL;
	hi = kw < 0 ? ch->export_limit_kw : ch->power_max_kw;
	m = fabs(kw);
	if (m > hi)
		m = hi;
	if (m < ch->power_min_kw)
		m = 0;
	ch->target_kw = kw < 0 ? -m : m;
	return 0;
}

int dlm_dc_set_current_limit(struct dlm_dc_charger *ch, double amps)
{
	if (!(amps >= 0))
		return V2G_ERR_INVAL;
	if (amps > ch->current_max_a)
		amps = ch->current_max_a;
	if (amps < ch->current_min_a)
		amps = 0;
	ch->current_limit_a = amps;
	return 0;
}

int dlm_dc_set_ramp_rate(struct dlm_dc_charger *ch, double kw_per_s)
{
	if (!(kw_per_s > 0) || isinf(kw_per_s))
		return V2G_ERR_INVAL;
	ch->ramp_kw_per_s = kw_per_s;
	return 0;
}

int dlm_dc_set_thermal(struct dlm_dc_charger *ch, const struct dlm_dc_thermal *t)
{
	if (!t || !(t->zero_c > t->start_c))
		return V2G_ERR_INVAL;
	ch->thermal = *t;
	return 0;
}

int dlm_dc_set_taper(struct dlm_dc_charger *ch, const struct dlm_dc_taper *t)
{
	if (!t || !(t->start_soc >= 0 && t->start_soc < 100) || !(t->rate >= 0 && t->rate <= 1))
		return V2G_ERR_INVAL;
	ch->taper = *t;
	return 0;
}

int dlm_dc_update(struct dlm_dc_charger *ch, const struct dlm_dc_meas *m, int64_t now_ms)
{
	if (!m || isnan(m->power_kw) || isnan(m->current_a) || isnan(m->voltage_v) ||
	    isnan(m->temp_c) || !(m->soc >= 0 && m->soc <= 100))
		return V2G_ERR_INVAL;
	ch->meas = *m;
	ch->meas.at_ms = now_ms;
	ch->meas.valid = 1;
	ch->soc_valid = 1;
	return 0;
}

int dlm_dc_update_soc(struct dlm_dc_charger *ch, double soc)
{
	if (!(soc >= 0 && soc <= 100))
		return V2G_ERR_INVAL;
	ch->meas.soc = soc;
	ch->soc_valid = 1;
	return 0;
}

int dlm_dc_enable_bidirectional(struct dlm_dc_charger *ch, double export_kw)
{
	if (!ch->bidi_capable || !(export_kw > 0))
		return V2G_ERR_INVAL;
	ch->export_enabled = 1;
	ch->export_limit_kw = export_kw > ch->power_max_kw ? ch->power_max_kw : export_kw;
	if (ch->target_kw < -ch->export_limit_kw)
		ch->target_kw = -ch->export_limit_kw;
	return 0;
}

void dlm_dc_disable_bidirectional(struct dlm_dc_charger *ch)
{
	ch->export_enabled = 0;
	ch->export_limit_kw = 0;
	if (ch->target_kw < 0)
		ch->target_kw = 0;
}

static double thermal_now(const struct dlm_dc_charger *ch)
{
	return ch->meas.valid ? dlm_dc_thermal_factor(&ch->thermal, ch->meas.temp_c) : 1.0;
}

static double taper_now(const struct dlm_dc_charger *ch)
{
	return ch->soc_valid ? dlm_dc_taper_factor(&ch->taper, ch->meas.soc) : 1.0;
}

/* Power the current limit allows at the measured voltage; +inf before a
 * voltage is known (the charger enforces amps itself). */
static double current_kw(const struct dlm_dc_charger *ch)
{
	if (!ch->meas.valid || !(ch->meas.voltage_v > 0))
		return INFINITY;
	return ch->current_limit_a * ch->meas.voltage_v / 1000.0;
}

static double min2(double a, double b)
{
	return a < b ? a : b;
}

double dlm_dc_import_limit_kw(const struct dlm_dc_charger *ch)
{
	double lim = ch->power_max_kw;
	lim = min2(lim, ch->power_max_kw * thermal_now(ch));
	lim = min2(lim, ch->power_max_kw * taper_now(ch));
	lim = min2(lim, current_kw(ch));
	if (ch->current_limit_a <= 0)
		lim = 0;
	return lim > 0 ? lim : 0;
}

double dlm_dc_export_limit_kw(const struct dlm_dc_charger *ch)
{
	if (!ch->export_enabled)
		return 0;
	double lim = ch->export_limit_kw;
	lim = min2(lim, ch->power_max_kw * thermal_now(ch));
	lim = min2(lim, current_kw(ch));
	if (ch->current_limit_a <= 0)
		lim = 0;
	return lim > 0 ? lim : 0;
}

double dlm_dc_effective_target(const struct dlm_dc_charger *ch)
{
	double t = ch->target_kw, hi = dlm_dc_import_limit_kw(ch), lo = -dlm_dc_export_limit_kw(ch);
	if (t > hi)
		t = hi;
	if (t < lo)
		t = lo;
	return t;
}

double dlm_dc_step(struct dlm_dc_charger *ch, int64_t now_ms)
{
	double goal = dlm_dc_effective_target(ch);
	double hi = dlm_dc_import_limit_kw(ch), lo = -dlm_dc_export_limit_kw(ch);
	double cur = ch->setpoint_kw, dt_s = 0, delta;

	if (ch->last_step_ms >= 0 && now_ms > ch->last_step_ms)
		dt_s = (double)(now_ms - ch->last_step_ms) / 1000.0;
	if (ch->last_step_ms < 0 || now_ms > ch->last_step_ms)
		ch->last_step_ms = now_ms;
	delta = ch->ramp_kw_per_s * dt_s;

	/* A limit is a limit: never outside it, whatever the ramp. */
	if (cur > hi)
		cur = hi;
	if (cur < lo)
		cur = lo;
	if (!ch->ramp_down) {
		if ((cur > 0 && goal < cur) || (cur < 0 && goal > cur))
			cur = (cur > 0) == (goal > 0) && goal != 0 ? goal : 0;
	}
	if (goal > cur)
		cur = cur + delta > goal ? goal : cur + delta;
	else if (goal < cur)
		cur = cur - delta < goal ? goal : cur - delta;
	/* Nothing runs under the minimum: a ramp toward a goal at or over it
	 * skips the range below it (a start from 0, or from a setpoint left
	 * under it by a derating) and goes on from the minimum. */
	double mn = ch->power_min_kw;
	if (dt_s > 0 && mn > 0 && fabs(goal) >= mn && fabs(cur) < mn &&
	    (cur == 0 || (cur > 0) == (goal > 0)))
		cur = goal > 0 ? mn : -mn;
	ch->setpoint_kw = cur;
	return cur;
}

json_t *dlm_dc_status_json(const struct dlm_dc_charger *ch)
{
	json_t *meas = json_null();
	if (ch->meas.valid)
		meas = json_pack("{s:f,s:f,s:f,s:f,s:f,s:I}", "power_kw", ch->meas.power_kw,
		                 "current_a", ch->meas.current_a, "voltage_v", ch->meas.voltage_v,
		                 "temperature_c", ch->meas.temp_c, "soc", ch->meas.soc, "at_ms",
		                 (json_int_t)ch->meas.at_ms);
	double eff = dlm_dc_effective_target(ch);
	return json_pack("{s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,"
	                 "s:{s:b,s:f,s:f,s:f},s:{s:b,s:b,s:f},s:{s:f,s:f,s:f,s:f},s:o,s:b}",
	                 "id", ch->id, "target_kw", ch->target_kw, "setpoint_kw", ch->setpoint_kw,
	                 "effective_target_kw", eff, "import_limit_kw", dlm_dc_import_limit_kw(ch),
	                 "export_limit_kw", dlm_dc_export_limit_kw(ch), "current_limit_a",
	                 ch->current_limit_a, "ramp_kw_per_s", ch->ramp_kw_per_s, "thermal_factor",
	                 thermal_now(ch), "taper", "enabled", ch->taper.enabled, "start_soc",
	                 ch->taper.start_soc, "rate", ch->taper.rate, "factor", taper_now(ch),
	                 "bidirectional", "capable", ch->bidi_capable, "enabled",
	                 ch->export_enabled, "export_limit_kw", ch->export_limit_kw, "limits",
	                 "power_min_kw", ch->power_min_kw, "power_max_kw", ch->power_max_kw,
	                 "current_min_a", ch->current_min_a, "current_max_a", ch->current_max_a,
	                 "measurements", meas ? meas : json_null(), "ramping",
	                 fabs(ch->setpoint_kw - eff) > 1e-9);
}
