/* v2g-dispatch-solve: "what would you do with this fleet?" Reads an instance
 * (a signal, vehicles, optional site limits and dispatch config) as JSON
 * from a file or stdin, runs the dispatch library on it and prints the
 * decision as JSON. Exit status: 0 decided (even partly), 2 bad usage or
 * input (one line on stderr naming the field), 1 out of memory or I/O. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "instance.h"
#include "v2g/err.h"

#define PROG      "v2g-dispatch-solve"
#define INPUT_MAX ((size_t)1 << 30) /* 1 GiB of JSON: millions of vehicles */

static const char usage[] =
        "usage: " PROG " [FILE | -]\n"
        "       " PROG " --help\n"
        "\n"
        "Reads a dispatch instance as JSON from FILE (or stdin), runs the dispatch\n"
        "library on it and prints the decision as JSON on stdout.\n"
        "\n"
        "Instance:\n"
        "  {\"signal\": {\"type\": \"FCR\", \"power_kw\": 50, \"duration_min\": 15},\n"
        "   \"vehicles\": [{\"vehicle_id\": \"v1\", \"soc\": 72.5, \"max_power_kw\": 11,\n"
        "                 \"available\": true, \"priority\": 5, \"tariff\": 0.18,\n"
        "                 \"segment\": \"commuter\", \"site\": \"paris-01\", \"battery_kwh\": 60,\n"
        "                 \"avail_prob\": 0.9, \"degradation\": 0.1, \"window_h\": 3,\n"
        "                 \"participation\": 2}],\n"
        "   \"sites\": [{\"site\": \"paris-01\", \"limit_kw\": 40, \"parent\": \"paris\"},\n"
        "             {\"site\": \"paris\", \"limit_kw\": 100}],\n"
        "   \"config\": {\"strategy\": \"smart\", \"lp_fallback\": false, \"max_rounds\": 5,\n"
        "              \"min_soc\": 20, \"soc_low\": 20, \"soc_high\": 100,\n"
        "              \"weights\": {\"soc\": 0.3, \"availability\": 0.2},\n"
        "              \"segments\": {\"commuter\": {\"dispatcher_type\": \"lp\",\n"
        "                                        \"fallback\": true,\n"
        "                                        \"weights\": {\"soc\": 1}}}}}\n"
        "\n"
        "signal    type: FCR|PRIMARY_RESERVE, AFRR|SECONDARY_RESERVE, LOAD_SHEDDING\n"
        "          (or 0, 1, 2); power_kw > 0 (required); duration_min > 0 (15).\n"
        "vehicles  the MQTT state format plus vehicle_id: soc 0..100, max_power_kw\n"
        "          0..1000 and available are required; priority (0), tariff (0),\n"
        "          segment (\"default\"), site (none), battery_kwh (0 = unknown) and\n"
        "          other state fields are optional; forecasts avail_prob 0..1 (1),\n"
        "          degradation 0..1 (0), window_h hours (0 = unknown), participation\n"
        "          (recent dispatches, 0). Eligible: available, max_power_kw > 0,\n"
        "          soc_low <= soc <= soc_high.\n"
        "sites     optional: limit_kw >= 0 (absent: unlimited) and parent (a listed\n"
        "          site): a site's limit holds for its vehicles and those of every\n"
        "          site under it. Vehicles' sites not listed are unlimited.\n"
        "config    optional: strategy smart (default), equal, lp or priority;\n"
        "          lp_fallback: LP infeasible or failed -> smart (false); max_rounds\n"
        "          1..1000 (5); soc_low/soc_high: the eligibility band (the service's\n"
        "          per signal type: 20/100, 20/100, 10/100); min_soc: the floor of the\n"
        "          energy limit of each vehicle's capacity (soc_low); weights 0..1000\n"
        "          of soc, time, priority, price, availability, wear, participation\n"
        "          (listed ones replace the signal type's defaults); segments: per\n"
        "          segment dispatcher_type heuristic|lp, fallback and weights (unlisted\n"
        "          weights 0), as dispatch.segments; other segments use config.\n"
        "\n"
        "Decision:\n"
        "  {\"dispatcher\": \"smart\", \"status\": \"complete\", \"request_kw\": 50,\n"
        "   \"allocated_kw\": 50, \"shortfall_kw\": 0, \"objective\": 31.2, \"solve_ms\": 0.01,\n"
        "   \"vehicles\": [{\"vehicle_id\": \"v1\", \"power_kw\": 9.9, \"score\": 0.62,\n"
        "                 \"capacity_kw\": 9.9, \"eligible\": true},\n"
        "                {\"vehicle_id\": \"v2\", \"power_kw\": 0, \"eligible\": false,\n"
        "                 \"reason\": \"soc_below_band\"}]}\n"
        "dispatcher: the strategy that decided (smart after an LP fallback); status:\n"
        "complete, partial (shortfall_kw > 0) or infeasible (nothing allocated);\n"
        "objective: sum of score x power_kw; lp_status (optimal, infeasible, failed)\n"
        "when an LP ran; solve_ms: capacity, scoring, selection and allocation only.\n"
        "Every vehicle of the input appears, in input order; reason: unavailable,\n"
        "no_power, soc_below_band or soc_above_band.\n"
        "\n"
        "Exit status: 0 decided, 2 bad usage or input (one line on stderr naming the\n"
        "field), 1 out of memory or a read error.\n";

/* Reads all of f into *buf (malloc'd). 0, V2G_ERR_TOOBIG, V2G_ERR_NOMEM or
 * V2G_ERR_IO. */
static int read_all(FILE *f, char **buf, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap);
	if (!b)
		return V2G_ERR_NOMEM;
	for (;;) {
		if (n == cap) {
			if (cap >= INPUT_MAX) {
				free(b);
				return V2G_ERR_TOOBIG;
			}
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return V2G_ERR_NOMEM;
			}
			b = nb;
			cap *= 2;
		}
		size_t r = fread(b + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f)) {
				free(b);
				return V2G_ERR_IO;
			}
			break;
		}
	}
	*buf = b;
	*len = n;
	return 0;
}

/* The shortest of %.15g..%.17g that reads back as v (JSON has no NaN). */
static void put_double(FILE *out, double v)
{
	char s[40];
	if (!isfinite(v)) {
		fputs("null", out);
		return;
	}
	if (v == 0)
		v = 0; /* no "-0" */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, v);
		if (strtod(s, NULL) == v)
			break;
	}
	fputs(s, out);
}

/* The same for a float: 0.62f prints as 0.62, not 0.620000005. */
static void put_float(FILE *out, float v)
{
	char s[40];
	if (!isfinite(v)) {
		fputs("null", out);
		return;
	}
	if (v == 0)
		v = 0;
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, (double)v);
		if (strtof(s, NULL) == v)
			break;
	}
	fputs(s, out);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *lp_status_name(int s)
{
	static const char *const names[] = { "optimal", "infeasible", "failed" };
	return s >= 0 && s < 3 ? names[s] : "failed";
}

/* Per vehicle of the input: the candidate it became (or SIZE_MAX) and the
 * power it was given. */
struct result {
	size_t cand;
	double kw;
};

static void print_decision(FILE *out, const struct dsolve_instance *in,
                           const struct disp_cand *cand, const struct result *res,
                           const struct disp_outcome *o, double solve_ms)
{
	double req = in->power_kw, got = o->allocated_kw;
	const char *status = got >= req * (1 - 1e-9) - 1e-9 ? "complete"
	                     : got > 1e-9                   ? "partial"
	                                                    : "infeasible";
	double shortfall = got < req ? req - got : 0;
	if (!strcmp(status, "complete"))
		shortfall = 0;
	fprintf(out, "{\"dispatcher\":\"%s\",\"status\":\"%s\",\"request_kw\":",
	        disp_strategy_name(o->decided_by), status);
	put_double(out, req);
	fputs(",\"allocated_kw\":", out);
	put_double(out, got);
	fputs(",\"shortfall_kw\":", out);
	put_double(out, shortfall);
	fputs(",\"objective\":", out);
	put_double(out, o->objective);
	if (o->lp_status >= 0)
		fprintf(out, ",\"lp_status\":\"%s\"", lp_status_name(o->lp_status));
	fputs(",\"solve_ms\":", out);
	fprintf(out, "%.3f", solve_ms);
	fputs(",\"vehicles\":[", out);
	for (size_t i = 0; i < in->nveh; i++) {
		const struct dsolve_vehicle *v = &in->veh[i];
		fprintf(out, "%s\n{\"vehicle_id\":\"%s\",\"power_kw\":", i ? "," : "", v->id);
		put_double(out, res[i].kw);
		if (v->reason == DSOLVE_ELIGIBLE) {
			const struct disp_cand *c = &cand[res[i].cand];
			fputs(",\"score\":", out);
			put_float(out, c->score);
			fputs(",\"capacity_kw\":", out);
			put_float(out, c->cap_kw);
			fputs(",\"eligible\":true}", out);
		} else {
			fprintf(out, ",\"eligible\":false,\"reason\":\"%s\"}",
			        dsolve_reason_name(v->reason));
		}
	}
	fputs("]}\n", out);
}

/* Runs the library on in and prints the decision. 0 or a v2g error. */
static int solve(const struct dsolve_instance *in, FILE *out)
{
	struct disp_outcome o;
	struct disp_cand *cand;
	struct result *res;
	size_t n = 0;
	int rc;

	memset(&o, 0, sizeof(o));
	cand = malloc((in->nveh ? in->nveh : 1) * sizeof(*cand));
	res = malloc((in->nveh ? in->nveh : 1) * sizeof(*res));
	if (!cand || !res) {
		rc = V2G_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < in->nveh; i++) {
		res[i].cand = SIZE_MAX;
		res[i].kw = 0;
		if (in->veh[i].reason == DSOLVE_ELIGIBLE)
			cand[n++] = in->veh[i].c;
	}
	struct disp_sites sites = dsolve_instance_sites(in);

	double t0 = now_ms();
	disp_capacity(cand, n, in->duration_min, in->min_soc);
	if (in->nsegs)
		rc = disp_dispatch_segmented(cand, n, in->power_kw, in->segs, in->nsegs,
		                             &in->params, &sites, &o);
	else
		rc = disp_dispatch(cand, n, in->power_kw, &in->params, &sites, &o);
	double solve_ms = now_ms() - t0;
	if (rc)
		goto out;

	/* Back to the input's order: candidates were reordered. */
	for (size_t k = 0; k < n; k++) {
		uint32_t i;
		if (disp_strmap_get(&in->ids, cand[k].id, &i))
			res[i].cand = k;
	}
	for (size_t a = 0; a < o.n; a++) {
		uint32_t i;
		if (o.allocs[a].cand < n &&
		    disp_strmap_get(&in->ids, cand[o.allocs[a].cand].id, &i))
			res[i].kw += o.allocs[a].kw;
	}
	print_decision(out, in, cand, res, &o, solve_ms);
	rc = fflush(out) == 0 && !ferror(out) ? 0 : V2G_ERR_IO;
out:
	disp_outcome_free(&o);
	free(res);
	free(cand);
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	struct dsolve_instance in;
	char err[512];
	char *buf = NULL;
	size_t len = 0;
	FILE *f = stdin;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		}
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, PROG ": unknown option %s (try --help)\n", argv[i]);
			return 2;
		}
		if (path) {
			fprintf(stderr, PROG ": one instance at a time (try --help)\n");
			return 2;
		}
		path = argv[i];
	}
	if (path && strcmp(path, "-")) {
		f = fopen(path, "rb");
		if (!f) {
			fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
			return 2;
		}
	}
	rc = read_all(f, &buf, &len);
	if (f != stdin)
		fclose(f);
	if (rc) {
		if (rc == V2G_ERR_TOOBIG)
			fprintf(stderr, PROG ": input: larger than %zu bytes\n", INPUT_MAX);
		else
			fprintf(stderr, PROG ": input: %s\n",
			        rc == V2G_ERR_IO ? strerror(errno) : v2g_strerror(rc));
		return rc == V2G_ERR_TOOBIG ? 2 : 1;
	}
	rc = dsolve_instance_parse(buf, len, &in, err, sizeof(err));
	free(buf);
	if (rc) {
		fprintf(stderr, PROG ": %s\n", err);
		return rc == V2G_ERR_INVAL ? 2 : 1;
	}
	rc = solve(&in, stdout);
	dsolve_instance_fini(&in);
	if (rc) {
		fprintf(stderr, PROG ": %s\n",
		        rc == V2G_ERR_INVAL ? "the dispatch library refused the instance"
		                            : v2g_strerror(rc));
		return rc == V2G_ERR_INVAL ? 2 : 1;
	}
	return 0;
}
