#!/usr/bin/env bash
# Runs `molecule test` for each named scenario (default: every directory under
# molecule/ with a molecule.yml, plus the runs on a second platform listed in
# SECOND_PLATFORM_RUNS), times each, and fails if any failed or if a scenario
# on disk was not run. Ends with the plain "N passed, N failed" line.
# A run named NAME@SUITE runs scenario NAME on the image obs-test:SUITE.
set -uo pipefail
cd "$(dirname "$0")/.."
all=$(ls molecule/*/molecule.yml | xargs -n1 dirname | xargs -n1 basename | sort)
scenarios=("$@")
# Debian 13 is the second platform: the base role runs there too.
SECOND_PLATFORM_RUNS="${SECOND_PLATFORM_RUNS-common@trixie}"
if [ ${#scenarios[@]} -eq 0 ]; then
  mapfile -t scenarios <<<"$all"
  for run in $SECOND_PLATFORM_RUNS; do scenarios+=("$run"); done
fi

passed=0 failed=0 failures=()
summary=""
for s in "${scenarios[@]}"; do
  name="${s%@*}" suite=bookworm
  [[ "$s" == *@* ]] && suite="${s#*@}"
  [ -f "molecule/$name/molecule.yml" ] || { echo "no such scenario: $name" >&2; exit 2; }
  echo "=== molecule test -s $name (debian $suite)"
  start=$(date +%s)
  if OBS_TEST_SUITE="$suite" molecule test -s "$name"; then
    passed=$((passed + 1)) result=PASS
  else
    failed=$((failed + 1)) result=FAIL failures+=("$s")
  fi
  summary+=$(printf '%-18s %-4s %4ss' "$s" "$result" $(($(date +%s) - start)))$'\n'
done

echo "=== scenario summary"
printf '%s' "$summary"
# With no explicit selection, every scenario on disk must have been run.
if [ $# -eq 0 ]; then
  ran=$(printf '%s\n' "${scenarios[@]%@*}" | sort -u)
  if [ "$ran" != "$all" ]; then
    echo "scenarios on disk but not run: $(comm -23 <(echo "$all") <(echo "$ran") | xargs)" >&2
    failed=$((failed + 1))
  fi
fi
[ ${#failures[@]} -gt 0 ] && echo "failed scenarios: ${failures[*]}"
echo "molecule: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
