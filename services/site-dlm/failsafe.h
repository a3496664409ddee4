/* Fail-safe manager (DLM guide 1.4): what a charger gets when we lose touch
 * with it, and the system heartbeat.
 *
 * Each station has a safe power limit (3.7 kW), an offline action and a
 * communication timeout (30 s). A station silent for longer than its timeout
 * (now - last_comm > comm_timeout_ms) gets ONE fail-safe action:
 *   maintain  the last known good power (the safe limit when none is known)
 *   reduce    min(last known good power, safe limit) (the safe limit when
 *             none is known)
 *   stop      0 kW
 * and stays in fail-safe without further actions until it is heard again;
 * then the next check gives ONE restore action (back to normal control).
 * A station registered but never heard counts as heard at registration.
 *
 * The system heartbeat: the control loop calls dlm_failsafe_heartbeat each
 * cycle; dlm_failsafe_system_ok says whether one came within a timeout.
 *
 * Pure logic: time is passed in, no threads; not thread-safe (the control
 * loop owns the manager). Station ids are copied. */
#ifndef DLM_FAILSAFE_H
#define DLM_FAILSAFE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DLM_FS_ID_MAX     64 /* longest station id kept, with the NUL */
#define DLM_FS_STATUS_MAX 32 /* longest good-config status kept, with the NUL */

enum dlm_offline_action {
	DLM_OFFLINE_MAINTAIN,
	DLM_OFFLINE_REDUCE,
	DLM_OFFLINE_STOP,
};

struct dlm_failsafe_cfg {
	double safe_power_limit_kw; /* >= 0 */
	enum dlm_offline_action offline_action;
	int64_t comm_timeout_ms; /* > 0 */
};

/* Last known good configuration, recorded whenever normal control set a
 * station successfully. */
struct dlm_good_config {
	double power_kw;    /* >= 0 */
	const char *status; /* e.g. "charging"; copied (truncated); NULL = "" */
};

enum dlm_fs_action_kind {
	DLM_FS_APPLY,   /* put the station on its fail-safe setpoint */
	DLM_FS_RESTORE, /* heard again: back to normal control */
};

struct dlm_fs_action {
	const char *station; /* owned by the manager: valid until it is unregistered */
	enum dlm_fs_action_kind kind;
	enum dlm_offline_action offline_action;
	double power_kw;   /* APPLY: the fail-safe setpoint; RESTORE: the last good power */
	int64_t silent_ms; /* APPLY: how long it had been silent */
};

/* The actions of one check, owned by the manager, valid until the next
 * dlm_failsafe_check or dlm_failsafe_free. */
struct dlm_fs_actions {
	size_t n;
	const struct dlm_fs_action *v;
};

struct dlm_failsafe;

/* 3.7 kW, reduce, 30000 ms. */
struct dlm_failsafe_cfg dlm_failsafe_defaults(void);
int dlm_failsafe_cfg_valid(const struct dlm_failsafe_cfg *cfg);
const char *dlm_offline_action_name(enum dlm_offline_action a); /* maintain|reduce|stop */
/* 0 and *out set, or V2G_ERR_INVAL for an unknown name. */
int dlm_offline_action_parse(const char *name, enum dlm_offline_action *out);

/* defaults (NULL = dlm_failsafe_defaults()) apply to stations first seen
 * through update_comm or record_good_config. NULL when defaults are invalid
 * or on allocation failure. */
struct dlm_failsafe *dlm_failsafe_new(const struct dlm_failsafe_cfg *defaults);
void dlm_failsafe_free(struct dlm_failsafe *m);

/* Register (or reconfigure: state kept) a station; counts as heard at now_ms
 * when new. V2G_ERR_INVAL for a bad id or cfg, V2G_ERR_NOMEM. */
int dlm_failsafe_register(struct dlm_failsafe *m, const char *station,
                          const struct dlm_failsafe_cfg *cfg, int64_t now_ms);
int dlm_failsafe_unregister(struct dlm_failsafe *m, const char *station); /* or NOTFOUND */

/* The station was heard at now_ms; an unknown station is registered with the
 * defaults. */
int dlm_failsafe_update_comm(struct dlm_failsafe *m, const char *station, int64_t now_ms);
/* Records the last known good configuration; registers an unknown station
 * (heard at now_ms). V2G_ERR_INVAL for a bad power. */
int dlm_failsafe_record_good_config(struct dlm_failsafe *m, const char *station,
                                    const struct dlm_good_config *good, int64_t now_ms);

/* Applies the rules above at now_ms: the actions to send (see struct
 * dlm_fs_actions for their lifetime). 0, or V2G_ERR_NOMEM (no state
 * changed). */
int dlm_failsafe_check(struct dlm_failsafe *m, int64_t now_ms, struct dlm_fs_actions *out);

/* 1 when the station is on its fail-safe setpoint, 0 when not, -1 when
 * unknown. */
int dlm_failsafe_in_failsafe(const struct dlm_failsafe *m, const char *station);
size_t dlm_failsafe_count(const struct dlm_failsafe *m);
size_t dlm_failsafe_active_count(const struct dlm_failsafe *m);

/* System heartbeat. system_ok: 1 when a heartbeat came within
 * heartbeat_timeout_ms of now_ms (now - last <= timeout), 0 otherwise or
 * before the first one. */
void dlm_failsafe_heartbeat(struct dlm_failsafe *m, int64_t now_ms);
int dlm_failsafe_system_ok(const struct dlm_failsafe *m, int64_t now_ms,
                           int64_t heartbeat_timeout_ms);

/* For GET /api/fail-safe/status: {system_ok, last_heartbeat_ms,
 * heartbeat_age_ms, stations_total, stations_in_failsafe, defaults:{…},
 * stations:[{id, safe_power_limit_kw, offline_action, comm_timeout_ms,
 * last_comm_ms, silent_ms, online, in_failsafe, failsafe_since_ms,
 * failsafe_power_kw, last_good:{power_kw, status, recorded_ms}|null}]}.
 * Caller owns the result. */
json_t *dlm_failsafe_status_obj(const struct dlm_failsafe *m, int64_t now_ms,
                                int64_t heartbeat_timeout_ms);
char *dlm_failsafe_status_json(const struct dlm_failsafe *m, int64_t now_ms,
                               int64_t heartbeat_timeout_ms); /* caller frees */

#endif
