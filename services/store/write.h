/* Writing one dispatch decision: upsert its dispatches row and replace its
 * allocations (COPY FROM STDIN), in one transaction. Writing audit events:
 * multi-row INSERTs into audit_log. */
#ifndef STORE_WRITE_H
#define STORE_WRITE_H

#include <stddef.h>
#include <libpq-fe.h>

#include "convert.h"
#include "v2g/audit.h"
#include "v2g/v1/dispatch.pb-c.h"

#define STORE_DISPATCH_NPARAMS 18

/* Text parameters $1..$18 of the dispatches upsert, in column order:
 * dispatch_id, signal_id, signal_type, signal_power_kw, duration_min,
 * signal_ts, market_price, source, status, target_power_kw,
 * allocated_power_kw, acked_power_kw, shortfall_kw, dispatcher, rounds,
 * started_at, completed_at, first_command_at. A NULL value is SQL NULL
 * (timestamps of 0 ms, a market price the signal does not have, the signal
 * fields when the decision carries no signal). */
struct store_dispatch_params {
	const char *values[STORE_DISPATCH_NPARAMS];
	char text[STORE_DISPATCH_NPARAMS][STORE_TEXT_MAX];
};

/* Fills p from d; values borrow d's strings and p's own buffers. d must have
 * passed store_decision_check(). */
void store_write_params(const V2g__V1__DispatchDecision *d, struct store_dispatch_params *p);

/* Writes d in one transaction on conn (idle, not in a transaction). Returns
 * 0; V2G_ERR_INVAL when PostgreSQL refused the data (retrying the same
 * decision cannot succeed); V2G_ERR_UNAVAILABLE (or V2G_ERR_NOMEM) when a
 * retry may succeed. On error the transaction is rolled back and err holds
 * the reason. Borrows d. */
int store_write_decision(PGconn *conn, const V2g__V1__DispatchDecision *d, char *err, size_t len);

/* Inserts evs[0..n) (each passed store_audit_decode) into audit_log, sent
 * by service, STORE_AUDIT_ROWS_PER_INSERT rows per statement, ON CONFLICT
 * (id) DO NOTHING: writing a batch again (a retry after a lost reply) adds
 * nothing. *inserted counts the rows actually added. Returns 0;
 * V2G_ERR_INVAL when PostgreSQL refused the data (some row of the failed
 * statement cannot be stored; statements before it stay written);
 * V2G_ERR_UNAVAILABLE or V2G_ERR_NOMEM when a retry may succeed. Borrows
 * everything. */
int store_write_audit(PGconn *conn, const struct v2g_audit_event *evs, size_t n,
                      const char *service, size_t *inserted, char *err, size_t len);

#endif
