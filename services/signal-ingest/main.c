/* v2g-signal-ingest: validates flexibility signals (REST API via the bus,
 * the RTE generator) and hands them to the dispatch engine.
 *   --rte-gen                   run the built-in RTE signal generator
 *   --rte-gen-scenario NAME     steady | peak | volatile | ramp */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/service.h"

struct settings {
	double max_power_kw;
	int max_duration_min;
	int default_duration_min;
	int rte_gen;
	char *rte_scenario;
	int rte_interval;
	int rte_delay;
	double rte_scale;
};

#define S(f) offsetof(struct settings, f)
static const struct v2g_cfg_item items[] = {
	{ "signal_ingest.max_power_kw", V2G_CFG_DOUBLE, S(max_power_kw), 0.001, 1e9, "1000000",
	  NULL, "larger requests are refused" },
	{ "signal_ingest.max_duration_min", V2G_CFG_INT, S(max_duration_min), 1, 10080, "1440",
	  NULL, "longest signal accepted" },
	{ "signal_ingest.default_duration_min", V2G_CFG_INT, S(default_duration_min), 1, 10080,
	  "15", NULL, "duration when a signal has none" },
	{ "signal_ingest.rte_gen.enabled", V2G_CFG_BOOL, S(rte_gen), 0, 1, "false", NULL,
	  "run the RTE signal generator" },
	{ "signal_ingest.rte_gen.scenario", V2G_CFG_STRING, S(rte_scenario), 0, 31, "steady", NULL,
	  "steady | peak | volatile | ramp" },
	{ "signal_ingest.rte_gen.interval_seconds", V2G_CFG_INT, S(rte_interval), 0, 86400, "0",
	  NULL, "0 = the scenario's own pace" },
	{ "signal_ingest.rte_gen.initial_delay_seconds", V2G_CFG_INT, S(rte_delay), 0, 3600, "5",
	  NULL, "wait before the first signal (the fleet announces itself)" },
	{ "signal_ingest.rte_gen.power_scale", V2G_CFG_DOUBLE, S(rte_scale), 0.001, 1000, "1", NULL,
	  "multiplies the generated power" },
};

static int ready(void *arg)
{
	return v2g_health_ready(arg);
}

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct settings st = { 0 };
	struct ingest in = { 0 };
	struct v2g_bus_server *rep = NULL;
	struct rtegen *gen = NULL;
	int rc;

	v2g_service_init(&svc, "signal-ingest", "signal_ingest.health_port", 9101, argc, argv,
	                 items, sizeof(items) / sizeof(items[0]), &st);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rte-gen"))
			st.rte_gen = 1;
		else if (!strcmp(argv[i], "--rte-gen-scenario") && i + 1 < argc) {
			free(st.rte_scenario);
			st.rte_scenario = strdup(argv[++i]);
		}
	}
	if (st.rte_gen && !rtegen_scenario_valid(st.rte_scenario)) {
		fprintf(stderr,
		        "v2g-signal-ingest: config: signal_ingest.rte_gen.scenario: unknown "
		        "scenario \"%s\" (steady, peak, volatile, ramp)\n",
		        st.rte_scenario);
		return 2;
	}
	if (st.default_duration_min > st.max_duration_min) {
		fprintf(stderr, "v2g-signal-ingest: config: signal_ingest.default_duration_min: "
		                "must not exceed max_duration_min\n");
		return 2;
	}
	in.lim.max_power_kw = st.max_power_kw;
	in.lim.max_duration_min = st.max_duration_min;
	in.lim.default_duration_min = st.default_duration_min;
	in.timeout_ms = svc.common.bus_timeout_ms;
	if ((rc = v2g_bus_client_open(&in.dispatch, svc.common.bus_dispatch)))
		return 1;
	v2g_health_add(svc.health, "dispatch-engine", 1, v2g_health_bus_peer, in.dispatch);
	if ((rc = v2g_bus_server_start(&rep, svc.common.bus_ingest, 4, ingest_handle_request, &in,
	                               ready, svc.health))) {
		v2g_error("INGEST-START-FAIL", "cannot listen on %s: %s", svc.common.bus_ingest,
		          v2g_strerror(rc));
		return 1;
	}
	v2g_service_start_http(&svc);
	if (st.rte_gen &&
	    rtegen_start(&gen, &in, st.rte_scenario, st.rte_interval, st.rte_delay, st.rte_scale))
		v2g_error("RTEGEN-FAIL", "cannot start the RTE generator");
	v2g_service_wait(&svc);
	rtegen_stop(gen);
	v2g_bus_server_stop(rep);
	v2g_bus_client_close(in.dispatch);
	v2g_service_fini(&svc);
	return 0;
}
