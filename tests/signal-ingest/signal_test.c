/* Signal validation: types and aliases, every field's bad cases, each
 * refusal naming its field. */
#include <string.h>

#include "../harness/harness.h"
#include "../../services/signal-ingest/ingest.h"
#include "../../services/signal-ingest/signal.h"
#include "v2g/signal_type.h"
#include "v2g/timeutil.h"

static const struct ingest_limits lim = { 1000, 1440, 15 };

static int parse(const char *json, struct ingest_signal *s, char *err)
{
	return ingest_signal_parse(json, strlen(json), &lim, 1234, s, err, 256);
}

/* The refusal's text starts with "field:". */
static void refused(const char *json, const char *field)
{
	struct ingest_signal s;
	char err[256] = "";
	int rc = parse(json, &s, err);
	CHECK(rc != 0);
	if (strncmp(err, field, strlen(field)) || err[strlen(field)] != ':')
		harness_fail(__FILE__, __LINE__, "%s -> \"%s\", expected field %s", json, err,
		             field);
}

static void test_valid_full(void)
{
	struct ingest_signal s;
	char err[256];
	CHECK_INT(parse("{\"type\":\"FCR\",\"power_kw\":50,\"duration_min\":15,"
	                "\"timestamp\":\"2026-11-21T10:00:00Z\",\"market_price\":0.12}",
	                &s, err),
	          0);
	CHECK_INT(s.type, 0);
	CHECK_NEAR(s.power_kw, 50, 0);
	CHECK_INT(s.duration_min, 15);
	int64_t ts;
	v2g_time_parse("2026-11-21T10:00:00Z", &ts);
	CHECK_INT(s.timestamp_ms, ts);
	CHECK_INT(s.has_market_price, 1);
	CHECK_NEAR(s.market_price, 0.12, 1e-12);
}

static void test_defaults(void)
{
	struct ingest_signal s;
	char err[256];
	CHECK_INT(parse("{\"type\":\"AFRR\",\"power_kw\":1.5}", &s, err), 0);
	CHECK_INT(s.type, 1);
	CHECK_INT(s.duration_min, 15);
	CHECK_INT(s.timestamp_ms, 1234);
	CHECK_INT(s.has_market_price, 0);
}

static void test_aliases_and_indexes(void)
{
	CHECK_INT(v2g_signal_type_parse("PRIMARY_RESERVE", 0), 0);
	CHECK_INT(v2g_signal_type_parse("secondary_reserve", 0), 1);
	CHECK_INT(v2g_signal_type_parse("Load_Shedding", 0), 2);
	CHECK_INT(v2g_signal_type_parse("FFR", 0), -1);
	struct ingest_signal s;
	char err[256];
	CHECK_INT(parse("{\"type\":2,\"power_kw\":5}", &s, err), 0);
	CHECK_INT(s.type, 2);
	CHECK_INT(parse("{\"type\":\"PRIMARY_RESERVE\",\"power_kw\":5}", &s, err), 0);
	CHECK_INT(s.type, 0);
}

static void test_bad_body(void)
{
	refused("", "body");
	refused("not json", "body");
	refused("[1,2]", "body");
	refused("\"FCR\"", "body");
	refused("{\"type\":\"FCR\",\"power_kw\":5", "body");
	refused("{\"type\":\"FCR\",\"type\":\"AFRR\",\"power_kw\":5}", "body");
}

static void test_bad_fields(void)
{
	refused("{\"power_kw\":5}", "type");
	refused("{\"type\":\"FFR\",\"power_kw\":5}", "type");
	refused("{\"type\":3,\"power_kw\":5}", "type");
	refused("{\"type\":null,\"power_kw\":5}", "type");
	refused("{\"type\":\"FCR\"}", "power_kw");
	refused("{\"type\":\"FCR\",\"power_kw\":0}", "power_kw");
	refused("{\"type\":\"FCR\",\"power_kw\":-5}", "power_kw");
	refused("{\"type\":\"FCR\",\"power_kw\":\"50\"}", "power_kw");
	refused("{\"type\":\"FCR\",\"power_kw\":5000}", "power_kw");
	refused("{\"type\":\"FCR\",\"power_kw\":5,\"duration_min\":-1}", "duration_min");
	refused("{\"type\":\"FCR\",\"power_kw\":5,\"duration_min\":0}", "duration_min");
	refused("{\"type\":\"FCR\",\"power_kw\":5,\"duration_min\":1.5}", "duration_min");
	refused("{\"type\":\"FCR\",\"power_kw\":5,\"duration_min\":\"15\"}", "duration_min");
	refused("{\"type\":\"FCR\",\"power_kw\":5,\"duration_min\":100000}", "duration_min");
	refused("{\"type\":\"FCR\",\"power_kw\":5,\"timestamp\":\"yesterday\"}", "timestamp");
	refused("{\"type\":\"FCR\",\"power_kw\":5,\"timestamp\":12}", "timestamp");
	refused("{\"type\":\"FCR\",\"power_kw\":5,\"market_price\":\"cheap\"}", "market_price");
}

static void test_generator_scenarios(void)
{
	static const char *const names[] = { "steady", "peak", "volatile", "ramp" };
	unsigned seed = 1;
	char json[256];
	CHECK(!rtegen_scenario_valid("chaos"));
	for (size_t i = 0; i < 4; i++) {
		CHECK(rtegen_scenario_valid(names[i]));
		for (unsigned seq = 0; seq < 30; seq++) {
			struct ingest_signal s;
			char err[256] = "";
			int pace = rtegen_next(names[i], seq, &seed, 1.0, json, sizeof(json));
			CHECK(pace > 0);
			/* every generated signal passes validation */
			if (parse(json, &s, err))
				harness_fail(__FILE__, __LINE__, "%s: %s -> %s", names[i], json,
				             err);
		}
	}
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_valid_full), HCASE(test_defaults),   HCASE(test_aliases_and_indexes),
		HCASE(test_bad_body),   HCASE(test_bad_fields), HCASE(test_generator_scenarios),
	};
	return harness_main("signal-ingest", cases, HARNESS_N(cases));
}
