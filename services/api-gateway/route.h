/* The REST routes of the api-gateway: method + path -> route. Pure. */
#ifndef API_ROUTE_H
#define API_ROUTE_H

#include <stddef.h>

enum api_route {
	API_ROUTE_NONE,          /* no such path: 404 */
	API_ROUTE_SIGNAL_SUBMIT, /* POST /api/signals */
	API_ROUTE_DISPATCH_GET,  /* GET /api/dispatches/{dispatch_id} */
	API_ROUTE_LOGS_GET,      /* GET /api/dispatch/logs */
};

struct api_match {
	enum api_route route; /* the path's route, also when the method is wrong */
	int status;           /* 0 = matched; 404 no such path; 405 wrong method */
	const char *label;    /* metrics label: "POST /api/signals", or "other" */
	const char *allow;    /* the path's method, for 405's Allow header */
	const char *param;    /* {dispatch_id} segment, points into path; else NULL */
	size_t param_len;
};

/* Matches a request. path is the decoded path without the query string;
 * both arguments are borrowed and m->param points into path. A path with a
 * trailing segment the route does not have ("/api/signals/x") is a 404. */
void api_route_match(const char *method, const char *path, struct api_match *m);

#endif
