/* Load shedding with hysteresis: see shedding.h for the rules. */
#include "shedding.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

struct dlm_shed {
	struct dlm_shed_cfg cfg;
	int level;
	int64_t since_ms;
	int64_t escalated_ms; /* the last escalation */
	double last_ratio;
	uint64_t changes;
	struct dlm_shed_action *actions;
	size_t cap_actions;
};

struct dlm_shed_cfg dlm_shed_defaults(void)
{
	return (struct dlm_shed_cfg){ .enabled = 1,
		                      .upper_threshold = 0.95,
		                      .lower_threshold = 0.85,
		                      .mode = DLM_SHED_STEP,
		                      .min_hold_ms = 0,
		                      .escalate_hold_ms = 2000 };
}

static int thresholds_valid(double upper, double lower)
{
	return isfinite(upper) && isfinite(lower) && lower > 0 && lower < upper && upper <= 1;
}

static int cfg_valid(const struct dlm_shed_cfg *c)
{
	return thresholds_valid(c->upper_threshold, c->lower_threshold) &&
	       (c->mode == DLM_SHED_STEP || c->mode == DLM_SHED_JUMP) && c->min_hold_ms >= 0 &&
	       c->escalate_hold_ms >= 0;
}

struct dlm_shed *dlm_shed_new(const struct dlm_shed_cfg *cfg)
{
	struct dlm_shed_cfg d = dlm_shed_defaults();
	if (!cfg)
		cfg = &d;
	if (!cfg_valid(cfg))
		return NULL;
	struct dlm_shed *sh = calloc(1, sizeof(*sh));
	if (!sh)
		return NULL;
	sh->cfg = *cfg;
	return sh;
}

void dlm_shed_free(struct dlm_shed *sh)
{
	if (!sh)
		return;
	free(sh->actions);
	free(sh);
}

int dlm_shed_set_hysteresis(struct dlm_shed *sh, double upper, double lower)
{
	if (!sh || !thresholds_valid(upper, lower))
		return V2G_ERR_INVAL;
	sh->cfg.upper_threshold = upper;
	sh->cfg.lower_threshold = lower;
	return 0;
}

int dlm_shed_configure(struct dlm_shed *sh, const struct dlm_shed_cfg *cfg)
{
	if (!sh || !cfg || !cfg_valid(cfg))
		return V2G_ERR_INVAL;
	sh->cfg = *cfg;
	return 0;
}

const struct dlm_shed_cfg *dlm_shed_config(const struct dlm_shed *sh)
{
	return &sh->cfg;
}

double dlm_shed_factor(int level, int priority)
{
	if (priority < 1)
		priority = 1;
	if (priority > 10)
		priority = 10;
	double f = 1.0;
	if (level >= 1 && priority <= 3)
		f = 0.8;
	if (level >= 2 && priority <= 5)
		f = 0.6;
	if (level >= 3)
		f = f < 0.5 ? f : 0.5;
	if (level >= 4 && priority <= 5)
		f = 0;
	if (level >= 5 && priority <= 8)
		f = 0;
	return f;
}

const char *dlm_shed_level_name(int level)
{
	static const char *const names[] = {
		"normal",           "reduce_priority_le3_20pct", "reduce_priority_le5_40pct",
		"reduce_all_50pct", "stop_priority_le5",         "emergency_stop_noncritical",
	};
	return level >= 0 && level <= DLM_SHED_MAX_LEVEL ? names[level] : "unknown";
}

const char *dlm_shed_action_name(enum dlm_shed_action_kind a)
{
	switch (a) {
	case DLM_SHED_REDUCE: return "reduce";
	case DLM_SHED_STOP: return "stop";
	case DLM_SHED_RESTORE: return "restore";
	}
	return "unknown";
}

static double ratio_of(double load, double capacity)
{
	if (capacity > 0)
		return load / capacity;
	return load > 0 ? INFINITY : 0;
}

/* The load once level `to` replaces level `from` (the stations' power drops
 * by the difference of their factors). */
static double load_at(double load, const struct dlm_shed_station *st, size_t n, int from, int to)
{
	for (size_t i = 0; i < n; i++)
		load -= st[i].power_kw * (dlm_shed_factor(from, st[i].priority) -
		                          dlm_shed_factor(to, st[i].priority));
	return load;
}

static int next_level(const struct dlm_shed *sh, double ratio, double load, double capacity,
                      const struct dlm_shed_station *st, size_t n, int64_t now_ms)
{
	int lvl = sh->level;
	if (!sh->cfg.enabled)
		return 0;
	if (ratio >= sh->cfg.upper_threshold) {
		if (lvl >= DLM_SHED_MAX_LEVEL)
			return lvl;
		/* Paced: the chargers have not followed the last one yet. */
		int64_t since_up = now_ms - sh->escalated_ms;
		if (lvl > 0 && since_up >= 0 && since_up < sh->cfg.escalate_hold_ms)
			return lvl;
		if (sh->cfg.mode == DLM_SHED_STEP)
			return lvl + 1;
		for (int to = lvl + 1; to < DLM_SHED_MAX_LEVEL; to++)
			if (ratio_of(load_at(load, st, n, lvl, to), capacity) <
			    sh->cfg.upper_threshold)
				return to;
		return DLM_SHED_MAX_LEVEL;
	}
	if (ratio <= sh->cfg.lower_threshold && lvl > 0 &&
	    now_ms - sh->since_ms >= sh->cfg.min_hold_ms)
		return lvl - 1;
	return lvl;
}

int dlm_shed_evaluate(struct dlm_shed *sh, double load_kw, double capacity_kw,
                      const struct dlm_shed_station *stations, size_t n, int64_t now_ms,
                      struct dlm_shed_result *res)
{
	if (!sh || !res || (n && !stations) || !isfinite(load_kw) || !isfinite(capacity_kw) ||
	    load_kw < 0)
		return V2G_ERR_INVAL;
	for (size_t i = 0; i < n; i++)
		if (!stations[i].id || !isfinite(stations[i].power_kw) || stations[i].power_kw < 0)
			return V2G_ERR_INVAL;

	double ratio = ratio_of(load_kw, capacity_kw);
	int old = sh->level;
	int lvl = next_level(sh, ratio, load_kw, capacity_kw, stations, n, now_ms);

	size_t n_act = 0;
	if (lvl != old) {
		if (n > sh->cap_actions) {
			struct dlm_shed_action *a = realloc(sh->actions, n * sizeof(*a));
			if (!a)
				return V2G_ERR_NOMEM;
			sh->actions = a;
			sh->cap_actions = n;
		}
		for (size_t i = 0; i < n; i++) {
			const struct dlm_shed_station *st = &stations[i];
			double f_old = dlm_shed_factor(old, st->priority);
			double f_new = dlm_shed_factor(lvl, st->priority);
			if (f_new == f_old)
				continue;
			struct dlm_shed_action *a = &sh->actions[n_act++];
			a->station = st->id;
			a->priority = st->priority;
			a->new_power_kw = st->power_kw * f_new;
			a->action = f_new == 0   ? DLM_SHED_STOP
			            : f_new == 1 ? DLM_SHED_RESTORE
			                         : DLM_SHED_REDUCE;
		}
		if (lvl > old)
			sh->escalated_ms = now_ms;
		sh->level = lvl;
		sh->since_ms = now_ms;
		sh->changes++;
	}
	sh->last_ratio = ratio;
	*res = (struct dlm_shed_result){ .changed = lvl != old,
		                         .old_level = old,
		                         .new_level = lvl,
		                         .ratio = ratio,
		                         .n_actions = n_act,
		                         .actions = sh->actions };
	return 0;
}

void dlm_shed_get_status(const struct dlm_shed *sh, struct dlm_shed_status *out)
{
	*out = (struct dlm_shed_status){ .active = sh->level > 0,
		                         .level = sh->level,
		                         .since_ms = sh->since_ms,
		                         .upper_threshold = sh->cfg.upper_threshold,
		                         .lower_threshold = sh->cfg.lower_threshold,
		                         .last_ratio = sh->last_ratio,
		                         .changes = sh->changes };
}

json_t *dlm_shed_status_obj(const struct dlm_shed *sh)
{
	/* An infinite ratio (no capacity) is not JSON: null. */
	json_t *ratio = isfinite(sh->last_ratio) ? json_real(sh->last_ratio) : json_null();
	return json_pack("{s:b,s:b,s:i,s:s,s:I,s:{s:f,s:f},s:s,s:I,s:I,s:o,s:I}", "enabled",
	                 sh->cfg.enabled, "active", sh->level > 0, "level", sh->level, "level_name",
	                 dlm_shed_level_name(sh->level), "since_ms", (json_int_t)sh->since_ms,
	                 "thresholds", "upper", sh->cfg.upper_threshold, "lower",
	                 sh->cfg.lower_threshold, "mode",
	                 sh->cfg.mode == DLM_SHED_JUMP ? "jump" : "step", "min_hold_ms",
	                 (json_int_t)sh->cfg.min_hold_ms, "escalate_hold_ms",
	                 (json_int_t)sh->cfg.escalate_hold_ms, "last_ratio", ratio, "changes",
	                 (json_int_t)sh->changes);
}

char *dlm_shed_status_json(const struct dlm_shed *sh)
{
	json_t *j = dlm_shed_status_obj(sh);
	if (!j)
		return NULL;
	char *out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}
