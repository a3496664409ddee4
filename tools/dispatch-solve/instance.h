/* An instance of v2g-dispatch-solve: a signal, vehicles in the MQTT state
 * format (plus vehicle_id and optional forecasts), optional site limits and
 * an optional dispatch config, parsed from JSON into what the dispatch
 * library takes (the format is in README.md and `--help`). Pure: no I/O. */
#ifndef DSOLVE_INSTANCE_H
#define DSOLVE_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

#include "../../services/dispatch-engine/fleet.h"
#include "../../services/dispatch-engine/strategy.h"
#include "../../services/dispatch-engine/strmap.h"

/* Why a vehicle is not a candidate. */
enum dsolve_reason {
	DSOLVE_ELIGIBLE = 0,
	DSOLVE_UNAVAILABLE,
	DSOLVE_NO_POWER,
	DSOLVE_SOC_BELOW_BAND,
	DSOLVE_SOC_ABOVE_BAND,
};

/* "unavailable", "no_power", "soc_below_band", "soc_above_band" ("" when
 * eligible). */
const char *dsolve_reason_name(enum dsolve_reason r);

struct dsolve_vehicle {
	char id[DISP_ID_MAX + 1];
	enum dsolve_reason reason;
	struct disp_cand c; /* c.id points to id; site and segment interned */
};

/* Interned names of one kind (sites or segments): index 0 is "none", the
 * i-th name (i >= 1) is names[i]. */
struct dsolve_names {
	char **names; /* names[0] = NULL */
	size_t n;     /* including index 0 */
	struct disp_strmap map;
};

struct dsolve_instance {
	int signal_type; /* 0 FCR, 1 AFRR, 2 LOAD_SHEDDING */
	double power_kw, duration_min;

	struct dsolve_vehicle *veh; /* input order */
	size_t nveh;
	struct disp_strmap ids; /* vehicle id -> index into veh */

	struct dsolve_names sites, segments;
	double *limit_kw; /* [sites.n]; < 0 unlimited */
	int32_t *parent;  /* [sites.n]; -1 none */
	int has_limits;   /* a "sites" array was given */
	size_t nlisted;   /* 1 + the sites it listed (indexes 1..nlisted-1) */

	struct disp_band band; /* eligibility */
	double min_soc;        /* for disp_capacity */
	struct disp_params params;
	struct disp_segment *segs; /* dispatch per segment when nsegs > 0 */
	size_t nsegs;
};

/* Parses buf[0..len) into *out (zeroed here). Returns 0, V2G_ERR_INVAL with
 * one line in err naming the offending field ("vehicles[3].soc: must be a
 * number between 0 and 100"), or V2G_ERR_NOMEM. On error *out holds
 * nothing to free (dsolve_instance_fini is still safe). */
int dsolve_instance_parse(const char *buf, size_t len, struct dsolve_instance *out, char *err,
                          size_t errlen);

/* The limits as the library takes them (NULL-free: all sites unlimited
 * when no "sites" were given). Borrows from in. */
struct disp_sites dsolve_instance_sites(const struct dsolve_instance *in);

void dsolve_instance_fini(struct dsolve_instance *in); /* safe on zeroed */

#endif
