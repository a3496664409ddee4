# vehicle-gateway: the MQTT edge (paho async) and the InfluxDB telemetry writer.
$(eval $(call SERVICE,vehicle-gateway,-lpaho-mqtt3as))
