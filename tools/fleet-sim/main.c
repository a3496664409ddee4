/* v2g-fleet-sim: plays N vehicles over MQTT (DESIGN.md, MQTT contract).
 * Start-up only: options, logging, signals; the engine is fleet.c, the
 * vehicle model vehicle.c. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "selftest.h"
#include "v2g/log.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *out)
{
	fputs("usage: v2g-fleet-sim [options]\n"
	      "  --broker URI            MQTT broker (tcp://127.0.0.1:1883)\n"
	      "  --username U, --password P   broker credentials (anonymous)\n"
	      "  --vehicles N            vehicles to play (100)\n"
	      "  --connections N         MQTT connections shared by the vehicles (4)\n"
	      "  --prefix P              vehicle ids are P-00000, P-00001, ... (sim)\n"
	      "  --sites N               sites site-00 .. (10)\n"
	      "  --state-interval S      seconds between two states of one vehicle, spread\n"
	      "                          evenly over the fleet; 0 = none (10)\n"
	      "  --initial-burst[=0|1]   every vehicle's state once on connect (1)\n"
	      "  --no-initial-burst      same as --initial-burst=0\n"
	      "  --ack-latency-ms MS     delay before an ack (50)\n"
	      "  --ack-jitter-ms MS      plus uniform 0..MS (50)\n"
	      "  --reject-rate R         share of commands refused (0)\n"
	      "  --silent-rate R         share of commands left unanswered (0)\n"
	      "  --reject-ids a,b        these vehicles always refuse\n"
	      "  --silent-ids a,b        these vehicles never answer\n"
	      "  --availability R        long-run share of time plugged in (0.9)\n"
	      "  --seed N                seed of the fleet's attributes and behaviour (1)\n"
	      "  --duration S            exit after S seconds; 0 = run until signalled (0)\n"
	      "  --window N              unconfirmed QoS 1 publishes per connection (2000)\n"
	      "  --stats-interval S      period of the SIM-STATS line (10)\n"
	      "  --log-level L           debug|info|warn|error (info)\n"
	      "  --log-json              JSON log lines\n"
	      "  --quiet                 warnings and errors only\n"
	      "  --self-test             check the vehicle model and exit\n",
	      out);
}

static int parse_double(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "v2g-fleet-sim: --%s: '%s' is not a number in [%g, %g]\n", name, s,
		        lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_int(const char *name, const char *s, long lo, long hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "v2g-fleet-sim: --%s: '%s' is not an integer in [%ld, %ld]\n", name,
		        s, lo, hi);
		return -1;
	}
	*out = (int)v;
	return 0;
}

enum {
	O_BROKER = 256,
	O_USER,
	O_PASS,
	O_VEHICLES,
	O_CONNS,
	O_PREFIX,
	O_SITES,
	O_INTERVAL,
	O_BURST,
	O_NO_BURST,
	O_LAT,
	O_JIT,
	O_REJ_RATE,
	O_SIL_RATE,
	O_REJ_IDS,
	O_SIL_IDS,
	O_AVAIL,
	O_SEED,
	O_DURATION,
	O_WINDOW,
	O_STATS,
	O_LOG_LEVEL,
	O_LOG_JSON,
	O_QUIET,
	O_SELFTEST,
	O_HELP,
};

static const struct option long_opts[] = {
	{ "broker", required_argument, NULL, O_BROKER },
	{ "username", required_argument, NULL, O_USER },
	{ "password", required_argument, NULL, O_PASS },
	{ "vehicles", required_argument, NULL, O_VEHICLES },
	{ "connections", required_argument, NULL, O_CONNS },
	{ "prefix", required_argument, NULL, O_PREFIX },
	{ "sites", required_argument, NULL, O_SITES },
	{ "state-interval", required_argument, NULL, O_INTERVAL },
	{ "initial-burst", optional_argument, NULL, O_BURST },
	{ "no-initial-burst", no_argument, NULL, O_NO_BURST },
	{ "ack-latency-ms", required_argument, NULL, O_LAT },
	{ "ack-jitter-ms", required_argument, NULL, O_JIT },
	{ "reject-rate", required_argument, NULL, O_REJ_RATE },
	{ "silent-rate", required_argument, NULL, O_SIL_RATE },
	{ "reject-ids", required_argument, NULL, O_REJ_IDS },
	{ "silent-ids", required_argument, NULL, O_SIL_IDS },
	{ "availability", required_argument, NULL, O_AVAIL },
	{ "seed", required_argument, NULL, O_SEED },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "window", required_argument, NULL, O_WINDOW },
	{ "stats-interval", required_argument, NULL, O_STATS },
	{ "log-level", required_argument, NULL, O_LOG_LEVEL },
	{ "log-json", no_argument, NULL, O_LOG_JSON },
	{ "quiet", no_argument, NULL, O_QUIET },
	{ "self-test", no_argument, NULL, O_SELFTEST },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Returns 0, or 2 after printing why the options are unusable. */
static int parse_args(int argc, char **argv, struct sim_opts *o, enum v2g_log_level *level,
                      int *json, int *selftest)
{
	int c, rc = 0, quiet = 0, burst;
	double seed;

	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1 && rc == 0) {
		switch (c) {
		case O_BROKER: o->broker = optarg; break;
		case O_USER: o->username = optarg; break;
		case O_PASS: o->password = optarg; break;
		case O_VEHICLES:
			rc = parse_int("vehicles", optarg, 1, 1000000, &o->vehicles);
			break;
		case O_CONNS: rc = parse_int("connections", optarg, 1, 64, &o->connections); break;
		case O_PREFIX:
			o->model.prefix = optarg;
			if (!*optarg || strlen(optarg) > 24 || strpbrk(optarg, "/+#")) {
				fprintf(stderr, "v2g-fleet-sim: --prefix: 1-24 characters, no '/', "
				                "'+' or '#'\n");
				rc = -1;
			}
			break;
		case O_SITES: rc = parse_int("sites", optarg, 1, 10000, &o->model.sites); break;
		case O_INTERVAL:
			rc = parse_double("state-interval", optarg, 0, 86400, &o->state_interval_s);
			break;
		case O_BURST:
			burst = 1;
			rc = optarg ? parse_int("initial-burst", optarg, 0, 1, &burst) : 0;
			o->initial_burst = burst;
			break;
		case O_NO_BURST: o->initial_burst = 0; break;
		case O_LAT:
			rc = parse_int("ack-latency-ms", optarg, 0, 3600000, &o->ack_latency_ms);
			break;
		case O_JIT:
			rc = parse_int("ack-jitter-ms", optarg, 0, 3600000, &o->ack_jitter_ms);
			break;
		case O_REJ_RATE:
			rc = parse_double("reject-rate", optarg, 0, 1, &o->model.reject_rate);
			break;
		case O_SIL_RATE:
			rc = parse_double("silent-rate", optarg, 0, 1, &o->model.silent_rate);
			break;
		case O_REJ_IDS: o->reject_ids = optarg; break;
		case O_SIL_IDS: o->silent_ids = optarg; break;
		case O_AVAIL:
			rc = parse_double("availability", optarg, 0, 1, &o->model.availability);
			break;
		case O_SEED:
			rc = parse_double("seed", optarg, 0, 9007199254740992.0, &seed);
			o->seed = (uint64_t)seed;
			break;
		case O_DURATION:
			rc = parse_double("duration", optarg, 0, 1e9, &o->duration_s);
			break;
		case O_WINDOW: rc = parse_int("window", optarg, 1, 60000, &o->window); break;
		case O_STATS:
			rc = parse_double("stats-interval", optarg, 0.1, 86400,
			                  &o->stats_interval_s);
			break;
		case O_LOG_LEVEL:
			if (v2g_log_level_parse(optarg, level) != 0) {
				fprintf(stderr,
				        "v2g-fleet-sim: --log-level: '%s' is not "
				        "debug|info|warn|error\n",
				        optarg);
				rc = -1;
			}
			break;
		case O_LOG_JSON: *json = 1; break;
		case O_QUIET: quiet = 1; break;
		case O_SELFTEST: *selftest = 1; break;
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (rc != 0)
		return 2;
	if (optind < argc) {
		fprintf(stderr, "v2g-fleet-sim: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (o->model.reject_rate + o->model.silent_rate > 1.0) {
		fprintf(stderr, "v2g-fleet-sim: --reject-rate + --silent-rate must not exceed 1\n");
		return 2;
	}
	if (quiet && *level < V2G_LOG_WARN)
		*level = V2G_LOG_WARN;
	return 0;
}

int main(int argc, char **argv)
{
	struct sim_opts o;
	enum v2g_log_level level = V2G_LOG_INFO;
	int json = 0, selftest = 0, rc;
	struct sigaction sa;

	sim_opts_default(&o);
	if ((rc = parse_args(argc, argv, &o, &level, &json, &selftest)) != 0)
		return rc;
	if (selftest)
		return sim_selftest_run() == 0 ? 0 : 1;
	v2g_log_init("fleet-sim", level, json);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	return sim_fleet_run(&o, &stop_flag) == 0 ? 0 : 1;
}
