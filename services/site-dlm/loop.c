/* The site DLM control loop: see loop.h for the cycle and its rules.
 *
 * Stations live in individually allocated records (so the ids setpoints
 * point to never move) found by an open-addressing hash of their ids. The
 * allocation solves each constraint group's water level by bisection over
 * the stations of one priority class sorted by (transformer, feeder), so
 * every group is a contiguous run: O(stations x levels x iterations). */
#include "loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

#define BISECT_ITERS 48
#define MIN_PASSES   8
#define STATUS_LEN   32
#define DC_PHASE_V   DLM_PHASE_DEFAULT_VOLTAGE /* DC load spread over 3 phases at 230 V */
#define NEVER        (INT64_MIN / 4)

struct lstation {
	char id[DLM_CAP_ID_LEN];
	int priority;
	double demand_kw;   /* < 0: capability max */
	double override_kw; /* an operator's cap (< 0: none) */
	double override_a;  /* AC: that cap as given, in amps per phase (< 0: in kW) */
	enum dlm_cap_type type;
	struct dlm_phase_cfg ph; /* AC */
	double cur[3];           /* AC: the setpoint now, station phases */
	int64_t last_step_ms;    /* AC ramp */
	struct dlm_dc_charger dc;
	double meas_kw;
	double meas_temp_c, meas_soc;
	int has_meas;
	char status[STATUS_LEN];
	int failsafe;
	double fs_kw;
	/* Per cycle. */
	int feeder, xf;
	long key;
	double cap_kw, min_kw, eff, alloc;
	double dc_kw; /* DC: this cycle's stepped setpoint */
	int excluded;
	struct dlm_setpoint sp;
};

struct dlm_loop {
	struct dlm_loop_cfg cfg;
	struct dlm_site *site;
	struct dlm_shed *shed;
	struct dlm_failsafe *fs;
	struct dlm_cap_registry *caps;

	struct lstation **st;
	size_t n, cap;
	int *hash; /* index + 1, 0 = empty */
	size_t nhash;

	/* Scratch, grown as needed. */
	size_t *order;
	struct dlm_shed_station *shed_st;
	struct lstation **cut; /* one phase's single-phase stations (balance) */
	size_t cap_scratch;
	struct dlm_headroom *fh;
	int *fx;       /* feeder -> transformer index or -1 */
	double *rf;    /* feeder budgets */
	double *lam_f; /* feeder water levels (per class) */
	size_t cap_f;
	double *rt, *lam_t, *avail_t;
	size_t n_t, cap_t;

	struct dlm_headroom site_h;
	struct dlm_fs_actions fa; /* the last cycle's, owned by the manager */
	double available_kw;
	struct dlm_loop_stats stats;
};

/* ---- helpers ---- */

static double dmin(double a, double b)
{
	return a < b ? a : b;
}

static double dmax(double a, double b)
{
	return a > b ? a : b;
}

static double ac_kw_at(const struct dlm_phase_cfg *ph, double amps)
{
	double c[3] = { amps, amps, amps };
	return dlm_phase_currents_to_power(ph, c);
}

static int clamp_prio(int p)
{
	return p < 1 ? 1 : p > 10 ? 10 : p;
}

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int rehash(struct dlm_loop *l, size_t want)
{
	size_t nh = 64;
	while (nh < 2 * want)
		nh *= 2;
	int *h = calloc(nh, sizeof(*h));
	if (!h)
		return V2G_ERR_NOMEM;
	for (size_t i = 0; i < l->n; i++) {
		size_t j = hash_id(l->st[i]->id) & (nh - 1);
		while (h[j])
			j = (j + 1) & (nh - 1);
		h[j] = (int)i + 1;
	}
	free(l->hash);
	l->hash = h;
	l->nhash = nh;
	return 0;
}

static struct lstation *find(const struct dlm_loop *l, const char *id)
{
	if (!l->nhash || !id)
		return NULL;
	size_t j = hash_id(id) & (l->nhash - 1);
	while (l->hash[j]) {
		struct lstation *s = l->st[l->hash[j] - 1];
		if (strcmp(s->id, id) == 0)
			return s;
		j = (j + 1) & (l->nhash - 1);
	}
	return NULL;
}

static int cfg_valid(const struct dlm_loop_cfg *c)
{
	return c->target_utilisation > 0 && c->target_utilisation <= 1 && c->max_imbalance <= 1 &&
	       c->imbalance_floor_a >= 0 && c->dc_ramp_kw_per_s > 0 &&
	       (c->ramp.step_a > 0 || c->ramp.step_fraction > 0) && c->ramp.interval_ms >= 0;
}

void dlm_loop_cfg_init(struct dlm_loop_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->target_utilisation = 0.90;
	cfg->max_imbalance = -1;
	cfg->imbalance_floor_a = 32;
	dlm_phase_ramp_init(&cfg->ramp);
	cfg->dc_ramp_kw_per_s = DLM_DC_DEFAULT_RAMP_KW_S;
	cfg->shedding = 1;
}

struct dlm_loop *dlm_loop_new(const struct dlm_loop_cfg *cfg, struct dlm_site *site,
                              struct dlm_shed *shed, struct dlm_failsafe *fs,
                              struct dlm_cap_registry *caps)
{
	struct dlm_loop_cfg def;
	if (!cfg) {
		dlm_loop_cfg_init(&def);
		cfg = &def;
	}
	if (!site || !shed || !fs || !caps || !cfg_valid(cfg))
		return NULL;
	struct dlm_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cfg = *cfg;
	l->site = site;
	l->shed = shed;
	l->fs = fs;
	l->caps = caps;
	return l;
}

void dlm_loop_free(struct dlm_loop *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->st[i]);
	free(l->st);
	free(l->hash);
	free(l->order);
	free(l->shed_st);
	free(l->cut);
	free(l->fh);
	free(l->fx);
	free(l->rf);
	free(l->lam_f);
	free(l->rt);
	free(l->lam_t);
	free(l->avail_t);
	free(l);
}

/* ---- stations ---- */

/* An AC override in amps, in kW with the station's present phases: under
 * the IEC minimum it cannot run (a stop). */
static double override_amps_kw(const struct lstation *s, double amps)
{
	return amps < DLM_IEC_MIN_A ? 0 : ac_kw_at(&s->ph, amps);
}

/* After a new capability: an override given in amps stays that many amps
 * (a 16 A limit on a station now wired three-phase is 16 A per phase, not
 * the kW of 16 A on one phase); on a station now DC it stays in kW. */
static void override_refresh(struct lstation *s)
{
	if (s->override_a < 0)
		return;
	if (s->type == DLM_CAP_AC)
		s->override_kw = override_amps_kw(s, s->override_a);
	else
		s->override_a = -1;
}

static int station_setup(struct dlm_loop *l, struct lstation *s, const struct dlm_cap *cap,
                         const struct dlm_loop_station_cfg *cfg)
{
	if (cap->type == DLM_CAP_AC) {
		struct dlm_phase_cfg ph;
		if (dlm_phase_cfg_from_cap(&ph, cap))
			return V2G_ERR_INVAL;
		ph.rotation = cfg->rotation;
		if (!dlm_phase_cfg_valid(&ph))
			return V2G_ERR_INVAL;
		if (s->type != DLM_CAP_AC)
			memset(s->cur, 0, sizeof(s->cur));
		s->ph = ph;
	} else {
		if (s->type != DLM_CAP_DC) {
			if (dlm_dc_init(&s->dc, cfg->id, cap))
				return V2G_ERR_INVAL;
			dlm_dc_set_ramp_rate(&s->dc, l->cfg.dc_ramp_kw_per_s);
		} else {
			/* A new capability for the same charger: its limits
			 * change, its ramp and measurements stay. */
			struct dlm_dc_charger *dc = &s->dc;
			if (cap->power_max_kw <= 0 || cap->power_min_kw > cap->power_max_kw)
				return V2G_ERR_INVAL;
			if (dc->current_limit_a >= dc->current_max_a ||
			    dc->current_limit_a > cap->current_max)
				dc->current_limit_a = cap->current_max;
			dc->power_min_kw = cap->power_min_kw;
			dc->power_max_kw = cap->power_max_kw;
			dc->current_min_a = cap->current_min;
			dc->current_max_a = cap->current_max;
			dc->bidi_capable = (cap->features & DLM_FEAT_BIDIRECTIONAL) != 0;
		}
	}
	s->type = cap->type;
	s->priority = clamp_prio(cfg->priority);
	s->demand_kw = isfinite(cfg->demand_kw) ? cfg->demand_kw : -1;
	return 0;
}

int dlm_loop_add_station(struct dlm_loop *l, const struct dlm_loop_station_cfg *cfg, int64_t now_ms)
{
	if (!l || !cfg || !cfg->id || !cfg->id[0] || strlen(cfg->id) >= DLM_CAP_ID_LEN ||
	    cfg->rotation < 0 || cfg->rotation > 2)
		return V2G_ERR_INVAL;
	const struct dlm_cap *cap = dlm_cap_get(l->caps, cfg->id);
	if (!cap)
		return V2G_ERR_NOTFOUND;
	struct lstation *s = find(l, cfg->id);
	if (s) {
		struct lstation tmp = *s;
		int err = station_setup(l, &tmp, cap, cfg);
		if (err)
			return err;
		if (cfg->failsafe && dlm_failsafe_register(l->fs, cfg->id, cfg->failsafe, now_ms))
			return V2G_ERR_INVAL;
		*s = tmp;
		s->sp.station = s->id;
		override_refresh(s);
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return V2G_ERR_NOMEM;
	strcpy(s->id, cfg->id);
	s->type = DLM_CAP_TYPE_UNSET;
	s->override_kw = -1;
	s->override_a = -1;
	s->last_step_ms = NEVER;
	s->meas_temp_c = NAN;
	s->meas_soc = NAN;
	int err = station_setup(l, s, cap, cfg);
	if (err)
		goto fail_setup;
	s->sp.station = s->id;
	s->sp.type = s->type;
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 16;
		struct lstation **v = realloc(l->st, nc * sizeof(*v));
		err = V2G_ERR_NOMEM;
		if (!v)
			goto fail_setup;
		l->st = v;
		l->cap = nc;
	}
	if (2 * (l->n + 1) > l->nhash && (err = rehash(l, l->n + 1)))
		goto fail_setup;
	/* No cfg: update_comm registers it with the manager's defaults. */
	if (cfg->failsafe ? dlm_failsafe_register(l->fs, cfg->id, cfg->failsafe, now_ms)
	                  : dlm_failsafe_update_comm(l->fs, cfg->id, now_ms)) {
		err = V2G_ERR_INVAL;
		goto fail_setup;
	}
	l->st[l->n++] = s;
	size_t j = hash_id(s->id) & (l->nhash - 1);
	while (l->hash[j])
		j = (j + 1) & (l->nhash - 1);
	l->hash[j] = (int)l->n;
	return 0;
fail_setup:
	free(s);
	return err;
}

int dlm_loop_remove_station(struct dlm_loop *l, const char *id)
{
	struct lstation *s = l ? find(l, id) : NULL;
	if (!s)
		return V2G_ERR_NOTFOUND;
	dlm_failsafe_unregister(l->fs, id);
	for (size_t i = 0; i < l->n; i++)
		if (l->st[i] == s) {
			memmove(&l->st[i], &l->st[i + 1], (l->n - i - 1) * sizeof(*l->st));
			break;
		}
	l->n--;
	free(s);
	/* Re-insert in place: the table only ever gets emptier. */
	memset(l->hash, 0, l->nhash * sizeof(*l->hash));
	for (size_t i = 0; i < l->n; i++) {
		size_t j = hash_id(l->st[i]->id) & (l->nhash - 1);
		while (l->hash[j])
			j = (j + 1) & (l->nhash - 1);
		l->hash[j] = (int)i + 1;
	}
	return 0;
}

size_t dlm_loop_station_count(const struct dlm_loop *l)
{
	return l ? l->n : 0;
}

int dlm_loop_set_demand(struct dlm_loop *l, const char *id, double kw)
{
	struct lstation *s = l ? find(l, id) : NULL;
	if (!s)
		return V2G_ERR_NOTFOUND;
	if (isnan(kw))
		return V2G_ERR_INVAL;
	s->demand_kw = kw;
	return 0;
}

int dlm_loop_set_priority(struct dlm_loop *l, const char *id, int priority)
{
	struct lstation *s = l ? find(l, id) : NULL;
	if (!s)
		return V2G_ERR_NOTFOUND;
	s->priority = clamp_prio(priority);
	return 0;
}

int dlm_loop_set_override(struct dlm_loop *l, const char *id, double kw)
{
	struct lstation *s = l ? find(l, id) : NULL;
	if (!s)
		return V2G_ERR_NOTFOUND;
	if (isnan(kw))
		return V2G_ERR_INVAL;
	s->override_kw = kw < 0 ? -1 : kw;
	s->override_a = -1;
	return 0;
}

int dlm_loop_set_override_current(struct dlm_loop *l, const char *id, double amps)
{
	struct lstation *s = l ? find(l, id) : NULL;
	if (!s)
		return V2G_ERR_NOTFOUND;
	if (isnan(amps) || s->type != DLM_CAP_AC)
		return V2G_ERR_INVAL;
	if (amps < 0) {
		s->override_kw = s->override_a = -1;
		return 0;
	}
	s->override_a = amps;
	s->override_kw = override_amps_kw(s, amps);
	return 0;
}

double dlm_loop_override(const struct dlm_loop *l, const char *id)
{
	const struct lstation *s = l ? find(l, id) : NULL;
	return s ? s->override_kw : -1;
}

int dlm_loop_station_info(const struct dlm_loop *l, const char *id,
                          struct dlm_loop_station_cfg *out)
{
	const struct lstation *s = l ? find(l, id) : NULL;
	if (!s || !out)
		return V2G_ERR_NOTFOUND;
	*out = (struct dlm_loop_station_cfg){ .id = s->id,
		                              .priority = s->priority,
		                              .demand_kw = s->demand_kw,
		                              .rotation =
		                                      s->type == DLM_CAP_AC ? s->ph.rotation : 0,
		                              .failsafe = NULL };
	return 0;
}

int dlm_loop_station_meter(struct dlm_loop *l, const char *id, double power_kw,
                           const double currents[3], double temp_c, double soc, const char *status,
                           int64_t now_ms)
{
	struct lstation *s = l ? find(l, id) : NULL;
	if (!s)
		return V2G_ERR_NOTFOUND;
	if (!isfinite(power_kw) || fabs(power_kw) > DLM_METER_MAX_KW)
		return V2G_ERR_INVAL;
	s->meas_kw = power_kw;
	s->has_meas = 1;
	if (isfinite(temp_c))
		s->meas_temp_c = temp_c;
	if (isfinite(soc) && soc >= 0 && soc <= 100)
		s->meas_soc = soc;
	if (status)
		snprintf(s->status, sizeof(s->status), "%s", status);
	int err = dlm_site_update_station(l->site, id, power_kw, now_ms);
	if (err)
		return err;
	if ((err = dlm_failsafe_update_comm(l->fs, id, now_ms)))
		return err;
	if (s->type == DLM_CAP_DC) {
		double amps = currents && isfinite(currents[0]) ? currents[0] : 0;
		struct dlm_dc_meas m = {
			.power_kw = power_kw,
			.current_a = amps,
			/* V = P / I when a current is known; 0 = no voltage. */
			.voltage_v = amps > 0 ? fabs(power_kw) * 1000.0 / amps : 0,
			.temp_c = isnan(s->meas_temp_c) ? 0 : s->meas_temp_c,
			.soc = isnan(s->meas_soc) ? 0 : s->meas_soc,
		};
		err = dlm_dc_update(&s->dc, &m, now_ms);
	}
	return err;
}

int dlm_loop_site_meter(struct dlm_loop *l, const struct dlm_service_meas *m, int64_t now_ms)
{
	if (!l || !m)
		return V2G_ERR_INVAL;
	return dlm_site_update_service(l->site, m, now_ms);
}

/* ---- scratch ---- */

static int grow(void **p, size_t n, size_t size)
{
	void *v = realloc(*p, (n ? n : 1) * size);
	if (!v)
		return V2G_ERR_NOMEM;
	*p = v;
	return 0;
}

static int ensure_scratch(struct dlm_loop *l, size_t nf, size_t nt)
{
	if (l->n > l->cap_scratch) {
		if (grow((void **)&l->order, l->n, sizeof(*l->order)) ||
		    grow((void **)&l->shed_st, l->n, sizeof(*l->shed_st)) ||
		    grow((void **)&l->cut, l->n, sizeof(*l->cut)))
			return V2G_ERR_NOMEM;
		l->cap_scratch = l->n;
	}
	if (nf > l->cap_f) {
		if (grow((void **)&l->fh, nf, sizeof(*l->fh)) ||
		    grow((void **)&l->fx, nf, sizeof(*l->fx)) ||
		    grow((void **)&l->rf, nf, sizeof(*l->rf)) ||
		    grow((void **)&l->lam_f, nf, sizeof(*l->lam_f)))
			return V2G_ERR_NOMEM;
		l->cap_f = nf;
	}
	if (nt > l->cap_t) {
		if (grow((void **)&l->rt, nt, sizeof(*l->rt)) ||
		    grow((void **)&l->lam_t, nt, sizeof(*l->lam_t)) ||
		    grow((void **)&l->avail_t, nt, sizeof(*l->avail_t)))
			return V2G_ERR_NOMEM;
		l->cap_t = nt;
	}
	return 0;
}

/* Transformer headroom and feeder -> transformer map, from the site status
 * (the constraints module exposes transformers only there). */
static int read_transformers(struct dlm_loop *l, size_t nf)
{
	for (size_t f = 0; f < nf; f++)
		l->fx[f] = -1;
	l->n_t = 0;
	json_t *st = dlm_site_status_obj(l->site);
	if (!st)
		return V2G_ERR_NOMEM;
	json_t *xs = json_object_get(st, "transformers");
	size_t nt = json_array_size(xs);
	if (ensure_scratch(l, nf, nt)) {
		json_decref(st);
		return V2G_ERR_NOMEM;
	}
	for (size_t t = 0; t < nt; t++) {
		json_t *x = json_array_get(xs, t);
		json_t *av = json_object_get(x, "available_kw");
		l->avail_t[t] = json_is_number(av) ? json_number_value(av) : INFINITY;
		json_t *fds = json_object_get(x, "feeders");
		for (size_t k = 0; k < json_array_size(fds); k++) {
			const char *fid = json_string_value(json_array_get(fds, k));
			for (size_t f = 0; fid && f < nf; f++)
				if (strcmp(dlm_site_feeder_id(l->site, f), fid) == 0)
					l->fx[f] = (int)t;
		}
	}
	l->n_t = nt;
	json_decref(st);
	return 0;
}

/* ---- allocation ---- */

/* The highest level lam with sum(min(eff_i, lam)) <= budget over the run;
 * INFINITY when the whole run fits. */
static double solve_level(struct lstation **st, const size_t *idx, size_t k, double budget)
{
	double sum = 0, hi = 0;
	for (size_t i = 0; i < k; i++) {
		const struct lstation *s = st[idx[i]];
		if (s->excluded)
			continue;
		sum += s->eff;
		hi = dmax(hi, s->eff);
	}
	if (sum <= budget)
		return INFINITY;
	if (budget <= 0)
		return 0;
	double lo = 0;
	for (int it = 0; it < BISECT_ITERS; it++) {
		double mid = (lo + hi) / 2, t = 0;
		for (size_t i = 0; i < k; i++) {
			const struct lstation *s = st[idx[i]];
			if (!s->excluded)
				t += dmin(s->eff, mid);
		}
		if (t <= budget)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Max-min fair water-filling of one class idx[0..k) (sorted by key) under
 * the remaining budgets. Sets alloc; returns nothing. */
static void fill_class(struct dlm_loop *l, const size_t *idx, size_t k, double rs)
{
	struct lstation **st = l->st;
	for (size_t i = 0; i < k; i++)
		st[idx[i]]->eff = st[idx[i]]->cap_kw;
	/* Feeders: each a run with the same feeder. */
	for (size_t a = 0; a < k;) {
		size_t b = a;
		int f = st[idx[a]]->feeder;
		while (b < k && st[idx[b]]->feeder == f)
			b++;
		if (f >= 0) {
			double lam = solve_level(st, idx + a, b - a, l->rf[f]);
			for (size_t i = a; i < b; i++)
				st[idx[i]]->eff = dmin(st[idx[i]]->eff, lam);
		}
		a = b;
	}
	/* Transformers: runs with the same transformer. */
	for (size_t a = 0; a < k;) {
		size_t b = a;
		int t = st[idx[a]]->xf;
		while (b < k && st[idx[b]]->xf == t)
			b++;
		if (t >= 0) {
			double lam = solve_level(st, idx + a, b - a, l->rt[t]);
			for (size_t i = a; i < b; i++)
				st[idx[i]]->eff = dmin(st[idx[i]]->eff, lam);
		}
		a = b;
	}
	double lam = solve_level(st, idx, k, rs);
	for (size_t i = 0; i < k; i++) {
		struct lstation *s = st[idx[i]];
		s->alloc = s->excluded ? 0 : dmin(s->eff, lam);
	}
}

static void alloc_class(struct dlm_loop *l, const size_t *idx, size_t k, double *rs)
{
	struct lstation **st = l->st;
	for (size_t i = 0; i < k; i++)
		st[idx[i]]->excluded = st[idx[i]]->cap_kw < st[idx[i]]->min_kw;
	for (int pass = 0; pass < MIN_PASSES; pass++) {
		fill_class(l, idx, k, *rs);
		/* Stations under their minimum cannot run: exclude half of them
		 * (those stopped last cycle first, then the later ones) and
		 * share again, so the rest may reach their minimum. */
		size_t below = 0;
		for (size_t i = 0; i < k; i++) {
			struct lstation *s = st[idx[i]];
			if (s->excluded)
				continue;
			/* The bisection stops a hair under an exact minimum. */
			if (s->alloc < s->min_kw && s->alloc >= s->min_kw * (1 - 1e-9))
				s->alloc = s->min_kw * (1 + 1e-12);
			if (s->alloc < s->min_kw || (s->alloc <= 0 && s->cap_kw > 0))
				below++;
		}
		if (!below)
			break;
		size_t drop = (below + 1) / 2;
		for (int round = 0; round < 2 && drop; round++)
			for (size_t i = k; i-- > 0 && drop;) {
				struct lstation *s = st[idx[i]];
				int low = !s->excluded && s->alloc < s->min_kw;
				if (low && (round == 1 || s->sp.power_kw <= 0)) {
					s->excluded = 1;
					s->alloc = 0;
					drop--;
				}
			}
	}
	for (size_t i = 0; i < k; i++) {
		struct lstation *s = st[idx[i]];
		if (s->excluded || s->alloc < s->min_kw)
			s->alloc = 0;
		*rs -= s->alloc;
		if (s->feeder >= 0)
			l->rf[s->feeder] -= s->alloc;
		if (s->xf >= 0)
			l->rt[s->xf] -= s->alloc;
	}
}

static int order_cmp(const void *a, const void *b, void *arg)
{
	struct lstation **st = arg;
	const struct lstation *x = st[*(const size_t *)a], *y = st[*(const size_t *)b];
	if (x->priority != y->priority)
		return y->priority - x->priority;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* ---- setpoints ---- */

static void ac_clamp(const struct dlm_loop *l, struct lstation *s, double cur[3])
{
	for (int p = 0; p < 3; p++) {
		double v = 0;
		if (p >= s->ph.phases || cur[p] <= 0 ||
		    dlm_cap_recommended(l->caps, s->id, DLM_UNIT_AMPS, cur[p], &v))
			v = 0;
		cur[p] = v;
	}
}

/* The order in which the balance stops single-phase stations (see
 * loop.h): lowest priority first, then the greatest id. */
static int cut_cmp(const void *a, const void *b)
{
	const struct lstation *x = *(struct lstation *const *)a;
	const struct lstation *y = *(struct lstation *const *)b;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return strcmp(y->id, x->id);
}

/* Brings one phase's single-phase stations v[0..k) (sorted by cut_cmp, all
 * running) to at most target amps in total: while even the 6 A minimum
 * each does not fit, the first one left is stopped; the rest are scaled by
 * one factor, none under 6 A (one that would be is held at 6 A and the
 * others are scaled further). Counts the stations touched in *cuts and
 * returns the new total. */
static double cut_phase(struct lstation **v, size_t k, double target, size_t *cuts)
{
	double floor_sum = 0, sum = 0;
	size_t a = 0;
	for (size_t i = 0; i < k; i++)
		floor_sum += dmin(v[i]->cur[0], DLM_IEC_MIN_A);
	for (; a < k && floor_sum > target + 1e-9; a++) {
		floor_sum -= dmin(v[a]->cur[0], DLM_IEC_MIN_A);
		v[a]->cur[0] = 0;
		(*cuts)++;
	}
	for (size_t i = a; i < k; i++)
		sum += v[i]->cur[0];
	if (sum <= target + 1e-9)
		return sum;
	/* The largest factor f with sum(max(floor_i, f x cur_i)) <= target:
	 * it exists (f = 0 gives floor_sum). */
	double lo = 0, hi = 1;
	for (int it = 0; it < BISECT_ITERS; it++) {
		double mid = (lo + hi) / 2, t = 0;
		for (size_t i = a; i < k; i++)
			t += dmax(dmin(v[i]->cur[0], DLM_IEC_MIN_A), mid * v[i]->cur[0]);
		if (t <= target)
			lo = mid;
		else
			hi = mid;
	}
	sum = 0;
	for (size_t i = a; i < k; i++) {
		struct lstation *s = v[i];
		s->cur[0] = dmax(dmin(s->cur[0], DLM_IEC_MIN_A), lo * s->cur[0]);
		sum += s->cur[0];
		(*cuts)++;
	}
	return sum;
}

/* Cuts single-phase stations on the heavy phases (see loop.h). */
static void enforce_balance(struct dlm_loop *l, double max_imb)
{
	double bal = 0, s1[3] = { 0, 0, 0 }, tot[3];
	for (size_t i = 0; i < l->n; i++) {
		const struct lstation *s = l->st[i];
		if (s->failsafe)
			continue;
		if (s->type == DLM_CAP_DC)
			bal += dmax(s->dc_kw, 0) * 1000.0 / (3 * DC_PHASE_V);
		else if (s->ph.phases == 3)
			bal += s->cur[0];
		else
			s1[s->ph.rotation] += s->cur[0];
	}
	l->stats.phase_cuts = 0;
	for (int pass = 0; pass < 3 && max_imb < 1; pass++) {
		double lo = INFINITY;
		for (int p = 0; p < 3; p++) {
			tot[p] = bal + s1[p];
			lo = dmin(lo, tot[p]);
		}
		double lim = dmax(lo / (1 - max_imb), lo + l->cfg.imbalance_floor_a);
		int cut = 0;
		for (int p = 0; p < 3; p++) {
			if (tot[p] <= lim + 1e-9 || s1[p] <= 0)
				continue;
			size_t k = 0;
			for (size_t i = 0; i < l->n; i++) {
				struct lstation *s = l->st[i];
				if (!s->failsafe && s->type == DLM_CAP_AC && s->ph.phases == 1 &&
				    s->ph.rotation == p && s->cur[0] > 0)
					l->cut[k++] = s;
			}
			qsort(l->cut, k, sizeof(*l->cut), cut_cmp);
			s1[p] = cut_phase(l->cut, k, dmax(0, s1[p] - (tot[p] - lim)),
			                  &l->stats.phase_cuts);
			cut = 1;
		}
		if (!cut)
			break;
	}
	for (int p = 0; p < 3; p++)
		tot[p] = bal + s1[p];
	l->stats.imbalance = dlm_phase_imbalance(tot, DLM_IMBALANCE_OF_MAX);
}

static void set_ac(struct dlm_loop *l, struct lstation *s, double kw, int ramp, int64_t now_ms)
{
	double req[3], tgt[3] = { 0, 0, 0 }, next[3];
	if (dlm_phase_power_to_currents(&s->ph, dmax(kw, 0), req) ||
	    dlm_phase_setpoint(&s->ph, req, 1, DLM_BALANCE_MIN, tgt))
		memset(tgt, 0, sizeof(tgt));
	if (!ramp) {
		memcpy(s->cur, tgt, sizeof(tgt));
		return;
	}
	int64_t el = now_ms - s->last_step_ms;
	if (s->last_step_ms == NEVER || el < 0)
		el = INT64_MAX / 4;
	if (dlm_phase_ramp_step(&s->ph, &l->cfg.ramp, s->cur, tgt, el, next) < 0) {
		memset(next, 0, sizeof(next));
	}
	for (int p = 0; p < 3; p++)
		if (next[p] > s->cur[p] + 1e-9) {
			s->last_step_ms = now_ms; /* an increase: the ramp clock restarts */
			break;
		}
	memcpy(s->cur, next, sizeof(next));
}

static double set_dc(struct dlm_loop *l, struct lstation *s, double kw, int64_t now_ms)
{
	if (dlm_dc_set_power_limit(&s->dc, dmax(kw, 0)))
		dlm_dc_set_power_limit(&s->dc, 0);
	double v = dlm_dc_step(&s->dc, now_ms), out = 0;
	if (v != 0 && dlm_cap_recommended(l->caps, s->id, DLM_UNIT_KW, v, &out))
		out = 0;
	return out;
}

/* ---- the cycle ---- */

int dlm_loop_cycle(struct dlm_loop *l, int64_t now_ms, struct dlm_setpoint *out, size_t cap,
                   size_t *n)
{
	if (!l || !n || (cap && !out))
		return V2G_ERR_INVAL;
	struct dlm_loop_stats *stx = &l->stats;

	/* 2. Fail-safe. */
	dlm_failsafe_heartbeat(l->fs, now_ms);
	struct dlm_fs_actions fa;
	l->fa.n = 0;
	l->fa.v = NULL;
	if (dlm_failsafe_check(l->fs, now_ms, &fa))
		return V2G_ERR_NOMEM;
	l->fa = fa;
	stx->fs_applied = stx->fs_restored = 0;
	for (size_t i = 0; i < fa.n; i++) {
		struct lstation *s = find(l, fa.v[i].station);
		if (!s)
			continue;
		if (fa.v[i].kind == DLM_FS_APPLY) {
			s->failsafe = 1;
			s->fs_kw = fa.v[i].power_kw;
			stx->fs_applied++;
		} else {
			s->failsafe = 0;
			stx->fs_restored++;
		}
	}

	/* Capacity: site, feeders, transformers. */
	size_t nf = dlm_site_capacity(l->site, &l->site_h, NULL, 0);
	if (ensure_scratch(l, nf, 0))
		return V2G_ERR_NOMEM;
	dlm_site_capacity(l->site, &l->site_h, l->fh, nf);
	if (read_transformers(l, nf))
		return V2G_ERR_NOMEM;

	double target = l->cfg.target_utilisation;
	double rs = l->site_h.available_kw - (1 - target) * l->site_h.limit_kw;
	for (size_t f = 0; f < nf; f++)
		l->rf[f] = l->fh[f].available_kw;
	for (size_t t = 0; t < l->n_t; t++)
		l->rt[t] = l->avail_t[t];

	/* 1. Measurements -> budgets; per-station limits. */
	size_t nctl = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct lstation *s = l->st[i];
		s->feeder = dlm_site_station_feeder(l->site, s->id);
		if (s->feeder >= (int)nf)
			s->feeder = -1;
		s->xf = s->feeder >= 0 ? l->fx[s->feeder] : -1;
		s->key = (long)(s->xf + 1) * (long)(nf + 1) + (s->feeder + 1);
		double p = s->has_meas ? s->meas_kw : 0;
		/* Give back what controlled stations draw (it is theirs to
		 * re-share); hold what fail-safe ones may draw beyond it. */
		double d = s->failsafe ? -dmax(0, s->fs_kw - p) : p;
		rs += d;
		if (s->feeder >= 0)
			l->rf[s->feeder] += d;
		if (s->xf >= 0)
			l->rt[s->xf] += d;
		s->alloc = 0;
		if (s->failsafe)
			continue;
		double max_kw, min_kw;
		if (s->type == DLM_CAP_AC) {
			max_kw = ac_kw_at(&s->ph, s->ph.max_a);
			min_kw = ac_kw_at(&s->ph, dmax(s->ph.min_a, DLM_IEC_MIN_A));
		} else {
			max_kw = dlm_dc_import_limit_kw(&s->dc);
			min_kw = s->dc.power_min_kw;
		}
		s->cap_kw = s->demand_kw < 0 ? max_kw : dmin(s->demand_kw, max_kw);
		if (s->override_kw >= 0)
			s->cap_kw = dmin(s->cap_kw, s->override_kw);
		s->min_kw = min_kw;
		l->order[nctl++] = i;
	}
	double budget = dmax(rs, 0);
	rs = budget;
	for (size_t f = 0; f < nf; f++)
		l->rf[f] = dmax(l->rf[f], 0);
	for (size_t t = 0; t < l->n_t; t++)
		l->rt[t] = dmax(l->rt[t], 0);

	/* 3. Allocation by priority class. */
	if (nctl) /* order is NULL before the first station */
		qsort_r(l->order, nctl, sizeof(*l->order), order_cmp, l->st);
	for (size_t a = 0; a < nctl;) {
		size_t b = a;
		while (b < nctl && l->st[l->order[b]]->priority == l->st[l->order[a]]->priority)
			b++;
		alloc_class(l, l->order + a, b - a, &rs);
		a = b;
	}

	/* 4. Shedding on the measured load. */
	int level = 0;
	stx->shed_changed = 0;
	if (l->cfg.shedding) {
		for (size_t i = 0; i < nctl; i++) {
			const struct lstation *s = l->st[l->order[i]];
			l->shed_st[i] = (struct dlm_shed_station){ .id = s->id,
				                                   .priority = s->priority,
				                                   .power_kw = dmax(s->alloc, 0) };
		}
		struct dlm_shed_result res;
		double load = dmax(l->site_h.load_kw, 0);
		if (dlm_shed_evaluate(l->shed, load, l->site_h.limit_kw, l->shed_st, nctl, now_ms,
		                      &res) == 0) {
			level = res.new_level;
			stx->shed_changed = res.changed;
		} else {
			struct dlm_shed_status ss;
			dlm_shed_get_status(l->shed, &ss);
			level = ss.level;
		}
	}

	/* 5. Setpoints. */
	for (size_t i = 0; i < l->n; i++) {
		struct lstation *s = l->st[i];
		double kw = s->failsafe ? s->fs_kw : s->alloc * dlm_shed_factor(level, s->priority);
		if (s->type == DLM_CAP_AC) {
			set_ac(l, s, kw, !s->failsafe, now_ms);
		} else {
			s->dc_kw = set_dc(l, s, kw, now_ms);
		}
	}
	double max_imb = l->cfg.max_imbalance >= 0 ? l->cfg.max_imbalance
	                                           : dlm_site_service(l->site)->max_imbalance;
	enforce_balance(l, max_imb);

	stx->stations = l->n;
	stx->controlled = nctl;
	stx->in_failsafe = l->n - nctl;
	stx->charging = 0;
	stx->allocated_kw = stx->setpoint_kw = 0;
	double added = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct lstation *s = l->st[i];
		struct dlm_setpoint prev = s->sp;
		struct dlm_setpoint *sp = &s->sp;
		sp->station = s->id;
		sp->type = s->type;
		sp->allocated_kw = s->failsafe ? s->fs_kw : s->alloc;
		sp->failsafe = s->failsafe;
		if (s->type == DLM_CAP_AC) {
			ac_clamp(l, s, s->cur);
			memcpy(sp->current_a, s->cur, sizeof(s->cur));
			sp->power_kw = dlm_phase_currents_to_power(&s->ph, s->cur);
		} else {
			sp->power_kw = s->dc_kw;
			memset(sp->current_a, 0, sizeof(sp->current_a));
		}
		sp->changed = fabs(sp->power_kw - prev.power_kw) > 1e-9 ||
		              fabs(sp->current_a[0] - prev.current_a[0]) > 1e-9 ||
		              prev.failsafe != sp->failsafe;
		if (sp->power_kw > 0)
			stx->charging++;
		stx->setpoint_kw += sp->power_kw;
		if (!s->failsafe)
			stx->allocated_kw += s->alloc * dlm_shed_factor(level, s->priority);
		added += sp->power_kw - (s->has_meas ? s->meas_kw : 0);
		if (!s->failsafe) {
			struct dlm_good_config g = { .power_kw = dmax(sp->power_kw, 0),
				                     .status = s->status };
			dlm_failsafe_record_good_config(l->fs, s->id, &g, now_ms);
		}
		if (i < cap)
			out[i] = *sp;
	}
	*n = l->n;

	l->available_kw = dmax(0, l->site_h.available_kw - added);
	stx->cycles++;
	stx->last_cycle_ms = now_ms;
	stx->site_limit_kw = l->site_h.limit_kw;
	stx->site_load_kw = l->site_h.load_kw;
	stx->site_available_kw = l->site_h.available_kw;
	stx->budget_kw = budget;
	stx->shed_level = level;
	snprintf(stx->binding, sizeof(stx->binding), "%s", l->site_h.binding);
	return 0;
}

double dlm_loop_available_kw(const struct dlm_loop *l)
{
	return l ? l->available_kw : 0;
}

void dlm_loop_failsafe_actions(const struct dlm_loop *l, struct dlm_fs_actions *out)
{
	if (!out)
		return;
	out->n = l ? l->fa.n : 0;
	out->v = l && l->fa.n ? l->fa.v : NULL;
}

const struct dlm_loop_stats *dlm_loop_stats(const struct dlm_loop *l)
{
	return l ? &l->stats : NULL;
}

int dlm_loop_station_setpoint(const struct dlm_loop *l, const char *id, struct dlm_setpoint *out)
{
	const struct lstation *s = l ? find(l, id) : NULL;
	if (!s || !out)
		return V2G_ERR_NOTFOUND;
	*out = s->sp;
	return 0;
}

/* ---- status ---- */

json_t *dlm_loop_status_obj(const struct dlm_loop *l)
{
	if (!l)
		return NULL;
	const struct dlm_loop_stats *s = &l->stats;
	json_t *list = json_array();
	for (size_t i = 0; list && i < l->n; i++) {
		const struct lstation *st = l->st[i];
		const char *fid =
		        st->feeder >= 0 ? dlm_site_feeder_id(l->site, (size_t)st->feeder) : NULL;
		json_array_append_new(
		        list,
		        json_pack("{s:s,s:s,s:i,s:f,s:f,s:f,s:[f,f,f],s:b,s:o,s:o}", "id", st->id,
		                  "type", st->type == DLM_CAP_DC ? "dc" : "ac", "priority",
		                  st->priority, "demand_kw", st->demand_kw, "power_kw",
		                  st->sp.power_kw, "allocated_kw", st->sp.allocated_kw, "current_a",
		                  st->sp.current_a[0], st->sp.current_a[1], st->sp.current_a[2],
		                  "failsafe", st->failsafe, "feeder",
		                  fid ? json_string(fid) : json_null(), "override_kw",
		                  st->override_kw >= 0 ? json_real(st->override_kw) : json_null()));
	}
	return json_pack("{s:I,s:I,s:f,s:{s:f,s:f,s:f,s:s},s:f,s:f,s:f,s:i,s:f,s:I,"
	                 "s:{s:I,s:I,s:I,s:I},s:o}",
	                 "cycles", (json_int_t)s->cycles, "last_cycle_ms",
	                 (json_int_t)s->last_cycle_ms, "available_kw", l->available_kw, "site",
	                 "limit_kw", s->site_limit_kw, "load_kw", s->site_load_kw, "available_kw",
	                 s->site_available_kw, "binding", s->binding, "budget_kw", s->budget_kw,
	                 "allocated_kw", s->allocated_kw, "setpoint_kw", s->setpoint_kw,
	                 "shed_level", s->shed_level, "imbalance", s->imbalance, "phase_cuts",
	                 (json_int_t)s->phase_cuts, "stations", "total", (json_int_t)s->stations,
	                 "controlled", (json_int_t)s->controlled, "in_failsafe",
	                 (json_int_t)s->in_failsafe, "charging", (json_int_t)s->charging,
	                 "station_list", list);
}

char *dlm_loop_status_json(const struct dlm_loop *l)
{
	json_t *j = dlm_loop_status_obj(l);
	if (!j)
		return NULL;
	char *out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}
