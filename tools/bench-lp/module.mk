# v2g-bench-lp: the LP strategy at 10k/100k vehicles and 500 sites, median
# solve time and the objective next to glpsol's on the same LP.
$(eval $(call TOOL,bench-lp,v2g-bench-lp,,dispatch-engine))
