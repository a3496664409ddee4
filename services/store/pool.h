/* A fixed set of PostgreSQL connections for the query workers. Each worker
 * borrows one for the length of a request; connections open lazily and
 * reconnect on demand (store_db_ensure), failing fast for a second after a
 * failed connect so that queries answer 503 at once during an outage. */
#ifndef STORE_POOL_H
#define STORE_POOL_H

#include "db.h"

struct store_pool;

/* n connections to dsn (borrowed, must outlive the pool). NULL on ENOMEM. */
struct store_pool *store_pool_new(const char *dsn, int n);
/* Closes every connection; none may be borrowed. */
void store_pool_free(struct store_pool *p);

/* Borrows a connection slot, waiting while all are in use. */
struct store_db *store_pool_acquire(struct store_pool *p);
void store_pool_release(struct store_pool *p, struct store_db *db);

#endif
