/* Query-string parsing of GET /api/dispatch/logs (times outside the store's
 * range included), id and signal type rules, and the audit queries. */
#include <stdio.h>
#include <string.h>

#include "../../services/api-gateway/query.h"
#include "../harness/harness.h"
#include "v2g/err.h"
#include "v2g/signal_type.h"

static struct api_log_query q;
static char err[160];

static int parse(const char *qs)
{
	err[0] = '\0';
	return api_log_query_parse(qs, &q, err, sizeof(err));
}

/* qs must be refused with an error line starting with want. */
#define CHECK_BAD(qs, want)                                                                       \
	do {                                                                                      \
		CHECK_INT(parse(qs), V2G_ERR_INVAL);                                              \
		if (strncmp(err, (want), strlen(want)) != 0)                                      \
			harness_fail(__FILE__, __LINE__, "\"%s\": error \"%s\", expected \"%s\"", \
			             (qs), err, (want));                                          \
	} while (0)

static void test_defaults(void)
{
	const char *empty[] = { NULL, "", "&", "&&",
		                "start=&end=&limit=&vehicle_id=&signal_type=" };
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		CHECK_INT(parse(empty[i]), 0);
		CHECK_INT(q.has_start, 0);
		CHECK_INT(q.has_end, 0);
		CHECK_STR(q.vehicle_id, "");
		CHECK_INT(q.signal_type, -1);
		CHECK_INT(q.limit, 100);
	}
}

static void test_all_good(void)
{
	CHECK_INT(parse("start=2024-01-02T15:04:05Z&end=2024-01-02T16:00:00Z&vehicle_id=v1"
	                "&signal_type=FCR&limit=5"),
	          0);
	CHECK_INT(q.has_start, 1);
	CHECK_INT(q.start_ms, 1704207845000LL);
	CHECK_INT(q.has_end, 1);
	CHECK_INT(q.end_ms, 1704211200000LL);
	CHECK_STR(q.vehicle_id, "v1");
	CHECK_INT(q.signal_type, 0);
	CHECK_INT(q.limit, 5);
}

static void test_times(void)
{
	/* '+' stays a '+' (offsets need it); %2B too. */
	CHECK_INT(parse("start=2024-01-02T16:04:05+01:00"), 0);
	CHECK_INT(q.start_ms, 1704207845000LL);
	CHECK_INT(parse("start=2024-01-02T16:04:05%2B01:00"), 0);
	CHECK_INT(q.start_ms, 1704207845000LL);
	CHECK_INT(parse("end=2024-01-02T15%3A04%3A05.250Z"), 0);
	CHECK_INT(q.end_ms, 1704207845250LL);
	CHECK_INT(q.has_start, 0);
	/* start == end is a valid, instantaneous window */
	CHECK_INT(parse("start=2024-01-02T15:04:05Z&end=2024-01-02T15:04:05Z"), 0);

	CHECK_BAD("start=yesterday", "start: must be an RFC 3339 time");
	CHECK_BAD("start=2024-01-02", "start: must be an RFC 3339 time");
	CHECK_BAD("start=2024-02-30T00:00:00Z", "start: must be an RFC 3339 time");
	CHECK_BAD("end=2024-01-02T15:04:05", "end: must be an RFC 3339 time");
	CHECK_BAD("end=1704207845", "end: must be an RFC 3339 time");
	CHECK_BAD("start=2024-01-02T15:04:05Z%20", "start: must be an RFC 3339 time");
	/* far too long to be a time */
	char longv[300] = "start=";
	memset(longv + 6, '9', 250);
	longv[256] = '\0';
	CHECK_BAD(longv, "start: must be an RFC 3339 time");
}

static void test_time_order(void)
{
	CHECK_BAD("start=2024-01-02T16:00:00Z&end=2024-01-02T15:00:00Z",
	          "end: must not be before start");
	/* the same instant written in two zones is in order */
	CHECK_INT(parse("start=2024-01-02T16:00:00%2B01:00&end=2024-01-02T15:00:00Z"), 0);
	/* only one bound: no order to check */
	CHECK_INT(parse("start=2030-01-01T00:00:00Z"), 0);
}

/* The store holds 1970-01-01 .. 9999-12-31 and reads a LogQuery bound of 0
 * as "none": an end at 1970-01-01T00:00:00Z must not become "no end" (every
 * log), a start before 1970 or an end after 9999 no refusal. */
static void test_times_out_of_range(void)
{
	static const char *const nothing[] = {
		"end=1970-01-01T00:00:00Z",
		"end=1970-01-01T01:00:00%2B01:00", /* the epoch too */
		"end=1969-12-31T23:59:59.999Z",
		"start=1900-01-01T00:00:00Z&end=1950-06-30T00:00:00Z",
		"start=1970-01-01T00:00:00Z&end=1970-01-01T00:00:00Z",
		"start=9999-12-31T23:30:00-01:00", /* 10000-01-01T00:30Z */
		"end=0000-01-01T00:00:00Z&vehicle_id=v1&signal_type=FCR&limit=5",
	};
	for (size_t i = 0; i < sizeof(nothing) / sizeof(nothing[0]); i++) {
		CHECK_INT(parse(nothing[i]), 0);
		if (!q.none)
			harness_fail(__FILE__, __LINE__, "\"%s\": none not set", nothing[i]);
	}
	/* the other filters are still read (and checked) */
	CHECK_STR(q.vehicle_id, "v1");
	CHECK_INT(q.limit, 5);
	CHECK_BAD("end=1970-01-01T00:00:00Z&limit=0", "limit:");

	/* a start at or before the epoch, an end after 9999: no bound */
	CHECK_INT(parse("start=1900-01-01T00:00:00Z&end=2024-01-02T16:00:00Z"), 0);
	CHECK_INT(q.none, 0);
	CHECK_INT(q.has_start, 0);
	CHECK_INT(q.has_end, 1);
	CHECK_INT(q.end_ms, 1704211200000LL);
	CHECK_INT(parse("start=1970-01-01T00:00:00Z"), 0);
	CHECK_INT(q.none + q.has_start + q.has_end, 0);
	CHECK_INT(parse("start=2024-01-02T15:04:05Z&end=9999-12-31T23:59:59-01:00"), 0);
	CHECK_INT(q.none, 0);
	CHECK_INT(q.has_start, 1);
	CHECK_INT(q.start_ms, 1704207845000LL);
	CHECK_INT(q.has_end, 0);
	CHECK_INT(parse("start=0000-01-01T00:00:00Z&end=9999-12-31T23:59:59-23:59"), 0);
	CHECK_INT(q.none + q.has_start + q.has_end, 0);
	/* the first and last milliseconds the store holds are bounds */
	CHECK_INT(parse("start=1970-01-01T00:00:00.001Z&end=9999-12-31T23:59:59.999Z"), 0);
	CHECK_INT(q.none, 0);
	CHECK_INT(q.has_start, 1);
	CHECK_INT(q.start_ms, 1);
	CHECK_INT(q.has_end, 1);
	CHECK_INT(q.end_ms, API_STORE_MS_MAX);
	CHECK_INT(parse("end=1970-01-01T00:00:00.001Z"), 0);
	CHECK_INT(q.none, 0);
	CHECK_INT(q.end_ms, 1);
	/* the order is still checked on what was asked */
	CHECK_BAD("start=1960-01-02T00:00:00Z&end=1960-01-01T00:00:00Z",
	          "end: must not be before start");
}

static void test_signal_type(void)
{
	static const struct {
		const char *v;
		int want;
	} good[] = {
		{ "FCR", 0 },
		{ "fcr", 0 },
		{ "Primary_Reserve", 0 },
		{ "PRIMARY_RESERVE", 0 },
		{ "0", 0 },
		{ "AFRR", 1 },
		{ "afrr", 1 },
		{ "secondary_reserve", 1 },
		{ "1", 1 },
		{ "LOAD_SHEDDING", 2 },
		{ "load_shedding", 2 },
		{ "2", 2 },
	};
	char qs[64];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(qs, sizeof(qs), "signal_type=%s", good[i].v);
		CHECK_INT(parse(qs), 0);
		CHECK_INT(q.signal_type, good[i].want);
	}
	CHECK_BAD("signal_type=3", "signal_type: must be FCR, AFRR or LOAD_SHEDDING");
	CHECK_BAD("signal_type=-1", "signal_type:");
	CHECK_BAD("signal_type=FCRX", "signal_type:");
	CHECK_BAD("signal_type=LOAD%20SHEDDING", "signal_type:");
	CHECK_BAD("signal_type=00", "signal_type:");

	CHECK_INT(v2g_signal_type_parse("aFrR", 1), 1);
	CHECK_INT(v2g_signal_type_parse("2", 1), 2);
	CHECK_INT(v2g_signal_type_parse("2", 0), -1);
	CHECK_INT(v2g_signal_type_parse("", 1), -1);
	CHECK_INT(v2g_signal_type_parse(NULL, 1), -1);
}

static void test_limit(void)
{
	CHECK_INT(parse("limit=1"), 0);
	CHECK_INT(q.limit, 1);
	CHECK_INT(parse("limit=1000"), 0);
	CHECK_INT(q.limit, 1000);
	CHECK_INT(parse("limit=0042"), 0);
	CHECK_INT(q.limit, 42);
	CHECK_BAD("limit=0", "limit: must be an integer between 1 and 1000");
	CHECK_BAD("limit=1001", "limit: must be an integer between 1 and 1000");
	CHECK_BAD("limit=-1", "limit:");
	CHECK_BAD("limit=+5", "limit:");
	CHECK_BAD("limit=5.0", "limit:");
	CHECK_BAD("limit=ten", "limit:");
	CHECK_BAD("limit=99999999999999999999999999", "limit:");
	CHECK_INT(parse("limit=%35%35"), 0);
	CHECK_INT(q.limit, 55);
}

static void test_vehicle_id(void)
{
	char qs[200];

	CHECK_INT(parse("vehicle_id=veh_01.a:b-c"), 0);
	CHECK_STR(q.vehicle_id, "veh_01.a:b-c");
	CHECK_INT(parse("vehicle_id=veh%2D1"), 0);
	CHECK_STR(q.vehicle_id, "veh-1");

	snprintf(qs, sizeof(qs), "vehicle_id=%064d", 7);
	CHECK_INT(parse(qs), 0);
	CHECK_INT(strlen(q.vehicle_id), 64);
	snprintf(qs, sizeof(qs), "vehicle_id=%065d", 7);
	CHECK_BAD(qs, "vehicle_id: must be 1 to 64 characters");
	CHECK_BAD("vehicle_id=a%20b", "vehicle_id:");
	CHECK_BAD("vehicle_id=a/b", "vehicle_id:");
	CHECK_BAD("vehicle_id=%C3%A9", "vehicle_id:");
	CHECK_BAD("vehicle_id='%3B--", "vehicle_id:");
}

static void test_percent_encoding(void)
{
	CHECK_BAD("vehicle_id=%zz", "vehicle_id: bad percent-encoding");
	CHECK_BAD("vehicle_id=abc%", "vehicle_id: bad percent-encoding");
	CHECK_BAD("vehicle_id=abc%4", "vehicle_id: bad percent-encoding");
	CHECK_BAD("start=%00", "start: bad percent-encoding");
	CHECK_BAD("limit=1%002", "limit: bad percent-encoding");
	/* An encoded name is still the name. */
	CHECK_INT(parse("li%6Dit=7"), 0);
	CHECK_INT(q.limit, 7);
	/* A name that does not decode is not one of ours: ignored. */
	CHECK_INT(parse("%zz=1&limit=3"), 0);
	CHECK_INT(q.limit, 3);
}

static void test_unknown_and_repeated(void)
{
	CHECK_INT(parse("foo=bar&limit=9&x&=5&fleet_id=%zz"), 0);
	CHECK_INT(q.limit, 9);
	/* the last occurrence counts */
	CHECK_INT(parse("limit=5000&limit=10"), 0);
	CHECK_INT(q.limit, 10);
	CHECK_BAD("limit=10&limit=5000", "limit:");
	/* names are exact: no prefix or case games */
	CHECK_INT(parse("LIMIT=0&limits=0&limit_=0"), 0);
	CHECK_INT(q.limit, 100);
	/* a name with no '=' is an empty value: absent */
	CHECK_INT(parse("limit"), 0);
	CHECK_INT(q.limit, 100);
}

static void test_id_rule(void)
{
	char id[80];

	CHECK(api_id_valid("a"));
	CHECK(api_id_valid("0f8fad5b-d9cb-469f-a165-70867728950e"));
	CHECK(api_id_valid("A.b_c:d-9"));
	memset(id, 'x', 64);
	id[64] = '\0';
	CHECK(api_id_valid(id));
	id[64] = 'x';
	id[65] = '\0';
	CHECK(!api_id_valid(id));
	CHECK(!api_id_valid(""));
	CHECK(!api_id_valid(NULL));
	CHECK(!api_id_valid("a b"));
	CHECK(!api_id_valid("a/b"));
	CHECK(!api_id_valid("a%20b"));
	CHECK(!api_id_valid("\xc3\xa9"));
	CHECK(!api_id_valid("a\tb"));
	CHECK(!api_id_valid("..%2f"));
}

/* --- GET /api/audit/logs and /api/audit/stats ------------------------- */

static struct api_audit_query aq;

static int aparse(const char *qs)
{
	err[0] = '\0';
	return api_audit_query_parse(qs, &aq, err, sizeof(err));
}

#define CHECK_ABAD(qs, want)                                                                      \
	do {                                                                                      \
		CHECK_INT(aparse(qs), V2G_ERR_INVAL);                                             \
		if (strncmp(err, (want), strlen(want)) != 0)                                      \
			harness_fail(__FILE__, __LINE__, "\"%s\": error \"%s\", expected \"%s\"", \
			             (qs), err, (want));                                          \
	} while (0)

/* 2025-01-01T00:00:00Z, and one day */
#define JAN1 1735689600000LL
#define DAY  86400000LL

static void test_audit_defaults(void)
{
	CHECK_INT(aparse(NULL), 0);
	CHECK_STR(aq.category, "");
	CHECK_INT(aq.has_start, 0);
	CHECK_INT(aq.has_end, 0);
	CHECK_INT(aq.limit, 100);
	CHECK_INT(aparse("category=&startDate=&endDate=&limit=&start=&end="), 0);
	CHECK_INT(aq.has_start + aq.has_end, 0);
	CHECK_INT(aq.limit, 100);
}

static void test_audit_guide_example(void)
{
	/* the guide's: ?category=station_control&limit=50 */
	CHECK_INT(aparse("category=station_control&limit=50"), 0);
	CHECK_STR(aq.category, "station_control");
	CHECK_INT(aq.limit, 50);
	for (const char *const *c = (const char *const[]){ "config_change", "station_control",
	                                                   "auth", "load_management", NULL };
	     *c; c++) {
		char qs[64];
		snprintf(qs, sizeof(qs), "category=%s", *c);
		CHECK_INT(aparse(qs), 0);
		CHECK_STR(aq.category, *c);
	}
	CHECK_ABAD("category=AUTH", "category: must be config_change, station_control, auth or");
	CHECK_ABAD("category=login", "category:");
	CHECK_ABAD("category=auth%00", "category: bad percent-encoding");
}

static void test_audit_dates(void)
{
	/* a date: its start; as the end, the next day's start (inclusive day) */
	CHECK_INT(aparse("startDate=2025-01-01&endDate=2025-01-31"), 0);
	CHECK_INT(aq.has_start, 1);
	CHECK_INT(aq.start_ms, JAN1);
	CHECK_INT(aq.has_end, 1);
	CHECK_INT(aq.end_ms, JAN1 + 31 * DAY);
	/* one day */
	CHECK_INT(aparse("startDate=2025-01-01&endDate=2025-01-01"), 0);
	CHECK_INT(aq.end_ms - aq.start_ms, DAY);
	/* RFC 3339 times as they are, '+' kept */
	CHECK_INT(aparse("startDate=2025-01-01T01:00:00%2B01:00&endDate=2025-01-01T12:00:00Z"), 0);
	CHECK_INT(aq.start_ms, JAN1);
	CHECK_INT(aq.end_ms, JAN1 + DAY / 2);
	/* start and end as aliases (GET /api/dispatch/logs's names) */
	CHECK_INT(aparse("start=2025-01-02&end=2025-01-02T06:00:00Z"), 0);
	CHECK_INT(aq.start_ms, JAN1 + DAY);
	CHECK_INT(aq.end_ms, JAN1 + DAY + DAY / 4);
	/* mixed */
	CHECK_INT(aparse("start=2025-01-01&endDate=2025-01-01"), 0);
	CHECK_INT(aq.end_ms, JAN1 + DAY);

	CHECK_ABAD("startDate=yesterday", "startDate: must be a date (YYYY-MM-DD) or an RFC 3339");
	CHECK_ABAD("endDate=2025-02-30", "endDate: must be a date");
	CHECK_ABAD("start=2025-1-1", "start: must be a date");
	CHECK_ABAD("end=2025-01-01T00:00:00", "end: must be a date");
	CHECK_ABAD("startDate=2025-01-01&start=2025-01-01", "startDate: give startDate or start, "
	                                                    "not both");
	CHECK_ABAD("end=2025-01-01&endDate=2025-01-02", "endDate: give endDate or end, not both");
	CHECK_ABAD("startDate=2025-01-02&endDate=2025-01-01", "endDate: must come after the start");
	CHECK_ABAD("start=2025-01-02T00:00:01Z&end=2025-01-02T00:00:00Z", "end: must come after");
	CHECK_ABAD("start=2025-01-02T00:00:00Z&end=2025-01-02T00:00:00Z", "end: must come after");
}

/* The store holds 1970-01-01 .. 9999-12-31 and reads an AuditQuery bound of
 * 0 as "none": an end at 1970-01-01T00:00:00Z must not become "no end", a
 * start before 1970 or an end after 9999 no refusal. */
static void test_audit_dates_out_of_range(void)
{
	CHECK_INT(aparse("endDate=1969-12-31"), 0); /* ends at 0 ms */
	CHECK_INT(aq.none, 1);
	CHECK_INT(aparse("end=1970-01-01T00:00:00Z"), 0);
	CHECK_INT(aq.none, 1);
	CHECK_INT(aparse("startDate=1900-01-01&endDate=1950-06-30"), 0);
	CHECK_INT(aq.none, 1);
	CHECK_INT(aparse("start=9999-12-31T23:30:00-01:00"), 0); /* 10000-01-01T00:30Z */
	CHECK_INT(aq.none, 1);
	/* a start before 1970 or an end after 9999: no bound */
	CHECK_INT(aparse("startDate=1900-01-01&endDate=2025-01-01"), 0);
	CHECK_INT(aq.none, 0);
	CHECK_INT(aq.has_start, 0);
	CHECK_INT(aq.has_end, 1);
	CHECK_INT(aq.end_ms, JAN1 + DAY);
	CHECK_INT(aparse("startDate=2025-01-01&endDate=9999-12-31"), 0);
	CHECK_INT(aq.none, 0);
	CHECK_INT(aq.has_start, 1);
	CHECK_INT(aq.start_ms, JAN1);
	CHECK_INT(aq.has_end, 0);
	CHECK_INT(aparse("startDate=0000-01-01&endDate=9999-12-31"), 0);
	CHECK_INT(aq.none + aq.has_start + aq.has_end, 0);
	/* the last millisecond the store holds is a bound */
	CHECK_INT(aparse("end=9999-12-31T23:59:59.999Z"), 0);
	CHECK_INT(aq.has_end, 1);
	CHECK_INT(aq.end_ms, API_STORE_MS_MAX);
	CHECK_INT(aparse("endDate=1970-01-01"), 0);
	CHECK_INT(aq.none, 0);
	CHECK_INT(aq.end_ms, DAY);
	/* the order is still checked on what was asked */
	CHECK_ABAD("startDate=1960-01-02&endDate=1960-01-01", "endDate: must come after");
}

static void test_audit_limit(void)
{
	CHECK_INT(aparse("limit=1000"), 0);
	CHECK_INT(aq.limit, 1000);
	CHECK_INT(aparse("limit=1"), 0);
	CHECK_INT(aq.limit, 1);
	CHECK_ABAD("limit=0", "limit: must be an integer between 1 and 1000");
	CHECK_ABAD("limit=1001", "limit:");
	CHECK_ABAD("limit=-5", "limit:");
	CHECK_ABAD("limit=1e3", "limit:");
}

static void test_audit_stats_days(void)
{
	unsigned days = 0;

	CHECK_INT(api_audit_stats_parse(NULL, &days, err, sizeof(err)), 0);
	CHECK_INT(days, 7);
	CHECK_INT(api_audit_stats_parse("days=", &days, err, sizeof(err)), 0);
	CHECK_INT(days, 7);
	CHECK_INT(api_audit_stats_parse("days=1", &days, err, sizeof(err)), 0);
	CHECK_INT(days, 1);
	CHECK_INT(api_audit_stats_parse("x=1&days=366", &days, err, sizeof(err)), 0);
	CHECK_INT(days, 366);
	static const char *const bad[] = { "days=0",   "days=367",   "days=-1",
		                           "days=7.5", "days=seven", "days=99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_INT(api_audit_stats_parse(bad[i], &days, err, sizeof(err)), V2G_ERR_INVAL);
		CHECK_STR(err, "days: must be an integer between 1 and 366");
	}
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults),
		HCASE(test_all_good),
		HCASE(test_times),
		HCASE(test_time_order),
		HCASE(test_times_out_of_range),
		HCASE(test_signal_type),
		HCASE(test_limit),
		HCASE(test_vehicle_id),
		HCASE(test_percent_encoding),
		HCASE(test_unknown_and_repeated),
		HCASE(test_audit_defaults),
		HCASE(test_audit_guide_example),
		HCASE(test_audit_dates),
		HCASE(test_audit_dates_out_of_range),
		HCASE(test_audit_limit),
		HCASE(test_audit_stats_days),
		HCASE(test_id_rule),
	};
	return harness_main("api-query", cases, HARNESS_N(cases));
}
