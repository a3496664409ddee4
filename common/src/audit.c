/* Audit events, their JSON form and the in-memory log; see v2g/audit.h. */
#include "v2g/audit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"
#include "v2g/json.h"
#include "v2g/timeutil.h"

#define DAY_MS 86400000LL

static const char *const cat_names[V2G_AUDIT_NCATEGORIES] = {
	[V2G_AUDIT_CONFIG_CHANGE] = "config_change",
	[V2G_AUDIT_STATION_CONTROL] = "station_control",
	[V2G_AUDIT_AUTH] = "auth",
	[V2G_AUDIT_LOAD_MANAGEMENT] = "load_management",
};

static const struct v2g_audit_actor system_actor = { "system", "site-dlm", "DLM controller" };

const char *v2g_audit_category_name(enum v2g_audit_category c)
{
	return (unsigned)c < V2G_AUDIT_NCATEGORIES ? cat_names[c] : "unknown";
}

int v2g_audit_category_parse(const char *s, enum v2g_audit_category *out)
{
	for (int i = 0; s && i < V2G_AUDIT_NCATEGORIES; i++) {
		if (!strcmp(s, cat_names[i])) {
			*out = (enum v2g_audit_category)i;
			return V2G_OK;
		}
	}
	return V2G_ERR_INVAL;
}

void v2g_audit_event_fini(struct v2g_audit_event *ev)
{
	if (!ev)
		return;
	free(ev->details);
	ev->details = NULL;
}

int v2g_audit_event_copy(struct v2g_audit_event *dst, const struct v2g_audit_event *src)
{
	char *d = NULL;
	if (src->details && !(d = strdup(src->details)))
		return V2G_ERR_NOMEM;
	*dst = *src;
	dst->details = d;
	return V2G_OK;
}

static int set_str(char *dst, size_t cap, const char *src)
{
	if (!src)
		src = "";
	size_t n = strlen(src);
	if (n >= cap)
		return V2G_ERR_TOOBIG;
	memcpy(dst, src, n + 1);
	return V2G_OK;
}

static int set_actor(struct v2g_audit_actor *dst, const struct v2g_audit_actor *src)
{
	if (!src->type[0] || !memchr(src->type, 0, sizeof(src->type)) ||
	    !memchr(src->id, 0, sizeof(src->id)) || !memchr(src->name, 0, sizeof(src->name)))
		return V2G_ERR_INVAL; /* empty type, or not NUL-terminated */
	*dst = *src;
	return V2G_OK;
}

/* Compact text of a details object (NULL stays NULL). */
static int details_text(json_t *d, char **out)
{
	*out = NULL;
	if (!d)
		return V2G_OK;
	if (!json_is_object(d))
		return V2G_ERR_INVAL;
	char *s = json_dumps(d, JSON_COMPACT);
	if (!s)
		return V2G_ERR_NOMEM;
	if (strlen(s) > V2G_AUDIT_DETAILS_MAX) {
		free(s);
		return V2G_ERR_TOOBIG;
	}
	*out = s;
	return V2G_OK;
}

static int build(struct v2g_audit_event *ev, int64_t ts_ms, enum v2g_audit_category cat,
                 const char *action, const struct v2g_audit_actor *actor, const char *target,
                 json_t *details, int success)
{
	int rc;
	memset(ev, 0, sizeof(*ev));
	if (!action || !*action)
		return V2G_ERR_INVAL;
	if ((rc = set_str(ev->action, sizeof(ev->action), action)) ||
	    (rc = set_actor(&ev->actor, actor ? actor : &system_actor)) ||
	    (rc = set_str(ev->target, sizeof(ev->target), target)) ||
	    (rc = details_text(details, &ev->details))) {
		memset(ev, 0, sizeof(*ev));
		return rc;
	}
	v2g_uuid(ev->id);
	ev->ts_ms = ts_ms;
	ev->category = cat;
	ev->success = success ? 1 : 0;
	return V2G_OK;
}

int v2g_audit_config_change(struct v2g_audit_event *ev, int64_t ts_ms,
                            const struct v2g_audit_actor *actor, const char *key, json_t *changes)
{
	if (!key || !*key) {
		memset(ev, 0, sizeof(*ev));
		return V2G_ERR_INVAL;
	}
	return build(ev, ts_ms, V2G_AUDIT_CONFIG_CHANGE, "config_update", actor, key, changes, 1);
}

int v2g_audit_station_control(struct v2g_audit_event *ev, int64_t ts_ms,
                              const struct v2g_audit_actor *actor, const char *station_id,
                              const char *action, json_t *params)
{
	if (!station_id || !*station_id) {
		memset(ev, 0, sizeof(*ev));
		return V2G_ERR_INVAL;
	}
	return build(ev, ts_ms, V2G_AUDIT_STATION_CONTROL, action, actor, station_id, params, 1);
}

int v2g_audit_auth(struct v2g_audit_event *ev, int64_t ts_ms, const char *action,
                   const struct v2g_audit_actor *user, int success, json_t *meta)
{
	if (!user) {
		memset(ev, 0, sizeof(*ev));
		return V2G_ERR_INVAL;
	}
	return build(ev, ts_ms, V2G_AUDIT_AUTH, action, user, user->id, meta, success);
}

int v2g_audit_load_management(struct v2g_audit_event *ev, int64_t ts_ms, const char *action,
                              json_t *details)
{
	json_t *site = json_is_object(details) ? json_object_get(details, "site") : NULL;
	return build(ev, ts_ms, V2G_AUDIT_LOAD_MANAGEMENT, action, NULL,
	             json_is_string(site) ? json_string_value(site) : "", details, 1);
}

int v2g_audit_error(struct v2g_audit_event *ev, int64_t ts_ms, enum v2g_audit_category category,
                    const char *message)
{
	if ((unsigned)category >= V2G_AUDIT_NCATEGORIES) {
		memset(ev, 0, sizeof(*ev));
		return V2G_ERR_INVAL;
	}
	json_t *d = json_pack("{s:s}", "error", message ? message : "");
	if (!d) {
		memset(ev, 0, sizeof(*ev));
		return V2G_ERR_NOMEM;
	}
	int rc = build(ev, ts_ms, category, "error", NULL, "", d, 0);
	json_decref(d);
	return rc;
}

/* ---- JSON ---- */

json_t *v2g_audit_event_to_json(const struct v2g_audit_event *ev)
{
	char ts[40];
	v2g_time_format(ev->ts_ms, ts, sizeof(ts));
	json_t *details = ev->details ? json_loads(ev->details, 0, NULL) : json_object();
	if (!details)
		details = json_object(); /* only our own text gets here: cannot be bad */
	return json_pack("{s:s, s:I, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:s, s:o, s:b}", "id",
	                 ev->id, "ts_ms", (json_int_t)ev->ts_ms, "timestamp", ts, "category",
	                 v2g_audit_category_name(ev->category), "action", ev->action, "actor",
	                 "type", ev->actor.type, "id", ev->actor.id, "name", ev->actor.name,
	                 "target", ev->target, "details", details, "success", ev->success);
}

char *v2g_audit_event_encode(const struct v2g_audit_event *ev)
{
	json_t *j = v2g_audit_event_to_json(ev);
	if (!j)
		return NULL;
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/* Copies the optional string member key of obj into dst. */
static int opt_str(json_t *obj, const char *key, char *dst, size_t cap)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		dst[0] = '\0';
		return V2G_OK;
	}
	if (!json_is_string(v))
		return V2G_ERR_INVAL;
	if (strlen(json_string_value(v)) != json_string_length(v))
		return V2G_ERR_INVAL; /* embedded NUL */
	return set_str(dst, cap, json_string_value(v));
}

static int from_json(json_t *o, struct v2g_audit_event *ev)
{
	int rc;
	if (!json_is_object(o))
		return V2G_ERR_INVAL;
	json_t *cat = json_object_get(o, "category");
	if (!json_is_string(cat) || v2g_audit_category_parse(json_string_value(cat), &ev->category))
		return V2G_ERR_INVAL;
	if ((rc = opt_str(o, "action", ev->action, sizeof(ev->action))))
		return rc;
	if (!ev->action[0])
		return V2G_ERR_INVAL;

	json_t *ts = json_object_get(o, "ts_ms"), *tss = json_object_get(o, "timestamp");
	if (ts) {
		if (!json_is_integer(ts) || json_integer_value(ts) < 0)
			return V2G_ERR_INVAL;
		ev->ts_ms = json_integer_value(ts);
	} else if (!json_is_string(tss) || v2g_time_parse(json_string_value(tss), &ev->ts_ms) ||
	           ev->ts_ms < 0) {
		return V2G_ERR_INVAL;
	}

	json_t *actor = json_object_get(o, "actor");
	if (!json_is_object(actor))
		return V2G_ERR_INVAL;
	if ((rc = opt_str(actor, "type", ev->actor.type, sizeof(ev->actor.type))) ||
	    (rc = opt_str(actor, "id", ev->actor.id, sizeof(ev->actor.id))) ||
	    (rc = opt_str(actor, "name", ev->actor.name, sizeof(ev->actor.name))))
		return rc;
	if (!ev->actor.type[0])
		return V2G_ERR_INVAL;
	if ((rc = opt_str(o, "target", ev->target, sizeof(ev->target))))
		return rc;

	json_t *succ = json_object_get(o, "success");
	if (succ && !json_is_boolean(succ))
		return V2G_ERR_INVAL;
	ev->success = succ ? json_is_true(succ) : 1;

	if ((rc = opt_str(o, "id", ev->id, sizeof(ev->id))))
		return rc;
	if (!ev->id[0])
		v2g_uuid(ev->id);

	json_t *d = json_object_get(o, "details");
	if (json_is_null(d))
		d = NULL;
	return details_text(d, &ev->details);
}

int v2g_audit_event_from_json(json_t *obj, struct v2g_audit_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	int rc = from_json(obj, ev);
	if (rc) {
		v2g_audit_event_fini(ev);
		memset(ev, 0, sizeof(*ev));
	}
	return rc;
}

int v2g_audit_event_decode(const char *buf, size_t len, struct v2g_audit_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (!buf)
		return V2G_ERR_INVAL;
	if (len > V2G_AUDIT_DETAILS_MAX + 4096)
		return V2G_ERR_TOOBIG;
	json_t *j = v2g_json_loadb(buf, len, 0, NULL);
	if (!j)
		return V2G_ERR_INVAL;
	int rc = v2g_audit_event_from_json(j, ev);
	json_decref(j);
	return rc;
}

int v2g_audit_parse_date(const char *s, int end, int64_t *ms)
{
	if (!s)
		return V2G_ERR_INVAL;
	if (strlen(s) == 10) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
		int64_t t;
		if (v2g_time_parse(buf, &t))
			return V2G_ERR_INVAL;
		*ms = end ? t + DAY_MS : t;
		return V2G_OK;
	}
	return v2g_time_parse(s, ms);
}

/* ---- in-memory log ---- */

struct slot {
	struct v2g_audit_event ev;
	uint64_t seq; /* arrival order */
};

struct v2g_audit_log {
	pthread_mutex_t mu;
	struct slot *ring;
	size_t cap, head, n; /* oldest at head */
	uint64_t seq, dropped;
};

struct v2g_audit_log *v2g_audit_log_new(size_t capacity)
{
	struct v2g_audit_log *log = calloc(1, sizeof(*log));
	if (!log)
		return NULL;
	log->cap = capacity ? capacity : V2G_AUDIT_LOG_DEFAULT_CAPACITY;
	log->ring = calloc(log->cap, sizeof(*log->ring));
	if (!log->ring) {
		free(log);
		return NULL;
	}
	pthread_mutex_init(&log->mu, NULL);
	return log;
}

void v2g_audit_log_free(struct v2g_audit_log *log)
{
	if (!log)
		return;
	for (size_t i = 0; i < log->cap; i++)
		v2g_audit_event_fini(&log->ring[i].ev);
	free(log->ring);
	pthread_mutex_destroy(&log->mu);
	free(log);
}

int v2g_audit_log_append(struct v2g_audit_log *log, const struct v2g_audit_event *ev)
{
	struct v2g_audit_event copy;
	if (v2g_audit_event_copy(&copy, ev))
		return V2G_ERR_NOMEM;
	pthread_mutex_lock(&log->mu);
	struct slot *s;
	if (log->n == log->cap) {
		s = &log->ring[log->head];
		v2g_audit_event_fini(&s->ev);
		log->head = (log->head + 1) % log->cap;
		log->dropped++;
	} else {
		s = &log->ring[(log->head + log->n) % log->cap];
		log->n++;
	}
	s->ev = copy;
	s->seq = log->seq++;
	pthread_mutex_unlock(&log->mu);
	return V2G_OK;
}

size_t v2g_audit_log_count(struct v2g_audit_log *log)
{
	pthread_mutex_lock(&log->mu);
	size_t n = log->n;
	pthread_mutex_unlock(&log->mu);
	return n;
}

uint64_t v2g_audit_log_dropped(struct v2g_audit_log *log)
{
	pthread_mutex_lock(&log->mu);
	uint64_t n = log->dropped;
	pthread_mutex_unlock(&log->mu);
	return n;
}

static int newest_first(const void *a, const void *b)
{
	const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
	if (x->ev.ts_ms != y->ev.ts_ms)
		return x->ev.ts_ms < y->ev.ts_ms ? 1 : -1;
	return x->seq < y->seq ? 1 : -1;
}

static int matches(const struct v2g_audit_query *q, const struct v2g_audit_event *ev)
{
	return (q->category < 0 || (int)ev->category == q->category) &&
	       (q->from_ms == 0 || ev->ts_ms >= q->from_ms) &&
	       (q->to_ms == 0 || ev->ts_ms < q->to_ms);
}

void v2g_audit_events_free(struct v2g_audit_event *evs, size_t n)
{
	for (size_t i = 0; evs && i < n; i++)
		v2g_audit_event_fini(&evs[i]);
	free(evs);
}

int v2g_audit_log_query(struct v2g_audit_log *log, const struct v2g_audit_query *q,
                        struct v2g_audit_event **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!q || q->category >= V2G_AUDIT_NCATEGORIES || q->category < -1 ||
	    (q->from_ms && q->to_ms && q->from_ms > q->to_ms))
		return V2G_ERR_INVAL;
	size_t limit = q->limit ? q->limit : V2G_AUDIT_QUERY_DEFAULT_LIMIT;
	if (limit > V2G_AUDIT_QUERY_MAX_LIMIT)
		limit = V2G_AUDIT_QUERY_MAX_LIMIT;

	int rc = V2G_OK;
	struct v2g_audit_event *res = NULL;
	size_t k = 0, got = 0;
	pthread_mutex_lock(&log->mu);
	struct slot **hits = malloc((log->n ? log->n : 1) * sizeof(*hits));
	if (!hits) {
		rc = V2G_ERR_NOMEM;
		goto unlock;
	}
	for (size_t i = 0; i < log->n; i++) {
		struct slot *s = &log->ring[(log->head + i) % log->cap];
		if (matches(q, &s->ev))
			hits[k++] = s;
	}
	qsort(hits, k, sizeof(*hits), newest_first);
	if (k > limit)
		k = limit;
	if (k) {
		res = calloc(k, sizeof(*res));
		if (!res) {
			rc = V2G_ERR_NOMEM;
			goto free_hits;
		}
	}
	for (; got < k; got++) {
		if (v2g_audit_event_copy(&res[got], &hits[got]->ev)) {
			rc = V2G_ERR_NOMEM;
			break;
		}
	}
free_hits:
	free(hits);
unlock:
	pthread_mutex_unlock(&log->mu);
	if (rc) {
		v2g_audit_events_free(res, got);
		return rc;
	}
	*out = res;
	*n = k;
	return V2G_OK;
}

json_t *v2g_audit_events_to_json(const struct v2g_audit_event *evs, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, v2g_audit_event_to_json(&evs[i]))) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (!arr)
		return NULL;
	return json_pack("{s:I, s:o}", "count", (json_int_t)n, "events", arr);
}

static int64_t day_start(int64_t ms)
{
	int64_t q = ms / DAY_MS;
	if (ms % DAY_MS != 0 && ms < 0)
		q--;
	return q * DAY_MS;
}

int v2g_audit_log_stats(struct v2g_audit_log *log, int64_t now_ms, int days,
                        struct v2g_audit_stats *st)
{
	if (days < 1 || days > V2G_AUDIT_STATS_MAX_DAYS)
		return V2G_ERR_INVAL;
	memset(st, 0, sizeof(*st));
	st->days = days;
	st->from_ms = day_start(now_ms) - (int64_t)(days - 1) * DAY_MS;
	int64_t to = day_start(now_ms) + DAY_MS;
	pthread_mutex_lock(&log->mu);
	for (size_t i = 0; i < log->n; i++) {
		const struct v2g_audit_event *ev = &log->ring[(log->head + i) % log->cap].ev;
		if (ev->ts_ms < st->from_ms || ev->ts_ms >= to)
			continue;
		st->total++;
		st->failures += !ev->success;
		if ((unsigned)ev->category < V2G_AUDIT_NCATEGORIES)
			st->by_category[ev->category]++;
		st->by_day[(ev->ts_ms - st->from_ms) / DAY_MS]++;
	}
	pthread_mutex_unlock(&log->mu);
	return V2G_OK;
}

/* "YYYY-MM-DD" of a UTC time. */
static void date_of(int64_t ms, char buf[16])
{
	char full[40];
	v2g_time_format(ms, full, sizeof(full));
	memcpy(buf, full, 10);
	buf[10] = '\0';
}

json_t *v2g_audit_stats_to_json(const struct v2g_audit_stats *st)
{
	char from[16], to[16], d[16];
	json_t *cats = json_object(), *by_day = json_object();
	if (!cats || !by_day)
		goto fail;
	for (int i = 0; i < V2G_AUDIT_NCATEGORIES; i++)
		if (json_object_set_new(cats, cat_names[i],
		                        json_integer((json_int_t)st->by_category[i])))
			goto fail;
	for (int i = 0; i < st->days && i < V2G_AUDIT_STATS_MAX_DAYS; i++) {
		date_of(st->from_ms + (int64_t)i * DAY_MS, d);
		if (json_object_set_new(by_day, d, json_integer((json_int_t)st->by_day[i])))
			goto fail;
	}
	date_of(st->from_ms, from);
	date_of(st->from_ms + (int64_t)(st->days - 1) * DAY_MS, to);
	return json_pack("{s:i, s:s, s:s, s:I, s:I, s:o, s:o}", "days", st->days, "from", from,
	                 "to", to, "total", (json_int_t)st->total, "failures",
	                 (json_int_t)st->failures, "by_category", cats, "by_day", by_day);
fail:
	json_decref(cats);
	json_decref(by_day);
	return NULL;
}
