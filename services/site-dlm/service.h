/* The site DLM process: its settings table and the wiring of the control
 * loop (loop.h) to the bus.
 *
 * Threads: a telemetry subscriber on bus.telemetry feeds the station and
 * site meters of dlm.site into the loop; a cycle thread runs
 * dlm_loop_cycle every dlm.cycle_ms and PUSHes one SetpointBatch to
 * bus.gateway_in (the vehicle gateway publishes each setpoint on
 * site/{site}/station/{station}/setpoint). Both take one mutex around the
 * loop and the modules it borrows. The REP server on bus.dlm answers Ping
 * (control requests are refused with 501 for now).
 *
 * Stations are learned from their meters: a station first heard on
 * site/{site}/station/{id}/meter is added to the loop (up to
 * dlm.max_stations) with a capability inferred from the meter, because the
 * gateway's StationMeter does not carry the site simulator's extension
 * fields (kind, phases, max_kw, priority):
 *   - no current_a: a DC charger, profile dcfc_ccs_medium (150 kW);
 *   - current_a with exactly one phase above 0.5 A: single-phase AC,
 *     ac_level2_single, wired (rotation) on that phase;
 *   - otherwise three-phase AC, ac_level2_three (22 kW).
 * Every learned station has priority dlm.default_priority (5), demand = its
 * capability's maximum and the fail-safe defaults of the settings.
 * Feeders and transformers are not configured yet (service entrance only).
 *
 * Metrics: dlm_cycle_seconds (histogram), dlm_site_available_kw{site},
 * dlm_shedding_level{site}, dlm_failsafe_stations{site}, dlm_stations{site},
 * dlm_setpoints_sent_total{site}, dlm_bad_messages_total{kind},
 * dlm_bus_send_failures_total. Health: "telemetry-subscription" (critical,
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
