/* The query server's request handler: GetDispatch -> DispatchReply,
 * LogQuery -> LogReply, AuditQuery -> AuditReply, AuditStatsQuery ->
 * AuditStatsReply (auditlog.h; a bad filter -> Error 400 naming the field),
 * anything else -> Error 400. Each request borrows a
 * connection from the pool; a request that finds its connection broken
 * reconnects and runs once more; a database that stays unreachable answers
 * Error 503 "database unavailable". Reads run in one REPEATABLE READ
 * snapshot so a dispatch and its allocations always match. */
#ifndef STORE_QUERY_H
#define STORE_QUERY_H

#include <stddef.h>

#include "v2g/bus.h"

/* Above this many allocations a log query answers Error 413 rather than
 * build a reply too large for the bus. */
#define STORE_LOG_MAX_ALLOCATIONS 200000

struct store_query;

/* pool_size connections to dsn (borrowed). NULL on ENOMEM. */
struct store_query *store_query_new(const char *dsn, int pool_size);
/* After the bus server has stopped. */
void store_query_free(struct store_query *q);

/* v2g_bus_handler; arg is the struct store_query *. */
void store_query_handle(void *arg, const v2g_env *req, struct v2g_bus_reply *rep);

#endif
