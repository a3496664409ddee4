/* signal-ingest's core: validate a received signal, hand it to the dispatch
 * engine, answer with the ids; and the RTE signal generator for demos. */
#ifndef INGEST_INGEST_H
#define INGEST_INGEST_H

#include <stddef.h>

#include "signal.h"
#include "v2g/bus.h"

struct ingest {
	struct v2g_bus_client *dispatch; /* borrowed */
	struct ingest_limits lim;
	int timeout_ms;
};

/* Result of one submission: status is an HTTP-like code (202 accepted, 400
 * bad input, 503 dispatch engine unreachable, 5xx other). */
struct ingest_result {
	int status;
	char signal_id[37];
	char dispatch_id[64];
	char error[256];
};

/* Validates json and submits it. Never fails silently: res->status and
 * res->error say what happened; counted in metrics. */
void ingest_submit(struct ingest *in, const char *json, size_t len, const char *source,
                   struct ingest_result *res);

/* Bus REP handler for IngestSignal requests; arg is a struct ingest *. */
void ingest_handle_request(void *arg, const v2g_env *req, struct v2g_bus_reply *rep);

/* --- RTE generator ----------------------------------------------------- */

/* Scenario names: "steady", "peak", "volatile", "ramp". */
int rtegen_scenario_valid(const char *name);

/* Writes the JSON of signal number seq of the scenario into buf; returns the
 * interval in seconds to wait before the next one. seed makes volatile
 * deterministic. */
int rtegen_next(const char *scenario, unsigned seq, unsigned *seed, double scale, char *buf,
                size_t len);

struct rtegen;
/* Starts a thread submitting the scenario's signals through in every
 * interval_s seconds (0: the scenario's own pace), the first one after
 * initial_delay_s. */
int rtegen_start(struct rtegen **out, struct ingest *in, const char *scenario, int interval_s,
                 int initial_delay_s, double scale);
void rtegen_stop(struct rtegen *g);

#endif
