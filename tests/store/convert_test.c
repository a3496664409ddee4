/* Pure conversions of the store: timestamps, doubles, status names, COPY
 * text escaping, and the decision check done before queueing. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/store/convert.h"
#include "../harness/harness.h"
#include "v2g/err.h"

static void test_ms_to_pg(void)
{
	char buf[STORE_TEXT_MAX];
	CHECK_INT(store_ms_to_pg(0, buf, sizeof buf), 0);
	CHECK_STR(buf, "1970-01-01 00:00:00.000+00");
	CHECK_INT(store_ms_to_pg(INT64_C(1795260744123), buf, sizeof buf), 0);
	CHECK_STR(buf, "2026-11-21 11:32:24.123+00");
	/* leap day */
	CHECK_INT(store_ms_to_pg(INT64_C(1709208000000), buf, sizeof buf), 0);
	CHECK_STR(buf, "2024-02-29 12:00:00.000+00");
	CHECK_INT(store_ms_to_pg(-1, buf, sizeof buf), V2G_ERR_INVAL);
	CHECK_INT(store_ms_to_pg(INT64_C(253402300800000), buf, sizeof buf), V2G_ERR_INVAL);
	CHECK_INT(store_ms_to_pg(0, buf, 10), V2G_ERR_INVAL);
}

static void test_pg_to_ms(void)
{
	int64_t ms = -1;
	CHECK_INT(store_pg_to_ms("2026-11-21 11:32:24.123+00", &ms), 0);
	CHECK_INT(ms, INT64_C(1795260744123));
	/* microseconds are truncated to ms; no fraction at all */
	CHECK_INT(store_pg_to_ms("2026-11-21 11:32:24.123999+00", &ms), 0);
	CHECK_INT(ms, INT64_C(1795260744123));
	CHECK_INT(store_pg_to_ms("2026-11-21 11:32:24+00", &ms), 0);
	CHECK_INT(ms, INT64_C(1795260744000));
	CHECK_INT(store_pg_to_ms("2026-11-21 11:32:24.5+00", &ms), 0);
	CHECK_INT(ms, INT64_C(1795260744500));
	/* offsets other than UTC, and the RFC 3339 form */
	CHECK_INT(store_pg_to_ms("2026-11-21 13:02:24.123+01:30", &ms), 0);
	CHECK_INT(ms, INT64_C(1795260744123));
	CHECK_INT(store_pg_to_ms("2026-11-21 06:32:24.123-05", &ms), 0);
	CHECK_INT(ms, INT64_C(1795260744123));
	CHECK_INT(store_pg_to_ms("2026-11-21T11:32:24.123Z", &ms), 0);
	CHECK_INT(ms, INT64_C(1795260744123));
}

static void test_pg_to_ms_rejects(void)
{
	static const char *const bad[] = {
		"",
		"2026-11-21",
		"2026-11-21 11:32:24", /* no offset */
		"2026-13-01 00:00:00+00",
		"2026-02-29 00:00:00+00",
		"2026-11-21 24:00:00+00",
		"2026-11-21 11:32:24.+00",
		"2026-11-21 11:32:24+00 BC",
		"infinity",
		"2026-11-21 11:32:24+0x",
		"26-11-21 11:32:24+00",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms = 0;
		if (store_pg_to_ms(bad[i], &ms) != V2G_ERR_INVAL)
			harness_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
	}
}

static void test_ms_round_trip(void)
{
	/* every formatted instant parses back to itself */
	for (int64_t ms = 0; ms < INT64_C(253402300799999); ms += INT64_C(987654321987)) {
		char buf[STORE_TEXT_MAX];
		int64_t back = -1;
		CHECK_INT(store_ms_to_pg(ms, buf, sizeof buf), 0);
		CHECK_INT(store_pg_to_ms(buf, &back), 0);
		if (back != ms) {
			harness_fail(__FILE__, __LINE__, "%lld -> %s -> %lld", (long long)ms, buf,
			             (long long)back);
			break;
		}
	}
}

static void test_double_text(void)
{
	char buf[STORE_TEXT_MAX];
	store_double_text(0.1, buf);
	CHECK(strtod(buf, NULL) == 0.1);
	store_double_text(7.2, buf);
	CHECK(strtod(buf, NULL) == 7.2);
	store_double_text(-1e300, buf);
	CHECK(strtod(buf, NULL) == -1e300);
	store_double_text(NAN, buf);
	CHECK_STR(buf, "NaN");
	store_double_text(INFINITY, buf);
	CHECK_STR(buf, "Infinity");
	store_double_text(-INFINITY, buf);
	CHECK_STR(buf, "-Infinity");
}

static void test_status_names(void)
{
	CHECK_STR(store_status_name(V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PENDING), "pending");
	CHECK_STR(store_status_name(V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_COMPLETE),
	          "complete");
	CHECK_STR(store_status_name(V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PARTIAL), "partial");
	CHECK_STR(store_status_name(V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_FAILED), "failed");
	CHECK(store_status_name(4) == NULL);
	CHECK(store_status_name(-1) == NULL);
	for (int i = 0; i < 4; i++)
		CHECK_INT(store_status_parse(store_status_name(i)), i);
	CHECK_INT(store_status_parse("done"), -1);
	CHECK_INT(store_status_parse(NULL), -1);
}

static void test_copy_escape(void)
{
	struct store_buf b = { 0 };
	CHECK_INT(store_copy_append_text(&b, "plain"), 0);
	CHECK_STR(b.p, "plain");
	store_buf_reset(&b);
	CHECK_INT(store_copy_append_text(&b, "a\\b\tc\nd\re"), 0);
	CHECK_STR(b.p, "a\\\\b\\tc\\nd\\re");
	store_buf_reset(&b);
	CHECK_INT(store_copy_append_text(&b, ""), 0);
	CHECK_STR(b.p, "");
	store_buf_free(&b);
}

static void test_copy_row(void)
{
	struct store_buf b = { 0 };
	V2g__V1__Allocation a = V2G__V1__ALLOCATION__INIT;
	a.vehicle_id = "ev-1";
	a.power_kw = 7.5;
	a.acked = 1;
	a.round = 2;
	a.reason = "";
	CHECK_INT(store_copy_append_allocation(&b, "d-1", &a), 0);
	CHECK_STR(b.p, "d-1\tev-1\t2\t7.5\tt\tf\tf\t\t\\N\n");

	store_buf_reset(&b);
	a.acked = 0;
	a.rejected = 1;
	a.reallocated = 1;
	a.reason = "no\tpower";
	a.acked_ms = INT64_C(1795260744123);
	CHECK_INT(store_copy_append_allocation(&b, "d\\2", &a), 0);
	CHECK_STR(b.p, "d\\\\2\tev-1\t2\t7.5\tf\tt\tt\tno\\tpower\t2026-11-21 11:32:24.123+00\n");
	store_buf_free(&b);
}

static void test_buf_grows(void)
{
	struct store_buf b = { 0 };
	for (int i = 0; i < 10000; i++)
		CHECK_INT(store_buf_puts(&b, "0123456789"), 0);
	CHECK_INT(b.len, 100000);
	CHECK(b.p[b.len] == '\0');
	CHECK(memcmp(b.p + 99990, "0123456789", 10) == 0);
	store_buf_free(&b);
	CHECK(b.p == NULL);
}

static void test_decision_check(void)
{
	char err[128];
	V2g__V1__Signal s = V2G__V1__SIGNAL__INIT;
	V2g__V1__Allocation a = V2G__V1__ALLOCATION__INIT, *ap = &a;
	V2g__V1__DispatchDecision d = V2G__V1__DISPATCH_DECISION__INIT;
	a.vehicle_id = "ev-1";
	d.dispatch_id = "d-1";
	d.signal = &s;
	d.n_allocations = 1;
	d.allocations = &ap;
	d.started_ms = INT64_C(1795260744123);
	CHECK_INT(store_decision_check(&d, err, sizeof err), 0);

	d.dispatch_id = "";
	CHECK_INT(store_decision_check(&d, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strstr(err, "dispatch_id") != NULL);
	d.dispatch_id = "d-1";

	d.status = (V2g__V1__DispatchStatus)7;
	CHECK_INT(store_decision_check(&d, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strstr(err, "status") != NULL);
	d.status = V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_FAILED;

	s.type = (V2g__V1__SignalType)3;
	CHECK_INT(store_decision_check(&d, err, sizeof err), V2G_ERR_INVAL);
	s.type = V2G__V1__SIGNAL_TYPE__SIGNAL_TYPE_LOAD_SHEDDING;
	CHECK_INT(store_decision_check(&d, err, sizeof err), 0);

	a.vehicle_id = "";
	CHECK_INT(store_decision_check(&d, err, sizeof err), V2G_ERR_INVAL);
	CHECK(strstr(err, "allocations[0]") != NULL);
	a.vehicle_id = "ev-1";

	d.rounds = 0x80000000u;
	CHECK_INT(store_decision_check(&d, err, sizeof err), V2G_ERR_INVAL);
	d.rounds = 1;
	d.completed_ms = -5;
	CHECK_INT(store_decision_check(&d, err, sizeof err), V2G_ERR_INVAL);
	d.completed_ms = 0;

	d.signal = NULL; /* a decision without its signal is still recorded */
	CHECK_INT(store_decision_check(&d, err, sizeof err), 0);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_ms_to_pg),       HCASE(test_pg_to_ms),    HCASE(test_pg_to_ms_rejects),
		HCASE(test_ms_round_trip),  HCASE(test_double_text), HCASE(test_status_names),
		HCASE(test_copy_escape),    HCASE(test_copy_row),    HCASE(test_buf_grows),
		HCASE(test_decision_check),
	};
	return harness_main("store_convert", cases, HARNESS_N(cases));
}
