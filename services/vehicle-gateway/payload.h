/* MQTT payloads of the vehicle and site (DLM) contracts: pure decoding and
 * encoding, no I/O.
 *
 * Decoders take the raw bytes of one message and fill a caller-provided
 * struct (fixed-size strings, nothing to free). On rejection they return
 * V2G_ERR_TOOBIG / V2G_ERR_INVAL and describe the cause in a
 * struct vgw_payload_err: the metric reason and one line naming the field. */
#ifndef VGW_PAYLOAD_H
#define VGW_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define VGW_ID_MAX     64  /* vehicle id: 1..64 of [A-Za-z0-9_.:-] */
#define VGW_STR_MAX    128 /* segment, fleet_id, site, cluster, ids */
#define VGW_REASON_MAX 256 /* ack reason; longer ones are truncated */
#define VGW_STATUS_MAX 32  /* station meter status */

/* Why a message was dropped; the label of mqtt_messages_rejected_total. */
enum vgw_reject {
	VGW_REJECT_NONE = 0,
	VGW_REJECT_TOO_LARGE,
	VGW_REJECT_BAD_JSON,
	VGW_REJECT_BAD_FIELD,
	VGW_REJECT_BAD_TOPIC,
};

/* "too_large", "bad_json", "bad_field", "bad_topic" ("none"). */
const char *vgw_reject_name(enum vgw_reject r);

struct vgw_payload_err {
	enum vgw_reject reason;
	char msg[160]; /* "soc: must be a number between 0 and 100" */
};

/* A vehicle state (push) or telemetry reply (pull). */
struct vgw_state {
	char vehicle_id[VGW_ID_MAX + 1];
	double soc;          /* 0..100 */
	double max_power_kw; /* 0..1000 */
	int available;
	int32_t priority;              /* default 0 */
	double tariff;                 /* EUR/kWh, default 0 */
	char segment[VGW_STR_MAX + 1]; /* default "default" */
	char fleet_id[VGW_STR_MAX + 1];
	char site[VGW_STR_MAX + 1];
	char cluster[VGW_STR_MAX + 1];
	double battery_kwh;               /* 0 = unknown */
	double power_kw;                  /* -1000..1000, default 0 */
	int64_t ts_ms;                    /* payload ts, else receive time */
	char request_id[VGW_STR_MAX + 1]; /* pull replies; "" otherwise */
};

struct vgw_ack {
	char vehicle_id[VGW_ID_MAX + 1];
	char dispatch_id[VGW_STR_MAX + 1];
	int accepted;
	char reason[VGW_REASON_MAX + 1];
	int64_t received_ms;
};

enum vgw_topic_kind {
	VGW_TOPIC_OTHER = 0, /* not one of ours */
	VGW_TOPIC_STATE,
	VGW_TOPIC_ACK,
	VGW_TOPIC_TELEMETRY,
	VGW_TOPIC_STATION_METER, /* {site_prefix}{site}/station/{station}/meter */
	VGW_TOPIC_SITE_METER,    /* {site_prefix}{site}/meter */
};

/* Per-phase values; a phase not reported is NaN. */
struct vgw_phases {
	double a, b, c;
};

/* Optional station meter extensions (v2g-site-sim sends them; see
 * tools/site-sim/README.md): what a DLM would otherwise have to infer from
 * the meter's shape or be configured with.
 *   "kind"     "ac" | "dc"
 *   "phases"   1 | 3 (an integer)
 *   "max_kw"   the station's rating, a number in (0, 1000]
 *   "priority" 1..10 (an integer; the DLM's priority classes)
 * Absent or null: not reported. An invalid one (wrong type or value) is
 * IGNORED, not a reason to drop the meter: the power and currents a DLM
 * needs to keep the site safe are still good, and a charger's firmware
 * quirk in an advisory field must not blind the controller. The decoder
 * leaves the field "not reported", sets its bit in ignored and names it
 * in err->msg; the gateway counts it in
 * mqtt_meter_fields_ignored_total{field} and logs GW-METER-FIELD-IGNORED
 * (rate-limited). */
enum vgw_meter_ext {
	VGW_METER_EXT_KIND = 1u << 0,
	VGW_METER_EXT_PHASES = 1u << 1,
	VGW_METER_EXT_MAX_KW = 1u << 2,
	VGW_METER_EXT_PRIORITY = 1u << 3,
};
#define VGW_METER_EXT_MAX_KW_LIMIT 1000.0

/* "kind", "phases", "max_kw", "priority" for one bit, else NULL. */
const char *vgw_meter_ext_name(unsigned bit);

/* site/{site}/station/{station}/meter. */
struct vgw_station_meter {
	char site[VGW_ID_MAX + 1];
	char station[VGW_ID_MAX + 1];
	double power_kw;             /* -10000..10000 */
	int has_current;             /* current_a was an object (its phases may be NaN) */
	struct vgw_phases current_a; /* 0..5000 A */
	int has_voltage;
	struct vgw_phases voltage_v;     /* 0..1000 V */
	double temperature_c;            /* -50..200, NaN when not reported */
	double soc;                      /* 0..100, NaN when not reported */
	char status[VGW_STATUS_MAX + 1]; /* "" when not reported */
	int64_t received_ms;
	/* extensions (see enum vgw_meter_ext); "" / 0 = not reported */
	char kind[3];     /* "ac" | "dc" */
	int32_t phases;   /* 1 | 3 */
	double max_kw;    /* (0, 1000] */
	int32_t priority; /* 1..10 */
	unsigned ignored; /* enum vgw_meter_ext bits of invalid extensions */
};

/* site/{site}/meter. */
struct vgw_site_meter {
	char site[VGW_ID_MAX + 1];
	double power_kw;
	int has_current;
	struct vgw_phases current_a;
	int has_voltage;
	struct vgw_phases voltage_v;
	double power_factor; /* -1..1, NaN when not reported */
	double frequency_hz; /* 40..70, NaN when not reported */
	int64_t received_ms;
};

/* 1 if id[0..len) is a valid vehicle id. */
int vgw_payload_id_valid(const char *id, size_t len);

/* Matches topic (len bytes, not necessarily NUL-terminated) against
 * prefix + "{id}" + suffix. Returns 0 and copies the id into out, or
 * V2G_ERR_NOTFOUND when the topic does not have that shape, or
 * V2G_ERR_INVAL when it does but the id is not a valid vehicle id. */
int vgw_payload_topic_id(const char *topic, size_t len, const char *prefix, const char *suffix,
                         char out[VGW_ID_MAX + 1]);

/* Classifies an incoming topic: state (state_prefix{id}/state), ack
 * (ack_prefix{id}/ack) or, when resp_prefix is not NULL (pull mode), a
 * telemetry reply (resp_prefix{id}/telemetry). On a match the id is in out;
 * *bad_id is set when the shape matched but the id is invalid. */
enum vgw_topic_kind vgw_payload_classify(const char *topic, size_t len, const char *state_prefix,
                                         const char *ack_prefix, const char *resp_prefix,
                                         char out[VGW_ID_MAX + 1], int *bad_id);

/* Classifies a topic under site_prefix: a station meter
 * ({site}/station/{station}/meter, both ids in site and station) or a site
 * meter ({site}/meter, station set to ""). Site and station ids follow the
 * vehicle id rule; *bad_id is set when the shape matched but an id is
 * invalid. Returns VGW_TOPIC_OTHER for anything else. */
enum vgw_topic_kind vgw_payload_classify_meter(const char *topic, size_t len,
                                               const char *site_prefix, char site[VGW_ID_MAX + 1],
                                               char station[VGW_ID_MAX + 1], int *bad_id);

/* Decode a station or site meter payload into *out (every field but the
 * ids from the topic); received_ms = now_ms. Unknown members are ignored.
 * Returns 0, V2G_ERR_TOOBIG or V2G_ERR_INVAL with *err filled. A station
 * meter with invalid extensions is still decoded (0): out->ignored has
 * their bits and err->msg names the first ("phases: must be 1 or 3, got
 * 2"; "" when none was ignored). */
int vgw_payload_decode_station_meter(const void *payload, size_t len, size_t max_len,
                                     int64_t now_ms, struct vgw_station_meter *out,
                                     struct vgw_payload_err *err);
int vgw_payload_decode_site_meter(const void *payload, size_t len, size_t max_len, int64_t now_ms,
                                  struct vgw_site_meter *out, struct vgw_payload_err *err);

/* Decodes a state or telemetry payload into *out (every field but
 * vehicle_id). max_len is mqtt.max_payload_bytes; now_ms the receive time,
 * used when ts is absent. Returns 0, V2G_ERR_TOOBIG or V2G_ERR_INVAL. */
int vgw_payload_decode_state(const void *payload, size_t len, size_t max_len, int64_t now_ms,
                             struct vgw_state *out, struct vgw_payload_err *err);

/* Decodes an ack payload into *out (every field but vehicle_id);
 * received_ms = now_ms. Same returns as vgw_payload_decode_state. */
int vgw_payload_decode_ack(const void *payload, size_t len, size_t max_len, int64_t now_ms,
                           struct vgw_ack *out, struct vgw_payload_err *err);

/* "FCR", "AFRR", "LOAD_SHEDDING" for SignalType 0..2, else NULL. */
const char *vgw_signal_type_name(int type);

/* Writes v as the shortest JSON number that reads back as v. Returns the
 * length, or -1 if v is not finite or buf is too small. */
int vgw_payload_number(double v, char *buf, size_t len);

/* Command encoding, split so that a batch of 10k commands costs one JSON
 * object build plus one small formatting step per vehicle:
 *   vgw_cmd_enc_init(&e, ...);  vgw_cmd_enc_command(&e, kw, buf, ...);
 *   vgw_cmd_enc_fini(&e);
 * The result is {"dispatch_id","signal_type","duration_min","issued_at",
 * "power_kw"}. */
struct vgw_cmd_enc {
	char *prefix; /* the object without its closing brace; owned */
	size_t prefix_len;
};

/* Returns 0, V2G_ERR_INVAL (unknown signal type, empty dispatch id) or
 * V2G_ERR_NOMEM. */
int vgw_cmd_enc_init(struct vgw_cmd_enc *e, const char *dispatch_id, int signal_type,
                     unsigned duration_min, int64_t issued_at_ms);
/* Writes one command payload into buf (NUL-terminated); returns its length,
 * or -1 when power_kw is not finite or buf is too small. */
int vgw_cmd_enc_command(const struct vgw_cmd_enc *e, double power_kw, char *buf, size_t len);
void vgw_cmd_enc_fini(struct vgw_cmd_enc *e); /* safe on a zeroed struct */

/* Why a CommandBatch is too late to publish (vgw_command_batch_expired). */
enum vgw_cmd_expiry {
	VGW_CMD_FRESH = 0,    /* publish it */
	VGW_CMD_TOO_OLD,      /* issued more than max_age_ms ago */
	VGW_CMD_SIGNAL_ENDED, /* issued_at_ms + duration_min minutes <= now_ms */
};

/* Decides whether a CommandBatch the engine issued at issued_at_ms (its
 * wall clock) for a signal of duration_min minutes may still go to the
 * vehicles at now_ms: a batch that waited out a gateway outage in the bus
 * buffer belongs to a dispatch the engine has long given up on. The age
 * check comes first. issued_at_ms <= 0 is unknown: fresh; duration_min 0 is
 * unknown: no end check. A batch issued in the future (clocks a little
 * apart) is fresh. No overflow for any input. */
enum vgw_cmd_expiry vgw_command_batch_expired(int64_t issued_at_ms, uint32_t duration_min,
                                              int64_t now_ms, int64_t max_age_ms);

/* Writes the setpoint payload {"power_kw":..,"phase_currents_a":{"A":..,
 * "B":..,"C":..}} into buf, NUL-terminated. phase_currents NULL (DC) omits
 * phase_currents_a; a NaN phase is omitted. Returns the length, or -1 when
 * power_kw is not a finite number in -10000..10000, a phase current is
 * not NaN and not in 0..5000, or buf is too small. */
int vgw_payload_setpoint(double power_kw, const struct vgw_phases *phase_currents, char *buf,
                         size_t len);

/* {"request_id":"<id>"}; the caller frees the string with free(). */
char *vgw_payload_pull_request(const char *request_id);

#endif
