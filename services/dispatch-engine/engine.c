#include "engine.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strategy.h"
#include "strmap.h"
#include "tuner.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"
#include "v2g/signal_type.h"

#define KW_EPS 1e-6

enum alloc_state { A_PENDING, A_ACKED, A_REJECTED, A_SILENT };

struct alloc {
	const char *vehicle_id; /* stable: points into the fleet */
	double power_kw;
	uint32_t round;
	uint8_t state;
	uint8_t reallocated;
	char reason[48];
	int64_t acked_ms;
};

struct dispatch {
	char id[37];
	char signal_id[64];
	char source[16];
	int type;
	double power_kw;
	uint32_t duration_min;
	int64_t signal_ts_ms, received_ms;
	double market_price;
	int has_market_price;

	int64_t started_ms;    /* wall */
	int64_t round_sent_ms; /* wall time of the current round's commands */
	int64_t deadline_mono;
	int64_t first_command_ms, last_published_ms;
	uint32_t round;
	char dispatcher[24]; /* which strategy decided the first allocation */
	size_t pending;      /* commanded vehicles of this round without an answer */
	size_t commanded;    /* vehicles given power > 0, all rounds */
	struct alloc *allocs;
	size_t n, cap;
	struct disp_strmap by_vehicle; /* vehicle -> index in allocs */
};

/* The latest DLM figure of one site. */
struct site_cap {
	uint16_t site; /* interned */
	char name[64];
	double available_kw, limit_kw, load_kw;
	int64_t at_ms; /* min(ts_ms, arrival): its age counts from there */
	int stale;     /* reported stale; cleared by the next figure */
};

struct disp_engine {
	pthread_mutex_t mu;
	struct disp_config cfg;
	struct disp_fleet *fleet;
	struct disp_engine_ops ops;
	struct dispatch **active;
	size_t nactive, cap;

	struct disp_predictor *pred;                /* borrowed; NULL: neutral forecasts */
	struct disp_weights weights[3];             /* per signal type; the tuner moves them */
	struct disp_tuner *tuner;                   /* NULL when disabled */
	struct disp_segment seg[DISP_MAX_SEGMENTS]; /* segment names interned in the fleet */
	size_t nseg;
	/* configured site limits, by interned site index */
	uint16_t *lim_site, *lim_parent; /* parent 0 = none */
	double *lim_kw;
	size_t nlim;
	/* DLM capacity by site (site-dlm's SiteCapacity), unordered */
	struct site_cap *caps;
	size_t ncaps, capcaps;
	int64_t next_stale_check_ms;

	struct v2g_metric *m_latency, *m_dispatched, *m_ack_rate, *m_dispatches, *m_realloc,
	        *m_ignored, *m_active, *m_publish_latency, *m_shortfall, *m_solve, *m_lp_fallback,
	        *m_fallback_kw, *m_weight, *m_cap_kw, *m_cap_updates, *m_cap_stale;
};

enum disp_direction disp_signal_direction(int signal_type)
{
	/* every type asks for power delivered to the grid (engine.h) */
	(void)signal_type;
	return DISP_EXPORT;
}

double disp_site_capacity_kw(enum disp_direction dir, double available_kw, double limit_kw,
                             double load_kw)
{
	double kw;
	if (dir == DISP_IMPORT) {
		if (!isfinite(available_kw))
			return -1;
		kw = available_kw;
	} else {
		if (!isfinite(limit_kw) || !isfinite(load_kw) || limit_kw <= 0)
			return -1;
		kw = limit_kw + load_kw;
	}
	return kw > 0 ? kw : 0;
}

struct disp_engine *disp_engine_new(const struct disp_config *cfg, struct disp_fleet *fleet,
                                    struct disp_predictor *pred, const struct disp_engine_ops *ops)
{
	struct disp_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	pthread_mutex_init(&e->mu, NULL);
	e->cfg = *cfg;
	e->fleet = fleet;
	e->pred = pred;
	e->ops = *ops;
	for (int t = 0; t < 3; t++)
		e->weights[t] = cfg->policy.params[t].weights;
	for (size_t i = 0; i < cfg->policy.nsegments; i++) {
		e->seg[i].segment = disp_fleet_intern(fleet, cfg->policy.segments[i].name);
		e->seg[i].params = cfg->policy.segments[i].params;
	}
	e->nseg = cfg->policy.nsegments;
	e->cfg.policy.sites = NULL; /* the engine keeps interned indexes, not the names */
	e->cfg.policy.nsites = 0;
	if (cfg->policy.nsites) {
		size_t n = cfg->policy.nsites;
		e->lim_site = calloc(n, sizeof(*e->lim_site));
		e->lim_parent = calloc(n, sizeof(*e->lim_parent));
		e->lim_kw = calloc(n, sizeof(*e->lim_kw));
		if (!e->lim_site || !e->lim_parent || !e->lim_kw) {
			disp_engine_free(e);
			return NULL;
		}
		for (size_t i = 0; i < n; i++) {
			const struct disp_policy_site *ps = &cfg->policy.sites[i];
			e->lim_site[i] = disp_fleet_intern(fleet, ps->site);
			e->lim_parent[i] = disp_fleet_intern(fleet, ps->parent);
			e->lim_kw[i] = ps->limit_kw;
		}
		e->nlim = n;
	}
	if (cfg->policy.tuner_enabled) {
		char err[200];
		e->tuner = disp_ack_tuner_new(&cfg->policy.tuner, err, sizeof(err));
		if (!e->tuner) {
			v2g_error("DISP-TUNER", "tuner refused: %s", err);
			free(e);
			return NULL;
		}
	}
	e->m_solve = v2g_histogram("dispatch_solve_seconds",
	                           "Scoring, selection and allocation time of one dispatch",
	                           "strategy", v2g_latency_buckets, v2g_latency_nbuckets);
	e->m_lp_fallback = v2g_counter("dispatch_lp_fallbacks_total",
	                               "LP-first allocations (first or reallocation round) the LP "
	                               "could not serve: Smart decided",
	                               "signal_type");
	e->m_fallback_kw =
	        v2g_counter("dispatch_fallback_kw_total",
	                    "Residual power the fallback moved onto acked vehicles", "fallback");
	e->m_weight = v2g_gauge("dispatch_availability_weight",
	                        "Availability weight of the Smart score (moved by the tuner)",
	                        "signal_type");
	for (int t = 0; t < 3; t++)
		v2g_gauge_set(e->m_weight, v2g_signal_type_name(t), e->weights[t].availability);
	e->m_latency = v2g_histogram("dispatch_execution_latency_seconds",
	                             "Time from publishing a command to its positive ack",
	                             "signal_type", v2g_latency_buckets, v2g_latency_nbuckets);
	e->m_dispatched = v2g_counter("vehicles_dispatched_total",
	                              "Vehicles given a non-zero command", "signal_type");
	e->m_ack_rate = v2g_gauge(
	        "ack_rate",
	        "Acknowledged share of the commanded vehicles in the last finished dispatch",
	        "signal_type");
	e->m_dispatches =
	        v2g_counter("dispatches_total", "Finished dispatches by status", "status");
	e->m_realloc = v2g_counter(
	        "dispatch_reallocations_total",
	        "Vehicles whose power was moved after a reject or a silent timeout", "signal_type");
	e->m_ignored = v2g_counter("dispatch_acks_ignored_total",
	                           "Acks that matched no pending command", "reason");
	e->m_active = v2g_gauge("dispatch_active", "Dispatches waiting for acks", NULL);
	e->m_publish_latency = v2g_histogram(
	        "dispatch_publish_latency_seconds",
	        "Time from accepting a signal to the gateway confirming its last command",
	        "signal_type", v2g_latency_buckets, v2g_latency_nbuckets);
	e->m_shortfall = v2g_gauge("dispatch_shortfall_kw",
	                           "Power missing from the last finished dispatch", "signal_type");
	e->m_cap_kw = v2g_gauge("dispatch_site_capacity_kw",
	                        "What the site's DLM lets a dispatch place there now (export "
	                        "headroom of its latest figure)",
	                        "site");
	e->m_cap_updates = v2g_counter("dispatch_site_capacity_updates_total",
	                               "Site capacity figures received from site-dlm", NULL);
	e->m_cap_stale = v2g_counter("dispatch_site_capacity_stale_total",
	                             "Times a site's DLM figure went stale (then ignored)", "site");
	if (e->cfg.site_capacity_ttl_ms <= 0)
		e->cfg.site_capacity_ttl_ms = DISP_SITE_CAPACITY_TTL_MS;
	return e;
}

static void dispatch_free(struct dispatch *d)
{
	if (!d)
		return;
	free(d->allocs);
	disp_strmap_fini(&d->by_vehicle);
	free(d);
}

void disp_engine_free(struct disp_engine *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nactive; i++)
		dispatch_free(e->active[i]);
	free(e->active);
	if (e->tuner)
		e->tuner->free(e->tuner);
	free(e->lim_site);
	free(e->lim_parent);
	free(e->lim_kw);
	free(e->caps);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

static int add_alloc(struct dispatch *d, const char *id, double kw)
{
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 64;
		struct alloc *na = realloc(d->allocs, ncap * sizeof(*na));
		if (!na)
			return V2G_ERR_NOMEM;
		d->allocs = na;
		d->cap = ncap;
	}
	struct alloc *a = &d->allocs[d->n];
	memset(a, 0, sizeof(*a));
	a->vehicle_id = id;
	a->power_kw = kw;
	a->round = d->round;
	a->state = A_PENDING;
	if (disp_strmap_put(&d->by_vehicle, id, (uint32_t)d->n))
		return V2G_ERR_NOMEM;
	d->n++;
	return V2G_OK;
}

/* Sums of the allocations that still stand (not reallocated). */
static void totals(const struct dispatch *d, double *allocated, double *acked)
{
	*allocated = *acked = 0;
	for (size_t i = 0; i < d->n; i++) {
		const struct alloc *a = &d->allocs[i];
		if (a->reallocated)
			continue;
		*allocated += a->power_kw;
		if (a->state == A_ACKED)
			*acked += a->power_kw;
	}
}

static V2g__V1__DispatchStatus final_status(const struct dispatch *d, double acked)
{
	if (acked >= d->power_kw - KW_EPS)
		return V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_COMPLETE;
	return acked > KW_EPS ? V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PARTIAL
	                      : V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_FAILED;
}

/* Builds the decision and hands it to ops. final: the dispatch is over. */
static void emit_decision(struct disp_engine *e, struct dispatch *d, int final, int64_t now_ms)
{
	V2g__V1__DispatchDecision dec = V2G__V1__DISPATCH_DECISION__INIT;
	V2g__V1__Signal sig = V2G__V1__SIGNAL__INIT;
	V2g__V1__Allocation *av = calloc(d->n ? d->n : 1, sizeof(*av));
	V2g__V1__Allocation **ap = calloc(d->n ? d->n : 1, sizeof(*ap));
	double allocated, acked;

	if (!av || !ap) {
		v2g_error("DISP-NOMEM", "dispatch %s: no memory for the decision", d->id);
		free(av);
		free(ap);
		return;
	}
	sig.signal_id = d->signal_id;
	sig.type = (V2g__V1__SignalType)d->type;
	sig.power_kw = d->power_kw;
	sig.duration_min = d->duration_min;
	sig.timestamp_ms = d->signal_ts_ms;
	sig.market_price = d->market_price;
	sig.has_market_price = d->has_market_price;
	sig.source = d->source;
	sig.received_ms = d->received_ms;

	for (size_t i = 0; i < d->n; i++) {
		const struct alloc *a = &d->allocs[i];
		v2g__v1__allocation__init(&av[i]);
		av[i].vehicle_id = (char *)a->vehicle_id;
		av[i].power_kw = a->power_kw;
		av[i].acked = a->state == A_ACKED;
		av[i].rejected = a->state == A_REJECTED;
		av[i].reallocated = a->reallocated;
		av[i].reason = (char *)a->reason;
		av[i].round = a->round;
		av[i].acked_ms = a->acked_ms;
		ap[i] = &av[i];
	}
	totals(d, &allocated, &acked);
	dec.dispatch_id = d->id;
	dec.signal = &sig;
	dec.status =
	        final ? final_status(d, acked) : V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PENDING;
	dec.target_power_kw = d->power_kw;
	dec.allocated_power_kw = allocated;
	dec.acked_power_kw = acked;
	dec.n_allocations = d->n;
	dec.allocations = ap;
	dec.started_ms = d->started_ms;
	dec.completed_ms = final ? now_ms : 0;
	dec.dispatcher = d->dispatcher;
	dec.shortfall_kw = final && acked < d->power_kw ? d->power_kw - acked : 0;
	dec.rounds = d->round + 1;
	dec.first_command_ms = d->first_command_ms;
	e->ops.send_decision(e->ops.arg, &dec);
	free(av);
	free(ap);
}

/* Sends one batch: power 0 for released[] and the allocations made in this
 * round. */
static void emit_commands(struct disp_engine *e, struct dispatch *d, const char **released,
                          size_t nreleased, int64_t now_ms)
{
	size_t nnew = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (d->allocs[i].round == d->round && d->allocs[i].state == A_PENDING)
			nnew++;
	}
	size_t total = nreleased + nnew;
	if (!total)
		return;
	V2g__V1__Command *cv = calloc(total, sizeof(*cv));
	V2g__V1__Command **cp = calloc(total, sizeof(*cp));
	if (!cv || !cp) {
		v2g_error("DISP-NOMEM", "dispatch %s: no memory for %zu commands", d->id, total);
		free(cv);
		free(cp);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < nreleased; i++, k++) {
		v2g__v1__command__init(&cv[k]);
		cv[k].vehicle_id = (char *)released[i];
		cv[k].power_kw = 0;
		cp[k] = &cv[k];
	}
	for (size_t i = 0; i < d->n; i++) {
		const struct alloc *a = &d->allocs[i];
		if (a->round != d->round || a->state != A_PENDING)
			continue;
		v2g__v1__command__init(&cv[k]);
		cv[k].vehicle_id = (char *)a->vehicle_id;
		cv[k].power_kw = a->power_kw;
		cp[k] = &cv[k];
		k++;
	}
	V2g__V1__CommandBatch b = V2G__V1__COMMAND_BATCH__INIT;
	b.dispatch_id = d->id;
	b.signal_type = d->type;
	b.duration_min = d->duration_min;
	b.issued_at_ms = now_ms;
	b.n_commands = k;
	b.commands = cp;
	e->ops.send_commands(e->ops.arg, &b);
	if (!d->first_command_ms)
		d->first_command_ms = now_ms;
	free(cv);
	free(cp);
}

/* Records one allocation of this round; keeps the counters. */
static int commit_alloc(struct disp_engine *e, struct dispatch *d, const char *id, double kw)
{
	(void)e;
	if (add_alloc(d, id, kw))
		return V2G_ERR_NOMEM;
	d->pending++;
	d->commanded++;
	return V2G_OK;
}

/* 1 when the site's figure is fresh at now_ms; a figure found stale the
 * first time is logged and counted (under the lock). */
static int cap_fresh(struct disp_engine *e, struct site_cap *c, int64_t now_ms)
{
	int64_t age = now_ms - c->at_ms;
	if (age < e->cfg.site_capacity_ttl_ms)
		return 1;
	if (!c->stale) {
		c->stale = 1;
		v2g_counter_inc(e->m_cap_stale, c->name);
		v2g_warn("DISP-SITE-CAPACITY-STALE",
		         "site=%s: no capacity from its DLM for %lld ms (ttl %lld ms): ignored "
		         "until the next figure",
		         c->name, (long long)age, (long long)e->cfg.site_capacity_ttl_ms);
	}
	return 0;
}

int disp_engine_site_capacity(struct disp_engine *e, const V2g__V1__SiteCapacity *c, int64_t now_ms)
{
	if (!c || !c->site || !c->site[0] || strlen(c->site) >= sizeof(e->caps->name) ||
	    !isfinite(c->available_kw) || !isfinite(c->limit_kw) || !isfinite(c->load_kw))
		return V2G_ERR_INVAL;
	uint16_t site = disp_fleet_intern(e->fleet, c->site);
	if (!site)
		return V2G_ERR_TOOBIG; /* the name table is full */
	pthread_mutex_lock(&e->mu);
	struct site_cap *sc = NULL;
	for (size_t i = 0; i < e->ncaps && !sc; i++)
		if (e->caps[i].site == site)
			sc = &e->caps[i];
	if (!sc) {
		if (e->ncaps == DISP_MAX_DLM_SITES) {
			pthread_mutex_unlock(&e->mu);
			return V2G_ERR_TOOBIG;
		}
		if (e->ncaps == e->capcaps) {
			size_t n = e->capcaps ? 2 * e->capcaps : 8;
			struct site_cap *v = realloc(e->caps, n * sizeof(*v));
			if (!v) {
				pthread_mutex_unlock(&e->mu);
				return V2G_ERR_NOMEM;
			}
			e->caps = v;
			e->capcaps = n;
		}
		sc = &e->caps[e->ncaps++];
		memset(sc, 0, sizeof(*sc));
		sc->site = site;
		snprintf(sc->name, sizeof(sc->name), "%s", c->site);
		v2g_info("DISP-SITE-CAPACITY", "site=%s: capacity from its DLM applies", sc->name);
	} else if (sc->stale) {
		v2g_info("DISP-SITE-CAPACITY", "site=%s: fresh capacity from its DLM again",
		         sc->name);
	}
	sc->available_kw = c->available_kw;
	sc->limit_kw = c->limit_kw;
	sc->load_kw = c->load_kw;
	sc->at_ms = c->ts_ms > 0 && c->ts_ms < now_ms ? c->ts_ms : now_ms;
	sc->stale = 0;
	double kw = disp_site_capacity_kw(DISP_EXPORT, sc->available_kw, sc->limit_kw, sc->load_kw);
	pthread_mutex_unlock(&e->mu);
	v2g_counter_inc(e->m_cap_updates, NULL);
	v2g_gauge_set(e->m_cap_kw, c->site, kw);
	return V2G_OK;
}

/* The site limits for a dispatch of signal type `type` at now_ms: the
 * configured ones, tightened by every fresh DLM figure (engine.h), over
 * every site index the fleet has interned (arrays malloc'd for the call);
 * NULL when there is no limit at all, or out of memory (then unlimited,
 * logged). */
static struct disp_sites *site_limits(struct disp_engine *e, struct disp_sites *s, int type,
                                      int64_t now_ms)
{
	if (!e->nlim && !e->ncaps)
		return NULL;
	size_t n = disp_fleet_names(e->fleet);
	double *lim = malloc(n * sizeof(*lim));
	int32_t *parent = malloc(n * sizeof(*parent));
	if (!lim || !parent) {
		v2g_error("DISP-NOMEM", "site limits not applied: out of memory");
		free(lim);
		free(parent);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		lim[i] = -1;
		parent[i] = -1;
	}
	for (size_t i = 0; i < e->nlim; i++) {
		lim[e->lim_site[i]] = e->lim_kw[i];
		parent[e->lim_site[i]] = e->lim_parent[i] ? (int32_t)e->lim_parent[i] : -1;
	}
	enum disp_direction dir = disp_signal_direction(type);
	size_t applied = 0;
	for (size_t i = 0; i < e->ncaps; i++) {
		struct site_cap *c = &e->caps[i];
		if (c->site >= n || !cap_fresh(e, c, now_ms))
			continue;
		double kw = disp_site_capacity_kw(dir, c->available_kw, c->limit_kw, c->load_kw);
		if (kw < 0)
			continue;
		if (lim[c->site] < 0 || kw < lim[c->site])
			lim[c->site] = kw;
		applied++;
		v2g_debug("DISP-SITE-CAPACITY", "site=%s limit %.3f kW (DLM %s headroom)", c->name,
		          lim[c->site], dir == DISP_EXPORT ? "export" : "import");
	}
	if (!e->nlim && !applied) {
		free(lim);
		free(parent);
		return NULL;
	}
	s->n = n;
	s->limit_kw = lim;
	s->parent = parent;
	return s;
}

/* Splits power over candidates c[0..n) with the policy of the dispatch's
 * signal type (and its segments), recording the allocations in round
 * d->round. Returns the power allocated. */
static double allocate(struct disp_engine *e, struct dispatch *d, struct disp_cand *c, size_t n,
                       double power, int64_t now_ms)
{
	struct disp_outcome o;
	struct disp_params p = e->cfg.policy.params[d->type];
	double allocated = 0, t0;
	size_t used = 0;
	int rc;

	memset(&o, 0, sizeof(o));
	p.weights = e->weights[d->type];
	if (p.max_rounds < 1)
		p.max_rounds = 1;
	if (e->pred)
		disp_predictor_fill(e->pred, c, n, d->started_ms, d->duration_min);
	struct disp_sites sites, *sp = site_limits(e, &sites, d->type, now_ms);
	t0 = v2g_mono_s();
	disp_capacity(c, n, d->duration_min, e->cfg.band[d->type].low);
	rc = e->nseg ? disp_dispatch_segmented(c, n, power, e->seg, e->nseg, &p, sp, &o)
	             : disp_dispatch(c, n, power, &p, sp, &o);
	if (sp) {
		free((void *)sp->limit_kw);
		free((void *)sp->parent);
	}
	if (rc) {
		v2g_error("DISP-SOLVE", "dispatch=%s: allocation failed: %s", d->id,
		          v2g_strerror(rc));
		disp_outcome_free(&o);
		return 0;
	}
	const char *name = e->nseg ? "segmented" : disp_strategy_name(o.decided_by);
	v2g_histogram_observe(e->m_solve, name, v2g_mono_s() - t0);
	if (p.strategy == DISP_LP && o.decided_by != DISP_LP) {
		v2g_counter_inc(e->m_lp_fallback, v2g_signal_type_name(d->type));
		name = "lp->smart";
	}
	if (!d->dispatcher[0])
		snprintf(d->dispatcher, sizeof(d->dispatcher), "%s", name);
	for (size_t i = 0; i < o.n; i++) {
		if (commit_alloc(e, d, c[o.allocs[i].cand].id, o.allocs[i].kw) == V2G_OK) {
			allocated += o.allocs[i].kw;
			used++;
		}
	}
	if (used)
		v2g_counter_add(e->m_dispatched, v2g_signal_type_name(d->type), (double)used);
	disp_outcome_free(&o);
	return allocated;
}

/* The fallback of the policy: moves up to residual onto vehicles that acked
 * in earlier rounds (a replacing command with the higher power, in round
 * d->round). Returns the power placed. */
static double fallback_acked(struct disp_engine *e, struct dispatch *d, double residual,
                             int64_t now_ms)
{
	enum disp_fallback f = e->cfg.policy.fallback;
	struct disp_held *h;
	size_t *idx, n = 0;
	double placed = 0, *extra;

	if (f == DISP_FB_NOOP || residual <= KW_EPS)
		return 0;
	h = calloc(d->n, sizeof(*h));
	idx = calloc(d->n, sizeof(*idx));
	extra = calloc(d->n, sizeof(*extra));
	if (!h || !idx || !extra)
		goto out;
	for (size_t i = 0; i < d->n; i++) {
		const struct alloc *a = &d->allocs[i];
		struct disp_vehicle v;
		if (a->state != A_ACKED || a->reallocated ||
		    disp_fleet_get(e->fleet, a->vehicle_id, &v) != V2G_OK)
			continue;
		struct disp_cand *c = &h[n].c;
		c->id = a->vehicle_id;
		c->soc = v.soc;
		c->max_kw = v.max_power_kw;
		c->tariff = v.tariff;
		c->battery_kwh = v.battery_kwh;
		c->priority = v.priority;
		c->site = v.site;
		c->segment = v.segment;
		c->avail_prob = 1;
		if (e->pred)
			disp_predictor_fill(e->pred, c, 1, now_ms, d->duration_min);
		disp_capacity(c, 1, d->duration_min, e->cfg.band[d->type].low);
		h[n].kw = a->power_kw;
		idx[n++] = i;
	}
	placed = n ? disp_fallback_apply(f, h, n, residual, extra) : 0;
	for (size_t k = 0; k < n; k++) {
		if (extra[k] <= KW_EPS)
			continue;
		/* the replacing command carries the vehicle's whole new power */
		struct alloc *old = &d->allocs[idx[k]];
		const char *id = old->vehicle_id;
		double total = old->power_kw + extra[k];
		old->reallocated = 1;
		if (commit_alloc(e, d, id, total) != V2G_OK)
			placed -= extra[k];
	}
	v2g_counter_add(e->m_fallback_kw, disp_fallback_name(f), placed > 0 ? placed : 0);
out:
	free(h);
	free(idx);
	free(extra);
	return placed > 0 ? placed : 0;
}

static int in_dispatch(void *arg, const char *id)
{
	uint32_t idx;
	return disp_strmap_get(&((struct dispatch *)arg)->by_vehicle, id, &idx);
}

static void remove_active(struct disp_engine *e, size_t i)
{
	e->active[i] = e->active[--e->nactive];
	v2g_gauge_set(e->m_active, NULL, (double)e->nactive);
}

/* The one-line summary per dispatch (the documents' MonitorExecution). */
static void monitor(struct disp_engine *e, struct dispatch *d, int64_t now_ms)
{
	double allocated, acked;
	size_t nacked = 0, nrej = 0, nsilent = 0;
	totals(d, &allocated, &acked);
	for (size_t i = 0; i < d->n; i++) {
		nacked += d->allocs[i].state == A_ACKED;
		nrej += d->allocs[i].state == A_REJECTED;
		nsilent += d->allocs[i].state == A_SILENT;
	}
	V2g__V1__DispatchStatus st = final_status(d, acked);
	static const char *const names[] = { "pending", "complete", "partial", "failed" };
	const char *type = v2g_signal_type_name(d->type);
	v2g_info("DISP-DONE",
	         "dispatch=%s signal=%s type=%s status=%s target_kw=%.3f acked_kw=%.3f "
	         "vehicles=%zu acked=%zu rejected=%zu silent=%zu rounds=%u dispatcher=%s "
	         "duration_ms=%lld",
	         d->id, d->signal_id, type, names[st], d->power_kw, acked, d->commanded, nacked,
	         nrej, nsilent, d->round + 1, d->dispatcher, (long long)(now_ms - d->started_ms));
	v2g_counter_inc(e->m_dispatches, names[st]);
	v2g_gauge_set(e->m_ack_rate, type,
	              d->commanded ? (double)nacked / (double)d->commanded : 0);
	v2g_gauge_set(e->m_shortfall, type, acked < d->power_kw ? d->power_kw - acked : 0);
	if (e->tuner && d->commanded) {
		double before = e->weights[d->type].availability;
		e->tuner->observe(e->tuner, d->type, (double)nacked / (double)d->commanded,
		                  &e->weights[d->type]);
		double after = e->weights[d->type].availability;
		if (after != before) {
			v2g_info("DISP-TUNED",
			         "type=%s availability_weight %.3f -> %.3f (ack rate %.2f)", type,
			         before, after, (double)nacked / (double)d->commanded);
			v2g_gauge_set(e->m_weight, type, after);
		}
	}
}

/* Ends the current round of d: releases and reallocates, or finishes.
 * Returns 1 when the dispatch is over (the caller removes and frees it). */
static int end_round(struct disp_engine *e, struct dispatch *d, int64_t now_ms, int64_t mono_ms,
                     int may_reallocate)
{
	const char **released = NULL;
	size_t nreleased = 0;
	double residual = 0;

	for (size_t i = 0; i < d->n; i++) {
		struct alloc *a = &d->allocs[i];
		if (a->state == A_PENDING) {
			a->state = A_SILENT;
			snprintf(a->reason, sizeof(a->reason), "timeout");
		}
		if ((a->state == A_REJECTED || a->state == A_SILENT) && !a->reallocated)
			residual += a->power_kw;
	}
	d->pending = 0;
	if (residual > KW_EPS) {
		released = malloc(d->n * sizeof(*released));
		for (size_t i = 0; released && i < d->n; i++) {
			struct alloc *a = &d->allocs[i];
			if ((a->state == A_REJECTED || a->state == A_SILENT) && !a->reallocated) {
				a->reallocated = 1;
				released[nreleased++] = a->vehicle_id;
			}
		}
		v2g_counter_add(e->m_realloc, v2g_signal_type_name(d->type), (double)nreleased);
	}
	/* Reallocation, in a new round: the policy's fallback over the vehicles
	 * that acked, then fresh vehicles (v1 rules: SoC >= realloc_min_soc, not
	 * yet in this dispatch) for what is left. */
	double added = 0;
	if (residual > KW_EPS && may_reallocate && (int)d->round < e->cfg.max_rounds) {
		d->round++;
		added = fallback_acked(e, d, residual, now_ms);
		if (residual - added > KW_EPS) {
			struct disp_cand *c = NULL;
			struct disp_band band = e->cfg.band[d->type];
			if (band.low < e->cfg.realloc_min_soc)
				band.low = e->cfg.realloc_min_soc;
			long n = disp_fleet_eligible(e->fleet, band, now_ms,
			                             e->cfg.max_state_age_ms, &c);
			if (n > 0) {
				size_t k = disp_filter(c, (size_t)n, e->cfg.realloc_min_soc,
				                       in_dispatch, d);
				added += allocate(e, d, c, k, residual - added, now_ms);
			}
			free(c);
		}
		if (added <= KW_EPS)
			d->round--;
		v2g_info("DISP-REALLOC",
		         "dispatch=%s round=%u residual_kw=%.3f reallocated_kw=%.3f released=%zu",
		         d->id, d->round, residual, added, nreleased);
	}
	emit_commands(e, d, released, nreleased, now_ms);
	free(released);
	if (added > KW_EPS) {
		d->round_sent_ms = now_ms;
		d->deadline_mono = mono_ms + e->cfg.ack_timeout_ms;
		emit_decision(e, d, 0, now_ms);
		return 0;
	}
	emit_decision(e, d, 1, now_ms);
	monitor(e, d, now_ms);
	return 1;
}

static int add_active(struct disp_engine *e, struct dispatch *d)
{
	if (e->nactive == e->cap) {
		size_t ncap = e->cap ? e->cap * 2 : 16;
		struct dispatch **na = realloc(e->active, ncap * sizeof(*na));
		if (!na)
			return V2G_ERR_NOMEM;
		e->active = na;
		e->cap = ncap;
	}
	e->active[e->nactive++] = d;
	v2g_gauge_set(e->m_active, NULL, (double)e->nactive);
	return V2G_OK;
}

int disp_engine_submit(struct disp_engine *e, const V2g__V1__Signal *sig, int64_t now_ms,
                       int64_t mono_ms, char dispatch_id[37])
{
	struct disp_cand *c = NULL;
	struct dispatch *d;

	if (sig->type < 0 || sig->type > 2 || !(sig->power_kw > 0))
		return V2G_ERR_INVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return V2G_ERR_NOMEM;
	v2g_uuid(d->id);
	snprintf(d->signal_id, sizeof(d->signal_id), "%s", sig->signal_id ? sig->signal_id : "");
	snprintf(d->source, sizeof(d->source), "%s", sig->source ? sig->source : "");
	d->type = sig->type;
	d->power_kw = sig->power_kw;
	d->duration_min = sig->duration_min;
	d->signal_ts_ms = sig->timestamp_ms;
	d->received_ms = sig->received_ms ? sig->received_ms : now_ms;
	d->market_price = sig->market_price;
	d->has_market_price = sig->has_market_price;
	d->started_ms = now_ms;

	long n = disp_fleet_eligible(e->fleet, e->cfg.band[d->type], now_ms,
	                             e->cfg.max_state_age_ms, &c);
	if (n < 0) {
		dispatch_free(d);
		return V2G_ERR_NOMEM;
	}
	pthread_mutex_lock(&e->mu);
	double allocated = allocate(e, d, c, (size_t)n, d->power_kw, now_ms);
	free(c);
	memcpy(dispatch_id, d->id, 37);
	v2g_info("DISP-START",
	         "dispatch=%s signal=%s type=%s power_kw=%.3f eligible=%ld chosen=%zu "
	         "allocated_kw=%.3f",
	         d->id, d->signal_id, v2g_signal_type_name(d->type), d->power_kw, n, d->n,
	         allocated);
	if (d->n == 0) {
		v2g_warn("DISP-NO-VEHICLES",
		         "dispatch=%s type=%s power_kw=%.3f: no eligible vehicle", d->id,
		         v2g_signal_type_name(d->type), d->power_kw);
		emit_decision(e, d, 1, now_ms);
		monitor(e, d, now_ms);
		pthread_mutex_unlock(&e->mu);
		dispatch_free(d);
		return V2G_OK;
	}
	if (add_active(e, d)) {
		pthread_mutex_unlock(&e->mu);
		dispatch_free(d);
		return V2G_ERR_NOMEM;
	}
	d->round_sent_ms = now_ms;
	d->deadline_mono = mono_ms + e->cfg.ack_timeout_ms;
	emit_commands(e, d, NULL, 0, now_ms);
	emit_decision(e, d, 0, now_ms);
	pthread_mutex_unlock(&e->mu);
	return V2G_OK;
}

static struct dispatch *find(struct disp_engine *e, const char *id, size_t *pos)
{
	for (size_t i = 0; i < e->nactive; i++) {
		if (!strcmp(e->active[i]->id, id)) {
			*pos = i;
			return e->active[i];
		}
	}
	return NULL;
}

void disp_engine_acks(struct disp_engine *e, const V2g__V1__AckBatch *b, int64_t now_ms,
                      int64_t mono_ms)
{
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < b->n_acks; i++) {
		const V2g__V1__Ack *ack = b->acks[i];
		size_t pos;
		uint32_t idx;
		struct dispatch *d = ack->dispatch_id ? find(e, ack->dispatch_id, &pos) : NULL;
		if (!d) {
			v2g_counter_inc(e->m_ignored, "unknown_dispatch");
			v2g_debug("DISP-ACK-UNKNOWN",
			          "ack from %s for unknown or finished dispatch %s",
			          ack->vehicle_id, ack->dispatch_id);
			continue;
		}
		if (!ack->vehicle_id || !disp_strmap_get(&d->by_vehicle, ack->vehicle_id, &idx)) {
			v2g_counter_inc(e->m_ignored, "unknown_vehicle");
			continue;
		}
		struct alloc *a = &d->allocs[idx];
		if (a->state != A_PENDING) {
			v2g_counter_inc(e->m_ignored, a->state == A_SILENT ? "late" : "duplicate");
			continue;
		}
		int64_t at = ack->received_ms ? ack->received_ms : now_ms;
		a->acked_ms = at;
		if (ack->accepted) {
			a->state = A_ACKED;
			v2g_histogram_observe(e->m_latency, v2g_signal_type_name(d->type),
			                      (double)(at - d->round_sent_ms) / 1000.0);
		} else {
			a->state = A_REJECTED;
			snprintf(a->reason, sizeof(a->reason), "%s",
			         ack->reason && *ack->reason ? ack->reason : "rejected");
		}
		if (d->pending)
			d->pending--;
		if (d->pending == 0 && end_round(e, d, now_ms, mono_ms, 1)) {
			remove_active(e, pos);
			dispatch_free(d);
		}
	}
	pthread_mutex_unlock(&e->mu);
}

void disp_engine_published(struct disp_engine *e, const V2g__V1__PublishReport *r)
{
	size_t pos;
	pthread_mutex_lock(&e->mu);
	struct dispatch *d = r->dispatch_id ? find(e, r->dispatch_id, &pos) : NULL;
	if (d) {
		d->last_published_ms = r->last_published_ms;
		double s = (double)(r->last_published_ms - d->received_ms) / 1000.0;
		if (s >= 0)
			v2g_histogram_observe(e->m_publish_latency, v2g_signal_type_name(d->type),
			                      s);
		v2g_info("DISP-PUBLISHED",
		         "dispatch=%s published=%u failed=%u signal_to_last_command_ms=%lld", d->id,
		         r->published, r->failed,
		         (long long)(r->last_published_ms - d->received_ms));
	}
	pthread_mutex_unlock(&e->mu);
}

void disp_engine_tick(struct disp_engine *e, int64_t now_ms, int64_t mono_ms)
{
	pthread_mutex_lock(&e->mu);
	if (now_ms >= e->next_stale_check_ms) {
		for (size_t i = 0; i < e->ncaps; i++)
			cap_fresh(e, &e->caps[i], now_ms);
		e->next_stale_check_ms = now_ms + 1000;
	}
	for (size_t i = 0; i < e->nactive;) {
		struct dispatch *d = e->active[i];
		if (mono_ms >= d->deadline_mono && end_round(e, d, now_ms, mono_ms, 1)) {
			remove_active(e, i);
			dispatch_free(d);
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&e->mu);
}

void disp_engine_finish_all(struct disp_engine *e, int64_t now_ms)
{
	pthread_mutex_lock(&e->mu);
	while (e->nactive) {
		struct dispatch *d = e->active[0];
		end_round(e, d, now_ms, 0, 0);
		remove_active(e, 0);
		dispatch_free(d);
	}
	pthread_mutex_unlock(&e->mu);
}

struct disp_weights disp_engine_weights(struct disp_engine *e, int signal_type)
{
	pthread_mutex_lock(&e->mu);
	struct disp_weights w = e->weights[signal_type >= 0 && signal_type < 3 ? signal_type : 0];
	pthread_mutex_unlock(&e->mu);
	return w;
}

size_t disp_engine_active(struct disp_engine *e)
{
	pthread_mutex_lock(&e->mu);
	size_t n = e->nactive;
	pthread_mutex_unlock(&e->mu);
	return n;
}
