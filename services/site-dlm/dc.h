/* DC fast-charger control (DLM guide 2.3): power and current limits from
 * the capability, a setpoint ramped toward its target at a kW/s rate,
 * thermal derating from the cable temperature, the vehicle's taper curve,
 * and bidirectional export.
 *
 * struct dlm_dc_charger is plain storage the caller owns (one per charger,
 * e.g. in the control loop's station table); the functions below are its
 * only writers. No clock is read: dlm_dc_step() takes now_ms. Not
 * thread-safe.
 *
 * Sign: kW > 0 is import (charging the vehicle), < 0 export (V2G).
 *
 * The effective limits, recomputed on every call:
 *   import = min(power_max,
 *                power_max x thermal factor(cable temperature),
 *                power_max x taper factor(SoC),
 *                current limit x measured voltage)
 *   export = 0 unless enabled; else min(export limit,
 *                power_max x thermal factor, current limit x voltage)
 * (the current term only once a voltage has been measured).
 *
 * Thermal curve (default): factor 1 up to 60 degC, linear down to 0 at
 * 90 degC: 65 degC -> 1 - 5/30 = 0.833 (150 kW -> 125 kW), 75 -> 0.5.
 * Taper: factor = 1 - rate x (soc - start) / (100 - start) over
 * [start, 100]: start 80 %, rate 0.7: 90 % -> 0.65, 100 % -> 0.30. */
#ifndef DLM_DC_H
#define DLM_DC_H

#include <jansson.h>
#include <stdint.h>

#include "capability.h"

/* 10 kW/s: 0 -> 150 kW in 15 s, inside the ~20-30 s a CCS session takes to
 * ramp on its own, so the charger is never asked to jump. */
#define DLM_DC_DEFAULT_RAMP_KW_S  10.0
#define DLM_DC_DERATE_START_C     60.0
#define DLM_DC_DERATE_ZERO_C      90.0
#define DLM_DC_DEFAULT_TAPER_SOC  80.0
#define DLM_DC_DEFAULT_TAPER_RATE 0.7

struct dlm_dc_thermal {
	double start_c; /* full power at or below */
	double zero_c;  /* no power at or above; > start_c */
};

struct dlm_dc_taper {
	int enabled;
	double start_soc; /* %, [0, 100) */
	double rate;      /* fraction removed by 100 %, [0, 1] */
};

struct dlm_dc_meas {
	double power_kw, current_a, voltage_v, temp_c, soc;
	int64_t at_ms;
	int valid; /* 0 until the first update */
};

struct dlm_dc_charger {
	char id[DLM_CAP_ID_LEN];
	/* From the capability. */
	double power_min_kw, power_max_kw;
	double current_min_a, current_max_a;
	int bidi_capable;
	/* Configuration. */
	double ramp_kw_per_s;
	int ramp_down; /* 0 (default): reductions land at once */
	struct dlm_dc_thermal thermal;
	struct dlm_dc_taper taper;
	/* Commands. */
	double target_kw;       /* asked, after clamping to the capability */
	double current_limit_a; /* asked; current_max_a until set */
	int export_enabled;
	double export_limit_kw;
	/* State. */
	double setpoint_kw;   /* the ramped setpoint sent to the charger */
	int64_t last_step_ms; /* -1 before the first step */
	struct dlm_dc_meas meas;
	int soc_valid; /* meas.soc known (from an update or update_soc) */
};

/* Pure curves. */
double dlm_dc_thermal_factor(const struct dlm_dc_thermal *t, double temp_c);
double dlm_dc_taper_factor(const struct dlm_dc_taper *t, double soc);

/* Fills ch from a DC capability (id copied); defaults: ramp 10 kW/s,
 * thermal 60/90 degC, taper disabled with start 80 % and rate 0.7, target
 * and setpoint 0, export off. V2G_ERR_INVAL for an AC or NULL capability or
 * a bad id. */
int dlm_dc_init(struct dlm_dc_charger *ch, const char *id, const struct dlm_cap *cap);

/* The target in kW (the guide's setPowerLimit; always ramped to). Clamped
 * to power_max_kw; a value under power_min_kw gives 0 (stop); a negative
 * value needs export enabled and is clamped to -export_limit_kw (with the
 * same minimum rule). V2G_ERR_INVAL for NaN, or export while not enabled
 * (target unchanged). */
int dlm_dc_set_power_limit(struct dlm_dc_charger *ch, double kw);

/* The current limit in A (setCurrentLimit): clamped to current_max_a;
 * 0 < a < current_min_a gives 0 (stop). V2G_ERR_INVAL for a negative or NaN
 * value. */
int dlm_dc_set_current_limit(struct dlm_dc_charger *ch, double amps);

/* kW/s > 0, else V2G_ERR_INVAL. */
int dlm_dc_set_ramp_rate(struct dlm_dc_charger *ch, double kw_per_s);
/* zero_c > start_c, else V2G_ERR_INVAL. */
int dlm_dc_set_thermal(struct dlm_dc_charger *ch, const struct dlm_dc_thermal *t);
/* start in [0, 100), rate in [0, 1], else V2G_ERR_INVAL. */
int dlm_dc_set_taper(struct dlm_dc_charger *ch, const struct dlm_dc_taper *t);

/* A meter reading (power, current, voltage, cable temperature, SoC) taken
 * at now_ms. V2G_ERR_INVAL (nothing stored) when a field is NaN or SoC is
 * outside [0, 100]. */
int dlm_dc_update(struct dlm_dc_charger *ch, const struct dlm_dc_meas *m, int64_t now_ms);
/* Only the SoC (updateVehicleSoC). */
int dlm_dc_update_soc(struct dlm_dc_charger *ch, double soc);

/* Export up to export_kw (clamped to power_max_kw). V2G_ERR_INVAL when the
 * capability is not bidirectional or export_kw is not > 0. */
int dlm_dc_enable_bidirectional(struct dlm_dc_charger *ch, double export_kw);
/* Export off; a negative target becomes 0 (the setpoint follows at once on
 * the next step). */
void dlm_dc_disable_bidirectional(struct dlm_dc_charger *ch);

double dlm_dc_import_limit_kw(const struct dlm_dc_charger *ch); /* >= 0 */
double dlm_dc_export_limit_kw(const struct dlm_dc_charger *ch); /* >= 0, magnitude */
/* The target clamped to [-export limit, import limit]. */
double dlm_dc_effective_target(const struct dlm_dc_charger *ch);

/* One control step at now_ms: moves setpoint_kw toward the effective
 * target by at most ramp_kw_per_s x (now_ms - last step) when its magnitude
 * grows. A charger does not run under power_min_kw, so a rise toward a
 * target at or over it (a start from 0, or from a setpoint under the
 * minimum) never stops in between: the first non-zero setpoint is the
 * minimum (or more, when the ramp has had the time), and the ramp goes on
 * from there. When it shrinks (lower target, derating, taper) it lands at
 * once, unless ramp_down is set; a setpoint outside the effective limits is
 * always brought inside at once. Crossing from import to export goes to 0
 * at once and then ramps (starting at the minimum, as above). The first
 * call only records the time. Returns the new setpoint. */
double dlm_dc_step(struct dlm_dc_charger *ch, int64_t now_ms);

/* {"id", "target_kw", "setpoint_kw", "effective_target_kw",
 *  "import_limit_kw", "export_limit_kw", "current_limit_a", "ramp_kw_per_s",
 *  "thermal_factor", "taper": {...,"factor"}, "bidirectional": {...},
 *  "limits": {...}, "measurements": {...} | null, "ramping": bool}.
 * New reference; NULL on NOMEM. */
json_t *dlm_dc_status_json(const struct dlm_dc_charger *ch);

#endif
