#!/usr/bin/env bash
# The whole local stack in the background: Mosquitto, PostgreSQL, InfluxDB
# (tools/scripts/infra.sh), the seven services and the fleet simulator, every
# port a free loopback port, all state under one run directory.
#
#   stack.sh up      start everything, return once every service is ready;
#                    writes RUN_DIR/stack.env (shell syntax)
#   stack.sh down    stop everything; idempotent
#   stack.sh run     up with the RTE signal generator, follow the logs,
#                    Ctrl-C stops everything
#   stack.sh status  which processes run
#
# Environment:
#   RUN_DIR         run directory (default .run): logs/, pids/, infra/, stack.env
#   BIN_DIR         where the v2g-* binaries are (default build/bin)
#   FLEET           simulated vehicles (default 200; 0 starts no simulator)
#   FLEET_SIM_ARGS  extra arguments for v2g-fleet-sim
#   SITE_SCENARIO   a v2g-site-sim scenario file: `up` also plays that
#                   charging site, and site-dlm controls it (dlm.site = the
#                   scenario's site unless K_DLM__SITE says otherwise).
#                   Default: none for `up`; `run` plays
#                   tools/site-sim/scenarios/demo.json (SITE_SCENARIO= for none)
#   STACK_TIMEOUT   seconds `up` waits for readiness (default 60)
#   V2G_API_TOKEN   API token (default: a random one per run)
#   RTE_SCENARIO    `run`: RTE generator scenario (default steady)
#   K_*             any other configuration override passes through to the
#                   services (e.g. K_DISPATCH__ACK_TIMEOUT_SECONDS=2)
#
# `up` when the stack in RUN_DIR already runs prints its summary and exits 0;
# `run` when it already runs restarts it (down, then up with the generator).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd -P)
INFRA=$SCRIPT_DIR/infra.sh
# shellcheck source=tools/scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

# Services in start order; the log and pid files use these names.
SERVICES=(store vehicle-gateway dispatch-engine signal-ingest scheduler site-dlm api-gateway)
SIM=fleet-sim
SITE_SIM=site-sim

abspath() {
    case $1 in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
    esac
}

RUN_DIR=$(abspath "${RUN_DIR:-.run}")
BIN_DIR=$(abspath "${BIN_DIR:-build/bin}")
FLEET=${FLEET:-200}
STACK_TIMEOUT=${STACK_TIMEOUT:-60}
LOG_DIR=$RUN_DIR/logs
PID_DIR=$RUN_DIR/pids
INFRA_DIR=$RUN_DIR/infra
STACK_ENV=$RUN_DIR/stack.env

say() {
    echo "stack: $*"
}

die() {
    echo "stack: $*" >&2
    exit 1
}

now_ms() {
    date +%s%3N
}

# SIGNAL_INGEST for signal-ingest
upper() {
    local s=${1^^}
    echo "${s//-/_}"
}

# proc_pid NAME / proc_alive NAME: a started process (service or simulator).
proc_pid() {
    cat "$PID_DIR/$1.pid" 2>/dev/null || true
}

proc_alive() {
    alive "$(proc_pid "$1")" "v2g-$1"
}

# The configuration every service reads: config.cfg when the user made one.
config_file() {
    if [[ -f "$REPO_ROOT/config.cfg" ]]; then
        echo "$REPO_ROOT/config.cfg"
    else
        echo "$REPO_ROOT/config.example.cfg"
    fi
}

# launch NAME ARGS...: start $BIN_DIR/v2g-NAME in its own session (Ctrl-C in
# the terminal does not reach it; `down` stops it), log in logs/NAME.log.
launch() {
    local name=$1
    shift
    spawn "$PID_DIR/$name.pid" "$LOG_DIR/$name.log" "$BIN_DIR/v2g-$name" "$@" ||
        die "v2g-$name did not start (see $LOG_DIR/$name.log)"
}

# fail_up MESSAGE: `up` cannot finish: stop everything started, exit 1.
fail_up() {
    trap - ERR
    [[ -z "${1:-}" ]] || echo "stack: $1" >&2
    echo "stack: up failed, stopping everything" >&2
    cmd_down >/dev/null 2>&1 || true
    exit 1
}

# report_failure NAME PORT: why NAME is not ready, for the user.
report_failure() {
    local name=$1 port=${2:-} body
    {
        if ! proc_alive "$name"; then
            echo "stack: $name is not running (exited; pid $(proc_pid "$name"))"
        else
            echo "stack: $name is running but not ready"
        fi
        if [[ -n "$port" ]]; then
            body=$(curl -s --max-time 2 "http://127.0.0.1:$port/health/ready" 2>/dev/null || true)
            if [[ -n "$body" ]]; then
                echo "stack: $name /health/ready: $body"
            fi
        fi
        echo "stack: last lines of $LOG_DIR/$name.log:"
        tail -n 30 "$LOG_DIR/$name.log" 2>/dev/null | sed 's/^/    /' || true
    } >&2
}

# ------------------------------------------------------------------- status

stack_running() {
    local n
    for n in "${SERVICES[@]}" "$SIM" "$SITE_SIM"; do
        proc_alive "$n" && return 0
    done
    [[ -s "$INFRA_DIR/infra.env" ]] && "$INFRA" status "$INFRA_DIR" >/dev/null 2>&1 && return 0
    return 1
}

all_services_alive() {
    local n
    for n in "${SERVICES[@]}"; do
        proc_alive "$n" || return 1
    done
    "$INFRA" status "$INFRA_DIR" >/dev/null 2>&1
}

cmd_status() {
    local n rc=0
    for n in "${SERVICES[@]}" "$SIM" "$SITE_SIM"; do
        if proc_alive "$n"; then
            echo "$n: running (pid $(proc_pid "$n"))"
        elif [[ -f "$PID_DIR/$n.pid" ]]; then
            echo "$n: stopped"
            rc=1
        fi
    done
    if [[ -s "$INFRA_DIR/infra.env" ]]; then
        "$INFRA" status "$INFRA_DIR" || rc=1
    else
        echo "infra: not started"
        rc=1
    fi
    return $rc
}

print_summary() {
    # shellcheck source=/dev/null
    . "$STACK_ENV"
    local stop="make down"
    [[ "$RUN_DIR" == "$REPO_ROOT/.run" ]] || stop="make down RUN_DIR=$RUN_DIR"
    echo "stack: API        $V2G_API_URL  (token $V2G_API_TOKEN)"
    echo "stack: MQTT       $V2G_MQTT_HOST:$V2G_MQTT_PORT"
    echo "stack: PostgreSQL $V2G_PG_DSN"
    echo "stack: InfluxDB   $V2G_INFLUX_URL (db $V2G_INFLUX_DB)"
    echo "stack: logs       $LOG_DIR/, settings $STACK_ENV"
    echo "stack: stop with  $stop"
}

# ------------------------------------------------------------------- down

cmd_down() {
    local n pid pids=() names=() i deadline rc=0
    if [[ -d "$PID_DIR" ]]; then
        for n in "$SIM" "$SITE_SIM" "${SERVICES[@]}"; do
            pid=$(proc_pid "$n")
            if alive "$pid" "v2g-$n"; then
                kill -TERM "$pid" 2>/dev/null || true
                pids+=("$pid")
                names+=("$n")
            fi
        done
        # They all got SIGTERM at once: up to 10 s each to finish.
        deadline=$((SECONDS + 10))
        for i in "${!pids[@]}"; do
            while alive "${pids[$i]}" "v2g-${names[$i]}" && ((SECONDS < deadline)); do
                sleep 0.1
            done
            if alive "${pids[$i]}" "v2g-${names[$i]}"; then
                echo "stack: ${names[$i]} (pid ${pids[$i]}) did not stop within 10 s: SIGKILL" >&2
                kill -KILL "${pids[$i]}" 2>/dev/null || true
            fi
        done
        deadline=$((SECONDS + 5))
        for i in "${!pids[@]}"; do
            while alive "${pids[$i]}" "v2g-${names[$i]}" && ((SECONDS < deadline)); do
                sleep 0.1
            done
            if alive "${pids[$i]}" "v2g-${names[$i]}"; then
                echo "stack: ${names[$i]} (pid ${pids[$i]}) survived SIGKILL" >&2
                rc=1
            fi
        done
        ((rc != 0)) || rm -rf "$PID_DIR"
    fi
    if [[ -d "$INFRA_DIR" ]]; then
        "$INFRA" stop "$INFRA_DIR" || rc=1
    fi
    rm -f "$STACK_ENV"
    say "down ($RUN_DIR)"
    return $rc
}

# ------------------------------------------------------------------- up

# cmd_up [signal-ingest extra args...]
cmd_up() {
    local t0 n
    t0=$(now_ms)
    [[ "$FLEET" =~ ^[0-9]+$ ]] || die "FLEET must be a number of vehicles, got '$FLEET'"
    [[ "$STACK_TIMEOUT" =~ ^[0-9]+$ ]] || die "STACK_TIMEOUT must be seconds, got '$STACK_TIMEOUT'"
    for n in "${SERVICES[@]}"; do
        [[ -x "$BIN_DIR/v2g-$n" ]] || die "missing $BIN_DIR/v2g-$n (run make)"
    done
    if ((FLEET > 0)) && [[ ! -x "$BIN_DIR/v2g-$SIM" ]]; then
        die "missing $BIN_DIR/v2g-$SIM (run make, or FLEET=0)"
    fi
    local site=""
    if [[ -n "${SITE_SCENARIO:-}" ]]; then
        [[ -x "$BIN_DIR/v2g-$SITE_SIM" ]] || die "missing $BIN_DIR/v2g-$SITE_SIM (run make)"
        [[ -f "$SITE_SCENARIO" ]] || die "SITE_SCENARIO: no such file: $SITE_SCENARIO"
        SITE_SCENARIO=$(abspath "$SITE_SCENARIO")
        # The simulator checks the file and names its site.
        local check
        check=$("$BIN_DIR/v2g-$SITE_SIM" --check --scenario "$SITE_SCENARIO" 2>&1) ||
            die "SITE_SCENARIO $SITE_SCENARIO refused: $(tail -n 1 <<<"$check")"
        site=$(sed -n 's/.*SITESIM-SCENARIO site \([^:]*\):.*/\1/p' <<<"$check")
        [[ -n "$site" ]] || die "SITE_SCENARIO: could not read the site of $SITE_SCENARIO"
        export K_DLM__SITE=${K_DLM__SITE:-$site}
    fi

    if [[ -s "$STACK_ENV" ]] && all_services_alive; then
        say "already up in $RUN_DIR"
        print_summary
        return 0
    fi
    if stack_running; then
        die "a partial stack runs in $RUN_DIR: stop it first (make down RUN_DIR=$RUN_DIR)"
    fi
    # Leftovers of an earlier run that died.
    cmd_down >/dev/null 2>&1 || true
    rm -rf "$LOG_DIR" "$PID_DIR"
    mkdir -p "$LOG_DIR" "$PID_DIR"

    "$INFRA" start "$INFRA_DIR" || die "infrastructure did not start (see above)"
    # shellcheck source=/dev/null
    . "$INFRA_DIR/infra.env"

    # From here on any failure stops everything.
    trap 'fail_up ""' ERR
    set -E

    local ports token config
    mapfile -t ports < <("$INFRA" free-ports 17)
    [[ ${#ports[@]} -eq 17 ]] || fail_up "could not get free ports from the kernel"
    token=${V2G_API_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
    config=$(config_file)

    # Bus endpoints: the owner listens, peers dial the same URL.
    export K_BUS__INGEST=tcp://127.0.0.1:${ports[0]}
    export K_BUS__DISPATCH=tcp://127.0.0.1:${ports[1]}
    export K_BUS__DISPATCH_IN=tcp://127.0.0.1:${ports[2]}
    export K_BUS__GATEWAY=tcp://127.0.0.1:${ports[3]}
    export K_BUS__GATEWAY_IN=tcp://127.0.0.1:${ports[4]}
    export K_BUS__TELEMETRY=tcp://127.0.0.1:${ports[5]}
    export K_BUS__STORE=tcp://127.0.0.1:${ports[6]}
    export K_BUS__STORE_IN=tcp://127.0.0.1:${ports[7]}
    export K_BUS__SCHEDULER=tcp://127.0.0.1:${ports[8]}
    export K_BUS__DLM=tcp://127.0.0.1:${ports[9]}
    # Health ports (api-gateway serves its health on the API port).
    declare -A port_of=(
        [signal-ingest]=${ports[10]}
        [dispatch-engine]=${ports[11]}
        [vehicle-gateway]=${ports[12]}
        [scheduler]=${ports[13]}
        [store]=${ports[14]}
        [site-dlm]=${ports[15]}
        [api-gateway]=${ports[16]}
    )
    export K_SIGNAL_INGEST__HEALTH_PORT=${port_of[signal-ingest]}
    export K_DISPATCH__HEALTH_PORT=${port_of[dispatch-engine]}
    export K_GATEWAY__HEALTH_PORT=${port_of[vehicle-gateway]}
    export K_SCHEDULER__HEALTH_PORT=${port_of[scheduler]}
    export K_STORE__HEALTH_PORT=${port_of[store]}
    export K_DLM__HEALTH_PORT=${port_of[site-dlm]}
    export K_API__PORT=${port_of[api-gateway]}
    export K_API__TOKEN=$token
    export K_MQTT__BROKER=tcp://127.0.0.1:$MQTT_PORT
    export K_POSTGRES__DSN=$PG_DSN
    export K_INFLUXDB__URL=$INFLUX_URL
    export K_INFLUXDB__DATABASE=$INFLUX_DB

    # Services run from the repository root (whatever they read relative).
    cd "$REPO_ROOT"
    for n in "${SERVICES[@]}"; do
        if [[ "$n" == signal-ingest ]]; then
            launch "$n" -c "$config" "$@"
        else
            launch "$n" -c "$config"
        fi
    done

    # Wait until every /health/ready answers 200, or one dies, or the deadline.
    local deadline pending=("${SERVICES[@]}") still code failed=()
    deadline=$((SECONDS + STACK_TIMEOUT))
    while ((${#pending[@]} > 0)); do
        still=()
        for n in "${pending[@]}"; do
            if ! proc_alive "$n"; then
                failed+=("$n")
                continue
            fi
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
                "http://127.0.0.1:${port_of[$n]}/health/ready" 2>/dev/null || true)
            [[ "$code" == 200 ]] || still+=("$n")
        done
        pending=("${still[@]+"${still[@]}"}")
        if ((${#failed[@]} > 0)); then
            for n in "${failed[@]}"; do
                report_failure "$n" "${port_of[$n]}"
            done
            fail_up "service(s) exited during start: ${failed[*]}"
        fi
        if ((${#pending[@]} > 0 && SECONDS >= deadline)); then
            for n in "${pending[@]}"; do
                report_failure "$n" "${port_of[$n]}"
            done
            fail_up "not ready after ${STACK_TIMEOUT}s: ${pending[*]}"
        fi
        ((${#pending[@]} == 0)) || sleep 0.1
    done

    # The simulated fleet, once the gateway listens.
    if ((FLEET > 0)); then
        local sim_args=()
        # FLEET_SIM_ARGS is split on whitespace, like a command line.
        read -r -a sim_args <<<"${FLEET_SIM_ARGS:-}"
        launch "$SIM" --broker "tcp://127.0.0.1:$MQTT_PORT" --vehicles "$FLEET" \
            "${sim_args[@]+"${sim_args[@]}"}"
        sleep 0.3
    fi
    # The simulated charging site, under site-dlm's control.
    if [[ -n "$site" ]]; then
        launch "$SITE_SIM" --broker "tcp://127.0.0.1:$MQTT_PORT" --scenario "$SITE_SCENARIO"
        sleep 0.3
    fi
    # Nothing died since it was ready.
    local started=("${SERVICES[@]}")
    ((FLEET == 0)) || started+=("$SIM")
    [[ -z "$site" ]] || started+=("$SITE_SIM")
    for n in "${started[@]}"; do
        if ! proc_alive "$n"; then
            report_failure "$n" "${port_of[$n]:-}"
            fail_up "$n exited during start"
        fi
    done

    local api=http://127.0.0.1:${port_of[api-gateway]} tmp=$STACK_ENV.tmp
    {
        echo "# Written by tools/scripts/stack.sh up; shell syntax. Removed by down."
        env_line V2G_API_URL "$api"
        env_line V2G_API_TOKEN "$token"
        env_line V2G_MQTT_HOST 127.0.0.1
        env_line V2G_MQTT_PORT "$MQTT_PORT"
        env_line V2G_PG_DSN "$PG_DSN"
        env_line V2G_INFLUX_URL "$INFLUX_URL"
        env_line V2G_INFLUX_DB "$INFLUX_DB"
        for n in "${SERVICES[@]}"; do
            env_line "V2G_$(upper "$n")_HEALTH_URL" "http://127.0.0.1:${port_of[$n]}"
        done
        env_line V2G_RUN_DIR "$RUN_DIR"
        env_line V2G_LOG_DIR "$LOG_DIR"
        env_line V2G_CONFIG "$config"
        env_line V2G_FLEET "$FLEET"
        env_line V2G_SITE "${K_DLM__SITE:-}"
        env_line V2G_INFRA_DIR "$INFRA_DIR"
        env_line V2G_PG_PORT "$PG_PORT"
        env_line V2G_INFLUX_PORT "$INFLUX_PORT"
        env_line V2G_BUS_INGEST "$K_BUS__INGEST"
        env_line V2G_BUS_DISPATCH "$K_BUS__DISPATCH"
        env_line V2G_BUS_DISPATCH_IN "$K_BUS__DISPATCH_IN"
        env_line V2G_BUS_GATEWAY "$K_BUS__GATEWAY"
        env_line V2G_BUS_GATEWAY_IN "$K_BUS__GATEWAY_IN"
        env_line V2G_BUS_TELEMETRY "$K_BUS__TELEMETRY"
        env_line V2G_BUS_STORE "$K_BUS__STORE"
        env_line V2G_BUS_STORE_IN "$K_BUS__STORE_IN"
        env_line V2G_BUS_SCHEDULER "$K_BUS__SCHEDULER"
        env_line V2G_BUS_DLM "$K_BUS__DLM"
    } >"$tmp"
    mv "$tmp" "$STACK_ENV"
    trap - ERR
    set +E

    local t1
    t1=$(now_ms)
    say "up in $(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000)))s: ${#SERVICES[@]} services ready, fleet of $FLEET${site:+, site $site simulated}"
    print_summary
}

# ------------------------------------------------------------------- run

TAIL_PID=
on_interrupt() {
    trap '' INT TERM
    echo
    say "stopping"
    if [[ -n "$TAIL_PID" ]]; then
        kill "$TAIL_PID" 2>/dev/null || true
    fi
    cmd_down
    say "stopped"
    exit 0
}

cmd_run() {
    if stack_running; then
        say "a stack already runs in $RUN_DIR: restarting it with the RTE generator"
        cmd_down
    fi
    trap on_interrupt INT TERM
    SITE_SCENARIO=${SITE_SCENARIO-$REPO_ROOT/tools/site-sim/scenarios/demo.json}
    cmd_up --rte-gen --rte-gen-scenario "${RTE_SCENARIO:-steady}"
    say "following the logs; Ctrl-C stops everything"
    tail -n +1 -F "$LOG_DIR"/*.log &
    TAIL_PID=$!
    # wait returns when a trapped signal arrives; on_interrupt exits.
    wait "$TAIL_PID" || true
    # tail ended by itself (killed from outside): stop the stack all the same.
    on_interrupt
}

# ------------------------------------------------------------------- main

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
run) cmd_run ;;
status) cmd_status ;;
*)
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
