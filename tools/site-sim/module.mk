# v2g-site-sim: plays a charging site (meter + AC/DC chargers) over MQTT from a scenario file.
$(eval $(call TOOL,site-sim,v2g-site-sim,-lpaho-mqtt3as))
