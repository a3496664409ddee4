#!/usr/bin/env bash
# Runs every unit-test binary given, each under a timeout, and prints the
# total as "unit: N passed, N failed". Exit non-zero if any test failed or a
# binary crashed.
set -u
passed=0 failed=0 crashed=0
for t in "$@"; do
	out=$(timeout 120 "$t" 2>&1)
	rc=$?
	line=$(grep -E '^[a-z0-9_-]+: [0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -n1)
	if [ -z "$line" ]; then
		printf '%s\n' "$out"
		echo "CRASH $t (exit $rc, no summary)"
		crashed=$((crashed + 1))
		continue
	fi
	p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/' <<<"$line")
	f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/' <<<"$line")
	passed=$((passed + p)); failed=$((failed + f))
	if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then printf '%s\n' "$out"; else echo "$line"; fi
done
failed=$((failed + crashed))
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
