/* The bounded coalescing queue between the bus receiver and the writer. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../services/store/queue.h"
#include "../harness/harness.h"
#include "v2g/err.h"

struct item {
	char key[16];
	int version;
};

static int freed;

static void item_free(void *p)
{
	freed++;
	free(p);
}

static struct item *item(const char *key, int version)
{
	struct item *it = calloc(1, sizeof *it);
	strcpy(it->key, key);
	it->version = version;
	return it;
}

static int push(struct store_queue *q, struct item *it, enum store_push_result *res, void **evicted)
{
	return store_queue_push(q, it->key, it, res, evicted);
}

static void test_fifo(void)
{
	struct store_queue *q = store_queue_new(10, item_free);
	enum store_push_result res;
	void *ev = NULL, *out = NULL;
	CHECK_INT(push(q, item("a", 1), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_ADDED);
	CHECK_INT(push(q, item("b", 1), &res, &ev), 0);
	CHECK_INT(push(q, item("c", 1), &res, &ev), 0);
	CHECK_INT(store_queue_len(q), 3);
	const char *order[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		CHECK_INT(store_queue_pop(q, &out, 0), 0);
		CHECK_STR(((struct item *)out)->key, order[i]);
		free(out);
	}
	CHECK_INT(store_queue_pop(q, &out, 0), V2G_ERR_TIMEOUT);
	store_queue_free(q);
}

static void test_coalesce_keeps_turn(void)
{
	struct store_queue *q = store_queue_new(10, item_free);
	enum store_push_result res;
	void *ev = NULL, *out = NULL;
	freed = 0;
	push(q, item("a", 1), &res, &ev);
	push(q, item("b", 1), &res, &ev);
	CHECK_INT(push(q, item("a", 2), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_COALESCED);
	CHECK_INT(freed, 1); /* the older "a" */
	CHECK_INT(store_queue_len(q), 2);
	CHECK_INT(store_queue_pop(q, &out, 0), 0);
	CHECK_STR(((struct item *)out)->key, "a");
	CHECK_INT(((struct item *)out)->version, 2);
	free(out);
	/* once popped, the same key queues anew */
	CHECK_INT(push(q, item("a", 3), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_ADDED);
	CHECK_INT(store_queue_pop(q, &out, 0), 0);
	CHECK_STR(((struct item *)out)->key, "b");
	free(out);
	store_queue_free(q);
	CHECK_INT(freed, 2); /* "a" v3 freed with the queue */
}

static void test_full_evicts_oldest(void)
{
	struct store_queue *q = store_queue_new(2, item_free);
	enum store_push_result res;
	void *ev = NULL, *out = NULL;
	push(q, item("a", 1), &res, &ev);
	push(q, item("b", 1), &res, &ev);
	/* coalescing into a full queue evicts nothing */
	CHECK_INT(push(q, item("b", 2), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_COALESCED);
	CHECK_INT(push(q, item("c", 1), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_EVICTED);
	CHECK(ev != NULL);
	CHECK_STR(((struct item *)ev)->key, "a");
	free(ev);
	CHECK_INT(store_queue_len(q), 2);
	CHECK_INT(store_queue_pop(q, &out, 0), 0);
	CHECK_STR(((struct item *)out)->key, "b");
	free(out);
	CHECK_INT(store_queue_pop(q, &out, 0), 0);
	CHECK_STR(((struct item *)out)->key, "c");
	free(out);
	store_queue_free(q);
}

/* Items pushed without a key (audit batches) never coalesce, neither with
 * each other nor with keyed items, and are evicted like any other. */
static void test_null_key_never_coalesces(void)
{
	struct store_queue *q = store_queue_new(3, item_free);
	enum store_push_result res;
	void *ev = NULL, *out = NULL;
	CHECK_INT(store_queue_push(q, NULL, item("n1", 1), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_ADDED);
	CHECK_INT(store_queue_push(q, "k", item("k", 1), &res, &ev), 0);
	CHECK_INT(store_queue_push(q, NULL, item("n2", 1), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_ADDED);
	CHECK_INT(store_queue_len(q), 3);
	CHECK_INT(store_queue_push(q, "k", item("k", 2), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_COALESCED);
	CHECK_INT(store_queue_push(q, NULL, item("n3", 1), &res, &ev), 0);
	CHECK_INT(res, STORE_PUSH_EVICTED);
	CHECK_STR(((struct item *)ev)->key, "n1");
	free(ev);
	const char *want[] = { "k", "n2", "n3" };
	for (int i = 0; i < 3; i++) {
		CHECK_INT(store_queue_pop(q, &out, 0), 0);
		CHECK_STR(((struct item *)out)->key, want[i]);
		free(out);
	}
	store_queue_free(q);
}

static void test_close_drains_then_reports(void)
{
	struct store_queue *q = store_queue_new(4, item_free);
	enum store_push_result res;
	void *ev = NULL, *out = NULL;
	struct item *late = item("z", 1);
	push(q, item("a", 1), &res, &ev);
	store_queue_close(q);
	CHECK_INT(push(q, late, &res, &ev), V2G_ERR_CLOSED);
	free(late); /* not taken */
	CHECK_INT(store_queue_pop(q, &out, -1), 0);
	free(out);
	CHECK_INT(store_queue_pop(q, &out, -1), V2G_ERR_CLOSED);
	store_queue_free(q);
}

static void test_pop_timeout(void)
{
	struct store_queue *q = store_queue_new(4, item_free);
	void *out = NULL;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK_INT(store_queue_pop(q, &out, 100), V2G_ERR_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double dt = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	CHECK(dt >= 0.09);
	store_queue_free(q);
}

static struct store_queue *shared_q;

static void *pusher(void *arg)
{
	(void)arg;
	struct timespec ts = { 0, 50 * 1000000L };
	nanosleep(&ts, NULL);
	enum store_push_result res;
	void *ev = NULL;
	push(shared_q, item("x", 1), &res, &ev);
	return NULL;
}

static void test_pop_wakes_on_push(void)
{
	pthread_t t;
	void *out = NULL;
	shared_q = store_queue_new(4, item_free);
	pthread_create(&t, NULL, pusher, NULL);
	CHECK_INT(store_queue_pop(shared_q, &out, 5000), 0);
	CHECK(out != NULL && strcmp(((struct item *)out)->key, "x") == 0);
	free(out);
	pthread_join(t, NULL);
	store_queue_free(shared_q);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_fifo),
		HCASE(test_coalesce_keeps_turn),
		HCASE(test_full_evicts_oldest),
		HCASE(test_null_key_never_coalesces),
		HCASE(test_close_drains_then_reports),
		HCASE(test_pop_timeout),
		HCASE(test_pop_wakes_on_push),
	};
	return harness_main("store_queue", cases, HARNESS_N(cases));
}
