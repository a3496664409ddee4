# $(call SERVICE,name,extra-libs): services/name/*.c -> $(BUILD)/bin/v2g-name.
# Everything but main.c also goes into $(BUILD)/lib/libsvc-name.a so that
# unit tests link the logic without main().
define SERVICE
$(1)_SRCS := $$(filter-out services/$(1)/main.c,$$(sort $$(wildcard services/$(1)/*.c)))
$(1)_OBJS := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRCS))
$(1)_LIB := $(BUILD)/lib/libsvc-$(1).a
$(1)_LIBS := $(2)
$$($(1)_LIB): $$($(1)_OBJS)
	@mkdir -p $$(@D)
	rm -f $$@
	ar rcs $$@ $$^
$(BUILD)/bin/v2g-$(1): $(BUILD)/obj/services/$(1)/main.o $$($(1)_LIB) $(LIBV2G)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $(2) $$(COMMON_LIBS)
BINS += $(BUILD)/bin/v2g-$(1)
endef

# $(call TOOL,dir,binary,extra-libs[,service]): tools/dir/*.c ->
# $(BUILD)/bin/binary; with a service name, the tool also links that
# service's logic library (e.g. the dispatch library for the solver CLI).
define TOOL
$(2)_OBJS := $$(patsubst %.c,$(BUILD)/obj/%.o,$$(sort $$(wildcard tools/$(1)/*.c)))
$(BUILD)/bin/$(2): $$($(2)_OBJS) $(if $(4),$(BUILD)/lib/libsvc-$(4).a) $(LIBV2G)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $(3) $(if $(4),$$($(4)_LIBS)) $$(COMMON_LIBS)
BINS += $(BUILD)/bin/$(2)
endef
