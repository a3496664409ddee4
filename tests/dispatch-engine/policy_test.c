/* The dispatch policy from configuration: names, LP-first, weights, the
 * segments of a real libconfig file, and every refusal naming its key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/harness.h"
#include "../../services/dispatch-engine/policy.h"

static struct disp_policy_settings settings(void)
{
	struct disp_policy_settings s;
	memset(&s, 0, sizeof(s));
	s.strategy = "priority";
	s.lp_first = "";
	s.fallback = "noop";
	s.prediction = "learning";
	s.smart_max_rounds = 5;
	for (int t = 0; t < 3; t++)
		for (int i = 0; i < 7; i++)
			s.weights[t][i] = -1;
	double tuner[6] = { 0.05, 0.05, 0.8, 0.95, 0, 1 };
	memcpy(s.tuner, tuner, sizeof(tuner));
	return s;
}

/* Writes text to a temporary file; returns its path (static buffer). */
static const char *file_with(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/v2g-policy-test-%d.cfg", (int)getpid());
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static int build(const struct disp_policy_settings *s, const char *file, struct disp_policy *p,
                 char *err)
{
	return disp_policy_build(s, file, p, err, 256);
}

static void refused(struct disp_policy_settings s, const char *file, const char *key)
{
	struct disp_policy p;
	char err[256] = "";
	CHECK(build(&s, file, &p, err) != 0);
	if (strncmp(err, key, strlen(key)))
		harness_fail(__FILE__, __LINE__, "refusal \"%s\" does not start with %s", err, key);
}

static void test_defaults(void)
{
	struct disp_policy_settings s = settings();
	struct disp_policy p;
	char err[256];
	CHECK_INT(build(&s, NULL, &p, err), 0);
	for (int t = 0; t < 3; t++) {
		CHECK_INT(p.params[t].strategy, DISP_PRIORITY);
		CHECK_INT(p.params[t].lp_fallback, 0);
		struct disp_weights d = disp_default_weights(t);
		CHECK_NEAR(p.params[t].weights.availability, d.availability, 0);
	}
	CHECK_INT(p.nsegments, 0);
	CHECK_INT(p.fallback, DISP_FB_NOOP);
}

static void test_lp_first_names_and_indexes(void)
{
	struct disp_policy_settings s = settings();
	struct disp_policy p;
	char err[256];
	s.strategy = "smart";
	s.lp_first = "primary_reserve, 2";
	CHECK_INT(build(&s, NULL, &p, err), 0);
	CHECK_INT(p.params[0].strategy, DISP_LP);
	CHECK_INT(p.params[0].lp_fallback, 1);
	CHECK_INT(p.params[1].strategy, DISP_SMART);
	CHECK_INT(p.params[2].strategy, DISP_LP);
}

static void test_weights_override_one(void)
{
	struct disp_policy_settings s = settings();
	struct disp_policy p;
	char err[256];
	s.weights[1][3] = 0.7; /* afrr price */
	CHECK_INT(build(&s, NULL, &p, err), 0);
	CHECK_NEAR(p.params[1].weights.price, 0.7, 0);
	CHECK_NEAR(p.params[1].weights.soc, disp_default_weights(1).soc, 0);
	CHECK_NEAR(p.params[0].weights.price, disp_default_weights(0).price, 0);
}

static void test_segments_from_file(void)
{
	struct disp_policy_settings s = settings();
	struct disp_policy p;
	char err[256] = "";
	const char *f = file_with(
	        "dispatch = { segments = {\n"
	        "  commuter = { dispatcher_type = \"heuristic\"; weights = { soc = 0.6; time = "
	        "0.3; priority = 0.1; }; };\n"
	        "  captive_fleet = { dispatcher_type = \"lp\"; fallback = true;\n"
	        "                    weights = { soc = 0.4; time = 0.2; availability = 0.4; }; };\n"
	        "}; };\n");
	CHECK_INT(build(&s, f, &p, err), 0);
	CHECK_INT(p.nsegments, 2);
	CHECK_STR(p.segments[0].name, "commuter");
	CHECK_INT(p.segments[0].params.strategy, DISP_SMART);
	CHECK_NEAR(p.segments[0].params.weights.soc, 0.6, 1e-12);
	CHECK_NEAR(p.segments[0].params.weights.availability, 0, 0); /* unlisted: 0 */
	CHECK_STR(p.segments[1].name, "captive_fleet");
	CHECK_INT(p.segments[1].params.strategy, DISP_LP);
	CHECK_INT(p.segments[1].params.lp_fallback, 1);
	CHECK_NEAR(p.segments[1].params.weights.availability, 0.4, 1e-12);
	unlink(f);
}

static void test_site_limits_from_file(void)
{
	struct disp_policy_settings s = settings();
	struct disp_policy p;
	char err[256] = "";
	const char *f =
	        file_with("dispatch = { site_limits = (\n"
	                  "  { site = \"paris-01\"; limit_kw = 40.0; parent = \"paris\"; },\n"
	                  "  { site = \"paris\"; limit_kw = 100; } ); };\n");
	CHECK_INT(build(&s, f, &p, err), 0);
	CHECK_INT(p.nsites, 2);
	CHECK_STR(p.sites[0].site, "paris-01");
	CHECK_STR(p.sites[0].parent, "paris");
	CHECK_NEAR(p.sites[0].limit_kw, 40, 0);
	CHECK_NEAR(p.sites[1].limit_kw, 100, 0);
	disp_policy_free(&p);
	f = file_with("dispatch = { site_limits = ( { site = \"a\"; parent = \"b\"; } ); };\n");
	refused(s, f, "dispatch.site_limits[0].parent");
	f = file_with("dispatch = { site_limits = ( { site = \"a\"; parent = \"b\"; },"
	              " { site = \"b\"; parent = \"a\"; } ); };\n");
	refused(s, f, "dispatch.site_limits");
	f = file_with("dispatch = { site_limits = ( { site = \"a\"; limit_kw = -3.0; } ); };\n");
	refused(s, f, "dispatch.site_limits[0].limit_kw");
	f = file_with("dispatch = { site_limits = ( { site = \"a\"; }, { site = \"a\"; } ); };\n");
	refused(s, f, "dispatch.site_limits[1].site");
	f = file_with("dispatch = { site_limits = ( { limit_kw = 3.0; } ); };\n");
	refused(s, f, "dispatch.site_limits[0].site");
	unlink(f);
}

static void test_refusals(void)
{
	struct disp_policy_settings s = settings();
	s.strategy = "random";
	refused(s, NULL, "dispatch.strategy");
	s = settings();
	s.lp_first = "FCR,NEBEF";
	refused(s, NULL, "dispatch.lp_first");
	s = settings();
	s.fallback = "greedy";
	refused(s, NULL, "dispatch.fallback");
	s = settings();
	s.prediction = "oracle";
	refused(s, NULL, "dispatch.prediction");
	s = settings();
	s.tuner_enabled = 1;
	s.tuner[2] = 0.99; /* low above high */
	refused(s, NULL, "dispatch.tuner");
	s = settings();
	const char *f = file_with(
	        "dispatch = { segments = { taxi = { dispatcher_type = \"ga\"; }; }; };\n");
	refused(s, f, "dispatch.segments.taxi.dispatcher_type");
	f = file_with("dispatch = { segments = { taxi = { weights = { speed = 1.0; }; }; }; };\n");
	refused(s, f, "dispatch.segments.taxi.weights.speed");
	f = file_with("dispatch = { segments = { taxi = { weights = { soc = -1.0; }; }; }; };\n");
	refused(s, f, "dispatch.segments.taxi.weights.soc");
	f = file_with("dispatch = { segments = { taxi = { fallback = \"yes\"; }; }; };\n");
	refused(s, f, "dispatch.segments.taxi.fallback");
	f = file_with("dispatch = { segments = { taxi = 3; }; };\n");
	refused(s, f, "dispatch.segments.taxi");
	unlink(f);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_defaults),
		HCASE(test_lp_first_names_and_indexes),
		HCASE(test_weights_override_one),
		HCASE(test_segments_from_file),
		HCASE(test_site_limits_from_file),
		HCASE(test_refusals),
	};
	return harness_main("policy", cases, HARNESS_N(cases));
}
