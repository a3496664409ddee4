#include "select.h"

#include <stdlib.h>
#include <string.h>

/* Power below this is treated as met (floating-point dust). */
#define KW_EPS 1e-9

static int cmp_pref(const void *a, const void *b)
{
	const struct disp_cand *x = a, *y = b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->soc != y->soc)
		return x->soc > y->soc ? -1 : 1;
	if (x->tariff != y->tariff)
		return x->tariff < y->tariff ? -1 : 1;
	return strcmp(x->id, y->id);
}

void disp_rank(struct disp_cand *c, size_t n)
{
	qsort(c, n, sizeof(*c), cmp_pref);
}

size_t disp_fill(const struct disp_cand *c, size_t n, double power, double *out_kw,
                 double *allocated)
{
	/* Candidates come from disp_fleet_eligible: max_kw > 0 for all of them. */
	double left = power;
	size_t used = 0;
	for (; used < n && left > KW_EPS; used++) {
		double kw = c[used].max_kw < left ? c[used].max_kw : left;
		out_kw[used] = kw;
		left -= kw;
	}
	*allocated = power - (left > 0 ? left : 0);
	return used;
}

size_t disp_filter(struct disp_cand *c, size_t n, double min_soc,
                   int (*skip)(void *arg, const char *id), void *arg)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].soc < min_soc || (skip && skip(arg, c[i].id)))
			continue;
		c[k++] = c[i];
	}
	return k;
}
