#!/usr/bin/env bash
# make bench: the dispatch library's benchmarks (strategies at 100k and 1M
# vehicles, the LP next to glpsol), then the slice: start a stack of its own
# (run directory build/bench-run, a simulated fleet of BENCH_FLEET vehicles,
# default 10000), run v2g-bench-slice against it, and always stop the stack.
#
# Environment: BIN_DIR (default build/bin), BENCH_FLEET, BENCH_GLPSOL_MAX,
# FLEET_SIM_ARGS and any K_* override (passed to the stack, see stack.sh).
# Arguments given to this script go to v2g-bench-slice after the standard ones.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd -P)

BIN_DIR=${BIN_DIR:-build/bin}
[[ "$BIN_DIR" == /* ]] || BIN_DIR=$PWD/$BIN_DIR
N=${BENCH_FLEET:-10000}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_FLEET must be a positive number, got '$N'" >&2; exit 1; }
BENCH=$BIN_DIR/v2g-bench-slice
# glpsol's flat simplex takes about a minute at 100,000 vehicles.
BENCH_GLPSOL_MAX=${BENCH_GLPSOL_MAX:-100000}
if [[ ! -x "$BENCH" ]]; then
    echo "bench: missing $BENCH (run make; the benchmark tool is built with the services)" >&2
    exit 1
fi

export BIN_DIR
export RUN_DIR=$REPO_ROOT/build/bench-run
STACK=$SCRIPT_DIR/stack.sh

# shellcheck disable=SC2317 # called by the EXIT trap
stop_stack() {
    "$STACK" down >/dev/null 2>&1 || echo "bench: stack.sh down failed; see $RUN_DIR" >&2
}
trap stop_stack EXIT
trap 'exit 130' INT TERM

# The dispatch library first: no stack needed.
for tool in v2g-bench-dispatch v2g-bench-lp v2g-bench-fleet v2g-bench-dlm; do
    if [[ ! -x "$BIN_DIR/$tool" ]]; then
        echo "bench: missing $BIN_DIR/$tool (run make)" >&2
        exit 1
    fi
done
echo "bench: dispatch strategies (one core, scoring + selection + allocation)"
"$BIN_DIR/v2g-bench-dispatch"
echo "bench: site DLM control loop (computation per cycle)"
"$BIN_DIR/v2g-bench-dlm"
echo "bench: fleet view memory"
"$BIN_DIR/v2g-bench-fleet"
echo "bench: LP (greedy over the site hierarchy) next to glpsol; BENCH_GLPSOL_MAX=$BENCH_GLPSOL_MAX vehicles at most go through glpsol"
"$BIN_DIR/v2g-bench-lp" --glpsol-max "$BENCH_GLPSOL_MAX"

# A stack left over in the bench directory (killed run) goes first.
"$STACK" down >/dev/null 2>&1 || true
# Every simulated vehicle plugged in and eligible, so that a dispatch
# commands all N of them: the slice then sends exactly the N commands the
# bare publisher sends.
echo "bench: starting a stack with $N simulated vehicles, all eligible"
FLEET=$N FLEET_SIM_ARGS="--availability 1 ${FLEET_SIM_ARGS:-}" K_DISPATCH__SOC__FCR__LOW=0 "$STACK" up

# shellcheck source=/dev/null
. "$RUN_DIR/stack.env"
rc=0
"$BENCH" --api "$V2G_API_URL" --token "$V2G_API_TOKEN" \
    --mqtt-host 127.0.0.1 --mqtt-port "$V2G_MQTT_PORT" --vehicles "$N" "$@" || rc=$?
echo "bench: stopping the stack"
exit $rc
