/* Site electrical constraints (DLM guide 3.1): the service entrance, its
 * feeders and transformers, their latest measurements, the capacity left
 * under every limit at once, and the violations of those limits.
 *
 * Pure logic: no I/O, no clock (time is passed in), not thread-safe (the
 * control loop owns the site). A site is a struct the caller owns.
 *
 * Electrical conventions
 *  - Three-phase power from current: P = sqrt(3) * V_LL * I * pf; single
 *    phase: P = V * I * pf. The service voltage is line-to-line for 3
 *    phases; feeders run at the service voltage.
 *  - pf for every current <-> power conversion is the measured service power
 *    factor when one is measured (0 < pf <= 1), else 1.0.
 *  - NEC 625: continuous EV load may use at most nec625_factor (0.80) of a
 *    rating. It applies to the service power rating and to feeder breaker
 *    ratings; max_current_a (service and feeder) and cable_ampacity_a are
 *    taken as continuous limits already and are used as given. So the guide's
 *    service (250 kW, 400 A, 480 V, 3 phases) allows 250 * 0.8 = 200 kW by
 *    power and sqrt(3) * 480 * 400 = 332.6 kW (at pf 1) by current.
 *  - Transformers: rated_kva * continuous_factor, derated when hot: factor 1
 *    up to (max_temp_c - derate_band_c), falling linearly to 0.5 at
 *    max_temp_c and staying 0.5 above it (an over-temperature transformer is
 *    also a critical violation). Transformers are taken to carry the whole
 *    site: with several, the sum of their headroom bounds the site.
 *  - Phase imbalance = (max - min) / max of the phase currents (the guide's
 *    250/260/255 A gives 10 / 260 = 3.85 %). Not the NEMA "max deviation from
 *    the mean / mean" (which would give 1.96 %).
 *
 * Violations and their severities (re-evaluated by dlm_site_check):
 *   service power   > max_power_kw critical; > nec625 * max_power_kw warning
 *   service current > max_current_a on a phase: critical
 *   phase imbalance > max_imbalance warning; > 2 * max_imbalance critical
 *   power factor    < min_power_factor: warning
 *   voltage         |V - nominal| / nominal > 5 % warning, > 10 % critical
 *   frequency       |f - nominal| > tolerance (0.5 Hz) warning,
 *                   > 2 * tolerance critical
 *   feeder          current > breaker_rating_a critical,
 *                   > nec625 * breaker_rating_a warning;
 *                   current > cable_ampacity_a critical;
 *                   current > max_current_a / power > max_power_kw critical
 *   transformer     load > rated_kva critical, > rated * continuous warning;
 *                   temperature > max_temp_c critical, in the derating band
 *                   info. */
#ifndef DLM_CONSTRAINTS_H
#define DLM_CONSTRAINTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DLM_ID_MAX  64 /* longest id or name kept, with the NUL; longer is refused */
#define DLM_MSG_MAX 160

struct dlm_site;

struct dlm_service_cfg {
	double max_current_a;          /* per phase, > 0 */
	double max_power_kw;           /* > 0 */
	double voltage_v;              /* nominal, line-to-line for 3 phases, > 0 */
	int phases;                    /* 1 or 3 */
	double max_imbalance;          /* 0..1 */
	double min_power_factor;       /* 0..1 */
	double frequency_hz;           /* nominal, > 0 */
	double frequency_tolerance_hz; /* > 0 */
	double nec625_factor;          /* (0, 1] */
};

struct dlm_feeder_cfg {
	const char *name;            /* display name, copied; NULL = the id */
	double max_current_a;        /* >= 0, 0 = no separate limit */
	double max_power_kw;         /* >= 0, 0 = no separate limit */
	int phases;                  /* 1 or 3 */
	double breaker_rating_a;     /* > 0 */
	double cable_ampacity_a;     /* > 0 */
	const char *const *stations; /* connected station ids, copied */
	size_t n_stations;
};

struct dlm_transformer_cfg {
	const char *name;           /* copied; NULL = the id */
	double rated_kva;           /* > 0 */
	double continuous_factor;   /* (0, 1] */
	double max_temp_c;          /* hottest allowed */
	double derate_band_c;       /* > 0: derating starts this far below max */
	const char *cooling;        /* e.g. "ONAN", copied; NULL = "" */
	const char *const *feeders; /* connected feeder ids, copied */
	size_t n_feeders;
};

/* A measurement value that is NaN or <= 0 is "not measured" and its checks are
 * skipped (a real meter never reports 0 V or 0 Hz while the site runs). */
struct dlm_service_meas {
	double power_kw;     /* real power drawn through the service */
	double current_a[3]; /* per phase A, B, C; single phase uses [0] */
	double voltage_v[3]; /* per phase (line-to-line for 3 phases) */
	double power_factor;
	double frequency_hz;
};

/* The guide's numbers: 400 A, 250 kW, 480 V, 3 phases, 10 % imbalance,
 * pf 0.90, 60 Hz +- 0.5 Hz, NEC 0.80. */
struct dlm_service_cfg dlm_service_defaults(void);
/* 200 A, 120 kW, 3 phases, 225 A breaker, 200 A cable, no stations. */
struct dlm_feeder_cfg dlm_feeder_defaults(void);
/* 300 kVA, 0.80 continuous, 80 C, 10 C derating band, ONAN, no feeders. */
struct dlm_transformer_cfg dlm_transformer_defaults(void);

/* P from current: sqrt(3) * V * I * pf / 1000 for 3 phases, V * I * pf / 1000
 * otherwise. */
double dlm_current_to_kw(int phases, double voltage_v, double current_a, double pf);
/* The inverse; 0 when voltage or pf is not positive. */
double dlm_kw_to_current(int phases, double voltage_v, double power_kw, double pf);
/* Phase imbalance: dlm_phase_imbalance(currents, DLM_IMBALANCE_OF_MAX) of
 * phase.h, (max - min) / max. */

/* A site with the default service, no feeders, no transformers, no
 * measurements. NULL on allocation failure. */
struct dlm_site *dlm_site_new(void);
void dlm_site_free(struct dlm_site *s); /* NULL is fine */

/* Replace the service configuration. V2G_ERR_INVAL (site unchanged) when a
 * field is out of its range. */
int dlm_site_configure_service(struct dlm_site *s, const struct dlm_service_cfg *cfg);
const struct dlm_service_cfg *dlm_site_service(const struct dlm_site *s);

/* Add or replace (same id) a feeder; strings are copied. V2G_ERR_INVAL (site
 * unchanged) for a bad field, an id too long, or a station already on another
 * feeder; V2G_ERR_NOMEM. A replaced feeder keeps its measurements. */
int dlm_site_configure_feeder(struct dlm_site *s, const char *id, const struct dlm_feeder_cfg *cfg);
/* Add or replace a transformer. V2G_ERR_INVAL as above, or when a feeder is
 * already under another transformer. Feeders named here need not exist
 * yet. */
int dlm_site_configure_transformer(struct dlm_site *s, const char *id,
                                   const struct dlm_transformer_cfg *cfg);
int dlm_site_remove_feeder(struct dlm_site *s, const char *id);      /* or V2G_ERR_NOTFOUND */
int dlm_site_remove_transformer(struct dlm_site *s, const char *id); /* or V2G_ERR_NOTFOUND */

size_t dlm_site_feeder_count(const struct dlm_site *s);
/* Feeder i's id (borrowed, valid until the feeders change), NULL when out of
 * range. Indexes change only when a feeder is removed. */
const char *dlm_site_feeder_id(const struct dlm_site *s, size_t i);
/* Index of the feeder a station is connected to, or -1. */
int dlm_site_station_feeder(const struct dlm_site *s, const char *station);

/* Measurements; now_ms is recorded for the status. */
int dlm_site_update_service(struct dlm_site *s, const struct dlm_service_meas *m, int64_t now_ms);
/* A feeder's power and current (NaN = not measured: the power falls back to
 * the sum of its stations' power, the current to the power converted at the
 * service voltage). V2G_ERR_NOTFOUND for an unknown feeder. */
int dlm_site_update_feeder(struct dlm_site *s, const char *id, double power_kw, double current_a,
                           int64_t now_ms);
/* A transformer's apparent load (NaN = not measured: the sum of its feeders'
 * power, or the service power when it has none, divided by pf) and
 * temperature (NaN = unknown: no derating). */
int dlm_site_update_transformer(struct dlm_site *s, const char *id, double load_kva, double temp_c,
                                int64_t now_ms);
/* A station's power; any station id is accepted (stations on no feeder count
 * only through the service). V2G_ERR_INVAL for an id too long. */
int dlm_site_update_station(struct dlm_site *s, const char *station, double power_kw,
                            int64_t now_ms);

/* Headroom under a group of constraints. available_kw = min over the
 * constraints of (limit - load), negative when over a limit by that much;
 * load_kw is the measured real power; limit_kw = load_kw + available_kw, the
 * capacity to compare the load with (e.g. for load shedding). binding names
 * the tightest constraint: "service_power", "service_current",
 * "transformer:<id>", "feeder_power", "feeder_current". */
struct dlm_headroom {
	double limit_kw;
	double load_kw;
	double available_kw;
	char binding[DLM_ID_MAX + 16];
};

/* The site's headroom under the service power (x NEC), the service current
 * on its most loaded phase, and the transformers. Feeders do not limit the
 * site total (stations may hang off the service directly): respect them one
 * by one with dlm_site_capacity. */
double dlm_site_available_kw(const struct dlm_site *s);
/* The site headroom into *site (may be NULL) and each feeder's headroom into
 * feeders[i] for i < min(n_feeders, feeder count), in feeder index order. A
 * feeder's headroom is min(power limit - load, current limit - current
 * converted to kW) where the current limit is min(breaker x NEC, cable
 * ampacity, max_current_a) and the power limit min(max_power_kw, current
 * limit in kW); it is further capped by its transformer's headroom. It is not
 * capped by the service: check both. Returns the feeder count. */
size_t dlm_site_capacity(const struct dlm_site *s, struct dlm_headroom *site,
                         struct dlm_headroom *feeders, size_t n_feeders);
/* One feeder by id; V2G_ERR_NOTFOUND. */
int dlm_site_feeder_available(const struct dlm_site *s, const char *id, struct dlm_headroom *out);

enum dlm_severity {
	DLM_SEV_INFO = 0,
	DLM_SEV_WARNING = 1,
	DLM_SEV_CRITICAL = 2,
};
#define DLM_SEV_ANY (-1)
const char *dlm_severity_name(int sev);   /* "info" | "warning" | "critical" */
int dlm_severity_parse(const char *name); /* DLM_SEV_ANY for an unknown name */

enum dlm_violation_type {
	DLM_VIOL_SERVICE_POWER,
	DLM_VIOL_SERVICE_CURRENT,
	DLM_VIOL_PHASE_IMBALANCE,
	DLM_VIOL_POWER_FACTOR,
	DLM_VIOL_VOLTAGE,
	DLM_VIOL_FREQUENCY,
	DLM_VIOL_FEEDER_BREAKER,
	DLM_VIOL_FEEDER_AMPACITY,
	DLM_VIOL_FEEDER_CURRENT,
	DLM_VIOL_FEEDER_POWER,
	DLM_VIOL_TRANSFORMER_LOAD,
	DLM_VIOL_TRANSFORMER_TEMP,
};
const char *dlm_violation_type_name(enum dlm_violation_type t); /* "service_power", ... */

struct dlm_violation {
	enum dlm_violation_type type;
	enum dlm_severity severity;
	char subject[DLM_ID_MAX]; /* "service", a phase "A".."C", a feeder or transformer id */
	double value, limit;      /* measured vs the limit crossed (same unit) */
	int64_t since_ms;         /* first check that saw it, while continuously active */
	char message[DLM_MSG_MAX];
};

/* Re-evaluates every constraint against the latest measurements; replaces the
 * active violations. A violation of the same type and subject as in the
 * previous check keeps its since_ms; a new one has since_ms == now_ms (the
 * caller audits those). Returns the number of active violations. */
size_t dlm_site_check(struct dlm_site *s, int64_t now_ms);
/* Copies up to limit active violations of the given severity (DLM_SEV_ANY =
 * all), most severe first, into out. Returns the number copied. */
size_t dlm_site_violations(const struct dlm_site *s, int severity, size_t limit,
                           struct dlm_violation *out);
size_t dlm_site_violation_count(const struct dlm_site *s, int severity);

/* Status for GET /api/site-constraints/status: service (config and
 * measurements), feeders and transformers (config, load, headroom),
 * capacity, and the active violations. The caller owns the result
 * (json_decref / free). NULL on allocation failure. */
json_t *dlm_site_status_obj(const struct dlm_site *s);
char *dlm_site_status_json(const struct dlm_site *s);

#endif
