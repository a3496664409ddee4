/* The DLM operations (control.h) over real modules: every op with good and
 * bad bodies (each 400 names its field), the audit events they record, the
 * load management events of the cycle, and the service answering them over
 * the real bus (REP on bus.dlm, audit batches to bus.store_in, SiteCapacity
 * to bus.dispatch_in). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/harness.h"
#include "../../services/site-dlm/control.h"
#include "../../services/site-dlm/service.h"
#include "v2g/bus.h"
#include "v2g/config.h"
#include "v2g/err.h"
#include "v2g/health.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

#define MAX_EV 64

struct fx {
	struct dlm_site *site;
	struct dlm_shed *shed;
	struct dlm_failsafe *fs;
	struct dlm_cap_registry *caps;
	struct dlm_loop *loop;
	struct v2g_breaker_registry *br;
	struct v2g_watchdog_registry *wd;
	struct dlm_ctl_ctx ctx;
	struct v2g_audit_event ev[MAX_EV];
	size_t nev;
	int64_t now;
};

static const struct v2g_audit_actor ACTOR = { "api", "bearer", "127.0.0.1" };

static void collect(void *arg, const struct v2g_audit_event *ev)
{
	struct fx *x = arg;
	CHECK(x->nev < MAX_EV);
	if (x->nev < MAX_EV)
		CHECK_INT(v2g_audit_event_copy(&x->ev[x->nev++], ev), 0);
}

static void clear_events(struct fx *x)
{
	for (size_t i = 0; i < x->nev; i++)
		v2g_audit_event_fini(&x->ev[i]);
	x->nev = 0;
}

static void add(struct fx *x, const char *id, const char *profile)
{
	CHECK_INT(dlm_cap_discover(x->caps, id, "ocpp", profile, NULL, NULL), 0);
	struct dlm_loop_station_cfg sc = { .id = id, .priority = 5, .demand_kw = -1 };
	CHECK_INT(dlm_loop_add_station(x->loop, &sc, 0), 0);
}

static void fx_init(struct fx *x)
{
	memset(x, 0, sizeof(*x));
	x->site = dlm_site_new();
	x->shed = dlm_shed_new(NULL);
	x->fs = dlm_failsafe_new(NULL);
	x->caps = dlm_cap_registry_alloc();
	x->loop = dlm_loop_new(NULL, x->site, x->shed, x->fs, x->caps);
	x->br = v2g_breaker_registry_new();
	x->wd = v2g_watchdog_registry_new();
	CHECK(x->loop && x->br && x->wd);
	struct v2g_breaker *b;
	struct v2g_watchdog *w;
	CHECK_INT(v2g_breaker_registry_get(x->br, "gateway_setpoints", NULL, &b), 0);
	CHECK_INT(v2g_watchdog_create(x->wd, "control_cycle", 5000, NULL, NULL, &w), 0);
	v2g_watchdog_start(w, 0);
	add(x, "ac1", "ac_level2_single");
	add(x, "ac3", "ac_level2_three");
	add(x, "dc1", "dcfc_ccs_medium");
	x->ctx = (struct dlm_ctl_ctx){ .site = "site-t",
		                       .dsite = x->site,
		                       .shed = x->shed,
		                       .fs = x->fs,
		                       .caps = x->caps,
		                       .loop = x->loop,
		                       .breakers = x->br,
		                       .watchdogs = x->wd,
		                       .heartbeat_timeout_ms = 5000,
		                       .max_stations = 5,
		                       .default_priority = 5,
		                       .audit = collect,
		                       .audit_arg = x };
	x->now = 1000;
}

static void fx_fini(struct fx *x)
{
	clear_events(x);
	dlm_loop_free(x->loop);
	dlm_cap_registry_free(x->caps);
	dlm_failsafe_free(x->fs);
	dlm_shed_free(x->shed);
	dlm_site_free(x->site);
	v2g_breaker_registry_free(x->br);
	v2g_watchdog_registry_free(x->wd);
}

static int call(struct fx *x, const char *op, const char *station, const char *body, json_t **out)
{
	json_t *r = NULL;
	int st = dlm_control(&x->ctx, op, station, body, body ? strlen(body) : 0, NULL, &ACTOR,
	                     x->now, &r);
	CHECK(json_is_object(r));
	if (out)
		*out = r;
	else
		json_decref(r);
	return st;
}

/* The op answers 400 and its error starts with "<field>:". */
#define CHECK_400(x, op, station, body, field) check_400(x, op, station, body, field, __LINE__)
static void check_400(struct fx *x, const char *op, const char *station, const char *body,
                      const char *field, int line)
{
	json_t *r;
	int st = call(x, op, station, body, &r);
	const char *e = json_string_value(json_object_get(r, "error"));
	size_t n = strlen(field);
	if (st != 400 || !e || strncmp(e, field, n) != 0 || e[n] != ':')
		harness_fail(__FILE__, line,
		             "%s %s: status %d error \"%s\", expected 400 naming %s", op,
		             body ? body : "(null)", st, e ? e : "(none)", field);
	json_decref(r);
}

static double jnum(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static const struct v2g_audit_event *last_event(struct fx *x)
{
	static const struct v2g_audit_event none;
	CHECK(x->nev > 0);
	return x->nev ? &x->ev[x->nev - 1] : &none;
}

static json_t *details(const struct v2g_audit_event *ev)
{
	return ev && ev->details ? json_loads(ev->details, 0, NULL) : json_object();
}

/* One cycle at x->now after meters from the stations not listed silent and
 * a site meter reading load_kw; then the cycle's audit events. */
static void cycle(struct fx *x, double load_kw, const char *silent)
{
	static const char *const ids[] = { "ac1", "ac3", "dc1" };
	for (int i = 0; i < 3; i++) {
		if (silent && strcmp(silent, ids[i]) == 0)
			continue;
		struct dlm_setpoint sp;
		double kw = dlm_loop_station_setpoint(x->loop, ids[i], &sp) == 0 ? sp.power_kw : 0;
		CHECK_INT(dlm_loop_station_meter(x->loop, ids[i], kw, NULL, NAN, NAN, "charging",
		                                 x->now),
		          0);
	}
	struct dlm_service_meas m = { .power_kw = load_kw,
		                      .current_a = { NAN, NAN, NAN },
		                      .voltage_v = { NAN, NAN, NAN },
		                      .power_factor = NAN,
		                      .frequency_hz = NAN };
	CHECK_INT(dlm_loop_site_meter(x->loop, &m, x->now), 0);
	size_t n;
	CHECK_INT(dlm_loop_cycle(x->loop, x->now, NULL, 0, &n), 0);
	dlm_control_after_cycle(&x->ctx, x->now);
	x->now += 1000;
}

/* ---- read ops ---- */

static void test_read_ops(void)
{
	struct fx x;
	json_t *r;
	fx_init(&x);

	CHECK_INT(call(&x, "status", NULL, NULL, &r), 200);
	CHECK_STR(json_string_value(json_object_get(r, "site")), "site-t");
	CHECK_INT(json_array_size(json_object_get(r, "station_list")), 3);
	json_decref(r);

	CHECK_INT(call(&x, "circuit_breakers", NULL, NULL, &r), 200);
	CHECK_INT(json_integer_value(json_object_get(r, "count")), 1);
	CHECK_STR(json_string_value(json_object_get(
	                  json_array_get(json_object_get(r, "breakers"), 0), "name")),
	          "gateway_setpoints");
	CHECK_STR(json_string_value(json_object_get(
	                  json_array_get(json_object_get(r, "breakers"), 0), "state")),
	          "CLOSED");
	json_decref(r);

	/* The watchdog (5 s from 0) is expired at 6 s. */
	x.now = 6000;
	CHECK_INT(call(&x, "watchdogs", NULL, NULL, &r), 200);
	CHECK_INT(json_integer_value(json_object_get(r, "count")), 1);
	json_t *w = json_array_get(json_object_get(r, "watchdogs"), 0);
	CHECK_STR(json_string_value(json_object_get(w, "name")), "control_cycle");
	CHECK(json_is_true(json_object_get(w, "expired")));
	json_decref(r);

	CHECK_INT(call(&x, "failsafe_status", NULL, NULL, &r), 200);
	CHECK_INT(json_integer_value(json_object_get(r, "stations_total")), 3);
	json_decref(r);
	CHECK_INT(call(&x, "shedding_status", NULL, NULL, &r), 200);
	CHECK_INT(json_integer_value(json_object_get(r, "level")), 0);
	CHECK_NEAR(jnum(json_object_get(r, "thresholds"), "upper"), 0.95, 1e-12);
	json_decref(r);
	CHECK_INT(call(&x, "constraints_status", NULL, NULL, &r), 200);
	CHECK(json_is_object(json_object_get(r, "service")));
	json_decref(r);

	CHECK_INT(call(&x, "capabilities", "ac3", NULL, &r), 200);
	CHECK_STR(json_string_value(json_object_get(r, "profile")), "ac_level2_three");
	json_decref(r);
	CHECK_INT(call(&x, "capabilities", "nope", NULL, &r), 404);
	CHECK_STR(json_string_value(json_object_get(r, "error")), "no such station: nope");
	json_decref(r);
	CHECK_400(&x, "capabilities", "", NULL, "station");
	CHECK_400(&x, "phase_currents", NULL, "{\"release\":true}", "station");

	CHECK_INT(call(&x, "bogus", NULL, NULL, &r), 404);
	CHECK_STR(json_string_value(json_object_get(r, "error")), "no such DLM operation: bogus");
	json_decref(r);
	CHECK_INT(call(&x, NULL, NULL, NULL, NULL), 404);
	CHECK_INT(x.nev, 0); /* reading records nothing */
	fx_fini(&x);
}

/* ---- station control ---- */

static void test_phase_currents(void)
{
	struct fx x;
	json_t *r;
	fx_init(&x);

	CHECK_INT(
	        call(&x, "phase_currents", "ac3", "{\"phases\":{\"A\":16,\"B\":16,\"C\":16}}", &r),
	        200);
	CHECK_NEAR(jnum(r, "override_kw"), 3 * 230 * 16 / 1000.0, 1e-9);
	CHECK_NEAR(jnum(r, "current_a"), 16, 1e-9);
	CHECK(json_is_false(json_object_get(r, "clamped")));
	CHECK_NEAR(jnum(json_object_get(r, "applied"), "B"), 16, 1e-9);
	json_decref(r);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac3"), 11.04, 1e-9);
	CHECK_INT(x.nev, 1);
	const struct v2g_audit_event *ev = last_event(&x);
	CHECK_INT(ev->category, V2G_AUDIT_STATION_CONTROL);
	CHECK_STR(ev->action, "set_phase_currents");
	CHECK_STR(ev->target, "ac3");
	CHECK_STR(ev->actor.id, "bearer");
	CHECK_STR(ev->actor.type, "api");
	CHECK(ev->success);
	json_t *d = details(ev);
	CHECK_NEAR(jnum(json_object_get(d, "requested"), "A"), 16, 1e-9);
	CHECK_NEAR(jnum(d, "override_kw"), 11.04, 1e-9);
	json_decref(d);

	/* The loop holds the station there (the ramp reaches 16 A, not 32). */
	for (int c = 0; c < 15; c++)
		cycle(&x, 20, NULL);
	struct dlm_setpoint sp;
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "ac3", &sp), 0);
	CHECK_NEAR(sp.current_a[0], 16, 1e-6);
	CHECK_NEAR(sp.current_a[2], 16, 1e-6);

	/* Over the maximum: clamped to 32 A, with a note. */
	CHECK_INT(call(&x, "phase_currents", "ac3", "{\"phases\":{\"A\":40}}", &r), 200);
	CHECK_NEAR(jnum(json_object_get(r, "applied"), "A"), 32, 1e-9);
	CHECK(json_is_true(json_object_get(r, "clamped")));
	CHECK(json_array_size(json_object_get(r, "notes")) == 1);
	json_decref(r);
	/* Under 6 A: a stop. */
	CHECK_INT(call(&x, "phase_currents", "ac1", "{\"phases\":{\"A\":3}}", &r), 200);
	CHECK_NEAR(jnum(json_object_get(r, "applied"), "A"), 0, 0);
	CHECK_NEAR(jnum(r, "override_kw"), 0, 0);
	json_decref(r);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac1"), 0, 0);
	/* Uneven phases on a three-phase station: the lowest. */
	CHECK_INT(call(&x, "phase_currents", "ac3", "{\"phases\":{\"A\":20,\"B\":10}}", &r), 200);
	CHECK_NEAR(jnum(r, "current_a"), 10, 1e-9);
	CHECK(json_array_size(json_object_get(r, "notes")) == 1);
	json_decref(r);
	CHECK_INT(call(&x, "phase_currents", "ac3", "{\"release\":false,\"phases\":{\"A\":10}}",
	               NULL),
	          200);

	/* Release. */
	clear_events(&x);
	CHECK_INT(call(&x, "phase_currents", "ac3", "{\"release\":true}", &r), 200);
	CHECK_STR(json_string_value(json_object_get(r, "action")), "release_override");
	CHECK_NEAR(jnum(r, "previous_kw"), 3 * 230 * 10 / 1000.0, 1e-9);
	json_decref(r);
	CHECK_NEAR(dlm_loop_override(x.loop, "ac3"), -1, 0);
	CHECK_INT(x.nev, 1);
	CHECK_STR(last_event(&x)->action, "release_override");

	/* Refused: every 400 names its field; nothing changes. */
	clear_events(&x);
	CHECK_400(&x, "phase_currents", "ac1", "{\"phases\":{\"B\":16}}", "phases.B");
	CHECK_INT(x.nev, 1); /* a refusal on a known station is recorded */
	CHECK(!last_event(&x)->success);
	CHECK_STR(last_event(&x)->action, "set_phase_currents");
	d = details(last_event(&x));
	CHECK(strstr(json_string_value(json_object_get(d, "error")), "phases.B") != NULL);
	json_decref(d);
	CHECK_400(&x, "phase_currents", "ac3", NULL, "body");
	CHECK_400(&x, "phase_currents", "ac3", "{", "body");
	CHECK_400(&x, "phase_currents", "ac3", "[1]", "body");
	CHECK_400(&x, "phase_currents", "ac3", "{}", "phases");
	CHECK_400(&x, "phase_currents", "ac3", "{\"phases\":5}", "phases");
	CHECK_400(&x, "phase_currents", "ac3", "{\"phases\":{}}", "phases");
	CHECK_400(&x, "phase_currents", "ac3", "{\"phases\":{\"D\":6}}", "phases.D");
	CHECK_400(&x, "phase_currents", "ac3", "{\"phases\":{\"A\":\"x\"}}", "phases.A");
	CHECK_400(&x, "phase_currents", "ac3", "{\"phases\":{\"A\":null}}", "phases.A");
	CHECK_400(&x, "phase_currents", "ac3", "{\"phases\":{\"A\":-1}}", "phases.A");
	CHECK_400(&x, "phase_currents", "ac3", "{\"phases\":{\"A\":6},\"amps\":1}", "amps");
	CHECK_400(&x, "phase_currents", "ac3", "{\"release\":\"yes\"}", "release");
	CHECK_400(&x, "phase_currents", "ac3", "{\"release\":true,\"phases\":{\"A\":6}}",
	          "release");
	CHECK_400(&x, "phase_currents", "dc1", "{\"phases\":{\"A\":16}}", "station");
	CHECK_NEAR(dlm_loop_override(x.loop, "ac3"), -1, 0);
	CHECK_INT(call(&x, "phase_currents", "ghost", "{\"phases\":{\"A\":16}}", &r), 404);
	CHECK_STR(json_string_value(json_object_get(r, "error")), "no such station: ghost");
	json_decref(r);
	fx_fini(&x);
}

static void test_dc_power(void)
{
	struct fx x;
	json_t *r;
	fx_init(&x);

	CHECK_INT(call(&x, "dc_power", "dc1", "{\"power_kw\":50}", &r), 200);
	CHECK_NEAR(jnum(r, "override_kw"), 50, 1e-9);
	CHECK(json_is_false(json_object_get(r, "clamped")));
	json_decref(r);
	CHECK_NEAR(dlm_loop_override(x.loop, "dc1"), 50, 1e-9);
	CHECK_INT(x.nev, 1);
	CHECK_STR(last_event(&x)->action, "set_dc_power");
	CHECK_STR(last_event(&x)->target, "dc1");
	json_t *d = details(last_event(&x));
	CHECK_NEAR(jnum(d, "requested_kw"), 50, 1e-9);
	json_decref(d);
	for (int c = 0; c < 10; c++)
		cycle(&x, 20, NULL);
	struct dlm_setpoint sp;
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "dc1", &sp), 0);
	CHECK_NEAR(sp.power_kw, 50, 1e-6);

	/* Over the 150 kW maximum: clamped; under the 20 kW minimum: a stop. */
	CHECK_INT(call(&x, "dc_power", "dc1", "{\"power_kw\":500}", &r), 200);
	CHECK_NEAR(jnum(r, "override_kw"), 150, 1e-9);
	CHECK(json_is_true(json_object_get(r, "clamped")));
	json_decref(r);
	CHECK_INT(call(&x, "dc_power", "dc1", "{\"power_kw\":5}", &r), 200);
	CHECK_NEAR(jnum(r, "override_kw"), 0, 0);
	json_decref(r);
	cycle(&x, 20, NULL);
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "dc1", &sp), 0);
	CHECK_NEAR(sp.power_kw, 0, 1e-9);

	CHECK_400(&x, "dc_power", "dc1", "{\"power_kw\":-10}", "power_kw");
	CHECK_400(&x, "dc_power", "dc1", "{\"power_kw\":\"50\"}", "power_kw");
	CHECK_400(&x, "dc_power", "dc1", "{}", "power_kw");
	CHECK_400(&x, "dc_power", "dc1", "{\"kw\":5}", "kw");
	CHECK_400(&x, "dc_power", "dc1", "", "body");
	CHECK_400(&x, "dc_power", "ac3", "{\"power_kw\":10}", "station");
	CHECK_NEAR(dlm_loop_override(x.loop, "dc1"), 0, 0);

	CHECK_INT(call(&x, "dc_power", "dc1", "{\"release\":true}", NULL), 200);
	CHECK_NEAR(dlm_loop_override(x.loop, "dc1"), -1, 0);
	CHECK_STR(last_event(&x)->action, "release_override");
	fx_fini(&x);
}

static void test_discover(void)
{
	struct fx x;
	json_t *r;
	fx_init(&x);

	/* A new station, three-phase, priority 7. */
	CHECK_INT(
	        call(&x, "discover", "ac9", "{\"profile\":\"ac_level2_three\",\"priority\":7}", &r),
	        200);
	CHECK(json_is_true(json_object_get(r, "created")));
	CHECK_STR(json_string_value(json_object_get(json_object_get(r, "capabilities"), "profile")),
	          "ac_level2_three");
	json_decref(r);
	CHECK_INT(dlm_loop_station_count(x.loop), 4);
	struct dlm_loop_station_cfg sc;
	CHECK_INT(dlm_loop_station_info(x.loop, "ac9", &sc), 0);
	CHECK_INT(sc.priority, 7);
	CHECK_INT(x.nev, 1);
	CHECK_STR(last_event(&x)->action, "discover_capabilities");
	CHECK_STR(last_event(&x)->target, "ac9");
	json_t *d = details(last_event(&x));
	CHECK(json_is_true(json_object_get(d, "created")));
	CHECK_STR(json_string_value(json_object_get(d, "profile")), "ac_level2_three");
	json_decref(d);

	/* An existing one rediscovered with a smaller rating: it stays, with
	 * its priority and override; the loop takes the new limit. */
	CHECK_INT(call(&x, "dc_power", "dc1", "{\"power_kw\":100}", NULL), 200);
	CHECK_INT(call(&x, "discover", "dc1",
	               "{\"profile\":\"dcfc_ccs_medium\",\"overrides\":{\"power_max_kw\":60,"
	               "\"features\":{\"bidirectional\":true}}}",
	               &r),
	          200);
	CHECK(json_is_false(json_object_get(r, "created")));
	json_decref(r);
	CHECK_NEAR(dlm_cap_get(x.caps, "dc1")->power_max_kw, 60, 1e-9);
	CHECK(dlm_cap_supports(x.caps, "dc1", DLM_FEAT_BIDIRECTIONAL));
	CHECK(dlm_cap_supports(x.caps, "dc1", DLM_FEAT_POWER_LIMIT)); /* kept from the profile */
	CHECK_NEAR(dlm_loop_override(x.loop, "dc1"), 100, 1e-9);
	CHECK_INT(dlm_loop_station_count(x.loop), 4);
	for (int c = 0; c < 12; c++)
		cycle(&x, 20, NULL);
	struct dlm_setpoint sp;
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "dc1", &sp), 0);
	CHECK_NEAR(sp.power_kw, 60, 1e-6);
	/* An empty body keeps its profile. */
	CHECK_INT(call(&x, "discover", "ac1", NULL, NULL), 200);
	CHECK_STR(dlm_cap_get(x.caps, "ac1")->profile, "ac_level2_single");
	/* features as a list replaces them. */
	CHECK_INT(call(&x, "discover", "ac1",
	               "{\"overrides\":{\"features\":[\"smart_charging\"],\"current_max\":16}}",
	               NULL),
	          200);
	CHECK(!dlm_cap_supports(x.caps, "ac1", DLM_FEAT_CURRENT_LIMIT));
	CHECK_NEAR(dlm_cap_get(x.caps, "ac1")->current_max, 16, 1e-9);

	/* Refused: the capability stays as it was. */
	clear_events(&x);
	CHECK_400(&x, "discover", "dc1", "{\"profile\":\"warp_drive\"}", "profile");
	CHECK_INT(x.nev, 1);
	CHECK(!last_event(&x)->success);
	CHECK_STR(last_event(&x)->action, "discover_capabilities");
	CHECK_400(&x, "discover", "dc1", "{\"profile\":5}", "profile");
	CHECK_400(&x, "discover", "dc1", "{\"protocol\":\"\"}", "protocol");
	CHECK_400(&x, "discover", "dc1", "{\"overrides\":[]}", "overrides");
	CHECK_400(&x, "discover", "ac3", "{\"overrides\":{\"phases\":2}}", "overrides.phases");
	CHECK_400(&x, "discover", "ac3", "{\"overrides\":{\"phase\":3}}", "overrides.phase");
	CHECK_400(&x, "discover", "ac3", "{\"overrides\":{\"type\":\"hv\"}}", "overrides.type");
	CHECK_400(&x, "discover", "ac3", "{\"overrides\":{\"current_max\":-5}}",
	          "overrides.current_max");
	CHECK_400(&x, "discover", "ac3", "{\"overrides\":{\"connector\":7}}",
	          "overrides.connector");
	CHECK_400(&x, "discover", "ac3", "{\"overrides\":{\"features\":[\"flying\"]}}",
	          "overrides.features[0]");
	CHECK_400(&x, "discover", "ac3", "{\"overrides\":{\"features\":{\"flying\":true}}}",
	          "overrides.features.flying");
	CHECK_400(&x, "discover", "ac3", "{\"overrides\":{\"features\":\"all\"}}",
	          "overrides.features");
	CHECK_400(&x, "discover", "dc1",
	          "{\"overrides\":{\"power_min_kw\":100,\"power_max_kw\":50}}", "overrides");
	CHECK_400(&x, "discover", "ac3", "{\"priority\":11}", "priority");
	CHECK_400(&x, "discover", "ac3", "{\"rotation\":3}", "rotation");
	CHECK_400(&x, "discover", "ac3", "{\"speed\":3}", "speed");
	CHECK_400(&x, "discover", "a/b", "{}", "station");
	CHECK_NEAR(dlm_cap_get(x.caps, "dc1")->power_max_kw, 60, 1e-9);
	CHECK_STR(dlm_cap_get(x.caps, "ac3")->profile, "ac_level2_three");
	CHECK(dlm_cap_get(x.caps, "a/b") == NULL);

	/* max_stations (5): one more fits, the next is refused. */
	CHECK_INT(call(&x, "discover", "ac10", "{}", NULL), 200);
	CHECK_INT(call(&x, "discover", "ac11", "{}", &r), 409);
	CHECK(strncmp(json_string_value(json_object_get(r, "error")), "station:", 8) == 0);
	json_decref(r);
	CHECK(dlm_cap_get(x.caps, "ac11") == NULL);
	CHECK_INT(dlm_loop_station_count(x.loop), 5);
	fx_fini(&x);
}

/* ---- configuration ---- */

static void check_change(const struct v2g_audit_event *ev, const char *key, double old, double nw)
{
	CHECK_INT(ev->category, V2G_AUDIT_CONFIG_CHANGE);
	CHECK_STR(ev->action, "config_update");
	CHECK_STR(ev->target, key);
	CHECK(ev->success);
	json_t *d = details(ev);
	CHECK_NEAR(jnum(d, "old"), old, 1e-9);
	CHECK_NEAR(jnum(d, "new"), nw, 1e-9);
	json_decref(d);
}

static void test_shedding_configure(void)
{
	struct fx x;
	json_t *r;
	fx_init(&x);

	CHECK_INT(call(&x, "shedding_configure", NULL,
	               "{\"upper_threshold\":0.9,\"lower_threshold\":0.8}", &r),
	          200);
	CHECK_INT(json_array_size(json_object_get(r, "changed")), 2);
	CHECK_NEAR(jnum(json_object_get(r, "thresholds"), "upper"), 0.9, 1e-12);
	json_decref(r);
	CHECK_NEAR(dlm_shed_config(x.shed)->upper_threshold, 0.9, 1e-12);
	CHECK_NEAR(dlm_shed_config(x.shed)->lower_threshold, 0.8, 1e-12);
	CHECK_INT(x.nev, 2);
	check_change(&x.ev[0], "dlm.shedding.upper_threshold", 0.95, 0.9);
	check_change(&x.ev[1], "dlm.shedding.lower_threshold", 0.85, 0.8);
	CHECK_STR(x.ev[0].actor.name, "127.0.0.1");

	clear_events(&x);
	CHECK_INT(call(&x, "shedding_configure", NULL,
	               "{\"enabled\":false,\"mode\":\"jump\",\"min_hold_ms\":5000}", NULL),
	          200);
	CHECK_INT(x.nev, 3);
	CHECK_STR(x.ev[0].target, "dlm.shedding.enabled");
	CHECK_STR(x.ev[1].target, "dlm.shedding.mode");
	CHECK_INT(dlm_shed_config(x.shed)->enabled, 0);
	CHECK_INT(dlm_shed_config(x.shed)->mode, DLM_SHED_JUMP);
	CHECK_INT((int)dlm_shed_config(x.shed)->min_hold_ms, 5000);
	/* The pace of escalations: one event, the status shows it. */
	clear_events(&x);
	CHECK_INT(call(&x, "shedding_configure", NULL, "{\"escalate_hold_ms\":500}", &r), 200);
	CHECK_INT((int)dlm_shed_config(x.shed)->escalate_hold_ms, 500);
	CHECK_INT(json_integer_value(json_object_get(r, "escalate_hold_ms")), 500);
	CHECK_STR(json_string_value(json_array_get(json_object_get(r, "changed"), 0)),
	          "escalate_hold_ms");
	json_decref(r);
	CHECK_INT(x.nev, 1);
	CHECK_STR(x.ev[0].target, "dlm.shedding.escalate_hold_ms");
	/* The same again changes nothing and records nothing. */
	clear_events(&x);
	CHECK_INT(call(&x, "shedding_configure", NULL, "{\"enabled\":false}", &r), 200);
	CHECK_INT(json_array_size(json_object_get(r, "changed")), 0);
	json_decref(r);
	CHECK_INT(x.nev, 0);

	CHECK_400(&x, "shedding_configure", NULL, "{\"upper_threshold\":1.5}", "upper_threshold");
	CHECK_INT(x.nev, 1);
	CHECK_INT(x.ev[0].category, V2G_AUDIT_CONFIG_CHANGE);
	CHECK_STR(x.ev[0].target, "dlm.shedding");
	CHECK(!x.ev[0].success);
	CHECK_400(&x, "shedding_configure", NULL, "{\"upper_threshold\":0.7}", "upper_threshold");
	CHECK_400(&x, "shedding_configure", NULL, "{\"lower_threshold\":0.95}", "lower_threshold");
	CHECK_400(&x, "shedding_configure", NULL, "{\"lower_threshold\":0}", "lower_threshold");
	CHECK_400(&x, "shedding_configure", NULL, "{\"upper_threshold\":\"high\"}",
	          "upper_threshold");
	CHECK_400(&x, "shedding_configure", NULL, "{\"enabled\":1}", "enabled");
	CHECK_400(&x, "shedding_configure", NULL, "{\"mode\":\"fast\"}", "mode");
	CHECK_400(&x, "shedding_configure", NULL, "{\"min_hold_ms\":-1}", "min_hold_ms");
	CHECK_400(&x, "shedding_configure", NULL, "{\"min_hold_ms\":1.5}", "min_hold_ms");
	CHECK_400(&x, "shedding_configure", NULL, "{\"escalate_hold_ms\":-1}", "escalate_hold_ms");
	CHECK_400(&x, "shedding_configure", NULL, "{\"escalate_hold_ms\":\"2s\"}",
	          "escalate_hold_ms");
	CHECK_400(&x, "shedding_configure", NULL, "{\"escalate_hold_ms\":86400001}",
	          "escalate_hold_ms");
	CHECK_400(&x, "shedding_configure", NULL, "{\"threshold\":0.9}", "threshold");
	CHECK_400(&x, "shedding_configure", NULL, "", "body");
	CHECK_400(&x, "shedding_configure", NULL, "{\"enabled\":true,\"enabled\":false}", "body");
	CHECK_NEAR(dlm_shed_config(x.shed)->upper_threshold, 0.9, 1e-12);
	CHECK_NEAR(dlm_shed_config(x.shed)->lower_threshold, 0.8, 1e-12);
	CHECK_INT(dlm_shed_config(x.shed)->enabled, 0);
	CHECK_INT((int)dlm_shed_config(x.shed)->escalate_hold_ms, 500);
	fx_fini(&x);
}

static void test_service_configure(void)
{
	struct fx x;
	json_t *r;
	fx_init(&x);

	CHECK_INT(call(&x, "service_configure", NULL,
	               "{\"max_power_kw\":150,\"voltage\":400,\"phases\":3}", &r),
	          200);
	CHECK_NEAR(jnum(json_object_get(r, "service"), "max_power_kw"), 150, 1e-9);
	CHECK_INT(json_array_size(json_object_get(r, "changed")), 2); /* phases was 3 */
	json_decref(r);
	CHECK_NEAR(dlm_site_service(x.site)->max_power_kw, 150, 1e-9);
	CHECK_NEAR(dlm_site_service(x.site)->voltage_v, 400, 1e-9);
	CHECK_INT(x.nev, 2);
	check_change(&x.ev[0], "dlm.service.max_power_kw", 250, 150);
	check_change(&x.ev[1], "dlm.service.voltage", 480, 400);
	/* The next cycle runs under it: 150 x 0.8 = 120 kW. */
	cycle(&x, 20, NULL);
	CHECK_NEAR(dlm_loop_stats(x.loop)->site_limit_kw, 120, 1e-6);

	clear_events(&x);
	CHECK_400(&x, "service_configure", NULL, "{\"max_power_kw\":-1}", "max_power_kw");
	CHECK_400(&x, "service_configure", NULL, "{\"phases\":2}", "phases");
	CHECK_400(&x, "service_configure", NULL, "{\"nec625_factor\":1.5}", "nec625_factor");
	CHECK_400(&x, "service_configure", NULL, "{\"voltage_v\":400}", "voltage_v");
	CHECK_400(&x, "service_configure", NULL, "{\"max_power_kw\":null}", "max_power_kw");
	CHECK_400(&x, "service_configure", NULL, "7", "body");
	CHECK_NEAR(dlm_site_service(x.site)->max_power_kw, 150, 1e-9);
	CHECK_INT(x.nev, 6);
	CHECK_STR(x.ev[0].target, "dlm.service");
	CHECK(!x.ev[0].success);
	fx_fini(&x);
}

/* Error messages quote what was sent: cut inside a multi-byte character
 * (a "%.64s", a 40-byte key in sitecfg) or not UTF-8 at all (a station id
 * from the bus), they are still answered as JSON, and a station id that is
 * not UTF-8 is never created. */
static void test_errors_stay_utf8(void)
{
	struct fx x;
	json_t *r;
	char key[160], body[256];
	fx_init(&x);

	/* "x" then 40 two-byte characters: every cut at an even length splits one. */
	strcpy(key, "x");
	for (int i = 0; i < 40; i++)
		strcat(key, "\xc3\xa9");
	snprintf(body, sizeof(body), "{\"%s\":1}", key);
	CHECK_INT(call(&x, "shedding_configure", NULL, body, &r), 400);
	CHECK(strncmp(json_string_value(json_object_get(r, "error")), "x\xc3\xa9", 3) == 0);
	json_decref(r);
	CHECK_INT(x.nev, 1); /* the refusal is audited too */
	CHECK_INT(call(&x, "service_configure", NULL, body, NULL), 400);
	CHECK_INT(x.nev, 2);
	snprintf(body, sizeof(body), "{\"phases\":{\"%.19s\":16}}", key);
	CHECK_INT(call(&x, "phase_currents", "ac3", body, NULL), 400);
	snprintf(body, sizeof(body), "{\"overrides\":{\"features\":{\"%s\":true}}}", key);
	CHECK_INT(call(&x, "discover", "ac3", body, NULL), 400);

	CHECK_INT(call(&x, "capabilities", "\xff\xfe", NULL, &r), 404);
	CHECK(strncmp(json_string_value(json_object_get(r, "error")), "no such station: ", 17) ==
	      0);
	json_decref(r);
	CHECK_INT(call(&x, "dc_power", "d\xc3", "{\"power_kw\":1}", NULL), 404);
	CHECK_400(&x, "discover", "bad\xff", "{}", "station");
	CHECK_400(&x, "discover", "bad\xed\xa0\x80", "{}", "station"); /* a surrogate */
	CHECK_INT(dlm_loop_station_count(x.loop), 3);
	CHECK(dlm_cap_get(x.caps, "bad\xff") == NULL);
	/* Good UTF-8 is a good id. */
	CHECK_INT(call(&x, "discover", "borne-\xc3\xa9t\xc3\xa9", "{}", NULL), 200);
	CHECK_INT(dlm_loop_station_count(x.loop), 4);
	fx_fini(&x);
}

static json_t *find_id(json_t *arr, const char *id)
{
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) if (strcmp(json_string_value(json_object_get(e, "id")), id) ==
	                                  0) return e;
	return NULL;
}

static void test_feeder_and_transformer_configure(void)
{
	struct fx x;
	json_t *r;
	fx_init(&x);
	struct dlm_setpoint a, b;
	for (int c = 0; c < 20; c++)
		cycle(&x, 20, NULL);
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "ac1", &a), 0);
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "ac3", &b), 0);
	CHECK(a.power_kw + b.power_kw > 25); /* before the feeder */

	CHECK_INT(call(&x, "feeder_configure", NULL,
	               "{\"id\":\"F1\",\"name\":\"AC row\",\"breaker_rating_a\":225,"
	               "\"cable_ampacity_a\":200,\"phases\":3,\"max_power_kw\":20,"
	               "\"stations\":[\"ac1\",\"ac3\"]}",
	               &r),
	          200);
	CHECK(json_is_true(json_object_get(r, "created")));
	CHECK_NEAR(jnum(json_object_get(r, "feeder"), "breaker_rating_a"), 225, 1e-9);
	json_decref(r);
	CHECK_INT(dlm_site_feeder_count(x.site), 1);
	CHECK_INT(dlm_site_station_feeder(x.site, "ac3"), 0);
	CHECK_INT(x.nev, 1);
	CHECK_STR(x.ev[0].target, "dlm.feeders.F1");
	CHECK_STR(x.ev[0].action, "config_update");
	json_t *d = details(&x.ev[0]);
	CHECK(json_is_null(json_object_get(d, "old")));
	CHECK_NEAR(jnum(json_object_get(d, "new"), "max_power_kw"), 20, 1e-9);
	CHECK(json_object_get(json_object_get(d, "new"), "headroom") == NULL); /* config only */
	json_decref(d);
	/* The next cycle respects it. */
	for (int c = 0; c < 20; c++)
		cycle(&x, 20, NULL);
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "ac1", &a), 0);
	CHECK_INT(dlm_loop_station_setpoint(x.loop, "ac3", &b), 0);
	CHECK(a.power_kw + b.power_kw <= 20 + 1e-6);
	CHECK(a.power_kw + b.power_kw > 15);

	/* Replaced: old and new recorded. */
	clear_events(&x);
	CHECK_INT(call(&x, "feeder_configure", NULL,
	               "{\"id\":\"F1\",\"breaker_rating_a\":100,\"cable_ampacity_a\":200,"
	               "\"phases\":3,\"stations\":[\"ac1\",\"ac3\"]}",
	               &r),
	          200);
	CHECK(json_is_false(json_object_get(r, "created")));
	json_decref(r);
	d = details(&x.ev[0]);
	CHECK_NEAR(jnum(json_object_get(d, "old"), "breaker_rating_a"), 225, 1e-9);
	CHECK_NEAR(jnum(json_object_get(d, "new"), "breaker_rating_a"), 100, 1e-9);
	json_decref(d);

	CHECK_400(&x, "feeder_configure", NULL,
	          "{\"breaker_rating_a\":100,\"cable_ampacity_a\":200,\"phases\":3}", "id");
	CHECK_400(&x, "feeder_configure", NULL,
	          "{\"id\":\"F2\",\"cable_ampacity_a\":200,\"phases\":3}", "breaker_rating_a");
	CHECK_400(&x, "feeder_configure", NULL,
	          "{\"id\":\"F2\",\"breaker_rating_a\":100,\"cable_ampacity_a\":200,\"phases\":3,"
	          "\"stations\":[\"ac1\"]}",
	          "stations");
	CHECK_400(&x, "feeder_configure", NULL, "", "body");
	CHECK_INT(dlm_site_feeder_count(x.site), 1);

	clear_events(&x);
	CHECK_INT(call(&x, "transformer_configure", NULL,
	               "{\"id\":\"T1\",\"rated_kva\":50,\"continuous_factor\":0.8,"
	               "\"feeders\":[\"F1\"]}",
	               &r),
	          200);
	CHECK(json_is_true(json_object_get(r, "created")));
	CHECK_NEAR(jnum(json_object_get(r, "transformer"), "rated_kva"), 50, 1e-9);
	json_decref(r);
	CHECK_INT(x.nev, 1);
	CHECK_STR(x.ev[0].target, "dlm.transformers.T1");
	CHECK_INT(call(&x, "constraints_status", NULL, NULL, &r), 200);
	CHECK(find_id(json_object_get(r, "transformers"), "T1") != NULL);
	CHECK(find_id(json_object_get(r, "feeders"), "F1") != NULL);
	json_decref(r);
	CHECK_400(&x, "transformer_configure", NULL, "{\"id\":\"T2\",\"rated_kva\":0}",
	          "rated_kva");
	CHECK_400(&x, "transformer_configure", NULL,
	          "{\"id\":\"T2\",\"rated_kva\":100,\"feeders\":[\"F1\"]}", "feeders");
	CHECK_400(&x, "transformer_configure", NULL, "{\"rated_kva\":100}", "id");
	fx_fini(&x);
}

/* ---- the cycle's decisions ---- */

static void test_cycle_events(void)
{
	struct fx x;
	fx_init(&x);

	dlm_control_station_learned(&x.ctx, "station_added", "dc1", "meter");
	CHECK_INT(x.nev, 1);
	CHECK_INT(x.ev[0].category, V2G_AUDIT_LOAD_MANAGEMENT);
	CHECK_STR(x.ev[0].action, "station_added");
	CHECK_STR(x.ev[0].target, "dc1");
	CHECK_STR(x.ev[0].actor.type, "system");
	json_t *d = details(&x.ev[0]);
	CHECK_STR(json_string_value(json_object_get(d, "profile")), "dcfc_ccs_medium");
	CHECK_STR(json_string_value(json_object_get(d, "site")), "site-t");
	json_decref(d);
	dlm_control_station_learned(&x.ctx, "station_added", "ghost",
	                            "meter"); /* unknown: nothing */
	CHECK_INT(x.nev, 1);

	/* Normal cycles record nothing. */
	clear_events(&x);
	for (int c = 0; c < 5; c++)
		cycle(&x, 100, NULL);
	CHECK_INT(x.nev, 0);
	/* 240 kW against 200: level 1, then 2 (2 s later: escalate_hold_ms);
	 * each change once. */
	cycle(&x, 240, NULL);
	CHECK_INT(x.nev, 1);
	CHECK_STR(x.ev[0].action, "shedding_level_change");
	CHECK_INT(x.ev[0].category, V2G_AUDIT_LOAD_MANAGEMENT);
	CHECK_STR(x.ev[0].target, "site-t");
	d = details(&x.ev[0]);
	CHECK_INT(json_integer_value(json_object_get(d, "from")), 0);
	CHECK_INT(json_integer_value(json_object_get(d, "to")), 1);
	CHECK_NEAR(jnum(d, "load_kw"), 240, 1e-9);
	CHECK_NEAR(jnum(d, "limit_kw"), 200, 1e-9);
	json_decref(d);
	cycle(&x, 240, NULL);
	CHECK_INT(x.nev, 1);
	cycle(&x, 240, NULL);
	CHECK_INT(x.nev, 2);
	for (int c = 0; c < 5; c++)
		cycle(&x, 180, NULL); /* inside the band: held */
	CHECK_INT(x.nev, 2);

	/* dc1 silent for over 30 s: fail-safe once, then restored once. */
	clear_events(&x);
	for (int c = 0; c < 32; c++)
		cycle(&x, 100, "dc1");
	size_t applied = 0;
	for (size_t i = 0; i < x.nev; i++)
		if (strcmp(x.ev[i].action, "failsafe_apply") == 0) {
			applied++;
			CHECK_STR(x.ev[i].target, "dc1");
			d = details(&x.ev[i]);
			CHECK_STR(json_string_value(json_object_get(d, "offline_action")),
			          "reduce");
			CHECK(jnum(d, "silent_ms") > 30000);
			json_decref(d);
		}
	CHECK_INT(applied, 1);
	clear_events(&x);
	cycle(&x, 100, NULL);
	size_t restored = 0;
	for (size_t i = 0; i < x.nev; i++)
		if (strcmp(x.ev[i].action, "failsafe_restore") == 0) {
			restored++;
			CHECK_STR(x.ev[i].target, "dc1");
		}
	CHECK_INT(restored, 1);
	fx_fini(&x);
}

/* ---- the service over the bus ---- */

/* A site-dlm service for the tests over the bus: default settings with a
 * 50 ms cycle, every bus address an ipc:// path of its own (tag, pid). */
struct svc_fixture {
	struct dlm_settings st;
	char a_dlm[96], a_store[96], a_disp[96], a_tel[96], a_gw[96];
	struct v2g_service svc;
};

static void fixture_init(struct svc_fixture *f, const char *tag)
{
	char err[256];
	unsetenv("MAX_GRID_CAPACITY_KW");
	unsetenv("MAX_SERVICE_CURRENT");
	memset(f, 0, sizeof(*f));
	CHECK_INT(
	        v2g_config_load(NULL, dlm_settings_items, dlm_settings_n, &f->st, err, sizeof(err)),
	        0);
	f->st.cycle_ms = 50;
	CHECK_INT(dlm_settings_check(&f->st, NULL, err, sizeof(err)), 0);
	int pid = (int)getpid();
	snprintf(f->a_dlm, sizeof(f->a_dlm), "ipc:///tmp/v2g-%s-test-%d-dlm", tag, pid);
	snprintf(f->a_store, sizeof(f->a_store), "ipc:///tmp/v2g-%s-test-%d-store", tag, pid);
	snprintf(f->a_disp, sizeof(f->a_disp), "ipc:///tmp/v2g-%s-test-%d-disp", tag, pid);
	snprintf(f->a_tel, sizeof(f->a_tel), "ipc:///tmp/v2g-%s-test-%d-tel", tag, pid);
	snprintf(f->a_gw, sizeof(f->a_gw), "ipc:///tmp/v2g-%s-test-%d-gw", tag, pid);
	f->svc.name = "site-dlm";
	f->svc.common.bus_dlm = f->a_dlm;
	f->svc.common.bus_store_in = f->a_store;
	f->svc.common.bus_dispatch_in = f->a_disp;
	f->svc.common.bus_telemetry = f->a_tel;
	f->svc.common.bus_gateway_in = f->a_gw;
	f->svc.health = v2g_health_new("site-dlm", 1000);
}

static void fixture_fini(struct svc_fixture *f)
{
	v2g_health_free(f->svc.health);
	v2g_config_free(dlm_settings_items, dlm_settings_n, &f->st);
}

static void test_service_over_the_bus(void)
{
	struct svc_fixture f;
	fixture_init(&f, "ctl");

	nng_socket store, disp;
	CHECK_INT(v2g_bus_open(&store, V2G_BUS_PULL, f.a_store, 1), 0);
	CHECK_INT(v2g_bus_open(&disp, V2G_BUS_PULL, f.a_disp, 1), 0);
	struct dlm_service *ds = NULL;
	CHECK_INT(dlm_service_start(&ds, &f.svc, &f.st), 0);
	struct v2g_bus_client *cl = NULL;
	CHECK_INT(v2g_bus_client_open(&cl, f.a_dlm), 0);

	/* A control op: 200, and its audit event reaches the store. */
	V2g__V1__DlmActor actor = V2G__V1__DLM_ACTOR__INIT;
	actor.type = "api";
	actor.id = "bearer";
	actor.name = "10.0.0.7";
	V2g__V1__DlmRequest q = V2G__V1__DLM_REQUEST__INIT;
	q.op = "shedding_configure";
	q.body_json = "{\"upper_threshold\":0.9}";
	q.actor = &actor;
	v2g_env req = V2G__V1__ENVELOPE__INIT;
	req.body_case = V2G__V1__ENVELOPE__BODY_DLM_REQUEST;
	req.dlm_request = &q;
	v2g_env *rep = NULL;
	CHECK_INT(v2g_bus_call(cl, &req, &rep, 3000), 0);
	CHECK(rep && rep->body_case == V2G__V1__ENVELOPE__BODY_DLM_REPLY);
	if (rep && rep->dlm_reply) {
		CHECK_INT(rep->dlm_reply->status, 200);
		json_t *j = json_loads(rep->dlm_reply->body_json, 0, NULL);
		CHECK_NEAR(jnum(json_object_get(j, "thresholds"), "upper"), 0.9, 1e-12);
		json_decref(j);
	}
	v2g_env_free(rep);

	int found = 0;
	for (int tries = 0; tries < 20 && !found; tries++) {
		v2g_env *e = NULL;
		if (v2g_bus_recv(store, &e, 250))
			continue;
		if (e->body_case == V2G__V1__ENVELOPE__BODY_AUDIT && e->audit)
			for (size_t i = 0; i < e->audit->n_events_json; i++) {
				struct v2g_audit_event ev;
				const char *t = e->audit->events_json[i];
				if (v2g_audit_event_decode(t, strlen(t), &ev))
					continue;
				if (strcmp(ev.target, "dlm.shedding.upper_threshold") == 0) {
					found = 1;
					CHECK_STR(ev.actor.name, "10.0.0.7");
					CHECK_INT(ev.category, V2G_AUDIT_CONFIG_CHANGE);
				}
				v2g_audit_event_fini(&ev);
			}
		v2g_env_free(e);
	}
	CHECK(found);

	/* A bad body: 400 naming the field; an unknown op: 404. */
	q.op = "dc_power";
	q.station = "nope";
	q.body_json = "{\"power_kw\":1}";
	CHECK_INT(v2g_bus_call(cl, &req, &rep, 3000), 0);
	CHECK(rep && rep->dlm_reply && rep->dlm_reply->status == 404);
	v2g_env_free(rep);
	q.op = "shedding_configure";
	q.station = "";
	q.body_json = "{\"lower_threshold\":\"low\"}";
	CHECK_INT(v2g_bus_call(cl, &req, &rep, 3000), 0);
	CHECK(rep && rep->dlm_reply && rep->dlm_reply->status == 400);
	if (rep && rep->dlm_reply)
		CHECK(strstr(rep->dlm_reply->body_json, "lower_threshold:") != NULL);
	v2g_env_free(rep);
	/* Not a DlmRequest: Error 400. */
	V2g__V1__Error er = V2G__V1__ERROR__INIT;
	v2g_env req2 = V2G__V1__ENVELOPE__INIT;
	req2.body_case = V2G__V1__ENVELOPE__BODY_ERROR;
	req2.error = &er;
	CHECK_INT(v2g_bus_call(cl, &req2, &rep, 3000), 0);
	CHECK(rep && rep->body_case == V2G__V1__ENVELOPE__BODY_ERROR && rep->error &&
	      rep->error->code == 400);
	v2g_env_free(rep);

	/* Every cycle publishes the site's capacity. */
	int caps = 0;
	for (int tries = 0; tries < 40 && caps < 2; tries++) {
		v2g_env *e = NULL;
		if (v2g_bus_recv(disp, &e, 250))
			continue;
		if (e->body_case == V2G__V1__ENVELOPE__BODY_SITE_CAPACITY && e->site_capacity) {
			CHECK_STR(e->site_capacity->site, f.st.site);
			CHECK(e->site_capacity->ts_ms > 1600000000000LL);
			CHECK_NEAR(e->site_capacity->limit_kw, 200, 1e-6); /* 250 x 0.8 */
			caps++;
		}
		v2g_env_free(e);
	}
	CHECK(caps >= 2);

	/* The breaker and both watchdogs are listed. */
	q.op = "watchdogs";
	q.body_json = "";
	CHECK_INT(v2g_bus_call(cl, &req, &rep, 3000), 0);
	if (rep && rep->dlm_reply) {
		json_t *j = json_loads(rep->dlm_reply->body_json, 0, NULL);
		CHECK_INT(json_integer_value(json_object_get(j, "count")), 2);
		CHECK(!json_is_true(json_object_get(
		        json_array_get(json_object_get(j, "watchdogs"), 0), "expired")));
		json_decref(j);
	}
	v2g_env_free(rep);
	q.op = "circuit_breakers";
	CHECK_INT(v2g_bus_call(cl, &req, &rep, 3000), 0);
	if (rep && rep->dlm_reply)
		CHECK(strstr(rep->dlm_reply->body_json, "\"gateway_setpoints\"") != NULL);
	v2g_env_free(rep);

	v2g_bus_client_close(cl);
	dlm_service_stop(ds);
	nng_close(store);
	nng_close(disp);
	fixture_fini(&f);
}

/* One DlmRequest op over the bus; the reply body parsed (NULL on failure). */
static json_t *bus_op(struct v2g_bus_client *cl, const char *op)
{
	V2g__V1__DlmRequest q = V2G__V1__DLM_REQUEST__INIT;
	q.op = (char *)op;
	q.station = "";
	q.body_json = "";
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	req.body_case = V2G__V1__ENVELOPE__BODY_DLM_REQUEST;
	req.dlm_request = &q;
	json_t *j = NULL;
	if (v2g_bus_call(cl, &req, &rep, 3000) == 0 && rep && rep->dlm_reply)
		j = json_loads(rep->dlm_reply->body_json, 0, NULL);
	v2g_env_free(rep);
	return j;
}

/* With a station under control and neither the vehicle gateway nor the
 * dispatch engine listening, the sends fail (nothing is queued for their
 * return): the gateway_setpoints breaker opens after 3 of them and the
 * SiteCapacity failures are counted; the REST ops keep answering. */
static void test_peers_away(void)
{
	struct svc_fixture f;
	fixture_init(&f, "away");

	struct v2g_metric *cap_fail = v2g_counter("dlm_capacity_send_failures_total", "", NULL);
	double cap_fail0 = v2g_metric_value(cap_fail, NULL);
	nng_socket tel;
	CHECK_INT(v2g_bus_open(&tel, V2G_BUS_PUB, f.a_tel, 1), 0);
	struct dlm_service *ds = NULL;
	CHECK_INT(dlm_service_start(&ds, &f.svc, &f.st), 0);
	struct v2g_bus_client *cl = NULL;
	CHECK_INT(v2g_bus_client_open(&cl, f.a_dlm), 0);

	V2g__V1__StationMeter sm = V2G__V1__STATION_METER__INIT;
	sm.site = f.st.site;
	sm.station = "ac-01";
	sm.power_kw = 0;
	sm.temperature_c = NAN;
	sm.soc = NAN;
	sm.kind = "ac";
	sm.phases = 3;
	V2g__V1__StationMeter *smp = &sm;
	V2g__V1__MeterBatch mb = V2G__V1__METER_BATCH__INIT;
	mb.n_stations = 1;
	mb.stations = &smp;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	env.body_case = V2G__V1__ENVELOPE__BODY_METERS;
	env.meters = &mb;

	const char *state = "";
	json_t *j = NULL;
	for (int tries = 0; tries < 100 && strcmp(state, "OPEN") != 0; tries++) {
		CHECK_INT(v2g_bus_send(tel, &env, 100), 0);
		usleep(50 * 1000);
		json_decref(j);
		j = bus_op(cl, "circuit_breakers");
		state = json_string_value(json_object_get(
		        json_array_get(json_object_get(j, "breakers"), 0), "state"));
		if (!state)
			state = "";
	}
	CHECK_STR(state, "OPEN");
	json_decref(j);
	j = bus_op(cl, "status");
	CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "stations"), "total")), 1);
	json_decref(j);
	CHECK(v2g_metric_value(cap_fail, NULL) >= cap_fail0 + 3);

	v2g_bus_client_close(cl);
	dlm_service_stop(ds);
	nng_close(tel);
	fixture_fini(&f);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_read_ops),           HCASE(test_phase_currents),
		HCASE(test_dc_power),           HCASE(test_discover),
		HCASE(test_shedding_configure), HCASE(test_service_configure),
		HCASE(test_errors_stay_utf8),   HCASE(test_feeder_and_transformer_configure),
		HCASE(test_cycle_events),       HCASE(test_service_over_the_bus),
		HCASE(test_peers_away),
	};
	return harness_main("site-dlm-control", cases, HARNESS_N(cases));
}
