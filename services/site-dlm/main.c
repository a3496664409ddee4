/* v2g-site-dlm: keeps every charging site inside its electrical limits.
 * The control loop is a later capability; for now the process takes its
 * place in the suite: configuration, bus endpoint, health and metrics. */
#include <stddef.h>

#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/service.h"

struct settings {
	double max_grid_capacity_kw;
};

static const struct v2g_cfg_item items[] = {
	{ "dlm.max_grid_capacity_kw", V2G_CFG_DOUBLE,
	  offsetof(struct settings, max_grid_capacity_kw), 1, 1e6, "500", "MAX_GRID_CAPACITY_KW",
	  "site service capacity" },
};

static void handle(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	(void)arg;
	(void)req;
	v2g_bus_reply_error(rep, 501, "site-dlm: no control requests are served yet");
}

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct settings st = { 0 };
	struct v2g_bus_server *rep = NULL;
	int rc;

	v2g_service_init(&svc, "site-dlm", "dlm.health_port", 9106, argc, argv, items,
	                 sizeof(items) / sizeof(items[0]), &st);
	if ((rc = v2g_bus_server_start(&rep, svc.common.bus_dlm, 1, handle, NULL, NULL, NULL))) {
		v2g_error("DLM-START-FAIL", "cannot listen on %s: %s", svc.common.bus_dlm,
		          v2g_strerror(rc));
		return 1;
	}
	v2g_service_start_http(&svc);
	v2g_service_wait(&svc);
	v2g_bus_server_stop(rep);
	v2g_service_fini(&svc);
	return 0;
}
