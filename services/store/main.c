/* v2g-store: start-up only. The write path lives in writer.c, the query
 * server's handler in query.c, the schema in migrations.c. */
#include <stdio.h>
#include <stdlib.h>

#include "db.h"
#include "query.h"
#include "settings.h"
#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/service.h"
#include "writer.h"

/* Queued decisions and audit events keep being written this long after
 * SIGTERM. */
#define DRAIN_MS 10000

static int ready(void *arg)
{
	return v2g_health_ready(arg);
}

/* postgres.dsn must parse as a libpq connection string. */
static int check_settings(void *settings, const char *file, char *err, size_t len)
{
	(void)file;
	const struct store_cfg *c = settings;
	char why[200];
	if (store_dsn_check(c->dsn, why, sizeof why) == 0)
		return 0;
	snprintf(err, len, "postgres.dsn: %s", why);
	return -1;
}

int main(int argc, char **argv)
{
	struct v2g_service svc;
	struct store_cfg cfg = { 0 };
	struct store_db health_db;
	struct store_writer *writer = NULL;
	struct store_query *query = NULL;
	struct v2g_bus_server *server = NULL;
	int rc;

	v2g_service_set_check(check_settings);
	v2g_service_init(&svc, "store", "store.health_port", 9105, argc, argv, store_cfg_items,
	                 store_cfg_nitems, &cfg);
	v2g_info("STORE-START",
	         "store starting: decisions and audit events on %s, queries on %s, %d connections",
	         svc.common.bus_store_in, svc.common.bus_store, cfg.pool_size);

	store_db_init(&health_db, cfg.dsn, "health", 0);
	v2g_health_add(svc.health, "postgres", 1, store_db_probe, &health_db);

	if ((rc = store_writer_start(&writer, cfg.dsn, svc.common.bus_store_in, cfg.queue_max))) {
		v2g_error("STORE-BUS", "cannot listen for decisions on %s: %s",
		          svc.common.bus_store_in, v2g_strerror(rc));
		return 1;
	}
	query = store_query_new(cfg.dsn, cfg.pool_size);
	if (!query) {
		v2g_error("STORE-NOMEM", "cannot allocate the connection pool");
		return 1;
	}
	if ((rc = v2g_bus_server_start(&server, svc.common.bus_store, cfg.pool_size,
	                               store_query_handle, query, ready, svc.health))) {
		v2g_error("STORE-BUS", "cannot serve queries on %s: %s", svc.common.bus_store,
		          v2g_strerror(rc));
		return 1;
	}
	/* Runs the postgres probe once (connects and migrates), then serves
	 * /health even while PostgreSQL is down. */
	v2g_service_start_http(&svc);

	v2g_service_wait(&svc);

	v2g_bus_server_stop(server);
	store_writer_stop(writer, DRAIN_MS);
	store_query_free(query);
	v2g_service_fini(&svc); /* stops the health thread before its connection goes */
	store_db_fini(&health_db);
	return 0;
}
