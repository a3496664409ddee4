/* What a station's meter tells the DLM about its charger: the capability
 * profile, the cap on its power, its wiring and its priority. Pure logic
 * (no I/O, no clock); the service applies the plan (service.c).
 *
 * A charger may announce itself in its meter (the gateway's StationMeter
 * extensions, sent by v2g-site-sim): kind ("ac" | "dc"), phases (1 | 3),
 * max_kw (its rating) and priority (1..10). Whatever it does not announce
 * is inferred from the meter's shape, as before the extensions existed:
 *
 *   type     kind; absent: AC when current_a is reported, else DC
 *   AC       phases 1 -> ac_level2_single, 3 -> ac_level2_three; absent:
 *            single-phase when exactly one phase carries more than 0.5 A,
 *            else three-phase
 *   DC       max_kw > DLM_LEARN_DC_HIGH_KW (150) -> dcfc_ccs_high, else
 *            dcfc_ccs_medium (150 kW, the DLM guide's common DC station);
 *            phases is ignored (it is the charger's AC feed)
 *   rotation a single-phase station's L1 is the phase that carries current
 *            (A when none does yet: an idle charger shows no wiring)
 *   max_kw   caps the profile, never raises it: AC through the current
 *            (current_max = max_kw / (phases x phase voltage), never under
 *            the IEC 6 A minimum, so the power range is derived again); DC
 *            through power_max_kw (and power_min_kw when the rating is
 *            under the profile's minimum)
 *   priority the announced one, else the service's default
 *
 * A station learned from an announcement is re-planned when the
 * announcement changes (dlm_announce_diff), never on every meter: an
 * operator's capability discovery (REST) stays until the charger says
 * something new. */
#ifndef DLM_LEARN_H
#define DLM_LEARN_H

#include <stddef.h>

#include "capability.h"

#define DLM_LEARN_DC_HIGH_KW 150.0 /* DC above this: dcfc_ccs_high */

/* What a station announces; the zero value is "nothing". */
struct dlm_announce {
	char kind[3];  /* "ac" | "dc" | "" */
	int phases;    /* 1 | 3 | 0 */
	double max_kw; /* > 0, or 0 */
	int priority;  /* 1..10, or 0 */
};

/* One station meter, as the plan needs it. */
struct dlm_meter_shape {
	struct dlm_announce ann;
	int has_current;     /* current_a reported (phases may be NaN) */
	double current_a[3]; /* A, B, C; NaN = not reported */
};

struct dlm_station_plan {
	const char *profile;         /* a built-in profile name (static) */
	struct dlm_cap_overrides ov; /* zero: the profile as it is */
	int rotation;                /* AC: the site phase of L1 (0..2) */
	int priority;                /* 1..10 */
	unsigned inferred;           /* DLM_LEARN_INFERRED_* of what was guessed */
};

enum {
	DLM_LEARN_INFERRED_TYPE = 1u << 0,   /* no kind */
	DLM_LEARN_INFERRED_PHASES = 1u << 1, /* AC without phases */
};

/* Fills *out for a station whose meter is m; default_priority (1..10) when
 * none is announced. An announcement out of its range counts as absent (the
 * gateway already drops those). Never fails. */
void dlm_learn_plan(const struct dlm_meter_shape *m, int default_priority,
                    struct dlm_station_plan *out);

/* What differs between two announcements: DLM_ANN_CAP (kind, phases or
 * max_kw: the capability must be planned again), DLM_ANN_PRIORITY. */
enum {
	DLM_ANN_CAP = 1u << 0,
	DLM_ANN_PRIORITY = 1u << 1,
};
unsigned dlm_announce_diff(const struct dlm_announce *a, const struct dlm_announce *b);

/* The last announcement of each station, to notice changes. A table the
 * caller owns; not thread-safe. */
struct dlm_learned;

struct dlm_learned *dlm_learned_alloc(void);  /* NULL when out of memory */
void dlm_learned_free(struct dlm_learned *t); /* NULL is fine */
size_t dlm_learned_count(const struct dlm_learned *t);
/* The recorded announcement of station: 0, or V2G_ERR_NOTFOUND. */
int dlm_learned_get(const struct dlm_learned *t, const char *station, struct dlm_announce *out);
/* Records (or replaces) it; station is copied. 0, V2G_ERR_INVAL (empty or
 * longer than DLM_CAP_ID_LEN - 1), V2G_ERR_NOMEM (table unchanged). */
int dlm_learned_put(struct dlm_learned *t, const char *station, const struct dlm_announce *a);
/* Forgets station: 0 or V2G_ERR_NOTFOUND. */
int dlm_learned_remove(struct dlm_learned *t, const char *station);

#endif
