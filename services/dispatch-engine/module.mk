$(eval $(call SERVICE,dispatch-engine,))
