/* The site DLM process: its settings table and the wiring of the control
 * loop (loop.h) to the bus.
 *
 * Threads: a telemetry subscriber on bus.telemetry feeds the station and
 * site meters of dlm.site into the loop; a cycle thread runs
 * dlm_loop_cycle every dlm.cycle_ms and PUSHes one SetpointBatch to
 * bus.gateway_in (the vehicle gateway publishes each setpoint on
 * site/{site}/station/{station}/setpoint) through the "gateway_setpoints"
 * circuit breaker (3 failed sends open it, held batches are counted; it
 * tries again after 10 s), then one SiteCapacity (dlm_loop_available_kw,
 * the site's limit and load, wall-clock ts_ms) to bus.dispatch_in (20 ms
 * send timeout; failures counted). Both PUSH sockets are unbuffered: a
 * send fails when the peer is away (a setpoint batch waits half a cycle,
 * at most 500 ms), and nothing stale is queued for its return. Both sends
 * happen after the cycle has released the mutex. The REP server on bus.dlm answers Ping
 * and DlmRequest -> DlmReply: the DLM REST routes the api-gateway relays
 * (control.h; anything else: Error 400). All three take one mutex around
 * the loop and the modules it borrows.
 *
 * Audit: the control operations and the cycle's load management decisions
 * (control.h), and every learned station ("station_added"), go through an
 * audit sink (v2g/audit_sink.h) to bus.store_in; it is drained for up to
 * 500 ms at stop.
 *
 * Watchdogs (GET /api/watchdogs): "control_cycle" (kicked every cycle,
 * timeout 5 x dlm.cycle_ms: DLM-WATCHDOG error and the critical health
 * check "control-cycle" fails, so the service turns not ready until the
 * cycle runs again) and "meters" (kicked by every meter batch of the site,
 * timeout dlm.failsafe.comm_timeout_ms: DLM-WATCHDOG warning). They are
 * polled by the telemetry thread and by the health check.
 *
 * Stations are learned from their meters: a station first heard on
 * site/{site}/station/{id}/meter is added to the loop (up to
 * dlm.max_stations) with a plan from learn.h. The charger's announcement
 * (the StationMeter extensions kind, phases, max_kw, priority, which
 * v2g-site-sim sends) picks the profile — AC 1 phase ac_level2_single, AC 3
 * phases ac_level2_three, DC dcfc_ccs_medium, or dcfc_ccs_high above
 * 150 kW — caps its maximum power at max_kw (discover overrides) and sets
 * its priority. Whatever is not announced is inferred from the meter as
 * before: no current_a: DC (dcfc_ccs_medium, 150 kW); exactly one phase
 * above 0.5 A: single-phase AC wired (rotation) on that phase; otherwise
 * three-phase AC (22 kW); priority dlm.default_priority (5). Demand is the
 * capability's maximum, fail-safe the settings' defaults. Log
 * DLM-STATION-NEW says which and whether announced or inferred.
 *
 * A known station whose announcement changes is updated (DLM-STATION-CHANGE):
 * a new priority through dlm_loop_set_priority, a new kind, phases or
 * max_kw by planning its capability again (its demand and operator
 * override kept). Only a change does this, so a capability set by an
 * operator (POST .../capabilities/discover) stays until the charger
 * announces something different.
 *
 * Feeders and transformers come from dlm.feeders / dlm.transformers
 * (settings.h), configured at start after the service entrance; a station
 * named on a feeder is counted there from its first meter on.
 *
 * Metrics: dlm_cycle_seconds (histogram), dlm_site_available_kw{site},
 * dlm_shedding_level{site}, dlm_failsafe_stations{site}, dlm_stations{site},
 * dlm_setpoints_sent_total{site}, dlm_bad_messages_total{kind},
 * dlm_bus_send_failures_total, dlm_setpoints_held_total (breaker open),
 * dlm_capacity_sent_total{site}, dlm_capacity_send_failures_total,
 * dlm_watchdog_timeouts_total{watchdog}, dlm_control_requests_total{op},
 * dlm_control_responses_total{status}. Health: "control-cycle" (critical,
 * the control_cycle watchdog), "telemetry-subscription" (critical,
 * the SUB has a peer). */
#ifndef DLM_SERVICE_H
#define DLM_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "constraints.h"
#include "failsafe.h"
#include "shedding.h"
#include "settings.h"
#include "v2g/service.h"

struct dlm_service;

/* Builds the loop from st (checked), opens the bus, starts the threads.
 * 0 or a v2g error (logged). */
int dlm_service_start(struct dlm_service **out, struct v2g_service *svc,
                      const struct dlm_settings *st);
/* Stops the threads, closes the sockets, frees everything. NULL is fine. */
void dlm_service_stop(struct dlm_service *s);

#endif
