# proto/v2g/v1/*.proto -> $(BUILD)/gen/v2g/v1/*.pb-c.[ch]; never committed.
PROTO_SRCS := $(sort $(wildcard proto/v2g/v1/*.proto))
PROTO_C := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTO_SRCS))
PROTO_H := $(PROTO_C:.c=.h)
PROTO_OBJS := $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))

$(PROTO_C) $(PROTO_H) &: $(PROTO_SRCS)
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $(PROTO_SRCS)

# Generated code is not ours to lint: no -Werror on it.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -std=c11 $(OPT) -g $(SANFLAGS) -c -o $@ $<
