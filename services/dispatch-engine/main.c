/* v2g-dispatch-engine: picks vehicles for each signal, splits the power,
 * commands them through the gateway, reallocates what failed, records the
 * decision through the store. */
#include "service.h"

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct disp_settings st = { 0 };
	struct disp_config cfg;
	struct disp_service *ds = NULL;

	v2g_service_set_check(disp_settings_check);
	v2g_service_init(&svc, "dispatch-engine", "dispatch.health_port", 9102, argc, argv,
	                 disp_settings_items, disp_settings_n, &st);
	disp_settings_to_config(&st, &cfg);
	if (disp_service_start(&ds, &svc, &cfg))
		return 1;
	disp_policy_free(&st.policy); /* the engine keeps what it needs */
	v2g_service_start_http(&svc);
	v2g_service_wait(&svc);
	disp_service_stop(ds, cfg.ack_timeout_ms * (cfg.max_rounds + 1) + 1000);
	v2g_service_fini(&svc);
	return 0;
}
