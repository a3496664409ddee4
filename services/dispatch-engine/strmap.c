#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

int disp_strmap_init(struct disp_strmap *m, size_t hint)
{
	size_t cap = 16;
	while (cap < hint * 2)
		cap <<= 1;
	m->keys = calloc(cap, sizeof(*m->keys));
	m->vals = calloc(cap, sizeof(*m->vals));
	if (!m->keys || !m->vals) {
		disp_strmap_fini(m);
		return V2G_ERR_NOMEM;
	}
	m->cap = cap;
	m->len = 0;
	return V2G_OK;
}

void disp_strmap_fini(struct disp_strmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

int disp_strmap_get(const struct disp_strmap *m, const char *key, uint32_t *val)
{
	if (!m->cap)
		return 0;
	for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return 0;
		if (!strcmp(m->keys[i], key)) {
			*val = m->vals[i];
			return 1;
		}
	}
}

static void insert(const char **keys, uint32_t *vals, size_t cap, const char *key, uint32_t val)
{
	size_t i = hash(key) & (cap - 1);
	while (keys[i] && strcmp(keys[i], key))
		i = (i + 1) & (cap - 1);
	keys[i] = key;
	vals[i] = val;
}

int disp_strmap_put(struct disp_strmap *m, const char *key, uint32_t val)
{
	if (!m->cap && disp_strmap_init(m, 8))
		return V2G_ERR_NOMEM;
	uint32_t old;
	if (disp_strmap_get(m, key, &old)) {
		insert(m->keys, m->vals, m->cap, key, val);
		return V2G_OK;
	}
	if ((m->len + 1) * 2 > m->cap) {
		size_t ncap = m->cap * 2;
		const char **nk = calloc(ncap, sizeof(*nk));
		uint32_t *nv = calloc(ncap, sizeof(*nv));
		if (!nk || !nv) {
			free(nk);
			free(nv);
			return V2G_ERR_NOMEM;
		}
		for (size_t i = 0; i < m->cap; i++) {
			if (m->keys[i])
				insert(nk, nv, ncap, m->keys[i], m->vals[i]);
		}
		free(m->keys);
		free(m->vals);
		m->keys = nk;
		m->vals = nv;
		m->cap = ncap;
	}
	insert(m->keys, m->vals, m->cap, key, val);
	m->len++;
	return V2G_OK;
}
