$(eval $(call SERVICE,dispatch-engine,-lglpk))
