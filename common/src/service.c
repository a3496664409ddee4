#include "v2g/service.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "v2g/bus.h"
#include "v2g/err.h"
#include "v2g/log.h"
#include "v2g/metrics.h"
#include "v2g/timeutil.h"

#define C(field) offsetof(struct v2g_common_cfg, field)
#define URL(path, field, def, help)                                     \
	{                                                               \
		path, V2G_CFG_STRING, C(field), 0, 255, def, NULL, help \
	}

static const struct v2g_cfg_item common_items[] = {
	{ "logging.level", V2G_CFG_STRING, C(log_level), 0, 16, "info", "LOG_LEVEL",
	  "debug | info | warn | error" },
	{ "logging.format", V2G_CFG_STRING, C(log_format), 0, 16, "text", "LOG_FORMAT",
	  "text | json" },
	{ "http.bind_address", V2G_CFG_STRING, C(http_bind), 0, 64, "127.0.0.1", NULL,
	  "address of the health/metrics (and API) server" },
	{ "http.threads", V2G_CFG_INT, C(http_threads), 1, 64, "4", NULL, "HTTP worker threads" },
	URL("bus.ingest", bus_ingest, "tcp://127.0.0.1:7301", "signal-ingest req/rep"),
	URL("bus.dispatch", bus_dispatch, "tcp://127.0.0.1:7311", "dispatch-engine req/rep"),
	URL("bus.dispatch_in", bus_dispatch_in, "tcp://127.0.0.1:7312", "dispatch-engine pull"),
	URL("bus.gateway", bus_gateway, "tcp://127.0.0.1:7321", "vehicle-gateway req/rep"),
	URL("bus.gateway_in", bus_gateway_in, "tcp://127.0.0.1:7322", "vehicle-gateway pull"),
	URL("bus.telemetry", bus_telemetry, "tcp://127.0.0.1:7323", "vehicle-gateway pub"),
	URL("bus.store", bus_store, "tcp://127.0.0.1:7331", "store req/rep"),
	URL("bus.store_in", bus_store_in, "tcp://127.0.0.1:7332", "store pull"),
	URL("bus.scheduler", bus_scheduler, "tcp://127.0.0.1:7341", "scheduler req/rep"),
	URL("bus.dlm", bus_dlm, "tcp://127.0.0.1:7351", "site-dlm req/rep"),
	{ "bus.request_timeout_ms", V2G_CFG_INT, C(bus_timeout_ms), 10, 600000, "3000", NULL,
	  "req/rep timeout" },
};
#define N_COMMON (sizeof(common_items) / sizeof(common_items[0]))

static volatile sig_atomic_t running = 1;
static v2g_cfg_check_fn cfg_check;
/* Fired when shutdown starts: cuts short a v2g_health_bus_peer ping in
 * progress, so that stopping the health thread never waits out its timeout. */
static struct v2g_bus_cancel *probe_cancel;

void v2g_service_set_check(v2g_cfg_check_fn fn)
{
	cfg_check = fn;
}
static sigset_t stop_set;

int v2g_running(void)
{
	return running;
}

void v2g_service_stop(void)
{
	running = 0;
	kill(getpid(), SIGTERM);
}

static void usage(const char *prog, FILE *f)
{
	fprintf(f,
	        "usage: %s [-c FILE] [-n] [-h] [service options]\n"
	        "  -c FILE  configuration file (default: $V2G_CONFIG, else ./config.cfg if "
	        "present)\n"
	        "  -n       check the configuration and exit\n"
	        "  -h       this help\n"
	        "Every setting can be overridden as K_<GROUP>__<KEY> in the environment.\n",
	        prog);
}

static void print_items(const struct v2g_cfg_item *items, size_t n)
{
	char env[128];
	for (size_t i = 0; i < n; i++) {
		v2g_config_env_name(items[i].path, env, sizeof(env));
		printf("  %-36s %-40s default %s\n", items[i].path, env,
		       items[i].def ? items[i].def : "(required)");
	}
}

void v2g_service_init(struct v2g_service *svc, const char *name, const char *port_path,
                      int default_port, int argc, char **argv, const struct v2g_cfg_item *items,
                      size_t n, void *cfg)
{
	char err[512], def[16];
	int check_only = 0;
	enum v2g_log_level level;
	const char *file = getenv("V2G_CONFIG");

	memset(svc, 0, sizeof(*svc));
	svc->name = name;
	svc->items = items;
	svc->n_items = n;
	svc->cfg = cfg;

	/* Options of our own only; service options (e.g. --rte-gen) are left for
	 * the service to read from argv. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-c") && i + 1 < argc) {
			file = argv[++i];
		} else if (!strcmp(argv[i], "-n")) {
			check_only = 1;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(argv[0], stdout);
			printf("settings:\n");
			print_items(common_items, N_COMMON);
			print_items(items, n);
			exit(0);
		}
	}
	if (!file && access("config.cfg", R_OK) == 0)
		file = "config.cfg";
	svc->config_file = file;

	if (v2g_config_load(file, common_items, N_COMMON, &svc->common, err, sizeof(err)) ||
	    v2g_config_load(file, items, n, cfg, err, sizeof(err))) {
		fprintf(stderr, "v2g-%s: config: %s\n", name, err);
		exit(2);
	}
	snprintf(def, sizeof(def), "%d", default_port);
	struct v2g_cfg_item port_item = {
		port_path, V2G_CFG_INT, offsetof(struct v2g_service, http_port), 1, 65535, def,
		NULL,      "HTTP port"
	};
	if (v2g_config_load(file, &port_item, 1, svc, err, sizeof(err))) {
		fprintf(stderr, "v2g-%s: config: %s\n", name, err);
		exit(2);
	}
	if (v2g_log_level_parse(svc->common.log_level, &level)) {
		fprintf(stderr,
		        "v2g-%s: config: logging.level: must be debug, info, warn or error, got "
		        "\"%s\"\n",
		        name, svc->common.log_level);
		exit(2);
	}
	if (strcmp(svc->common.log_format, "text") && strcmp(svc->common.log_format, "json")) {
		fprintf(stderr,
		        "v2g-%s: config: logging.format: must be text or json, got \"%s\"\n", name,
		        svc->common.log_format);
		exit(2);
	}
	if (cfg_check && cfg_check(cfg, file, err, sizeof(err))) {
		fprintf(stderr, "v2g-%s: config: %s\n", name, err);
		exit(2);
	}
	if (check_only) {
		printf("v2g-%s: configuration OK (%s)\n", name,
		       file ? file : "defaults and environment");
		exit(0);
	}
	v2g_log_init(name, level, !strcmp(svc->common.log_format, "json"));
	v2g_bus_set_sender(name);

	/* Every thread created from here on inherits the blocked mask, so only
	 * v2g_service_wait() sees SIGTERM/SIGINT. */
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
	signal(SIGPIPE, SIG_IGN);

	svc->health = v2g_health_new(name, 1000);
	if (!svc->health || (!probe_cancel && v2g_bus_cancel_new(&probe_cancel) != V2G_OK)) {
		v2g_error("SVC-NOMEM", "cannot allocate the health registry");
		exit(1);
	}
	v2g_gauge_set(v2g_gauge("process_start_time_seconds", "Start time of the process", NULL),
	              NULL, (double)v2g_now_ms() / 1000.0);
	v2g_info("SVC-START", "v2g-%s starting (config %s)", name,
	         file ? file : "defaults and environment");
}

void v2g_service_start_http(struct v2g_service *svc)
{
	int rc;
	v2g_health_start(svc->health);
	rc = v2g_httpd_start(&svc->httpd, svc->common.http_bind, svc->http_port, svc->health,
	                     svc->common.http_threads);
	if (rc) {
		v2g_error("SVC-HTTP", "cannot serve HTTP on %s:%d: %s", svc->common.http_bind,
		          svc->http_port, v2g_strerror(rc));
		exit(1);
	}
	v2g_info("SVC-HTTP", "health and metrics on http://%s:%d", svc->common.http_bind,
	         svc->http_port);
}

void v2g_service_wait(struct v2g_service *svc)
{
	int sig = 0;
	while (running) {
		if (sigwait(&stop_set, &sig) == 0)
			break;
	}
	running = 0;
	/* No probe runs after this: the service may free what they use, and
	 * /health/ready says "stopping" so that traffic goes elsewhere. A bus
	 * ping in progress ends at once rather than at its timeout. */
	v2g_bus_cancel_fire(probe_cancel);
	v2g_health_stop(svc->health);
	v2g_info("SVC-STOP", "v2g-%s stopping (%s)", svc->name,
	         sig == SIGINT ? "SIGINT" : "SIGTERM");
}

void v2g_service_fini(struct v2g_service *svc)
{
	v2g_httpd_stop(svc->httpd);
	svc->httpd = NULL;
	v2g_bus_cancel_fire(probe_cancel);
	v2g_health_free(svc->health);
	svc->health = NULL;
	v2g_bus_cancel_free(probe_cancel); /* no probe runs any more */
	probe_cancel = NULL;
	v2g_config_free(svc->items, svc->n_items, svc->cfg);
	/* common_items is a table over svc->common */
	v2g_config_free(common_items, N_COMMON, &svc->common);
	v2g_info("SVC-EXIT", "v2g-%s stopped", svc->name);
}

int v2g_health_bus_peer(void *arg, char *detail, size_t len)
{
	struct v2g_bus_client *c = arg;
	int ready = 0;
	int rc = v2g_bus_ping_cancellable(c, 500, &ready, probe_cancel);
	if (rc) {
		snprintf(detail, len, "no answer: %s", v2g_strerror(rc));
		return -1;
	}
	snprintf(detail, len, "reachable%s", ready ? "" : " (peer not ready)");
	return 0;
}

int v2g_health_bus_connected(void *arg, char *detail, size_t len)
{
	int n = v2g_bus_peers_count(arg);
	snprintf(detail, len, "%d peer%s connected", n, n == 1 ? "" : "s");
	return n > 0 ? 0 : -1;
}
