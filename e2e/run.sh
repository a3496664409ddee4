#!/usr/bin/env bash
# The end-to-end suite against the real stack (make e2e):
#   BUILD=build/cov e2e/run.sh [pytest args...]
# Runs pytest over e2e/ (JUnit XML in coverage/e2e-junit.xml), then, always,
# a coverage report of what the services executed (coverage/coverage.xml and
# coverage/coverage.txt) when BUILD holds a --coverage build. Exits with
# pytest's status.
#
# Debian's python on purpose: a python3 earlier on PATH (pyenv) may lack
# Debian's python3-paho-mqtt, -requests, -psycopg2.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
export BUILD=${BUILD:-build}
PY=/usr/bin/python3

mkdir -p coverage
# Counters of an earlier run would be added to this one's.
if [[ -d "$BUILD/obj" ]]; then
    find "$BUILD/obj" -name '*.gcda' -delete
fi

# The whole suite unless paths were given (e2e/run.sh e2e/test_health.py -x).
targets=(e2e)
for a in "$@"; do
    if [[ "$a" != -* && -e "${a%%::*}" ]]; then
        targets=()
        break
    fi
done
"$PY" -m pytest -c e2e/pytest.ini --rootdir=e2e --junitxml=coverage/e2e-junit.xml \
    "$@" "${targets[@]+"${targets[@]}"}"
rc=$?

if [[ -n "$(find "$BUILD/obj" -name '*.gcda' -print -quit 2>/dev/null)" ]]; then
    if command -v gcovr >/dev/null; then
        # The services write their counters when they exit (stack.sh down
        # sends SIGTERM); --print-summary prints "lines: …%".
        if gcovr --root . --object-directory "$BUILD/obj" \
            --filter 'common/' --filter 'services/' --filter 'tools/' \
            --xml coverage/coverage.xml --txt coverage/coverage.txt \
            --print-summary "$BUILD/obj" >coverage/gcovr.out 2>coverage/gcovr.err; then
            echo "e2e coverage ($BUILD):"
            grep -E '^(lines|functions|branches):' coverage/gcovr.out | sed 's/^/  /'
            echo "  report: coverage/coverage.txt, coverage/coverage.xml"
        else
            echo "e2e: gcovr failed (coverage/gcovr.err):" >&2
            tail -n 20 coverage/gcovr.err >&2
        fi
    else
        echo "e2e: gcovr not installed, no coverage report" >&2
    fi
else
    echo "e2e: no coverage data under $BUILD/obj (not a COV=1 build)"
fi
exit $rc
