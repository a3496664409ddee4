#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "v2g/err.h"
#include "v2g/sync.h"

struct node {
	struct node *next;
	char *key;
	void *item;
};

struct store_queue {
	pthread_mutex_t mu;
	pthread_cond_t nonempty;
	struct node *head, *tail;
	size_t len, max;
	int closed;
	void (*free_fn)(void *);
};

struct store_queue *store_queue_new(size_t max, void (*free_fn)(void *))
{
	struct store_queue *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	v2g_cond_init_mono(&q->nonempty);
	pthread_mutex_init(&q->mu, NULL);
	q->max = max ? max : 1;
	q->free_fn = free_fn;
	return q;
}

static void node_free(struct store_queue *q, struct node *n, int free_item)
{
	if (free_item && q->free_fn)
		q->free_fn(n->item);
	free(n->key);
	free(n);
}

void store_queue_free(struct store_queue *q)
{
	if (!q)
		return;
	struct node *n = q->head;
	while (n) {
		struct node *next = n->next;
		node_free(q, n, 1);
		n = next;
	}
	pthread_cond_destroy(&q->nonempty);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* Unlinks the head; the queue must not be empty. */
static struct node *take_head(struct store_queue *q)
{
	struct node *n = q->head;
	q->head = n->next;
	if (!q->head)
		q->tail = NULL;
	q->len--;
	return n;
}

int store_queue_push(struct store_queue *q, const char *key, void *item,
                     enum store_push_result *result, void **evicted)
{
	int rc = 0;
	pthread_mutex_lock(&q->mu);
	if (q->closed) {
		rc = V2G_ERR_CLOSED;
		goto out;
	}
	for (struct node *n = q->head; key && n; n = n->next) {
		if (n->key && strcmp(n->key, key) == 0) {
			void *old = n->item;
			n->item = item;
			*result = STORE_PUSH_COALESCED;
			pthread_mutex_unlock(&q->mu);
			if (q->free_fn)
				q->free_fn(old);
			return 0;
		}
	}
	struct node *n = malloc(sizeof *n);
	char *k = key ? strdup(key) : NULL;
	if (!n || (key && !k)) {
		free(n);
		free(k);
		rc = V2G_ERR_NOMEM;
		goto out;
	}
	*result = STORE_PUSH_ADDED;
	if (q->len >= q->max) {
		struct node *old = take_head(q);
		*evicted = old->item;
		node_free(q, old, 0);
		*result = STORE_PUSH_EVICTED;
	}
	n->next = NULL;
	n->key = k;
	n->item = item;
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->len++;
	pthread_cond_signal(&q->nonempty);
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int store_queue_pop(struct store_queue *q, void **item, int timeout_ms)
{
	struct timespec until = v2g_mono_deadline(timeout_ms);
	int rc = 0;
	pthread_mutex_lock(&q->mu);
	while (!q->head && !q->closed) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&q->nonempty, &q->mu);
		} else if (timeout_ms == 0 ||
		           pthread_cond_timedwait(&q->nonempty, &q->mu, &until) == ETIMEDOUT) {
			if (!q->head && !q->closed) {
				rc = V2G_ERR_TIMEOUT;
				goto out;
			}
		}
	}
	if (!q->head) {
		rc = V2G_ERR_CLOSED;
		goto out;
	}
	struct node *n = take_head(q);
	*item = n->item;
	node_free(q, n, 0);
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void store_queue_close(struct store_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = 1;
	pthread_cond_broadcast(&q->nonempty);
	pthread_mutex_unlock(&q->mu);
}

size_t store_queue_len(struct store_queue *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}
