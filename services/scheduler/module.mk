$(eval $(call SERVICE,scheduler,))
