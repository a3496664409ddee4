/* The store's schema, as an ordered list of migrations applied in C.
 *
 * Each migration runs in its own transaction under a transaction-scoped
 * advisory lock, and is recorded in schema_migrations(version, name,
 * applied_at), so several store processes starting at once apply each
 * migration exactly once. Add a migration by appending to the array with the
 * next version; never edit one that has shipped. */
#ifndef STORE_MIGRATIONS_H
#define STORE_MIGRATIONS_H

#include <stddef.h>
#include <libpq-fe.h>

struct store_migration {
	int version; /* 1, 2, 3 … strictly increasing */
	const char *name;
	const char *sql; /* one or more statements, no parameters */
};

extern const struct store_migration store_migrations[];
extern const size_t store_nmigrations;

/* Version of the last migration in the array. */
int store_migrations_latest(void);

/* Brings the database on conn up to the latest version. *applied receives
 * how many migrations this call applied (0 when already current), *version
 * the schema version afterwards. Returns 0, or V2G_ERR_UNAVAILABLE with a
 * reason in err (the failed migration's transaction is rolled back). */
int store_migrations_apply(PGconn *conn, int *applied, int *version, char *err, size_t len);

/* Reads the schema version (0 when schema_migrations does not exist yet). */
int store_migrations_current(PGconn *conn, int *version, char *err, size_t len);

#endif
