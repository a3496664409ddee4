# v2g-dispatch-solve: an instance (JSON) in, the dispatch library's decision
# (JSON) out. Links the dispatch engine's logic library.
$(eval $(call TOOL,dispatch-solve,v2g-dispatch-solve,,dispatch-engine))
