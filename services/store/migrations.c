#include "migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

/* pg_advisory_xact_lock key shared by every store process ("v2gstore"). */
#define STORE_MIGRATION_LOCK "8516983590883390053"

const struct store_migration store_migrations[] = {
	{ 1, "dispatches and allocations",
	  "CREATE TABLE dispatches ("
	  " dispatch_id text PRIMARY KEY,"
	  " signal_id text NOT NULL,"
	  " signal_type smallint NOT NULL," /* 0 FCR, 1 AFRR, 2 LOAD_SHEDDING */
	  " signal_power_kw double precision,"
	  " duration_min int,"
	  " signal_ts timestamptz,"
	  " market_price double precision NULL,"
	  " source text,"
	  " status text NOT NULL"
	  "  CHECK (status IN ('pending', 'complete', 'partial', 'failed')),"
	  " target_power_kw double precision,"
	  " allocated_power_kw double precision,"
	  " acked_power_kw double precision,"
	  " shortfall_kw double precision,"
	  " dispatcher text,"
	  " rounds int,"
	  " started_at timestamptz NOT NULL,"
	  " completed_at timestamptz NULL,"
	  " first_command_at timestamptz NULL,"
	  " updated_at timestamptz DEFAULT now());"
	  "CREATE INDEX dispatches_started_at_idx ON dispatches (started_at);"
	  "CREATE INDEX dispatches_type_started_at_idx ON dispatches (signal_type, started_at);"
	  "CREATE TABLE allocations ("
	  " dispatch_id text REFERENCES dispatches ON DELETE CASCADE,"
	  " vehicle_id text,"
	  " round int,"
	  " power_kw double precision,"
	  " acked bool,"
	  " rejected bool,"
	  " reallocated bool,"
	  " reason text,"
	  " acked_at timestamptz NULL,"
	  " PRIMARY KEY (dispatch_id, vehicle_id, round));"
	  "CREATE INDEX allocations_vehicle_idx ON allocations (vehicle_id, dispatch_id);" },
	/* Audit events (DLM guide 1.7) from every service's audit sink. ts is
	 * the event's time; received_at and seq record arrival (seq orders
	 * the events of one batch, which share received_at). */
	{ 2, "audit log",
	  "CREATE TABLE audit_log ("
	  " id uuid PRIMARY KEY,"
	  " ts timestamptz NOT NULL,"
	  " category text NOT NULL,"
	  " action text NOT NULL,"
	  " actor_type text,"
	  " actor_id text,"
	  " actor_name text,"
	  " target text,"
	  " success boolean,"
	  " details jsonb,"
	  " service text," /* the sending service (Envelope.sender) */
	  " received_at timestamptz NOT NULL DEFAULT now(),"
	  " seq bigint GENERATED ALWAYS AS IDENTITY);"
	  "CREATE INDEX audit_log_ts_idx ON audit_log (ts);"
	  "CREATE INDEX audit_log_category_ts_idx ON audit_log (category, ts);" },
};

const size_t store_nmigrations = sizeof(store_migrations) / sizeof(store_migrations[0]);

int store_migrations_latest(void)
{
	return store_migrations[store_nmigrations - 1].version;
}

/* Runs sql (no parameters) and checks that it succeeded. */
static int exec_ok(PGconn *conn, const char *sql, char *err, size_t len)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int rc = 0;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(err, len, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		rc = V2G_ERR_UNAVAILABLE;
	}
	PQclear(res);
	return rc;
}

/* Reads max(version) inside the current transaction. */
static int read_version(PGconn *conn, int *version, char *err, size_t len)
{
	PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	int rc = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		snprintf(err, len, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		rc = V2G_ERR_UNAVAILABLE;
	} else {
		*version = atoi(PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return rc;
}

static void rollback(PGconn *conn)
{
	if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

/* Applies migration m unless it is already recorded; one transaction. */
static int apply_one(PGconn *conn, const struct store_migration *m, int *applied, char *err,
                     size_t len)
{
	char version[16];
	const char *params[2] = { version, m->name };
	int current = 0;
	snprintf(version, sizeof version, "%d", m->version);

	if (exec_ok(conn, "BEGIN", err, len) ||
	    exec_ok(conn, "SELECT pg_advisory_xact_lock(" STORE_MIGRATION_LOCK ")", err, len) ||
	    read_version(conn, &current, err, len))
		goto fail;
	if (current >= m->version)
		return exec_ok(conn, "COMMIT", err, len);
	if (exec_ok(conn, m->sql, err, len))
		goto fail;
	PGresult *res =
	        PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
	                     2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, len, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (exec_ok(conn, "COMMIT", err, len))
		goto fail;
	(*applied)++;
	return 0;
fail:
	rollback(conn);
	return V2G_ERR_UNAVAILABLE;
}

int store_migrations_apply(PGconn *conn, int *applied, int *version, char *err, size_t len)
{
	*applied = 0;
	/* The bookkeeping table itself, under the same lock: two concurrent
	 * CREATE TABLE IF NOT EXISTS can otherwise collide in the catalog. */
	if (exec_ok(conn, "BEGIN", err, len) ||
	    exec_ok(conn, "SELECT pg_advisory_xact_lock(" STORE_MIGRATION_LOCK ")", err, len) ||
	    exec_ok(conn,
	            "CREATE TABLE IF NOT EXISTS schema_migrations ("
	            " version int PRIMARY KEY,"
	            " name text NOT NULL,"
	            " applied_at timestamptz NOT NULL DEFAULT now())",
	            err, len) ||
	    exec_ok(conn, "COMMIT", err, len)) {
		rollback(conn);
		return V2G_ERR_UNAVAILABLE;
	}
	for (size_t i = 0; i < store_nmigrations; i++) {
		char why[256];
		if (apply_one(conn, &store_migrations[i], applied, why, sizeof why)) {
			snprintf(err, len, "migration %d (%s): %s", store_migrations[i].version,
			         store_migrations[i].name, why);
			return V2G_ERR_UNAVAILABLE;
		}
	}
	return store_migrations_current(conn, version, err, len);
}

int store_migrations_current(PGconn *conn, int *version, char *err, size_t len)
{
	PGresult *res = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
	int rc = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		snprintf(err, len, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		rc = V2G_ERR_UNAVAILABLE;
	} else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		*version = 0;
	} else {
		rc = read_version(conn, version, err, len);
	}
	PQclear(res);
	return rc;
}
