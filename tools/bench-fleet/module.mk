$(eval $(call TOOL,bench-fleet,v2g-bench-fleet,,dispatch-engine))
