#!/usr/bin/env bash
# Runs `molecule test` for each named scenario (default: every directory under
# molecule/ with a molecule.yml), times each, and fails if any failed or if a
# scenario on disk was not run. Ends with the plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
all=$(ls molecule/*/molecule.yml | xargs -n1 dirname | xargs -n1 basename | sort)
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && mapfile -t scenarios <<<"$all"

passed=0 failed=0 failures=()
summary=""
for s in "${scenarios[@]}"; do
  [ -f "molecule/$s/molecule.yml" ] || { echo "no such scenario: $s" >&2; exit 2; }
  echo "=== molecule test -s $s"
  start=$(date +%s)
  if molecule test -s "$s"; then
    passed=$((passed + 1)) result=PASS
  else
    failed=$((failed + 1)) result=FAIL failures+=("$s")
  fi
  summary+=$(printf '%-12s %-4s %4ss' "$s" "$result" $(($(date +%s) - start)))$'\n'
done

echo "=== scenario summary"
printf '%s' "$summary"
# With no explicit selection, every scenario on disk must have been run.
if [ $# -eq 0 ]; then
  ran=$(printf '%s\n' "${scenarios[@]}" | sort)
  if [ "$ran" != "$all" ]; then
    echo "scenarios on disk but not run: $(comm -23 <(echo "$all") <(echo "$ran") | xargs)" >&2
    failed=$((failed + 1))
  fi
fi
[ ${#failures[@]} -gt 0 ] && echo "failed scenarios: ${failures[*]}"
echo "molecule: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
