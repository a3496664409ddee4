/* An open-addressing map from string keys to uint32 values. Keys are
 * borrowed: the caller keeps them alive and unchanged while mapped (the
 * fleet and dispatch tables point into their own records). Not thread-safe. */
#ifndef DISP_STRMAP_H
#define DISP_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct disp_strmap {
	const char **keys;
	uint32_t *vals;
	size_t cap, len; /* cap is a power of two */
};

int disp_strmap_init(struct disp_strmap *m, size_t hint);
void disp_strmap_fini(struct disp_strmap *m); /* safe on zeroed */
/* Returns 1 and sets *val when found. */
int disp_strmap_get(const struct disp_strmap *m, const char *key, uint32_t *val);
/* Inserts or replaces; key is borrowed. 0 or V2G_ERR_NOMEM. */
int disp_strmap_put(struct disp_strmap *m, const char *key, uint32_t val);

#endif
