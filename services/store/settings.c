#include "settings.h"

const struct v2g_cfg_item store_cfg_items[] = {
	{ "store.health_port", V2G_CFG_INT, offsetof(struct store_cfg, health_port), 1, 65535,
	  "9105", NULL, "HTTP port of /health and /metrics" },
	{ "store.pool_size", V2G_CFG_INT, offsetof(struct store_cfg, pool_size), 1, 32, "4", NULL,
	  "PostgreSQL connections (and bus workers) serving queries" },
	{ "store.queue_max", V2G_CFG_INT, offsetof(struct store_cfg, queue_max), 1, 10000000,
	  "10000", NULL,
	  "messages (decisions, audit batches of up to 100 events) kept while PostgreSQL is down;"
	  " beyond, the oldest is dropped" },
	{ "postgres.dsn", V2G_CFG_STRING, offsetof(struct store_cfg, dsn), 0, 4096,
	  "host=127.0.0.1 port=5432 dbname=v2g user=postgres", NULL,
	  "libpq connection string or postgresql:// URI" },
};

const size_t store_cfg_nitems = sizeof(store_cfg_items) / sizeof(store_cfg_items[0]);
