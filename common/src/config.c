#include "v2g/config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "v2g/err.h"

void v2g_config_env_name(const char *path, char *buf, size_t len)
{
	size_t o = 0;
	if (len == 0)
		return;
	if (len > 2) {
		buf[o++] = 'K';
		buf[o++] = '_';
	}
	for (const char *p = path; *p && o + 1 < len; p++) {
		if (*p == '.') {
			if (o + 2 >= len)
				break;
			buf[o++] = '_';
			buf[o++] = '_';
		} else {
			buf[o++] = (char)toupper((unsigned char)*p);
		}
	}
	buf[o] = '\0';
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return V2G_ERR_CONFIG;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const t[] = { "1", "true", "yes", "on" };
	static const char *const f[] = { "0", "false", "no", "off" };
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, t[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(s, f[i])) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static int parse_number(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !isfinite(v))
		return -1;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -1;
	*out = v;
	return 0;
}

/* Stores a value given as text (environment or default). */
static int store_text(const struct v2g_cfg_item *it, const char *text, void *out,
                      const char *origin, char *err, size_t errlen)
{
	char *field = (char *)out + it->offset;
	double v;
	int b;

	switch (it->type) {
	case V2G_CFG_BOOL:
		if (parse_bool(text, &b))
			return fail(err, errlen, "%s: must be true or false, got \"%s\" (from %s)",
			            it->path, text, origin);
		*(int *)field = b;
		return 0;
	case V2G_CFG_INT:
	case V2G_CFG_DOUBLE:
		if (parse_number(text, &v))
			return fail(err, errlen, "%s: must be a number, got \"%s\" (from %s)",
			            it->path, text, origin);
		if (it->type == V2G_CFG_INT && v != floor(v))
			return fail(err, errlen, "%s: must be an integer, got \"%s\" (from %s)",
			            it->path, text, origin);
		if (v < it->min || v > it->max) {
			if (it->type == V2G_CFG_INT) /* in full: 3600000, not 3.6e+06 */
				return fail(err, errlen,
				            "%s: must be between %.0f and %.0f, got %s (from %s)",
				            it->path, it->min, it->max, text, origin);
			return fail(err, errlen, "%s: must be between %g and %g, got %s (from %s)",
			            it->path, it->min, it->max, text, origin);
		}
		if (it->type == V2G_CFG_INT)
			*(int *)field = (int)v;
		else
			*(double *)field = v;
		return 0;
	case V2G_CFG_STRING: {
		size_t max = it->max > 0 ? (size_t)it->max : 4096;
		if (strlen(text) > max)
			return fail(err, errlen, "%s: longer than %zu characters (from %s)",
			            it->path, max, origin);
		if (it->min >= 1 && *text == '\0')
			return fail(err, errlen, "%s: must not be empty (from %s)", it->path,
			            origin);
		if (it->min > 1 && strlen(text) < (size_t)it->min)
			return fail(err, errlen,
			            "%s: must be at least %g characters long (from %s)", it->path,
			            it->min, origin);
		char *copy = strdup(text);
		if (!copy)
			return fail(err, errlen, "%s: out of memory", it->path);
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}
	}
	return fail(err, errlen, "%s: unknown setting type", it->path);
}

/* Stores a value found in the libconfig file, checking its type. */
static int store_setting(const struct v2g_cfg_item *it, config_setting_t *s, void *out,
                         const char *file, char *err, size_t errlen)
{
	char text[64];
	int t = config_setting_type(s);
	char origin[512];
	snprintf(origin, sizeof(origin), "%s line %d", file, config_setting_source_line(s));

	switch (it->type) {
	case V2G_CFG_BOOL:
		if (t != CONFIG_TYPE_BOOL)
			return fail(err, errlen, "%s: must be true or false (%s)", it->path,
			            origin);
		return store_text(it, config_setting_get_bool(s) ? "true" : "false", out, origin,
		                  err, errlen);
	case V2G_CFG_INT:
	case V2G_CFG_DOUBLE:
		if (t == CONFIG_TYPE_INT)
			snprintf(text, sizeof(text), "%d", config_setting_get_int(s));
		else if (t == CONFIG_TYPE_INT64)
			snprintf(text, sizeof(text), "%lld", config_setting_get_int64(s));
		else if (t == CONFIG_TYPE_FLOAT)
			snprintf(text, sizeof(text), "%.17g", config_setting_get_float(s));
		else
			return fail(err, errlen, "%s: must be a number (%s)", it->path, origin);
		return store_text(it, text, out, origin, err, errlen);
	case V2G_CFG_STRING:
		if (t != CONFIG_TYPE_STRING)
			return fail(err, errlen, "%s: must be a string (%s)", it->path, origin);
		return store_text(it, config_setting_get_string(s), out, origin, err, errlen);
	}
	return fail(err, errlen, "%s: unknown setting type", it->path);
}

int v2g_config_load(const char *file, const struct v2g_cfg_item *items, size_t n, void *out,
                    char *err, size_t errlen)
{
	config_t cfg;
	int rc = 0;

	config_init(&cfg);
	if (file && config_read_file(&cfg, file) != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			rc = fail(err, errlen, "%s: cannot read the configuration file", file);
		else
			rc = fail(err, errlen, "%s:%d: %s", file, config_error_line(&cfg),
			          config_error_text(&cfg));
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct v2g_cfg_item *it = &items[i];
		char env[256];
		const char *v;

		v2g_config_env_name(it->path, env, sizeof(env));
		if ((v = getenv(env)) != NULL) {
			rc = store_text(it, v, out, env, err, errlen);
		} else if (it->env_alias && (v = getenv(it->env_alias)) != NULL) {
			rc = store_text(it, v, out, it->env_alias, err, errlen);
		} else {
			config_setting_t *s = file ? config_lookup(&cfg, it->path) : NULL;
			if (s)
				rc = store_setting(it, s, out, file, err, errlen);
			else if (it->def)
				rc = store_text(it, it->def, out, "default", err, errlen);
			else
				rc = fail(err, errlen,
				          "%s: required setting is missing (set it in the file or "
				          "%s)",
				          it->path, env);
		}
	}
out:
	config_destroy(&cfg);
	return rc;
}

void v2g_config_free(const struct v2g_cfg_item *items, size_t n, void *cfg)
{
	for (size_t i = 0; i < n; i++) {
		if (items[i].type == V2G_CFG_STRING) {
			char **f = (char **)((char *)cfg + items[i].offset);
			free(*f);
			*f = NULL;
		}
	}
}
