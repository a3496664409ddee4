/* The gateway's configuration table and the checks it cannot express. */
#include "settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "v2g/err.h"

#define S(f) offsetof(struct vgw_settings, f)

const struct v2g_cfg_item vgw_settings_items[] = {
	{ "mqtt.broker", V2G_CFG_STRING, S(broker), 0, 1024, "tcp://127.0.0.1:1883", NULL,
	  "broker URI, tcp://host:port or ssl://host:port" },
	{ "mqtt.client_id", V2G_CFG_STRING, S(client_id), 0, 128, "v2g-gateway", NULL,
	  "MQTT client id (unique per gateway instance)" },
	{ "mqtt.username", V2G_CFG_STRING, S(username), 0, 256, "", NULL, "MQTT user name" },
	{ "mqtt.password", V2G_CFG_STRING, S(password), 0, 256, "", NULL, "MQTT password" },
	{ "mqtt.ca_bundle", V2G_CFG_STRING, S(ca_bundle), 0, 4096, "", NULL,
	  "PEM CA file for ssl:// (empty: system trust store)" },
	{ "mqtt.client_cert", V2G_CFG_STRING, S(client_cert), 0, 4096, "", NULL,
	  "PEM client certificate for mutual TLS" },
	{ "mqtt.client_key", V2G_CFG_STRING, S(client_key), 0, 4096, "", NULL,
	  "PEM client key for mutual TLS" },
	{ "mqtt.keepalive_seconds", V2G_CFG_INT, S(keepalive_seconds), 5, 3600, "30", NULL,
	  "MQTT keepalive" },
	{ "mqtt.qos_command", V2G_CFG_INT, S(qos_command), 0, 2, "1", NULL,
	  "QoS of vehicle commands" },
	{ "mqtt.qos_ack", V2G_CFG_INT, S(qos_ack), 0, 2, "1", NULL, "QoS of the ack subscription" },
	{ "mqtt.lwt_topic", V2G_CFG_STRING, S(lwt_topic), 0, 256, "v2g/lwt", NULL,
	  "retained online/offline topic (last will)" },
	{ "mqtt.state_topic_prefix", V2G_CFG_STRING, S(state_prefix), 0, 256, "vehicle/", NULL,
	  "state topics are <prefix>{id}/state" },
	{ "mqtt.command_topic_prefix", V2G_CFG_STRING, S(command_prefix), 0, 256, "vehicle/", NULL,
	  "command topics are <prefix>{id}/command" },
	{ "mqtt.ack_topic_prefix", V2G_CFG_STRING, S(ack_prefix), 0, 256, "vehicle/", NULL,
	  "ack topics are <prefix>{id}/ack" },
	{ "mqtt.site_topic_prefix", V2G_CFG_STRING, S(site_prefix), 0, 256, "site/", NULL,
	  "site DLM topics: <prefix>{site}/meter, <prefix>{site}/station/{station}/meter "
	  "and .../setpoint" },
	{ "mqtt.max_payload_bytes", V2G_CFG_INT, S(max_payload_bytes), 64, 1048576, "16384", NULL,
	  "larger payloads are dropped and counted" },
	{ "mqtt.reconnect_min_ms", V2G_CFG_INT, S(reconnect_min_ms), 10, 600000, "200", NULL,
	  "first reconnect delay" },
	{ "mqtt.reconnect_max_ms", V2G_CFG_INT, S(reconnect_max_ms), 10, 600000, "10000", NULL,
	  "reconnect delay cap (the delay doubles up to it)" },
	{ "telemetry.mode", V2G_CFG_STRING, S(mode), 0, 8, "push", NULL, "push | pull" },
	{ "telemetry.request_topic", V2G_CFG_STRING, S(request_topic), 0, 256,
	  "fleet/telemetry/request", NULL, "pull mode: request broadcast topic" },
	{ "telemetry.response_topic_prefix", V2G_CFG_STRING, S(response_prefix), 0, 256, "vehicle/",
	  NULL, "pull mode: replies on <prefix>{id}/telemetry" },
	{ "telemetry.pull_interval_seconds", V2G_CFG_INT, S(pull_interval_seconds), 1, 86400, "10",
	  NULL, "pull mode: request period" },
	{ "telemetry.batch_ms", V2G_CFG_INT, S(batch_ms), 1, 60000, "50", NULL,
	  "bus batch window for fresh states" },
	{ "influxdb.url", V2G_CFG_STRING, S(influx_url), 0, 1024, "http://127.0.0.1:8086", NULL,
	  "InfluxDB 1.x base URL" },
	{ "influxdb.database", V2G_CFG_STRING, S(influx_db), 0, 128, "v2g", NULL,
	  "InfluxDB database (created when missing)" },
	{ "influxdb.batch_size", V2G_CFG_INT, S(influx_batch_size), 1, 100000, "5000", NULL,
	  "points per write" },
	{ "influxdb.flush_ms", V2G_CFG_INT, S(influx_flush_ms), 10, 600000, "1000", NULL,
	  "at least one write per interval" },
	{ "influxdb.queue_max", V2G_CFG_INT, S(influx_queue_max), 1, 10000000, "200000", NULL,
	  "points buffered while InfluxDB is down (oldest dropped beyond)" },
	{ "gateway.command_max_age_ms", V2G_CFG_INT, S(command_max_age_ms), 1000, 3600000, "30000",
	  NULL,
	  "a CommandBatch issued longer ago than this (or for a signal that has ended) is not "
	  "published but reported failed" },
};

const size_t vgw_settings_n = sizeof(vgw_settings_items) / sizeof(vgw_settings_items[0]);

static int bad(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return V2G_ERR_CONFIG;
}

static int starts_with(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* A topic (prefix) we publish or subscribe under: non-empty, no wildcard. */
static int check_topic(const char *path, const char *v, char *err, size_t errlen)
{
	if (!v[0])
		return bad(err, errlen, "%s: must not be empty", path);
	if (strpbrk(v, "+#"))
		return bad(err, errlen, "%s: must not contain MQTT wildcards (+ #), got \"%s\"",
		           path, v);
	return 0;
}

int vgw_settings_check(struct vgw_settings *s, char *err, size_t errlen)
{
	int tls;
	int rc;

	if (starts_with(s->broker, "tcp://") || starts_with(s->broker, "mqtt://"))
		tls = 0;
	else if (starts_with(s->broker, "ssl://") || starts_with(s->broker, "mqtts://"))
		tls = 1;
	else
		return bad(err, errlen, "mqtt.broker: must start with tcp:// or ssl://, got \"%s\"",
		           s->broker);
	if (strlen(strstr(s->broker, "://") + 3) == 0)
		return bad(err, errlen, "mqtt.broker: no host in \"%s\"", s->broker);
	if (!s->client_id[0])
		return bad(err, errlen, "mqtt.client_id: must not be empty");
	if (!tls && (s->ca_bundle[0] || s->client_cert[0] || s->client_key[0]))
		return bad(err, errlen, "mqtt.ca_bundle: TLS files need an ssl:// broker");
	if (!s->client_cert[0] != !s->client_key[0])
		return bad(err, errlen, "mqtt.client_key: client_cert and client_key go together");
	if ((rc = check_topic("mqtt.lwt_topic", s->lwt_topic, err, errlen)) ||
	    (rc = check_topic("mqtt.state_topic_prefix", s->state_prefix, err, errlen)) ||
	    (rc = check_topic("mqtt.command_topic_prefix", s->command_prefix, err, errlen)) ||
	    (rc = check_topic("mqtt.ack_topic_prefix", s->ack_prefix, err, errlen)) ||
	    (rc = check_topic("mqtt.site_topic_prefix", s->site_prefix, err, errlen)) ||
	    (rc = check_topic("telemetry.request_topic", s->request_topic, err, errlen)) ||
	    (rc = check_topic("telemetry.response_topic_prefix", s->response_prefix, err, errlen)))
		return rc;
	if (s->reconnect_min_ms > s->reconnect_max_ms)
		return bad(err, errlen,
		           "mqtt.reconnect_min_ms: must not exceed mqtt.reconnect_max_ms (%d > %d)",
		           s->reconnect_min_ms, s->reconnect_max_ms);

	if (strcmp(s->mode, "push") == 0)
		s->pull = 0;
	else if (strcmp(s->mode, "pull") == 0)
		s->pull = 1;
	else
		return bad(err, errlen, "telemetry.mode: must be push or pull, got \"%s\"",
		           s->mode);

	if (!starts_with(s->influx_url, "http://") && !starts_with(s->influx_url, "https://"))
		return bad(err, errlen,
		           "influxdb.url: must start with http:// or https://, got \"%s\"",
		           s->influx_url);
	if (!s->influx_db[0])
		return bad(err, errlen, "influxdb.database: must not be empty");
	for (const char *p = s->influx_db; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			return bad(err, errlen,
			           "influxdb.database: no quotes, backslashes or control "
			           "characters");
	if (s->influx_batch_size > s->influx_queue_max)
		return bad(err, errlen,
		           "influxdb.batch_size: must not exceed influxdb.queue_max (%d > %d)",
		           s->influx_batch_size, s->influx_queue_max);
	return 0;
}
