#include "route.h"

#include <string.h>

/* A pattern is a path whose "{name}" segments match any one segment. */
static const struct {
	enum api_route route;
	const char *method;
	const char *pattern;
	enum api_tier tier;
	const char *op; /* site-dlm op for API_ROUTE_DLM */
	const char *label;
} routes[] = {
	{ API_ROUTE_SIGNAL_SUBMIT, "POST", "/api/signals", API_TIER_STANDARD, NULL,
	  "POST /api/signals" },
	{ API_ROUTE_DISPATCH_GET, "GET", "/api/dispatches/{dispatch_id}", API_TIER_STANDARD, NULL,
	  "GET /api/dispatches/{dispatch_id}" },
	{ API_ROUTE_LOGS_GET, "GET", "/api/dispatch/logs", API_TIER_STANDARD, NULL,
	  "GET /api/dispatch/logs" },
	{ API_ROUTE_DLM, "GET", "/api/dlm/status", API_TIER_RELAXED, "status",
	  "GET /api/dlm/status" },
	{ API_ROUTE_CIRCUIT_BREAKERS, "GET", "/api/circuit-breakers", API_TIER_RELAXED,
	  "circuit_breakers", "GET /api/circuit-breakers" },
	{ API_ROUTE_DLM, "GET", "/api/watchdogs", API_TIER_RELAXED, "watchdogs",
	  "GET /api/watchdogs" },
	{ API_ROUTE_DLM, "GET", "/api/fail-safe/status", API_TIER_RELAXED, "failsafe_status",
	  "GET /api/fail-safe/status" },
	{ API_ROUTE_DLM, "GET", "/api/load-shedding/status", API_TIER_RELAXED, "shedding_status",
	  "GET /api/load-shedding/status" },
	{ API_ROUTE_DLM, "GET", "/api/site-constraints/status", API_TIER_RELAXED,
	  "constraints_status", "GET /api/site-constraints/status" },
	{ API_ROUTE_DLM, "GET", "/api/capabilities/{station}", API_TIER_RELAXED, "capabilities",
	  "GET /api/capabilities/{station}" },
	{ API_ROUTE_DLM, "POST", "/api/stations/{id}/phase-currents", API_TIER_STANDARD,
	  "phase_currents", "POST /api/stations/{id}/phase-currents" },
	{ API_ROUTE_DLM, "POST", "/api/stations/{id}/dc-power", API_TIER_STANDARD, "dc_power",
	  "POST /api/stations/{id}/dc-power" },
	{ API_ROUTE_DLM, "POST", "/api/stations/{id}/capabilities/discover", API_TIER_STANDARD,
	  "discover", "POST /api/stations/{id}/capabilities/discover" },
	{ API_ROUTE_DLM, "POST", "/api/load-shedding/configure", API_TIER_STRICT,
	  "shedding_configure", "POST /api/load-shedding/configure" },
	{ API_ROUTE_DLM, "POST", "/api/site-constraints/service", API_TIER_STRICT,
	  "service_configure", "POST /api/site-constraints/service" },
	{ API_ROUTE_DLM, "POST", "/api/site-constraints/feeder", API_TIER_STRICT,
	  "feeder_configure", "POST /api/site-constraints/feeder" },
	{ API_ROUTE_DLM, "POST", "/api/site-constraints/transformer", API_TIER_STRICT,
	  "transformer_configure", "POST /api/site-constraints/transformer" },
	{ API_ROUTE_AUDIT_LOGS, "GET", "/api/audit/logs", API_TIER_STANDARD, NULL,
	  "GET /api/audit/logs" },
	{ API_ROUTE_AUDIT_STATS, "GET", "/api/audit/stats", API_TIER_STANDARD, NULL,
	  "GET /api/audit/stats" },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Compares path with pattern segment by segment. On a match returns 1 and,
 * if the pattern has a {param}, points *pname at its name inside the
 * pattern and *seg at the path's segment (neither NUL-terminated). */
static int match_pattern(const char *pattern, const char *path, const char **pname,
                         size_t *pname_len, const char **seg, size_t *seg_len)
{
	const char *p = pattern, *q = path;

	*pname = NULL;
	*seg = NULL;
	*pname_len = *seg_len = 0;
	for (;;) {
		/* both at the start of a segment (just after a '/', or at 0) */
		size_t pl = strcspn(p, "/"), ql = strcspn(q, "/");
		if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
			*pname = p + 1;
			*pname_len = pl - 2;
			*seg = q;
			*seg_len = ql;
		} else if (pl != ql || strncmp(p, q, pl) != 0) {
			return 0;
		}
		p += pl;
		q += ql;
		if (*p == '\0' || *q == '\0')
			return *p == '\0' && *q == '\0';
		p++; /* both are '/' */
		q++;
	}
}

/* The parameter names, as static strings (the pattern's "{id}" is not
 * NUL-terminated where we need it). */
static const char *param_name(const char *name, size_t len)
{
	static const char *const names[] = { "dispatch_id", "station", "id" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && !strncmp(names[i], name, len))
			return names[i];
	return "param";
}

void api_route_match(const char *method, const char *path, struct api_match *m)
{
	memset(m, 0, sizeof(*m));
	m->route = API_ROUTE_NONE;
	m->status = 404;
	m->tier = API_TIER_STANDARD;
	m->label = "other";
	if (!method || !path)
		return;
	for (size_t i = 0; i < NROUTES; i++) {
		const char *pname, *seg;
		size_t pname_len, seg_len;

		if (!match_pattern(routes[i].pattern, path, &pname, &pname_len, &seg, &seg_len))
			continue;
		m->route = routes[i].route;
		m->allow = routes[i].method;
		if (strcmp(method, routes[i].method) != 0) {
			/* Another route may share the path with this method. */
			m->status = 405;
			continue;
		}
		m->status = 0;
		m->tier = routes[i].tier;
		m->label = routes[i].label;
		m->op = routes[i].op;
		if (pname) {
			m->param_name = param_name(pname, pname_len);
			m->param = seg;
			m->param_len = seg_len;
		}
		return;
	}
	if (m->status == 405) /* the path's route: no op, tier or param for a 405 */
		return;
	m->route = API_ROUTE_NONE;
}

const char *api_tier_name(enum api_tier t)
{
	switch (t) {
	case API_TIER_STRICT: return "strict";
	case API_TIER_RELAXED: return "relaxed";
	default: return "standard";
	}
}

int api_route_label_known(const char *label)
{
	for (size_t i = 0; label && i < NROUTES; i++)
		if (!strcmp(routes[i].label, label))
			return 1;
	return 0;
}

const char *api_route_label_at(size_t i)
{
	return i < NROUTES ? routes[i].label : NULL;
}
