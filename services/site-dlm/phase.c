/* AC per-phase current control: see phase.h for the conventions. */
#include "phase.h"

#include <math.h>
#include <string.h>

#include "v2g/err.h"

/* Currents closer than this are the same setpoint (floating dust from
 * kW <-> A conversions must not keep a ramp from finishing). */
#define EPS_A 1e-9

void dlm_phase_cfg_init(struct dlm_phase_cfg *cfg)
{
	cfg->voltage_v = DLM_PHASE_DEFAULT_VOLTAGE;
	cfg->phases = 3;
	cfg->power_factor = 1.0;
	cfg->min_a = DLM_IEC_MIN_A;
	cfg->max_a = 32.0;
	cfg->rotation = 0;
}

int dlm_phase_cfg_from_cap(struct dlm_phase_cfg *cfg, const struct dlm_cap *cap)
{
	if (!cap || cap->type != DLM_CAP_AC)
		return V2G_ERR_INVAL;
	dlm_phase_cfg_init(cfg);
	cfg->voltage_v = dlm_cap_phase_voltage(cap);
	cfg->phases = cap->phases;
	cfg->min_a = cap->current_min < DLM_IEC_MIN_A ? DLM_IEC_MIN_A : cap->current_min;
	cfg->max_a = cap->current_max;
	return 0;
}

int dlm_phase_cfg_valid(const struct dlm_phase_cfg *cfg)
{
	return cfg && cfg->voltage_v > 0 && (cfg->phases == 1 || cfg->phases == 3) &&
	       cfg->power_factor > 0 && cfg->power_factor <= 1 && cfg->min_a >= DLM_IEC_MIN_A &&
	       cfg->max_a >= cfg->min_a && cfg->rotation >= 0 && cfg->rotation <= 2;
}

int dlm_phase_power_to_currents(const struct dlm_phase_cfg *cfg, double kw, double out[3])
{
	if (!dlm_phase_cfg_valid(cfg) || !isfinite(kw))
		return V2G_ERR_INVAL;
	double a = kw * 1000.0 / (cfg->phases * cfg->voltage_v * cfg->power_factor);
	out[0] = a;
	out[1] = cfg->phases == 3 ? a : 0;
	out[2] = cfg->phases == 3 ? a : 0;
	return 0;
}

double dlm_phase_currents_to_power(const struct dlm_phase_cfg *cfg, const double cur[3])
{
	double sum = 0;
	for (int p = 0; p < cfg->phases && p < 3; p++)
		sum += cur[p];
	return sum * cfg->voltage_v * cfg->power_factor / 1000.0;
}

double dlm_phase_limit_one(const struct dlm_phase_cfg *cfg, double amps)
{
	double lo = cfg->min_a < DLM_IEC_MIN_A ? DLM_IEC_MIN_A : cfg->min_a;
	if (!(amps >= lo - EPS_A))
		return 0; /* also NaN */
	return amps > cfg->max_a ? cfg->max_a : amps;
}

void dlm_phase_balance(const struct dlm_phase_cfg *cfg, enum dlm_balance_mode mode,
                       const double in[3], double out[3])
{
	double v;
	if (cfg->phases != 3) {
		memmove(out, in, 3 * sizeof(double));
		return;
	}
	if (mode == DLM_BALANCE_MEAN) {
		v = (in[0] + in[1] + in[2]) / 3.0;
	} else {
		v = in[0];
		if (in[1] < v)
			v = in[1];
		if (in[2] < v)
			v = in[2];
	}
	out[0] = out[1] = out[2] = v;
}

int dlm_phase_setpoint(const struct dlm_phase_cfg *cfg, const double req[3], int auto_balance,
                       enum dlm_balance_mode mode, double out[3])
{
	double t[3];
	if (!dlm_phase_cfg_valid(cfg))
		return V2G_ERR_INVAL;
	for (int p = 0; p < 3; p++) {
		if (isnan(req[p]))
			return V2G_ERR_INVAL;
		t[p] = p < cfg->phases ? req[p] : 0;
	}
	if (auto_balance)
		dlm_phase_balance(cfg, mode, t, t);
	for (int p = 0; p < 3; p++)
		out[p] = p < cfg->phases ? dlm_phase_limit_one(cfg, t[p]) : 0;
	return 0;
}

void dlm_phase_ramp_init(struct dlm_phase_ramp *r)
{
	r->step_a = 4.0;
	r->step_fraction = 0;
	r->interval_ms = DLM_PHASE_DEFAULT_STEP_MS;
	r->ramp_down = 0;
}

int dlm_phase_ramp_step(const struct dlm_phase_cfg *cfg, const struct dlm_phase_ramp *r,
                        const double cur[3], const double target[3], int64_t elapsed_ms,
                        double next[3])
{
	double step, n[3];
	int moved = 0, done = 1;
	int due;

	if (!dlm_phase_cfg_valid(cfg) || !r || elapsed_ms < 0)
		return -1;
	step = r->step_a > 0 ? r->step_a : r->step_fraction * cfg->max_a;
	if (!(step > 0))
		return -1;
	due = elapsed_ms >= r->interval_ms;
	for (int p = 0; p < 3; p++) {
		double c = cur[p], t = target[p];
		if (isnan(c) || isnan(t))
			return -1;
		n[p] = c;
		if (fabs(t - c) <= EPS_A) {
			n[p] = t;
		} else if (t > c) {
			if (due) {
				n[p] = c + step > t ? t : c + step;
				if (n[p] < DLM_IEC_MIN_A) /* no session under 6 A */
					n[p] = t < DLM_IEC_MIN_A ? t : DLM_IEC_MIN_A;
			}
		} else if (!r->ramp_down) {
			n[p] = t;
		} else if (due) {
			n[p] = c - step < t ? t : c - step;
			if (n[p] < DLM_IEC_MIN_A) /* only when t is under 6 A, i.e. 0 */
				n[p] = t;
		}
		if (fabs(n[p] - c) > EPS_A)
			moved = 1;
		if (fabs(n[p] - t) > EPS_A)
			done = 0;
	}
	memcpy(next, n, sizeof(n));
	return done ? 2 : moved;
}

void dlm_phase_to_site(const struct dlm_phase_cfg *cfg, const double st[3], double site[3])
{
	double s[3] = { 0, 0, 0 };
	for (int p = 0; p < 3; p++)
		s[(p + cfg->rotation) % 3] = st[p];
	memcpy(site, s, sizeof(s));
}

void dlm_phase_from_site(const struct dlm_phase_cfg *cfg, const double site[3], double st[3])
{
	double s[3];
	for (int p = 0; p < 3; p++)
		s[p] = site[(p + cfg->rotation) % 3];
	memcpy(st, s, sizeof(s));
}

void dlm_phase_policy_init(struct dlm_phase_policy *p)
{
	p->balancing = 1;
	p->max_imbalance = DLM_PHASE_DEFAULT_MAX_IMBALANCE;
	p->def = DLM_IMBALANCE_OF_MAX;
	p->station_mode = DLM_BALANCE_MIN;
}

static void extremes(const double t[3], int *hi, int *lo)
{
	*hi = *lo = 0;
	for (int p = 1; p < 3; p++) {
		if (t[p] > t[*hi])
			*hi = p;
		if (t[p] < t[*lo])
			*lo = p;
	}
}

double dlm_phase_imbalance(const double t[3], enum dlm_imbalance_def def)
{
	int hi, lo;
	extremes(t, &hi, &lo);
	double spread = t[hi] - t[lo];
	double denom = def == DLM_IMBALANCE_OF_MEAN ? (t[0] + t[1] + t[2]) / 3.0 : t[hi];
	return denom > 0 ? spread / denom : 0;
}

void dlm_phase_system_balance(const double (*site)[3], size_t n, double max_imbalance,
                              enum dlm_imbalance_def def, struct dlm_phase_system *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p < 3; p++)
			out->total[p] += site[i][p];
	extremes(out->total, &out->heaviest, &out->lightest);
	out->imbalance = dlm_phase_imbalance(out->total, def);
	out->balanced = out->imbalance <= max_imbalance + 1e-12;
}

/* Imbalance when every phase over L is cut to L. */
static double imbalance_capped(const double t[3], double level, enum dlm_imbalance_def def)
{
	double c[3];
	for (int p = 0; p < 3; p++)
		c[p] = t[p] > level ? level : t[p];
	return dlm_phase_imbalance(c, def);
}

/* Cuts phase p's contributions to sum at most level; returns how many
 * contributions changed. */
static size_t cut_phase(double (*site)[3], size_t n, int p, double level)
{
	size_t changed = 0;
	double sum = 0, zeroed = 0, f = 1;
	int again = 1;

	for (size_t i = 0; i < n; i++)
		if (site[i][p] > 0)
			sum += site[i][p];
	if (sum <= level)
		return 0;
	/* A contribution pushed under 6 A stops; the remaining ones share the
	 * level (never scaled above 1). Each pass stops at least one more, so
	 * this ends within n passes. */
	while (again) {
		again = 0;
		f = sum - zeroed > 0 ? level / (sum - zeroed) : 0;
		if (f > 1)
			f = 1;
		for (size_t i = 0; i < n; i++) {
			double c = site[i][p];
			if (c > 0 && c * f < DLM_IEC_MIN_A - EPS_A) {
				zeroed += c;
				site[i][p] = -0.0; /* marked: stopped */
				changed++;
				again = 1;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		double c = site[i][p];
		if (c == 0 && signbit(c)) {
			site[i][p] = 0;
		} else if (c > 0 && f < 1) {
			site[i][p] = c * f;
			changed++;
		}
	}
	return changed;
}

size_t dlm_phase_system_rebalance(double (*site)[3], size_t n, double max_imbalance,
                                  enum dlm_imbalance_def def)
{
	struct dlm_phase_system s;
	double lo, hi;
	size_t changed = 0;

	dlm_phase_system_balance((const double(*)[3])site, n, max_imbalance, def, &s);
	if (s.balanced || !(max_imbalance >= 0))
		return 0;
	/* Bisection for the highest level whose capped imbalance is within the
	 * limit: the imbalance grows with the level between min and max. */
	lo = s.total[s.lightest];
	hi = s.total[s.heaviest];
	for (int it = 0; it < 100 && hi - lo > 1e-9; it++) {
		double mid = (lo + hi) / 2;
		if (imbalance_capped(s.total, mid, def) <= max_imbalance)
			lo = mid;
		else
			hi = mid;
	}
	for (int p = 0; p < 3; p++)
		if (s.total[p] > lo)
			changed += cut_phase(site, n, p, lo);
	return changed;
}

json_t *dlm_phase_system_json(const struct dlm_phase_system *s, double max_imbalance,
                              enum dlm_imbalance_def def)
{
	static const char *const pn[3] = { "A", "B", "C" };
	return json_pack("{s:{s:f,s:f,s:f},s:f,s:f,s:s,s:b,s:s,s:s}", "phases", "A", s->total[0],
	                 "B", s->total[1], "C", s->total[2], "imbalance", s->imbalance,
	                 "max_imbalance", max_imbalance, "definition",
	                 def == DLM_IMBALANCE_OF_MEAN ? "of_mean" : "of_max", "balanced",
	                 s->balanced, "heaviest", pn[s->heaviest], "lightest", pn[s->lightest]);
}
