/* Building the dispatch-log query from a LogQuery: validation, filters and
 * the two parameterised statements (records, then their allocations) that
 * the query worker runs in one snapshot. Pure: unit-tested without a
 * database. */
#ifndef STORE_LOGQUERY_H
#define STORE_LOGQUERY_H

#include <stddef.h>

#include "convert.h"
#include "v2g/v1/query.pb-c.h"

#define STORE_LOG_LIMIT_DEFAULT 100
#define STORE_LOG_LIMIT_MAX     1000
#define STORE_LOG_MAX_PARAMS    5

struct store_logq {
	int limit; /* records asked for, after defaulting and clamping */
	int nparams;
	const char *values[STORE_LOG_MAX_PARAMS];
	char text[STORE_LOG_MAX_PARAMS][STORE_TEXT_MAX];
	int by_vehicle; /* only the vehicle's allocations go into each record */
	/* Records: dispatch_id, signal_id, signal_type, target_power_kw,
	 * allocated_power_kw, acked_power_kw, status, started_at, completed_at,
	 * dispatcher; newest first. */
	char records_sql[1024];
	/* Their allocations, in the records' order: dispatch_id, vehicle_id,
	 * round, power_kw, acked, rejected, reallocated, reason, acked_at; at
	 * most max_allocations + 1 rows (one more tells the result is too big). */
	char allocs_sql[1536];
};

/* Filters: started_at in [start_ms, end_ms) (0 = unbounded), signal_type
 * (-1 = any, else 0..2), vehicle_id (dispatches that allocated power to it;
 * "" = any). limit 0 means 100, more than 1000 means 1000. values[] borrow
 * q->vehicle_id. Returns 0, or V2G_ERR_INVAL with "field: reason" in err. */
int store_logq_build(const V2g__V1__LogQuery *q, size_t max_allocations, struct store_logq *out,
                     char *err, size_t len);

#endif
