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
