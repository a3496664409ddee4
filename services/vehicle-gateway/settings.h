/* The gateway's settings: groups mqtt, telemetry and influxdb of the config
 * file, and gateway.command_max_age_ms (gateway.health_port is read by
 * v2g_service_init). */
#ifndef VGW_SETTINGS_H
#define VGW_SETTINGS_H

#include <stddef.h>

#include "v2g/config.h"

struct vgw_settings {
	/* mqtt */
	char *broker;
	char *client_id;
	char *username;
	char *password;
	char *ca_bundle;
	char *client_cert;
	char *client_key;
	int keepalive_seconds;
	int qos_command;
	int qos_ack;
	char *lwt_topic;
	char *state_prefix;
	char *command_prefix;
	char *ack_prefix;
	char *site_prefix; /* site DLM: meters in, setpoints out */
	int max_payload_bytes;
	int reconnect_min_ms;
	int reconnect_max_ms;
	/* telemetry */
	char *mode;
	char *request_topic;
	char *response_prefix;
	int pull_interval_seconds;
	int batch_ms;
	/* influxdb */
	char *influx_url;
	char *influx_db;
	int influx_batch_size;
	int influx_flush_ms;
	int influx_queue_max;
	/* gateway */
	int command_max_age_ms; /* older CommandBatches are not published */
	/* derived by vgw_settings_check */
	int pull; /* telemetry.mode == "pull" */
};

extern const struct v2g_cfg_item vgw_settings_items[];
extern const size_t vgw_settings_n;

/* Checks what the table cannot express (mode is push|pull, broker scheme,
 * non-empty prefixes without wildcards, reconnect_min_ms <= max, URL
 * scheme, TLS files only with ssl://) and fills the derived fields. Returns 0
 * or V2G_ERR_CONFIG with one line naming the key in err. */
int vgw_settings_check(struct vgw_settings *s, char *err, size_t errlen);

#endif
