/* v2g-dispatch-engine: picks vehicles for each signal, splits the power,
 * commands them through the gateway, reallocates what failed, records the
 * decision through the store. */
#include <stdio.h>
#include <stdlib.h>

#include "service.h"

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct disp_settings st = { 0 };
	struct disp_config cfg;
	struct disp_service *ds = NULL;
	char err[256];

	v2g_service_init(&svc, "dispatch-engine", "dispatch.health_port", 9102, argc, argv,
	                 disp_settings_items, disp_settings_n, &st);
	if (disp_settings_check(&st, err, sizeof(err))) {
		fprintf(stderr, "v2g-dispatch-engine: config: %s\n", err);
		return 2;
	}
	disp_settings_to_config(&st, &cfg);
	if (disp_service_start(&ds, &svc, &cfg))
		return 1;
	v2g_service_start_http(&svc);
	v2g_service_wait(&svc);
	disp_service_stop(ds, cfg.ack_timeout_ms * (cfg.max_rounds + 1) + 1000);
	v2g_service_fini(&svc);
	return 0;
}
