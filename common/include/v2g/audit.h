/* Audit events (DLM guide 1.7): who changed what, when, with what result,
 * for configuration changes, station control, authentication and load
 * management decisions.
 *
 * This module holds the event type, its constructors (the guide's
 * logConfigChange / logStationControl / logAuth / logLoadManagement, plus
 * logError), its JSON form (what travels on the bus and what the store
 * keeps), and an in-memory bounded log with the query and stats semantics of
 * GET /api/audit/logs and /api/audit/stats. Persistence is the store's; it
 * is expected to answer queries with the same semantics as
 * v2g_audit_log_query / v2g_audit_log_stats.
 *
 * Times are UTC milliseconds since the epoch (v2g_now_ms); days are UTC days.
 *
 * Thread-safety: the event functions touch only their arguments; a
 * v2g_audit_log may be used from any thread (it holds a mutex). */
#ifndef V2G_AUDIT_H
#define V2G_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum v2g_audit_category {
	V2G_AUDIT_CONFIG_CHANGE = 0,
	V2G_AUDIT_STATION_CONTROL,
	V2G_AUDIT_AUTH,
	V2G_AUDIT_LOAD_MANAGEMENT,
};
#define V2G_AUDIT_NCATEGORIES 4

/* Field sizes, NUL included. A longer value is refused (V2G_ERR_TOOBIG),
 * never cut: an audit record is not edited. */
#define V2G_AUDIT_ID_LEN         37
#define V2G_AUDIT_ACTION_LEN     64
#define V2G_AUDIT_ACTOR_TYPE_LEN 16
#define V2G_AUDIT_ACTOR_ID_LEN   64
#define V2G_AUDIT_ACTOR_NAME_LEN 128
#define V2G_AUDIT_TARGET_LEN     128
/* Largest details object, as compact JSON text. */
#define V2G_AUDIT_DETAILS_MAX 8192

struct v2g_audit_actor {
	char type[V2G_AUDIT_ACTOR_TYPE_LEN]; /* "user", "system", "api", … (never
	                                        empty) */
	char id[V2G_AUDIT_ACTOR_ID_LEN];
	char name[V2G_AUDIT_ACTOR_NAME_LEN];
};

/* One event. Storage is the caller's; details is heap memory owned by the
 * event: release with v2g_audit_event_fini (safe on a zeroed event). */
struct v2g_audit_event {
	char id[V2G_AUDIT_ID_LEN]; /* UUID, set by the constructors */
	int64_t ts_ms;
	enum v2g_audit_category category;
	char action[V2G_AUDIT_ACTION_LEN]; /* never empty */
	struct v2g_audit_actor actor;
	char target[V2G_AUDIT_TARGET_LEN]; /* config key, station id, … ("" if none) */
	char *details;                     /* compact JSON object text, or NULL for {} */
	int success;                       /* 1 success, 0 failure */
};

/* "config_change", "station_control", "auth", "load_management" (static;
 * "unknown" otherwise), and back: 0 or V2G_ERR_INVAL. */
const char *v2g_audit_category_name(enum v2g_audit_category c);
int v2g_audit_category_parse(const char *s, enum v2g_audit_category *out);

void v2g_audit_event_fini(struct v2g_audit_event *ev);
/* Deep copy into dst (whose previous contents are not freed). 0 or NOMEM. */
int v2g_audit_event_copy(struct v2g_audit_event *dst, const struct v2g_audit_event *src);

/* Constructors. Each overwrites *ev (without freeing it: fini it first if it
 * held an event), gives it a fresh id, and on error leaves it zeroed.
 * json_t arguments are borrowed and must be objects or NULL. actor NULL
 * means the system itself ({"system","site-dlm","DLM controller"}).
 * Return 0, V2G_ERR_INVAL (missing argument, non-object details),
 * V2G_ERR_TOOBIG (a field over its size) or V2G_ERR_NOMEM. */

/* logConfigChange(actor, key, {old, new}): action "config_update",
 * target = key, details = changes. */
int v2g_audit_config_change(struct v2g_audit_event *ev, int64_t ts_ms,
                            const struct v2g_audit_actor *actor, const char *key, json_t *changes);
/* logStationControl(actor, station, action, params): target = station. */
int v2g_audit_station_control(struct v2g_audit_event *ev, int64_t ts_ms,
                              const struct v2g_audit_actor *actor, const char *station_id,
                              const char *action, json_t *params);
/* logAuth(action, user, success, meta): target = the user's id. */
int v2g_audit_auth(struct v2g_audit_event *ev, int64_t ts_ms, const char *action,
                   const struct v2g_audit_actor *user, int success, json_t *meta);
/* logLoadManagement(decision): actor is the system, target "" (or the
 * site id if details has a "site" string). */
int v2g_audit_load_management(struct v2g_audit_event *ev, int64_t ts_ms, const char *action,
                              json_t *details);
/* logError(category, error): action "error", success 0, details
 * {"error": message}. */
int v2g_audit_error(struct v2g_audit_event *ev, int64_t ts_ms, enum v2g_audit_category category,
                    const char *message);

/* JSON form:
 *   {"id":"…","ts_ms":1735732800000,"timestamp":"2025-01-01T12:00:00.000Z",
 *    "category":"station_control","action":"set_power",
 *    "actor":{"type":"user","id":"admin","name":"Admin User"},
 *    "target":"station_1","details":{"power":7.4},"success":true}
 * New reference, NULL on allocation failure. */
json_t *v2g_audit_event_to_json(const struct v2g_audit_event *ev);
/* The same as compact text; caller frees. NULL on allocation failure. */
char *v2g_audit_event_encode(const struct v2g_audit_event *ev);

/* Validating decode into *ev (overwritten, as for the constructors; zeroed
 * on error). Required: category (known name), action (non-empty string),
 * actor.type (non-empty string), and a time: ts_ms (integer >= 0) or, if
 * absent, timestamp (RFC 3339). Optional: id (generated if absent), actor.id,
 * actor.name, target (strings), details (object), success (boolean, default
 * true). Returns 0, V2G_ERR_INVAL (shape or value wrong), V2G_ERR_TOOBIG or
 * V2G_ERR_NOMEM. obj is borrowed. */
int v2g_audit_event_from_json(json_t *obj, struct v2g_audit_event *ev);
/* The same from text (nesting limited, see v2g/json.h). */
int v2g_audit_event_decode(const char *buf, size_t len, struct v2g_audit_event *ev);

/* "2025-01-01" -> that day's 00:00 UTC, or with end != 0 the next day's
 * (an exclusive upper bound: endDate=2025-01-31 includes all of the 31st);
 * an RFC 3339 time is taken as is. For the startDate/endDate parameters.
 * Returns 0 or V2G_ERR_INVAL. */
int v2g_audit_parse_date(const char *s, int end, int64_t *ms);

/* ---- in-memory log ---- */

#define V2G_AUDIT_LOG_DEFAULT_CAPACITY 10000
#define V2G_AUDIT_QUERY_DEFAULT_LIMIT  100
#define V2G_AUDIT_QUERY_MAX_LIMIT      1000
#define V2G_AUDIT_STATS_MAX_DAYS       366

struct v2g_audit_log;

/* A ring of at most capacity events (0: the default); when full, the oldest
 * appended event is dropped. NULL on allocation failure. */
struct v2g_audit_log *v2g_audit_log_new(size_t capacity);
void v2g_audit_log_free(struct v2g_audit_log *log); /* NULL is fine */

/* Appends a deep copy of ev (ev stays the caller's). 0 or V2G_ERR_NOMEM
 * (the log is then unchanged). */
int v2g_audit_log_append(struct v2g_audit_log *log, const struct v2g_audit_event *ev);
size_t v2g_audit_log_count(struct v2g_audit_log *log);
uint64_t v2g_audit_log_dropped(struct v2g_audit_log *log); /* overwritten when full */

struct v2g_audit_query {
	int category;    /* an enum v2g_audit_category, or -1 for all */
	int64_t from_ms; /* ts_ms >= from_ms; 0: no lower bound */
	int64_t to_ms;   /* ts_ms < to_ms; 0: no upper bound */
	size_t limit;    /* 0: V2G_AUDIT_QUERY_DEFAULT_LIMIT; capped at _MAX_LIMIT */
};

/* The matching events, newest (by ts_ms, then by arrival) first, at most
 * limit of them. *out is a heap array of *n deep copies; free it with
 * v2g_audit_events_free (*out is NULL when *n is 0). Returns 0,
 * V2G_ERR_INVAL (unknown category, from > to) or V2G_ERR_NOMEM. */
int v2g_audit_log_query(struct v2g_audit_log *log, const struct v2g_audit_query *q,
                        struct v2g_audit_event **out, size_t *n);
void v2g_audit_events_free(struct v2g_audit_event *evs, size_t n);
/* {"count":n,"events":[…]} for GET /api/audit/logs. New reference. */
json_t *v2g_audit_events_to_json(const struct v2g_audit_event *evs, size_t n);

/* Stats over the last `days` UTC days, today (the day of now_ms) included:
 * events with ts_ms in [00:00 of day (today - days + 1), 00:00 of tomorrow). */
struct v2g_audit_stats {
	int days;
	int64_t from_ms; /* 00:00 UTC of the first day */
	size_t total;
	size_t failures;
	size_t by_category[V2G_AUDIT_NCATEGORIES];
	size_t by_day[V2G_AUDIT_STATS_MAX_DAYS]; /* [0] = the first (oldest) day */
};

/* Fills *st. Returns 0 or V2G_ERR_INVAL (days not in 1..366). */
int v2g_audit_log_stats(struct v2g_audit_log *log, int64_t now_ms, int days,
                        struct v2g_audit_stats *st);
/* {"days":7,"from":"2025-01-01","to":"2025-01-07","total":…,"failures":…,
 *  "by_category":{"config_change":…, … all four},
 *  "by_day":{"2025-01-01":…, … every day, zeros included}}. New reference. */
json_t *v2g_audit_stats_to_json(const struct v2g_audit_stats *st);

#endif
