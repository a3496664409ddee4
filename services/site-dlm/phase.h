/* AC per-phase current control (DLM guide 2.2): power <-> phase currents,
 * auto-balance, the IEC 61851 6 A floor, ramping, and the phase balance of
 * the whole site. Pure functions over plain structs; the control loop owns
 * the state and calls them each cycle.
 *
 * Conventions:
 * - Currents are amps per phase, index 0/1/2 = phase A/B/C (L1/L2/L3). A
 *   single-phase station uses index 0 only; its B and C are always 0.
 * - voltage_v is phase to neutral. For a 400 V three-phase network use
 *   230 V per phase (the IEC 60038 nominal; dlm_cap_phase_voltage gives it).
 * - P = V x I x pf per phase: 11 kW three-phase at 230 V -> 15.94 A per
 *   phase; 7.4 kW single-phase at 230 V -> 32.2 A; 16 A x 3 x 230 V =
 *   11.04 kW.
 * - A charging session never runs under DLM_IEC_MIN_A (6 A): a phase whose
 *   setpoint would be in (0, 6) is set to 0 = stop. */
#ifndef DLM_PHASE_H
#define DLM_PHASE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "capability.h"

#define DLM_PHASE_DEFAULT_VOLTAGE       230.0
#define DLM_PHASE_DEFAULT_MAX_IMBALANCE 0.20 /* guide: setMaxImbalance(0.20) */
#define DLM_PHASE_DEFAULT_STEP_MS       2000 /* guide: 2 s ramp steps */

struct dlm_phase_cfg {
	double voltage_v;    /* phase to neutral, > 0 */
	int phases;          /* 1 or 3 */
	double power_factor; /* (0, 1], default 1.0 */
	double min_a;        /* lowest non-zero setpoint, >= 6 A */
	double max_a;        /* per-phase maximum */
	/* Site phase the station's L1 is wired to (0..2); L2 and L3 follow in
	 * rotation. Installers rotate single-phase stations across A, B, C. */
	int rotation;
};

/* Defaults: 230 V, 3 phases, pf 1.0, 6..32 A, rotation 0. */
void dlm_phase_cfg_init(struct dlm_phase_cfg *cfg);

/* From a capability: phase voltage, phases, current range; pf 1.0.
 * V2G_ERR_INVAL for a DC or NULL capability. */
int dlm_phase_cfg_from_cap(struct dlm_phase_cfg *cfg, const struct dlm_cap *cap);

/* 1 when cfg is usable (see the field comments), else 0. */
int dlm_phase_cfg_valid(const struct dlm_phase_cfg *cfg);

/* The raw conversion, no limits: the per-phase current that draws kw
 * (kw / (phases x V x pf)) on each of the station's phases. Negative kw
 * gives negative currents (export). out[] of unused phases is 0.
 * V2G_ERR_INVAL for an invalid cfg or NaN. */
int dlm_phase_power_to_currents(const struct dlm_phase_cfg *cfg, double kw, double out[3]);

/* Sum over the station's phases of V x I x pf, in kW. */
double dlm_phase_currents_to_power(const struct dlm_phase_cfg *cfg, const double cur[3]);

/* The station limits on one setpoint: > max_a -> max_a; < min_a (and the
 * 6 A floor) -> 0; negative or NaN -> 0. */
double dlm_phase_limit_one(const struct dlm_phase_cfg *cfg, double amps);

enum dlm_balance_mode {
	/* Every phase to the lowest: never raises a phase, so never takes
	 * more than what was granted phase by phase. The default. */
	DLM_BALANCE_MIN,
	/* Every phase to the mean: keeps the station's power, but raises the
	 * light phases. */
	DLM_BALANCE_MEAN,
};

/* Equalises the phases of a three-phase station (in[] -> out[], may
 * alias); a single-phase station is copied unchanged. */
void dlm_phase_balance(const struct dlm_phase_cfg *cfg, enum dlm_balance_mode mode,
                       const double in[3], double out[3]);

/* The setpoint for requested per-phase currents (the guide's
 * setPhaseCurrents): balanced first when auto_balance (with mode), then each
 * phase through dlm_phase_limit_one. Phases the station lacks are 0.
 * V2G_ERR_INVAL for an invalid cfg or a NaN request. */
int dlm_phase_setpoint(const struct dlm_phase_cfg *cfg, const double req[3], int auto_balance,
                       enum dlm_balance_mode mode, double out[3]);

/* Ramping (the guide's rampPhaseCurrents): increases move by at most one
 * step per step interval; a step is step_a amps, or, when step_a <= 0,
 * step_fraction x max_a. Decreases are immediate unless ramp_down is set:
 * a reduction is usually the site protecting a limit, and must land within
 * one control cycle. */
struct dlm_phase_ramp {
	double step_a;
	double step_fraction;
	int64_t interval_ms;
	int ramp_down;
};

/* Defaults: step 4 A, no fraction, 2000 ms, decreases immediate. */
void dlm_phase_ramp_init(struct dlm_phase_ramp *r);

/* The next setpoint on the way from cur[] to target[] (both already
 * limited, e.g. by dlm_phase_setpoint), given the ms elapsed since the last
 * step (the caller keeps that time and resets it when a step is taken,
 * i.e. when the return is 1 or 2). No step before interval_ms; at most one
 * step per call however late. The 6 A floor holds on the way: rising from 0
 * a phase jumps to min(6 A, target) at once (nothing below 6 A is a
 * session); falling below 6 A it goes to 0. Returns 0 when nothing moved
 * (next = cur), 1 when a step was taken, 2 when next equals target on every
 * phase; -1 (V2G_ERR_INVAL semantics) on bad arguments. */
int dlm_phase_ramp_step(const struct dlm_phase_cfg *cfg, const struct dlm_phase_ramp *r,
                        const double cur[3], const double target[3], int64_t elapsed_ms,
                        double next[3]);

/* Station currents (station L1..L3) -> site phases (A..C) by rotation, and
 * back. */
void dlm_phase_to_site(const struct dlm_phase_cfg *cfg, const double st[3], double site[3]);
void dlm_phase_from_site(const struct dlm_phase_cfg *cfg, const double site[3], double st[3]);

/* --- system balance ------------------------------------------------- */

enum dlm_imbalance_def {
	DLM_IMBALANCE_OF_MAX,  /* (max - min) / max, in [0, 1]: the default */
	DLM_IMBALANCE_OF_MEAN, /* (max - min) / mean (NEMA-like, up to 3) */
};

struct dlm_phase_policy {
	int balancing;        /* the guide's setPhaseBalancing */
	double max_imbalance; /* 0.20 */
	enum dlm_imbalance_def def;
	enum dlm_balance_mode station_mode; /* for auto-balance of a station */
};

void dlm_phase_policy_init(struct dlm_phase_policy *p); /* on, 0.20, OF_MAX, MIN */

struct dlm_phase_system {
	double total[3];  /* A per site phase */
	double imbalance; /* by def; 0 when every phase is 0 */
	int heaviest, lightest;
	int balanced; /* imbalance <= max_imbalance */
};

/* Imbalance of three phase totals by def (0 when all are 0). */
double dlm_phase_imbalance(const double total[3], enum dlm_imbalance_def def);

/* Sums site-phase currents (n rows of 3, e.g. from dlm_phase_to_site) and
 * rates the balance. */
void dlm_phase_system_balance(const double (*site)[3], size_t n, double max_imbalance,
                              enum dlm_imbalance_def def, struct dlm_phase_system *out);

/* Brings the system under max_imbalance by reducing the contributions to
 * the heavy phases: L is the highest level such that, with every phase total
 * capped at L, the imbalance (by def) is <= max_imbalance (for OF_MAX,
 * L = min / (1 - max_imbalance)). Each phase over L is cut to L by scaling its
 * stations' currents on it by one factor; a contribution that would fall
 * under 6 A is stopped (0) and the others rescaled (never raised). Phases
 * at or under L, and so the lightest, are not touched. site[] (n rows of
 * site-phase currents) is changed in place; map back with
 * dlm_phase_from_site. Returns the number of contributions changed.
 * Note that a lightest phase at 0 forces every other phase to 0. */
size_t dlm_phase_system_rebalance(double (*site)[3], size_t n, double max_imbalance,
                                  enum dlm_imbalance_def def);

/* {"phases": {"A":..,"B":..,"C":..}, "imbalance": x, "max_imbalance": y,
 * "definition": "of_max"|"of_mean", "balanced": b, "heaviest": "A", ...}.
 * New reference; NULL on NOMEM. */
json_t *dlm_phase_system_json(const struct dlm_phase_system *s, double max_imbalance,
                              enum dlm_imbalance_def def);

#endif
