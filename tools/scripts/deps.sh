#!/usr/bin/env bash
# make deps: install the Debian packages v2g needs to build, test and run.
# Idempotent: a quiet no-op when every package is already installed; runs
# apt-get update only when something has to be installed.
set -euo pipefail

PACKAGES=(
    # build
    build-essential pkg-config
    libnng-dev libprotobuf-c-dev protobuf-c-compiler libpaho-mqtt-dev
    libpq-dev libcivetweb-dev libconfig-dev libglpk-dev glpk-utils
    libcurl4-openssl-dev libjansson-dev
    # servers the stack and the tests start on loopback
    mosquitto mosquitto-clients postgresql influxdb influxdb-client
    # validation tools (promtool, compose, YAML)
    prometheus docker-compose yamllint
    # scripts and end-to-end tests
    curl jq python3 python3-pytest python3-paho-mqtt python3-requests
    python3-psycopg2 gcovr procps iproute2
)

# One dpkg-query for all packages (unknown ones are simply not listed).
declare -A installed=()
while read -r name status; do
    [[ "$status" == "install ok installed" ]] && installed["${name%%:*}"]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for pkg in "${PACKAGES[@]}"; do
    [[ -n "${installed[$pkg]:-}" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: installing them needs root; run 'make deps' as root or:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: done"
