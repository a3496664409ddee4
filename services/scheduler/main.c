/* v2g-scheduler: day-ahead plans per vehicle and slot, NEBEF export.
 * The planning itself is a later capability; for now the process takes its
 * place in the suite: configuration, bus endpoint, health and metrics. */
#include <stddef.h>

#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/service.h"

struct settings {
	int slot_minutes;
};

static const struct v2g_cfg_item items[] = {
	{ "scheduler.slot_minutes", V2G_CFG_INT, offsetof(struct settings, slot_minutes), 15, 1440,
	  "60", NULL, "planning slot length" },
};

static void handle(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	(void)arg;
	(void)req;
	v2g_bus_reply_error(rep, 501, "scheduler: no planning requests are served yet");
}

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct settings st = { 0 };
	struct v2g_bus_server *rep = NULL;
	int rc;

	v2g_service_init(&svc, "scheduler", "scheduler.health_port", 9104, argc, argv, items,
	                 sizeof(items) / sizeof(items[0]), &st);
	if ((rc = v2g_bus_server_start(&rep, svc.common.bus_scheduler, 1, handle, NULL, NULL,
	                               NULL))) {
		v2g_error("SCHED-START-FAIL", "cannot listen on %s: %s", svc.common.bus_scheduler,
		          v2g_strerror(rc));
		return 1;
	}
	v2g_service_start_http(&svc);
	v2g_service_wait(&svc);
	v2g_bus_server_stop(rep);
	v2g_service_fini(&svc);
	return 0;
}
