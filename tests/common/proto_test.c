/* Every bus message kind through Envelope pack/unpack (protobuf-c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "v2g/bus.h"

typedef V2g__V1__Envelope Env;

/* Packs env and unpacks it again; the caller frees with v2g_env_free(). */
static Env *round_trip(const Env *env)
{
	size_t n = v2g__v1__envelope__get_packed_size(env);
	uint8_t *buf = malloc(n ? n : 1);
	size_t w = v2g__v1__envelope__pack(env, buf);
	CHECK_INT(w, n);
	Env *out = v2g__v1__envelope__unpack(NULL, w, buf);
	CHECK(out != NULL);
	free(buf);
	if (out)
		CHECK_INT(out->body_case, env->body_case);
	return out;
}

static void test_empty_envelope_defaults(void)
{
	Env e = V2G__V1__ENVELOPE__INIT;
	CHECK_INT(v2g__v1__envelope__get_packed_size(&e), 0);
	Env *o = v2g__v1__envelope__unpack(NULL, 0, (const uint8_t *)"");
	CHECK(o != NULL);
	if (!o)
		return;
	CHECK_INT(o->version, 0);
	CHECK_STR(o->sender, ""); /* strings default to "", never NULL */
	CHECK_INT(o->sent_ms, 0);
	CHECK_INT(o->body_case, V2G__V1__ENVELOPE__BODY__NOT_SET);
	v2g_env_free(o);
}

static void test_header_fields(void)
{
	Env e = V2G__V1__ENVELOPE__INIT;
	V2g__V1__Ping ping = V2G__V1__PING__INIT;
	e.version = 1;
	e.sender = "dispatch-engine";
	e.sent_ms = 1795260744123LL;
	e.body_case = V2G__V1__ENVELOPE__BODY_PING;
	e.ping = &ping;
	Env *o = round_trip(&e);
	if (!o)
		return;
	CHECK_INT(o->version, 1);
	CHECK_STR(o->sender, "dispatch-engine");
	CHECK_INT(o->sent_ms, 1795260744123LL);
	CHECK(o->ping != NULL); /* an empty body is still present */
	v2g_env_free(o);
}

static void test_error_pong(void)
{
	Env e = V2G__V1__ENVELOPE__INIT;
	V2g__V1__Error err = V2G__V1__ERROR__INIT;
	err.code = 503;
	err.message = "store: database unavailable — réessayez";
	e.body_case = V2G__V1__ENVELOPE__BODY_ERROR;
	e.error = &err;
	Env *o = round_trip(&e);
	if (o) {
		CHECK_INT(o->error->code, 503);
		CHECK_STR(o->error->message, err.message);
		v2g_env_free(o);
	}
	V2g__V1__Pong pong = V2G__V1__PONG__INIT;
	pong.service = "store";
	pong.ready = 1;
	e.body_case = V2G__V1__ENVELOPE__BODY_PONG;
	e.pong = &pong;
	o = round_trip(&e);
	if (o) {
		CHECK_STR(o->pong->service, "store");
		CHECK_INT(o->pong->ready, 1);
		v2g_env_free(o);
	}
	/* a negative code survives (int32 is sign-extended on the wire) */
	err.code = -1;
	e.body_case = V2G__V1__ENVELOPE__BODY_ERROR;
	e.error = &err;
	o = round_trip(&e);
	if (o) {
		CHECK_INT(o->error->code, -1);
		v2g_env_free(o);
	}
}

static void fill_signal(V2g__V1__Signal *s)
{
	s->signal_id = "sig-42";
	s->type = V2G__V1__SIGNAL_TYPE__SIGNAL_TYPE_LOAD_SHEDDING;
	s->power_kw = 1234.5;
	s->duration_min = 15;
	s->timestamp_ms = 1795260744000LL;
	s->market_price = 0.1875;
	s->has_market_price = 1;
	s->source = "rte-feed";
	s->received_ms = 1795260744321LL;
}

static void check_signal(const V2g__V1__Signal *s)
{
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_STR(s->signal_id, "sig-42");
	CHECK_INT(s->type, V2G__V1__SIGNAL_TYPE__SIGNAL_TYPE_LOAD_SHEDDING);
	CHECK_NEAR(s->power_kw, 1234.5, 0);
	CHECK_INT(s->duration_min, 15);
	CHECK_INT(s->timestamp_ms, 1795260744000LL);
	CHECK_NEAR(s->market_price, 0.1875, 0);
	CHECK_INT(s->has_market_price, 1);
	CHECK_STR(s->source, "rte-feed");
	CHECK_INT(s->received_ms, 1795260744321LL);
}

static void test_signal_messages(void)
{
	Env e = V2G__V1__ENVELOPE__INIT;
	V2g__V1__Signal sig = V2G__V1__SIGNAL__INIT;
	V2g__V1__SubmitSignal sub = V2G__V1__SUBMIT_SIGNAL__INIT;
	fill_signal(&sig);
	sub.signal = &sig;
	e.body_case = V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL;
	e.submit_signal = &sub;
	Env *o = round_trip(&e);
	if (o) {
		check_signal(o->submit_signal->signal);
		v2g_env_free(o);
	}
	/* a SubmitSignal without its Signal: the pointer stays NULL */
	sub.signal = NULL;
	o = round_trip(&e);
	if (o) {
		CHECK(o->submit_signal->signal == NULL);
		v2g_env_free(o);
	}

	V2g__V1__SubmitSignalReply rep = V2G__V1__SUBMIT_SIGNAL_REPLY__INIT;
	rep.signal_id = "sig-42";
	rep.dispatch_id = "d-0001";
	e.body_case = V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL_REPLY;
	e.submit_signal_reply = &rep;
	o = round_trip(&e);
	if (o) {
		CHECK_STR(o->submit_signal_reply->signal_id, "sig-42");
		CHECK_STR(o->submit_signal_reply->dispatch_id, "d-0001");
		v2g_env_free(o);
	}

	V2g__V1__IngestSignal in = V2G__V1__INGEST_SIGNAL__INIT;
	in.json = "{\"signal_type\":\"FCR\",\"power_kw\":500,\"note\":\"\\u00e9\\n\"}";
	in.source = "api";
	e.body_case = V2G__V1__ENVELOPE__BODY_INGEST_SIGNAL;
	e.ingest_signal = &in;
	o = round_trip(&e);
	if (o) {
		CHECK_STR(o->ingest_signal->json, in.json);
		CHECK_STR(o->ingest_signal->source, "api");
		v2g_env_free(o);
	}
}

static void test_telemetry_batch(void)
{
	enum { N = 500 };
	Env e = V2G__V1__ENVELOPE__INIT;
	V2g__V1__TelemetryBatch tb = V2G__V1__TELEMETRY_BATCH__INIT;
	V2g__V1__VehicleState *st = calloc(N, sizeof(*st));
	V2g__V1__VehicleState **ptrs = calloc(N, sizeof(*ptrs));
	char(*ids)[16] = calloc(N, sizeof(*ids));
	for (int i = 0; i < N; i++) {
		v2g__v1__vehicle_state__init(&st[i]);
		snprintf(ids[i], sizeof(ids[i]), "EV-%05d", i);
		st[i].vehicle_id = ids[i];
		st[i].soc = i % 101;
		st[i].max_power_kw = 11 + i * 0.5;
		st[i].available = i % 3 != 0;
		st[i].priority = i % 5 - 2; /* negative priorities too */
		st[i].tariff = 0.15;
		st[i].segment = "fleet";
		st[i].fleet_id = "F1";
		st[i].site = "paris-1";
		st[i].cluster = "c2";
		st[i].battery_kwh = 60;
		st[i].ts_ms = 1795260744000LL + i;
		st[i].power_kw = -7.4;
		ptrs[i] = &st[i];
	}
	tb.n_states = N;
	tb.states = ptrs;
	e.body_case = V2G__V1__ENVELOPE__BODY_TELEMETRY;
	e.telemetry = &tb;
	Env *o = round_trip(&e);
	if (o) {
		CHECK_INT(o->telemetry->n_states, N);
		int bad = 0;
		for (int i = 0; i < N && i < (int)o->telemetry->n_states; i++) {
			const V2g__V1__VehicleState *s = o->telemetry->states[i];
			bad += strcmp(s->vehicle_id, ids[i]) != 0 || s->soc != i % 101 ||
			       s->max_power_kw != 11 + i * 0.5 || s->available != (i % 3 != 0) ||
			       s->priority != i % 5 - 2 || s->tariff != 0.15 ||
			       strcmp(s->segment, "fleet") || strcmp(s->fleet_id, "F1") ||
			       strcmp(s->site, "paris-1") || strcmp(s->cluster, "c2") ||
			       s->battery_kwh != 60 || s->ts_ms != 1795260744000LL + i ||
			       s->power_kw != -7.4;
		}
		CHECK_INT(bad, 0);
		v2g_env_free(o);
	}
	/* an empty batch is a valid, present body */
	tb.n_states = 0;
	tb.states = NULL;
	o = round_trip(&e);
	if (o) {
		CHECK(o->telemetry != NULL);
		CHECK_INT(o->telemetry->n_states, 0);
		v2g_env_free(o);
	}
	free(ids);
	free(ptrs);
	free(st);
}

static void test_commands_acks_report(void)
{
	Env e = V2G__V1__ENVELOPE__INIT;
	V2g__V1__Command c[3];
	V2g__V1__Command *cp[3];
	static const char *const vid[] = { "EV-1", "EV-2", "EV-3" };
	static const double kw[] = { 7.4, 0, -11 };
	for (int i = 0; i < 3; i++) {
		v2g__v1__command__init(&c[i]);
		c[i].vehicle_id = (char *)vid[i];
		c[i].power_kw = kw[i];
		cp[i] = &c[i];
	}
	V2g__V1__CommandBatch cb = V2G__V1__COMMAND_BATCH__INIT;
	cb.dispatch_id = "d-7";
	cb.signal_type = 1;
	cb.duration_min = 30;
	cb.issued_at_ms = 1795260744000LL;
	cb.n_commands = 3;
	cb.commands = cp;
	e.body_case = V2G__V1__ENVELOPE__BODY_COMMANDS;
	e.commands = &cb;
	Env *o = round_trip(&e);
	if (o) {
		CHECK_STR(o->commands->dispatch_id, "d-7");
		CHECK_INT(o->commands->signal_type, 1);
		CHECK_INT(o->commands->duration_min, 30);
		CHECK_INT(o->commands->issued_at_ms, 1795260744000LL);
		CHECK_INT(o->commands->n_commands, 3);
		for (size_t i = 0; i < 3 && i < o->commands->n_commands; i++) {
			CHECK_STR(o->commands->commands[i]->vehicle_id, vid[i]);
			CHECK_NEAR(o->commands->commands[i]->power_kw, kw[i], 0);
		}
		v2g_env_free(o);
	}

	V2g__V1__Ack a[2];
	V2g__V1__Ack *ap[2] = { &a[0], &a[1] };
	v2g__v1__ack__init(&a[0]);
	v2g__v1__ack__init(&a[1]);
	a[0].vehicle_id = "EV-1";
	a[0].dispatch_id = "d-7";
	a[0].accepted = 1;
	a[0].received_ms = 1795260744500LL;
	a[1].vehicle_id = "EV-2";
	a[1].dispatch_id = "d-7";
	a[1].accepted = 0;
	a[1].reason = "soc too low";
	V2g__V1__AckBatch ab = V2G__V1__ACK_BATCH__INIT;
	ab.n_acks = 2;
	ab.acks = ap;
	e.body_case = V2G__V1__ENVELOPE__BODY_ACKS;
	e.acks = &ab;
	o = round_trip(&e);
	if (o) {
		CHECK_INT(o->acks->n_acks, 2);
		if (o->acks->n_acks == 2) {
			CHECK_STR(o->acks->acks[0]->vehicle_id, "EV-1");
			CHECK_INT(o->acks->acks[0]->accepted, 1);
			CHECK_STR(o->acks->acks[0]->reason, "");
			CHECK_INT(o->acks->acks[0]->received_ms, 1795260744500LL);
			CHECK_STR(o->acks->acks[1]->dispatch_id, "d-7");
			CHECK_INT(o->acks->acks[1]->accepted, 0);
			CHECK_STR(o->acks->acks[1]->reason, "soc too low");
			CHECK_INT(o->acks->acks[1]->received_ms, 0);
		}
		v2g_env_free(o);
	}

	V2g__V1__PublishReport pr = V2G__V1__PUBLISH_REPORT__INIT;
	pr.dispatch_id = "d-7";
	pr.published = 9998;
	pr.failed = 2;
	pr.last_published_ms = 1795260744999LL;
	e.body_case = V2G__V1__ENVELOPE__BODY_PUBLISH_REPORT;
	e.publish_report = &pr;
	o = round_trip(&e);
	if (o) {
		CHECK_STR(o->publish_report->dispatch_id, "d-7");
		CHECK_INT(o->publish_report->published, 9998);
		CHECK_INT(o->publish_report->failed, 2);
		CHECK_INT(o->publish_report->last_published_ms, 1795260744999LL);
		v2g_env_free(o);
	}
}

static void fill_allocations(V2g__V1__Allocation *al, V2g__V1__Allocation **ap)
{
	for (int i = 0; i < 2; i++) {
		v2g__v1__allocation__init(&al[i]);
		ap[i] = &al[i];
	}
	al[0].vehicle_id = "EV-1";
	al[0].power_kw = 7.4;
	al[0].acked = 1;
	al[0].acked_ms = 1795260744600LL;
	al[1].vehicle_id = "EV-2";
	al[1].power_kw = 3.6;
	al[1].rejected = 1;
	al[1].reallocated = 1;
	al[1].reason = "timeout";
	al[1].round = 1;
}

static void check_allocations(V2g__V1__Allocation **al, size_t n)
{
	CHECK_INT(n, 2);
	if (n != 2)
		return;
	CHECK_STR(al[0]->vehicle_id, "EV-1");
	CHECK_NEAR(al[0]->power_kw, 7.4, 0);
	CHECK_INT(al[0]->acked, 1);
	CHECK_INT(al[0]->rejected, 0);
	CHECK_INT(al[0]->acked_ms, 1795260744600LL);
	CHECK_STR(al[1]->vehicle_id, "EV-2");
	CHECK_INT(al[1]->rejected, 1);
	CHECK_INT(al[1]->reallocated, 1);
	CHECK_STR(al[1]->reason, "timeout");
	CHECK_INT(al[1]->round, 1);
}

static void fill_decision(V2g__V1__DispatchDecision *d, V2g__V1__Signal *sig,
                          V2g__V1__Allocation **ap)
{
	fill_signal(sig);
	d->dispatch_id = "d-7";
	d->signal = sig;
	d->status = V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PARTIAL;
	d->target_power_kw = 1234.5;
	d->allocated_power_kw = 11;
	d->acked_power_kw = 7.4;
	d->n_allocations = 2;
	d->allocations = ap;
	d->started_ms = 1795260744000LL;
	d->completed_ms = 1795260745000LL;
	d->dispatcher = "greedy";
	d->shortfall_kw = 1223.5;
	d->rounds = 2;
	d->first_command_ms = 1795260744010LL;
}

static void check_decision(const V2g__V1__DispatchDecision *d)
{
	CHECK(d != NULL);
	if (!d)
		return;
	CHECK_STR(d->dispatch_id, "d-7");
	check_signal(d->signal);
	CHECK_INT(d->status, V2G__V1__DISPATCH_STATUS__DISPATCH_STATUS_PARTIAL);
	CHECK_NEAR(d->target_power_kw, 1234.5, 0);
	CHECK_NEAR(d->allocated_power_kw, 11, 0);
	CHECK_NEAR(d->acked_power_kw, 7.4, 0);
	check_allocations(d->allocations, d->n_allocations);
	CHECK_INT(d->started_ms, 1795260744000LL);
	CHECK_INT(d->completed_ms, 1795260745000LL);
	CHECK_STR(d->dispatcher, "greedy");
	CHECK_NEAR(d->shortfall_kw, 1223.5, 0);
	CHECK_INT(d->rounds, 2);
	CHECK_INT(d->first_command_ms, 1795260744010LL);
}

static void test_decision(void)
{
	Env e = V2G__V1__ENVELOPE__INIT;
	V2g__V1__Signal sig = V2G__V1__SIGNAL__INIT;
	V2g__V1__Allocation al[2], *ap[2];
	V2g__V1__DispatchDecision d = V2G__V1__DISPATCH_DECISION__INIT;
	fill_allocations(al, ap);
	fill_decision(&d, &sig, ap);
	e.body_case = V2G__V1__ENVELOPE__BODY_DECISION;
	e.decision = &d;
	Env *o = round_trip(&e);
	if (o) {
		check_decision(o->decision);
		v2g_env_free(o);
	}
}

static void test_queries(void)
{
	Env e = V2G__V1__ENVELOPE__INIT;
	V2g__V1__GetDispatch gd = V2G__V1__GET_DISPATCH__INIT;
	gd.dispatch_id = "d-7";
	e.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	e.get_dispatch = &gd;
	Env *o = round_trip(&e);
	if (o) {
		CHECK_STR(o->get_dispatch->dispatch_id, "d-7");
		v2g_env_free(o);
	}

	V2g__V1__Signal sig = V2G__V1__SIGNAL__INIT;
	V2g__V1__Allocation al[2], *ap[2];
	V2g__V1__DispatchDecision d = V2G__V1__DISPATCH_DECISION__INIT;
	fill_allocations(al, ap);
	fill_decision(&d, &sig, ap);
	V2g__V1__DispatchReply dr = V2G__V1__DISPATCH_REPLY__INIT;
	dr.found = 1;
	dr.decision = &d;
	e.body_case = V2G__V1__ENVELOPE__BODY_DISPATCH_REPLY;
	e.dispatch_reply = &dr;
	o = round_trip(&e);
	if (o) {
		CHECK_INT(o->dispatch_reply->found, 1);
		check_decision(o->dispatch_reply->decision);
		v2g_env_free(o);
	}
	dr.found = 0;
	dr.decision = NULL;
	o = round_trip(&e);
	if (o) {
		CHECK_INT(o->dispatch_reply->found, 0);
		CHECK(o->dispatch_reply->decision == NULL);
		v2g_env_free(o);
	}

	V2g__V1__LogQuery lq = V2G__V1__LOG_QUERY__INIT;
	lq.start_ms = 1795260000000LL;
	lq.end_ms = 0;
	lq.vehicle_id = "EV-9";
	lq.signal_type = -1; /* any */
	lq.limit = 100;
	e.body_case = V2G__V1__ENVELOPE__BODY_LOG_QUERY;
	e.log_query = &lq;
	o = round_trip(&e);
	if (o) {
		CHECK_INT(o->log_query->start_ms, 1795260000000LL);
		CHECK_INT(o->log_query->end_ms, 0);
		CHECK_STR(o->log_query->vehicle_id, "EV-9");
		CHECK_INT(o->log_query->signal_type, -1);
		CHECK_INT(o->log_query->limit, 100);
		v2g_env_free(o);
	}

	V2g__V1__LogRecord r[2], *rp[2] = { &r[0], &r[1] };
	v2g__v1__log_record__init(&r[0]);
	v2g__v1__log_record__init(&r[1]);
	r[0].dispatch_id = "d-1";
	r[0].signal_id = "s-1";
	r[0].signal_type = 2;
	r[0].target_power_kw = 100;
	r[0].allocated_power_kw = 90;
	r[0].acked_power_kw = 80;
	r[0].status = 1;
	r[0].started_ms = 1;
	r[0].completed_ms = 2;
	r[0].n_allocations = 2;
	r[0].allocations = ap;
	r[0].dispatcher = "lp";
	r[1].dispatch_id = "d-2";
	V2g__V1__LogReply lr = V2G__V1__LOG_REPLY__INIT;
	lr.n_records = 2;
	lr.records = rp;
	e.body_case = V2G__V1__ENVELOPE__BODY_LOG_REPLY;
	e.log_reply = &lr;
	o = round_trip(&e);
	if (o) {
		CHECK_INT(o->log_reply->n_records, 2);
		if (o->log_reply->n_records == 2) {
			const V2g__V1__LogRecord *x = o->log_reply->records[0];
			CHECK_STR(x->dispatch_id, "d-1");
			CHECK_STR(x->signal_id, "s-1");
			CHECK_INT(x->signal_type, 2);
			CHECK_NEAR(x->target_power_kw, 100, 0);
			CHECK_NEAR(x->allocated_power_kw, 90, 0);
			CHECK_NEAR(x->acked_power_kw, 80, 0);
			CHECK_INT(x->status, 1);
			CHECK_INT(x->started_ms, 1);
			CHECK_INT(x->completed_ms, 2);
			check_allocations(x->allocations, x->n_allocations);
			CHECK_STR(x->dispatcher, "lp");
			x = o->log_reply->records[1];
			CHECK_STR(x->dispatch_id, "d-2");
			CHECK_STR(x->signal_id, "");
			CHECK_INT(x->n_allocations, 0);
		}
		v2g_env_free(o);
	}
}

static void test_oneof_last_wins(void)
{
	/* Two bodies on the wire (e.g. concatenated messages): the last wins
	 * and nothing leaks (ASan checks). */
	Env a = V2G__V1__ENVELOPE__INIT, b = V2G__V1__ENVELOPE__INIT;
	V2g__V1__GetDispatch gd = V2G__V1__GET_DISPATCH__INIT;
	V2g__V1__Error err = V2G__V1__ERROR__INIT;
	gd.dispatch_id = "first";
	a.body_case = V2G__V1__ENVELOPE__BODY_GET_DISPATCH;
	a.get_dispatch = &gd;
	err.code = 404;
	b.body_case = V2G__V1__ENVELOPE__BODY_ERROR;
	b.error = &err;
	size_t na = v2g__v1__envelope__get_packed_size(&a);
	size_t nb = v2g__v1__envelope__get_packed_size(&b);
	uint8_t *buf = malloc(na + nb);
	v2g__v1__envelope__pack(&a, buf);
	v2g__v1__envelope__pack(&b, buf + na);
	Env *o = v2g__v1__envelope__unpack(NULL, na + nb, buf);
	CHECK(o != NULL);
	if (o) {
		CHECK_INT(o->body_case, V2G__V1__ENVELOPE__BODY_ERROR);
		CHECK_INT(o->error->code, 404);
		v2g_env_free(o);
	}
	free(buf);
}

static void test_unknown_body_is_skipped(void)
{
	/* A newer peer's body (field 99, a varint) decodes as "no body" so an
	 * older service can answer it instead of failing to decode. */
	static const uint8_t wire[] = { 0x08, 0x01,       /* version = 1 */
		                        0x98, 0x06, 0x05, /* field 99 = 5 */
		                        0x18, 0x07 };     /* sent_ms = 7 */
	Env *o = v2g__v1__envelope__unpack(NULL, sizeof(wire), wire);
	CHECK(o != NULL);
	if (o) {
		CHECK_INT(o->version, 1);
		CHECK_INT(o->sent_ms, 7);
		CHECK_INT(o->body_case, V2G__V1__ENVELOPE__BODY__NOT_SET);
		v2g_env_free(o);
	}
}

static void test_garbage_refused(void)
{
	static const uint8_t bad1[] = { 0xff, 0xff, 0xff, 0xff };
	static const uint8_t bad2[] = { 0x12, 0x10, 'a', 'b' }; /* string longer than the data */
	static const uint8_t bad3[] = { 0x52, 0x02, 0x08 };     /* error body truncated */
	CHECK(v2g__v1__envelope__unpack(NULL, sizeof(bad1), bad1) == NULL);
	CHECK(v2g__v1__envelope__unpack(NULL, sizeof(bad2), bad2) == NULL);
	CHECK(v2g__v1__envelope__unpack(NULL, sizeof(bad3), bad3) == NULL);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_empty_envelope_defaults),
		HCASE(test_header_fields),
		HCASE(test_error_pong),
		HCASE(test_signal_messages),
		HCASE(test_telemetry_batch),
		HCASE(test_commands_acks_report),
		HCASE(test_decision),
		HCASE(test_queries),
		HCASE(test_oneof_last_wins),
		HCASE(test_unknown_body_is_skipped),
		HCASE(test_garbage_refused),
	};
	return harness_main("proto", cases, HARNESS_N(cases));
}
