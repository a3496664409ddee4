/* Validation and normalisation of flexibility signals as received (JSON per
 * the REST contract). Pure functions: no I/O. */
#ifndef INGEST_SIGNAL_H
#define INGEST_SIGNAL_H

#include <stddef.h>
#include <stdint.h>

struct ingest_limits {
	double max_power_kw;
	int max_duration_min;
	int default_duration_min;
};

/* A normalised signal. */
struct ingest_signal {
	int type;             /* 0 FCR, 1 AFRR, 2 LOAD_SHEDDING */
	double power_kw;      /* > 0 */
	int duration_min;     /* 1..max */
	int64_t timestamp_ms; /* issued at; now when absent */
	double market_price;
	int has_market_price;
};

/* Parses json (len bytes, not necessarily NUL-terminated). On success
 * returns 0 and fills *out; otherwise V2G_ERR_INVAL and writes
 * "field: reason" into err (e.g. "power_kw: must be a number > 0"). now_ms
 * fills an absent timestamp. */
int ingest_signal_parse(const char *json, size_t len, const struct ingest_limits *lim,
                        int64_t now_ms, struct ingest_signal *out, char *err, size_t errlen);

#endif
