# v2g — one non-recursive build. Each directory adds itself through a module.mk.
#   make            build every service and tool into $(BUILD) (-Werror)
#   make test       unit tests, then the end-to-end suite on real brokers
#   make SAN=1 ...  AddressSanitizer + UBSan build (in build/san)
#   make COV=1 ...  coverage build (in build/cov)
.DEFAULT_GOAL := all
SHELL := /bin/bash

ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else ifeq ($(COV),1)
BUILD ?= build/cov
SANFLAGS := --coverage
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
OPT ?= -O2
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CPPFLAGS += -D_GNU_SOURCE -Icommon/include -I$(BUILD)/gen -MMD -MP
CFLAGS += -std=c11 $(OPT) -g -pthread $(WARN) $(SANFLAGS)
LDFLAGS += -pthread $(SANFLAGS)
# Libraries every binary links (libv2g uses them all).
COMMON_LIBS := -lnng -lprotobuf-c -lcivetweb -lconfig -ljansson -lcurl -lm
PAHO_LIBS := -lpaho-mqtt3as

LIBV2G := $(BUILD)/lib/libv2g.a
BINS :=
TEST_BINS :=

include mk/proto.mk
include mk/common.mk
include mk/service.mk
include $(sort $(wildcard services/*/module.mk))
include $(sort $(wildcard tools/*/module.mk))
include tests/module.mk
include mk/targets.mk

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

all: $(BINS)

clean:
	rm -rf build coverage

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

.PHONY: all clean
