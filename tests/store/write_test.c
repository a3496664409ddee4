/* The dispatches upsert parameters and the migration list; the database round trips run in the e2e
 * suite. */
#include <stdint.h>
#include <string.h>

#include "../../services/store/migrations.h"
#include "../../services/store/write.h"
#include "../harness/harness.h"

static void test_params_full(void)
{
	V2g__V1__Signal s = V2G__V1__SIGNAL__INIT;
	V2g__V1__DispatchDecision d = V2G__V1__DISPATCH_DECISION__INIT;
	struct store_dispatch_params p;
	s.signal_id = "sig-1";
	s.type = V2G__V1__SIGNAL_TYPE__SIGNAL_TYPE_AFRR;
	s.power_kw = 50;
	s.duration_min = 15;
	s.timestamp_ms = INT64_C(1795260744000);
	s.market_price = 0.12;
	s.has_market_price = 1;
	s.source = "api";
	d.dispatch_id = "d-1";
	d.signal = &s;
	d.status = V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PARTIAL;
	d.target_power_kw = 50;
	d.allocated_power_kw = 48.5;
	d.acked_power_kw = 40;
	d.shortfall_kw = 10;
	d.dispatcher = "smart";
	d.rounds = 2;
	d.started_ms = INT64_C(1795260744123);
	d.completed_ms = INT64_C(1795260750000);
	store_write_params(&d, &p);

	CHECK_STR(p.values[0], "d-1");
	CHECK_STR(p.values[1], "sig-1");
	CHECK_STR(p.values[2], "1");
	CHECK_STR(p.values[3], "50");
	CHECK_STR(p.values[4], "15");
	CHECK_STR(p.values[5], "2026-11-21 11:32:24.000+00");
	CHECK_STR(p.values[6], "0.12");
	CHECK_STR(p.values[7], "api");
	CHECK_STR(p.values[8], "partial");
	CHECK_STR(p.values[10], "48.5");
	CHECK_STR(p.values[12], "10");
	CHECK_STR(p.values[13], "smart");
	CHECK_STR(p.values[14], "2");
	CHECK_STR(p.values[15], "2026-11-21 11:32:24.123+00");
	CHECK_STR(p.values[16], "2026-11-21 11:32:30.000+00");
	CHECK(p.values[17] == NULL); /* first_command_ms 0 -> NULL */
}

static void test_params_nulls(void)
{
	V2g__V1__Signal s = V2G__V1__SIGNAL__INIT;
	V2g__V1__DispatchDecision d = V2G__V1__DISPATCH_DECISION__INIT;
	struct store_dispatch_params p;
	d.dispatch_id = "d-2";
	d.signal = &s; /* no market price, no timestamp */
	store_write_params(&d, &p);
	CHECK(p.values[5] == NULL);
	CHECK(p.values[6] == NULL);
	CHECK_STR(p.values[8], "pending");
	CHECK(p.values[15] == NULL); /* the SQL falls back to now() / the stored value */
	CHECK(p.values[16] == NULL);

	d.signal = NULL;
	store_write_params(&d, &p);
	CHECK_STR(p.values[1], "");
	CHECK_STR(p.values[2], "0");
	for (int i = 3; i <= 7; i++)
		CHECK(p.values[i] == NULL);
}

static void test_migrations_ordered(void)
{
	CHECK(store_nmigrations >= 1);
	CHECK_INT(store_migrations[0].version, 1);
	for (size_t i = 0; i < store_nmigrations; i++) {
		CHECK(store_migrations[i].name && store_migrations[i].name[0]);
		CHECK(store_migrations[i].sql && store_migrations[i].sql[0]);
		if (i > 0)
			CHECK(store_migrations[i].version > store_migrations[i - 1].version);
	}
	CHECK_INT(store_migrations_latest(), store_migrations[store_nmigrations - 1].version);
	/* schema v1 as the rest of the suite relies on it */
	const char *v1 = store_migrations[0].sql;
	CHECK(strstr(v1, "CREATE TABLE dispatches") != NULL);
	CHECK(strstr(v1, "CREATE TABLE allocations") != NULL);
	CHECK(strstr(v1, "PRIMARY KEY (dispatch_id, vehicle_id, round)") != NULL);
	CHECK(strstr(v1, "ON DELETE CASCADE") != NULL);
	CHECK(strstr(v1, "'pending', 'complete', 'partial', 'failed'") != NULL);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_params_full),
		HCASE(test_params_nulls),
		HCASE(test_migrations_ordered),
	};
	return harness_main("store_write", cases, HARNESS_N(cases));
}
