/* Fail-safe manager: see failsafe.h. Stations live in registration order
 * (so actions come out in a stable order) and are found through a tsearch
 * tree keyed by id (the id is the first member of struct fs_station). */
#include "failsafe.h"

#include <math.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2g/err.h"

struct fs_station {
	char id[DLM_FS_ID_MAX]; /* first: the tree compares ids as strings */
	struct dlm_failsafe_cfg cfg;
	int64_t last_comm_ms;
	int has_good;
	double good_power_kw;
	char good_status[DLM_FS_STATUS_MAX];
	int64_t good_ms;
	int in_failsafe;
	int heard; /* heard again since it went into fail-safe */
	int64_t failsafe_since_ms;
	double failsafe_power_kw;
};

struct dlm_failsafe {
	struct dlm_failsafe_cfg defaults;
	struct fs_station **st;
	size_t n, cap;
	void *tree;
	int has_heartbeat;
	int64_t heartbeat_ms;
	struct dlm_fs_action *actions;
	size_t cap_actions;
};

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void noop_free(void *p)
{
	(void)p;
}

struct dlm_failsafe_cfg dlm_failsafe_defaults(void)
{
	return (struct dlm_failsafe_cfg){ .safe_power_limit_kw = 3.7,
		                          .offline_action = DLM_OFFLINE_REDUCE,
		                          .comm_timeout_ms = 30000 };
}

int dlm_failsafe_cfg_valid(const struct dlm_failsafe_cfg *c)
{
	return c && isfinite(c->safe_power_limit_kw) && c->safe_power_limit_kw >= 0 &&
	       (c->offline_action == DLM_OFFLINE_MAINTAIN ||
	        c->offline_action == DLM_OFFLINE_REDUCE || c->offline_action == DLM_OFFLINE_STOP) &&
	       c->comm_timeout_ms > 0;
}

const char *dlm_offline_action_name(enum dlm_offline_action a)
{
	switch (a) {
	case DLM_OFFLINE_MAINTAIN: return "maintain";
	case DLM_OFFLINE_REDUCE: return "reduce";
	case DLM_OFFLINE_STOP: return "stop";
	}
	return "unknown";
}

int dlm_offline_action_parse(const char *name, enum dlm_offline_action *out)
{
	static const enum dlm_offline_action all[] = { DLM_OFFLINE_MAINTAIN, DLM_OFFLINE_REDUCE,
		                                       DLM_OFFLINE_STOP };
	for (size_t i = 0; name && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(name, dlm_offline_action_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	return V2G_ERR_INVAL;
}

struct dlm_failsafe *dlm_failsafe_new(const struct dlm_failsafe_cfg *defaults)
{
	struct dlm_failsafe_cfg d = dlm_failsafe_defaults();
	if (!defaults)
		defaults = &d;
	if (!dlm_failsafe_cfg_valid(defaults))
		return NULL;
	struct dlm_failsafe *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->defaults = *defaults;
	return m;
}

void dlm_failsafe_free(struct dlm_failsafe *m)
{
	if (!m)
		return;
	tdestroy(m->tree, noop_free);
	for (size_t i = 0; i < m->n; i++)
		free(m->st[i]);
	free(m->st);
	free(m->actions);
	free(m);
}

static struct fs_station *find(const struct dlm_failsafe *m, const char *id)
{
	void *const *node = tfind(id, &m->tree, id_cmp);
	return node ? *(struct fs_station *const *)node : NULL;
}

/* Finds or creates (with cfg, heard at now_ms). NULL on a bad id or NOMEM
 * (*err says which). */
static struct fs_station *get(struct dlm_failsafe *m, const char *id,
                              const struct dlm_failsafe_cfg *cfg, int64_t now_ms, int *err)
{
	*err = 0;
	if (!id || !id[0] || strlen(id) >= DLM_FS_ID_MAX) {
		*err = V2G_ERR_INVAL;
		return NULL;
	}
	struct fs_station *s = find(m, id);
	if (s)
		return s;
	*err = V2G_ERR_NOMEM;
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;
		struct fs_station **v = realloc(m->st, cap * sizeof(*v));
		if (!v)
			return NULL;
		m->st = v;
		m->cap = cap;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	strcpy(s->id, id);
	s->cfg = *cfg;
	s->last_comm_ms = now_ms;
	if (!tsearch(s, &m->tree, id_cmp)) {
		free(s);
		return NULL;
	}
	m->st[m->n++] = s;
	*err = 0;
	return s;
}

int dlm_failsafe_register(struct dlm_failsafe *m, const char *station,
                          const struct dlm_failsafe_cfg *cfg, int64_t now_ms)
{
	if (!m || !dlm_failsafe_cfg_valid(cfg))
		return V2G_ERR_INVAL;
	int err;
	struct fs_station *s = get(m, station, cfg, now_ms, &err);
	if (!s)
		return err;
	s->cfg = *cfg;
	return 0;
}

int dlm_failsafe_unregister(struct dlm_failsafe *m, const char *station)
{
	struct fs_station *s = m && station ? find(m, station) : NULL;
	if (!s)
		return V2G_ERR_NOTFOUND;
	tdelete(station, &m->tree, id_cmp);
	for (size_t i = 0; i < m->n; i++)
		if (m->st[i] == s) {
			memmove(&m->st[i], &m->st[i + 1], (m->n - i - 1) * sizeof(m->st[0]));
			m->n--;
			break;
		}
	free(s);
	return 0;
}

int dlm_failsafe_update_comm(struct dlm_failsafe *m, const char *station, int64_t now_ms)
{
	if (!m)
		return V2G_ERR_INVAL;
	int err;
	struct fs_station *s = get(m, station, &m->defaults, now_ms, &err);
	if (!s)
		return err;
	if (now_ms > s->last_comm_ms)
		s->last_comm_ms = now_ms;
	if (s->in_failsafe)
		s->heard = 1;
	return 0;
}

int dlm_failsafe_record_good_config(struct dlm_failsafe *m, const char *station,
                                    const struct dlm_good_config *good, int64_t now_ms)
{
	if (!m || !good || !isfinite(good->power_kw) || good->power_kw < 0)
		return V2G_ERR_INVAL;
	int err;
	struct fs_station *s = get(m, station, &m->defaults, now_ms, &err);
	if (!s)
		return err;
	s->has_good = 1;
	s->good_power_kw = good->power_kw;
	snprintf(s->good_status, sizeof(s->good_status), "%s", good->status ? good->status : "");
	s->good_ms = now_ms;
	return 0;
}

static double failsafe_power(const struct fs_station *s)
{
	double safe = s->cfg.safe_power_limit_kw;
	switch (s->cfg.offline_action) {
	case DLM_OFFLINE_MAINTAIN: return s->has_good ? s->good_power_kw : safe;
	case DLM_OFFLINE_REDUCE:
		return s->has_good && s->good_power_kw < safe ? s->good_power_kw : safe;
	case DLM_OFFLINE_STOP: return 0;
	}
	return 0;
}

int dlm_failsafe_check(struct dlm_failsafe *m, int64_t now_ms, struct dlm_fs_actions *out)
{
	if (!m || !out)
		return V2G_ERR_INVAL;
	/* At most one action per station. */
	if (m->n > m->cap_actions) {
		struct dlm_fs_action *a = realloc(m->actions, m->n * sizeof(*a));
		if (!a)
			return V2G_ERR_NOMEM;
		m->actions = a;
		m->cap_actions = m->n;
	}
	size_t n = 0;
	for (size_t i = 0; i < m->n; i++) {
		struct fs_station *s = m->st[i];
		int64_t silent = now_ms - s->last_comm_ms;
		if (s->in_failsafe) {
			if (!s->heard)
				continue; /* still silent: the action was given once */
			s->in_failsafe = 0;
			s->heard = 0;
			m->actions[n++] = (struct dlm_fs_action){
				.station = s->id,
				.kind = DLM_FS_RESTORE,
				.offline_action = s->cfg.offline_action,
				.power_kw = s->has_good ? s->good_power_kw : 0,
			};
		} else if (silent > s->cfg.comm_timeout_ms) {
			s->in_failsafe = 1;
			s->failsafe_since_ms = now_ms;
			s->failsafe_power_kw = failsafe_power(s);
			m->actions[n++] = (struct dlm_fs_action){
				.station = s->id,
				.kind = DLM_FS_APPLY,
				.offline_action = s->cfg.offline_action,
				.power_kw = s->failsafe_power_kw,
				.silent_ms = silent,
			};
		}
	}
	out->n = n;
	out->v = m->actions;
	return 0;
}

int dlm_failsafe_in_failsafe(const struct dlm_failsafe *m, const char *station)
{
	const struct fs_station *s = station ? find(m, station) : NULL;
	return s ? s->in_failsafe : -1;
}

size_t dlm_failsafe_count(const struct dlm_failsafe *m)
{
	return m->n;
}

size_t dlm_failsafe_active_count(const struct dlm_failsafe *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n; i++)
		n += m->st[i]->in_failsafe != 0;
	return n;
}

void dlm_failsafe_heartbeat(struct dlm_failsafe *m, int64_t now_ms)
{
	m->has_heartbeat = 1;
	m->heartbeat_ms = now_ms;
}

int dlm_failsafe_system_ok(const struct dlm_failsafe *m, int64_t now_ms,
                           int64_t heartbeat_timeout_ms)
{
	return m->has_heartbeat && now_ms - m->heartbeat_ms <= heartbeat_timeout_ms;
}

static json_t *cfg_json(const struct dlm_failsafe_cfg *c)
{
	return json_pack("{s:f,s:s,s:I}", "safe_power_limit_kw", c->safe_power_limit_kw,
	                 "offline_action", dlm_offline_action_name(c->offline_action),
	                 "comm_timeout_ms", (json_int_t)c->comm_timeout_ms);
}

json_t *dlm_failsafe_status_obj(const struct dlm_failsafe *m, int64_t now_ms,
                                int64_t heartbeat_timeout_ms)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < m->n; i++) {
		const struct fs_station *s = m->st[i];
		int64_t silent = now_ms - s->last_comm_ms;
		json_t *good = s->has_good ? json_pack("{s:f,s:s,s:I}", "power_kw",
		                                       s->good_power_kw, "status", s->good_status,
		                                       "recorded_ms", (json_int_t)s->good_ms)
		                           : json_null();
		json_t *o =
		        json_pack("{s:s,s:f,s:s,s:I,s:I,s:I,s:b,s:b,s:o,s:o,s:o}", "id", s->id,
		                  "safe_power_limit_kw", s->cfg.safe_power_limit_kw,
		                  "offline_action", dlm_offline_action_name(s->cfg.offline_action),
		                  "comm_timeout_ms", (json_int_t)s->cfg.comm_timeout_ms,
		                  "last_comm_ms", (json_int_t)s->last_comm_ms, "silent_ms",
		                  (json_int_t)silent, "online", silent <= s->cfg.comm_timeout_ms,
		                  "in_failsafe", s->in_failsafe, "failsafe_since_ms",
		                  s->in_failsafe ? json_integer(s->failsafe_since_ms) : json_null(),
		                  "failsafe_power_kw",
		                  s->in_failsafe ? json_real(s->failsafe_power_kw) : json_null(),
		                  "last_good", good);
		json_array_append_new(list, o);
	}
	return json_pack(
	        "{s:b,s:o,s:o,s:I,s:i,s:i,s:o,s:o}", "system_ok",
	        dlm_failsafe_system_ok(m, now_ms, heartbeat_timeout_ms), "last_heartbeat_ms",
	        m->has_heartbeat ? json_integer(m->heartbeat_ms) : json_null(), "heartbeat_age_ms",
	        m->has_heartbeat ? json_integer(now_ms - m->heartbeat_ms) : json_null(),
	        "heartbeat_timeout_ms", (json_int_t)heartbeat_timeout_ms, "stations_total",
	        (int)m->n, "stations_in_failsafe", (int)dlm_failsafe_active_count(m), "defaults",
	        cfg_json(&m->defaults), "stations", list);
}

char *dlm_failsafe_status_json(const struct dlm_failsafe *m, int64_t now_ms,
                               int64_t heartbeat_timeout_ms)
{
	json_t *j = dlm_failsafe_status_obj(m, now_ms, heartbeat_timeout_ms);
	if (!j)
		return NULL;
	char *out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}
