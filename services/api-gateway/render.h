/* Bus replies -> REST JSON (jansson). Pure: no I/O, no global state. Times
 * are RFC 3339 UTC with milliseconds; a time of 0 renders as null; numbers
 * that are not finite render as null. */
#ifndef API_RENDER_H
#define API_RENDER_H

#include "v2g/v1/audit.pb-c.h"
#include "v2g/v1/dispatch.pb-c.h"
#include "v2g/v1/dlm.pb-c.h"
#include "v2g/v1/query.pb-c.h"
#include "v2g/v1/signal.pb-c.h"

/* "FCR", "AFRR", "LOAD_SHEDDING" for indexes 0..2, else NULL. */
const char *api_signal_type_name(int type);
/* "pending", "complete", "partial", "failed", else NULL. */
const char *api_status_name(int status);

/* Each returns compact JSON in a heap string the caller frees with free(),
 * or NULL when out of memory. The message is borrowed. */

/* {"dispatch_id","signal":{…},"status",…,"allocations":[…],"started_at",
 * "completed_at"} — completed_at is null while pending. */
char *api_render_dispatch(const V2g__V1__DispatchDecision *d);
/* [{"dispatch_id","signal_id","signal_type",…,"allocations":[…]}, …] */
char *api_render_logs(const V2g__V1__LogReply *r);
/* {"signal_id","dispatch_id"} */
char *api_render_submit(const V2g__V1__SubmitSignalReply *r);

/* The store's audit answers. Each returns 0 with *out a heap string the
 * caller frees, V2G_ERR_PROTO when the reply is not what was asked for (an
 * event that is not a JSON object; stats for other than days days, or
 * with more categories than we know), or V2G_ERR_NOMEM. */

/* {"count":n,"events":[event, …]}: each events_json parsed and kept as
 * the store has it (the v2g_audit_events_to_json form). */
int api_render_audit_logs(const V2g__V1__AuditReply *r, char **out);
/* The v2g_audit_stats_to_json form: {"days","from","to","total",
 * "failures","by_category":{…},"by_day":{…}}. */
int api_render_audit_stats(const V2g__V1__AuditStatsReply *r, unsigned days, char **out);

/* 0 when a site-dlm reply may be relayed as is: status 200..599 and a
 * body that is a JSON object; else V2G_ERR_PROTO. */
int api_dlm_reply_check(const V2g__V1__DlmReply *r);

#endif
