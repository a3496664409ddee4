/* Building the dispatch-log query: filters, defaults, limits, rejects. */
#include <stdint.h>
#include <string.h>

#include "../../services/store/logquery.h"
#include "../harness/harness.h"
#include "v2g/err.h"

static V2g__V1__LogQuery any(void)
{
	V2g__V1__LogQuery q = V2G__V1__LOG_QUERY__INIT;
	q.signal_type = -1;
	return q;
}

static void test_no_filter(void)
{
	V2g__V1__LogQuery q = any();
	struct store_logq o;
	char err[128];
	CHECK_INT(store_logq_build(&q, 1000, &o, err, sizeof err), 0);
	CHECK_INT(o.limit, 100);
	CHECK_INT(o.nparams, 1);
	CHECK_STR(o.values[0], "100");
	CHECK_INT(o.by_vehicle, 0);
	CHECK(strstr(o.records_sql, "WHERE true ORDER BY d.started_at DESC, d.dispatch_id DESC"
	                            " LIMIT $1::int") != NULL);
	CHECK(strstr(o.allocs_sql, "LIMIT 1001") != NULL);
	CHECK(strstr(o.allocs_sql, "a.vehicle_id = $") == NULL);
}

static void test_all_filters(void)
{
	V2g__V1__LogQuery q = any();
	struct store_logq o;
	char err[128];
	q.start_ms = INT64_C(1795260744123);
	q.end_ms = INT64_C(1795260745000);
	q.signal_type = 2;
	q.vehicle_id = "ev-'; DROP TABLE dispatches; --";
	q.limit = 5;
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), 0);
	CHECK_INT(o.nparams, 5);
	CHECK_STR(o.values[0], "2026-11-21 11:32:24.123+00");
	CHECK_STR(o.values[1], "2026-11-21 11:32:25.000+00");
	CHECK_STR(o.values[2], "2");
	CHECK(o.values[3] == q.vehicle_id); /* a parameter, never spliced into SQL */
	CHECK_STR(o.values[4], "5");
	CHECK_INT(o.limit, 5);
	CHECK_INT(o.by_vehicle, 1);
	CHECK(strstr(o.records_sql, "DROP") == NULL && strstr(o.allocs_sql, "DROP") == NULL);
	CHECK(strstr(o.records_sql, "d.started_at >= $1::timestamptz AND d.started_at < "
	                            "$2::timestamptz AND d.signal_type = $3::smallint AND "
	                            "d.dispatch_id IN (SELECT va.dispatch_id FROM allocations va "
	                            "WHERE va.vehicle_id = $4)") != NULL);
	CHECK(strstr(o.records_sql, "LIMIT $5::int") != NULL);
	/* allocations: the same records, then only this vehicle's rows */
	CHECK(strstr(o.allocs_sql, "LIMIT $5::int) r JOIN allocations a ON a.dispatch_id = "
	                           "r.dispatch_id AND a.vehicle_id = $4 ORDER BY r.started_at "
	                           "DESC, r.dispatch_id DESC") != NULL);
	CHECK(strstr(o.allocs_sql, "LIMIT 11") != NULL);
}

static void test_some_filters_number_params(void)
{
	V2g__V1__LogQuery q = any();
	struct store_logq o;
	char err[128];
	q.end_ms = 1000;
	q.signal_type = 0; /* FCR, not "any" */
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), 0);
	CHECK_INT(o.nparams, 3);
	CHECK(strstr(o.records_sql, "WHERE true AND d.started_at < $1::timestamptz AND "
	                            "d.signal_type = $2::smallint ORDER") != NULL);
	CHECK_STR(o.values[1], "0");
	CHECK(strstr(o.records_sql, "LIMIT $3::int") != NULL);
}

static void test_limit_clamped(void)
{
	V2g__V1__LogQuery q = any();
	struct store_logq o;
	char err[128];
	q.limit = 1000000;
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), 0);
	CHECK_INT(o.limit, 1000);
	CHECK_STR(o.values[0], "1000");
	q.limit = 1;
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), 0);
	CHECK_INT(o.limit, 1);
}

static void test_rejects(void)
{
	V2g__V1__LogQuery q = any();
	struct store_logq o;
	char err[128];
	q.signal_type = 3;
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strncmp(err, "signal_type:", 12) == 0);
	q.signal_type = -2;
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), V2G_ERR_INVAL);
	q = any();
	q.start_ms = -1;
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strncmp(err, "start_ms:", 9) == 0);
	q = any();
	q.end_ms = INT64_MAX;
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strncmp(err, "end_ms:", 7) == 0);
	q = any();
	char long_id[300];
	memset(long_id, 'x', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	q.vehicle_id = long_id;
	CHECK_INT(store_logq_build(&q, 10, &o, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strncmp(err, "vehicle_id:", 11) == 0);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_no_filter),
		HCASE(test_all_filters),
		HCASE(test_some_filters_number_params),
		HCASE(test_limit_clamped),
		HCASE(test_rejects),
	};
	return harness_main("store_logquery", cases, HARNESS_N(cases));
}
