#include "ingest.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/service.h"
#include "v2g/timeutil.h"
#include "v2g/sync.h"
#include "v2g/signal_type.h"

static struct v2g_metric *m_received, *m_rejected, *m_accepted, *m_unavailable;

static void metrics_init(void)
{
	if (m_received)
		return;
	m_received = v2g_counter("signals_received_total", "Signals received", "source");
	m_rejected = v2g_counter("signals_rejected_total", "Signals refused as invalid", "field");
	m_accepted = v2g_counter("signals_accepted_total", "Signals handed to the dispatch engine",
	                         "signal_type");
	m_unavailable = v2g_counter("signals_dispatch_unavailable_total",
	                            "Signals that could not reach the dispatch engine", NULL);
}

void ingest_submit(struct ingest *in, const char *json, size_t len, const char *source,
                   struct ingest_result *res)
{
	struct ingest_signal is;
	char field[32];
	int rc;

	metrics_init();
	memset(res, 0, sizeof(*res));
	v2g_counter_inc(m_received, source);
	int64_t now = v2g_now_ms();
	if (ingest_signal_parse(json, len, &in->lim, now, &is, res->error, sizeof(res->error))) {
		/* the field is the text before ':' */
		snprintf(field, sizeof(field), "%.*s", (int)strcspn(res->error, ":"), res->error);
		v2g_counter_inc(m_rejected, field);
		v2g_info("INGEST-REJECT", "signal from %s refused: %s", source, res->error);
		res->status = 400;
		return;
	}
	v2g_uuid(res->signal_id);

	V2g__V1__Signal sig = V2G__V1__SIGNAL__INIT;
	V2g__V1__SubmitSignal sub = V2G__V1__SUBMIT_SIGNAL__INIT;
	v2g_env req = V2G__V1__ENVELOPE__INIT, *rep = NULL;
	sig.signal_id = res->signal_id;
	sig.type = (V2g__V1__SignalType)is.type;
	sig.power_kw = is.power_kw;
	sig.duration_min = (uint32_t)is.duration_min;
	sig.timestamp_ms = is.timestamp_ms;
	sig.market_price = is.market_price;
	sig.has_market_price = is.has_market_price;
	sig.source = (char *)source;
	sig.received_ms = now;
	sub.signal = &sig;
	req.body_case = V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL;
	req.submit_signal = &sub;

	rc = v2g_bus_call(in->dispatch, &req, &rep, in->timeout_ms);
	if (rc) {
		v2g_counter_inc(m_unavailable, NULL);
		v2g_warn("INGEST-DISPATCH-DOWN", "signal %s not dispatched: dispatch-engine %s",
		         res->signal_id, v2g_strerror(rc));
		res->status = 503;
		snprintf(res->error, sizeof(res->error), "dispatch-engine unavailable: %s",
		         v2g_strerror(rc));
		return;
	}
	if (rep->body_case == V2G__V1__ENVELOPE__BODY_ERROR) {
		res->status = rep->error->code ? rep->error->code : 500;
		snprintf(res->error, sizeof(res->error), "%s", rep->error->message);
	} else if (rep->body_case == V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL_REPLY) {
		res->status = 202;
		snprintf(res->dispatch_id, sizeof(res->dispatch_id), "%s",
		         rep->submit_signal_reply->dispatch_id);
		v2g_counter_inc(m_accepted, v2g_signal_type_name(is.type));
		v2g_info("INGEST-SIGNAL",
		         "signal=%s source=%s type=%s power_kw=%.3f duration_min=%d dispatch=%s",
		         res->signal_id, source, v2g_signal_type_name(is.type), is.power_kw,
		         is.duration_min, res->dispatch_id);
	} else {
		res->status = 502;
		snprintf(res->error, sizeof(res->error), "dispatch-engine: unexpected reply");
	}
	v2g_env_free(rep);
}

void ingest_handle_request(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	struct ingest *in = arg;
	struct ingest_result res;

	if (req->body_case != V2G__V1__ENVELOPE__BODY_INGEST_SIGNAL) {
		v2g_bus_reply_error(rep, 400, "signal-ingest: expected ingest_signal");
		return;
	}
	const char *json = req->ingest_signal->json ? req->ingest_signal->json : "";
	const char *src = req->ingest_signal->source && *req->ingest_signal->source
	                          ? req->ingest_signal->source
	                          : "api";
	ingest_submit(in, json, strlen(json), src, &res);
	if (res.status != 202) {
		v2g_bus_reply_error(rep, res.status, res.error);
		return;
	}
	V2g__V1__SubmitSignalReply r = V2G__V1__SUBMIT_SIGNAL_REPLY__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	r.signal_id = res.signal_id;
	r.dispatch_id = res.dispatch_id;
	env.body_case = V2G__V1__ENVELOPE__BODY_SUBMIT_SIGNAL_REPLY;
	env.submit_signal_reply = &r;
	v2g_bus_reply_send(rep, &env);
}

/* --- RTE generator ----------------------------------------------------- */

int rtegen_scenario_valid(const char *name)
{
	return name && (!strcmp(name, "steady") || !strcmp(name, "peak") ||
	                !strcmp(name, "volatile") || !strcmp(name, "ramp"));
}

int rtegen_next(const char *scenario, unsigned seq, unsigned *seed, double scale, char *buf,
                size_t len)
{
	const char *type = "FCR";
	double kw;
	int interval;

	if (!strcmp(scenario, "peak")) {
		/* a load-shedding curve over 24 signals: low at night, high at the evening peak */
		type = "LOAD_SHEDDING";
		kw = 80 + 120 * sin(M_PI * (double)(seq % 24) / 23.0);
		interval = 30;
	} else if (!strcmp(scenario, "volatile")) {
		type = rand_r(seed) % 2 ? "AFRR" : "FCR";
		kw = 20 + (double)(rand_r(seed) % 181);
		interval = 10;
	} else if (!strcmp(scenario, "ramp")) {
		type = "AFRR";
		kw = 25.0 * (double)(seq % 10 + 1);
		interval = 20;
	} else { /* steady */
		kw = 50;
		interval = 15;
	}
	snprintf(buf, len, "{\"type\":\"%s\",\"power_kw\":%.1f,\"duration_min\":15}", type,
	         kw * scale);
	return interval;
}

struct rtegen {
	struct ingest *in;
	char scenario[32];
	int interval_s, initial_delay_s;
	double scale;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping;
};

static void *rtegen_main(void *arg)
{
	struct rtegen *g = arg;
	unsigned seed = 42, seq = 0;
	char json[256];
	struct ingest_result res;

	pthread_mutex_lock(&g->mu);
	/* The fleet announces itself after the services start: give it time
	 * before the first signal. */
	struct timespec first = v2g_mono_deadline((int64_t)g->initial_delay_s * 1000);
	while (!g->stopping && pthread_cond_timedwait(&g->cv, &g->mu, &first) == 0)
		;
	while (!g->stopping) {
		int pace = rtegen_next(g->scenario, seq++, &seed, g->scale, json, sizeof(json));
		pthread_mutex_unlock(&g->mu);
		ingest_submit(g->in, json, strlen(json), "rte-gen", &res);
		if (res.status != 202)
			v2g_warn("RTEGEN-FAIL", "generated signal not dispatched (%d): %s",
			         res.status, res.error);
		pthread_mutex_lock(&g->mu);
		int wait_s = g->interval_s > 0 ? g->interval_s : pace;
		struct timespec ts = v2g_mono_deadline((int64_t)wait_s * 1000);
		while (!g->stopping && pthread_cond_timedwait(&g->cv, &g->mu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int rtegen_start(struct rtegen **out, struct ingest *in, const char *scenario, int interval_s,
                 int initial_delay_s, double scale)
{
	struct rtegen *g = calloc(1, sizeof(*g));
	if (!g)
		return V2G_ERR_NOMEM;
	g->in = in;
	snprintf(g->scenario, sizeof(g->scenario), "%s", scenario);
	g->interval_s = interval_s;
	g->initial_delay_s = initial_delay_s;
	g->scale = scale;
	pthread_mutex_init(&g->mu, NULL);
	v2g_cond_init_mono(&g->cv);
	if (pthread_create(&g->thread, NULL, rtegen_main, g)) {
		free(g);
		return V2G_ERR_IO;
	}
	v2g_info("RTEGEN-START", "RTE signal generator running scenario %s", scenario);
	*out = g;
	return V2G_OK;
}

void rtegen_stop(struct rtegen *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->stopping = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}
