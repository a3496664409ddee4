# common/src/*.c + generated protobuf code -> libv2g.a
COMMON_SRCS := $(sort $(wildcard common/src/*.c))
COMMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRCS))

$(LIBV2G): $(COMMON_OBJS) $(PROTO_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^
