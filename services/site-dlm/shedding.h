/* Load shedding with hysteresis (DLM guide 1.5).
 *
 * Each evaluation compares ratio = load / capacity with two thresholds:
 *   ratio >= upper (0.95)  escalate one level (up to 5)
 *   ratio <= lower (0.85)  de-escalate one level (down to 0 = inactive)
 *   in between            keep the level: no flapping inside the band.
 * One level at a time in both directions (DLM_SHED_STEP, the default).
 * With DLM_SHED_JUMP, escalation goes straight to the lowest level whose
 * estimated load (load minus what that level takes from the stations' power)
 * falls below upper, or to 5; de-escalation stays one level at a time, so
 * stations come back gradually. A level is held at least min_hold_ms before
 * it may fall (0 = no hold).
 *
 * Escalations are paced, in both modes: after one, the next waits
 * escalate_hold_ms (default 2000 ms), however high the load; the first one
 * from level 0 is immediate, and falling is not affected. The load is
 * measured, and chargers take time to follow a new setpoint (a real one
 * 1-3 s; IEC 61851 gives a charger several seconds to follow a new current
 * limit): escalating every evaluation would judge each level on a load
 * that still shows the level before it, so a 200 ms control cycle would
 * climb to the emergency stop in about a second for a load that one level
 * would have brought back under the threshold. (Overloads are not left
 * standing meanwhile: the control loop cuts its allocations to the limit in
 * the cycle that sees them; shedding is the band's second line.) A clock
 * going backwards does not hold an escalation.
 *
 * The levels (guide 1.5), applied cumulatively: a station gets the lowest
 * power any rule of the levels 1..L gives it, so escalating never raises
 * anyone's power.
 *   1  priority <= 3: reduce by 20 %           (power x 0.8)
 *   2  priority <= 5: reduce by 40 %           (x 0.6)
 *   3  all stations:  reduce by 50 %           (x 0.5)
 *   4  priority <= 5: stop                     (0)
 *   5  emergency: stop all but critical (priority 9-10); these stay at 50 %
 * Priorities run 1 (least important) .. 10; out-of-range values are clamped.
 *
 * When the level changes, an action is produced for every station whose
 * target changes: reduce (to new_power_kw), stop (0), or restore (back to
 * normal control at its full power). Percentages apply to the power normal
 * control gives the station (the caller's power_kw), never compounded.
 *
 * Pure logic: time is passed in; not thread-safe; the state is a struct the
 * caller owns. Capacity <= 0 with load > 0 counts as over the upper
 * threshold; NaN, infinite or negative inputs are refused. */
#ifndef DLM_SHEDDING_H
#define DLM_SHEDDING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DLM_SHED_MAX_LEVEL 5

enum dlm_shed_mode {
	DLM_SHED_STEP = 0, /* one level per escalation */
	DLM_SHED_JUMP = 1, /* escalate straight to the level that suffices */
};

struct dlm_shed_cfg {
	int enabled;            /* 0: evaluate only restores (if active) and stays at 0 */
	double upper_threshold; /* start shedding at load/capacity >= upper */
	double lower_threshold; /* stop when <= lower; 0 < lower < upper <= 1 */
	enum dlm_shed_mode mode;
	int64_t min_hold_ms;      /* >= 0: a level lasts this long before it may fall */
	int64_t escalate_hold_ms; /* >= 0: time between two escalations (2000) */
};

/* A station as normal control sees it. id is borrowed for the evaluation
 * (actions point to it). */
struct dlm_shed_station {
	const char *id;
	int priority;    /* 1..10 */
	double power_kw; /* the power normal control gives it, >= 0 */
};

enum dlm_shed_action_kind {
	DLM_SHED_REDUCE,
	DLM_SHED_STOP,
	DLM_SHED_RESTORE,
};

struct dlm_shed_action {
	const char *station; /* borrowed from the stations passed in */
	enum dlm_shed_action_kind action;
	double new_power_kw; /* reduce: the cut power; stop: 0; restore: full power */
	int priority;
};

/* The actions are owned by the state, valid until the next
 * dlm_shed_evaluate or dlm_shed_free. */
struct dlm_shed_result {
	int changed; /* the level changed in this evaluation */
	int old_level, new_level;
	double ratio; /* load / capacity as evaluated */
	size_t n_actions;
	const struct dlm_shed_action *actions;
};

struct dlm_shed_status {
	int active; /* level > 0 */
	int level;
	int64_t since_ms; /* when the current level began (0 before any change) */
	double upper_threshold, lower_threshold;
	double last_ratio;
	uint64_t changes; /* level changes so far */
};

struct dlm_shed;

/* Enabled, 0.95 / 0.85, STEP, no hold before a fall, 2000 ms between
 * escalations. */
struct dlm_shed_cfg dlm_shed_defaults(void);
/* NULL cfg = defaults; NULL when cfg is invalid or on allocation failure. */
struct dlm_shed *dlm_shed_new(const struct dlm_shed_cfg *cfg);
void dlm_shed_free(struct dlm_shed *sh);

/* Changes the thresholds (the guide's updateHysteresis). V2G_ERR_INVAL and
 * no change unless 0 < lower < upper <= 1. The level is kept. */
int dlm_shed_set_hysteresis(struct dlm_shed *sh, double upper, double lower);
/* Replaces the whole configuration; V2G_ERR_INVAL as above or for a bad
 * mode or hold. Disabling takes effect at the next evaluation; a new
 * escalate_hold_ms counts from the last escalation. */
int dlm_shed_configure(struct dlm_shed *sh, const struct dlm_shed_cfg *cfg);
const struct dlm_shed_cfg *dlm_shed_config(const struct dlm_shed *sh);

/* One evaluation at now_ms (see the top of this header). Returns 0 with
 * *res filled, V2G_ERR_INVAL for bad inputs (state unchanged), or
 * V2G_ERR_NOMEM (state unchanged). stations may be NULL when n == 0. */
int dlm_shed_evaluate(struct dlm_shed *sh, double load_kw, double capacity_kw,
                      const struct dlm_shed_station *stations, size_t n, int64_t now_ms,
                      struct dlm_shed_result *res);

/* The factor (0..1) level L applies to a station of this priority. */
double dlm_shed_factor(int level, int priority);
/* "normal", "reduce_low_priority", ... for levels 0..5. */
const char *dlm_shed_level_name(int level);
const char *dlm_shed_action_name(enum dlm_shed_action_kind a); /* reduce|stop|restore */

void dlm_shed_get_status(const struct dlm_shed *sh, struct dlm_shed_status *out);
/* For GET /api/load-shedding/status: {active, level, level_name, since_ms,
 * thresholds:{upper, lower}, mode, min_hold_ms, escalate_hold_ms, enabled,
 * last_ratio, changes}. Caller owns the result. */
json_t *dlm_shed_status_obj(const struct dlm_shed *sh);
char *dlm_shed_status_json(const struct dlm_shed *sh); /* caller frees */

#endif
