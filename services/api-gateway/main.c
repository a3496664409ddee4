/* v2g-api-gateway: the REST API in front of the bus. Start-up only; the
 * logic lives in api.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "settings.h"
#include "v2g/audit_sink.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/service.h"

/* How long the audit sink may take at shutdown to hand its queue over. */
#define AUDIT_DRAIN_MS 2000

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct api_cfg cfg;
	struct api_peers peers = { NULL, NULL, NULL };
	struct v2g_audit_sink *sink = NULL;
	struct api *api = NULL;
	int rc, status = 1;

	memset(&cfg, 0, sizeof(cfg));
	v2g_service_set_check(api_settings_check);
	v2g_service_init(&svc, "api-gateway", "api.port", 8900, argc, argv, api_settings_items,
	                 api_settings_n, &cfg);
	if (!strcmp(cfg.token, "change-me"))
		v2g_warn("API-TOKEN-DEFAULT", "api.token is the example value: set a secret token");

	if ((rc = v2g_bus_client_open(&peers.ingest, svc.common.bus_ingest)) != 0) {
		v2g_error("API-BUS-OPEN", "signal-ingest at %s: %s", svc.common.bus_ingest,
		          v2g_strerror(rc));
		goto out;
	}
	if ((rc = v2g_bus_client_open(&peers.store, svc.common.bus_store)) != 0) {
		v2g_error("API-BUS-OPEN", "store at %s: %s", svc.common.bus_store,
		          v2g_strerror(rc));
		goto out;
	}
	if ((rc = v2g_bus_client_open(&peers.dlm, svc.common.bus_dlm)) != 0) {
		v2g_error("API-BUS-OPEN", "site-dlm at %s: %s", svc.common.bus_dlm,
		          v2g_strerror(rc));
		goto out;
	}
	if ((rc = v2g_audit_sink_start(&sink, svc.common.bus_store_in, (size_t)cfg.audit_queue)) !=
	    0) {
		v2g_error("API-AUDIT-SINK", "audit events to %s: %s", svc.common.bus_store_in,
		          v2g_strerror(rc));
		goto out;
	}
	v2g_health_add(svc.health, "signal-ingest", 1, v2g_health_bus_peer, peers.ingest);
	v2g_health_add(svc.health, "store", 1, v2g_health_bus_peer, peers.store);
	/* Not critical: without site-dlm only the DLM routes answer 503. */
	v2g_health_add(svc.health, "site-dlm", 0, v2g_health_bus_peer, peers.dlm);

	/* The REST handlers go on the service's own HTTP server, which exists
	 * once started. */
	v2g_service_start_http(&svc);
	if ((rc = api_start(&api, v2g_httpd_ctx(svc.httpd), &cfg, &peers, sink,
	                    svc.common.bus_timeout_ms)) != 0) {
		v2g_error("API-START", "cannot start the REST API: %s", v2g_strerror(rc));
		goto out;
	}
	v2g_info("API-READY", "REST API on http://%s:%d/api (rate limits %s)", svc.common.http_bind,
	         svc.http_port, cfg.rate.enabled ? "on" : "off");
	v2g_service_wait(&svc);
	status = 0;

out:
	/* Stops HTTP (no handler runs after this) and the health probes that
	 * use the bus clients, then what they borrow can go. */
	v2g_service_fini(&svc);
	api_free(api);
	v2g_audit_sink_stop(sink, AUDIT_DRAIN_MS);
	v2g_bus_client_close(peers.dlm);
	v2g_bus_client_close(peers.store);
	v2g_bus_client_close(peers.ingest);
	api_settings_fini(&cfg);
	return status;
}
