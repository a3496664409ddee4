/* The site's electrical configuration from JSON: the service entrance, a
 * feeder, a transformer. One set of parsers for both ways in — the REST
 * control routes (POST /api/site-constraints/service|feeder|transformer,
 * see control.h) and the config file's dlm.feeders / dlm.transformers lists
 * (settings.c turns each libconfig group into a JSON object first) — so the
 * two accept exactly the same keys with the same checks.
 *
 * Keys are the field names of constraints.h (the service's voltage_v is
 * "voltage", as in the config file's dlm.service group). A key that is not
 * one of them is REFUSED, never skipped: a misspelt safety limit
 * ("breaker_ratting_a") must not leave the default in force unnoticed.
 * Numbers may be JSON integers or reals; an integer field (phases) takes a
 * real only when it is integral. null is refused like any wrong type.
 *
 * Every error is one line naming the field, relative to the object given:
 * "breaker_rating_a: must be > 0, got 0", "stations[2]: must be a station
 * id of 1-63 characters". The config file's reader prefixes its own path
 * ("dlm.feeders[1].breaker_rating_a: ..."). Parsers never log.
 *
 * Service ("any subset, merged"): max_power_kw ((0, 1e6]), max_current_a
 * ((0, 1e5]), voltage ((0, 1e5]), phases (1 | 3), nec625_factor ((0, 1]),
 * max_imbalance ([0, 1]), min_power_factor ([0, 1]), frequency_hz
 * ((0, 1000]), frequency_tolerance_hz ((0, 1000]); the upper bounds are
 * the config file's dlm.service ones.
 *
 * Feeder: id (required), name, breaker_rating_a (required, > 0),
 * cable_ampacity_a (required, > 0), phases (required, 1 | 3), max_current_a
 * and max_power_kw (>= 0; absent = 0 = no limit beyond breaker and cable),
 * stations (array of station ids, each once; absent = none yet).
 * The ratings have no default on purpose: a feeder is only as safe as the
 * numbers its owner typed.
 *
 * Transformer: id (required), name, rated_kva (required, > 0),
 * continuous_factor ((0, 1], default 0.80), max_temp_c (-50..250, default
 * 80), derate_band_c (> 0, default 10), cooling (a name such as "ONAN",
 * default "ONAN"), feeders (array of feeder ids, each once; default none).
 *
 * Ids and names: 1..DLM_ID_MAX-1 bytes, no control characters. Lists hold
 * at most DLM_SITECFG_MAX_LIST entries. */
#ifndef DLM_SITECFG_H
#define DLM_SITECFG_H

#include <jansson.h>
#include <stddef.h>

#include "constraints.h"

#define DLM_SITECFG_MAX_LIST 100000

/* A parsed feeder: cfg's name and stations point into the owned storage
 * below (valid until dlm_feeder_spec_fini), ready for
 * dlm_site_configure_feeder(site, spec.id, &spec.cfg), which copies them. */
struct dlm_feeder_spec {
	char id[DLM_ID_MAX];
	struct dlm_feeder_cfg cfg;
	char *name;      /* owned; NULL: the id */
	char **stations; /* owned, n = cfg.n_stations */
};

struct dlm_transformer_spec {
	char id[DLM_ID_MAX];
	struct dlm_transformer_cfg cfg;
	char *name;     /* owned; NULL: the id */
	char *cooling;  /* owned */
	char **feeders; /* owned, n = cfg.n_feeders */
};

/* Merges the keys of obj (borrowed) into *cfg. All or nothing: on an error
 * *cfg is unchanged. 0; V2G_ERR_INVAL with err naming the field (also for
 * obj not an object); V2G_ERR_NOMEM. An empty object changes nothing. */
int dlm_service_cfg_merge_json(struct dlm_service_cfg *cfg, json_t *obj, char *err, size_t len);

/* Parses obj (borrowed) into *out, which is initialised first (any former
 * content is NOT freed: pass a zeroed or finished spec). 0; V2G_ERR_INVAL
 * with err naming the field; V2G_ERR_NOMEM. On error *out may hold partial
 * storage: call the _fini either way. */
int dlm_feeder_cfg_from_json(json_t *obj, struct dlm_feeder_spec *out, char *err, size_t len);
int dlm_transformer_cfg_from_json(json_t *obj, struct dlm_transformer_spec *out, char *err,
                                  size_t len);

/* Free the owned storage and zero the spec; safe on a zeroed spec, and
 * twice. */
void dlm_feeder_spec_fini(struct dlm_feeder_spec *s);
void dlm_transformer_spec_fini(struct dlm_transformer_spec *s);

#endif
