/* The LP strategy: maximise sum(score_i * kw_i) subject to
 *   sum(kw_i) = power_kw, 0 <= kw_i <= cap_kw_i, and for every site s with a
 *   limit: sum of kw_i over the vehicles of s and of its descendant sites <=
 *   limit_kw[s].
 * Scores must already be set (disp_score). When the request cannot be met,
 * the allocation delivers as much power as possible and, among those, the
 * best objective; the status says infeasible.
 *
 * Site limits given as disp_sites always form a hierarchy (a forest through
 * parent[]), which keeps the greedy by score exact (Dantzig's continuous
 * knapsack, extended to nested capacities: a polymatroid). GLPK solves the
 * flat LP when the structure is not a forest (parent[] with a cycle) and
 * serves as the reference in tests. */
#ifndef DISP_LP_H
#define DISP_LP_H

#include <stdio.h>

#include "strategy.h"

enum { DISP_LP_OPTIMAL = 0, DISP_LP_INFEASIBLE = 1, DISP_LP_FAILED = 2 };

/* Fills out->allocs/n/allocated_kw/objective/lp_status (decided_by =
 * DISP_LP; *out is overwritten, not freed). Returns the status, or a
 * negative v2g error (-V2G_ERR_NOMEM). A malformed instance (negative or
 * non-finite request, non-finite score or capacity, a site index out of
 * range, a NaN limit) is DISP_LP_FAILED with nothing allocated. */
int disp_lp_solve(const struct disp_cand *c, size_t n, double power_kw,
                  const struct disp_sites *sites, struct disp_outcome *out);

/* The same LP through GLPK's simplex on the flat formulation. */
int disp_lp_solve_glpk(const struct disp_cand *c, size_t n, double power_kw,
                       const struct disp_sites *sites, struct disp_outcome *out);

/* Writes the LP in CPLEX LP format (for `glpsol --lp FILE`). 0 or -1. */
int disp_lp_write(FILE *f, const struct disp_cand *c, size_t n, double power_kw,
                  const struct disp_sites *sites);

#endif
