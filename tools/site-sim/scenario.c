/* Scenario file parser of v2g-site-sim; the format is in scenario.h. */
#include "scenario.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"
#include "v2g/json.h"

#define SCN_FILE_MAX (16 * 1024 * 1024)

static const char *const action_names[] = {
	[SCN_DEMAND] = "demand", [SCN_SILENT] = "silent",       [SCN_RETURN] = "return",
	[SCN_FAULT] = "fault",   [SCN_BASE_LOAD] = "base_load",
};

const char *scn_action_name(enum scn_action a)
{
	return (unsigned)a < sizeof(action_names) / sizeof(action_names[0]) ? action_names[a] : "?";
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return V2G_ERR_CONFIG;
}

/* A number at obj[key] within [lo, hi]; def when absent and not required. */
static int get_num(json_t *obj, const char *where, const char *key, double lo, double hi,
                   int required, double def, double *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	double d;

	if (!v) {
		if (required)
			return fail(err, errlen, "%s%s: missing", where, key);
		*out = def;
		return 0;
	}
	if (!json_is_number(v))
		return fail(err, errlen, "%s%s: not a number", where, key);
	d = json_number_value(v);
	if (!(d >= lo && d <= hi))
		return fail(err, errlen, "%s%s: %g is outside [%g, %g]", where, key, d, lo, hi);
	*out = d;
	return 0;
}

/* An id: 1..SCN_ID_MAX-1 characters, no MQTT topic separators or wildcards. */
static int get_id(json_t *obj, const char *where, const char *key, char *out, char *err,
                  size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	const char *s;

	if (!v)
		return fail(err, errlen, "%s%s: missing", where, key);
	if (!json_is_string(v))
		return fail(err, errlen, "%s%s: not a string", where, key);
	s = json_string_value(v);
	if (!*s || strlen(s) >= SCN_ID_MAX || strpbrk(s, "/+#"))
		return fail(err, errlen, "%s%s: '%s' must be 1-%d characters without '/', '+', '#'",
		            where, key, s, SCN_ID_MAX - 1);
	strcpy(out, s);
	return 0;
}

static int parse_station(json_t *o, size_t i, struct scn_station *st, char *err, size_t errlen)
{
	char where[48];
	json_t *v;
	double d;
	int rc;

	snprintf(where, sizeof(where), "stations[%zu].", i);
	if (!json_is_object(o))
		return fail(err, errlen, "stations[%zu]: not an object", i);
	if ((rc = get_id(o, where, "id", st->id, err, errlen)) != 0)
		return rc;
	v = json_object_get(o, "kind");
	if (!json_is_string(v))
		return fail(err, errlen, "%skind: missing or not \"ac\"|\"dc\"", where);
	if (strcmp(json_string_value(v), "ac") == 0)
		st->kind = SCN_AC;
	else if (strcmp(json_string_value(v), "dc") == 0)
		st->kind = SCN_DC;
	else
		return fail(err, errlen, "%skind: '%s' is not \"ac\"|\"dc\"", where,
		            json_string_value(v));
	if ((rc = get_num(o, where, "phases", 1, 3, 0, 3, &d, err, errlen)) != 0)
		return rc;
	if (d != 1 && d != 3)
		return fail(err, errlen, "%sphases: must be 1 or 3", where);
	st->phases = (int)d;
	if (st->kind == SCN_DC && st->phases != 3)
		return fail(err, errlen, "%sphases: a DC station is fed on 3 phases", where);
	st->wiring = 0;
	v = json_object_get(o, "wiring");
	if (v) {
		const char *w = json_is_string(v) ? json_string_value(v) : "";
		if (strlen(w) != 1 || w[0] < 'A' || w[0] > 'C')
			return fail(err, errlen, "%swiring: must be \"A\", \"B\" or \"C\"", where);
		if (st->phases != 1)
			return fail(err, errlen, "%swiring: only for a single-phase station",
			            where);
		st->wiring = w[0] - 'A';
	}
	if ((rc = get_num(o, where, "max_kw", 0.1, 1000, 1, 0, &st->max_kw, err, errlen)) ||
	    (rc = get_num(o, where, "demand_kw", 0, 1000, 0, st->max_kw, &st->demand_kw, err,
	                  errlen)) ||
	    (rc = get_num(o, where, "soc", 0, 100, 0, 50, &st->soc, err, errlen)) ||
	    (rc = get_num(o, where, "battery_kwh", 1, 1000, 0, 60, &st->battery_kwh, err,
	                  errlen)) ||
	    (rc = get_num(o, where, "priority", 0, 100, 0, 5, &d, err, errlen)))
		return rc;
	st->priority = (int)d;
	return 0;
}

static int find_station(const struct scn_scenario *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->nstations; i++)
		if (strcmp(s->stations[i].id, id) == 0)
			return (int)i;
	return -1;
}

static int parse_event(json_t *o, size_t i, const struct scn_scenario *s, struct scn_event *ev,
                       char *err, size_t errlen)
{
	char where[48], id[SCN_ID_MAX];
	json_t *v;
	const char *a;
	int rc;

	snprintf(where, sizeof(where), "timeline[%zu].", i);
	if (!json_is_object(o))
		return fail(err, errlen, "timeline[%zu]: not an object", i);
	if ((rc = get_num(o, where, "at_s", 0, 1e9, 1, 0, &ev->at_s, err, errlen)) != 0)
		return rc;
	v = json_object_get(o, "action");
	if (!json_is_string(v))
		return fail(err, errlen, "%saction: missing or not a string", where);
	a = json_string_value(v);
	for (ev->action = SCN_DEMAND; ev->action <= SCN_BASE_LOAD; ev->action++)
		if (strcmp(a, action_names[ev->action]) == 0)
			break;
	if (ev->action > SCN_BASE_LOAD)
		return fail(err, errlen,
		            "%saction: '%s' is not demand|silent|return|fault|base_load", where, a);
	ev->station = -1;
	ev->value = 0;
	if (ev->action == SCN_BASE_LOAD) {
		if (json_object_get(o, "station"))
			return fail(err, errlen, "%sstation: base_load is a site event", where);
		return get_num(o, where, "base_load_kw", 0, 100000, 1, 0, &ev->value, err, errlen);
	}
	if ((rc = get_id(o, where, "station", id, err, errlen)) != 0)
		return rc;
	if ((ev->station = find_station(s, id)) < 0)
		return fail(err, errlen, "%sstation: no station '%s'", where, id);
	if (ev->action == SCN_DEMAND)
		return get_num(o, where, "demand_kw", 0, 1000, 1, 0, &ev->value, err, errlen);
	return 0;
}

/* Insertion sort keeps events with the same at_s in file order (qsort is not
 * stable); timelines are short. */
static void sort_events(struct scn_event *ev, size_t n)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		struct scn_event t = ev[i];
		for (j = i; j > 0 && ev[j - 1].at_s > t.at_s; j--)
			ev[j] = ev[j - 1];
		ev[j] = t;
	}
}

static int parse_root(json_t *root, struct scn_scenario *s, char *err, size_t errlen)
{
	json_t *arr, *o;
	size_t i, j;
	double d;
	int rc;

	if (!json_is_object(root))
		return fail(err, errlen, "the scenario is not a JSON object");
	if ((rc = get_id(root, "", "site", s->site, err, errlen)) ||
	    (rc = get_num(root, "", "voltage_v", 50, 1000, 0, 230, &s->voltage_v, err, errlen)) ||
	    (rc = get_num(root, "", "frequency_hz", 40, 70, 0, 50, &s->frequency_hz, err,
	                  errlen)) ||
	    (rc = get_num(root, "", "power_factor", 0.1, 1, 0, 0.98, &s->power_factor, err,
	                  errlen)) ||
	    (rc = get_num(root, "", "base_load_kw", 0, 100000, 0, 0, &s->base_load_kw, err,
	                  errlen)) ||
	    (rc = get_num(root, "", "ambient_c", -40, 60, 0, 25, &s->ambient_c, err, errlen)) ||
	    (rc = get_num(root, "", "publish_interval_ms", 10, 3600000, 0, 1000, &d, err, errlen)))
		return rc;
	s->publish_interval_ms = (int)d;
	if ((rc = get_num(root, "", "response_delay_ms", 0, 3600000, 0, 0, &d, err, errlen)))
		return rc;
	s->response_delay_s = d / 1000.0;
	if ((rc = get_num(root, "", "ramp_kw_per_s", 0, 100000, 0, 0, &s->ramp_kw_per_s, err,
	                  errlen)))
		return rc;

	arr = json_object_get(root, "stations");
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return fail(err, errlen, "stations: missing, empty or not an array");
	if (json_array_size(arr) > SCN_MAX_STATION)
		return fail(err, errlen, "stations: more than %d", SCN_MAX_STATION);
	s->stations = calloc(json_array_size(arr), sizeof(*s->stations));
	if (!s->stations)
		return V2G_ERR_NOMEM;
	json_array_foreach(arr, i, o)
	{
		if ((rc = parse_station(o, i, &s->stations[i], err, errlen)) != 0)
			return rc;
		for (j = 0; j < i; j++)
			if (strcmp(s->stations[j].id, s->stations[i].id) == 0)
				return fail(err, errlen, "stations[%zu].id: '%s' appears twice", i,
				            s->stations[i].id);
		s->nstations = i + 1;
	}

	arr = json_object_get(root, "timeline");
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return fail(err, errlen, "timeline: not an array");
	if (json_array_size(arr) > SCN_MAX_EVENTS)
		return fail(err, errlen, "timeline: more than %d events", SCN_MAX_EVENTS);
	if (json_array_size(arr) == 0)
		return 0;
	s->events = calloc(json_array_size(arr), sizeof(*s->events));
	if (!s->events)
		return V2G_ERR_NOMEM;
	json_array_foreach(arr, i, o)
	{
		if ((rc = parse_event(o, i, s, &s->events[i], err, errlen)) != 0)
			return rc;
		s->nevents = i + 1;
	}
	sort_events(s->events, s->nevents);
	return 0;
}

int scn_scenario_parse(const char *text, size_t len, struct scn_scenario *s, char *err,
                       size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(s, 0, sizeof(*s));
	root = v2g_json_loadb(text, len, 0, &jerr);
	if (!root)
		return fail(err, errlen, "line %d: %s", jerr.line, jerr.text);
	rc = parse_root(root, s, err, errlen);
	json_decref(root);
	if (rc != 0) {
		if (rc == V2G_ERR_NOMEM)
			snprintf(err, errlen, "out of memory");
		scn_scenario_fini(s);
	}
	return rc;
}

int scn_scenario_load(const char *path, struct scn_scenario *s, char *err, size_t errlen)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	f = fopen(path, "rb");
	if (!f)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	do {
		if (len == cap) {
			char *nb;
			if (cap >= SCN_FILE_MAX) {
				rc = fail(err, errlen, "%s: larger than %d bytes", path,
				          SCN_FILE_MAX);
				goto out_buf;
			}
			cap = cap ? cap * 2 : 8192;
			if (!(nb = realloc(buf, cap))) {
				rc = V2G_ERR_NOMEM;
				snprintf(err, errlen, "out of memory");
				goto out_buf;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		rc = fail(err, errlen, "%s: read error", path);
		goto out_buf;
	}
	rc = scn_scenario_parse(buf, len, s, err, errlen);
out_buf:
	free(buf);
	fclose(f);
	return rc;
}

void scn_scenario_fini(struct scn_scenario *s)
{
	free(s->stations);
	free(s->events);
	s->stations = NULL;
	s->events = NULL;
	s->nstations = s->nevents = 0;
}
