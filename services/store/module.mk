# v2g-store: the only writer of PostgreSQL (dispatch decisions, allocations,
# the audit log) and the query server for the dispatch logs and the audit log.
$(eval $(call SERVICE,store,-lpq))

# libpq's header lives under /usr/include/postgresql on Debian.
STORE_PQ_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
$(BUILD)/obj/services/store/%.o: CPPFLAGS += $(STORE_PQ_CFLAGS)
$(BUILD)/obj/tests/store/%.o: CPPFLAGS += $(STORE_PQ_CFLAGS)
