#include "fleet.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "v2g/err.h"

#define CHUNK       4096
#define MAX_NAMES   65535
#define ARENA_BLOCK (256 * 1024) /* ids, packed; never freed before the fleet */

struct disp_fleet {
	pthread_rwlock_t lock;
	struct disp_vehicle **chunks;
	size_t nchunks, len;
	struct disp_strmap ids;   /* id -> record index */
	struct disp_strmap names; /* interned name -> index */
	char **name_tab;          /* index -> name; [0] = "" */
	size_t nnames, names_cap;
	char **arena;              /* blocks of packed NUL-terminated ids */
	size_t narena, arena_used; /* bytes used in the last block */
};

static struct disp_vehicle *rec(struct disp_fleet *f, size_t i)
{
	return &f->chunks[i / CHUNK][i % CHUNK];
}

struct disp_fleet *disp_fleet_new(void)
{
	struct disp_fleet *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	pthread_rwlock_init(&f->lock, NULL);
	f->name_tab = calloc(16, sizeof(char *));
	if (!f->name_tab || disp_strmap_init(&f->ids, 1024) || disp_strmap_init(&f->names, 64)) {
		disp_fleet_free(f);
		return NULL;
	}
	f->names_cap = 16;
	f->name_tab[0] = strdup("");
	f->nnames = 1;
	return f;
}

void disp_fleet_free(struct disp_fleet *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nchunks; i++)
		free(f->chunks[i]);
	free(f->chunks);
	for (size_t i = 0; i < f->nnames; i++)
		free(f->name_tab[i]);
	for (size_t i = 0; i < f->narena; i++)
		free(f->arena[i]);
	free(f->arena);
	free(f->name_tab);
	disp_strmap_fini(&f->ids);
	disp_strmap_fini(&f->names);
	pthread_rwlock_destroy(&f->lock);
	free(f);
}

/* Interns s; lock held for writing. Past MAX_NAMES, new names map to "". */
static uint16_t intern(struct disp_fleet *f, const char *s)
{
	uint32_t idx;
	if (!s || !*s)
		return 0;
	if (disp_strmap_get(&f->names, s, &idx))
		return (uint16_t)idx;
	if (f->nnames >= MAX_NAMES)
		return 0;
	if (f->nnames == f->names_cap) {
		char **nt = realloc(f->name_tab, f->names_cap * 2 * sizeof(char *));
		if (!nt)
			return 0;
		f->name_tab = nt;
		f->names_cap *= 2;
	}
	char *copy = strdup(s);
	if (!copy)
		return 0;
	if (disp_strmap_put(&f->names, copy, (uint32_t)f->nnames)) {
		free(copy);
		return 0;
	}
	f->name_tab[f->nnames] = copy;
	return (uint16_t)f->nnames++;
}

/* A stable copy of id in the arena; lock held for writing. */
static const char *arena_copy(struct disp_fleet *f, const char *id)
{
	size_t len = strlen(id) + 1;
	if (!f->narena || f->arena_used + len > ARENA_BLOCK) {
		char **na = realloc(f->arena, (f->narena + 1) * sizeof(*na));
		if (!na)
			return NULL;
		f->arena = na;
		if (!(f->arena[f->narena] = malloc(ARENA_BLOCK)))
			return NULL;
		f->narena++;
		f->arena_used = 0;
	}
	char *dst = f->arena[f->narena - 1] + f->arena_used;
	memcpy(dst, id, len);
	f->arena_used += len;
	return dst;
}

/* Appends a zeroed record for id; lock held for writing. */
static struct disp_vehicle *append(struct disp_fleet *f, const char *id)
{
	if (f->len == f->nchunks * CHUNK) {
		struct disp_vehicle **nc = realloc(f->chunks, (f->nchunks + 1) * sizeof(*nc));
		if (!nc)
			return NULL;
		f->chunks = nc;
		f->chunks[f->nchunks] = calloc(CHUNK, sizeof(struct disp_vehicle));
		if (!f->chunks[f->nchunks])
			return NULL;
		f->nchunks++;
	}
	struct disp_vehicle *v = rec(f, f->len);
	memset(v, 0, sizeof(*v));
	if (!(v->id = arena_copy(f, id)))
		return NULL;
	if (disp_strmap_put(&f->ids, v->id, (uint32_t)f->len))
		return NULL;
	f->len++;
	return v;
}

int disp_fleet_update(struct disp_fleet *f, const V2g__V1__VehicleState *s)
{
	uint32_t idx;
	struct disp_vehicle *v;
	int rc = V2G_OK;

	if (!s->vehicle_id || !*s->vehicle_id || strlen(s->vehicle_id) > DISP_ID_MAX)
		return V2G_ERR_INVAL;
	pthread_rwlock_wrlock(&f->lock);
	if (disp_strmap_get(&f->ids, s->vehicle_id, &idx)) {
		v = rec(f, idx);
		if (s->ts_ms < v->ts_ms)
			goto out; /* an older state arriving late */
	} else if (!(v = append(f, s->vehicle_id))) {
		rc = V2G_ERR_NOMEM;
		goto out;
	}
	v->available = s->available;
	v->priority = s->priority;
	v->soc = (float)s->soc;
	v->max_power_kw = (float)s->max_power_kw;
	v->tariff = (float)s->tariff;
	v->battery_kwh = (float)s->battery_kwh;
	v->power_kw = (float)s->power_kw;
	v->ts_ms = s->ts_ms;
	v->site = intern(f, s->site);
	v->segment = intern(f, s->segment);
	v->fleet = intern(f, s->fleet_id);
	v->cluster = intern(f, s->cluster);
out:
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

size_t disp_fleet_size(struct disp_fleet *f)
{
	pthread_rwlock_rdlock(&f->lock);
	size_t n = f->len;
	pthread_rwlock_unlock(&f->lock);
	return n;
}

long disp_fleet_eligible(struct disp_fleet *f, struct disp_band band, int64_t now_ms,
                         int64_t max_age_ms, struct disp_cand **out)
{
	pthread_rwlock_rdlock(&f->lock);
	struct disp_cand *c = malloc((f->len ? f->len : 1) * sizeof(*c));
	long n = 0;
	if (!c) {
		pthread_rwlock_unlock(&f->lock);
		return -1;
	}
	for (size_t i = 0; i < f->len; i++) {
		const struct disp_vehicle *v = rec(f, i);
		if (!v->available || v->max_power_kw <= 0 || now_ms - v->ts_ms > max_age_ms ||
		    v->soc < band.low || v->soc > band.high)
			continue;
		memset(&c[n], 0, sizeof(c[n]));
		c[n].id = v->id;
		c[n].soc = v->soc;
		c[n].max_kw = v->max_power_kw;
		c[n].tariff = v->tariff;
		c[n].battery_kwh = v->battery_kwh;
		c[n].priority = v->priority;
		c[n].site = v->site;
		c[n].segment = v->segment;
		c[n].avail_prob = 1;
		c[n].cap_kw = v->max_power_kw;
		n++;
	}
	pthread_rwlock_unlock(&f->lock);
	*out = c;
	return n;
}

size_t disp_filter(struct disp_cand *c, size_t n, double min_soc,
                   int (*skip)(void *arg, const char *id), void *arg)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].soc < min_soc || (skip && skip(arg, c[i].id)))
			continue;
		c[k++] = c[i];
	}
	return k;
}

int disp_fleet_get(struct disp_fleet *f, const char *id, struct disp_vehicle *out)
{
	uint32_t idx;
	int rc = V2G_ERR_NOTFOUND;
	pthread_rwlock_rdlock(&f->lock);
	if (disp_strmap_get(&f->ids, id, &idx)) {
		*out = *rec(f, idx);
		rc = V2G_OK;
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

uint16_t disp_fleet_intern(struct disp_fleet *f, const char *name)
{
	pthread_rwlock_wrlock(&f->lock);
	uint16_t idx = intern(f, name);
	pthread_rwlock_unlock(&f->lock);
	return idx;
}

size_t disp_fleet_names(struct disp_fleet *f)
{
	pthread_rwlock_rdlock(&f->lock);
	size_t n = f->nnames;
	pthread_rwlock_unlock(&f->lock);
	return n;
}
