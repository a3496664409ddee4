/* Wiring of the dispatch engine to the bus: the signal REP server, the
 * telemetry subscriber, the puller of bus.dispatch_in (acks and publish
 * reports from the gateway, site capacities from site-dlm), the timer, and
 * the PUSH sockets to the gateway and the store. A bad message on any of
 * them is counted in dispatch_bad_messages_total{kind} and skipped. */
#ifndef DISP_SERVICE_H
#define DISP_SERVICE_H

#include "engine.h"
#include "policy.h"
#include "v2g/service.h"

struct disp_settings {
	int ack_timeout_seconds;
	int max_rounds;
	int max_state_age_seconds;
	double realloc_min_soc;
	int site_capacity_ttl_ms; /* dispatch.site_capacity_ttl_ms (engine.h) */
	double band[3][2];        /* [type][low, high] */
	struct disp_policy_settings pol;
	struct disp_policy policy; /* built from pol by disp_settings_check */
};

extern const struct v2g_cfg_item disp_settings_items[];
extern const size_t disp_settings_n;

/* Checks what the table cannot (low < high per band, names, segments from
 * the file) and builds the policy; writes one line. */
int disp_settings_check(void *settings, const char *file, char *err, size_t len);
void disp_settings_to_config(const struct disp_settings *s, struct disp_config *cfg);

struct disp_service;

/* Opens the bus, starts the threads. Returns 0 or a v2g error (logged). */
int disp_service_start(struct disp_service **out, struct v2g_service *svc,
                       const struct disp_config *cfg);
/* Stops taking signals, waits up to drain_ms for active dispatches, finishes
 * the rest, flushes decisions, stops the threads. */
void disp_service_stop(struct disp_service *s, int drain_ms);

#endif
