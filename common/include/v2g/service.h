/* What every v2g daemon does at start and stop: arguments (-c FILE, -n,
 * -h), shared + own configuration, logging, the health registry, the HTTP
 * endpoint, and graceful shutdown on SIGTERM/SIGINT. main() stays short:
 *
 *   v2g_service_init(&svc, "store", "store.health_port", 9105, argc, argv,
 *                    items, n, &cfg);
 *   ... open resources, v2g_health_add(svc.health, ...) ...
 *   v2g_service_start_http(&svc);
 *   v2g_service_wait(&svc);          // until SIGTERM
 *   ... drain in-flight work, close resources ...
 *   v2g_service_fini(&svc);
 */
#ifndef V2G_SERVICE_H
#define V2G_SERVICE_H

#include <stddef.h>
#include "v2g/config.h"
#include "v2g/health.h"
#include "v2g/httpd.h"

/* Settings every service reads (groups logging, bus, http). */
struct v2g_common_cfg {
	char *log_level;  /* logging.level */
	char *log_format; /* logging.format: "text" | "json" */
	char *http_bind;  /* http.bind_address */
	int http_threads; /* http.threads */
	/* bus endpoints: the owner listens, peers dial */
	char *bus_ingest;      /* signal-ingest REP */
	char *bus_dispatch;    /* dispatch-engine REP */
	char *bus_dispatch_in; /* dispatch-engine PULL (acks, publish reports) */
	char *bus_gateway;     /* vehicle-gateway REP */
	char *bus_gateway_in;  /* vehicle-gateway PULL (command batches) */
	char *bus_telemetry;   /* vehicle-gateway PUB (telemetry batches) */
	char *bus_store;       /* store REP (queries) */
	char *bus_store_in;    /* store PULL (decisions) */
	char *bus_scheduler;   /* scheduler REP */
	char *bus_dlm;         /* site-dlm REP */
	int bus_timeout_ms;    /* bus.request_timeout_ms */
};

struct v2g_service {
	const char *name;        /* "dispatch-engine" */
	const char *config_file; /* NULL when none */
	int http_port;
	struct v2g_common_cfg common;
	struct v2g_health *health;
	struct v2g_httpd *httpd;
	const struct v2g_cfg_item *items; /* the service's own table */
	size_t n_items;
	void *cfg;
};

/* Parses argv, loads the shared and the service's settings (port_path names
 * the HTTP port setting, default_port its default), starts logging and
 * creates the health registry. Blocks SIGTERM/SIGINT for every thread created
 * afterwards. On a bad argument or setting prints one line to stderr and
 * exits 2; with -n exits 0 after a successful load. */
void v2g_service_init(struct v2g_service *svc, const char *name, const char *port_path,
                      int default_port, int argc, char **argv, const struct v2g_cfg_item *items,
                      size_t n, void *cfg);

/* Checks what a settings table cannot express (e.g. low < high) and may
 * fill derived fields or read more from the file (NULL when none). Writes
 * one line into err and returns non-zero to refuse the configuration. */
typedef int (*v2g_cfg_check_fn)(void *cfg, const char *file, char *err, size_t len);

/* Registers the service's check; call before v2g_service_init, which runs it
 * after loading (also under -n) and exits 2 with the line on failure. */
void v2g_service_set_check(v2g_cfg_check_fn fn);

/* Starts the health thread and the HTTP endpoint. Exits 1 (logged) if the
 * port cannot be bound. */
void v2g_service_start_http(struct v2g_service *svc);

/* Blocks until SIGTERM or SIGINT; v2g_running() turns 0 first, and the
 * health probes are stopped (their arguments may be freed afterwards). */
void v2g_service_wait(struct v2g_service *svc);

/* 1 until shutdown starts. Worker loops poll it. */
int v2g_running(void);
/* Starts shutdown from inside the process (tests, fatal dependency loss). */
void v2g_service_stop(void);

/* Stops HTTP and health, frees configuration. */
void v2g_service_fini(struct v2g_service *svc);

/* A health probe that pings a bus REP server: arg is a struct
 * v2g_bus_client *. */
int v2g_health_bus_peer(void *arg, char *detail, size_t len);

/* A health probe that passes while a socket has a connected peer: arg is a
 * struct v2g_bus_peers * (v2g_bus_peers_watch). */
int v2g_health_bus_connected(void *arg, char *detail, size_t len);

#endif
