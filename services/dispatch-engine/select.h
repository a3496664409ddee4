/* Vehicle selection and power allocation, as the v1 dispatch document says:
 * prefer higher priority, then higher SoC, then lower tariff; give each
 * chosen vehicle up to its maximum power until the request is met. Pure
 * functions over candidate arrays. */
#ifndef DISP_SELECT_H
#define DISP_SELECT_H

#include <stddef.h>

#include "fleet.h"

/* Sorts c by preference (ties broken by id, so the order is deterministic). */
void disp_rank(struct disp_cand *c, size_t n);

/* Walks ranked candidates, giving each min(max_kw, what is still missing)
 * until power is met. Writes the power of candidate i to out_kw[i] for each
 * used candidate and returns how many (a prefix of c) were used; *allocated
 * receives the sum. out_kw has room for n. */
size_t disp_fill(const struct disp_cand *c, size_t n, double power, double *out_kw,
                 double *allocated);

/* Removes from c (keeping order) every candidate for which skip(arg, id) is
 * non-zero or whose SoC is below min_soc; returns the new count. */
size_t disp_filter(struct disp_cand *c, size_t n, double min_soc,
                   int (*skip)(void *arg, const char *id), void *arg);

#endif
