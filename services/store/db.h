/* One PostgreSQL connection that (re)connects on demand.
 *
 * store_db_ensure() connects when needed, sets the session up (DateStyle
 * ISO, TimeZone UTC, statement_timeout) and applies the migrations on every
 * new connection, so a database that was recreated under a running store is
 * migrated again. A struct store_db is used by one thread at a time.
 *
 * The outage state is process-wide: the first failed connect after a good
 * one logs STORE-PG-DOWN (once per outage, whichever connection notices), the
 * first successful connect after that logs STORE-PG-UP. */
#ifndef STORE_DB_H
#define STORE_DB_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

struct store_db {
	const char *dsn;     /* borrowed; outlives the struct */
	const char *role;    /* "writer", "query", "health": for logs */
	PGconn *conn;        /* NULL while disconnected */
	int retry_gap_ms;    /* after a failed connect, fail fast this long */
	int64_t retry_at_ms; /* monotonic */
};

void store_db_init(struct store_db *db, const char *dsn, const char *role, int retry_gap_ms);
/* Closes the connection; safe on a zeroed or already finished struct. */
void store_db_fini(struct store_db *db);

/* Checks that dsn parses as a libpq conninfo string or URI (no connection is
 * made). Returns 0, or V2G_ERR_CONFIG with libpq's reason in err. */
int store_dsn_check(const char *dsn, char *err, size_t len);

/* Returns 0 with db->conn usable, or V2G_ERR_UNAVAILABLE with the reason in
 * err. Connecting waits at most the connect timeout (2 s unless the DSN sets
 * connect_timeout); a new connection then runs the migrations. */
int store_db_ensure(struct store_db *db, char *err, size_t len);

/* Drops the connection (after it broke); the next ensure reconnects. */
void store_db_reset(struct store_db *db);

/* 1 when connected and the connection is still good. */
int store_db_connected(const struct store_db *db);

/* Checks a result: 0 when its status is want; otherwise writes the server's
 * message to err and returns V2G_ERR_INVAL when the data was refused (SQLSTATE
 * class 22 or 23: retrying cannot help) or V2G_ERR_UNAVAILABLE (connection
 * lost, server shutting down, anything that may pass on retry). Does not
 * clear res. */
int store_db_check(const PGresult *res, ExecStatusType want, char *err, size_t len);

/* 1 for SQLSTATEs whose failure is permanent for the same input. */
int store_db_sqlstate_permanent(const char *sqlstate);

/* Health probe (v2g_health_fn); arg is a struct store_db * owned by the
 * health thread. Passes when the database answers and the schema is at the
 * latest migration. */
int store_db_probe(void *arg, char *detail, size_t len);

#endif
