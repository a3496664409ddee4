/* InfluxDB 1.x telemetry writer: measurement vehicle_state, written in
 * batches from one dedicated thread with libcurl.
 *
 * Callers only queue points (never waits on the network). While InfluxDB is
 * down the points stay in a bounded queue (oldest dropped beyond queue_max)
 * and the writer retries with backoff; the database is created (CREATE
 * DATABASE) as soon as InfluxDB is reachable. */
#ifndef VGW_INFLUX_H
#define VGW_INFLUX_H

#include <stddef.h>

#include "payload.h"

struct vgw_influx;

struct vgw_influx_opts {
	const char *url; /* http://host:port, no trailing path */
	const char *database;
	int batch_size; /* points per write */
	int flush_ms;   /* at least one write per interval when points wait */
	int queue_max;  /* points kept while InfluxDB is down */
};

/* Starts the writer thread. Copies the options. */
int vgw_influx_start(struct vgw_influx **out, const struct vgw_influx_opts *o);

/* Queues one point per state. Thread-safe; never blocks on I/O. */
void vgw_influx_add(struct vgw_influx *w, const struct vgw_state *states, size_t n);

/* Writes what is queued for at most timeout_ms, stops the thread and frees
 * everything (points still queued then are dropped and counted). NULL ok. */
void vgw_influx_stop(struct vgw_influx *w, int timeout_ms);

/* Health probe (v2g_health_fn): GET /ping answers 204. arg is the writer. */
int vgw_influx_probe(void *arg, char *detail, size_t len);

/* Points currently queued (tests, metrics). */
size_t vgw_influx_queued(struct vgw_influx *w);

/* Escapes a tag key or value for line protocol: a backslash before commas,
 * equal signs and spaces. Other backslashes stay literal (as InfluxDB 1.x
 * stores them); one that ends the value or precedes , = space or another
 * backslash cannot be parsed by InfluxDB and is dropped. Writes at most
 * len-1 bytes plus NUL; returns the escaped length, or -1 if it does not
 * fit. */
int vgw_influx_escape_tag(const char *in, char *out, size_t len);

/* Formats one point, without newline:
 *   vehicle_state,fleet_id=..,segment=..,site=..,vehicle_id=.. soc=..,
 *   max_power_kw=..,available=true,power_kw=.. <ts_ms>
 * Empty tags are left out. Returns the length or -1 if buf is too small. */
int vgw_influx_line(const struct vgw_state *s, char *buf, size_t len);

#endif
