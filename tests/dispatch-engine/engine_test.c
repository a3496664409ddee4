/* Selection, allocation, ack handling and reallocation rules of the v1
 * dispatch document, driven with a fake clock. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "../../services/dispatch-engine/engine.h"
#include "../../services/dispatch-engine/strategy.h"
#include "../../services/dispatch-engine/tuner.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"

#define NOW 1800000000000LL

/* What the engine sent, captured. */
static struct {
	int batches;
	char id[37];
	struct {
		char vid[65];
		double kw;
	} cmd[256];
	int ncmd; /* commands of the last batch */
	int decisions;
	int last_status;
	double last_acked, last_allocated, last_shortfall;
	size_t last_nalloc;
	int last_rejected, last_reallocated;
	char dispatcher[32];
} out;

static void cap_commands(void *arg, V2g__V1__CommandBatch *b)
{
	(void)arg;
	out.batches++;
	snprintf(out.id, sizeof(out.id), "%s", b->dispatch_id);
	out.ncmd = 0;
	for (size_t i = 0; i < b->n_commands && i < 256; i++) {
		snprintf(out.cmd[i].vid, sizeof(out.cmd[i].vid), "%s", b->commands[i]->vehicle_id);
		out.cmd[i].kw = b->commands[i]->power_kw;
		out.ncmd++;
	}
}

static void cap_decision(void *arg, V2g__V1__DispatchDecision *d)
{
	(void)arg;
	out.decisions++;
	out.last_status = d->status;
	snprintf(out.dispatcher, sizeof(out.dispatcher), "%s", d->dispatcher ? d->dispatcher : "");
	out.last_acked = d->acked_power_kw;
	out.last_allocated = d->allocated_power_kw;
	out.last_shortfall = d->shortfall_kw;
	out.last_nalloc = d->n_allocations;
	out.last_rejected = out.last_reallocated = 0;
	for (size_t i = 0; i < d->n_allocations; i++) {
		out.last_rejected += d->allocations[i]->rejected;
		out.last_reallocated += d->allocations[i]->reallocated;
	}
}

static void add(struct disp_fleet *f, const char *id, double soc, double max, int avail, int prio,
                double tariff, long long age_ms)
{
	V2g__V1__VehicleState s = V2G__V1__VEHICLE_STATE__INIT;
	s.vehicle_id = (char *)id;
	s.soc = soc;
	s.max_power_kw = max;
	s.available = avail;
	s.priority = prio;
	s.tariff = tariff;
	s.ts_ms = NOW - age_ms;
	CHECK_INT(disp_fleet_update(f, &s), 0);
}

static struct disp_config config(void)
{
	struct disp_config c = { .ack_timeout_ms = 5000,
		                 .max_rounds = 3,
		                 .max_state_age_ms = 300000,
		                 .realloc_min_soc = 20 };
	c.band[0] = (struct disp_band){ 20, 100 };
	c.band[1] = (struct disp_band){ 20, 100 };
	c.band[2] = (struct disp_band){ 10, 100 };
	return c;
}

static struct disp_engine *engine(struct disp_fleet *f)
{
	struct disp_config c = config();
	struct disp_engine_ops ops = { cap_commands, cap_decision, NULL };
	memset(&out, 0, sizeof(out));
	return disp_engine_new(&c, f, NULL, &ops);
}

/* An engine with a policy of our own. */
static struct disp_engine *engine_with(struct disp_fleet *f, const struct disp_policy *pol)
{
	struct disp_config c = config();
	struct disp_engine_ops ops = { cap_commands, cap_decision, NULL };
	c.policy = *pol;
	memset(&out, 0, sizeof(out));
	return disp_engine_new(&c, f, NULL, &ops);
}

static struct disp_policy policy(enum disp_strategy s)
{
	struct disp_policy p;
	memset(&p, 0, sizeof(p));
	for (int t = 0; t < 3; t++) {
		p.params[t].strategy = s;
		p.params[t].max_rounds = 5;
		p.params[t].weights = disp_default_weights(t);
	}
	return p;
}

static char *submit(struct disp_engine *e, int type, double kw)
{
	static char id[37];
	V2g__V1__Signal s = V2G__V1__SIGNAL__INIT;
	s.signal_id = "sig";
	s.type = (V2g__V1__SignalType)type;
	s.power_kw = kw;
	s.duration_min = 15;
	CHECK_INT(disp_engine_submit(e, &s, NOW, 0, id), 0);
	return id;
}

static void ack(struct disp_engine *e, const char *dispatch, const char *vid, int accepted,
                long long mono)
{
	V2g__V1__Ack a = V2G__V1__ACK__INIT, *ap = &a;
	V2g__V1__AckBatch b = V2G__V1__ACK_BATCH__INIT;
	a.vehicle_id = (char *)vid;
	a.dispatch_id = (char *)dispatch;
	a.accepted = accepted;
	a.reason = accepted ? "" : "user_override";
	b.n_acks = 1;
	b.acks = &ap;
	disp_engine_acks(e, &b, NOW + mono, mono);
}

static double cmd_kw(const char *vid)
{
	for (int i = 0; i < out.ncmd; i++) {
		if (!strcmp(out.cmd[i].vid, vid))
			return out.cmd[i].kw;
	}
	return -1;
}

/* Higher priority first, then higher SoC, then lower tariff; each up to its max. */
static void test_preference_order(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "low-prio", 90, 10, 1, 1, 0.10, 0);
	add(f, "hi-prio-lowsoc", 50, 10, 1, 9, 0.30, 0);
	add(f, "hi-prio-hisoc", 80, 10, 1, 9, 0.30, 0);
	add(f, "hi-prio-hisoc-cheap", 80, 10, 1, 9, 0.10, 0);
	struct disp_engine *e = engine(f);
	submit(e, 0, 25);
	CHECK_INT(out.ncmd, 3);
	CHECK_STR(out.cmd[0].vid, "hi-prio-hisoc-cheap");
	CHECK_STR(out.cmd[1].vid, "hi-prio-hisoc");
	CHECK_STR(out.cmd[2].vid, "hi-prio-lowsoc");
	CHECK_NEAR(out.cmd[0].kw, 10, 1e-9);
	CHECK_NEAR(out.cmd[2].kw, 5, 1e-9);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PENDING);
	CHECK_NEAR(out.last_allocated, 25, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* Unavailable, stale and out-of-band vehicles are never chosen. */
static void test_eligibility(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "ok", 50, 7, 1, 1, 0.2, 0);
	add(f, "unavailable", 90, 7, 0, 9, 0.1, 0);
	add(f, "stale", 90, 7, 1, 9, 0.1, 301000);
	add(f, "too-low-fcr", 15, 7, 1, 9, 0.1, 0);
	add(f, "zero-max", 90, 0, 1, 9, 0.1, 0);
	struct disp_engine *e = engine(f);
	submit(e, 0, 100);
	CHECK_INT(out.ncmd, 1);
	CHECK_STR(out.cmd[0].vid, "ok");
	/* load shedding's band starts at 10%: the 15% vehicle is eligible there */
	submit(e, 2, 100);
	CHECK(cmd_kw("too-low-fcr") > 0);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* All accept: complete as soon as the last ack arrives. */
static void test_all_acked_complete(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "a", 80, 11, 1, 5, 0.1, 0);
	add(f, "b", 70, 11, 1, 5, 0.1, 0);
	struct disp_engine *e = engine(f);
	char *id = submit(e, 0, 15);
	ack(e, id, "a", 1, 100);
	CHECK_INT(disp_engine_active(e), 1);
	ack(e, id, "b", 1, 200);
	CHECK_INT(disp_engine_active(e), 0);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_COMPLETE);
	CHECK_NEAR(out.last_acked, 15, 1e-9);
	CHECK_NEAR(out.last_shortfall, 0, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* A reject and a silent vehicle: released with power 0 and their power goes
 * to fresh vehicles, skipping SoC < 20%, under the same dispatch id. */
static void test_reallocation(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "r", 90, 10, 1, 9, 0.1, 0); /* rejects */
	add(f, "s", 85, 10, 1, 9, 0.1, 0); /* silent */
	add(f, "k", 80, 10, 1, 9, 0.1, 0); /* accepts */
	add(f, "spare1", 60, 7, 1, 1, 0.1, 0);
	add(f, "spare2", 50, 22, 1, 1, 0.1, 0);
	struct disp_engine *e = engine(f);
	char *id = submit(e, 0, 30);
	CHECK_INT(out.ncmd, 3);
	ack(e, id, "r", 0, 100);
	ack(e, id, "k", 1, 150);
	disp_engine_tick(e, NOW + 4000, 4000); /* not yet */
	CHECK_INT(out.batches, 1);
	disp_engine_tick(e, NOW + 5000, 5000);
	CHECK_INT(out.batches, 2);
	CHECK_STR(out.id, id);
	CHECK_NEAR(cmd_kw("r"), 0, 1e-9);
	CHECK_NEAR(cmd_kw("s"), 0, 1e-9);
	CHECK_NEAR(cmd_kw("spare1"), 7, 1e-9);
	CHECK_NEAR(cmd_kw("spare2"), 13, 1e-9);
	CHECK_NEAR(cmd_kw("k"), -1, 1e-9); /* an acked vehicle is left alone */
	ack(e, id, "spare1", 1, 5100);
	ack(e, id, "spare2", 1, 5200);
	CHECK_INT(disp_engine_active(e), 0);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_COMPLETE);
	CHECK_NEAR(out.last_acked, 30, 1e-9);
	CHECK_NEAR(out.last_allocated, 30, 1e-9);
	CHECK_INT(out.last_nalloc, 5);
	CHECK_INT(out.last_rejected, 1);
	CHECK_INT(out.last_reallocated, 2);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* Reallocation never uses a vehicle below 20% even where the band allows it. */
static void test_reallocation_skips_low_soc(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "first", 90, 10, 1, 9, 0.1, 0);
	add(f, "low", 15, 50, 1, 1, 0.1, 0); /* eligible for load shedding (>= 10) */
	struct disp_engine *e = engine(f);
	char *id = submit(e, 2, 10);
	CHECK_INT(out.ncmd, 1);
	ack(e, id, "first", 0, 10);
	CHECK_INT(out.batches, 2); /* the release only */
	CHECK_INT(out.ncmd, 1);
	CHECK_NEAR(cmd_kw("first"), 0, 1e-9);
	CHECK_INT(disp_engine_active(e), 0);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_FAILED);
	CHECK_NEAR(out.last_shortfall, 10, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* Not enough fleet: partial with the shortfall. */
static void test_partial(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "a", 80, 7, 1, 5, 0.1, 0);
	struct disp_engine *e = engine(f);
	char *id = submit(e, 1, 20);
	CHECK_NEAR(cmd_kw("a"), 7, 1e-9);
	ack(e, id, "a", 1, 10);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PARTIAL);
	CHECK_NEAR(out.last_shortfall, 13, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* No eligible vehicle: a failed decision at once, no command. */
static void test_no_vehicle(void)
{
	struct disp_fleet *f = disp_fleet_new();
	struct disp_engine *e = engine(f);
	submit(e, 0, 20);
	CHECK_INT(out.batches, 0);
	CHECK_INT(out.decisions, 1);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_FAILED);
	CHECK_INT(disp_engine_active(e), 0);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* Unknown dispatches, unknown vehicles, duplicates and late acks change nothing. */
static void test_stray_acks(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "a", 80, 10, 1, 5, 0.1, 0);
	add(f, "b", 80, 10, 1, 4, 0.1, 0);
	struct disp_engine *e = engine(f);
	char *id = submit(e, 0, 20);
	ack(e, "no-such-dispatch", "a", 1, 10);
	ack(e, id, "stranger", 1, 10);
	ack(e, id, "a", 1, 20);
	ack(e, id, "a", 0, 30); /* duplicate: ignored */
	CHECK_INT(disp_engine_active(e), 1);
	ack(e, id, "b", 1, 40);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_COMPLETE);
	ack(e, id, "b", 0, 50); /* after the end: ignored */
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_COMPLETE);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* Reallocation stops after max_rounds; an older state never replaces a newer one. */
static void test_rounds_bounded_and_stale_updates(void)
{
	struct disp_fleet *f = disp_fleet_new();
	char id[16];
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "v%d", i);
		add(f, id, 90 - i, 5, 1, 5, 0.1, 0);
	}
	add(f, "v0", 10, 5, 0, 5, 0.1, 1000); /* older: ignored */
	struct disp_vehicle v;
	CHECK_INT(disp_fleet_get(f, "v0", &v), 0);
	CHECK_INT(v.available, 1);
	struct disp_engine *e = engine(f);
	submit(e, 0, 5);
	for (int r = 1; r <= 5; r++)
		disp_engine_tick(e, NOW + r * 5000, r * 5000); /* nobody ever answers */
	CHECK_INT(disp_engine_active(e), 0);
	CHECK_INT(out.batches, 5); /* first + 3 reallocations + the last release */
	CHECK_INT(out.last_nalloc, 4);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_FAILED);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* The configured strategy decides, and the decision says which. */
static void test_smart_by_soc(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "hi-prio-low-soc", 30, 10, 1, 9, 0.1, 0);
	add(f, "low-prio-high-soc", 95, 10, 1, 1, 0.1, 0);
	add(f, "mid", 60, 10, 1, 5, 0.1, 0);
	struct disp_policy pol = policy(DISP_SMART);
	pol.params[0].weights = (struct disp_weights){ .soc = 1 };
	struct disp_engine *e = engine_with(f, &pol);
	submit(e, 0, 15);
	CHECK_STR(out.dispatcher, "smart");
	CHECK_NEAR(cmd_kw("low-prio-high-soc"), 10, 1e-9);
	CHECK_NEAR(cmd_kw("mid"), 5, 1e-9);
	CHECK_NEAR(cmd_kw("hi-prio-low-soc"), -1, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* LP-first: LP when it can meet the request, Smart (recorded) when not. */
static void test_lp_first(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "a", 80, 10, 1, 5, 0.1, 0);
	add(f, "b", 60, 10, 1, 5, 0.2, 0);
	/* a site the configuration does not limit: the LP must not mind it */
	V2g__V1__VehicleState s = V2G__V1__VEHICLE_STATE__INIT;
	s.vehicle_id = "c-on-a-site";
	s.soc = 10; /* below the band: not eligible, but its site gets interned */
	s.max_power_kw = 10;
	s.available = 1;
	s.site = "paris-01";
	s.ts_ms = NOW;
	CHECK_INT(disp_fleet_update(f, &s), 0);
	s.vehicle_id = "d-on-a-site";
	s.soc = 50;
	CHECK_INT(disp_fleet_update(f, &s), 0);
	struct disp_policy pol = policy(DISP_SMART);
	pol.params[0].strategy = DISP_LP;
	pol.params[0].lp_fallback = 1;
	struct disp_engine *e = engine_with(f, &pol);
	submit(e, 0, 15);
	CHECK_STR(out.dispatcher, "lp");
	CHECK_NEAR(out.last_allocated, 15, 1e-9);
	disp_engine_free(e);
	e = engine_with(f, &pol);
	submit(e, 0, 50); /* more than the fleet: infeasible for the LP */
	CHECK_STR(out.dispatcher, "lp->smart");
	CHECK_NEAR(out.last_allocated, 30, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* Balanced fallback: a reject's power goes onto the vehicle that acked (a
 * replacing command with its whole new power) before any fresh vehicle. */
static void test_balanced_fallback_onto_acked(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "a", 80, 22, 1, 5, 0.1, 0);
	add(f, "b", 80, 22, 1, 5, 0.1, 0);
	add(f, "fresh", 90, 22, 1, 1, 0.1, 0);
	struct disp_policy pol = policy(DISP_EQUAL);
	pol.fallback = DISP_FB_BALANCED;
	struct disp_engine *e = engine_with(f, &pol);
	char *id = submit(e, 0, 30); /* equal: 10 each over a, b, fresh */
	CHECK_NEAR(cmd_kw("a"), 10, 1e-9);
	CHECK_NEAR(cmd_kw("b"), 10, 1e-9);
	ack(e, id, "a", 1, 10);
	ack(e, id, "fresh", 1, 10);
	ack(e, id, "b", 0, 20);
	/* b's 10 kW over a and fresh by remaining capacity x SoC */
	CHECK_NEAR(cmd_kw("b"), 0, 1e-9);
	double na = cmd_kw("a"), nf = cmd_kw("fresh");
	CHECK(na > 10 && nf > 10);
	CHECK_NEAR(na + nf, 30, 1e-9);
	ack(e, id, "a", 1, 30);
	ack(e, id, "fresh", 1, 30);
	CHECK_INT(out.last_status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_COMPLETE);
	CHECK_NEAR(out.last_acked, 30, 1e-9);
	CHECK_NEAR(out.last_allocated, 30, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* The tuner raises the availability weight after a dispatch nobody acked. */
static void test_tuner(void)
{
	struct disp_fleet *f = disp_fleet_new();
	add(f, "a", 80, 22, 1, 5, 0.1, 0);
	struct disp_policy pol = policy(DISP_SMART);
	pol.tuner_enabled = 1;
	pol.tuner = disp_ack_tuner_defaults();
	struct disp_engine *e = engine_with(f, &pol);
	double before = disp_engine_weights(e, 0).availability;
	char *id = submit(e, 0, 5);
	ack(e, id, "a", 0, 10);
	CHECK_NEAR(disp_engine_weights(e, 0).availability, before + pol.tuner.step_up, 1e-9);
	CHECK_NEAR(disp_engine_weights(e, 1).availability, disp_default_weights(1).availability,
	           1e-12);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* Segments: a configured segment's own weights rank its vehicles. */
static void test_segments(void)
{
	struct disp_fleet *f = disp_fleet_new();
	V2g__V1__VehicleState s = V2G__V1__VEHICLE_STATE__INIT;
	const char *ids[] = { "t-cheap", "t-dear", "c-1", "c-2" };
	const float tariff[] = { 0.1f, 0.3f, 0.2f, 0.2f };
	const char *seg[] = { "taxi", "taxi", "commuter", "commuter" };
	for (int i = 0; i < 4; i++) {
		s.vehicle_id = (char *)ids[i];
		s.soc = 80;
		s.max_power_kw = 10;
		s.available = 1;
		s.tariff = tariff[i];
		s.segment = (char *)seg[i];
		s.ts_ms = NOW;
		CHECK_INT(disp_fleet_update(f, &s), 0);
	}
	struct disp_policy pol = policy(DISP_SMART);
	pol.nsegments = 1;
	snprintf(pol.segments[0].name, sizeof(pol.segments[0].name), "taxi");
	pol.segments[0].params.strategy = DISP_SMART;
	pol.segments[0].params.max_rounds = 5;
	pol.segments[0].params.weights = (struct disp_weights){ .price = 1 };
	struct disp_engine *e = engine_with(f, &pol);
	submit(e, 0, 20); /* half to each group (equal capacity): 10 to taxi */
	CHECK_STR(out.dispatcher, "segmented");
	CHECK_NEAR(out.last_allocated, 20, 1e-9);
	CHECK_NEAR(cmd_kw("t-cheap"), 10, 1e-9);
	CHECK_NEAR(cmd_kw("t-dear"), -1, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* Configured site limits hold: a feeder under a service entrance. */
static void test_site_limits(void)
{
	struct disp_fleet *f = disp_fleet_new();
	V2g__V1__VehicleState s = V2G__V1__VEHICLE_STATE__INIT;
	const char *ids[] = { "f1-a", "f1-b", "f2-a", "other" };
	const char *site[] = { "feeder-1", "feeder-1", "feeder-2", "elsewhere" };
	for (int i = 0; i < 4; i++) {
		s.vehicle_id = (char *)ids[i];
		s.soc = 90 - i;
		s.max_power_kw = 22;
		s.available = 1;
		s.site = (char *)site[i];
		s.ts_ms = NOW;
		CHECK_INT(disp_fleet_update(f, &s), 0);
	}
	struct disp_policy pol = policy(DISP_LP);
	struct disp_policy_site lim[] = { { "feeder-1", "service", 15 },
		                          { "feeder-2", "service", -1 },
		                          { "service", "", 25 } };
	pol.sites = lim;
	pol.nsites = 3;
	struct disp_engine *e = engine_with(f, &pol);
	submit(e, 0, 60);
	double f1 = (cmd_kw("f1-a") > 0 ? cmd_kw("f1-a") : 0) +
	            (cmd_kw("f1-b") > 0 ? cmd_kw("f1-b") : 0);
	double f2 = cmd_kw("f2-a") > 0 ? cmd_kw("f2-a") : 0;
	CHECK(f1 <= 15 + 1e-9);
	CHECK(f1 + f2 <= 25 + 1e-9);
	CHECK_NEAR(cmd_kw("other"), 22, 1e-9);
	CHECK_NEAR(out.last_allocated, 25 + 22, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* --- site capacity from the DLM ---------------------------------------- */

/* Vehicles at a site: 22 kW each, SoC 90 (so the priority strategy takes
 * them in id order). */
static void add_at(struct disp_fleet *f, const char *id, const char *site, int64_t ts)
{
	V2g__V1__VehicleState s = V2G__V1__VEHICLE_STATE__INIT;
	s.vehicle_id = (char *)id;
	s.soc = 90;
	s.max_power_kw = 22;
	s.available = 1;
	s.site = (char *)site;
	s.ts_ms = ts;
	CHECK_INT(disp_fleet_update(f, &s), 0);
}

static int capacity(struct disp_engine *e, const char *site, double avail, double limit,
                    double load, int64_t ts, int64_t now)
{
	V2g__V1__SiteCapacity c = V2G__V1__SITE_CAPACITY__INIT;
	c.site = (char *)site;
	c.available_kw = avail;
	c.limit_kw = limit;
	c.load_kw = load;
	c.ts_ms = ts;
	return disp_engine_site_capacity(e, &c, now);
}

static double site_kw(const char *prefix)
{
	double kw = 0;
	for (int i = 0; i < out.ncmd; i++)
		if (!strncmp(out.cmd[i].vid, prefix, strlen(prefix)) && out.cmd[i].kw > 0)
			kw += out.cmd[i].kw;
	return kw;
}

static struct disp_engine *engine_ttl(struct disp_fleet *f, const struct disp_policy *pol,
                                      int64_t ttl)
{
	struct disp_config c = config();
	struct disp_engine_ops ops = { cap_commands, cap_decision, NULL };
	if (pol)
		c.policy = *pol;
	c.site_capacity_ttl_ms = ttl;
	memset(&out, 0, sizeof(out));
	return disp_engine_new(&c, f, NULL, &ops);
}

static void test_site_capacity_figures(void)
{
	/* every signal type is power delivered to the grid */
	for (int t = 0; t < 3; t++)
		CHECK_INT(disp_signal_direction(t), DISP_EXPORT);
	/* export: from load L under limit M the site swings down to -M */
	CHECK_NEAR(disp_site_capacity_kw(DISP_EXPORT, 50, 40, -10), 30, 1e-12);
	CHECK_NEAR(disp_site_capacity_kw(DISP_EXPORT, 20, 200, 180), 380, 1e-12);
	CHECK_NEAR(disp_site_capacity_kw(DISP_EXPORT, 45, 20, -25), 0, 0); /* already beyond */
	CHECK_NEAR(disp_site_capacity_kw(DISP_EXPORT, 50, 0, 10), -1, 0);  /* no limit said */
	CHECK_NEAR(disp_site_capacity_kw(DISP_EXPORT, 50, NAN, 10), -1, 0);
	/* import: what the site may still draw */
	CHECK_NEAR(disp_site_capacity_kw(DISP_IMPORT, 50, 40, -10), 50, 1e-12);
	CHECK_NEAR(disp_site_capacity_kw(DISP_IMPORT, -5, 40, 45), 0, 0); /* over its limit */
	CHECK_NEAR(disp_site_capacity_kw(DISP_IMPORT, NAN, 40, 45), -1, 0);
}

/* A fresh DLM figure caps the site's share; configured limits still hold
 * (the minimum of both), nested as configured. */
static void test_site_capacity_caps(void)
{
	struct disp_fleet *f = disp_fleet_new();
	struct v2g_metric *updates = v2g_counter("dispatch_site_capacity_updates_total", "", NULL);
	struct v2g_metric *gauge = v2g_gauge("dispatch_site_capacity_kw", "", "site");
	add_at(f, "p-1", "paris-01", NOW);
	add_at(f, "p-2", "paris-01", NOW);
	add_at(f, "p-3", "paris-01", NOW);
	add_at(f, "l-1", "lyon-01", NOW);

	/* without a figure: 3 x 22 at Paris, 22 at Lyon */
	struct disp_engine *e = engine_ttl(f, NULL, 10000);
	submit(e, 0, 100);
	CHECK_NEAR(site_kw("p-"), 66, 1e-9);
	CHECK_NEAR(site_kw("l-"), 22, 1e-9);

	/* Paris's DLM: limit 40 kW, already exporting 10 -> 30 kW more at most
	 * (its import headroom, 50 kW, does not bound an export) */
	double before = v2g_metric_value(updates, NULL);
	CHECK_INT(capacity(e, "paris-01", 50, 40, -10, NOW - 200, NOW), 0);
	CHECK_NEAR(v2g_metric_value(updates, NULL), before + 1, 0);
	CHECK_NEAR(v2g_metric_value(gauge, "paris-01"), 30, 1e-9);
	submit(e, 0, 100);
	CHECK_NEAR(site_kw("p-"), 30, 1e-9);
	CHECK_NEAR(site_kw("l-"), 22, 1e-9);
	CHECK_NEAR(out.last_allocated, 52, 1e-9);
	/* every signal type alike */
	submit(e, 2, 100);
	CHECK_NEAR(site_kw("p-"), 30, 1e-9);

	/* a site with nothing left gets nothing; the others are served */
	CHECK_INT(capacity(e, "paris-01", 45, 20, -25, NOW, NOW), 0);
	submit(e, 1, 100);
	CHECK_NEAR(site_kw("p-"), 0, 0);
	CHECK_NEAR(site_kw("l-"), 22, 1e-9);
	/* a figure without limit_kw bounds nothing */
	CHECK_INT(capacity(e, "paris-01", 45, 0, -25, NOW, NOW), 0);
	submit(e, 0, 100);
	CHECK_NEAR(site_kw("p-"), 66, 1e-9);
	disp_engine_free(e);

	/* with configured limits: the tighter holds, under the parent */
	struct disp_policy pol = policy(DISP_PRIORITY);
	struct disp_policy_site lim[] = { { "paris-01", "france", 45 },
		                          { "lyon-01", "france", -1 },
		                          { "france", "", 60 } };
	pol.sites = lim;
	pol.nsites = 3;
	e = engine_ttl(f, &pol, 10000);
	submit(e, 0, 100); /* configured only: Paris 45, Paris + Lyon 60 */
	CHECK(site_kw("p-") <= 45 + 1e-9);
	CHECK_NEAR(site_kw("p-") + site_kw("l-"), 60, 1e-9);
	CHECK_INT(capacity(e, "paris-01", 50, 40, -10, NOW, NOW), 0);
	submit(e, 0, 100); /* min(45, 30) = 30 at Paris, then Lyon under France */
	CHECK_NEAR(site_kw("p-"), 30, 1e-9);
	CHECK_NEAR(site_kw("l-"), 22, 1e-9);
	CHECK_INT(capacity(e, "paris-01", 200, 100, 90, NOW, NOW), 0);
	submit(e, 0, 100); /* DLM 190: the configured 45 binds */
	CHECK(site_kw("p-") <= 45 + 1e-9);
	CHECK(site_kw("p-") + site_kw("l-") <= 60 + 1e-9);
	/* Lyon known only from its DLM: a top-level limit, the parent still holds */
	CHECK_INT(capacity(e, "lyon-01", 10, 10, 0, NOW, NOW), 0);
	submit(e, 0, 100);
	CHECK_NEAR(site_kw("l-"), 10, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

/* A figure older than the ttl is ignored (once logged and counted) until
 * the next one; a figure dated in the future ages from its arrival. */
static void test_site_capacity_stale(void)
{
	struct disp_fleet *f = disp_fleet_new();
	struct v2g_metric *stale = v2g_counter("dispatch_site_capacity_stale_total", "", "site");
	const int64_t later = NOW + 3000;
	add_at(f, "s-1", "stale-site", later);
	add_at(f, "s-2", "stale-site", later);
	struct disp_engine *e = engine_ttl(f, NULL, 2000);

	CHECK_INT(capacity(e, "stale-site", 30, 20, 0, NOW, NOW), 0);
	V2g__V1__Signal sig = V2G__V1__SIGNAL__INIT;
	char id[37];
	sig.signal_id = "sig";
	sig.power_kw = 40;
	sig.duration_min = 15;
	CHECK_INT(disp_engine_submit(e, &sig, NOW + 1999, 0, id), 0);
	CHECK_NEAR(site_kw("s-"), 20, 1e-9); /* fresh: capped */

	double before = v2g_metric_value(stale, "stale-site");
	CHECK_INT(disp_engine_submit(e, &sig, later, 0, id), 0);
	CHECK_NEAR(site_kw("s-"), 40, 1e-9); /* stale: ignored */
	CHECK_NEAR(v2g_metric_value(stale, "stale-site"), before + 1, 0);
	disp_engine_tick(e, later + 10, 1);
	CHECK_INT(disp_engine_submit(e, &sig, later + 20, 0, id), 0);
	CHECK_NEAR(v2g_metric_value(stale, "stale-site"), before + 1, 0); /* counted once */

	/* fresh again with the next figure */
	CHECK_INT(capacity(e, "stale-site", 30, 15, 0, later, later), 0);
	CHECK_INT(disp_engine_submit(e, &sig, later + 100, 0, id), 0);
	CHECK_NEAR(site_kw("s-"), 15, 1e-9);
	/* the tick notices a figure going stale without a dispatch */
	disp_engine_tick(e, later + 5000, 2);
	CHECK_NEAR(v2g_metric_value(stale, "stale-site"), before + 2, 0);

	/* a DLM clock 1 h ahead: the figure still ages from its arrival */
	CHECK_INT(capacity(e, "stale-site", 30, 10, 0, later + 3600000, later), 0);
	CHECK_INT(disp_engine_submit(e, &sig, later + 2001, 0, id), 0);
	CHECK_NEAR(site_kw("s-"), 40, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

static void test_site_capacity_refused(void)
{
	struct disp_fleet *f = disp_fleet_new();
	struct disp_engine *e = engine_ttl(f, NULL, 0); /* 0: the default ttl */
	char name[80];
	CHECK_INT(capacity(e, "", 1, 1, 0, NOW, NOW), V2G_ERR_INVAL);
	CHECK_INT(capacity(e, NULL, 1, 1, 0, NOW, NOW), V2G_ERR_INVAL);
	CHECK_INT(capacity(e, "s", NAN, 1, 0, NOW, NOW), V2G_ERR_INVAL);
	CHECK_INT(capacity(e, "s", 1, INFINITY, 0, NOW, NOW), V2G_ERR_INVAL);
	CHECK_INT(capacity(e, "s", 1, 1, NAN, NOW, NOW), V2G_ERR_INVAL);
	memset(name, 'x', 70);
	name[70] = '\0';
	CHECK_INT(capacity(e, name, 1, 1, 0, NOW, NOW), V2G_ERR_INVAL);
	CHECK_INT(disp_engine_site_capacity(e, NULL, NOW), V2G_ERR_INVAL);
	/* bounded: past DISP_MAX_DLM_SITES sites, new ones are dropped */
	v2g_log_init("test", V2G_LOG_WARN, 0); /* not a line per site */
	int bad = 0;
	for (int i = 0; i < DISP_MAX_DLM_SITES; i++) {
		snprintf(name, sizeof(name), "site-%d", i);
		bad += capacity(e, name, 1, 1, 0, NOW, NOW) != 0;
	}
	CHECK_INT(bad, 0);
	CHECK_INT(capacity(e, "one-too-many", 1, 1, 0, NOW, NOW), V2G_ERR_TOOBIG);
	CHECK_INT(capacity(e, "site-7", 1, 1, 0, NOW, NOW), 0); /* known ones still update */
	v2g_log_init("test", V2G_LOG_INFO, 0);
	/* the default ttl is 10 s */
	add_at(f, "d-1", "site-7", NOW);
	submit(e, 0, 30);
	CHECK_NEAR(site_kw("d-"), 1, 1e-9);
	disp_engine_free(e);
	disp_fleet_free(f);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_preference_order),
		HCASE(test_eligibility),
		HCASE(test_all_acked_complete),
		HCASE(test_reallocation),
		HCASE(test_reallocation_skips_low_soc),
		HCASE(test_partial),
		HCASE(test_no_vehicle),
		HCASE(test_stray_acks),
		HCASE(test_rounds_bounded_and_stale_updates),
		HCASE(test_smart_by_soc),
		HCASE(test_lp_first),
		HCASE(test_balanced_fallback_onto_acked),
		HCASE(test_tuner),
		HCASE(test_segments),
		HCASE(test_site_limits),
		HCASE(test_site_capacity_figures),
		HCASE(test_site_capacity_caps),
		HCASE(test_site_capacity_stale),
		HCASE(test_site_capacity_refused),
	};
	return harness_main("dispatch-engine", cases, HARNESS_N(cases));
}
