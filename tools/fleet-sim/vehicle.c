/* Vehicle model of the fleet simulator; see vehicle.h for the contracts. */
#include "vehicle.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "v2g/json.h"
#include "v2g/err.h"
#include "v2g/timeutil.h"

#define CHARGE_EFFICIENCY 0.92 /* share of grid energy that reaches the battery */
#define LOW_SOC_REASON    40.0 /* random rejections below this SoC say "soc_too_low" */

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
	r->s = seed;
}

uint64_t sim_rng_next(struct sim_rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

double sim_rng_uniform(struct sim_rng *r)
{
	return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

void sim_model_cfg_default(struct sim_model_cfg *cfg)
{
	cfg->prefix = "sim";
	cfg->sites = 10;
	cfg->availability = 0.9;
	cfg->cycle_hours = 8.0;
	cfg->drive_kw = 2.0;
	cfg->reject_rate = 0.0;
	cfg->silent_rate = 0.0;
}

void sim_vehicle_id_format(const char *prefix, int index, char *out)
{
	snprintf(out, SIM_ID_MAX, "%s-%05d", prefix, index);
}

int sim_vehicle_id_parse(const char *prefix, const char *id, size_t len, int n, int *index)
{
	size_t plen = strlen(prefix);
	char canon[SIM_ID_MAX];
	long val = 0;
	size_t i;

	if (len <= plen + 1 || len >= SIM_ID_MAX || memcmp(id, prefix, plen) != 0 ||
	    id[plen] != '-')
		return V2G_ERR_NOTFOUND;
	for (i = plen + 1; i < len; i++) {
		if (id[i] < '0' || id[i] > '9' || val > 100000000)
			return V2G_ERR_NOTFOUND;
		val = val * 10 + (id[i] - '0');
	}
	if (val >= n)
		return V2G_ERR_NOTFOUND;
	/* Only the canonical spelling: "sim-1" or "sim-000001" is another car. */
	sim_vehicle_id_format(prefix, (int)val, canon);
	if (strlen(canon) != len || memcmp(canon, id, len) != 0)
		return V2G_ERR_NOTFOUND;
	*index = (int)val;
	return 0;
}

void sim_vehicle_init(struct sim_vehicle *v, const struct sim_model_cfg *cfg, uint64_t seed,
                      int index, int64_t now_ms)
{
	static const double targets[] = { 80.0, 90.0, 100.0 };
	struct sim_rng r;
	double u;

	memset(v, 0, sizeof(*v));
	/* One independent stream per vehicle, so attributes do not depend on N. */
	sim_rng_seed(&r,
	             seed * 0xD1B54A32D192ED03ULL ^ ((uint64_t)index + 1) * 0x9E3779B97F4A7C15ULL);
	sim_rng_next(&r);

	sim_vehicle_id_format(cfg->prefix, index, v->id);
	v->index = index;
	u = sim_rng_uniform(&r);
	v->max_power_kw = u < 0.5 ? 7.4 : u < 0.85 ? 11.0 : 22.0;
	v->battery_kwh = 40.0 + (double)(sim_rng_next(&r) % 61);
	v->target_soc = targets[sim_rng_next(&r) % 3];
	v->priority = 1 + (int)(sim_rng_next(&r) % 10);
	v->tariff = (10.0 + (double)(sim_rng_next(&r) % 21)) / 100.0;
	u = sim_rng_uniform(&r);
	v->segment = u < 0.5 ? "commuter" : u < 0.8 ? "fleet" : "taxi";
	v->fleet_id = sim_rng_next(&r) % 2 ? "f2" : "f1";
	snprintf(v->site, sizeof(v->site), "site-%02d",
	         (int)(sim_rng_next(&r) % (uint64_t)(cfg->sites > 0 ? cfg->sites : 1)));
	snprintf(v->cluster, sizeof(v->cluster), "c%d", (int)(sim_rng_next(&r) % 4));
	v->soc = round((20.0 + 75.0 * sim_rng_uniform(&r)) * 10.0) / 10.0;
	v->available = sim_rng_uniform(&r) < cfg->availability;
	v->updated_ms = now_ms;
}

static double soc_delta(const struct sim_vehicle *v, double kw, int64_t dt_ms)
{
	return kw * ((double)dt_ms / 3600000.0) / v->battery_kwh * 100.0;
}

static double clamp_soc(double soc)
{
	return soc < 0.0 ? 0.0 : soc > 100.0 ? 100.0 : soc;
}

/* Idle behaviour over dt: charge towards the target while plugged in (never
 * pulling a SoC already above it down), drain while away. */
static void drift_idle(struct sim_vehicle *v, const struct sim_model_cfg *cfg, int64_t dt_ms)
{
	if (v->available) {
		if (v->soc < v->target_soc) {
			v->soc += soc_delta(v, v->max_power_kw * CHARGE_EFFICIENCY, dt_ms);
			if (v->soc > v->target_soc)
				v->soc = v->target_soc;
		}
	} else {
		v->soc -= soc_delta(v, cfg->drive_kw, dt_ms);
	}
	v->soc = clamp_soc(v->soc);
}

/* Rare availability flips with exponential holding times whose means give
 * the long-run share cfg->availability over a cfg->cycle_hours cycle. */
static void maybe_flip(struct sim_vehicle *v, const struct sim_model_cfg *cfg, struct sim_rng *r,
                       int64_t dt_ms)
{
	double mean_h;

	if (v->available) {
		if (cfg->availability >= 1.0)
			return;
		mean_h = cfg->cycle_hours * cfg->availability;
	} else {
		if (cfg->availability <= 0.0)
			return;
		mean_h = cfg->cycle_hours * (1.0 - cfg->availability);
	}
	if (mean_h <= 0.0 || sim_rng_uniform(r) < 1.0 - exp(-(double)dt_ms / (mean_h * 3600000.0)))
		v->available = !v->available;
}

void sim_vehicle_advance(struct sim_vehicle *v, const struct sim_model_cfg *cfg, struct sim_rng *r,
                         int64_t now_ms)
{
	int64_t t = v->updated_ms;

	if (now_ms <= t)
		return;
	if (v->dispatch_id[0]) {
		int64_t end = now_ms < v->dispatch_until_ms ? now_ms : v->dispatch_until_ms;
		if (end > t) {
			v->soc = clamp_soc(v->soc - soc_delta(v, v->dispatch_kw, end - t));
			t = end;
		}
		if (t >= v->dispatch_until_ms) {
			v->dispatch_id[0] = '\0';
			v->signal_type[0] = '\0';
			v->dispatch_kw = 0.0;
		}
	}
	if (now_ms > t) {
		drift_idle(v, cfg, now_ms - t);
		if (!v->dispatch_id[0])
			maybe_flip(v, cfg, r, now_ms - v->updated_ms);
	}
	v->updated_ms = now_ms;
}

enum sim_ack sim_vehicle_decide(const struct sim_vehicle *v, const struct sim_model_cfg *cfg,
                                struct sim_rng *r, const char **reason)
{
	double u;

	*reason = "";
	if (v->force_silent)
		return SIM_ACK_SILENT;
	if (v->force_reject) {
		*reason = "user_override";
		return SIM_ACK_REJECT;
	}
	u = sim_rng_uniform(r);
	if (u < cfg->silent_rate)
		return SIM_ACK_SILENT;
	if (u < cfg->silent_rate + cfg->reject_rate) {
		*reason = v->soc < LOW_SOC_REASON ? "soc_too_low" : "user_override";
		return SIM_ACK_REJECT;
	}
	return SIM_ACK_ACCEPT;
}

void sim_vehicle_apply(struct sim_vehicle *v, const struct sim_command *c, int64_t now_ms)
{
	if (c->power_kw <= 0.0) {
		v->dispatch_id[0] = '\0';
		v->signal_type[0] = '\0';
		v->dispatch_kw = 0.0;
		return;
	}
	snprintf(v->dispatch_id, sizeof(v->dispatch_id), "%s", c->dispatch_id);
	snprintf(v->signal_type, sizeof(v->signal_type), "%s", c->signal_type);
	v->dispatch_kw = c->power_kw < v->max_power_kw ? c->power_kw : v->max_power_kw;
	v->dispatch_until_ms = now_ms + (int64_t)(c->duration_min * 60000.0);
}

int sim_command_parse(const char *payload, size_t len, struct sim_command *out)
{
	json_t *root, *j;
	const char *s;
	int rc = V2G_ERR_INVAL;

	memset(out, 0, sizeof(*out));
	root = v2g_json_loadb(payload, len, 0, NULL);
	if (!root || !json_is_object(root))
		goto out;
	j = json_object_get(root, "dispatch_id");
	s = json_string_value(j);
	if (!s || !*s || strlen(s) >= sizeof(out->dispatch_id))
		goto out;
	memcpy(out->dispatch_id, s, strlen(s) + 1);
	j = json_object_get(root, "power_kw");
	if (!json_is_number(j) || !isfinite(json_number_value(j)) || json_number_value(j) < 0.0)
		goto out;
	out->power_kw = json_number_value(j);
	j = json_object_get(root, "duration_min");
	out->duration_min =
	        json_is_number(j) && json_number_value(j) > 0.0 ? json_number_value(j) : 15.0;
	s = json_string_value(json_object_get(root, "signal_type"));
	if (s)
		snprintf(out->signal_type, sizeof(out->signal_type), "%s", s);
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* Current grid power: positive is delivered to the grid (the sign of
 * signals), negative is charging. */
static double current_power_kw(const struct sim_vehicle *v)
{
	if (v->dispatch_id[0])
		return v->soc > 0.0 ? v->dispatch_kw : 0.0;
	if (v->available && v->soc < v->target_soc)
		return -v->max_power_kw;
	return 0.0;
}

char *sim_vehicle_state_json(const struct sim_vehicle *v, int64_t ts_ms, const char *request_id)
{
	char ts[40];
	json_t *o;
	char *s;

	v2g_time_format(ts_ms, ts, sizeof(ts));
	o = json_pack("{s:f, s:f, s:b, s:i, s:f, s:s, s:s, s:s, s:s, s:f, s:f, s:s}", "soc",
	              round(v->soc * 100.0) / 100.0, "max_power_kw", v->max_power_kw, "available",
	              v->available, "priority", v->priority, "tariff", v->tariff, "segment",
	              v->segment, "fleet_id", v->fleet_id, "site", v->site, "cluster", v->cluster,
	              "battery_kwh", v->battery_kwh, "power_kw", current_power_kw(v), "ts", ts);
	if (!o)
		return NULL;
	if (request_id && json_object_set_new(o, "request_id", json_string(request_id)) != 0) {
		json_decref(o);
		return NULL;
	}
	s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(o);
	return s;
}

char *sim_ack_json(const char *dispatch_id, int accepted, const char *reason)
{
	json_t *o = json_pack("{s:s, s:b, s:s}", "dispatch_id", dispatch_id, "accepted", accepted,
	                      "reason", reason ? reason : "");
	char *s;

	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}
