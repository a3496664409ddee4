/* The "slice" half of v2g-bench-slice: the whole dispatch path, from
 * POST /api/signals to the last vehicle/{id}/command of that dispatch on
 * the broker (api-gateway -> signal-ingest -> dispatch-engine ->
 * vehicle-gateway -> Mosquitto). */
#ifndef BENCH_SLICE_H
#define BENCH_SLICE_H

struct bench_slice_opts {
	const char *api;         /* base URL, e.g. http://127.0.0.1:8900 */
	const char *token;       /* Bearer token */
	const char *mqtt_uri;    /* tcp://host:port */
	const char *signal_type; /* "FCR" */
	double power_kw;         /* chosen above what the fleet can give */
	int duration_min;
	int expect; /* distinct vehicles expected in the first round */
	int repeat;
	double ack_timeout_s;   /* the engine's ack timeout: pause between dispatches */
	double first_timeout_s; /* the first command must arrive within this */
	double idle_s;          /* a round is over after this long without a new vehicle */
};

/* Runs `repeat` dispatches. ms[i] is just-before-POST -> receipt of the last
 * new vehicle's command (power_kw > 0) of that dispatch; commands[i] the
 * number of distinct vehicles commanded. Between dispatches it waits 1 s
 * after the last command plus the ack timeout. Returns 0, or -1 after
 * printing why on stderr (API refused or unreachable, no command arrived,
 * broker unreachable). Borrows o. */
int bench_slice_run(const struct bench_slice_opts *o, double *ms, int *commands);

#endif
