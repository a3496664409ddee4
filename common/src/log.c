#include "v2g/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "v2g/err.h"
#include "v2g/timeutil.h"

static char log_service[64] = "v2g";
static enum v2g_log_level log_min = V2G_LOG_INFO;
static int log_json;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void v2g_log_init(const char *service, enum v2g_log_level level, int json)
{
	pthread_mutex_lock(&log_mu);
	snprintf(log_service, sizeof(log_service), "%s", service ? service : "v2g");
	log_min = level;
	log_json = json;
	pthread_mutex_unlock(&log_mu);
}

int v2g_log_level_parse(const char *s, enum v2g_log_level *out)
{
	if (!s)
		return V2G_ERR_INVAL;
	if (!strcasecmp(s, "warning")) {
		*out = V2G_LOG_WARN;
		return V2G_OK;
	}
	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(s, level_names[i])) {
			*out = (enum v2g_log_level)i;
			return V2G_OK;
		}
	}
	return V2G_ERR_INVAL;
}

void v2g_log(enum v2g_log_level level, const char *msgid, const char *fmt, ...)
{
	char msg[2048], ts[40];
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	v2g_time_format(v2g_now_ms(), ts, sizeof(ts));

	pthread_mutex_lock(&log_mu);
	if (log_json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "ts", ts, "level",
		                      level_names[level], "service", log_service, "msg_id",
		                      msgid ? msgid : "", "msg", msg);
		char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (line) {
			fprintf(stderr, "%s\n", line);
			free(line);
		}
		json_decref(o);
	} else {
		fprintf(stderr, "%s %-5s %s %s %s\n", ts, level_names[level], log_service,
		        msgid ? msgid : "-", msg);
	}
	fflush(stderr);
	pthread_mutex_unlock(&log_mu);
}
