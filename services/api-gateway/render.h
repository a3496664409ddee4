/* Bus replies -> REST JSON (jansson). Pure: no I/O, no global state. Times
 * are RFC 3339 UTC with milliseconds; a time of 0 renders as null; numbers
 * that are not finite render as null. */
#ifndef API_RENDER_H
#define API_RENDER_H

#include "v2g/v1/dispatch.pb-c.h"
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

#endif
