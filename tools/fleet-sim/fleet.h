/* Fleet engine of the simulator: N vehicles played over a handful of paho
 * MQTTAsync connections (never one per vehicle).
 *
 * Threads: paho's own threads run the callbacks, which only copy what they
 * got into an event queue and return; the thread calling sim_fleet_run() owns
 * every vehicle, decides, schedules and publishes. Connection 0 is the only
 * subscriber (vehicle/+/command and fleet/telemetry/request); vehicle i
 * publishes its state, acks and telemetry replies on connection
 * i % connections. Each connection keeps at most `window` QoS 1 publishes
 * unconfirmed; the rest waits in the engine's queues (acks and telemetry
 * replies first, periodic states after), so a 10,000-command burst is
 * absorbed without paho refusing anything. */
#ifndef SIM_FLEET_H
#define SIM_FLEET_H

#include <signal.h>
#include <stdint.h>

#include "vehicle.h"

struct sim_opts {
	const char *broker;   /* tcp://host:port */
	const char *username; /* NULL: anonymous */
	const char *password;
	int vehicles;
	int connections;         /* clamped to vehicles */
	double state_interval_s; /* per vehicle; 0 = no periodic state */
	int ack_latency_ms;
	int ack_jitter_ms;      /* uniform extra 0..jitter */
	const char *silent_ids; /* "a,b,c" or NULL */
	const char *reject_ids;
	uint64_t seed;
	double duration_s;       /* 0 = until stopped */
	int initial_burst;       /* every vehicle's state once on (re)connect */
	int window;              /* unconfirmed QoS 1 publishes per connection */
	double stats_interval_s; /* SIM-STATS line period */
	struct sim_model_cfg model;
};

/* Defaults of every option (broker tcp://127.0.0.1:1883, 100 vehicles,
 * 4 connections, 10 s states, 50 ms + 50 ms ack latency, window 2000). */
void sim_opts_default(struct sim_opts *o);

/* Runs the fleet until *stop becomes non-zero (set it from a signal handler)
 * or duration_s elapses, then publishes what is still queued for up to 1 s,
 * disconnects every client and returns 0. Returns V2G_ERR_INVAL for options
 * it cannot honour (unknown id in silent_ids/reject_ids, bad broker URI) and
 * V2G_ERR_NOMEM, after logging one line. A broker that is down is not an
 * error: the engine retries with backoff. Borrows o. */
int sim_fleet_run(const struct sim_opts *o, volatile sig_atomic_t *stop);

#endif
