/* Pure conversions between bus messages and PostgreSQL text: timestamps
 * (UTC ms <-> timestamptz text), doubles, COPY text-format fields, status
 * names, and the check a decision passes before it is queued. Nothing here
 * touches a connection, so every function is unit-tested on its own. */
#ifndef STORE_CONVERT_H
#define STORE_CONVERT_H

#include <stddef.h>
#include <stdint.h>
#include "v2g/v1/dispatch.pb-c.h"

/* A growable byte buffer; zero-initialise, release with store_buf_free().
 * Contents are always NUL-terminated once anything was appended. */
struct store_buf {
	char *p;
	size_t len, cap;
};

int store_buf_append(struct store_buf *b, const char *s, size_t n); /* 0 or V2G_ERR_NOMEM */
int store_buf_puts(struct store_buf *b, const char *s);
void store_buf_reset(struct store_buf *b); /* len = 0, keeps the memory */
void store_buf_free(struct store_buf *b);

/* Longest text any formatter below writes, NUL included. */
#define STORE_TEXT_MAX 40

/* UTC ms -> "2026-11-21 11:32:24.123+00" (ISO, accepted by timestamptz
 * under any DateStyle). Returns 0, or V2G_ERR_INVAL if len is too small. */
int store_ms_to_pg(int64_t ms, char *buf, size_t len);

/* timestamptz text as PostgreSQL prints it with DateStyle ISO
 * ("2026-11-21 11:32:24.123456+00", "…+05:30", "T" separator accepted) ->
 * UTC ms (sub-millisecond digits truncated). Returns 0 or V2G_ERR_INVAL. */
int store_pg_to_ms(const char *s, int64_t *ms);

/* Shortest-exact ("%.17g") text of v; "NaN", "Infinity", "-Infinity" for
 * non-finite values, as float8 input expects. */
void store_double_text(double v, char buf[STORE_TEXT_MAX]);

/* "pending" | "complete" | "partial" | "failed" for a DispatchStatus value,
 * NULL when out of range. */
const char *store_status_name(int status);
/* Inverse of store_status_name; -1 when the name is unknown. */
int store_status_parse(const char *name);

/* Appends s as one field of COPY text format (backslash, tab, newline and
 * carriage return escaped). */
int store_copy_append_text(struct store_buf *b, const char *s);

/* Appends one allocations row in COPY text format, newline included:
 * dispatch_id, vehicle_id, round, power_kw, acked, rejected, reallocated,
 * reason, acked_at (\N when acked_ms is 0). */
int store_copy_append_allocation(struct store_buf *b, const char *dispatch_id,
                                 const V2g__V1__Allocation *a);

/* Checks what the schema cannot store: a dispatch_id (1..256 bytes), a known
 * status, a known signal type, vehicle ids on every allocation, counters that
 * fit a PostgreSQL int. Returns 0, or V2G_ERR_INVAL with the reason in err. */
int store_decision_check(const V2g__V1__DispatchDecision *d, char *err, size_t len);

#endif
