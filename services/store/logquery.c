#include "logquery.h"

#include <stdio.h>
#include <string.h>

#include "v2g/err.h"

#define VEHICLE_ID_MAX 256

/* Adds a text parameter and returns its number ($n). */
static int add_param(struct store_logq *o, const char *value)
{
	o->values[o->nparams] = value;
	return ++o->nparams;
}

static int add_ms(struct store_logq *o, int64_t ms)
{
	int i = o->nparams;
	store_ms_to_pg(ms, o->text[i], STORE_TEXT_MAX);
	return add_param(o, o->text[i]);
}

int store_logq_build(const V2g__V1__LogQuery *q, size_t max_allocations, struct store_logq *o,
                     char *err, size_t len)
{
	char where[512] = "true", veh_join[64] = "";
	size_t w = strlen(where);
	char probe[STORE_TEXT_MAX];

	memset(o, 0, sizeof *o);
	if (q->start_ms < 0 || store_ms_to_pg(q->start_ms, probe, sizeof probe)) {
		snprintf(err, len, "start_ms: out of range");
		return V2G_ERR_INVAL;
	}
	if (q->end_ms < 0 || store_ms_to_pg(q->end_ms, probe, sizeof probe)) {
		snprintf(err, len, "end_ms: out of range");
		return V2G_ERR_INVAL;
	}
	if (q->signal_type < -1 || q->signal_type > 2) {
		snprintf(err, len, "signal_type: must be -1 (any) or 0..2, got %d",
		         (int)q->signal_type);
		return V2G_ERR_INVAL;
	}
	if (strlen(q->vehicle_id) > VEHICLE_ID_MAX) {
		snprintf(err, len, "vehicle_id: longer than %d bytes", VEHICLE_ID_MAX);
		return V2G_ERR_INVAL;
	}
	o->limit = q->limit == 0                    ? STORE_LOG_LIMIT_DEFAULT
	           : q->limit > STORE_LOG_LIMIT_MAX ? STORE_LOG_LIMIT_MAX
	                                            : (int)q->limit;

	if (q->start_ms > 0)
		w += (size_t)snprintf(where + w, sizeof where - w,
		                      " AND d.started_at >= $%d::timestamptz",
		                      add_ms(o, q->start_ms));
	if (q->end_ms > 0)
		w += (size_t)snprintf(where + w, sizeof where - w,
		                      " AND d.started_at < $%d::timestamptz", add_ms(o, q->end_ms));
	if (q->signal_type >= 0) {
		int i = o->nparams;
		snprintf(o->text[i], STORE_TEXT_MAX, "%d", (int)q->signal_type);
		w += (size_t)snprintf(where + w, sizeof where - w,
		                      " AND d.signal_type = $%d::smallint",
		                      add_param(o, o->text[i]));
	}
	if (q->vehicle_id[0]) {
		int n = add_param(o, q->vehicle_id);
		o->by_vehicle = 1;
		w += (size_t)snprintf(
		        where + w, sizeof where - w,
		        " AND d.dispatch_id IN (SELECT va.dispatch_id FROM allocations va"
		        " WHERE va.vehicle_id = $%d)",
		        n);
		snprintf(veh_join, sizeof veh_join, " AND a.vehicle_id = $%d", n);
	}
	int i = o->nparams;
	snprintf(o->text[i], STORE_TEXT_MAX, "%d", o->limit);
	int lim = add_param(o, o->text[i]);

	snprintf(o->records_sql, sizeof o->records_sql,
	         "SELECT d.dispatch_id, d.signal_id, d.signal_type, d.target_power_kw,"
	         " d.allocated_power_kw, d.acked_power_kw, d.status, d.started_at, d.completed_at,"
	         " d.dispatcher FROM dispatches d WHERE %s"
	         " ORDER BY d.started_at DESC, d.dispatch_id DESC LIMIT $%d::int",
	         where, lim);
	snprintf(o->allocs_sql, sizeof o->allocs_sql,
	         "SELECT a.dispatch_id, a.vehicle_id, a.round, a.power_kw, a.acked, a.rejected,"
	         " a.reallocated, a.reason, a.acked_at FROM (SELECT d.dispatch_id, d.started_at"
	         " FROM dispatches d WHERE %s ORDER BY d.started_at DESC, d.dispatch_id DESC"
	         " LIMIT $%d::int) r JOIN allocations a ON a.dispatch_id = r.dispatch_id%s"
	         " ORDER BY r.started_at DESC, r.dispatch_id DESC, a.round, a.vehicle_id LIMIT %zu",
	         where, lim, veh_join, max_allocations + 1);
	return 0;
}
