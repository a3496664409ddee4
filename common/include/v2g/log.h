/* Logging: one line per event on stderr, a stable message id per event
 * ("DISP-NO-VEHICLES"), text or JSON lines (logging.format = "json"). */
#ifndef V2G_LOG_H
#define V2G_LOG_H

enum v2g_log_level { V2G_LOG_DEBUG, V2G_LOG_INFO, V2G_LOG_WARN, V2G_LOG_ERROR };

/* Sets the service name and output format; safe to call again. */
void v2g_log_init(const char *service, enum v2g_log_level level, int json);

/* "debug", "info", "warn"/"warning", "error" -> level. Returns 0 or V2G_ERR_INVAL. */
int v2g_log_level_parse(const char *s, enum v2g_log_level *out);

/* Thread-safe. msgid is a stable identifier an operator can grep for. */
void v2g_log(enum v2g_log_level level, const char *msgid, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define v2g_debug(id, ...) v2g_log(V2G_LOG_DEBUG, id, __VA_ARGS__)
#define v2g_info(id, ...)  v2g_log(V2G_LOG_INFO, id, __VA_ARGS__)
#define v2g_warn(id, ...)  v2g_log(V2G_LOG_WARN, id, __VA_ARGS__)
#define v2g_error(id, ...) v2g_log(V2G_LOG_ERROR, id, __VA_ARGS__)

#endif
