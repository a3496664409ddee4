/* Input checks for the REST API: identifiers in paths, signal type names,
 * and the query string of GET /api/dispatch/logs. Pure functions: no I/O,
 * no allocation, no global state. */
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

/* A validated GET /api/dispatch/logs query. */
struct api_log_query {
	int64_t start_ms, end_ms; /* valid when has_start / has_end */
	int has_start, has_end;
	char vehicle_id[API_ID_MAX + 1]; /* "" = any vehicle */
	int signal_type;                 /* -1 = any */
	unsigned limit;                  /* 1..API_LOGS_LIMIT_MAX */
};

/* Parses a raw (still percent-encoded) query string; qs may be NULL or "".
 * Parameters start, end (RFC 3339), vehicle_id, signal_type and limit are
 * read; others are ignored; an empty value counts as absent; when a
 * parameter is repeated the last one counts. '+' is kept as a literal '+'
 * (RFC 3339 offsets), a space must be written %20. Returns 0, or
 * V2G_ERR_INVAL with one line naming the offending field in err
 * ("limit: must be an integer between 1 and 1000"). */
int api_log_query_parse(const char *qs, struct api_log_query *q, char *err, size_t errlen);

#endif
