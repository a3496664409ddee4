#!/usr/bin/env bash
# Real brokers and databases on loopback for the local stack and the tests:
# Mosquitto 2, PostgreSQL 15 and InfluxDB 1.6 from Debian's packages, each on
# a free port the kernel hands out, with all of their state in one directory.
#
#   infra.sh start DIR             start all three (fresh state), wait until ready,
#                                  write DIR/infra.env (shell syntax)
#   infra.sh stop DIR              stop all three; no process is left behind
#                                  (data stays in DIR until the next start)
#   infra.sh stop-one DIR NAME     stop one server (NAME: mosquitto|postgres|influxdb)
#   infra.sh start-one DIR NAME    start it again on the same port with its old data
#   infra.sh status DIR            print which servers run
#   infra.sh free-ports N          print N distinct free loopback TCP ports
#
# DIR/infra.env holds MQTT_PORT, PG_PORT, PG_DSN, INFLUX_PORT, INFLUX_URL (and
# a few more). Two runs in different directories never clash: every port is
# asked from the kernel, nothing uses a system default path or port.
#
# Environment: INFRA_TIMEOUT (seconds to wait for each server, default 30),
# PG_BINDIR (PostgreSQL binaries, default: newest /usr/lib/postgresql/*/bin).
#
# PostgreSQL runs with fsync off: the data is a scratch database recreated by
# every `start`, never something to keep.
set -euo pipefail
# shellcheck source=tools/scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVERS=(mosquitto postgres influxdb)
TIMEOUT=${INFRA_TIMEOUT:-30}
DB_NAME=v2g

die() {
    echo "infra: $*" >&2
    exit 1
}

log() {
    echo "infra: $*" >&2
}

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- helpers

# free_ports N: N distinct free TCP ports on 127.0.0.1, one per line. The
# sockets are held open together so the ports differ; 8080 is never used.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1])
held, ports = [], []
while len(ports) < n:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    p = s.getsockname()[1]
    if p != 8080:
        ports.append(p)
for p in ports:
    print(p)
for s in held:
    s.close()
PY
}

read_pid() {
    if [[ -s "$1" ]]; then
        head -n 1 "$1" | tr -d '[:space:]'
    fi
}

# stop_pid PID NAME SECONDS: SIGTERM, wait, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2 secs=$3 i
    alive "$pid" "$name" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        alive "$pid" "$name" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) ignored SIGTERM for ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" "$name" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) still alive after SIGKILL"
    return 1
}

# fail_with_log NAME LOGFILE MESSAGE
fail_with_log() {
    local name=$1 logfile=$2 msg=$3
    {
        echo "infra: $name: $msg"
        if [[ -s "$logfile" ]]; then
            echo "infra: last lines of $logfile:"
            tail -n 30 "$logfile" | sed 's/^/    /'
        else
            echo "infra: (no log in $logfile)"
        fi
    } >&2
    return 1
}

pg_bindir() {
    if [[ -n "${PG_BINDIR:-}" ]]; then
        echo "$PG_BINDIR"
        return
    fi
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -x "$d/pg_ctl" ]] || die "PostgreSQL server binaries not found (run make deps)"
    echo "$d"
}

# as_postgres OUTFILE COMMAND...: run COMMAND as user postgres, output to
# OUTFILE. The redirection belongs to the subshell, so that a trap running in
# this shell meanwhile still writes to the real stderr.
as_postgres() {
    local out=$1
    shift
    # cd to a directory postgres can read, or initdb/pg_ctl complain about /root.
    (cd "$PG_HOME" && runuser -u postgres -- "$@") >"$out" 2>&1
}

load_env() {
    [[ -s "$DIR/infra.env" ]] || die "no $DIR/infra.env: run 'infra.sh start $DIR' first"
    # shellcheck source=/dev/null
    . "$DIR/infra.env"
    PG_HOME=${PG_HOME:?}
}

# ---------------------------------------------------------------- mosquitto

mosquitto_conf() {
    local d=$DIR/mosquitto
    cat >"$d/mosquitto.conf" <<EOF
# Written by tools/scripts/infra.sh. Loopback broker for the local stack.
# max_queued_messages/max_inflight_messages 0 = unlimited: the defaults (1000
# and 20 per client) silently drop QoS 1 messages in a fleet-sized burst.
user root
pid_file $d/mosquitto.pid
persistence false
log_dest file $d/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
log_timestamp_format %Y-%m-%dT%H:%M:%S
max_queued_messages 0
max_inflight_messages 0
set_tcp_nodelay true
allow_anonymous true
listener $MQTT_PORT 127.0.0.1
EOF
}

# The servers write their own pid files: a pid taken from $! would be
# setsid's when setsid has to fork (a caller with job control).
mosquitto_launch() {
    local d=$DIR/mosquitto
    rm -f "$d/mosquitto.pid"
    setsid mosquitto -c "$d/mosquitto.conf" >"$d/mosquitto.out" 2>&1 </dev/null &
}

mosquitto_wait() {
    local d=$DIR/mosquitto pid deadline
    deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        pid=$(read_pid "$d/mosquitto.pid")
        if [[ -n "$pid" ]] && ! alive "$pid" mosquitto; then
            cat "$d/mosquitto.out" >>"$d/mosquitto.log" 2>/dev/null || true
            fail_with_log mosquitto "$d/mosquitto.log" "exited during start (port $MQTT_PORT)"
            return 1
        fi
        # shellcheck disable=SC2016 # $SYS is a topic, not a variable
        if mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '$SYS/broker/version' \
            -C 1 -W 1 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.05
    done
    fail_with_log mosquitto "$d/mosquitto.log" "not ready on port $MQTT_PORT after ${TIMEOUT}s"
}

mosquitto_stop() {
    stop_pid "$(read_pid "$DIR/mosquitto/mosquitto.pid")" mosquitto 10
    rm -f "$DIR/mosquitto/mosquitto.pid"
}

# ---------------------------------------------------------------- postgres

# Where PostgreSQL keeps its data, log and socket. It runs as user postgres,
# who must be able to reach that directory: DIR/postgres when possible,
# otherwise (DIR under a root-only directory such as a mktemp -d, a path
# too long for a Unix socket, or one with characters pg_ctl -o would split) a postgres-owned directory in /tmp, recorded in
# infra.env and removed by `stop`.
postgres_home() {
    local want=$DIR/postgres
    mkdir -p "$want"
    chown postgres: "$want"
    if [[ "$want" =~ ^[A-Za-z0-9_./-]+$ ]] && ((${#want} + 20 < 100)) &&
        runuser -u postgres -- test -w "$want" 2>/dev/null; then
        echo "$want"
    else
        rmdir "$want" 2>/dev/null || true
        local tmp
        tmp=$(mktemp -d /tmp/v2g-pg.XXXXXX)
        chown postgres: "$tmp"
        chmod 700 "$tmp"
        ln -sfn "$tmp" "$want"
        echo "$tmp"
    fi
}

postgres_init() {
    local bindir
    bindir=$(pg_bindir)
    if ! as_postgres "$PG_HOME/initdb.log" "$bindir/initdb" -N -D "$PG_HOME/data" \
        -U postgres -A trust -E UTF8 --locale=C.UTF-8; then
        fail_with_log postgres "$PG_HOME/initdb.log" "initdb failed"
        return 1
    fi
}

postgres_launch() {
    local bindir
    bindir=$(pg_bindir)
    # -w waits until the server accepts connections.
    if ! as_postgres "$PG_HOME/pg_ctl.out" "$bindir/pg_ctl" -D "$PG_HOME/data" \
        -l "$PG_HOME/postgres.log" -w -t "$TIMEOUT" \
        -o "-p $PG_PORT -k $PG_HOME -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start; then
        cat "$PG_HOME/pg_ctl.out" >&2 || true
        fail_with_log postgres "$PG_HOME/postgres.log" "pg_ctl start failed (port $PG_PORT)"
        return 1
    fi
}

postgres_wait() {
    local bindir deadline
    bindir=$(pg_bindir)
    deadline=$((SECONDS + TIMEOUT))
    until "$bindir/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres; do
        if ((SECONDS >= deadline)); then
            fail_with_log postgres "$PG_HOME/postgres.log" "not ready on port $PG_PORT after ${TIMEOUT}s"
            return 1
        fi
        sleep 0.05
    done
}

postgres_createdb() {
    local bindir
    bindir=$(pg_bindir)
    if ! "$bindir/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB_NAME" 2>"$PG_HOME/createdb.err"; then
        cat "$PG_HOME/createdb.err" >&2
        fail_with_log postgres "$PG_HOME/postgres.log" "createdb $DB_NAME failed"
        return 1
    fi
}

postgres_pid() {
    read_pid "$PG_HOME/data/postmaster.pid"
}

postgres_stop() {
    local bindir pid
    [[ -d "$PG_HOME/data" ]] || return 0
    pid=$(postgres_pid)
    alive "$pid" postgres || return 0
    bindir=$(pg_bindir)
    if ! as_postgres /dev/null "$bindir/pg_ctl" -D "$PG_HOME/data" -m fast -w -t 10 stop; then
        log "postgres: pg_ctl stop failed, killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    stop_pid "$pid" postgres 5
}

# ---------------------------------------------------------------- influxdb

influxdb_conf() {
    local d=$DIR/influxdb
    cat >"$d/influxdb.conf" <<EOF
# Written by tools/scripts/infra.sh. Loopback InfluxDB 1.x for the local stack.
# Both the HTTP and the RPC (backup/restore) addresses are set: the RPC
# default 127.0.0.1:8088 would clash between two instances.
reporting-enabled = false
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"

[meta]
  dir = "$d/meta"

[data]
  dir = "$d/data"
  wal-dir = "$d/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = true
  pprof-enabled = false
EOF
}

influxdb_launch() {
    local d=$DIR/influxdb
    rm -f "$d/influxd.pid"
    setsid influxd run -config "$d/influxdb.conf" -pidfile "$d/influxd.pid" \
        >>"$d/influxdb.log" 2>&1 </dev/null &
}

influxdb_wait() {
    local d=$DIR/influxdb pid deadline code
    deadline=$((SECONDS + TIMEOUT))
    while :; do
        pid=$(read_pid "$d/influxd.pid")
        if [[ -n "$pid" ]] && ! alive "$pid" influxd; then
            fail_with_log influxdb "$d/influxdb.log" "exited during start (port $INFLUX_PORT)"
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$INFLUX_PORT/ping" || true)
        [[ "$code" == 204 ]] && break
        if ((SECONDS >= deadline)); then
            fail_with_log influxdb "$d/influxdb.log" "not ready on port $INFLUX_PORT after ${TIMEOUT}s"
            return 1
        fi
        sleep 0.05
    done
}

influxdb_createdb() {
    local d=$DIR/influxdb body
    # CREATE DATABASE is idempotent in InfluxDB 1.x and must be a POST.
    if ! body=$(curl -sS --max-time 10 -XPOST "http://127.0.0.1:$INFLUX_PORT/query" \
        --data-urlencode "q=CREATE DATABASE $DB_NAME" 2>&1) || [[ "$body" == *'"error"'* ]]; then
        fail_with_log influxdb "$d/influxdb.log" "CREATE DATABASE $DB_NAME failed: $body"
        return 1
    fi
}

influxdb_stop() {
    stop_pid "$(read_pid "$DIR/influxdb/influxd.pid")" influxd 10
    rm -f "$DIR/influxdb/influxd.pid"
}

# ---------------------------------------------------------------- commands

server_running() {
    case $1 in
    mosquitto) alive "$(read_pid "$DIR/mosquitto/mosquitto.pid")" mosquitto ;;
    postgres) [[ -n "${PG_HOME:-}" ]] && alive "$(postgres_pid)" postgres ;;
    influxdb) alive "$(read_pid "$DIR/influxdb/influxd.pid")" influxd ;;
    esac
}

any_running() {
    local s
    for s in "${SERVERS[@]}"; do
        server_running "$s" && return 0
    done
    return 1
}

write_env() {
    local tmp=$DIR/infra.env.tmp
    {
        echo "# Written by tools/scripts/infra.sh start; shell syntax."
        env_line INFRA_DIR "$DIR"
        env_line MQTT_HOST 127.0.0.1
        env_line MQTT_PORT "$MQTT_PORT"
        env_line PG_HOST 127.0.0.1
        env_line PG_PORT "$PG_PORT"
        env_line PG_DB "$DB_NAME"
        env_line PG_DSN "host=127.0.0.1 port=$PG_PORT dbname=$DB_NAME user=postgres"
        env_line PG_HOME "$PG_HOME"
        env_line INFLUX_PORT "$INFLUX_PORT"
        env_line INFLUX_RPC_PORT "$INFLUX_RPC_PORT"
        env_line INFLUX_URL "http://127.0.0.1:$INFLUX_PORT"
        env_line INFLUX_DB "$DB_NAME"
    } >"$tmp"
    mv "$tmp" "$DIR/infra.env"
}

cmd_start() {
    local t0
    t0=$(date +%s%3N)
    if [[ -s "$DIR/infra.env" ]]; then
        # shellcheck source=/dev/null
        . "$DIR/infra.env"
        if any_running; then
            die "already running in $DIR (run 'infra.sh stop $DIR' first)"
        fi
        cleanup_pg_home
    fi
    # Fresh state every start.
    rm -rf "$DIR/mosquitto" "$DIR/influxdb" "$DIR/postgres" "$DIR/infra.env"
    mkdir -p "$DIR/mosquitto" "$DIR/influxdb"

    local ports
    mapfile -t ports < <(free_ports 4)
    [[ ${#ports[@]} -eq 4 ]] || die "could not get free ports from the kernel"
    MQTT_PORT=${ports[0]}
    PG_PORT=${ports[1]}
    INFLUX_PORT=${ports[2]}
    INFLUX_RPC_PORT=${ports[3]}
    PG_HOME=$(postgres_home)
    # Written before anything starts so that `stop` finds every server even
    # when the start fails half-way.
    write_env

    trap 'log "start failed, stopping what was started"; cmd_stop >/dev/null 2>&1 || true' ERR
    trap 'log "interrupted, stopping what was started"; cmd_stop >/dev/null 2>&1 || true; exit 130' INT TERM
    set -E
    mosquitto_conf
    influxdb_conf
    # The two quick ones start in the background while initdb runs.
    mosquitto_launch
    influxdb_launch
    postgres_init
    postgres_launch
    mosquitto_wait
    postgres_wait
    postgres_createdb
    influxdb_wait
    influxdb_createdb
    trap - ERR INT TERM
    set +E
    local ms=$(($(date +%s%3N) - t0))
    log "mosquitto :$MQTT_PORT, postgres :$PG_PORT, influxdb :$INFLUX_PORT ready in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s ($DIR/infra.env)"
}

cleanup_pg_home() {
    # Remove a /tmp data directory used instead of DIR/postgres.
    if [[ -n "${PG_HOME:-}" && "$PG_HOME" == /tmp/v2g-pg.* && -d "$PG_HOME" ]]; then
        rm -rf "$PG_HOME"
    fi
}

cmd_stop() {
    [[ -s "$DIR/infra.env" ]] || return 0
    # shellcheck source=/dev/null
    . "$DIR/infra.env"
    local rc=0
    mosquitto_stop || rc=1
    influxdb_stop || rc=1
    if postgres_stop; then
        cleanup_pg_home
    else
        rc=1
    fi
    return $rc
}

cmd_start_one() {
    local name=$1
    load_env
    if server_running "$name"; then
        log "$name already running"
        return 0
    fi
    case $name in
    mosquitto)
        mosquitto_launch
        mosquitto_wait
        ;;
    postgres)
        postgres_launch
        postgres_wait
        ;;
    influxdb)
        influxdb_launch
        influxdb_wait
        influxdb_createdb
        ;;
    esac
}

cmd_stop_one() {
    local name=$1
    load_env
    case $name in
    mosquitto) mosquitto_stop ;;
    postgres) postgres_stop ;;
    influxdb) influxdb_stop ;;
    esac
}

cmd_status() {
    load_env
    local s rc=0
    for s in "${SERVERS[@]}"; do
        if server_running "$s"; then
            echo "$s: running"
        else
            echo "$s: stopped"
            rc=1
        fi
    done
    return $rc
}

check_name() {
    case ${1:-} in
    mosquitto | postgres | influxdb) ;;
    *) die "unknown server '${1:-}' (mosquitto|postgres|influxdb)" ;;
    esac
}

main() {
    local cmd=${1:-}
    if [[ "$cmd" == free-ports ]]; then
        [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage
        free_ports "$2"
        return
    fi
    [[ $# -ge 2 ]] || usage
    [[ $(id -u) -eq 0 ]] || die "must run as root (PostgreSQL is started as user postgres through runuser)"
    if [[ "$cmd" == start ]]; then
        mkdir -p "$2"
    elif [[ ! -d "$2" ]]; then
        [[ "$cmd" == stop ]] && return 0
        die "no directory $2"
    fi
    DIR=$(cd "$2" && pwd -P)
    case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    start-one)
        check_name "${3:-}"
        cmd_start_one "$3"
        ;;
    stop-one)
        check_name "${3:-}"
        cmd_stop_one "$3"
        ;;
    *) usage ;;
    esac
}

main "$@"
