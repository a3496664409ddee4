/* RFC 3339 parsing and formatting, clocks, UUIDs. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness/harness.h"
#include "v2g/err.h"
#include "v2g/timeutil.h"

/* 2026-11-21T11:32:24Z */
#define T0 1795260744000LL

static int64_t parse_ok(const char *s)
{
	int64_t ms = -12345;
	int rc = v2g_time_parse(s, &ms);
	if (rc != 0)
		harness_fail(__FILE__, __LINE__, "v2g_time_parse(\"%s\") == %d, expected 0", s, rc);
	return ms;
}

static void test_parse_utc(void)
{
	CHECK_INT(parse_ok("2026-11-21T11:32:24Z"), T0);
	CHECK_INT(parse_ok("2026-11-21t11:32:24z"), T0);
	CHECK_INT(parse_ok("2026-11-21 11:32:24Z"), T0); /* RFC 3339 allows a space */
	CHECK_INT(parse_ok("1970-01-01T00:00:00Z"), 0);
	CHECK_INT(parse_ok("2000-02-29T00:00:00Z"), 951782400000LL); /* leap year */
	CHECK_INT(parse_ok("2026-12-31T23:59:59Z"), 1798761599000LL);
}

static void test_parse_fraction(void)
{
	CHECK_INT(parse_ok("2026-11-21T11:32:24.1Z"), T0 + 100);
	CHECK_INT(parse_ok("2026-11-21T11:32:24.12Z"), T0 + 120);
	CHECK_INT(parse_ok("2026-11-21T11:32:24.123Z"), T0 + 123);
	CHECK_INT(parse_ok("2026-11-21T11:32:24.123456Z"), T0 + 123); /* truncated to ms */
	CHECK_INT(parse_ok("2026-11-21T11:32:24.999999999Z"), T0 + 999);
	CHECK_INT(parse_ok("2026-11-21T11:32:24.000Z"), T0);
}

static void test_parse_offsets(void)
{
	CHECK_INT(parse_ok("2026-11-21T12:32:24+01:00"), T0);
	CHECK_INT(parse_ok("2026-11-21T06:02:24-05:30"), T0);
	CHECK_INT(parse_ok("2026-11-21T11:32:24+00:00"), T0);
	CHECK_INT(parse_ok("2026-11-21T11:32:24-00:00"), T0);
	CHECK_INT(parse_ok("2026-11-21T12:32:24.250+01:00"), T0 + 250);
	/* an offset that crosses midnight and the year */
	CHECK_INT(parse_ok("2027-01-01T00:30:00+01:00"), 1798759800000LL);
}

static void test_parse_bad(void)
{
	static const char *const bad[] = {
		"",
		"2026-11-21T11:32:24",  /* no zone */
		"2026-11-21",           /* no time */
		"2026-02-30T00:00:00Z", /* no 30 February */
		"2026-02-29T00:00:00Z", /* 2026 is not a leap year */
		"2026-04-31T00:00:00Z",
		"2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",
		"2026-11-00T00:00:00Z",
		"2026-11-21T25:00:00Z",
		"2026-11-21T24:00:00Z",
		"2026-11-21T11:60:00Z",
		"2026-11-21T11:32:61Z",
		"2026-11-21T11:32:24Zjunk", /* trailing junk */
		"2026-11-21T11:32:24Z ",
		"2026-11-21T11:32:24+01:00x",
		"2026-11-21T11:32:24+0100", /* RFC 3339 wants the colon */
		"2026-11-21T11:32:24+24:00",
		"2026-11-21T11:32:24+01:60",
		"2026-11-21T11:32:24+01",
		"2026-11-21T11:32:24.Z", /* empty fraction */
		"2026-11-21X11:32:24Z",
		"26-11-21T11:32:24Z",
		"2026-1-21T11:32:24Z",
		"2026-11-21T1:32:24Z",
		"2026/11/21T11:32:24Z",
		" 2026-11-21T11:32:24Z",
		"2026-11-21T11:32:24UTC",
		"1795779144000",
		"2026-02-30T23:59:60Z", /* a leap second does not excuse the date */
	};
	for (size_t i = 0; i < HARNESS_N(bad); i++) {
		int64_t ms = 777;
		int rc = v2g_time_parse(bad[i], &ms);
		if (rc != V2G_ERR_INVAL)
			harness_fail(__FILE__, __LINE__, "\"%s\" parsed (rc %d, ms %lld)", bad[i],
			             rc, (long long)ms);
		CHECK_INT(ms, 777); /* untouched on error */
	}
	int64_t ms = 777;
	CHECK_INT(v2g_time_parse(NULL, &ms), V2G_ERR_INVAL);
	CHECK_INT(ms, 777);
}

static void test_parse_leap_second(void)
{
	/* 23:59:60 is a valid RFC 3339 time; it reads as the next second. */
	CHECK_INT(parse_ok("2016-12-31T23:59:60Z"), 1483228800000LL);
}

static void test_format(void)
{
	char buf[32];
	v2g_time_format(T0, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-21T11:32:24.000Z");
	v2g_time_format(T0 + 7, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-21T11:32:24.007Z");
	v2g_time_format(0, buf, sizeof(buf));
	CHECK_STR(buf, "1970-01-01T00:00:00.000Z");
}

static void test_format_negative(void)
{
	char buf[32];
	v2g_time_format(-1, buf, sizeof(buf));
	CHECK_STR(buf, "1969-12-31T23:59:59.999Z");
	v2g_time_format(-500, buf, sizeof(buf));
	CHECK_STR(buf, "1969-12-31T23:59:59.500Z");
	v2g_time_format(-1000, buf, sizeof(buf));
	CHECK_STR(buf, "1969-12-31T23:59:59.000Z");
	v2g_time_format(-1001, buf, sizeof(buf));
	CHECK_STR(buf, "1969-12-31T23:59:58.999Z");
	CHECK_INT(parse_ok("1969-12-31T23:59:59.500Z"), -500);
}

static void test_format_parse_round_trip(void)
{
	static const int64_t v[] = { 0,
		                     1,
		                     999,
		                     1000,
		                     T0,
		                     T0 + 123,
		                     -1,
		                     -999,
		                     -86400001LL,
		                     951782400000LL,
		                     253402300799999LL /* 9999-12-31 */ };
	char buf[32];
	for (size_t i = 0; i < HARNESS_N(v); i++) {
		v2g_time_format(v[i], buf, sizeof(buf));
		CHECK_INT(strlen(buf), 24);
		CHECK_INT(parse_ok(buf), v[i]);
	}
	/* every ms of a few seconds around the epoch */
	for (int64_t ms = -2500; ms <= 2500; ms += 7) {
		v2g_time_format(ms, buf, sizeof(buf));
		CHECK_INT(parse_ok(buf), ms);
	}
}

static void test_format_extremes(void)
{
	/* any int64 (e.g. a garbage ts_ms off the bus) formats without
	 * overflow into a terminated string */
	char buf[40];
	v2g_time_format(INT64_MIN, buf, sizeof(buf));
	CHECK(strlen(buf) < sizeof(buf));
	CHECK(strchr(buf, 'Z') != NULL);
	CHECK(strstr(buf, ".192Z") != NULL); /* INT64_MIN ends in ...808 ms: 1000 - 808 */
	v2g_time_format(INT64_MAX, buf, sizeof(buf));
	CHECK(strlen(buf) < sizeof(buf));
	CHECK(strstr(buf, ".807Z") != NULL);
	v2g_time_format(INT64_MIN + 999, buf, sizeof(buf));
	CHECK(strstr(buf, ".191Z") != NULL);
}

static void test_format_short_buffer(void)
{
	char buf[11];
	memset(buf, 'x', sizeof(buf));
	v2g_time_format(T0, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-21");
}

static void test_clocks(void)
{
	int64_t now = v2g_now_ms();
	int64_t sys = (int64_t)time(NULL) * 1000;
	CHECK(now >= sys - 2000 && now <= sys + 2000);
	int64_t m1 = v2g_mono_ms();
	double s1 = v2g_mono_s();
	struct timespec d = { 0, 20 * 1000000L };
	nanosleep(&d, NULL);
	int64_t m2 = v2g_mono_ms();
	double s2 = v2g_mono_s();
	CHECK(m2 - m1 >= 20 && m2 - m1 < 1000);
	CHECK(s2 - s1 >= 0.020 && s2 - s1 < 1.0);
	CHECK_NEAR(s1 * 1000, (double)m1, 5);
}

static int cmp_uuid(const void *a, const void *b)
{
	return memcmp(a, b, 37);
}

static void test_uuid_format(void)
{
	for (int n = 0; n < 200; n++) {
		char u[37];
		memset(u, '!', sizeof(u));
		v2g_uuid(u);
		CHECK_INT(strlen(u), 36);
		for (int i = 0; i < 36; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23)
				CHECK(u[i] == '-');
			else
				CHECK(isxdigit((unsigned char)u[i]) &&
				      !isupper((unsigned char)u[i]));
		}
		CHECK(u[14] == '4');                  /* version 4 */
		CHECK(strchr("89ab", u[19]) != NULL); /* RFC 4122 variant */
	}
}

static void test_uuid_unique(void)
{
	enum { N = 20000 };
	char(*u)[37] = malloc(sizeof(*u) * N);
	for (int i = 0; i < N; i++)
		v2g_uuid(u[i]);
	qsort(u, N, sizeof(*u), cmp_uuid);
	int dups = 0;
	for (int i = 1; i < N; i++)
		dups += memcmp(u[i - 1], u[i], 37) == 0;
	CHECK_INT(dups, 0);
	free(u);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_parse_utc),
		HCASE(test_parse_fraction),
		HCASE(test_parse_offsets),
		HCASE(test_parse_bad),
		HCASE(test_parse_leap_second),
		HCASE(test_format),
		HCASE(test_format_negative),
		HCASE(test_format_parse_round_trip),
		HCASE(test_format_extremes),
		HCASE(test_format_short_buffer),
		HCASE(test_clocks),
		HCASE(test_uuid_format),
		HCASE(test_uuid_unique),
	};
	return harness_main("timeutil", cases, HARNESS_N(cases));
}
