# tests/<dir>/<name>_test.c -> $(BUILD)/tests/<dir>/<name>_test
# <dir> is "common" (links libv2g) or a service name (links that service's
# logic library and its extra libraries too). tests/harness is the runner.
HARNESS_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard tests/harness/*.c)))
TEST_SRCS := $(sort $(wildcard tests/*/*_test.c))

define UNIT_TEST
$(BUILD)/tests/$(1): $(BUILD)/obj/tests/$(1).o $(HARNESS_OBJS) $$($(2)_LIB) $(LIBV2G)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$($(2)_LIBS) $(PAHO_LIBS) $$(COMMON_LIBS)
TEST_BINS += $(BUILD)/tests/$(1)
endef
$(foreach t,$(TEST_SRCS),$(eval $(call UNIT_TEST,$(patsubst tests/%.c,%,$(t)),$(word 2,$(subst /, ,$(t))))))
