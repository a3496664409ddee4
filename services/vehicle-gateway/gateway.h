/* The vehicle gateway: MQTT edge <-> bus wiring.
 *
 * Threads: paho's (decode and enqueue only), telemetry (TelemetryBatch and,
 * as a separate envelope, MeterBatch on bus.telemetry every
 * telemetry.batch_ms, points to InfluxDB, pull-mode requests), outbox
 * (AckBatch and PublishReport to bus.dispatch_in), commands (CommandBatch
 * and SetpointBatch from bus.gateway_in -> MQTT), the InfluxDB writer, and
 * the REP server on bus.gateway.
 *
 * Stale commands: bus.gateway_in buffers up to 1024 messages while the
 * gateway is away, so a CommandBatch may arrive long after the engine gave
 * up on its dispatch (ack timeout, reallocation). A batch issued (its
 * issued_at_ms, the engine's clock) more than gateway.command_max_age_ms
 * ago (default 30000, 1000..3600000), or whose signal has ended (issued_at
 * + duration_min minutes <= now), is not published: GW-COMMAND-EXPIRED
 * (one line a second at most), gateway_commands_expired_total += its
 * commands, and its PublishReport says every command failed, as for a
 * batch that could not be published. issued_at_ms <= 0 (unknown) is
 * published as before; so is a batch issued a little in the future.
 *
 * Lifecycle, around the service's own:
 *   vgw_gateway_start(&g, &svc, &cfg);   before v2g_service_start_http
 *   v2g_service_wait(&svc);
 *   vgw_gateway_drain(g);                stop intake, flush, MQTT offline
 *   v2g_service_fini(&svc);              health probes stop
 *   vgw_gateway_free(g);                 InfluxDB flush (<= 5 s), free */
#ifndef VGW_GATEWAY_H
#define VGW_GATEWAY_H

#include "settings.h"
#include "v2g/service.h"

struct vgw_gateway;

/* Opens the bus sockets, the InfluxDB writer and the MQTT client, registers
 * the health checks (mqtt and influxdb critical, dispatch not) and starts the
 * threads. Borrows svc and cfg until vgw_gateway_drain returns. Returns 0 or
 * an error (logged); on error nothing is left running. */
int vgw_gateway_start(struct vgw_gateway **out, struct v2g_service *svc,
                      const struct vgw_settings *cfg);

/* Stops taking commands, waits (bounded) for in-flight publishes, publishes
 * "offline" and disconnects, then flushes pending states and acks to the
 * bus. Does not touch svc or cfg afterwards. */
void vgw_gateway_drain(struct vgw_gateway *g);

/* Flushes InfluxDB for at most 5 s and frees everything. Call after the
 * health registry is stopped (its probes use the writer). NULL ok. */
void vgw_gateway_free(struct vgw_gateway *g);

#endif
