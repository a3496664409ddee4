#include "v2g/json.h"

#include <stdio.h>
#include <string.h>

/* Offset of the bracket that nests buf deeper than limit (brackets inside
 * strings do not count), or len when none does. */
static size_t too_deep_at(const char *buf, size_t len, int limit)
{
	int d = 0, in_str = 0, esc = 0;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++d > limit)
				return i;
		} else if ((c == ']' || c == '}') && d > 0) {
			d--;
		}
	}
	return len;
}

json_t *v2g_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err)
{
	size_t at = too_deep_at(buf, len, V2G_JSON_MAX_DEPTH);
	if (at < len) {
		if (err) {
			memset(err, 0, sizeof(*err));
			err->line = 1;
			err->column = 1;
			for (size_t i = 0; i < at; i++) {
				if (buf[i] == '\n') {
					err->line++;
					err->column = 1;
				} else {
					err->column++;
				}
			}
			err->position = (int)at;
			snprintf(err->text, sizeof(err->text), "nested deeper than %d levels",
			         V2G_JSON_MAX_DEPTH);
		}
		return NULL;
	}
	return json_loadb(buf, len, flags, err);
}
