#include "write.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"
#include "db.h"
#include "v2g/err.h"

/* COPY data is sent in chunks of about this size. */
#define STORE_COPY_CHUNK (256u * 1024u)

static const char upsert_sql[] =
        "INSERT INTO dispatches (dispatch_id, signal_id, signal_type, signal_power_kw,"
        " duration_min, signal_ts, market_price, source, status, target_power_kw,"
        " allocated_power_kw, acked_power_kw, shortfall_kw, dispatcher, rounds, started_at,"
        " completed_at, first_command_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
        " coalesce($16::timestamptz, now()), $17, $18, now())"
        " ON CONFLICT (dispatch_id) DO UPDATE SET"
        " signal_id = EXCLUDED.signal_id, signal_type = EXCLUDED.signal_type,"
        " signal_power_kw = EXCLUDED.signal_power_kw, duration_min = EXCLUDED.duration_min,"
        " signal_ts = EXCLUDED.signal_ts, market_price = EXCLUDED.market_price,"
        " source = EXCLUDED.source, status = EXCLUDED.status,"
        " target_power_kw = EXCLUDED.target_power_kw,"
        " allocated_power_kw = EXCLUDED.allocated_power_kw,"
        " acked_power_kw = EXCLUDED.acked_power_kw, shortfall_kw = EXCLUDED.shortfall_kw,"
        " dispatcher = EXCLUDED.dispatcher, rounds = EXCLUDED.rounds,"
        /* a decision without a start time keeps the one already recorded */
        " started_at = coalesce($16::timestamptz, dispatches.started_at),"
        " completed_at = EXCLUDED.completed_at, first_command_at = EXCLUDED.first_command_at,"
        " updated_at = now()";

static const char copy_sql[] =
        "COPY allocations (dispatch_id, vehicle_id, round, power_kw, acked, rejected,"
        " reallocated, reason, acked_at) FROM STDIN";

static void set_double(struct store_dispatch_params *p, int i, double v)
{
	store_double_text(v, p->text[i]);
	p->values[i] = p->text[i];
}

static void set_int(struct store_dispatch_params *p, int i, int64_t v)
{
	snprintf(p->text[i], STORE_TEXT_MAX, "%" PRId64, v);
	p->values[i] = p->text[i];
}

/* 0 ms is NULL. */
static void set_ts(struct store_dispatch_params *p, int i, int64_t ms)
{
	p->values[i] = NULL;
	if (ms != 0 && store_ms_to_pg(ms, p->text[i], STORE_TEXT_MAX) == 0)
		p->values[i] = p->text[i];
}

void store_write_params(const V2g__V1__DispatchDecision *d, struct store_dispatch_params *p)
{
	const V2g__V1__Signal *s = d->signal;
	memset(p->values, 0, sizeof p->values);
	p->values[0] = d->dispatch_id;
	p->values[1] = s ? s->signal_id : "";
	set_int(p, 2, s ? (int64_t)s->type : 0);
	if (s) {
		set_double(p, 3, s->power_kw);
		set_int(p, 4, s->duration_min);
		set_ts(p, 5, s->timestamp_ms);
		if (s->has_market_price)
			set_double(p, 6, s->market_price);
		p->values[7] = s->source;
	}
	p->values[8] = store_status_name((int)d->status);
	set_double(p, 9, d->target_power_kw);
	set_double(p, 10, d->allocated_power_kw);
	set_double(p, 11, d->acked_power_kw);
	set_double(p, 12, d->shortfall_kw);
	p->values[13] = d->dispatcher;
	set_int(p, 14, d->rounds);
	set_ts(p, 15, d->started_ms);
	set_ts(p, 16, d->completed_ms);
	set_ts(p, 17, d->first_command_ms);
}

/* Runs a parameterless command and checks it. */
static int exec_cmd(PGconn *conn, const char *sql, char *err, size_t len)
{
	PGresult *res = PQexec(conn, sql);
	int rc = store_db_check(res, PGRES_COMMAND_OK, err, len);
	PQclear(res);
	return rc;
}

static int put_failed(PGconn *conn, char *err, size_t len)
{
	snprintf(err, len, "COPY: %s", PQerrorMessage(conn));
	err[strcspn(err, "\n")] = '\0';
	return V2G_ERR_UNAVAILABLE;
}

/* Streams every allocation of d into an open COPY and ends it. */
static int copy_allocations(PGconn *conn, const V2g__V1__DispatchDecision *d, char *err, size_t len)
{
	struct store_buf buf = { 0 };
	int rc = 0;
	for (size_t i = 0; i < d->n_allocations; i++) {
		if (store_copy_append_allocation(&buf, d->dispatch_id, d->allocations[i])) {
			snprintf(err, len, "out of memory building COPY data");
			rc = V2G_ERR_NOMEM;
			break;
		}
		if (buf.len >= STORE_COPY_CHUNK || i + 1 == d->n_allocations) {
			if (PQputCopyData(conn, buf.p, (int)buf.len) != 1) {
				rc = put_failed(conn, err, len);
				break;
			}
			store_buf_reset(&buf);
		}
	}
	store_buf_free(&buf);
	/* With an error message the server aborts the COPY. */
	if (PQputCopyEnd(conn, rc ? "aborted by v2g-store" : NULL) != 1 && rc == 0)
		rc = put_failed(conn, err, len);

	PGresult *res;
	int first = 1;
	while ((res = PQgetResult(conn)) != NULL) {
		if (first && rc == 0)
			rc = store_db_check(res, PGRES_COMMAND_OK, err, len);
		first = 0;
		PQclear(res);
	}
	return rc;
}

int store_write_decision(PGconn *conn, const V2g__V1__DispatchDecision *d, char *err, size_t len)
{
	struct store_dispatch_params p;
	const char *del_params[1] = { d->dispatch_id };
	PGresult *res;
	int rc;

	store_write_params(d, &p);
	if ((rc = exec_cmd(conn, "BEGIN", err, len)) != 0)
		goto fail;
	res = PQexecParams(conn, upsert_sql, STORE_DISPATCH_NPARAMS, NULL, p.values, NULL, NULL, 0);
	rc = store_db_check(res, PGRES_COMMAND_OK, err, len);
	PQclear(res);
	if (rc)
		goto fail;
	res = PQexecParams(conn, "DELETE FROM allocations WHERE dispatch_id = $1", 1, NULL,
	                   del_params, NULL, NULL, 0);
	rc = store_db_check(res, PGRES_COMMAND_OK, err, len);
	PQclear(res);
	if (rc)
		goto fail;
	if (d->n_allocations > 0) {
		res = PQexec(conn, copy_sql);
		rc = store_db_check(res, PGRES_COPY_IN, err, len);
		PQclear(res);
		if (rc || (rc = copy_allocations(conn, d, err, len)) != 0)
			goto fail;
	}
	if ((rc = exec_cmd(conn, "COMMIT", err, len)) != 0)
		goto fail;
	return 0;
fail:
	if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
	return rc;
}

int store_write_audit(PGconn *conn, const struct v2g_audit_event *evs, size_t n,
                      const char *service, size_t *inserted, char *err, size_t len)
{
	size_t chunk = n < STORE_AUDIT_ROWS_PER_INSERT ? n : STORE_AUDIT_ROWS_PER_INSERT;
	struct store_audit_row *rows = calloc(chunk ? chunk : 1, sizeof *rows);
	const char **values = calloc((chunk ? chunk : 1) * STORE_AUDIT_NCOLS, sizeof *values);
	struct store_buf sql = { 0 };
	int rc = 0;

	*inserted = 0;
	if (!rows || !values) {
		snprintf(err, len, "out of memory");
		rc = V2G_ERR_NOMEM;
		goto out;
	}
	for (size_t at = 0; at < n; at += chunk) {
		size_t k = n - at < chunk ? n - at : chunk;
		for (size_t i = 0; i < k; i++) {
			store_audit_row_params(&evs[at + i], service, &rows[i]);
			memcpy(values + i * STORE_AUDIT_NCOLS, rows[i].values,
			       sizeof rows[i].values);
		}
		if (store_audit_insert_sql(k, &sql)) {
			snprintf(err, len, "out of memory");
			rc = V2G_ERR_NOMEM;
			goto out;
		}
		PGresult *res = PQexecParams(conn, sql.p, (int)(k * STORE_AUDIT_NCOLS), NULL,
		                             values, NULL, NULL, 0);
		rc = store_db_check(res, PGRES_COMMAND_OK, err, len);
		if (rc == 0)
			*inserted += (size_t)strtoul(PQcmdTuples(res), NULL, 10);
		PQclear(res);
		if (rc)
			goto out;
	}
out:
	store_buf_free(&sql);
	free(values);
	free(rows);
	return rc;
}
