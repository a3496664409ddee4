$(eval $(call SERVICE,signal-ingest,))
