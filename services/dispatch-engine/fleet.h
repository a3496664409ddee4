/* The dispatch engine's view of the fleet: the latest state of every vehicle
 * seen on the telemetry bus. Records live in fixed chunks, so a vehicle's
 * record (and its id) never moves and is never freed while the fleet lives.
 * Thread-safe: one writer (telemetry) and many readers. */
#ifndef DISP_FLEET_H
#define DISP_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "v2g/v1/vehicle.pb-c.h"

#define DISP_ID_MAX 64

struct disp_vehicle {
	const char *id; /* in the fleet's id arena: stable for the fleet's life */
	uint8_t available;
	int32_t priority;
	float soc, max_power_kw, tariff, battery_kwh, power_kw;
	uint16_t site, segment, fleet, cluster; /* interned names (disp_fleet_intern) */
	int64_t ts_ms;                          /* state time (payload ts or receive time) */
};

/* A vehicle that may be chosen, copied out of the fleet under its lock,
 * with its forecasts (prediction.h) and what the strategies compute. */
struct disp_cand {
	const char *id; /* points into the fleet's record: stable */
	float soc, max_kw, tariff, battery_kwh;
	int32_t priority;
	uint16_t site, segment;
	/* forecasts; neutral values when nothing is known */
	float avail_prob;    /* stays available through the signal, 0..1 (1) */
	float degradation;   /* battery wear, 0 new .. 1 worn out (0) */
	float window_h;      /* plug-in window left, hours (0 unknown) */
	float participation; /* recent dispatches, for fairness (0) */
	/* computed by strategy.h */
	float cap_kw; /* effective capacity (disp_capacity) */
	float score;  /* weighted score (disp_score) */
};

/* SoC eligibility band for one signal type. */
struct disp_band {
	double low, high;
};

struct disp_fleet;

struct disp_fleet *disp_fleet_new(void);
void disp_fleet_free(struct disp_fleet *f);

/* Applies one state; ignores states older than the one held and ids that are
 * empty or too long (returns V2G_ERR_INVAL). */
int disp_fleet_update(struct disp_fleet *f, const V2g__V1__VehicleState *s);

size_t disp_fleet_size(struct disp_fleet *f);

/* Copies into *out (malloc'd, caller frees) every vehicle that is available,
 * has max power > 0, a state no older than max_age_ms at now_ms, and SoC in
 * [band.low, band.high]. Returns the count, or -1 when out of memory. */
long disp_fleet_eligible(struct disp_fleet *f, struct disp_band band, int64_t now_ms,
                         int64_t max_age_ms, struct disp_cand **out);

/* Removes from c (keeping order) every candidate for which skip(arg, id) is
 * non-zero or whose SoC is below min_soc; returns the new count. */
size_t disp_filter(struct disp_cand *c, size_t n, double min_soc,
                   int (*skip)(void *arg, const char *id), void *arg);

/* Copies the record of id; returns 0 when found, V2G_ERR_NOTFOUND otherwise. */
int disp_fleet_get(struct disp_fleet *f, const char *id, struct disp_vehicle *out);

/* Interned index of a site/segment/fleet/cluster name: interns it when new
 * (so configuration can name segments before any vehicle reports one).
 * Returns 0 ("none") for an empty name or when the table is full. */
uint16_t disp_fleet_intern(struct disp_fleet *f, const char *name);

/* How many names are interned (every interned index is below it). */
size_t disp_fleet_names(struct disp_fleet *f);


#endif
