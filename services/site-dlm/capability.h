/* Charger capability discovery (DLM guide 2.1): what a station can do, so
 * that the control loop never sends it a setpoint it cannot follow.
 *
 * A capability is a built-in profile (the five of the guide) with optional
 * overrides. The registry maps station ids to capabilities; it is a struct
 * the caller owns (no global), not thread-safe (the control loop owns it).
 *
 * Units: volts, amps, kW. For AC, voltage_min/max are the nominal supply
 * voltage as the profile states it: 240 V for the single-phase J1772 profile
 * (phase to neutral), 400 V for the three-phase Type 2 profile (phase to
 * phase of a 230/400 V network). dlm_cap_phase_voltage() gives the
 * phase-to-neutral voltage every per-phase computation uses (240 V and
 * 230 V, the IEC 60038 nominal, rather than 400/sqrt(3) = 230.9 V).
 *
 * Derived AC power range: power = phases x phase voltage x current, at
 * unity power factor:
 *   ac_level2_single: 240 V x 6..80 A         = 1.44 .. 19.2 kW
 *   ac_level2_three:  3 x 230 V x 6..32 A     = 4.14 .. 22.08 kW
 *
 * Features (dlm_cap_supports):
 *   smart_charging     every profile (remote setpoints are the point)
 *   bidirectional      dcfc_ccs_high (ISO 15118-20 bidirectional power
 *                      transfer) and dcfc_chademo (CHAdeMO 2.0 V2X, the
 *                      standard with the longest V2G record); not the AC
 *                      profiles (J1772 and IEC 61851 AC carry no export
 *                      control) nor dcfc_ccs_medium (no BPT hardware assumed)
 *   phase_switching    ac_level2_three (1 <-> 3 phase switching)
 *   per_phase_current  ac_level2_three (a limit per phase)
 *   power_limit        the DC profiles (setpoints in kW)
 *   current_limit      every profile (setpoints in A)
 * Overrides may set any feature mask. */
#ifndef DLM_CAPABILITY_H
#define DLM_CAPABILITY_H

#include <jansson.h>
#include <stddef.h>

/* IEC 61851-1: the lowest PWM current a vehicle must follow. A charging
 * session is at >= 6 A per phase or stopped (0). */
#define DLM_IEC_MIN_A 6.0

#define DLM_CAP_ID_LEN   64
#define DLM_CAP_NAME_LEN 32

/* Profile used by discover() when no profile and no overrides are given:
 * the smallest station class, so a station of unknown kind is never asked
 * for more than the most common AC station can take. */
#define DLM_CAP_DEFAULT_PROFILE "ac_level2_single"

enum dlm_cap_type {
	DLM_CAP_TYPE_UNSET = 0, /* only in overrides: keep the profile's */
	DLM_CAP_AC,
	DLM_CAP_DC,
};

enum dlm_feature {
	DLM_FEAT_BIDIRECTIONAL = 1u << 0,
	DLM_FEAT_SMART_CHARGING = 1u << 1,
	DLM_FEAT_PHASE_SWITCHING = 1u << 2,
	DLM_FEAT_PER_PHASE_CURRENT = 1u << 3,
	DLM_FEAT_POWER_LIMIT = 1u << 4,
	DLM_FEAT_CURRENT_LIMIT = 1u << 5,
};
#define DLM_FEAT_COUNT 6

struct dlm_cap {
	char station[DLM_CAP_ID_LEN];    /* "" in the profile table */
	char protocol[DLM_CAP_NAME_LEN]; /* "ocpp", "modbus", ... as given */
	char profile[DLM_CAP_NAME_LEN];  /* base profile name */
	enum dlm_cap_type type;
	char connector[DLM_CAP_NAME_LEN]; /* "J1772", "Type 2", "CCS", "CHAdeMO" */
	double voltage_min, voltage_max;  /* V */
	double current_min, current_max;  /* A (per phase for AC) */
	double power_min_kw, power_max_kw;
	int phases;        /* AC: 1 or 3; DC: 0 */
	unsigned features; /* enum dlm_feature bits */
};

/* Overrides for discover(): a field <= 0 (or DLM_CAP_TYPE_UNSET, or a NULL
 * string, or features_set == 0) keeps the profile's value. When the
 * currents or voltage of an AC station are overridden and the power range is
 * not, the power range is derived again. */
struct dlm_cap_overrides {
	enum dlm_cap_type type;
	const char *connector;
	double voltage_min, voltage_max;
	double current_min, current_max;
	double power_min_kw, power_max_kw;
	int phases;
	int features_set;
	unsigned features;
};

/* The built-in profiles, by name; NULL when unknown. Static storage. */
const struct dlm_cap *dlm_cap_profile_find(const char *name);
size_t dlm_cap_profile_count(void);
const struct dlm_cap *dlm_cap_profile_at(size_t i); /* NULL past the end */

/* Feature names ("bidirectional", "smart_charging", "phase_switching",
 * "per_phase_current", "power_limit", "current_limit"): name of one bit
 * (NULL if not exactly one known bit); parse gives the bit or 0. */
const char *dlm_feature_name(unsigned feature);
unsigned dlm_feature_parse(const char *name);

/* Phase-to-neutral voltage for per-phase computations (see above): 230 V
 * for a three-phase station of 380..415 V phase to phase, otherwise
 * voltage_max / sqrt(3) for other three-phase stations, voltage_max for a
 * single-phase station, 0 for DC. */
double dlm_cap_phase_voltage(const struct dlm_cap *cap);

/* --- registry ------------------------------------------------------- */

struct dlm_cap_registry;

/* An empty registry; the caller frees it with dlm_cap_registry_free (NULL
 * is fine). NULL when out of memory. */
struct dlm_cap_registry *dlm_cap_registry_alloc(void);
void dlm_cap_registry_free(struct dlm_cap_registry *reg);
size_t dlm_cap_registry_count(const struct dlm_cap_registry *reg);

/* Records (or replaces) the capability of station: the named profile
 * (NULL: DLM_CAP_DEFAULT_PROFILE) with ov applied (NULL: none). protocol may
 * be NULL. Strings are copied. On success *out (if not NULL) points at the
 * stored record, valid until the station is removed or rediscovered or the
 * registry freed. Returns 0; V2G_ERR_NOTFOUND for an unknown profile;
 * V2G_ERR_INVAL for an empty or too long station id, or an inconsistent
 * result (AC phases not 1 or 3, min > max, min below the IEC 6 A minimum on
 * AC, non-positive maximum); V2G_ERR_NOMEM. On error the registry is
 * unchanged. */
int dlm_cap_discover(struct dlm_cap_registry *reg, const char *station, const char *protocol,
                     const char *profile, const struct dlm_cap_overrides *ov,
                     const struct dlm_cap **out);

/* The stored capability, or NULL. Valid as in discover(). */
const struct dlm_cap *dlm_cap_get(const struct dlm_cap_registry *reg, const char *station);

/* Forgets station: 0 or V2G_ERR_NOTFOUND. */
int dlm_cap_remove(struct dlm_cap_registry *reg, const char *station);

/* Calls fn for each station (in no particular order); the registry must not
 * change during the walk. */
void dlm_cap_foreach(const struct dlm_cap_registry *reg,
                     void (*fn)(const struct dlm_cap *cap, void *arg), void *arg);

/* --- commands ------------------------------------------------------- */

enum dlm_cmd_type {
	DLM_CMD_AC_CURRENT_LIMIT, /* per-phase amps in phase[], phase_mask */
	DLM_CMD_DC_POWER_LIMIT,   /* value kW; < 0 = export */
	DLM_CMD_DC_CURRENT_LIMIT, /* value A */
	DLM_CMD_SET_POWER,        /* value kW, AC or DC; < 0 = export */
};

/* Names as the REST API spells them ("ac_current_limit", ...); parse gives
 * -1 for an unknown name. */
const char *dlm_cmd_type_name(enum dlm_cmd_type t);
int dlm_cmd_type_parse(const char *name);

struct dlm_cap_command {
	enum dlm_cmd_type type;
	unsigned phase_mask; /* bit 0 = A, 1 = B, 2 = C: the phases given */
	double phase[3];     /* A, B, C in amps (AC_CURRENT_LIMIT) */
	double value;        /* kW or A for the other types */
};

enum dlm_cap_error_code {
	DLM_CAPERR_UNKNOWN_STATION,
	DLM_CAPERR_WRONG_TYPE,        /* AC command to a DC station or back */
	DLM_CAPERR_NO_PHASES,         /* ac_current_limit with no phase */
	DLM_CAPERR_NO_SUCH_PHASE,     /* phase B or C on a single-phase station */
	DLM_CAPERR_NOT_A_NUMBER,      /* NaN or infinite */
	DLM_CAPERR_NEGATIVE,          /* negative current */
	DLM_CAPERR_BELOW_IEC_MIN,     /* 0 < A < 6 */
	DLM_CAPERR_BELOW_MIN,         /* under the station minimum (not 0) */
	DLM_CAPERR_ABOVE_MAX,         /* over the station maximum */
	DLM_CAPERR_NOT_BIDIRECTIONAL, /* export asked of an import-only station */
};

#define DLM_CAP_MAX_ERRORS 8

struct dlm_cap_validation {
	int valid;
	int nerrors; /* <= DLM_CAP_MAX_ERRORS */
	struct dlm_cap_error {
		enum dlm_cap_error_code code;
		char field[8]; /* "A", "B", "C", "value", "type", "" */
		char msg[120];
	} errors[DLM_CAP_MAX_ERRORS];
};

/* Checks cmd against the station's capability and lists every error (each
 * phase separately). 0 = stop is always in range. Returns 0 when valid,
 * V2G_ERR_INVAL when not (res lists why), V2G_ERR_NOTFOUND for an unknown
 * station (res has one UNKNOWN_STATION error). res is always filled. */
int dlm_cap_validate(const struct dlm_cap_registry *reg, const char *station,
                     const struct dlm_cap_command *cmd, struct dlm_cap_validation *res);

enum dlm_unit {
	DLM_UNIT_AMPS,
	DLM_UNIT_KW,
};

/* The setpoint to send for a wish of value (in unit): clamped to the
 * station's maximum; a value under the station's minimum (or under the
 * IEC 6 A minimum for AC amps) gives 0 = stop, never the minimum, because
 * raising a setpoint above what the allocator granted could break a site
 * limit. A negative kW value (export) is clamped to -power_max_kw on a
 * bidirectional station and gives 0 otherwise; negative amps give 0.
 * Guide: 18 A on a 16 A station -> 16 A. Returns 0, V2G_ERR_NOTFOUND, or
 * V2G_ERR_INVAL (NaN). */
int dlm_cap_recommended(const struct dlm_cap_registry *reg, const char *station, enum dlm_unit unit,
                        double value, double *out);

/* 1 when the station is known and has every bit of feature, else 0. */
int dlm_cap_supports(const struct dlm_cap_registry *reg, const char *station, unsigned feature);

/* JSON for GET /api/capabilities/{station}: station, protocol, profile,
 * type, connector, voltage/current/power {min,max}, phases, phase_voltage,
 * features {name: bool}. New reference (json_decref); NULL on NOMEM. */
json_t *dlm_cap_to_json(const struct dlm_cap *cap);
/* The station's JSON, NULL when unknown. */
json_t *dlm_cap_status_json(const struct dlm_cap_registry *reg, const char *station);
/* {"count": n, "stations": {id: capability...}}. */
json_t *dlm_cap_registry_json(const struct dlm_cap_registry *reg);

#endif
