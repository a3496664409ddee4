#include "query.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"
#include "convert.h"
#include "db.h"
#include "logquery.h"
#include "pool.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

#define DISPATCH_ID_MAX 256

struct store_query {
	struct store_pool *pool;
	struct v2g_metric *m_queries, *m_failures, *m_duration;
};

/* A query body: runs on conn and sends the reply (returns 0), or returns an
 * error without replying, err filled. */
typedef int (*query_fn)(PGconn *conn, const void *ctx, struct v2g_bus_reply *rep, char *err,
                        size_t len);

struct store_query *store_query_new(const char *dsn, int pool_size)
{
	struct store_query *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->pool = store_pool_new(dsn, pool_size);
	if (!q->pool) {
		free(q);
		return NULL;
	}
	q->m_queries = v2g_counter("store_queries_total", "Query requests received", "type");
	q->m_failures = v2g_counter("store_query_failures_total",
	                            "Query requests answered with an error", "code");
	q->m_duration =
	        v2g_histogram("store_query_duration_seconds", "Time to answer a query request",
	                      "type", v2g_latency_buckets, v2g_latency_nbuckets);
	return q;
}

void store_query_free(struct store_query *q)
{
	if (!q)
		return;
	store_pool_free(q->pool);
	free(q);
}

/* --- column helpers (text-format results) ------------------------------- */

static char *col_str(const PGresult *r, int row, int col)
{
	return PQgetvalue(r, row, col); /* "" for NULL */
}

static double col_double(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0.0 : strtod(PQgetvalue(r, row, col), NULL);
}

static long long col_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int col_bool(const PGresult *r, int row, int col)
{
	return PQgetvalue(r, row, col)[0] == 't';
}

/* NULL -> 0, like the protobuf *_ms fields. */
static int64_t col_ms(const PGresult *r, int row, int col)
{
	int64_t ms = 0;
	if (!PQgetisnull(r, row, col) && store_pg_to_ms(PQgetvalue(r, row, col), &ms) != 0) {
		v2g_warn("STORE-BAD-TIMESTAMP", "unreadable timestamp \"%s\"",
		         PQgetvalue(r, row, col));
		ms = 0;
	}
	return ms;
}

/* Fills a[i] from row i of an allocations result whose first column is
 * col0 (vehicle_id, round, power_kw, acked, rejected, reallocated, reason,
 * acked_at follow). Strings borrow r. */
static void fill_allocation(V2g__V1__Allocation *a, const PGresult *r, int row, int col0)
{
	v2g__v1__allocation__init(a);
	a->vehicle_id = col_str(r, row, col0);
	a->round = (uint32_t)col_int(r, row, col0 + 1);
	a->power_kw = col_double(r, row, col0 + 2);
	a->acked = col_bool(r, row, col0 + 3);
	a->rejected = col_bool(r, row, col0 + 4);
	a->reallocated = col_bool(r, row, col0 + 5);
	a->reason = col_str(r, row, col0 + 6);
	a->acked_ms = col_ms(r, row, col0 + 7);
}

/* Allocates n allocation structs and the pointer array over them. */
static int alloc_allocations(size_t n, V2g__V1__Allocation **arr, V2g__V1__Allocation ***ptrs)
{
	*arr = calloc(n ? n : 1, sizeof **arr);
	*ptrs = calloc(n ? n : 1, sizeof **ptrs);
	if (!*arr || !*ptrs) {
		free(*arr);
		free(*ptrs);
		return V2G_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		(*ptrs)[i] = &(*arr)[i];
	return 0;
}

static int exec_simple(PGconn *conn, const char *sql, char *err, size_t len)
{
	PGresult *res = PQexec(conn, sql);
	int rc = store_db_check(res, PGRES_COMMAND_OK, err, len);
	PQclear(res);
	return rc;
}

static void rollback(PGconn *conn)
{
	if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

/* Runs a read-only statement; *out is the result (caller clears). */
static int select_rows(PGconn *conn, const char *sql, int n, const char *const *values,
                       PGresult **out, char *err, size_t len)
{
	*out = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
	int rc = store_db_check(*out, PGRES_TUPLES_OK, err, len);
	if (rc) {
		PQclear(*out);
		*out = NULL;
		return V2G_ERR_UNAVAILABLE; /* a query error is never the caller's data */
	}
	return 0;
}

static const char begin_snapshot[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/* --- get_dispatch ----------------------------------------------------- */

static const char dispatch_sql[] =
        "SELECT dispatch_id, signal_id, signal_type, signal_power_kw, duration_min, signal_ts,"
        " market_price, source, status, target_power_kw, allocated_power_kw, acked_power_kw,"
        " shortfall_kw, dispatcher, rounds, started_at, completed_at, first_command_at"
        " FROM dispatches WHERE dispatch_id = $1";
static const char dispatch_allocs_sql[] =
        "SELECT vehicle_id, round, power_kw, acked, rejected, reallocated, reason, acked_at"
        " FROM allocations WHERE dispatch_id = $1 ORDER BY round, vehicle_id";

static int get_dispatch(PGconn *conn, const void *ctx, struct v2g_bus_reply *rep, char *err,
                        size_t len)
{
	const char *id = ctx;
	PGresult *d = NULL, *a = NULL;
	V2g__V1__Allocation *arr = NULL, **ptrs = NULL;
	V2g__V1__DispatchReply reply = V2G__V1__DISPATCH_REPLY__INIT;
	V2g__V1__DispatchDecision dec = V2G__V1__DISPATCH_DECISION__INIT;
	V2g__V1__Signal sig = V2G__V1__SIGNAL__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	int rc;

	if ((rc = exec_simple(conn, begin_snapshot, err, len)) != 0 ||
	    (rc = select_rows(conn, dispatch_sql, 1, &id, &d, err, len)) != 0 ||
	    (rc = select_rows(conn, dispatch_allocs_sql, 1, &id, &a, err, len)) != 0 ||
	    (rc = exec_simple(conn, "COMMIT", err, len)) != 0)
		goto out;

	env.body_case = V2G__V1__ENVELOPE__BODY_DISPATCH_REPLY;
	env.dispatch_reply = &reply;

	if (PQntuples(d) == 1) {
		size_t n = (size_t)PQntuples(a);
		if ((rc = alloc_allocations(n, &arr, &ptrs)) != 0) {
			snprintf(err, len, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			fill_allocation(arr + i, a, (int)i, 0);
		sig.signal_id = col_str(d, 0, 1);
		sig.type = (V2g__V1__SignalType)col_int(d, 0, 2);
		sig.power_kw = col_double(d, 0, 3);
		sig.duration_min = (uint32_t)col_int(d, 0, 4);
		sig.timestamp_ms = col_ms(d, 0, 5);
		sig.has_market_price = !PQgetisnull(d, 0, 6);
		sig.market_price = col_double(d, 0, 6);
		sig.source = col_str(d, 0, 7);
		dec.dispatch_id = col_str(d, 0, 0);
		dec.signal = &sig;
		dec.status = (V2g__V1__DispatchStatus)store_status_parse(col_str(d, 0, 8));
		dec.target_power_kw = col_double(d, 0, 9);
		dec.allocated_power_kw = col_double(d, 0, 10);
		dec.acked_power_kw = col_double(d, 0, 11);
		dec.shortfall_kw = col_double(d, 0, 12);
		dec.dispatcher = col_str(d, 0, 13);
		dec.rounds = (uint32_t)col_int(d, 0, 14);
		dec.started_ms = col_ms(d, 0, 15);
		dec.completed_ms = col_ms(d, 0, 16);
		dec.first_command_ms = col_ms(d, 0, 17);
		dec.n_allocations = n;
		dec.allocations = ptrs;
		reply.found = 1;
		reply.decision = &dec;
	}
	v2g_bus_reply_send(rep, &env);
out:
	if (rc)
		rollback(conn);
	free(arr);
	free(ptrs);
	PQclear(d);
	PQclear(a);
	return rc;
}

/* --- log_query -------------------------------------------------------- */

static int log_query(PGconn *conn, const void *ctx, struct v2g_bus_reply *rep, char *err,
                     size_t len)
{
	const struct store_logq *lq = ctx;
	PGresult *d = NULL, *a = NULL;
	V2g__V1__LogRecord *recs = NULL, **rec_ptrs = NULL;
	V2g__V1__Allocation *arr = NULL, **ptrs = NULL;
	V2g__V1__LogReply reply = V2G__V1__LOG_REPLY__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	size_t nrec, nalloc, cur = 0;
	int rc;

	if ((rc = exec_simple(conn, begin_snapshot, err, len)) != 0 ||
	    (rc = select_rows(conn, lq->records_sql, lq->nparams, lq->values, &d, err, len)) != 0 ||
	    (rc = select_rows(conn, lq->allocs_sql, lq->nparams, lq->values, &a, err, len)) != 0 ||
	    (rc = exec_simple(conn, "COMMIT", err, len)) != 0)
		goto out;

	nrec = (size_t)PQntuples(d);
	nalloc = (size_t)PQntuples(a);
	if (nalloc > STORE_LOG_MAX_ALLOCATIONS) {
		char msg[160];
		snprintf(msg, sizeof msg,
		         "result too large: more than %d allocations; narrow the time range or"
		         " lower the limit",
		         STORE_LOG_MAX_ALLOCATIONS);
		v2g_bus_reply_error(rep, 413, msg);
		goto out;
	}
	recs = calloc(nrec ? nrec : 1, sizeof *recs);
	rec_ptrs = calloc(nrec ? nrec : 1, sizeof *rec_ptrs);
	if (!recs || !rec_ptrs || alloc_allocations(nalloc, &arr, &ptrs) != 0) {
		snprintf(err, len, "out of memory");
		rc = V2G_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < nrec; i++) {
		V2g__V1__LogRecord *r = &recs[i];
		v2g__v1__log_record__init(r);
		r->dispatch_id = col_str(d, (int)i, 0);
		r->signal_id = col_str(d, (int)i, 1);
		r->signal_type = (int32_t)col_int(d, (int)i, 2);
		r->target_power_kw = col_double(d, (int)i, 3);
		r->allocated_power_kw = col_double(d, (int)i, 4);
		r->acked_power_kw = col_double(d, (int)i, 5);
		r->status = store_status_parse(col_str(d, (int)i, 6));
		r->started_ms = col_ms(d, (int)i, 7);
		r->completed_ms = col_ms(d, (int)i, 8);
		r->dispatcher = col_str(d, (int)i, 9);
		rec_ptrs[i] = r;
	}
	/* Allocations come in the records' order: one pass hands each record
	 * its contiguous run. */
	for (size_t i = 0; i < nalloc; i++) {
		const char *id = col_str(a, (int)i, 0);
		while (cur < nrec && strcmp(recs[cur].dispatch_id, id) != 0)
			cur++;
		if (cur == nrec) {
			v2g_error("STORE-QUERY-ORDER", "allocation of %s out of record order", id);
			break;
		}
		fill_allocation(arr + i, a, (int)i, 1);
		if (recs[cur].n_allocations == 0)
			recs[cur].allocations = ptrs + i;
		recs[cur].n_allocations++;
	}

	reply.n_records = nrec;
	reply.records = rec_ptrs;
	env.body_case = V2G__V1__ENVELOPE__BODY_LOG_REPLY;
	env.log_reply = &reply;
	v2g_bus_reply_send(rep, &env);
out:
	if (rc)
		rollback(conn);
	free(recs);
	free(rec_ptrs);
	free(arr);
	free(ptrs);
	PQclear(d);
	PQclear(a);
	return rc;
}

/* --- audit_query ------------------------------------------------------ */

static int audit_query(PGconn *conn, const void *ctx, struct v2g_bus_reply *rep, char *err,
                       size_t len)
{
	const struct store_auditq *aq = ctx;
	PGresult *r = NULL;
	char **json = NULL;
	size_t n = 0, k = 0;
	V2g__V1__AuditReply reply = V2G__V1__AUDIT_REPLY__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	int rc;

	if ((rc = select_rows(conn, aq->sql, aq->nparams, aq->values, &r, err, len)) != 0)
		return rc;
	n = (size_t)PQntuples(r);
	json = calloc(n ? n : 1, sizeof *json);
	if (!json) {
		snprintf(err, len, "out of memory");
		rc = V2G_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *v[STORE_AUDIT_NSELECT];
		int null[STORE_AUDIT_NSELECT];
		struct v2g_audit_event ev;
		for (int c = 0; c < STORE_AUDIT_NSELECT; c++) {
			v[c] = PQgetvalue(r, (int)i, c);
			null[c] = PQgetisnull(r, (int)i, c);
		}
		int bad = store_audit_event_from_row(v, null, &ev);
		if (bad) {
			/* Only a row written by something else than the store gets here. */
			v2g_warn("STORE-AUDIT-BAD-ROW", "audit_log row %s skipped: %s", v[0],
			         v2g_strerror(bad));
			continue;
		}
		json[k] = v2g_audit_event_encode(&ev);
		v2g_audit_event_fini(&ev);
		if (!json[k]) {
			snprintf(err, len, "out of memory");
			rc = V2G_ERR_NOMEM;
			goto out;
		}
		k++;
	}
	reply.n_events_json = k;
	reply.events_json = json;
	env.body_case = V2G__V1__ENVELOPE__BODY_AUDIT_REPLY;
	env.audit_reply = &reply;
	v2g_bus_reply_send(rep, &env);
out:
	for (size_t i = 0; i < k; i++)
		free(json[i]);
	free(json);
	PQclear(r);
	return rc;
}

/* --- audit_stats_query ------------------------------------------------ */

static int audit_stats(PGconn *conn, const void *ctx, struct v2g_bus_reply *rep, char *err,
                       size_t len)
{
	const struct store_audit_statsq *sq = ctx;
	PGresult *r = NULL;
	struct v2g_audit_stats st;
	uint64_t by_cat[V2G_AUDIT_NCATEGORIES], by_day[V2G_AUDIT_STATS_MAX_DAYS];
	V2g__V1__AuditStatsReply reply = V2G__V1__AUDIT_STATS_REPLY__INIT;
	v2g_env env = V2G__V1__ENVELOPE__INIT;
	int rc;

	if ((rc = select_rows(conn, store_audit_stats_sql, 3, sq->values, &r, err, len)) != 0)
		return rc;
	memset(&st, 0, sizeof st);
	st.days = sq->days;
	st.from_ms = sq->from_ms;
	for (int i = 0; i < PQntuples(r); i++)
		store_audit_stats_add(&st, col_str(r, i, 0), col_int(r, i, 1),
		                      (uint64_t)col_int(r, i, 2), (uint64_t)col_int(r, i, 3));
	PQclear(r);

	for (int i = 0; i < V2G_AUDIT_NCATEGORIES; i++)
		by_cat[i] = st.by_category[i];
	for (int i = 0; i < st.days; i++)
		by_day[i] = st.by_day[i];
	reply.days = (uint32_t)st.days;
	reply.from_ms = st.from_ms;
	reply.total = st.total;
	reply.failures = st.failures;
	reply.n_by_category = V2G_AUDIT_NCATEGORIES;
	reply.by_category = by_cat;
	reply.n_by_day = (size_t)st.days;
	reply.by_day = by_day;
	env.body_case = V2G__V1__ENVELOPE__BODY_AUDIT_STATS_REPLY;
	env.audit_stats_reply = &reply;
	v2g_bus_reply_send(rep, &env);
	return 0;
}

/* --- dispatching ------------------------------------------------------ */

static void fail(struct store_query *q, struct v2g_bus_reply *rep, int code, const char *msg)
{
	char c[8];
	snprintf(c, sizeof c, "%d", code);
	v2g_counter_inc(q->m_failures, c);
	v2g_bus_reply_error(rep, code, msg);
}

/* Runs fn on a pooled connection, once more on a fresh connection when the
 * first one turns out broken. */
static void run(struct store_query *q, query_fn fn, const void *ctx, struct v2g_bus_reply *rep,
                const char *type)
{
	char err[512] = "";
	int rc = V2G_ERR_UNAVAILABLE, sql_error = 0;
	struct store_db *db = store_pool_acquire(q->pool);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (store_db_ensure(db, err, sizeof err) != 0)
			break;
		rc = fn(db->conn, ctx, rep, err, sizeof err);
		if (rc == 0)
			break;
		if (store_db_connected(db)) {
			sql_error = 1; /* the server answered: retrying will not help */
			break;
		}
		store_db_reset(db);
	}
	store_pool_release(q->pool, db);
	if (rc == 0)
		return;
	if (sql_error) {
		v2g_error("STORE-QUERY-FAILED", "%s failed: %s", type, err);
		fail(q, rep, 500, "query failed");
	} else {
		v2g_debug("STORE-QUERY-UNAVAILABLE", "%s: %s", type, err);
		fail(q, rep, 503, "database unavailable");
	}
}

void store_query_handle(void *arg, const v2g_env *req, struct v2g_bus_reply *rep)
{
	struct store_query *q = arg;
	double t0 = v2g_mono_s();
	const char *type = "invalid";
	char err[256];

	switch (req->body_case) {
	case V2G__V1__ENVELOPE__BODY_GET_DISPATCH: {
		type = "get_dispatch";
		v2g_counter_inc(q->m_queries, type);
		const char *id = req->get_dispatch ? req->get_dispatch->dispatch_id : "";
		size_t n = strlen(id);
		if (n == 0 || n > DISPATCH_ID_MAX)
			fail(q, rep, 400, "dispatch_id: required, at most 256 bytes");
		else
			run(q, get_dispatch, id, rep, type);
		break;
	}
	case V2G__V1__ENVELOPE__BODY_LOG_QUERY: {
		type = "log_query";
		v2g_counter_inc(q->m_queries, type);
		struct store_logq lq;
		if (!req->log_query) {
			fail(q, rep, 400, "log_query: missing");
		} else if (store_logq_build(req->log_query, STORE_LOG_MAX_ALLOCATIONS, &lq, err,
		                            sizeof err) != 0) {
			fail(q, rep, 400, err);
		} else {
			run(q, log_query, &lq, rep, type);
		}
		break;
	}
	case V2G__V1__ENVELOPE__BODY_AUDIT_QUERY: {
		type = "audit_query";
		v2g_counter_inc(q->m_queries, type);
		struct store_auditq aq;
		if (!req->audit_query)
			fail(q, rep, 400, "audit_query: missing");
		else if (store_auditq_build(req->audit_query, &aq, err, sizeof err) != 0)
			fail(q, rep, 400, err);
		else
			run(q, audit_query, &aq, rep, type);
		break;
	}
	case V2G__V1__ENVELOPE__BODY_AUDIT_STATS_QUERY: {
		type = "audit_stats";
		v2g_counter_inc(q->m_queries, type);
		struct store_audit_statsq sq;
		const V2g__V1__AuditStatsQuery *a = req->audit_stats_query;
		if (!a)
			fail(q, rep, 400, "audit_stats_query: missing");
		else if (store_audit_statsq_build(a->days, a->now_ms ? a->now_ms : v2g_now_ms(),
		                                  &sq, err, sizeof err) != 0)
			fail(q, rep, 400, err);
		else
			run(q, audit_stats, &sq, rep, type);
		break;
	}
	default:
		v2g_counter_inc(q->m_queries, type);
		snprintf(err, sizeof err, "unsupported request (body %d)", (int)req->body_case);
		fail(q, rep, 400, err);
		return;
	}
	v2g_histogram_observe(q->m_duration, type, v2g_mono_s() - t0);
}
