# v2g-bench-dlm: the site DLM control loop (dlm_loop_cycle) at 1,000 AC and
# DC stations on 20 feeders and 2 transformers; median / p99 / min per cycle.
$(eval $(call TOOL,bench-dlm,v2g-bench-dlm,,site-dlm))
