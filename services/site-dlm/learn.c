/* Station plans from meters (see learn.h); the announcement table is a
 * chained hash of individually allocated entries. */
#include "learn.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

/* --- the plan ------------------------------------------------------- */

static int kind_is(const struct dlm_announce *a, const char *k)
{
	return strcmp(a->kind, k) == 0;
}

/* The only phase carrying current, or -1. */
static int single_live_phase(const struct dlm_meter_shape *m)
{
	int on = 0, which = -1;
	if (!m->has_current)
		return -1;
	for (int i = 0; i < 3; i++) {
		if (m->current_a[i] > 0.5) {
			on++;
			which = i;
		}
	}
	return on == 1 ? which : -1;
}

void dlm_learn_plan(const struct dlm_meter_shape *m, int default_priority,
                    struct dlm_station_plan *out)
{
	const struct dlm_announce *a = &m->ann;
	double max_kw = a->max_kw > 0 && isfinite(a->max_kw) ? a->max_kw : 0;
	int dc;

	memset(out, 0, sizeof(*out));
	if (kind_is(a, "dc") || kind_is(a, "ac")) {
		dc = kind_is(a, "dc");
	} else {
		dc = !m->has_current;
		out->inferred |= DLM_LEARN_INFERRED_TYPE;
	}
	if (dc) {
		out->profile = max_kw > DLM_LEARN_DC_HIGH_KW ? "dcfc_ccs_high" : "dcfc_ccs_medium";
		const struct dlm_cap *p = dlm_cap_profile_find(out->profile);
		if (max_kw > 0 && max_kw < p->power_max_kw) {
			out->ov.power_max_kw = max_kw;
			if (max_kw < p->power_min_kw)
				out->ov.power_min_kw = max_kw;
		}
	} else {
		int live = single_live_phase(m);
		int single;
		if (a->phases == 1 || a->phases == 3) {
			single = a->phases == 1;
		} else {
			single = live >= 0;
			out->inferred |= DLM_LEARN_INFERRED_PHASES;
		}
		out->profile = single ? "ac_level2_single" : "ac_level2_three";
		out->rotation = single && live >= 0 ? live : 0;
		const struct dlm_cap *p = dlm_cap_profile_find(out->profile);
		if (max_kw > 0) {
			double amps = max_kw * 1000.0 / (p->phases * dlm_cap_phase_voltage(p));
			if (amps < DLM_IEC_MIN_A)
				amps = DLM_IEC_MIN_A;
			if (amps < p->current_max)
				out->ov.current_max = amps;
		}
	}
	out->priority = a->priority >= 1 && a->priority <= 10 ? a->priority
	                : default_priority < 1                ? 1
	                : default_priority > 10               ? 10
	                                                      : default_priority;
}

unsigned dlm_announce_diff(const struct dlm_announce *a, const struct dlm_announce *b)
{
	unsigned d = 0;
	if (strcmp(a->kind, b->kind) != 0 || a->phases != b->phases || a->max_kw != b->max_kw)
		d |= DLM_ANN_CAP;
	if (a->priority != b->priority)
		d |= DLM_ANN_PRIORITY;
	return d;
}

/* --- the table ------------------------------------------------------ */

struct entry {
	struct entry *next;
	char station[DLM_CAP_ID_LEN];
	struct dlm_announce ann;
};

struct dlm_learned {
	struct entry **buckets;
	size_t nbuckets, count;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct dlm_learned *dlm_learned_alloc(void)
{
	struct dlm_learned *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nbuckets = 64;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return NULL;
	}
	return t;
}

void dlm_learned_free(struct dlm_learned *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct entry *e = t->buckets[i];
		while (e) {
			struct entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(t->buckets);
	free(t);
}

size_t dlm_learned_count(const struct dlm_learned *t)
{
	return t ? t->count : 0;
}

static struct entry **slot(const struct dlm_learned *t, const char *station)
{
	struct entry **pp = &t->buckets[hash(station) & (t->nbuckets - 1)];
	while (*pp && strcmp((*pp)->station, station) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* Doubles the buckets past a load of 1; a failed growth only costs speed. */
static void grow(struct dlm_learned *t)
{
	size_t n = t->nbuckets * 2;
	struct entry **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct entry *e = t->buckets[i];
		while (e) {
			struct entry *next = e->next;
			size_t j = hash(e->station) & (n - 1);
			e->next = b[j];
			b[j] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

int dlm_learned_get(const struct dlm_learned *t, const char *station, struct dlm_announce *out)
{
	if (!t || !station)
		return V2G_ERR_NOTFOUND;
	struct entry *e = *slot(t, station);
	if (!e)
		return V2G_ERR_NOTFOUND;
	if (out)
		*out = e->ann;
	return 0;
}

int dlm_learned_put(struct dlm_learned *t, const char *station, const struct dlm_announce *a)
{
	if (!t || !station || !station[0] || strlen(station) >= DLM_CAP_ID_LEN || !a)
		return V2G_ERR_INVAL;
	struct entry **pp = slot(t, station);
	if (!*pp) {
		struct entry *e = calloc(1, sizeof(*e));
		if (!e)
			return V2G_ERR_NOMEM;
		strcpy(e->station, station);
		*pp = e;
		if (++t->count > t->nbuckets)
			grow(t);
		pp = slot(t, station);
	}
	(*pp)->ann = *a;
	(*pp)->ann.kind[sizeof(a->kind) - 1] = '\0';
	return 0;
}

int dlm_learned_remove(struct dlm_learned *t, const char *station)
{
	if (!t || !station)
		return V2G_ERR_NOTFOUND;
	struct entry **pp = slot(t, station);
	if (!*pp)
		return V2G_ERR_NOTFOUND;
	struct entry *e = *pp;
	*pp = e->next;
	free(e);
	t->count--;
	return 0;
}
