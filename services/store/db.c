#include "db.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "migrations.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/timeutil.h"

enum { PG_UNKNOWN, PG_UP, PG_DOWN };
static atomic_int pg_state = PG_UNKNOWN;

static void note_down(const struct store_db *db, const char *why)
{
	if (atomic_exchange(&pg_state, PG_DOWN) != PG_DOWN)
		v2g_error("STORE-PG-DOWN", "PostgreSQL unavailable (%s connection): %s", db->role,
		          why);
}

static void note_up(const struct store_db *db)
{
	int was = atomic_exchange(&pg_state, PG_UP);
	if (was == PG_DOWN)
		v2g_info("STORE-PG-UP", "PostgreSQL reachable again (%s connection)", db->role);
	else if (was == PG_UNKNOWN)
		v2g_info("STORE-PG-CONNECTED", "connected to PostgreSQL (%s connection, server %d)",
		         db->role, PQserverVersion(db->conn));
}

/* Server notices ("relation already exists, skipping") go to the debug log
 * instead of libpq's default, a bare line on stderr. */
static void on_notice(void *arg, const char *msg)
{
	const struct store_db *db = arg;
	int n = (int)strcspn(msg, "\n");
	v2g_debug("STORE-PG-NOTICE", "%s connection: %.*s", db->role, n, msg);
}

/* Copies a libpq message into err without its trailing newline. */
static void copy_msg(char *err, size_t len, const char *msg)
{
	snprintf(err, len, "%s", msg && *msg ? msg : "unknown error");
	err[strcspn(err, "\n")] = '\0';
}

void store_db_init(struct store_db *db, const char *dsn, const char *role, int retry_gap_ms)
{
	memset(db, 0, sizeof *db);
	db->dsn = dsn;
	db->role = role;
	db->retry_gap_ms = retry_gap_ms;
}

void store_db_fini(struct store_db *db)
{
	store_db_reset(db);
}

void store_db_reset(struct store_db *db)
{
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
}

int store_db_connected(const struct store_db *db)
{
	return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

static int connect_fail(struct store_db *db, char *err, size_t len, const char *why)
{
	copy_msg(err, len, why);
	note_down(db, err);
	store_db_reset(db);
	db->retry_at_ms = v2g_mono_ms() + db->retry_gap_ms;
	return V2G_ERR_UNAVAILABLE;
}

int store_db_ensure(struct store_db *db, char *err, size_t len)
{
	if (db->conn) {
		if (PQstatus(db->conn) == CONNECTION_OK)
			return 0;
		store_db_reset(db);
	}
	if (db->retry_gap_ms > 0 && v2g_mono_ms() < db->retry_at_ms) {
		copy_msg(err, len, "database unavailable (waiting before reconnecting)");
		return V2G_ERR_UNAVAILABLE;
	}
	/* Keywords before dbname are defaults: the DSN, expanded in place of
	 * dbname, overrides them. */
	const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *const vals[] = { "2", "v2g-store", db->dsn, NULL };
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (!db->conn)
		return connect_fail(db, err, len, "out of memory");
	if (PQstatus(db->conn) != CONNECTION_OK)
		return connect_fail(db, err, len, PQerrorMessage(db->conn));
	PQsetNoticeProcessor(db->conn, on_notice, db);

	PGresult *res = PQexec(db->conn, "SET DateStyle = 'ISO'; SET TimeZone = 'UTC';"
	                                 " SET statement_timeout = '60s'");
	char why[512];
	int bad = PQresultStatus(res) != PGRES_COMMAND_OK;
	if (bad)
		copy_msg(why, sizeof why, PQresultErrorMessage(res));
	PQclear(res);
	if (bad)
		return connect_fail(db, err, len, why);

	int applied = 0, version = 0;
	if (store_migrations_apply(db->conn, &applied, &version, why, sizeof why))
		return connect_fail(db, err, len, why);
	if (applied > 0)
		v2g_info("STORE-MIGRATED", "schema migrated to version %d (%d migration%s applied)",
		         version, applied, applied == 1 ? "" : "s");
	note_up(db);
	return 0;
}

int store_dsn_check(const char *dsn, char *err, size_t len)
{
	char *why = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &why);
	if (opts) {
		PQconninfoFree(opts);
		return 0;
	}
	copy_msg(err, len, why ? why : "out of memory");
	PQfreemem(why);
	return V2G_ERR_CONFIG;
}

int store_db_sqlstate_permanent(const char *sqlstate)
{
	/* 22: data exception (bad value, invalid text); 23: integrity
	 * constraint violation. Everything else (08 connection, 57 operator
	 * intervention, 40 rollback, 53 resources, 42 a schema someone altered)
	 * may pass on a later attempt. */
	return sqlstate && strlen(sqlstate) == 5 &&
	       (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0);
}

int store_db_check(const PGresult *res, ExecStatusType want, char *err, size_t len)
{
	if (res && PQresultStatus(res) == want)
		return 0;
	copy_msg(err, len, res ? PQresultErrorMessage(res) : "no result (connection lost?)");
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return store_db_sqlstate_permanent(state) ? V2G_ERR_INVAL : V2G_ERR_UNAVAILABLE;
}

int store_db_probe(void *arg, char *detail, size_t len)
{
	struct store_db *db = arg;
	int latest = store_migrations_latest();
	/* Twice: a connection that died with a server restart is only noticed
	 * when used; the second pass reconnects. */
	for (int attempt = 0; attempt < 2; attempt++) {
		int version = 0;
		if (store_db_ensure(db, detail, len))
			return -1;
		if (store_migrations_current(db->conn, &version, detail, len) == 0) {
			if (version < latest) {
				snprintf(detail, len, "schema at version %d, expected %d", version,
				         latest);
				return -1;
			}
			snprintf(detail, len, "schema version %d", version);
			return 0;
		}
		if (store_db_connected(db))
			return -1; /* the server answered with an error */
		store_db_reset(db);
	}
	return -1;
}
