/* The charging-site model of v2g-site-sim: a site meter and its stations,
 * advanced in simulated seconds. Pure: no I/O but log lines, no clock of its
 * own; one thread owns a model (main.c's worker).
 *
 * A station draws min(demand, max_kw, its setpoint limit) -- its demand when
 * no setpoint has arrived yet, which is how a site overloads. A setpoint
 * takes effect response_delay_s after it arrives; power then moves toward the
 * target at ramp_kw_per_s (a step when 0). A silent station keeps drawing but
 * neither publishes nor hears setpoints; a faulted one draws nothing. */
#ifndef SITESIM_SITE_H
#define SITESIM_SITE_H

#include <stddef.h>

#include "scenario.h"

#define SITE_PENDING_MAX 16

enum site_status { SITE_IDLE, SITE_CHARGING, SITE_FAULTED };

/* A setpoint as received: either field may be absent (has_* = 0). */
struct site_setpoint {
	int has_power;
	double power_kw;
	int has_phase[3]; /* A, B, C */
	double phase_a[3];
};

struct site_pending {
	double due_s;
	double limit_kw;
};

struct site_station {
	struct scn_station cfg; /* demand_kw and soc evolve here */
	int has_limit;
	double limit_kw;
	struct site_pending pending[SITE_PENDING_MAX]; /* FIFO, by due_s */
	size_t npending;
	double power_kw;
	double temperature_c;
	int silent, faulted;
};

struct site_model {
	struct scn_scenario sc; /* owned; stations[] hold the initial state */
	struct site_station *st;
	size_t n;
	double base_load_kw;
	double now_s;
	size_t next_event;
};

/* Builds a model from a scenario, taking ownership of *sc (left zeroed).
 * Returns 0 or V2G_ERR_NOMEM (then *sc is still the caller's). */
int site_model_init(struct site_model *m, struct scn_scenario *sc);

/* Safe on a zeroed model. */
void site_model_fini(struct site_model *m);

/* Index of a station by id, or -1. */
int site_model_find(const struct site_model *m, const char *id);

/* Parses a setpoint payload (DESIGN.md). Returns 0, or V2G_ERR_INVAL with a
 * reason in why (static string). */
int site_setpoint_parse(const char *payload, size_t len, struct site_setpoint *sp,
                        const char **why);

/* The power a setpoint allows station i: min of power_kw and, for an AC
 * station, of the phase currents (P = sum V x I x pf over its phases; a
 * three-phase charger draws balanced, so its lowest given phase current
 * bounds all three). Returns -1 when the setpoint says nothing that applies
 * to this station (e.g. phase currents only, none on its phases). */
double site_setpoint_limit(const struct site_model *m, size_t i, const struct site_setpoint *sp);

/* Queues a limit for station i, effective at m->now_s + response delay.
 * Returns 0, or V2G_ERR_CLOSED when the station is silent (ignored). */
int site_model_setpoint(struct site_model *m, size_t i, double limit_kw);

/* Advances the model to now_s (>= the previous now_s): fires timeline events
 * that are due, applies due setpoints, moves power, SoC and temperature. */
void site_model_step(struct site_model *m, double now_s);

/* The power station i is heading for now. */
double site_station_target(const struct site_model *m, size_t i);

enum site_status site_station_status(const struct site_station *s);

/* Meter payloads (DESIGN.md); the caller frees the string. NULL on ENOMEM. */
char *site_station_meter_json(const struct site_model *m, size_t i);
char *site_meter_json(const struct site_model *m);

/* Site totals, as in the site meter. */
double site_model_power_kw(const struct site_model *m);
void site_model_currents(const struct site_model *m, double out_a[3]);

#endif
