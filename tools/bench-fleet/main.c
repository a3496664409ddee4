/* v2g-bench-fleet: memory of the dispatch engine's fleet view (records,
 * id index, interned names) and the learning prediction engine, per vehicle,
 * measured as RSS growth while N vehicles report their state. The budget is
 * 256 bytes per vehicle (1,000,000 vehicles in 256 MB).
 *   v2g-bench-fleet [N ...]      default: 100000 1000000 */
#include <stdio.h>
#include <stdlib.h>

#include "../../services/dispatch-engine/fleet.h"
#include "../../services/dispatch-engine/prediction.h"

static long rss_kb(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * 4;
}

/* Fleet and predictor for n vehicles: 500 sites, 3 segments, one state
 * each; returns bytes per vehicle. */
static double measure(long n)
{
	static const char *const segs[] = { "commuter", "fleet", "taxi" };
	V2g__V1__VehicleState s = V2G__V1__VEHICLE_STATE__INIT;
	char id[32], site[16];
	long before = rss_kb();
	struct disp_fleet *f = disp_fleet_new();
	struct disp_predictor *p = disp_predictor_learning(1024);
	if (!f || !p)
		return -1;
	for (long i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "sim-%07ld", i);
		snprintf(site, sizeof(site), "site-%03ld", i % 500);
		s.vehicle_id = id;
		s.soc = 20 + (double)(i % 80);
		s.max_power_kw = 11;
		s.available = 1;
		s.segment = (char *)segs[i % 3];
		s.site = site;
		s.fleet_id = "f1";
		s.ts_ms = 1800000000000LL + i;
		disp_fleet_update(f, &s);
		disp_predictor_observe(p, id, 1, s.soc, s.ts_ms);
	}
	double per = (double)(rss_kb() - before) * 1024.0 / (double)n;
	disp_predictor_free(p);
	disp_fleet_free(f);
	return per;
}

int main(int argc, char **argv)
{
	long sizes[8] = { 100000, 1000000 };
	int n = 2;
	if (argc > 1) {
		n = 0;
		for (int i = 1; i < argc && n < 8; i++)
			sizes[n++] = atol(argv[i]);
	}
	printf("%-28s %9s %16s %8s\n", "benchmark", "vehicles", "bytes_per_vehicle", "budget");
	for (int i = 0; i < n; i++) {
		if (sizes[i] <= 0) {
			fprintf(stderr, "v2g-bench-fleet: sizes must be positive\n");
			return 2;
		}
		/* each size in a fresh process image would be cleaner; freed memory
		 * is mostly returned, and sizes grow, so the growth is measured */
		double per = measure(sizes[i]);
		printf("%-28s %9ld %16.0f %8d\n", "fleet_view_plus_prediction", sizes[i], per, 256);
	}
	return 0;
}
