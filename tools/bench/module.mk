# v2g-bench-slice: bare paho QoS 1 burst vs POST /api/signals -> last command.
$(eval $(call TOOL,bench,v2g-bench-slice,-lpaho-mqtt3as))
