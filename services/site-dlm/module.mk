$(eval $(call SERVICE,site-dlm,))
