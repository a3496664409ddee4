/* The DLM operations behind the REST routes, and the audit trail of the
 * controller's own decisions.
 *
 * The api-gateway relays each DLM route to site-dlm over bus.dlm as a
 * DlmRequest {op, station, body_json, actor, query}; dlm_control() answers
 * it with an HTTP status and a JSON object (the DlmReply). The routes and
 * their ops:
 *
 *   GET  /api/dlm/status                         status
 *   GET  /api/circuit-breakers                   circuit_breakers
 *   GET  /api/watchdogs                          watchdogs
 *   GET  /api/fail-safe/status                   failsafe_status
 *   GET  /api/load-shedding/status               shedding_status
 *   GET  /api/site-constraints/status            constraints_status
 *   GET  /api/capabilities/{station}             capabilities
 *   POST /api/stations/{id}/phase-currents       phase_currents
 *   POST /api/stations/{id}/dc-power             dc_power
 *   POST /api/stations/{id}/capabilities/discover discover
 *   POST /api/load-shedding/configure            shedding_configure
 *   POST /api/site-constraints/service           service_configure
 *   POST /api/site-constraints/feeder            feeder_configure
 *   POST /api/site-constraints/transformer       transformer_configure
 *
 * Answers:
 *   status              dlm_loop_status_obj plus "site"
 *   circuit_breakers    {"count", "breakers": [v2g_breaker_status...]}
 *   watchdogs           {"count", "watchdogs": [...]} (v2g/watchdog.h)
 *   failsafe_status     dlm_failsafe_status_obj
 *   shedding_status     dlm_shed_status_obj
 *   constraints_status  dlm_site_status_obj
 *   capabilities        dlm_cap_to_json of the station; 404 when unknown
 *   phase_currents      body {"phases":{"A":16,"B":16,"C":16}} (any of the
 *                       station's phases) or {"release":true}: an operator's
 *                       limit on an AC station (dlm_loop_set_override_current).
 *                       Each phase goes through dlm_cap_recommended: over the
 *                       maximum it is clamped, under the minimum (or the IEC
 *                       6 A) it is 0 = stop; a three-phase station runs
 *                       balanced, so its limit is the lowest phase given.
 *                       Not a number, negative, or a phase the station lacks:
 *                       400. Reply {station, action, requested, applied,
 *                       clamped, current_a, override_kw, notes}.
 *   dc_power            body {"power_kw":50} or {"release":true}: the same
 *                       for a DC charger in kW (>= 0; under power_min_kw a
 *                       stop, over power_max_kw clamped). Reply {station,
 *                       action, requested_kw, override_kw, clamped, notes}.
 *                       release works on both routes for either kind; reply
 *                       {station, action:"release_override", previous_kw}.
 *   discover            body {"profile","protocol","overrides":{type,
 *                       connector, voltage_min, voltage_max, current_min,
 *                       current_max, power_min_kw, power_max_kw, phases,
 *                       features: [names] | {name: bool}}, "priority":1..10,
 *                       "rotation":0..2} (all optional; an empty body is {}):
 *                       (re)discovers the station's capability and (re)adds
 *                       it to the loop (a new station is added, up to
 *                       max_stations: 409 beyond). Its priority, demand,
 *                       rotation and override are kept unless given. On a
 *                       refusal nothing changes. Reply {station, action,
 *                       created, priority, capabilities}.
 *   shedding_configure  body any of {"enabled", "upper_threshold",
 *                       "lower_threshold", "mode":"step"|"jump",
 *                       "min_hold_ms", "escalate_hold_ms"} (the holds
 *                       integers 0..86400000), merged into the present
 *                       configuration (0 < lower < upper <= 1). Reply: the
 *                       shedding status plus "changed": [keys].
 *   service_configure   body any subset of the service entrance
 *                       (dlm_service_cfg_merge_json), merged and applied.
 *                       Reply {service: config, changed: [keys]}.
 *   feeder_configure    body a feeder (dlm_feeder_cfg_from_json): added or
 *                       replaced by id. Reply {feeder, created}.
 *   transformer_configure  the same for a transformer.
 * Every change takes effect at the next control cycle.
 *
 * Errors are {"error": "..."}: 400 for a bad body, the message starting
 * with the field's name ("phases.B: ...", "upper_threshold: ...", "body:
 * ..."); 404 "no such DLM operation: <op>" and "no such station: <id>";
 * 409 for a discover over max_stations; 500 out of memory.
 *
 * Audit (through ctx->audit; nothing is recorded when it is NULL):
 *   - station_control, target the station: "set_phase_currents",
 *     "set_dc_power", "release_override", "discover_capabilities" with the
 *     parameters; a refused request (400) on a known station is recorded
 *     the same with success false and {"error"} in its details;
 *   - config_change ("config_update"), one event per changed key: target
 *     "dlm.shedding.<key>" / "dlm.service.<key>" with {old, new};
 *     "dlm.feeders.<id>" / "dlm.transformers.<id>" with {old (null when
 *     new), new} (the configuration fields of the feeder or transformer);
 *   - load_management from dlm_control_after_cycle and
 *     dlm_control_station_learned (below).
 * Each control action is also logged (DLM-CONTROL). Metrics:
 * dlm_control_requests_total{op} (unknown ops count as "unknown"),
 * dlm_control_responses_total{status}.
 *
 * Not thread-safe: the caller holds the lock of the modules it borrows.
 * Times: now_ms is the loop's clock (monotonic, the one its meters and
 * cycles use, and the watchdogs'); audit events are stamped with the wall
 * clock (v2g_now_ms). */
#ifndef DLM_CONTROL_H
#define DLM_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "capability.h"
#include "constraints.h"
#include "failsafe.h"
#include "loop.h"
#include "shedding.h"
#include "v2g/audit.h"
#include "v2g/breaker.h"
#include "v2g/watchdog.h"

/* Receives each audit event (borrowed for the call: copy what is kept). */
typedef void (*dlm_ctl_audit_fn)(void *arg, const struct v2g_audit_event *ev);

/* What the dispatcher works on. Everything is borrowed; the caller fills it
 * once (zeroed first) and keeps it for the life of the modules. */
struct dlm_ctl_ctx {
	const char *site;
	struct dlm_site *dsite;
	struct dlm_shed *shed;
	struct dlm_failsafe *fs;
	struct dlm_cap_registry *caps;
	struct dlm_loop *loop;
	struct v2g_breaker_registry *breakers;   /* NULL: an empty list */
	struct v2g_watchdog_registry *watchdogs; /* NULL: an empty list */
	int64_t heartbeat_timeout_ms;            /* for failsafe_status (> 0) */
	size_t max_stations;                     /* discover of a new one; 0: no limit */
	int default_priority;                    /* of a station discovered here (1..10) */
	dlm_ctl_audit_fn audit;                  /* NULL: no audit */
	void *audit_arg;
	/* Kept by dlm_control_after_cycle. */
	int shed_level;
};

/* Answers one request: returns the HTTP status and sets *reply to a new
 * JSON object (never NULL unless out of memory; the caller decrefs it).
 * op and station may be NULL (= ""); body/len is the POST body (may be
 * NULL/0); query is unused today; actor NULL means the system. */
int dlm_control(struct dlm_ctl_ctx *ctx, const char *op, const char *station, const char *body,
                size_t len, const char *query, const struct v2g_audit_actor *actor, int64_t now_ms,
                json_t **reply);

/* After each control cycle (dlm_loop_cycle returned 0): records the
 * cycle's load management decisions, which happen only on a change, never
 * every cycle: action "shedding_level_change" (target the site, details
 * {site, from, to, level_name, load_kw, limit_kw}) when the shedding level
 * moved, and per station "failsafe_apply" (details {site, station,
 * offline_action, power_kw, silent_ms}) / "failsafe_restore" ({site,
 * station, power_kw}), target the station. Logs them too (DLM-SHED,
 * DLM-FAILSAFE). */
void dlm_control_after_cycle(struct dlm_ctl_ctx *ctx, int64_t now_ms);

/* A station learned from its meter: load_management "station_added",
 * target the station, details {site, station, profile, type, phases,
 * power_max_kw, how}. */
void dlm_control_station_learned(struct dlm_ctl_ctx *ctx, const char *action, const char *station,
                                 const char *how);

#endif
