#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

#define POOL_RETRY_GAP_MS 1000

struct store_pool {
	pthread_mutex_t mu;
	pthread_cond_t freed;
	int n;
	struct store_db *dbs;
	char *busy;
};

struct store_pool *store_pool_new(const char *dsn, int n)
{
	struct store_pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->dbs = calloc((size_t)n, sizeof *p->dbs);
	p->busy = calloc((size_t)n, 1);
	if (!p->dbs || !p->busy) {
		free(p->dbs);
		free(p->busy);
		free(p);
		return NULL;
	}
	p->n = n;
	for (int i = 0; i < n; i++)
		store_db_init(&p->dbs[i], dsn, "query", POOL_RETRY_GAP_MS);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->freed, NULL);
	return p;
}

void store_pool_free(struct store_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n; i++)
		store_db_fini(&p->dbs[i]);
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->mu);
	free(p->dbs);
	free(p->busy);
	free(p);
}

struct store_db *store_pool_acquire(struct store_pool *p)
{
	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* Prefer a slot that is already connected. */
		int pick = -1;
		for (int i = 0; i < p->n; i++) {
			if (p->busy[i])
				continue;
			if (pick < 0 || (p->dbs[i].conn && !p->dbs[pick].conn))
				pick = i;
		}
		if (pick >= 0) {
			p->busy[pick] = 1;
			pthread_mutex_unlock(&p->mu);
			return &p->dbs[pick];
		}
		pthread_cond_wait(&p->freed, &p->mu);
	}
}

void store_pool_release(struct store_pool *p, struct store_db *db)
{
	pthread_mutex_lock(&p->mu);
	p->busy[db - p->dbs] = 0;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->mu);
}
