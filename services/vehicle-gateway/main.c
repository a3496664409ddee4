/* v2g-vehicle-gateway: start-up only. The work is in gateway.c. */
#include "gateway.h"
#include "settings.h"
#include "v2g/log.h"
#include "v2g/service.h"

static int check_settings(void *cfg, const char *file, char *err, size_t len)
{
	(void)file;
	return vgw_settings_check(cfg, err, len);
}

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct vgw_settings cfg = { 0 };
	struct vgw_gateway *g = NULL;

	v2g_service_set_check(check_settings);
	v2g_service_init(&svc, "vehicle-gateway", "gateway.health_port", 9103, argc, argv,
	                 vgw_settings_items, vgw_settings_n, &cfg);
	if (vgw_gateway_start(&g, &svc, &cfg) != 0) {
		v2g_service_fini(&svc);
		return 1;
	}
	v2g_service_start_http(&svc);
	v2g_service_wait(&svc);

	v2g_info("GW-STOPPING", "shutting down");
	vgw_gateway_drain(g);
	v2g_service_fini(&svc);
	vgw_gateway_free(g);
	return 0;
}
