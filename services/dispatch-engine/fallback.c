/* Fallbacks after the ack timeout (strategy.h): the residual of a dispatch
 * spread over the vehicles that acknowledged.
 *
 * Both spreading fallbacks are a capped proportional split: vehicle i has
 * room r_i = cap_kw - kw and weight w_i (r_i x SoC, or r_i x avail_prob x
 * (1 - degradation)); it receives min(r_i, a * w_i) with the one factor a
 * that places the residual. That is the fixed point of "split in
 * proportion, cap, give what the capped ones could not take to the others,
 * repeat", computed at once: sorted by r_i / w_i, the vehicles that cap
 * are a prefix. */
#include "strategy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The documents' BalancedFallback skips vehicles below this SoC (%). */
#define BALANCED_MIN_SOC 30.0
#define KW_EPS           1e-9

static const char *const fallback_names[] = { "noop", "balanced", "probabilistic" };

const char *disp_fallback_name(enum disp_fallback f)
{
	return (unsigned)f < sizeof(fallback_names) / sizeof(fallback_names[0]) ? fallback_names[f]
	                                                                        : "unknown";
}

int disp_fallback_parse(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < sizeof(fallback_names) / sizeof(fallback_names[0]); i++)
		if (!strcmp(name, fallback_names[i]))
			return (int)i;
	return -1;
}

struct share {
	double ratio; /* room / weight: the factor at which the vehicle caps */
	double room, weight;
	size_t i;
};

static int cmp_ratio(const void *a, const void *b)
{
	const struct share *x = a, *y = b;
	if (x->ratio != y->ratio)
		return x->ratio < y->ratio ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

static double clamp01(double v)
{
	return v > 0 ? (v < 1 ? v : 1) : 0;
}

double disp_fallback_apply(enum disp_fallback f, const struct disp_held *h, size_t n,
                           double residual_kw, double *extra_kw)
{
	for (size_t i = 0; i < n; i++)
		extra_kw[i] = 0;
	if (f != DISP_FB_BALANCED && f != DISP_FB_PROBABILISTIC)
		return 0;
	if (!(residual_kw > KW_EPS) || !n)
		return 0;
	struct share *s = malloc(n * sizeof(*s));
	if (!s)
		return 0; /* nothing placed: the caller moves on to fresh vehicles */
	size_t m = 0;
	double total_room = 0;
	for (size_t i = 0; i < n; i++) {
		const struct disp_cand *c = &h[i].c;
		double room = (double)c->cap_kw - h[i].kw, w;
		if (!(room > KW_EPS))
			continue;
		if (f == DISP_FB_BALANCED) {
			if (!(c->soc >= BALANCED_MIN_SOC))
				continue;
			w = room * c->soc;
		} else {
			w = room * clamp01(c->avail_prob) * (1 - clamp01(c->degradation));
		}
		if (!(w > 0))
			continue;
		s[m++] = (struct share){ room / w, room, w, i };
		total_room += room;
	}
	double placed = 0;
	if (total_room <= residual_kw) {
		/* Everyone fills up: the residual is larger than the room. */
		for (size_t j = 0; j < m; j++) {
			extra_kw[s[j].i] = s[j].room;
			placed += s[j].room;
		}
		free(s);
		return placed;
	}
	qsort(s, m, sizeof(*s), cmp_ratio);
	/* Suffix sums of the weights; the first j whose factor does not cap
	 * it ends the capped prefix. */
	double *wsuf = malloc((m + 1) * sizeof(*wsuf));
	if (!wsuf) {
		free(s);
		return 0;
	}
	wsuf[m] = 0;
	for (size_t j = m; j-- > 0;)
		wsuf[j] = wsuf[j + 1] + s[j].weight;
	double left = residual_kw;
	size_t j = 0;
	for (; j < m; j++) {
		double a = left / wsuf[j];
		if (a < s[j].ratio)
			break;
		extra_kw[s[j].i] = s[j].room;
		left -= s[j].room;
	}
	if (j < m) {
		double a = left / wsuf[j];
		for (size_t q = j; q < m; q++) {
			double kw = a * s[q].weight;
			extra_kw[s[q].i] = kw < s[q].room ? kw : s[q].room;
		}
	}
	for (size_t i = 0; i < n; i++)
		placed += extra_kw[i];
	free(wsuf);
	free(s);
	return placed < residual_kw ? placed : residual_kw;
}
