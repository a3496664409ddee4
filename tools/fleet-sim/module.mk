# v2g-fleet-sim: plays N vehicles over MQTT (paho async, a few connections).
$(eval $(call TOOL,fleet-sim,v2g-fleet-sim,-lpaho-mqtt3as))
