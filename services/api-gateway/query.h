/* Input checks for the REST API: identifiers in paths, signal type names,
 * and the query strings of GET /api/dispatch/logs, /api/audit/logs and
 * /api/audit/stats. Pure functions: no I/O, no allocation, no global
 * state.
 *
 * Common rules of the query strings: a raw (still percent-encoded) query
 * string, NULL or "" for none; parameters of ours are read, others
 * ignored; an empty value counts as absent; when a parameter is repeated
 * the last one counts; '+' is kept as a literal '+' (RFC 3339 offsets), a
 * space must be written %20. Errors are one line naming the offending
 * field ("limit: must be an integer between 1 and 1000") and
 * V2G_ERR_INVAL. */
#ifndef API_QUERY_H
#define API_QUERY_H

#include <stddef.h>
#include <stdint.h>

/* Longest dispatch or vehicle id accepted. */
#define API_ID_MAX 64

/* 1 when s is 1..API_ID_MAX characters of [A-Za-z0-9_.:-], else 0. */
int api_id_valid(const char *s);

/* Defaults and bounds of the logs query's limit. */
#define API_LOGS_LIMIT_DEFAULT 100
#define API_LOGS_LIMIT_MAX     1000

/* The times the store holds (dispatch decisions, the audit log):
 * 1970-01-01T00:00:00Z up to 9999-12-31T23:59:59.999Z (it refuses bounds
 * outside; a bound of 0 in its queries means none). */
#define API_STORE_MS_MAX 253402300799999LL

/* A validated GET /api/dispatch/logs query, its bounds as the store takes
 * them: within 1..API_STORE_MS_MAX when present (the LogQuery's 0 means no
 * bound). */
struct api_log_query {
	int64_t start_ms, end_ms; /* valid when has_start / has_end */
	int has_start, has_end;
	int none;                        /* 1: no dispatch the store can hold matches (answer []) */
	char vehicle_id[API_ID_MAX + 1]; /* "" = any vehicle */
	int signal_type;                 /* -1 = any */
	unsigned limit;                  /* 1..API_LOGS_LIMIT_MAX */
};

/* GET /api/dispatch/logs: start, end (RFC 3339), vehicle_id, signal_type
 * and limit. An end before the start is refused. A bound beyond what the
 * store holds is no bound (start=1900-01-01T00:00:00Z); a range wholly
 * outside it sets none (an end at or before 1970-01-01T00:00:00Z, a start
 * after 9999). Returns 0 or V2G_ERR_INVAL with err set. */
int api_log_query_parse(const char *qs, struct api_log_query *q, char *err, size_t errlen);

/* A validated GET /api/audit/logs query, its bounds as the store takes
 * them: within 1..API_STORE_MS_MAX when present (the AuditQuery's 0 means
 * no bound). */
struct api_audit_query {
	char category[32];        /* "" = any; else a v2g_audit_category name */
	int64_t start_ms, end_ms; /* valid when has_start / has_end */
	int has_start, has_end;
	int none;       /* 1: no event the store can hold matches (answer an empty list) */
	unsigned limit; /* 1..V2G_AUDIT_QUERY_MAX_LIMIT, default 100 */
};

/* GET /api/audit/logs: category, startDate (alias start), endDate (alias
 * end), limit. A date YYYY-MM-DD is that UTC day's start, or as the end
 * the next day's start (endDate=2025-01-31 includes all of the 31st); an
 * RFC 3339 time is taken as is (v2g_audit_parse_date). A name and its
 * alias together are refused, so is an end not after the start. A bound
 * beyond what the store holds is no bound (startDate=1900-01-01,
 * endDate=9999-12-31); a range wholly outside it sets none (an end at or
 * before 1970-01-01T00:00:00Z, a start after 9999). Returns 0 or
 * V2G_ERR_INVAL with err set. */
int api_audit_query_parse(const char *qs, struct api_audit_query *q, char *err, size_t errlen);

#define API_AUDIT_DAYS_DEFAULT 7

/* GET /api/audit/stats: days, 1..366 (default 7). Returns 0 or
 * V2G_ERR_INVAL with err set. */
int api_audit_stats_parse(const char *qs, unsigned *days, char *err, size_t errlen);

#endif
