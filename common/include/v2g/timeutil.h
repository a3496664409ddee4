/* Wall-clock helpers. All times are UTC milliseconds since the epoch. */
#ifndef V2G_TIMEUTIL_H
#define V2G_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t v2g_now_ms(void);  /* CLOCK_REALTIME */
int64_t v2g_mono_ms(void); /* CLOCK_MONOTONIC, for timeouts */
double v2g_mono_s(void);   /* CLOCK_MONOTONIC, seconds, ns resolution */

/* Parses RFC 3339 ("2026-11-21T11:32:24Z", "…24.123+01:00"). Returns 0 or
 * V2G_ERR_INVAL. */
int v2g_time_parse(const char *s, int64_t *ms);

/* Formats as "2026-11-21T11:32:24.123Z" into buf (at least 32 bytes). */
void v2g_time_format(int64_t ms, char *buf, size_t len);

/* Random RFC 4122 v4 UUID, 36 chars + NUL. */
void v2g_uuid(char out[37]);

#endif
