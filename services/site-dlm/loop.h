/* The site DLM control loop (the guide's LoadManager, 4.2), pure logic.
 *
 * Each dlm_loop_cycle():
 *   1. uses the latest measurements given through dlm_loop_station_meter and
 *      dlm_loop_site_meter (nothing is read from outside);
 *   2. beats the fail-safe heartbeat and checks the stations: a silent one
 *      gets its fail-safe setpoint (APPLY, once) and is left out of the
 *      allocation until it is heard again (RESTORE);
 *   3. allocates the capacity: priority classes from 10 down to 1, max-min
 *      fair (water-filling) inside a class, each station capped by its
 *      demand, its operator override (dlm_loop_set_override) and its
 *      capability (DC: also thermal derating and taper),
 *      under the site budget, every transformer's and every feeder's
 *      budget at once. A budget is the constraint's headroom
 *      (dlm_site_capacity) plus what the controlled stations under it draw
 *      now, minus what fail-safe stations may draw beyond their last meter
 *      reading. The site budget keeps (1 - target_utilisation) of the site
 *      limit free so that normal control sits inside the shedding band.
 *      A station whose share is under its minimum (AC: 6 A per phase; DC:
 *      power_min_kw) is stopped and its share goes to the others;
 *   4. evaluates load shedding (measured site load vs the site limit) and
 *      multiplies each allocation by dlm_shed_factor(level, priority);
 *   5. turns kW into setpoints: AC -> balanced phase currents (>= 6 A or 0),
 *      increases ramped by dlm_phase_ramp_step, decreases at once; then the
 *      site phase balance is enforced by cutting single-phase stations on
 *      the heavy phases (see max_imbalance below); DC -> dlm_dc_step (ramp
 *      kW/s up, reductions at once). Every value goes through
 *      dlm_cap_recommended;
 *   6. records the good configuration of controlled stations and returns
 *      one setpoint per station.
 * Reductions therefore land in the cycle that computes them: an overload
 * seen in one cycle is gone from that cycle's setpoints.
 *
 * Phase balance: imbalance = (max - min) / max of the site phase totals of
 * the AC stations plus the DC stations' power spread evenly over three
 * phases at 230 V. Only single-phase stations create imbalance (three-phase
 * stations are auto-balanced), so only they are cut: each phase above
 * L = max(min / (1 - max_imbalance), min + imbalance_floor_a) is brought to
 * L by scaling its single-phase stations down by one factor, none under
 * the 6 A minimum (one that would be is held at 6 A and the others are
 * scaled further). When even 6 A each does not fit under L, stations are
 * stopped one at a time until the rest do: lowest priority first, among
 * equal priorities the greatest id first (strcmp). The order is stable on
 * purpose: the same stations stay stopped cycle after cycle instead of
 * taking turns (each restart is a new session start), and it does not
 * depend on the currents, which the AC ramp moves from cycle to cycle.
 * E.g. 8 single-phase chargers asking 32 A each on one phase of an
 * otherwise empty site, with the 32 A floor: 5 run at 6.4 A, the 3 first
 * in that order stop. The floor lets a lone single-phase charger run on an
 * otherwise empty site. Fail-safe stations are not touched.
 *
 * The loop BORROWS the site, shedding state, fail-safe manager and
 * capability registry (the caller creates them, configures them, and may
 * read them for the REST routes between cycles); they must outlive it.
 * Transformer budgets are read through dlm_site_status_obj (the constraints
 * module has no per-transformer query). Not thread-safe; time is passed
 * in. */
#ifndef DLM_LOOP_H
#define DLM_LOOP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "capability.h"
#include "dc.h"
#include "failsafe.h"
#include "shedding.h"
#include "phase.h"
#include "constraints.h"

struct dlm_loop_cfg {
	double target_utilisation;  /* (0, 1]: share of the site limit normal control uses (0.90) */
	double max_imbalance;       /* [0, 1]; < 0: the service's max_imbalance (default -1) */
	double imbalance_floor_a;   /* >= 0: spread always allowed (32 A) */
	struct dlm_phase_ramp ramp; /* AC increases (dlm_phase_ramp_init) */
	double dc_ramp_kw_per_s;    /* > 0, for new DC stations (DLM_DC_DEFAULT_RAMP_KW_S) */
	int shedding;               /* 1: evaluate load shedding each cycle */
};

struct dlm_loop_station_cfg {
	const char *id;                          /* copied; must be in the capability registry */
	int priority;                            /* 1..10 (clamped) */
	double demand_kw;                        /* < 0: the capability's maximum */
	int rotation;                            /* AC: site phase of L1 (0..2) */
	const struct dlm_failsafe_cfg *failsafe; /* NULL: manager defaults (new) / kept */
};

/* One station's setpoint for this cycle. */
struct dlm_setpoint {
	const char *station; /* owned by the loop: valid until the station is removed */
	enum dlm_cap_type type;
	double power_kw;     /* what the station is set to */
	double current_a[3]; /* AC: per station phase L1..L3; DC: 0 */
	double allocated_kw; /* the allocator's share, before shedding and ramping */
	int failsafe;        /* on its fail-safe setpoint */
	int changed;         /* differs from the previous cycle's setpoint */
};

struct dlm_loop_stats {
	uint64_t cycles;
	int64_t last_cycle_ms;
	size_t stations, controlled, in_failsafe, charging;
	size_t fs_applied, fs_restored; /* in the last cycle */
	double site_limit_kw, site_load_kw, site_available_kw;
	double budget_kw;    /* what the site budget gave the controlled stations */
	double allocated_kw; /* after shedding */
	double setpoint_kw;  /* sum of all setpoints, fail-safe included */
	int shed_level;
	int shed_changed;
	double imbalance;              /* of the setpoints, as defined above */
	size_t phase_cuts;             /* single-phase contributions cut for balance */
	char binding[DLM_ID_MAX + 16]; /* the site's binding constraint */
};

struct dlm_loop;

/* 0.90, service imbalance, 32 A floor, default AC ramp, 10 kW/s, shedding
 * on. */
void dlm_loop_cfg_init(struct dlm_loop_cfg *cfg);

/* A loop over borrowed modules (none may be NULL). cfg NULL = defaults.
 * NULL on a bad cfg or out of memory. */
struct dlm_loop *dlm_loop_new(const struct dlm_loop_cfg *cfg, struct dlm_site *site,
                              struct dlm_shed *shed, struct dlm_failsafe *fs,
                              struct dlm_cap_registry *caps);
void dlm_loop_free(struct dlm_loop *l); /* NULL is fine */

/* Adds (or reconfigures, keeping its state) a station. Its kind, phases and
 * limits come from the capability registry (read again on a reconfigure:
 * a rediscovered station gets its new limits, a DC charger keeping its
 * ramp, its operator override kept too); it is registered with the
 * fail-safe manager (heard at now_ms when new). V2G_ERR_NOTFOUND when the
 * station has no capability, V2G_ERR_INVAL for a bad cfg, V2G_ERR_NOMEM. */
int dlm_loop_add_station(struct dlm_loop *l, const struct dlm_loop_station_cfg *cfg,
                         int64_t now_ms);
/* Forgets the station (also in the fail-safe manager). V2G_ERR_NOTFOUND. */
int dlm_loop_remove_station(struct dlm_loop *l, const char *id);
size_t dlm_loop_station_count(const struct dlm_loop *l);

/* What the vehicle wants (kW >= 0; < 0: the capability's maximum), and the
 * priority (1..10). V2G_ERR_NOTFOUND. */
int dlm_loop_set_demand(struct dlm_loop *l, const char *id, double kw);
int dlm_loop_set_priority(struct dlm_loop *l, const char *id, int priority);

/* An operator's limit on a station (a manual override, the phase-currents
 * and dc-power routes): a cap on what the allocator gives it, on top of
 * its demand and capability; the site, feeder, transformer, shedding and
 * phase-balance limits still apply below it, and a silent station still
 * gets its fail-safe setpoint. kw >= 0 sets the cap (under the station's
 * minimum it stops), kw < 0 releases it. Kept when the station is
 * reconfigured (dlm_loop_add_station). V2G_ERR_NOTFOUND, V2G_ERR_INVAL
 * (NaN). */
int dlm_loop_set_override(struct dlm_loop *l, const char *id, double kw);
/* The same for an AC station in amps per phase, converted with the
 * station's own phase configuration (amps under the IEC 6 A minimum give a
 * stop, amps < 0 release). The amps are kept: when the station is
 * reconfigured with other phases the cap is converted again (16 A stays
 * 16 A per phase); on a station reconfigured as DC the kW stay.
 * V2G_ERR_INVAL for a DC station or NaN. */
int dlm_loop_set_override_current(struct dlm_loop *l, const char *id, double amps);
/* The station's override in kW, or -1 (none, or an unknown station). */
double dlm_loop_override(const struct dlm_loop *l, const char *id);

/* The station's present configuration (id borrowed from the loop, failsafe
 * NULL), e.g. to re-add it after a new capability. V2G_ERR_NOTFOUND. */
int dlm_loop_station_info(const struct dlm_loop *l, const char *id,
                          struct dlm_loop_station_cfg *out);

/* The largest station power a meter may report (kW, either way). */
#define DLM_METER_MAX_KW 10000.0

/* A station meter reading at now_ms: power (kW, import > 0), phase currents
 * (may be NULL), cable temperature and SoC (NaN: unknown, the last known
 * is kept), status (e.g. "charging"; may be NULL). Feeds the site
 * (dlm_site_update_station), the fail-safe manager (heard) and a DC
 * charger's measurements. V2G_ERR_NOTFOUND for an unknown station,
 * V2G_ERR_INVAL for a power that is not finite or beyond
 * +-DLM_METER_MAX_KW: a glitch no charger draws, which would also spoil the
 * site's running sums of station power (their rounding at 1e20 loses every
 * other station's kW, for good). */
int dlm_loop_station_meter(struct dlm_loop *l, const char *id, double power_kw,
                           const double currents[3], double temp_c, double soc, const char *status,
                           int64_t now_ms);
/* The service meter (forwarded to dlm_site_update_service). */
int dlm_loop_site_meter(struct dlm_loop *l, const struct dlm_service_meas *m, int64_t now_ms);

/* One control cycle at now_ms (see the top). Writes min(cap, stations)
 * setpoints to out (in station order) and the station count to *n; out may
 * be NULL when cap is 0. 0, V2G_ERR_NOMEM (no setpoint changed) or
 * V2G_ERR_INVAL. */
int dlm_loop_cycle(struct dlm_loop *l, int64_t now_ms, struct dlm_setpoint *out, size_t cap,
                   size_t *n);

/* The site's available capacity for the bus (what the dispatch engine may
 * still add): the site headroom as of the last cycle's measurements minus
 * what the last cycle's setpoints add to them; never negative. */
double dlm_loop_available_kw(const struct dlm_loop *l);
const struct dlm_loop_stats *dlm_loop_stats(const struct dlm_loop *l);
/* The fail-safe actions (APPLY / RESTORE) of the last cycle, for the audit
 * log: owned by the fail-safe manager, valid until the next cycle or until
 * a station is removed. n = 0 before the first cycle. */
void dlm_loop_failsafe_actions(const struct dlm_loop *l, struct dlm_fs_actions *out);

/* The last setpoint of a station, V2G_ERR_NOTFOUND. */
int dlm_loop_station_setpoint(const struct dlm_loop *l, const char *id, struct dlm_setpoint *out);

/* {"cycles", "last_cycle_ms", "available_kw", "site": {limit_kw, load_kw,
 * available_kw, binding}, "budget_kw", "allocated_kw", "setpoint_kw",
 * "shed_level", "imbalance", "stations": {total, controlled, in_failsafe,
 * charging}, "station_list": [{id, type, priority, demand_kw, power_kw,
 * allocated_kw, current_a:[3], failsafe, feeder, override_kw (null: none)}]}.
 * Caller owns it. */
json_t *dlm_loop_status_obj(const struct dlm_loop *l);
char *dlm_loop_status_json(const struct dlm_loop *l); /* caller frees */

#endif
