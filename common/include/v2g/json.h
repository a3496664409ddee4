/* JSON from the outside world (HTTP bodies, MQTT payloads) through jansson,
 * with a nesting limit checked before parsing: jansson parses recursively,
 * and a small body nested thousands deep overflows a worker thread's stack
 * (civetweb's are small). */
#ifndef V2G_JSON_H
#define V2G_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Deepest nesting of objects and arrays our payloads need, with room. */
#define V2G_JSON_MAX_DEPTH 32

/* json_loadb(buf, len, flags, err), but refuses (NULL, err->text set) a
 * document nested deeper than V2G_JSON_MAX_DEPTH. err may be NULL. The
 * caller owns the result (json_decref). */
json_t *v2g_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err);

#endif
