/* Configuration: one libconfig file plus environment overrides.
 *
 * A service describes its settings as a table (path, type, bounds, default,
 * field offset). For each item the value comes from, in order: the
 * environment variable K_<GROUP>__<KEY> (the path upper-cased with "." ->
 * "__", e.g. dispatch.ack_timeout_seconds -> K_DISPATCH__ACK_TIMEOUT_SECONDS),
 * the item's alias variable if any (e.g. MAX_GRID_CAPACITY_KW), the file,
 * then the default. Every value is type- and range-checked; the first bad one
 * fails the load with one line naming the key. */
#ifndef V2G_CONFIG_H
#define V2G_CONFIG_H

#include <stddef.h>

enum v2g_cfg_type {
	V2G_CFG_INT,    /* int field; bounds min..max */
	V2G_CFG_DOUBLE, /* double field; bounds min..max */
	V2G_CFG_BOOL,   /* int field, 0 or 1; "true/false/yes/no/1/0" in env */
	V2G_CFG_STRING, /* char * field, heap copy; length min..max (max 0: 4096) */
};

struct v2g_cfg_item {
	const char *path; /* "group.key" or "group.sub.key" */
	enum v2g_cfg_type type;
	size_t offset;         /* offsetof(struct your_cfg, field) */
	double min, max;       /* numeric bounds (inclusive) */
	const char *def;       /* default, written as in the environment */
	const char *env_alias; /* extra environment name, or NULL */
	const char *help;      /* one line, shown by --help-config */
};

/* Loads every item of the table into *out. file may be NULL (defaults and
 * environment only); a file that is given but unreadable or unparsable is an
 * error. On error returns V2G_ERR_CONFIG and writes one line into err
 * ("dispatch.ack_timeout_seconds: must be between 1 and 3600, got 0 (from
 * K_DISPATCH__ACK_TIMEOUT_SECONDS)"). Strings already loaded stay owned by
 * *out either way: release with v2g_config_free(). */
int v2g_config_load(const char *file, const struct v2g_cfg_item *items, size_t n, void *out,
                    char *err, size_t errlen);

/* Frees the strings of a table loaded into cfg; safe on a zeroed struct. */
void v2g_config_free(const struct v2g_cfg_item *items, size_t n, void *cfg);

/* Writes the environment name of a path ("K_DISPATCH__ACK_TIMEOUT_SECONDS"). */
void v2g_config_env_name(const char *path, char *buf, size_t len);

#endif
