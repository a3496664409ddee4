# v2g-bench-dispatch: Priority, Equal and Smart at 100k and 1M vehicles,
# median time of disp_dispatch (scoring + selection + allocation).
$(eval $(call TOOL,bench-dispatch,v2g-bench-dispatch,,dispatch-engine))
