/* The store's own settings (group "store" plus postgres.dsn), described as a
 * v2g_cfg_item table for v2g_service_init(). */
#ifndef STORE_SETTINGS_H
#define STORE_SETTINGS_H

#include <stddef.h>
#include "v2g/config.h"

struct store_cfg {
	int health_port; /* store.health_port */
	int pool_size;   /* store.pool_size: query connections and bus workers */
	int queue_max;   /* store.queue_max: messages buffered while PG is down */
	char *dsn;       /* postgres.dsn (libpq conninfo string or URI) */
};

extern const struct v2g_cfg_item store_cfg_items[];
extern const size_t store_cfg_nitems;

#endif
