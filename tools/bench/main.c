/* v2g-bench-slice: how much the dispatch slice adds to bare MQTT.
 * 1. bare paho: n QoS 1 commands from one paho client to another through
 *    the broker (bare.c);
 * 2. slice: POST /api/signals -> the last vehicle/{id}/command of that
 *    dispatch on the broker (slice.c).
 * Prints a table with median and min of each and the ratio slice/bare. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bare.h"
#include "slice.h"

struct opts {
	const char *mqtt_host;
	int mqtt_port;
	int vehicles;
	int repeat;
	double timeout_s;
	int only_bare, only_slice;
	struct bench_slice_opts s;
};

static void usage(FILE *out)
{
	fputs("usage: v2g-bench-slice [options]\n"
	      "  --api URL            API base URL ($V2G_API_URL)\n"
	      "  --token T            API Bearer token ($V2G_API_TOKEN)\n"
	      "  --mqtt-host H        broker host ($V2G_MQTT_HOST, 127.0.0.1)\n"
	      "  --mqtt-port P        broker port ($V2G_MQTT_PORT, 1883)\n"
	      "  --vehicles N         fleet size = bare burst size (10000)\n"
	      "  --repeat K           runs of each measurement (5)\n"
	      "  --power-kw P         signal power (vehicles * 30: more than the fleet can give)\n"
	      "  --expect N           vehicles expected in a dispatch's first round (vehicles)\n"
	      "  --ack-timeout S      the engine's ack timeout, for the pause between dispatches "
	      "(5)\n"
	      "  --duration-min M     signal duration (15)\n"
	      "  --signal-type T      FCR | AFRR | LOAD_SHEDDING (FCR)\n"
	      "  --first-timeout S    the first command must arrive within S seconds (10)\n"
	      "  --idle S             a dispatch is over after S s without a new vehicle (2)\n"
	      "  --timeout S          limit of one bare run (60)\n"
	      "  --only bare|slice    run one measurement\n",
	      out);
}

static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "v2g-bench-slice: --%s: '%s' is not a number in [%g, %g]\n", name,
		        s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "api", required_argument, NULL, 'a' },
		{ "token", required_argument, NULL, 't' },
		{ "mqtt-host", required_argument, NULL, 'H' },
		{ "mqtt-port", required_argument, NULL, 'P' },
		{ "vehicles", required_argument, NULL, 'n' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "power-kw", required_argument, NULL, 'p' },
		{ "expect", required_argument, NULL, 'e' },
		{ "ack-timeout", required_argument, NULL, 'k' },
		{ "duration-min", required_argument, NULL, 'd' },
		{ "signal-type", required_argument, NULL, 's' },
		{ "first-timeout", required_argument, NULL, 'f' },
		{ "idle", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double v, power = 0, expect = 0;
	int c, rc = 0;

	o->mqtt_host = env_or("V2G_MQTT_HOST", "127.0.0.1");
	o->mqtt_port = atoi(env_or("V2G_MQTT_PORT", "1883"));
	o->vehicles = 10000;
	o->repeat = 5;
	o->timeout_s = 60;
	o->s.api = env_or("V2G_API_URL", NULL);
	o->s.token = env_or("V2G_API_TOKEN", NULL);
	o->s.signal_type = "FCR";
	o->s.duration_min = 15;
	o->s.ack_timeout_s = 5;
	o->s.first_timeout_s = 10;
	o->s.idle_s = 2;

	while (rc == 0 && (c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'a': o->s.api = optarg; break;
		case 't': o->s.token = optarg; break;
		case 'H': o->mqtt_host = optarg; break;
		case 'P':
			rc = parse_num("mqtt-port", optarg, 1, 65535, &v);
			o->mqtt_port = (int)v;
			break;
		case 'n':
			rc = parse_num("vehicles", optarg, 1, 1000000, &v);
			o->vehicles = (int)v;
			break;
		case 'r':
			rc = parse_num("repeat", optarg, 1, 1000, &v);
			o->repeat = (int)v;
			break;
		case 'p': rc = parse_num("power-kw", optarg, 0.001, 1e9, &power); break;
		case 'e': rc = parse_num("expect", optarg, 1, 1000000, &expect); break;
		case 'k':
			rc = parse_num("ack-timeout", optarg, 0, 3600, &o->s.ack_timeout_s);
			break;
		case 'd':
			rc = parse_num("duration-min", optarg, 1, 1440, &v);
			o->s.duration_min = (int)v;
			break;
		case 's': o->s.signal_type = optarg; break;
		case 'f':
			rc = parse_num("first-timeout", optarg, 0.1, 3600, &o->s.first_timeout_s);
			break;
		case 'i': rc = parse_num("idle", optarg, 0.1, 3600, &o->s.idle_s); break;
		case 'T': rc = parse_num("timeout", optarg, 1, 3600, &o->timeout_s); break;
		case 'o':
			o->only_bare = strcmp(optarg, "bare") == 0;
			o->only_slice = strcmp(optarg, "slice") == 0;
			if (!o->only_bare && !o->only_slice) {
				fprintf(stderr, "v2g-bench-slice: --only: 'bare' or 'slice'\n");
				rc = -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (rc != 0)
		return -1;
	if (optind < argc) {
		fprintf(stderr, "v2g-bench-slice: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->mqtt_port < 1 || o->mqtt_port > 65535) {
		fprintf(stderr, "v2g-bench-slice: bad MQTT port (V2G_MQTT_PORT?)\n");
		return -1;
	}
	if (!o->only_bare && (!o->s.api || !o->s.token)) {
		fprintf(stderr, "v2g-bench-slice: the slice measurement needs --api and --token "
		                "(or V2G_API_URL and V2G_API_TOKEN); use --only bare for the "
		                "broker alone\n");
		return -1;
	}
	o->s.power_kw = power > 0 ? power : o->vehicles * 30.0;
	o->s.expect = expect > 0 ? (int)expect : o->vehicles;
	o->s.repeat = o->repeat;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v in place; returns the median. */
static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void row(const char *name, int n, double *ms, int runs, const char *commands)
{
	double med = median(ms, runs);
	printf("%-24s %-7d %10.1f %9.1f   %s\n", name, n, med, ms[0], commands);
}

int main(int argc, char **argv)
{
	struct opts o;
	char uri[512], cmds[64];
	double *recv = NULL, *conf = NULL, *fleet = NULL, *fconf = NULL, *slice = NULL;
	double bare_med = 0, iso_med = 0, slice_med = 0;
	int *cmdn = NULL, i, rc = 1;

	memset(&o, 0, sizeof(o));
	if (parse_args(argc, argv, &o) != 0)
		return 2;
	snprintf(uri, sizeof(uri), "tcp://%s:%d", o.mqtt_host, o.mqtt_port);
	o.s.mqtt_uri = uri;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	recv = calloc((size_t)o.repeat, sizeof(double));
	conf = calloc((size_t)o.repeat, sizeof(double));
	fleet = calloc((size_t)o.repeat, sizeof(double));
	fconf = calloc((size_t)o.repeat, sizeof(double));
	slice = calloc((size_t)o.repeat, sizeof(double));
	cmdn = calloc((size_t)o.repeat, sizeof(int));
	o.s.repeat = 1; /* one dispatch per interleaved run */
	if (!recv || !conf || !fleet || !fconf || !slice || !cmdn) {
		fprintf(stderr, "v2g-bench-slice: out of memory\n");
		goto out;
	}

	/* Interleaved, so that the machine's drifts touch every measurement
	 * alike: bare to nobody, bare to the fleet, then one dispatch. */
	for (i = 0; i < o.repeat; i++) {
		if (!o.only_slice) {
			fprintf(stderr, "run %d/%d: bare paho, %d QoS 1 commands on %s\n", i + 1,
			        o.repeat, o.vehicles, uri);
			if (bench_bare_run(uri, "bench/", o.vehicles, 1, o.timeout_s, &recv[i],
			                   &conf[i]) ||
			    bench_bare_run(uri, "vehicle/", o.vehicles, 1, o.timeout_s, &fleet[i],
			                   &fconf[i]))
				goto out;
			sleep(1 + (unsigned)o.s.ack_timeout_s); /* the fleet's acks drain */
		}
		if (!o.only_bare) {
			if (bench_slice_run(&o.s, &slice[i], &cmdn[i]) != 0)
				goto out;
			sleep(1 +
			      (unsigned)o.s
			              .ack_timeout_s); /* the dispatch ends before the next run */
		}
	}

	printf("%-24s %-7s %10s %9s   %s\n", "benchmark", "n", "median_ms", "min_ms", "commands");
	if (!o.only_slice) {
		snprintf(cmds, sizeof(cmds), "%d", o.vehicles);
		iso_med = median(recv, o.repeat);
		row("bare_paho_qos1", o.vehicles, recv, o.repeat, cmds);
		row("bare_paho_qos1_puback", o.vehicles, conf, o.repeat, cmds);
		bare_med = median(fleet, o.repeat);
		row("bare_paho_to_fleet", o.vehicles, fleet, o.repeat, cmds);
	}
	if (!o.only_bare) {
		int lo = cmdn[0], hi = cmdn[0];
		for (i = 0; i < o.repeat; i++) {
			lo = cmdn[i] < lo ? cmdn[i] : lo;
			hi = cmdn[i] > hi ? cmdn[i] : hi;
		}
		if (lo == hi)
			snprintf(cmds, sizeof(cmds), "%d", lo);
		else
			snprintf(cmds, sizeof(cmds), "%d..%d", lo, hi);
		slice_med = median(slice, o.repeat);
		row("slice_post_to_last", o.vehicles, slice, o.repeat, cmds);
	}
	if (!o.only_bare && !o.only_slice && bare_med > 0) {
		printf("ratio slice/bare_paho_to_fleet: %.2f (target <= 1.5; the same commands to "
		       "the same acking fleet)\n",
		       slice_med / bare_med);
		printf("ratio slice/bare_paho_qos1:     %.2f (a broker with nothing else to do)\n",
		       slice_med / iso_med);
	}
	rc = 0;
out:
	free(recv);
	free(conf);
	free(fleet);
	free(fconf);
	free(slice);
	free(cmdn);
	curl_global_cleanup();
	return rc;
}
