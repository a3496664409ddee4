/* v2g-api-gateway: the REST API in front of the bus. Start-up only; the
 * logic lives in api.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/service.h"

#define F(field) offsetof(struct api_cfg, field)

static const struct v2g_cfg_item items[] = {
	{ "api.port", V2G_CFG_INT, F(port), 1, 65535, "8900", NULL,
	  "REST API, health and metrics port" },
	{ "api.token", V2G_CFG_STRING, F(token), 1, 1024, NULL, NULL,
	  "Bearer token every /api request must carry (required, non-empty)" },
	{ "api.max_body_bytes", V2G_CFG_INT, F(max_body_bytes), 64, 16777216, "65536", NULL,
	  "largest request body accepted (413 above)" },
};

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct api_cfg cfg;
	struct v2g_bus_client *ingest = NULL, *store = NULL;
	struct api *api = NULL;
	int rc, status = 1;

	memset(&cfg, 0, sizeof(cfg));
	v2g_service_init(&svc, "api-gateway", "api.port", 8900, argc, argv, items,
	                 sizeof(items) / sizeof(items[0]), &cfg);
	if (!cfg.token || !*cfg.token) {
		fprintf(stderr, "v2g-api-gateway: config: api.token: must not be empty "
		                "(set it in the file or K_API__TOKEN)\n");
		exit(2);
	}
	if (!strcmp(cfg.token, "change-me"))
		v2g_warn("API-TOKEN-DEFAULT", "api.token is the example value: set a secret token");

	if ((rc = v2g_bus_client_open(&ingest, svc.common.bus_ingest)) != 0) {
		v2g_error("API-BUS-OPEN", "signal-ingest at %s: %s", svc.common.bus_ingest,
		          v2g_strerror(rc));
		goto out_fini;
	}
	if ((rc = v2g_bus_client_open(&store, svc.common.bus_store)) != 0) {
		v2g_error("API-BUS-OPEN", "store at %s: %s", svc.common.bus_store,
		          v2g_strerror(rc));
		goto out_ingest;
	}
	v2g_health_add(svc.health, "signal-ingest", 1, v2g_health_bus_peer, ingest);
	v2g_health_add(svc.health, "store", 1, v2g_health_bus_peer, store);

	/* The REST handlers go on the service's own HTTP server, which exists
	 * once started. */
	v2g_service_start_http(&svc);
	if ((rc = api_start(&api, v2g_httpd_ctx(svc.httpd), &cfg, ingest, store,
	                    svc.common.bus_timeout_ms)) != 0) {
		v2g_error("API-START", "cannot start the REST API: %s", v2g_strerror(rc));
		goto out_store;
	}
	v2g_info("API-READY", "REST API on http://%s:%d/api", svc.common.http_bind, svc.http_port);
	v2g_service_wait(&svc);
	status = 0;

out_store:
	/* Stops HTTP (no handler runs after this) and the health probes that
	 * use the bus clients, then the clients can go. */
	v2g_service_fini(&svc);
	api_free(api);
	v2g_bus_client_close(store);
	v2g_bus_client_close(ingest);
	return status;
out_ingest:
	v2g_bus_client_close(ingest);
out_fini:
	v2g_service_fini(&svc);
	return status;
}
