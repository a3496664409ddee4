/* v2g-site-dlm: keeps a charging site inside its electrical limits. The
 * control loop, its settings and its bus wiring are in service.c. */
#include "service.h"

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct dlm_settings st = { 0 };
	struct dlm_service *ds = NULL;

	v2g_service_set_check(dlm_settings_check);
	v2g_service_init(&svc, "site-dlm", "dlm.health_port", 9106, argc, argv, dlm_settings_items,
	                 dlm_settings_n, &st);
	if (dlm_service_start(&ds, &svc, &st))
		return 1;
	v2g_service_start_http(&svc);
	v2g_service_wait(&svc);
	dlm_service_stop(ds);
	v2g_service_fini(&svc);
	dlm_settings_fini(&st);
	return 0;
}
