/* The REST routes of the api-gateway: method + path -> route, with each
 * route's rate-limit tier, metrics label and (for the DLM routes) the
 * site-dlm operation it is relayed as. Pure: no I/O, no state.
 *
 * Tiers (the DLM guide's rate limiting, mapped onto our routes):
 *   relaxed   GET status routes: /api/{dlm,fail-safe,load-shedding,
 *             site-constraints}/status, /api/circuit-breakers,
 *             /api/watchdogs, /api/capabilities/{station}
 *   strict    run-time configuration: POST /api/load-shedding/configure,
 *             POST /api/site-constraints/{service,feeder,transformer}
 *             (failed authentications have a strict limiter of their own:
 *             see limits.h)
 *   standard  every other /api path, unknown ones included */
#ifndef API_ROUTE_H
#define API_ROUTE_H

#include <stddef.h>

enum api_route {
	API_ROUTE_NONE,             /* no such path: 404 */
	API_ROUTE_SIGNAL_SUBMIT,    /* POST /api/signals */
	API_ROUTE_DISPATCH_GET,     /* GET /api/dispatches/{dispatch_id} */
	API_ROUTE_LOGS_GET,         /* GET /api/dispatch/logs */
	API_ROUTE_DLM,              /* relayed to site-dlm as op (see api_match.op) */
	API_ROUTE_CIRCUIT_BREAKERS, /* GET /api/circuit-breakers: site-dlm's + ours */
	API_ROUTE_AUDIT_LOGS,       /* GET /api/audit/logs (store) */
	API_ROUTE_AUDIT_STATS,      /* GET /api/audit/stats (store) */
};

enum api_tier {
	API_TIER_STANDARD = 0,
	API_TIER_RELAXED,
	API_TIER_STRICT,
};

struct api_match {
	enum api_route route;   /* the path's route, also when the method is wrong */
	int status;             /* 0 = matched; 404 no such path; 405 wrong method */
	enum api_tier tier;     /* the route's tier; standard for 404 and 405 */
	const char *label;      /* metrics label: "POST /api/signals", or "other" */
	const char *allow;      /* the path's method, for 405's Allow header */
	const char *op;         /* site-dlm operation ("status", ...), else NULL */
	const char *param_name; /* "dispatch_id", "station", "id"; NULL if none */
	const char *param;      /* the {param} segment, points into path; else NULL */
	size_t param_len;
};

/* Matches a request. path is the decoded path without the query string;
 * both arguments are borrowed and m->param points into path. Paths match
 * segment by segment; a {param} segment matches any one segment, the empty
 * one included (the handler answers 400). A path with a segment more or
 * less than its route ("/api/signals/x", "/api/dispatches") is a 404. */
void api_route_match(const char *method, const char *path, struct api_match *m);

/* "strict", "standard", "relaxed" (static). */
const char *api_tier_name(enum api_tier t);

/* The route labels (the metrics label and the name a per-endpoint rate
 * limit uses, e.g. "GET /api/capabilities/{station}"): 1 when label names
 * a route, else 0. */
int api_route_label_known(const char *label);

/* The i-th route's label, NULL past the end (for error messages). */
const char *api_route_label_at(size_t i);

#endif
