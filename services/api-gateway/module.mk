# REST API in front of the bus (civetweb handlers on the service HTTP port).
$(eval $(call SERVICE,api-gateway,))
