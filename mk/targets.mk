# The user's interface: deps, test, e2e, up, down, run, bench.
FLEET ?= 200
RUN_DIR ?= .run

deps:
	@tools/scripts/deps.sh

unit: $(TEST_BINS)
	@tests/harness/run-unit.sh $(TEST_BINS)

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

e2e: deps
	@$(MAKE) --no-print-directory COV=1 all
	@BUILD=build/cov e2e/run.sh

up: deps all
	@BIN_DIR=$(BUILD)/bin RUN_DIR=$(RUN_DIR) FLEET=$(FLEET) tools/scripts/stack.sh up

down:
	@RUN_DIR=$(RUN_DIR) tools/scripts/stack.sh down

run: deps all
	@BIN_DIR=$(BUILD)/bin RUN_DIR=$(RUN_DIR) FLEET=$(FLEET) tools/scripts/stack.sh run

bench: deps all
	@BIN_DIR=$(BUILD)/bin tools/scripts/bench.sh

.PHONY: deps unit test e2e up down run bench
