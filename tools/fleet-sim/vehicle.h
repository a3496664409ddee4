/* Vehicle model of the fleet simulator: seeded attributes, state of charge
 * drift, availability, the dispatch a vehicle is executing, its ack decision
 * and the JSON it speaks (MQTT contract of DESIGN.md).
 *
 * Pure logic: no I/O, no locks. The engine owns every struct sim_vehicle and
 * calls these functions from one thread. Times are milliseconds on any
 * monotonic clock (the engine uses v2g_mono_ms()); only the "ts" of a payload
 * is wall-clock time, passed in by the caller. */
#ifndef SIM_VEHICLE_H
#define SIM_VEHICLE_H

#include <stddef.h>
#include <stdint.h>

#define SIM_ID_MAX          48 /* vehicle id, NUL included */
#define SIM_DISPATCH_ID_MAX 96 /* longer dispatch ids are refused as bad input */

/* splitmix64: tiny, seedable, good enough for a simulator. */
struct sim_rng {
	uint64_t s;
};

void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
double sim_rng_uniform(struct sim_rng *r); /* [0, 1) */

/* Behaviour shared by the whole fleet. Borrowed by the functions below. */
struct sim_model_cfg {
	const char *prefix;  /* vehicle ids are "{prefix}-{index:05d}" */
	int sites;           /* vehicles spread over site-00 .. site-{sites-1} */
	double availability; /* long-run share of time a vehicle is plugged in, 0..1 */
	double cycle_hours;  /* mean plugged + away cycle; sets how rarely availability flips */
	double drive_kw;     /* mean consumption while away (unplugged) */
	double reject_rate;  /* probability a command is refused */
	double silent_rate;  /* probability a command gets no answer at all */
};

/* Fills cfg with the defaults (prefix "sim", 10 sites, availability 0.9,
 * 8 h cycle, 2 kW driving, no rejects, no silence). */
void sim_model_cfg_default(struct sim_model_cfg *cfg);

struct sim_vehicle {
	char id[SIM_ID_MAX];
	int index;
	/* fixed attributes, drawn from (seed, index) */
	double max_power_kw;  /* 7.4, 11 or 22 */
	double battery_kwh;   /* 40..100 */
	double target_soc;    /* charging stops there: 80, 90 or 100 */
	int priority;         /* 1..10 */
	double tariff;        /* 0.10..0.30 per kWh */
	const char *segment;  /* "commuter" | "fleet" | "taxi" (static string) */
	const char *fleet_id; /* "f1" | "f2" (static string) */
	char site[24];
	char cluster[8];
	/* dynamic state */
	double soc;         /* percent, 0..100 */
	int available;      /* plugged in and available for V2G */
	int64_t updated_ms; /* time the state above refers to */
	/* dispatch being executed; dispatch_id[0] == 0 when idle */
	char dispatch_id[SIM_DISPATCH_ID_MAX];
	char signal_type[24];
	double dispatch_kw; /* discharge power, already clamped to max_power_kw */
	int64_t dispatch_until_ms;
	/* deterministic test hooks (--silent-ids / --reject-ids) */
	int force_silent;
	int force_reject;
};

/* One parsed vehicle/{id}/command payload. */
struct sim_command {
	char dispatch_id[SIM_DISPATCH_ID_MAX];
	char signal_type[24]; /* "" when absent */
	double power_kw;      /* 0 releases the vehicle */
	double duration_min;  /* 15 when absent or not positive */
};

enum sim_ack { SIM_ACK_ACCEPT, SIM_ACK_REJECT, SIM_ACK_SILENT };

/* Initialises vehicle `index` at time now_ms. Its attributes depend only on
 * (seed, index), never on the fleet size, so vehicle sim-00042 is the same
 * car in a 100- and a 50,000-vehicle run. */
void sim_vehicle_init(struct sim_vehicle *v, const struct sim_model_cfg *cfg, uint64_t seed,
                      int index, int64_t now_ms);

/* Moves the vehicle's state forward to now_ms: discharge at the dispatched
 * power until the dispatch ends, then charge at max_power_kw towards
 * target_soc while plugged in, or drain at drive_kw while away; SoC moves by
 * power * dt / battery_kwh * 100 and is clamped to 0..100. Availability
 * flips rarely (mean times from cfg), never during a dispatch. r supplies the
 * randomness of the flips. A now_ms in the past is ignored. */
void sim_vehicle_advance(struct sim_vehicle *v, const struct sim_model_cfg *cfg, struct sim_rng *r,
                         int64_t now_ms);

/* Decides how the vehicle answers a command: forced silence / rejection
 * first, then silent with probability silent_rate, rejected with probability
 * reject_rate. On SIM_ACK_REJECT *reason is "soc_too_low" or
 * "user_override" (static strings); otherwise "". */
enum sim_ack sim_vehicle_decide(const struct sim_vehicle *v, const struct sim_model_cfg *cfg,
                                struct sim_rng *r, const char **reason);

/* Starts executing an accepted command at now_ms (call sim_vehicle_advance
 * first): power_kw <= 0 releases the vehicle, otherwise the command replaces
 * whatever the vehicle was doing, including an earlier command of the same
 * dispatch. */
void sim_vehicle_apply(struct sim_vehicle *v, const struct sim_command *c, int64_t now_ms);

/* Parses a command payload (len bytes, need not be NUL-terminated).
 * dispatch_id (non-empty string, shorter than SIM_DISPATCH_ID_MAX) and
 * power_kw (number >= 0) are required. Returns 0 or V2G_ERR_INVAL. */
int sim_command_parse(const char *payload, size_t len, struct sim_command *out);

/* The state payload, compact JSON; with request_id != NULL the pull-mode
 * telemetry reply (state plus "request_id"). ts_ms is wall-clock time.
 * Returns a malloc'd string the caller frees, NULL when out of memory. */
char *sim_vehicle_state_json(const struct sim_vehicle *v, int64_t ts_ms, const char *request_id);

/* {"dispatch_id":…,"accepted":…,"reason":…}; caller frees; NULL on ENOMEM. */
char *sim_ack_json(const char *dispatch_id, int accepted, const char *reason);

/* Formats the id of vehicle index into out (SIM_ID_MAX bytes). */
void sim_vehicle_id_format(const char *prefix, int index, char *out);

/* Maps an id (len bytes) back to its index when it is exactly
 * "{prefix}-{index:05d}" (or more digits for index >= 100000) with
 * index < n. Returns 0 and sets *index, or V2G_ERR_NOTFOUND. */
int sim_vehicle_id_parse(const char *prefix, const char *id, size_t len, int n, int *index);

#endif
