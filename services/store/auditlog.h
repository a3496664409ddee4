/* The audit log in PostgreSQL (table audit_log, migration 2): the pure
 * pieces between bus messages and SQL. Incoming events (AuditBatch
 * events_json, the JSON form of v2g/audit.h) are validated here and turned
 * into INSERT parameters; rows read back are turned into struct
 * v2g_audit_event, so that a reply carries the same JSON form the producer
 * sent (v2g_audit_event_encode; only the key order inside "details" may
 * differ: jsonb keeps keys in its own order; and jsonb prints a real with
 * 17 or more integral digits, 1e17 say, as a plain integer, which comes
 * back as the integer of the same value). AuditQuery and
 * AuditStatsQuery become parameterised statements. Nothing here touches a
 * connection; unit-tested on its own.
 *
 * Semantics are those of the in-memory log (v2g_audit_log_query /
 * v2g_audit_log_stats): newest first by ts, then by arrival (the seq
 * column); stats over UTC days, today included. */
#ifndef STORE_AUDITLOG_H
#define STORE_AUDITLOG_H

#include <stddef.h>
#include <stdint.h>

#include "convert.h"
#include "v2g/audit.h"
#include "v2g/v1/audit.pb-c.h"

/* A larger AuditBatch is refused whole (the sink sends at most 100). */
#define STORE_AUDIT_BATCH_MAX 10000

/* Decodes one events_json entry (v2g_audit_event_decode) and checks what
 * the table cannot hold: an id that is not a UUID (8-4-4-4-12 hex digits),
 * a time after 9999-12-31. Returns 0 with *ev filled (fini it), or
 * V2G_ERR_INVAL / V2G_ERR_TOOBIG / V2G_ERR_NOMEM with the reason in err and
 * *ev zeroed. */
int store_audit_decode(const char *json, struct v2g_audit_event *ev, char *err, size_t len);

/* 1 when s is a UUID in the 8-4-4-4-12 form (either case). */
int store_audit_is_uuid(const char *s);

/* Columns written per event, in INSERT order: id, ts, category, action,
 * actor_type, actor_id, actor_name, target, success, details, service. */
#define STORE_AUDIT_NCOLS 11
/* Rows per INSERT statement (PostgreSQL allows 65535 parameters). */
#define STORE_AUDIT_ROWS_PER_INSERT 500

struct store_audit_row {
	const char *values[STORE_AUDIT_NCOLS];
	char ts[STORE_TEXT_MAX];
};

/* Fills r from ev (which passed store_audit_decode) and service (the
 * envelope's sender). values borrow ev, service and r; details NULL is SQL
 * NULL. */
void store_audit_row_params(const struct v2g_audit_event *ev, const char *service,
                            struct store_audit_row *r);

/* "INSERT INTO audit_log (…) VALUES ($1…$11), … ON CONFLICT (id) DO
 * NOTHING" for nrows rows (1..STORE_AUDIT_ROWS_PER_INSERT) into out (reset
 * first). Placeholders only: the values go as parameters. 0 or
 * V2G_ERR_NOMEM / V2G_ERR_INVAL. */
int store_audit_insert_sql(size_t nrows, struct store_buf *out);

/* The columns every audit SELECT returns, in this order. */
#define STORE_AUDIT_SELECT_COLS                                                        \
	"id, ts, category, action, actor_type, actor_id, actor_name, target, success," \
	" details::text"
#define STORE_AUDIT_NSELECT 10

/* One row of STORE_AUDIT_SELECT_COLS as text (isnull[i] for SQL NULL) ->
 * *ev (overwritten; fini it). NULL strings read as "", NULL success as
 * true, NULL details as none. Details are re-encoded compactly by jansson,
 * as the producer's encoder does. Returns 0, or V2G_ERR_INVAL (unknown
 * category, unreadable time, empty action or actor type) / V2G_ERR_TOOBIG
 * (a field over its size) / V2G_ERR_NOMEM with *ev zeroed. */
int store_audit_event_from_row(const char *const values[STORE_AUDIT_NSELECT],
                               const int isnull[STORE_AUDIT_NSELECT], struct v2g_audit_event *ev);

#define STORE_AUDITQ_MAX_PARAMS 4

struct store_auditq {
	int limit; /* after defaulting and capping */
	int nparams;
	const char *values[STORE_AUDITQ_MAX_PARAMS];
	char text[STORE_AUDITQ_MAX_PARAMS][STORE_TEXT_MAX];
	char sql[640];
};

/* AuditQuery -> statement: category ("" any, else a v2g_audit_category
 * name), ts in [start_ms, end_ms) (0 = unbounded), newest first, limit 0 ->
 * V2G_AUDIT_QUERY_DEFAULT_LIMIT, capped at V2G_AUDIT_QUERY_MAX_LIMIT.
 * values[] borrow q->category. Returns 0, or V2G_ERR_INVAL with
 * "field: reason" in err (the caller answers 400). */
int store_auditq_build(const V2g__V1__AuditQuery *q, struct store_auditq *o, char *err, size_t len);

/* The stats statement: rows of (category, day index from the first day,
 * count, failures) over [$1, $2), $3 the first day's date. */
extern const char store_audit_stats_sql[];

struct store_audit_statsq {
	int days;
	int64_t from_ms, to_ms; /* first day 00:00 UTC, tomorrow 00:00 UTC */
	const char *values[3];
	char text[3][STORE_TEXT_MAX];
};

/* days 1..366 over the UTC days up to and including now_ms's (the caller
 * resolves now_ms 0 to its clock). Returns 0, or V2G_ERR_INVAL with
 * "field: reason" in err. */
int store_audit_statsq_build(uint32_t days, int64_t now_ms, struct store_audit_statsq *o, char *err,
                             size_t len);

/* Adds one stats row to st (days and from_ms already set): total and
 * failures always, by_category for a known category, by_day for a day
 * index inside the range. */
void store_audit_stats_add(struct v2g_audit_stats *st, const char *category, long long day,
                           uint64_t count, uint64_t failures);

#endif
