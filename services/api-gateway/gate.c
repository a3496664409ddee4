#include "gate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	char key[API_GATE_KEY_MAX]; /* meaningful when used */
	int used;
	int64_t last_ms; /* when its last event passed */
	unsigned long held;
};

struct api_gate {
	pthread_mutex_t mu;
	int64_t interval_ms;
	size_t n;
	struct slot *slots;
};

struct api_gate *api_gate_new(size_t slots, int64_t interval_ms)
{
	struct api_gate *g;

	if (slots == 0 || interval_ms < 1)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->slots = calloc(slots, sizeof(*g->slots));
	if (!g->slots) {
		free(g);
		return NULL;
	}
	g->n = slots;
	g->interval_ms = interval_ms;
	pthread_mutex_init(&g->mu, NULL);
	return g;
}

void api_gate_free(struct api_gate *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->mu);
	free(g->slots);
	free(g);
}

/* FNV-1a over the (cut) key. */
static size_t hash(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

int api_gate_pass(struct api_gate *g, const char *key, int64_t now_ms, unsigned long *held)
{
	char k[API_GATE_KEY_MAX];
	size_t kl;
	struct slot *s;
	int pass = 1;

	if (!key)
		key = "";
	kl = strnlen(key, sizeof(k) - 1);
	memcpy(k, key, kl);
	k[kl] = '\0';
	pthread_mutex_lock(&g->mu);
	s = &g->slots[hash(k, kl) % g->n];
	if (!s->used || strcmp(s->key, k) != 0) {
		memcpy(s->key, k, kl + 1);
		s->used = 1;
		s->held = 0;
	} else if (now_ms - s->last_ms < g->interval_ms && now_ms >= s->last_ms) {
		/* within the interval (a clock that went back lets it through) */
		pass = 0;
	}
	if (pass) {
		if (held)
			*held = s->held;
		s->held = 0;
		s->last_ms = now_ms;
	} else {
		s->held++;
	}
	pthread_mutex_unlock(&g->mu);
	return pass;
}
