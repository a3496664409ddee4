/* Scenario files of v2g-site-sim: one JSON document describing a site, its
 * stations and a timeline of events (format in tools/site-sim/README.md).
 *
 *   {
 *     "site": "paris-01",            site id, the {site} of the MQTT topics
 *     "description": "...",          free text, not read (nor any other key)
 *     "voltage_v": 230,              phase-to-neutral voltage (230)
 *     "frequency_hz": 50,            (50)
 *     "power_factor": 0.98,          of the site and of every AC station (0.98)
 *     "base_load_kw": 20,            non-EV load, balanced on three phases (0)
 *     "publish_interval_ms": 1000,   wall-clock period of the meters (1000)
 *     "response_delay_ms": 2000,     a setpoint takes effect this long after
 *                                    it arrives, in simulated time (0)
 *     "ramp_kw_per_s": 0,            power slope toward a new target, simulated
 *                                    time; 0 = a step (0)
 *     "ambient_c": 25,               temperature of an idle station (25)
 *     "stations": [
 *       { "id": "ac-01", "kind": "ac" | "dc", "phases": 1 | 3,
 *         "wiring": "A" | "B" | "C"  (single-phase AC only; A),
 *         "max_kw": 22, "demand_kw": 22, "soc": 40, "battery_kwh": 60,
 *         "priority": 5 }
 *     ],
 *     "timeline": [
 *       { "at_s": 30, "station": "dc-01", "action": "demand", "demand_kw": 50 },
 *       { "at_s": 40, "station": "dc-01", "action": "silent" | "return" | "fault" },
 *       { "at_s": 60, "action": "base_load", "base_load_kw": 40 }
 *     ]
 *   }
 *
 * at_s counts simulated seconds from the start. "return" ends a silence
 * and clears a fault. */
#ifndef SITESIM_SCENARIO_H
#define SITESIM_SCENARIO_H

#include <stddef.h>

#define SCN_ID_MAX      64
#define SCN_MAX_STATION 1000
#define SCN_MAX_EVENTS  10000

enum scn_kind { SCN_AC, SCN_DC };

enum scn_action { SCN_DEMAND, SCN_SILENT, SCN_RETURN, SCN_FAULT, SCN_BASE_LOAD };

struct scn_station {
	char id[SCN_ID_MAX];
	enum scn_kind kind;
	int phases; /* 1 or 3; DC stations are 3 */
	int wiring; /* 0..2 = A..C: the phase of a single-phase AC station */
	double max_kw, demand_kw, soc, battery_kwh;
	int priority;
};

struct scn_event {
	double at_s;
	int station; /* index into stations; -1 for site events */
	enum scn_action action;
	double value; /* demand_kw or base_load_kw */
};

struct scn_scenario {
	char site[SCN_ID_MAX];
	double voltage_v, frequency_hz, power_factor, base_load_kw, ambient_c;
	int publish_interval_ms;
	double response_delay_s, ramp_kw_per_s;
	struct scn_station *stations;
	size_t nstations;
	struct scn_event *events; /* sorted by at_s, stable */
	size_t nevents;
};

/* Parses a scenario from text. On success fills *s (caller frees with
 * scn_scenario_fini) and returns 0; otherwise returns V2G_ERR_CONFIG (or
 * V2G_ERR_NOMEM), leaves *s empty and writes one line naming the offending
 * field into err. */
int scn_scenario_parse(const char *text, size_t len, struct scn_scenario *s, char *err,
                       size_t errlen);

/* scn_scenario_parse on the contents of a file; err also names I/O failures. */
int scn_scenario_load(const char *path, struct scn_scenario *s, char *err, size_t errlen);

/* Frees what parse allocated; safe on a zeroed or already freed scenario. */
void scn_scenario_fini(struct scn_scenario *s);

/* "demand", "silent", ... */
const char *scn_action_name(enum scn_action a);

#endif
