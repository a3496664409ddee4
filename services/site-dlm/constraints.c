/* Site constraints: see constraints.h for the conventions and the
 * violation table. Stations are found through a tsearch tree keyed by id
 * (the id is the first member of struct station, so the tree compares raw
 * strings); each feeder keeps the running sum of its stations' power so that
 * no query walks the stations. */
#include "constraints.h"
#include "phase.h"

#include <math.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

#define SQRT3 1.7320508075688772

/* Voltage deviation from nominal: warning above 5 %, critical above 10 %
 * (ANSI C84.1 range A is +-5 %). */
#define VOLTAGE_WARN_FRAC 0.05
#define VOLTAGE_CRIT_FRAC 0.10
/* A transformer at or over max_temp_c keeps this share of its rating. */
#define XFMR_DERATE_FLOOR 0.5

struct station {
	char id[DLM_ID_MAX]; /* first: the tree compares ids as strings */
	int feeder;          /* index or -1 */
	double power_kw;
	int64_t meas_ms;
};

struct feeder {
	char id[DLM_ID_MAX];
	char name[DLM_ID_MAX];
	struct dlm_feeder_cfg cfg; /* name and stations point into this struct */
	char **stations;
	size_t n_stations;
	double power_kw, current_a; /* NaN = not measured */
	double station_sum_kw;      /* power of the stations mapped here */
	int64_t meas_ms;
	int xfmr; /* index or -1 */
};

struct xfmr {
	char id[DLM_ID_MAX];
	char name[DLM_ID_MAX];
	char cooling[DLM_ID_MAX];
	struct dlm_transformer_cfg cfg;
	char **feeders;
	size_t n_feeders;
	double load_kva, temp_c; /* NaN = not measured */
	int64_t meas_ms;
};

struct dlm_site {
	struct dlm_service_cfg svc;
	struct dlm_service_meas meas;
	int has_meas;
	int64_t meas_ms;

	struct feeder *feeders;
	size_t n_feeders, cap_feeders;
	struct xfmr *xfmrs;
	size_t n_xfmrs, cap_xfmrs;

	struct station **stations;
	size_t n_stations, cap_stations;
	void *tree;
	double station_total_kw;

	struct dlm_violation *viol, *viol_prev;
	size_t n_viol, cap_viol;
	int64_t checked_ms;
};

static const char *const PHASE_NAMES[3] = { "A", "B", "C" };

/* ---- small helpers ---- */

static int measured(double x)
{
	return isfinite(x) && x > 0;
}

static int valid_id(const char *id)
{
	return id && id[0] && strlen(id) < DLM_ID_MAX;
}

static int station_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void noop_free(void *p)
{
	(void)p;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Copies n strings; NULL (and n == 0) gives NULL. Sets *err on failure. */
static char **dup_strv(const char *const *v, size_t n, int *err)
{
	*err = 0;
	if (n == 0)
		return NULL;
	char **out = calloc(n, sizeof(*out));
	if (!out) {
		*err = V2G_ERR_NOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!valid_id(v[i])) {
			free_strv(out, i);
			*err = V2G_ERR_INVAL;
			return NULL;
		}
		out[i] = strdup(v[i]);
		if (!out[i]) {
			free_strv(out, i);
			*err = V2G_ERR_NOMEM;
			return NULL;
		}
	}
	return out;
}

double dlm_current_to_kw(int phases, double voltage_v, double current_a, double pf)
{
	double k = phases == 3 ? SQRT3 : 1.0;
	return k * voltage_v * current_a * pf / 1000.0;
}

double dlm_kw_to_current(int phases, double voltage_v, double power_kw, double pf)
{
	if (!(voltage_v > 0) || !(pf > 0))
		return 0;
	double k = phases == 3 ? SQRT3 : 1.0;
	return power_kw * 1000.0 / (k * voltage_v * pf);
}

/* ---- defaults and validation ---- */

struct dlm_service_cfg dlm_service_defaults(void)
{
	return (struct dlm_service_cfg){ .max_current_a = 400,
		                         .max_power_kw = 250,
		                         .voltage_v = 480,
		                         .phases = 3,
		                         .max_imbalance = 0.10,
		                         .min_power_factor = 0.90,
		                         .frequency_hz = 60,
		                         .frequency_tolerance_hz = 0.5,
		                         .nec625_factor = 0.80 };
}

struct dlm_feeder_cfg dlm_feeder_defaults(void)
{
	return (struct dlm_feeder_cfg){ .max_current_a = 200,
		                        .max_power_kw = 120,
		                        .phases = 3,
		                        .breaker_rating_a = 225,
		                        .cable_ampacity_a = 200 };
}

struct dlm_transformer_cfg dlm_transformer_defaults(void)
{
	return (struct dlm_transformer_cfg){ .rated_kva = 300,
		                             .continuous_factor = 0.80,
		                             .max_temp_c = 80,
		                             .derate_band_c = 10,
		                             .cooling = "ONAN" };
}

static int in01(double x)
{
	return isfinite(x) && x >= 0 && x <= 1;
}

static int service_valid(const struct dlm_service_cfg *c)
{
	return measured(c->max_current_a) && measured(c->max_power_kw) && measured(c->voltage_v) &&
	       (c->phases == 1 || c->phases == 3) && in01(c->max_imbalance) &&
	       in01(c->min_power_factor) && measured(c->frequency_hz) &&
	       measured(c->frequency_tolerance_hz) && measured(c->nec625_factor) &&
	       c->nec625_factor <= 1;
}

static int feeder_valid(const struct dlm_feeder_cfg *c)
{
	return isfinite(c->max_current_a) && c->max_current_a >= 0 && isfinite(c->max_power_kw) &&
	       c->max_power_kw >= 0 && (c->phases == 1 || c->phases == 3) &&
	       measured(c->breaker_rating_a) && measured(c->cable_ampacity_a) &&
	       (c->n_stations == 0 || c->stations) && (!c->name || strlen(c->name) < DLM_ID_MAX);
}

static int xfmr_valid(const struct dlm_transformer_cfg *c)
{
	return measured(c->rated_kva) && measured(c->continuous_factor) &&
	       c->continuous_factor <= 1 && isfinite(c->max_temp_c) && measured(c->derate_band_c) &&
	       (c->n_feeders == 0 || c->feeders) && (!c->name || strlen(c->name) < DLM_ID_MAX) &&
	       (!c->cooling || strlen(c->cooling) < DLM_ID_MAX);
}

/* ---- lifecycle ---- */

struct dlm_site *dlm_site_new(void)
{
	struct dlm_site *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->svc = dlm_service_defaults();
	return s;
}

void dlm_site_free(struct dlm_site *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_feeders; i++)
		free_strv(s->feeders[i].stations, s->feeders[i].n_stations);
	free(s->feeders);
	for (size_t i = 0; i < s->n_xfmrs; i++)
		free_strv(s->xfmrs[i].feeders, s->xfmrs[i].n_feeders);
	free(s->xfmrs);
	tdestroy(s->tree, noop_free);
	for (size_t i = 0; i < s->n_stations; i++)
		free(s->stations[i]);
	free(s->stations);
	free(s->viol);
	free(s->viol_prev);
	free(s);
}

int dlm_site_configure_service(struct dlm_site *s, const struct dlm_service_cfg *cfg)
{
	if (!s || !cfg || !service_valid(cfg))
		return V2G_ERR_INVAL;
	s->svc = *cfg;
	return 0;
}

const struct dlm_service_cfg *dlm_site_service(const struct dlm_site *s)
{
	return &s->svc;
}

/* ---- lookups and mapping ---- */

static struct station *station_find(const struct dlm_site *s, const char *id)
{
	void *const *node = tfind(id, &s->tree, station_cmp);
	return node ? *(struct station *const *)node : NULL;
}

static struct station *station_get(struct dlm_site *s, const char *id)
{
	struct station *st = station_find(s, id);
	if (st)
		return st;
	if (s->n_stations == s->cap_stations) {
		size_t cap = s->cap_stations ? 2 * s->cap_stations : 16;
		struct station **v = realloc(s->stations, cap * sizeof(*v));
		if (!v)
			return NULL;
		s->stations = v;
		s->cap_stations = cap;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	strcpy(st->id, id);
	st->feeder = -1;
	if (!tsearch(st, &s->tree, station_cmp)) {
		free(st);
		return NULL;
	}
	s->stations[s->n_stations++] = st;
	return st;
}

static int feeder_index(const struct dlm_site *s, const char *id)
{
	for (size_t i = 0; i < s->n_feeders; i++)
		if (strcmp(s->feeders[i].id, id) == 0)
			return (int)i;
	return -1;
}

static int xfmr_index(const struct dlm_site *s, const char *id)
{
	for (size_t i = 0; i < s->n_xfmrs; i++)
		if (strcmp(s->xfmrs[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* Recomputes station -> feeder, the feeders' station sums and feeder ->
 * transformer. Only fails (NOMEM) while creating station entries. */
static int remap(struct dlm_site *s)
{
	int rc = 0;
	for (size_t i = 0; i < s->n_stations; i++)
		s->stations[i]->feeder = -1;
	for (size_t f = 0; f < s->n_feeders; f++) {
		struct feeder *fd = &s->feeders[f];
		fd->station_sum_kw = 0;
		fd->xfmr = -1;
		for (size_t k = 0; k < fd->n_stations; k++) {
			struct station *st = station_get(s, fd->stations[k]);
			if (!st) {
				rc = V2G_ERR_NOMEM;
				continue;
			}
			if (st->feeder == (int)f)
				continue; /* listed twice */
			st->feeder = (int)f;
			fd->station_sum_kw += st->power_kw;
		}
	}
	for (size_t t = 0; t < s->n_xfmrs; t++)
		for (size_t k = 0; k < s->xfmrs[t].n_feeders; k++) {
			int f = feeder_index(s, s->xfmrs[t].feeders[k]);
			if (f >= 0)
				s->feeders[f].xfmr = (int)t;
		}
	return rc;
}

/* ---- configuration ---- */

int dlm_site_configure_feeder(struct dlm_site *s, const char *id, const struct dlm_feeder_cfg *cfg)
{
	if (!s || !valid_id(id) || !cfg || !feeder_valid(cfg))
		return V2G_ERR_INVAL;
	for (size_t k = 0; k < cfg->n_stations; k++) {
		if (!valid_id(cfg->stations[k]))
			return V2G_ERR_INVAL;
		struct station *st = station_find(s, cfg->stations[k]);
		if (st && st->feeder >= 0 && strcmp(s->feeders[st->feeder].id, id) != 0)
			return V2G_ERR_INVAL; /* on another feeder already */
	}
	int err;
	char **stations = dup_strv(cfg->stations, cfg->n_stations, &err);
	if (err)
		return err;

	int i = feeder_index(s, id);
	if (i < 0) {
		if (s->n_feeders == s->cap_feeders) {
			size_t cap = s->cap_feeders ? 2 * s->cap_feeders : 4;
			struct feeder *v = realloc(s->feeders, cap * sizeof(*v));
			if (!v) {
				free_strv(stations, cfg->n_stations);
				return V2G_ERR_NOMEM;
			}
			s->feeders = v;
			s->cap_feeders = cap;
		}
		i = (int)s->n_feeders++;
		struct feeder *fd = &s->feeders[i];
		memset(fd, 0, sizeof(*fd));
		strcpy(fd->id, id);
		fd->power_kw = NAN;
		fd->current_a = NAN;
		fd->xfmr = -1;
	}
	struct feeder *fd = &s->feeders[i];
	free_strv(fd->stations, fd->n_stations);
	fd->stations = stations;
	fd->n_stations = cfg->n_stations;
	snprintf(fd->name, sizeof(fd->name), "%s", cfg->name ? cfg->name : id);
	fd->cfg = *cfg;
	fd->cfg.name = fd->name;
	fd->cfg.stations = (const char *const *)fd->stations;
	return remap(s);
}

int dlm_site_configure_transformer(struct dlm_site *s, const char *id,
                                   const struct dlm_transformer_cfg *cfg)
{
	if (!s || !valid_id(id) || !cfg || !xfmr_valid(cfg))
		return V2G_ERR_INVAL;
	for (size_t k = 0; k < cfg->n_feeders; k++) {
		if (!valid_id(cfg->feeders[k]))
			return V2G_ERR_INVAL;
		for (size_t t = 0; t < s->n_xfmrs; t++) {
			if (strcmp(s->xfmrs[t].id, id) == 0)
				continue;
			for (size_t j = 0; j < s->xfmrs[t].n_feeders; j++)
				if (strcmp(s->xfmrs[t].feeders[j], cfg->feeders[k]) == 0)
					return V2G_ERR_INVAL; /* under another transformer */
		}
	}
	int err;
	char **feeders = dup_strv(cfg->feeders, cfg->n_feeders, &err);
	if (err)
		return err;

	int i = xfmr_index(s, id);
	if (i < 0) {
		if (s->n_xfmrs == s->cap_xfmrs) {
			size_t cap = s->cap_xfmrs ? 2 * s->cap_xfmrs : 2;
			struct xfmr *v = realloc(s->xfmrs, cap * sizeof(*v));
			if (!v) {
				free_strv(feeders, cfg->n_feeders);
				return V2G_ERR_NOMEM;
			}
			s->xfmrs = v;
			s->cap_xfmrs = cap;
		}
		i = (int)s->n_xfmrs++;
		struct xfmr *x = &s->xfmrs[i];
		memset(x, 0, sizeof(*x));
		strcpy(x->id, id);
		x->load_kva = NAN;
		x->temp_c = NAN;
	}
	struct xfmr *x = &s->xfmrs[i];
	free_strv(x->feeders, x->n_feeders);
	x->feeders = feeders;
	x->n_feeders = cfg->n_feeders;
	snprintf(x->name, sizeof(x->name), "%s", cfg->name ? cfg->name : id);
	snprintf(x->cooling, sizeof(x->cooling), "%s", cfg->cooling ? cfg->cooling : "");
	x->cfg = *cfg;
	x->cfg.name = x->name;
	x->cfg.cooling = x->cooling;
	x->cfg.feeders = (const char *const *)x->feeders;
	return remap(s);
}

int dlm_site_remove_feeder(struct dlm_site *s, const char *id)
{
	int i = s && id ? feeder_index(s, id) : -1;
	if (i < 0)
		return V2G_ERR_NOTFOUND;
	free_strv(s->feeders[i].stations, s->feeders[i].n_stations);
	memmove(&s->feeders[i], &s->feeders[i + 1], (s->n_feeders - i - 1) * sizeof(s->feeders[0]));
	s->n_feeders--;
	return remap(s);
}

int dlm_site_remove_transformer(struct dlm_site *s, const char *id)
{
	int i = s && id ? xfmr_index(s, id) : -1;
	if (i < 0)
		return V2G_ERR_NOTFOUND;
	free_strv(s->xfmrs[i].feeders, s->xfmrs[i].n_feeders);
	memmove(&s->xfmrs[i], &s->xfmrs[i + 1], (s->n_xfmrs - i - 1) * sizeof(s->xfmrs[0]));
	s->n_xfmrs--;
	return remap(s);
}

size_t dlm_site_feeder_count(const struct dlm_site *s)
{
	return s->n_feeders;
}

const char *dlm_site_feeder_id(const struct dlm_site *s, size_t i)
{
	return i < s->n_feeders ? s->feeders[i].id : NULL;
}

int dlm_site_station_feeder(const struct dlm_site *s, const char *station)
{
	const struct station *st = station ? station_find(s, station) : NULL;
	return st ? st->feeder : -1;
}

/* ---- measurements ---- */

int dlm_site_update_service(struct dlm_site *s, const struct dlm_service_meas *m, int64_t now_ms)
{
	if (!s || !m)
		return V2G_ERR_INVAL;
	s->meas = *m;
	s->has_meas = 1;
	s->meas_ms = now_ms;
	return 0;
}

int dlm_site_update_feeder(struct dlm_site *s, const char *id, double power_kw, double current_a,
                           int64_t now_ms)
{
	int i = s && id ? feeder_index(s, id) : -1;
	if (i < 0)
		return V2G_ERR_NOTFOUND;
	s->feeders[i].power_kw = isfinite(power_kw) ? power_kw : NAN;
	s->feeders[i].current_a = isfinite(current_a) ? current_a : NAN;
	s->feeders[i].meas_ms = now_ms;
	return 0;
}

int dlm_site_update_transformer(struct dlm_site *s, const char *id, double load_kva, double temp_c,
                                int64_t now_ms)
{
	int i = s && id ? xfmr_index(s, id) : -1;
	if (i < 0)
		return V2G_ERR_NOTFOUND;
	s->xfmrs[i].load_kva = isfinite(load_kva) ? load_kva : NAN;
	s->xfmrs[i].temp_c = isfinite(temp_c) ? temp_c : NAN;
	s->xfmrs[i].meas_ms = now_ms;
	return 0;
}

int dlm_site_update_station(struct dlm_site *s, const char *station, double power_kw,
                            int64_t now_ms)
{
	if (!s || !valid_id(station))
		return V2G_ERR_INVAL;
	if (!isfinite(power_kw))
		power_kw = 0;
	struct station *st = station_get(s, station);
	if (!st)
		return V2G_ERR_NOMEM;
	double delta = power_kw - st->power_kw;
	st->power_kw = power_kw;
	st->meas_ms = now_ms;
	s->station_total_kw += delta;
	if (st->feeder >= 0)
		s->feeders[st->feeder].station_sum_kw += delta;
	return 0;
}

/* ---- capacity ---- */

static double site_pf(const struct dlm_site *s)
{
	double pf = s->meas.power_factor;
	return s->has_meas && measured(pf) && pf <= 1 ? pf : 1.0;
}

static double service_load_kw(const struct dlm_site *s)
{
	if (s->has_meas && isfinite(s->meas.power_kw))
		return s->meas.power_kw;
	return s->station_total_kw;
}

/* Highest measured phase current, or the load converted when none is
 * measured. */
static double service_max_current(const struct dlm_site *s, double pf)
{
	double hi = -1;
	for (int p = 0; s->has_meas && p < s->svc.phases; p++)
		if (isfinite(s->meas.current_a[p]) && s->meas.current_a[p] > hi)
			hi = s->meas.current_a[p];
	if (hi >= 0)
		return hi;
	return dlm_kw_to_current(s->svc.phases, s->svc.voltage_v, service_load_kw(s), pf);
}

static double feeder_load_kw(const struct feeder *f)
{
	return isnan(f->power_kw) ? f->station_sum_kw : f->power_kw;
}

static double feeder_current(const struct dlm_site *s, const struct feeder *f, double pf)
{
	if (!isnan(f->current_a))
		return f->current_a;
	return dlm_kw_to_current(f->cfg.phases, s->svc.voltage_v, feeder_load_kw(f), pf);
}

/* Current limit and which rating sets it. */
static double feeder_current_limit(const struct dlm_site *s, const struct feeder *f,
                                   const char **which)
{
	double lim = f->cfg.breaker_rating_a * s->svc.nec625_factor;
	*which = "feeder_breaker";
	if (f->cfg.cable_ampacity_a < lim) {
		lim = f->cfg.cable_ampacity_a;
		*which = "feeder_ampacity";
	}
	if (f->cfg.max_current_a > 0 && f->cfg.max_current_a < lim) {
		lim = f->cfg.max_current_a;
		*which = "feeder_current";
	}
	return lim;
}

static double xfmr_derate(const struct xfmr *x)
{
	if (isnan(x->temp_c))
		return 1;
	double start = x->cfg.max_temp_c - x->cfg.derate_band_c;
	if (x->temp_c <= start)
		return 1;
	if (x->temp_c >= x->cfg.max_temp_c)
		return XFMR_DERATE_FLOOR;
	return 1 - (1 - XFMR_DERATE_FLOOR) * (x->temp_c - start) / x->cfg.derate_band_c;
}

static double xfmr_limit_kva(const struct xfmr *x)
{
	return x->cfg.rated_kva * x->cfg.continuous_factor * xfmr_derate(x);
}

static double xfmr_load_kva(const struct dlm_site *s, size_t t, double pf)
{
	const struct xfmr *x = &s->xfmrs[t];
	if (!isnan(x->load_kva))
		return x->load_kva;
	double kw = 0;
	int any = 0;
	for (size_t f = 0; f < s->n_feeders; f++)
		if (s->feeders[f].xfmr == (int)t) {
			kw += feeder_load_kw(&s->feeders[f]);
			any = 1;
		}
	if (!any)
		kw = service_load_kw(s);
	return kw / pf;
}

static double xfmr_headroom_kw(const struct dlm_site *s, size_t t, double pf)
{
	return (xfmr_limit_kva(&s->xfmrs[t]) - xfmr_load_kva(s, t, pf)) * pf;
}

static void site_headroom(const struct dlm_site *s, double pf, struct dlm_headroom *h)
{
	const struct dlm_service_cfg *c = &s->svc;
	double load = service_load_kw(s);
	double avail = c->max_power_kw * c->nec625_factor - load;
	const char *binding = "service_power";

	double cur = service_max_current(s, pf);
	double h_i = dlm_current_to_kw(c->phases, c->voltage_v, c->max_current_a - cur, pf);
	if (h_i < avail) {
		avail = h_i;
		binding = "service_current";
	}
	h->binding[0] = 0;
	if (s->n_xfmrs > 0) {
		double sum = 0;
		for (size_t t = 0; t < s->n_xfmrs; t++)
			sum += xfmr_headroom_kw(s, t, pf);
		if (sum < avail) {
			avail = sum;
			if (s->n_xfmrs == 1)
				snprintf(h->binding, sizeof(h->binding), "transformer:%s",
				         s->xfmrs[0].id);
			else
				snprintf(h->binding, sizeof(h->binding), "transformers");
		}
	}
	if (!h->binding[0])
		snprintf(h->binding, sizeof(h->binding), "%s", binding);
	h->load_kw = load;
	h->available_kw = avail;
	h->limit_kw = load + avail;
}

static void feeder_headroom(const struct dlm_site *s, size_t i, double pf, struct dlm_headroom *h)
{
	const struct feeder *f = &s->feeders[i];
	const char *cur_which;
	double i_lim = feeder_current_limit(s, f, &cur_which);
	double p_lim = dlm_current_to_kw(f->cfg.phases, s->svc.voltage_v, i_lim, pf);
	const char *p_which = cur_which;
	if (f->cfg.max_power_kw > 0 && f->cfg.max_power_kw < p_lim) {
		p_lim = f->cfg.max_power_kw;
		p_which = "feeder_power";
	}
	double load = feeder_load_kw(f);
	double avail = p_lim - load;
	const char *which = p_which;
	double h_i = dlm_current_to_kw(f->cfg.phases, s->svc.voltage_v,
	                               i_lim - feeder_current(s, f, pf), pf);
	if (h_i < avail) {
		avail = h_i;
		which = cur_which;
	}
	snprintf(h->binding, sizeof(h->binding), "%s", which);
	if (f->xfmr >= 0) {
		double h_t = xfmr_headroom_kw(s, (size_t)f->xfmr, pf);
		if (h_t < avail) {
			avail = h_t;
			snprintf(h->binding, sizeof(h->binding), "transformer:%s",
			         s->xfmrs[f->xfmr].id);
		}
	}
	h->load_kw = load;
	h->available_kw = avail;
	h->limit_kw = load + avail;
}

double dlm_site_available_kw(const struct dlm_site *s)
{
	struct dlm_headroom h;
	site_headroom(s, site_pf(s), &h);
	return h.available_kw;
}

size_t dlm_site_capacity(const struct dlm_site *s, struct dlm_headroom *site,
                         struct dlm_headroom *feeders, size_t n_feeders)
{
	double pf = site_pf(s);
	if (site)
		site_headroom(s, pf, site);
	for (size_t i = 0; feeders && i < n_feeders && i < s->n_feeders; i++)
		feeder_headroom(s, i, pf, &feeders[i]);
	return s->n_feeders;
}

int dlm_site_feeder_available(const struct dlm_site *s, const char *id, struct dlm_headroom *out)
{
	int i = s && id ? feeder_index(s, id) : -1;
	if (i < 0)
		return V2G_ERR_NOTFOUND;
	feeder_headroom(s, (size_t)i, site_pf(s), out);
	return 0;
}

/* ---- violations ---- */

const char *dlm_severity_name(int sev)
{
	switch (sev) {
	case DLM_SEV_INFO: return "info";
	case DLM_SEV_WARNING: return "warning";
	case DLM_SEV_CRITICAL: return "critical";
	}
	return "any";
}

int dlm_severity_parse(const char *name)
{
	for (int sev = DLM_SEV_INFO; name && sev <= DLM_SEV_CRITICAL; sev++)
		if (strcmp(name, dlm_severity_name(sev)) == 0)
			return sev;
	return DLM_SEV_ANY;
}

const char *dlm_violation_type_name(enum dlm_violation_type t)
{
	switch (t) {
	case DLM_VIOL_SERVICE_POWER: return "service_power";
	case DLM_VIOL_SERVICE_CURRENT: return "service_current";
	case DLM_VIOL_PHASE_IMBALANCE: return "phase_imbalance";
	case DLM_VIOL_POWER_FACTOR: return "power_factor";
	case DLM_VIOL_VOLTAGE: return "voltage";
	case DLM_VIOL_FREQUENCY: return "frequency";
	case DLM_VIOL_FEEDER_BREAKER: return "feeder_breaker";
	case DLM_VIOL_FEEDER_AMPACITY: return "feeder_ampacity";
	case DLM_VIOL_FEEDER_CURRENT: return "feeder_current";
	case DLM_VIOL_FEEDER_POWER: return "feeder_power";
	case DLM_VIOL_TRANSFORMER_LOAD: return "transformer_load";
	case DLM_VIOL_TRANSFORMER_TEMP: return "transformer_temp";
	}
	return "unknown";
}

__attribute__((format(printf, 7, 8))) static void
add_viol(struct dlm_site *s, enum dlm_violation_type type, enum dlm_severity sev,
         const char *subject, double value, double limit, const char *fmt, ...)
{
	if (s->n_viol == s->cap_viol)
		return; /* capacity is reserved for every possible violation */
	struct dlm_violation *v = &s->viol[s->n_viol++];
	memset(v, 0, sizeof(*v));
	v->type = type;
	v->severity = sev;
	snprintf(v->subject, sizeof(v->subject), "%s", subject);
	v->value = value;
	v->limit = limit;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->message, sizeof(v->message), fmt, ap);
	va_end(ap);
}

static void check_service(struct dlm_site *s)
{
	const struct dlm_service_cfg *c = &s->svc;
	const struct dlm_service_meas *m = &s->meas;
	if (!s->has_meas)
		return;
	if (isfinite(m->power_kw)) {
		double cont = c->max_power_kw * c->nec625_factor;
		if (m->power_kw > c->max_power_kw)
			add_viol(s, DLM_VIOL_SERVICE_POWER, DLM_SEV_CRITICAL, "service",
			         m->power_kw, c->max_power_kw,
			         "service power %.1f kW over its rating %.1f kW", m->power_kw,
			         c->max_power_kw);
		else if (m->power_kw > cont)
			add_viol(s, DLM_VIOL_SERVICE_POWER, DLM_SEV_WARNING, "service", m->power_kw,
			         cont, "service power %.1f kW over the NEC 625 continuous %.1f kW",
			         m->power_kw, cont);
	}
	int all_currents = 1;
	for (int p = 0; p < c->phases; p++) {
		double i = m->current_a[p];
		if (!isfinite(i) || i < 0) {
			all_currents = 0;
			continue;
		}
		if (i > c->max_current_a)
			add_viol(s, DLM_VIOL_SERVICE_CURRENT, DLM_SEV_CRITICAL, PHASE_NAMES[p], i,
			         c->max_current_a, "phase %s current %.1f A over %.1f A",
			         PHASE_NAMES[p], i, c->max_current_a);
	}
	if (c->phases == 3 && all_currents) {
		double imb = dlm_phase_imbalance(m->current_a, DLM_IMBALANCE_OF_MAX);
		if (imb > c->max_imbalance) {
			int crit = imb > 2 * c->max_imbalance;
			add_viol(s, DLM_VIOL_PHASE_IMBALANCE,
			         crit ? DLM_SEV_CRITICAL : DLM_SEV_WARNING, "service", imb,
			         c->max_imbalance, "phase imbalance %.1f %% over %.1f %%",
			         imb * 100, c->max_imbalance * 100);
		}
	}
	if (measured(m->power_factor) && m->power_factor < c->min_power_factor)
		add_viol(s, DLM_VIOL_POWER_FACTOR, DLM_SEV_WARNING, "service", m->power_factor,
		         c->min_power_factor, "power factor %.2f below %.2f", m->power_factor,
		         c->min_power_factor);
	for (int p = 0; p < c->phases; p++) {
		double v = m->voltage_v[p];
		if (!measured(v))
			continue;
		double dev = fabs(v - c->voltage_v) / c->voltage_v;
		if (dev > VOLTAGE_WARN_FRAC) {
			int crit = dev > VOLTAGE_CRIT_FRAC;
			double frac = crit ? VOLTAGE_CRIT_FRAC : VOLTAGE_WARN_FRAC;
			add_viol(s, DLM_VIOL_VOLTAGE, crit ? DLM_SEV_CRITICAL : DLM_SEV_WARNING,
			         PHASE_NAMES[p], v, c->voltage_v,
			         "phase %s voltage %.1f V deviates %.1f %% from %.0f V (limit %.0f "
			         "%%)",
			         PHASE_NAMES[p], v, dev * 100, c->voltage_v, frac * 100);
		}
	}
	if (measured(m->frequency_hz)) {
		double dev = fabs(m->frequency_hz - c->frequency_hz);
		if (dev > c->frequency_tolerance_hz) {
			int crit = dev > 2 * c->frequency_tolerance_hz;
			add_viol(s, DLM_VIOL_FREQUENCY, crit ? DLM_SEV_CRITICAL : DLM_SEV_WARNING,
			         "service", m->frequency_hz, c->frequency_hz,
			         "frequency %.2f Hz deviates %.2f Hz from %.0f Hz (limit %.2f Hz)",
			         m->frequency_hz, dev, c->frequency_hz, c->frequency_tolerance_hz);
		}
	}
}

static void check_feeders(struct dlm_site *s, double pf)
{
	for (size_t i = 0; i < s->n_feeders; i++) {
		const struct feeder *f = &s->feeders[i];
		double cur = feeder_current(s, f, pf), p = feeder_load_kw(f);
		double brk = f->cfg.breaker_rating_a, cont = brk * s->svc.nec625_factor;
		if (cur > brk)
			add_viol(s, DLM_VIOL_FEEDER_BREAKER, DLM_SEV_CRITICAL, f->id, cur, brk,
			         "feeder %s current %.1f A over its %.0f A breaker", f->id, cur,
			         brk);
		else if (cur > cont)
			add_viol(s, DLM_VIOL_FEEDER_BREAKER, DLM_SEV_WARNING, f->id, cur, cont,
			         "feeder %s current %.1f A over the NEC 625 continuous %.1f A",
			         f->id, cur, cont);
		if (cur > f->cfg.cable_ampacity_a)
			add_viol(s, DLM_VIOL_FEEDER_AMPACITY, DLM_SEV_CRITICAL, f->id, cur,
			         f->cfg.cable_ampacity_a,
			         "feeder %s current %.1f A over its cable ampacity %.0f A", f->id,
			         cur, f->cfg.cable_ampacity_a);
		if (f->cfg.max_current_a > 0 && cur > f->cfg.max_current_a)
			add_viol(s, DLM_VIOL_FEEDER_CURRENT, DLM_SEV_CRITICAL, f->id, cur,
			         f->cfg.max_current_a, "feeder %s current %.1f A over %.0f A",
			         f->id, cur, f->cfg.max_current_a);
		if (f->cfg.max_power_kw > 0 && p > f->cfg.max_power_kw)
			add_viol(s, DLM_VIOL_FEEDER_POWER, DLM_SEV_CRITICAL, f->id, p,
			         f->cfg.max_power_kw, "feeder %s power %.1f kW over %.1f kW", f->id,
			         p, f->cfg.max_power_kw);
	}
}

static void check_xfmrs(struct dlm_site *s, double pf)
{
	for (size_t t = 0; t < s->n_xfmrs; t++) {
		const struct xfmr *x = &s->xfmrs[t];
		double load = xfmr_load_kva(s, t, pf);
		double rated = x->cfg.rated_kva, cont = rated * x->cfg.continuous_factor;
		if (load > rated)
			add_viol(s, DLM_VIOL_TRANSFORMER_LOAD, DLM_SEV_CRITICAL, x->id, load, rated,
			         "transformer %s load %.1f kVA over its rating %.0f kVA", x->id,
			         load, rated);
		else if (load > cont)
			add_viol(s, DLM_VIOL_TRANSFORMER_LOAD, DLM_SEV_WARNING, x->id, load, cont,
			         "transformer %s load %.1f kVA over its continuous %.1f kVA", x->id,
			         load, cont);
		if (isnan(x->temp_c))
			continue;
		if (x->temp_c > x->cfg.max_temp_c)
			add_viol(s, DLM_VIOL_TRANSFORMER_TEMP, DLM_SEV_CRITICAL, x->id, x->temp_c,
			         x->cfg.max_temp_c, "transformer %s at %.1f C over %.1f C", x->id,
			         x->temp_c, x->cfg.max_temp_c);
		else if (x->temp_c > x->cfg.max_temp_c - x->cfg.derate_band_c)
			add_viol(s, DLM_VIOL_TRANSFORMER_TEMP, DLM_SEV_INFO, x->id, x->temp_c,
			         x->cfg.max_temp_c - x->cfg.derate_band_c,
			         "transformer %s at %.1f C: derated to %.0f %%", x->id, x->temp_c,
			         xfmr_derate(x) * 100);
	}
}

size_t dlm_site_check(struct dlm_site *s, int64_t now_ms)
{
	/* Reserve room for every violation that can occur at once. */
	size_t need = 10 + 4 * s->n_feeders + 2 * s->n_xfmrs;
	if (need > s->cap_viol) {
		struct dlm_violation *a = malloc(need * sizeof(*a));
		struct dlm_violation *b = malloc(need * sizeof(*b));
		if (!a || !b) {
			free(a);
			free(b);
			return s->n_viol; /* keep the previous list */
		}
		if (s->n_viol)
			memcpy(b, s->viol, s->n_viol * sizeof(*b));
		free(s->viol);
		free(s->viol_prev);
		s->viol = b;
		s->viol_prev = a;
		s->cap_viol = need;
	}
	struct dlm_violation *prev = s->viol;
	size_t n_prev = s->n_viol;
	s->viol = s->viol_prev;
	s->viol_prev = prev;
	s->n_viol = 0;

	double pf = site_pf(s);
	check_service(s);
	check_feeders(s, pf);
	check_xfmrs(s, pf);

	for (size_t i = 0; i < s->n_viol; i++) {
		struct dlm_violation *v = &s->viol[i];
		v->since_ms = now_ms;
		for (size_t j = 0; j < n_prev; j++)
			if (prev[j].type == v->type && strcmp(prev[j].subject, v->subject) == 0) {
				v->since_ms = prev[j].since_ms;
				break;
			}
	}
	/* Most severe first, stable (insertion sort: a handful of entries). */
	for (size_t i = 1; i < s->n_viol; i++) {
		struct dlm_violation v = s->viol[i];
		size_t j = i;
		while (j > 0 && s->viol[j - 1].severity < v.severity) {
			s->viol[j] = s->viol[j - 1];
			j--;
		}
		s->viol[j] = v;
	}
	s->checked_ms = now_ms;
	return s->n_viol;
}

size_t dlm_site_violations(const struct dlm_site *s, int severity, size_t limit,
                           struct dlm_violation *out)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n_viol && n < limit; i++)
		if (severity == DLM_SEV_ANY || (int)s->viol[i].severity == severity)
			out[n++] = s->viol[i];
	return n;
}

size_t dlm_site_violation_count(const struct dlm_site *s, int severity)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n_viol; i++)
		if (severity == DLM_SEV_ANY || (int)s->viol[i].severity == severity)
			n++;
	return n;
}

/* ---- status ---- */

/* NaN is not JSON: unmeasured values are null. */
static json_t *num(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

static json_t *headroom_json(const struct dlm_headroom *h)
{
	return json_pack("{s:o,s:o,s:o,s:s}", "limit_kw", num(h->limit_kw), "load_kw",
	                 num(h->load_kw), "available_kw", num(h->available_kw), "binding",
	                 h->binding);
}

static json_t *strv_json(char **v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *service_json(const struct dlm_site *s)
{
	const struct dlm_service_cfg *c = &s->svc;
	json_t *cfg = json_pack("{s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:f,s:f}", "max_current_a",
	                        c->max_current_a, "max_power_kw", c->max_power_kw, "voltage_v",
	                        c->voltage_v, "phases", c->phases, "max_imbalance",
	                        c->max_imbalance, "min_power_factor", c->min_power_factor,
	                        "frequency_hz", c->frequency_hz, "frequency_tolerance_hz",
	                        c->frequency_tolerance_hz, "nec625_factor", c->nec625_factor);
	json_t *meas;
	if (!s->has_meas) {
		meas = json_null();
	} else {
		const struct dlm_service_meas *m = &s->meas;
		json_t *cur = json_object(), *volt = json_object();
		for (int p = 0; p < c->phases; p++) {
			json_object_set_new(cur, PHASE_NAMES[p], num(m->current_a[p]));
			json_object_set_new(volt, PHASE_NAMES[p], num(m->voltage_v[p]));
		}
		meas = json_pack(
		        "{s:o,s:o,s:o,s:o,s:o,s:o,s:I}", "power_kw", num(m->power_kw), "current_a",
		        cur, "voltage_v", volt, "power_factor", num(m->power_factor),
		        "frequency_hz", num(m->frequency_hz), "imbalance",
		        c->phases == 3
		                ? num(dlm_phase_imbalance(m->current_a, DLM_IMBALANCE_OF_MAX))
		                : json_real(0),
		        "updated_ms", (json_int_t)s->meas_ms);
	}
	return json_pack("{s:o,s:o}", "config", cfg, "measurements", meas);
}

json_t *dlm_site_status_obj(const struct dlm_site *s)
{
	double pf = site_pf(s);
	struct dlm_headroom site;
	site_headroom(s, pf, &site);

	json_t *feeders = json_array();
	for (size_t i = 0; feeders && i < s->n_feeders; i++) {
		const struct feeder *f = &s->feeders[i];
		struct dlm_headroom h;
		feeder_headroom(s, i, pf, &h);
		json_array_append_new(
		        feeders,
		        json_pack("{s:s,s:s,s:f,s:f,s:i,s:f,s:f,s:o,s:o,s:o,s:o,s:o}", "id", f->id,
		                  "name", f->name, "max_current_a", f->cfg.max_current_a,
		                  "max_power_kw", f->cfg.max_power_kw, "phases", f->cfg.phases,
		                  "breaker_rating_a", f->cfg.breaker_rating_a, "cable_ampacity_a",
		                  f->cfg.cable_ampacity_a, "stations",
		                  strv_json(f->stations, f->n_stations), "power_kw",
		                  num(feeder_load_kw(f)), "current_a",
		                  num(feeder_current(s, f, pf)), "transformer",
		                  f->xfmr >= 0 ? json_string(s->xfmrs[f->xfmr].id) : json_null(),
		                  "headroom", headroom_json(&h)));
	}
	json_t *xfmrs = json_array();
	for (size_t t = 0; xfmrs && t < s->n_xfmrs; t++) {
		const struct xfmr *x = &s->xfmrs[t];
		json_array_append_new(
		        xfmrs, json_pack("{s:s,s:s,s:f,s:f,s:f,s:s,s:o,s:o,s:o,s:f,s:o}", "id",
		                         x->id, "name", x->name, "rated_kva", x->cfg.rated_kva,
		                         "continuous_factor", x->cfg.continuous_factor,
		                         "max_temp_c", x->cfg.max_temp_c, "cooling", x->cooling,
		                         "feeders", strv_json(x->feeders, x->n_feeders), "load_kva",
		                         num(xfmr_load_kva(s, t, pf)), "temp_c", num(x->temp_c),
		                         "derate_factor", xfmr_derate(x), "available_kw",
		                         num(xfmr_headroom_kw(s, t, pf))));
	}
	json_t *list = json_array();
	for (size_t i = 0; list && i < s->n_viol; i++) {
		const struct dlm_violation *v = &s->viol[i];
		json_array_append_new(
		        list, json_pack("{s:s,s:s,s:s,s:o,s:o,s:I,s:s}", "type",
		                        dlm_violation_type_name(v->type), "severity",
		                        dlm_severity_name(v->severity), "subject", v->subject,
		                        "value", num(v->value), "limit", num(v->limit), "since_ms",
		                        (json_int_t)v->since_ms, "message", v->message));
	}
	json_t *viol = json_pack("{s:i,s:i,s:i,s:I,s:o}", "critical",
	                         (int)dlm_site_violation_count(s, DLM_SEV_CRITICAL), "warning",
	                         (int)dlm_site_violation_count(s, DLM_SEV_WARNING), "info",
	                         (int)dlm_site_violation_count(s, DLM_SEV_INFO), "checked_ms",
	                         (json_int_t)s->checked_ms, "active", list);
	/* json_pack steals every "o" even on failure, so nothing leaks here. */
	return json_pack("{s:o,s:o,s:o,s:o,s:o}", "service", service_json(s), "feeders", feeders,
	                 "transformers", xfmrs, "capacity", headroom_json(&site), "violations",
	                 viol);
}

char *dlm_site_status_json(const struct dlm_site *s)
{
	json_t *j = dlm_site_status_obj(s);
	if (!j)
		return NULL;
	char *out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}
