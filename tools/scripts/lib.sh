# shellcheck shell=bash
# Shared by infra.sh and stack.sh (sourced, not run).

# env_line KEY VALUE: one shell assignment, single-quoted only when needed.
env_line() {
    local key=$1 val=$2
    if [[ "$val" =~ ^[A-Za-z0-9_./:@%+,=-]*$ ]]; then
        printf '%s=%s\n' "$key" "$val"
    else
        printf "%s='%s'\n" "$key" "${val//\'/\'\\\'\'}"
    fi
}

# alive PID NAME: PID runs, is not a zombie (an orphan's parent may reap it
# late), and its command line names NAME (guards against a recycled PID; also
# true for a program run through an interpreter or a wrapper).
alive() {
    local pid=$1 name=$2 stat state cmdline
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    state=${stat##*\) }
    state=${state%% *}
    [[ "$state" != Z && "$state" != X ]] || return 1
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ "$cmdline" == *"$name"* ]]
}

# spawn PIDFILE LOG CMD [ARG...]: starts CMD in a session of its own (a
# Ctrl-C at the terminal does not reach it; `down` stops it in order), stdin
# from /dev/null, output appended to LOG, and writes its pid to PIDFILE. The
# pid is written by the process itself: $! would be setsid's when setsid has
# to fork (a caller with job control).
spawn() {
    local pidfile=$1 log=$2 i
    shift 2
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null &
    for ((i = 0; i < 200; i++)); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.01
    done
    return 1
}
