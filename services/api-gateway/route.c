#include "route.h"

#include <string.h>

static const struct {
	enum api_route route;
	const char *method;
	const char *prefix; /* whole path, or the part before {param} */
	int has_param;
	const char *label;
} routes[] = {
	{ API_ROUTE_SIGNAL_SUBMIT, "POST", "/api/signals", 0, "POST /api/signals" },
	{ API_ROUTE_DISPATCH_GET, "GET", "/api/dispatches/", 1,
	  "GET /api/dispatches/{dispatch_id}" },
	{ API_ROUTE_LOGS_GET, "GET", "/api/dispatch/logs", 0, "GET /api/dispatch/logs" },
};

void api_route_match(const char *method, const char *path, struct api_match *m)
{
	memset(m, 0, sizeof(*m));
	m->route = API_ROUTE_NONE;
	m->status = 404;
	m->label = "other";
	if (!method || !path)
		return;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		size_t plen = strlen(routes[i].prefix);
		if (strncmp(path, routes[i].prefix, plen) != 0)
			continue;
		if (routes[i].has_param) {
			/* One segment, possibly empty (the handler answers 400). */
			if (strchr(path + plen, '/'))
				continue;
			m->param = path + plen;
			m->param_len = strlen(path + plen);
		} else if (path[plen] != '\0') {
			continue;
		}
		m->route = routes[i].route;
		m->allow = routes[i].method;
		if (strcmp(method, routes[i].method) != 0) {
			m->status = 405;
			m->param = NULL;
			m->param_len = 0;
			return;
		}
		m->status = 0;
		m->label = routes[i].label;
		return;
	}
}
