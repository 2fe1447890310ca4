#!/usr/bin/env bash
# Benchmark of the edge's push route, in one run, through the real nginx
# configuration rendered by the roles, to a local 204 bench upstream:
#   - push with a store credential (identity from the exact credential, the
#     Lua body guard, the per-store limit);
#   - the same route with the identity fixed (no authentication; the guard
#     still checks the body): the goal is authenticated >= 90 % of this;
#   - a bare proxy of the push (no identity, guard or limit): what the whole
#     route costs;
#   - the admin route (sha512-crypt) for reference.
# Prints figures, not pass/fail.
#
# Usage: tools/bench-edge.sh          (make bench-edge)
#   BENCH_DURATION=10s BENCH_CONNECTIONS=8 BENCH_THREADS=2 BENCH_ROUNDS=3 BENCH_KEEP=1
set -euo pipefail
cd "$(dirname "$0")/.."
name=obs-bench-edge
image=localhost/obs-test:${OBS_TEST_SUITE:-bookworm}
duration=${BENCH_DURATION:-10s}
conns=${BENCH_CONNECTIONS:-8}
threads=${BENCH_THREADS:-2}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/.config/containers/containers.conf}
export ANSIBLE_CONFIG=$PWD/ansible.cfg
bin=.venv/bin

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cleanup() { [ "${BENCH_KEEP:-0}" = 1 ] || tools/local-container.sh down "$name" >/dev/null; }
trap cleanup EXIT

tools/local-container.sh up "$name" "$image"
# Throw-away credentials for this run only (never stored).
token=$(head -c 36 /dev/urandom | base64 | tr -d '/+=' | cut -c1-40)
password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
extra=$(printf '{"obs_domain":"bench.test.internal","obs_stores":[{"id":"S001","name":"bench"}],
  "nginx_store_tokens":{"S001":"%s"},"nginx_admin_users":[{"name":"admin","password":"%s"}],
  "nginx_push_rate":1000000,"nginx_push_burst":1000000,"nginx_admin_rate":1000000,"nginx_admin_burst":1000000,
  "ansible_connection":"podman","ansible_python_interpreter":"/usr/bin/python3"}' "$token" "$password")
"$bin/ansible-playbook" -i "$name," tools/bench-edge.yml -e "$extra" >/tmp/bench-edge-deploy.log ||
  { tail -40 /tmp/bench-edge-deploy.log; exit 1; }

ip=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")
[ -n "$ip" ] || ip=$(podman inspect -f '{{.NetworkSettings.IPAddress}}' "$name")
lua=$(mktemp /tmp/bench-edge.XXXXXX.lua)
trap 'rm -f "$lua"; cleanup' EXIT
cat >"$lua" <<LUA
wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.body = wrk.method == "POST" and '{"streams":[{"stream":{"store":"S001"},"values":[["1700000000000000000","bench"]]}]}' or nil
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
done = function(summary, latency, requests)
  local non2xx = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.0f %d %d\n", summary.requests / (summary.duration / 1e6), summary.requests, non2xx))
end
LUA

run() {  # label url auth method
  BENCH_AUTH="$3" BENCH_METHOD="$4" wrk -t"$threads" -c"$conns" -d"$duration" -s "$lua" "$2" | awk '/^RESULT/ {print $2, $3, $4}'
}
store_auth="Basic $(printf 'S001:%s' "$token" | base64 -w0)"
admin_auth="Basic $(printf 'admin:%s' "$password" | base64 -w0)"

rounds=${BENCH_ROUNDS:-3}
echo "edge benchmark: wrk -t$threads -c$conns -d$duration against $name ($ip), 204 bench upstream, $rounds rounds"
# The three push variants take turns, round after round, so a noisy moment
# on this shared machine hits them alike; each keeps its best round.
best() { awk -v cur="$1" -v new="$2" 'BEGIN { print (new + 0 > cur + 0) ? new : cur }'; }
plain_rps=0 noauth_rps=0 auth_rps=0 plain_err=0 noauth_err=0 auth_err=0
for round in $(seq "$rounds"); do
  read -r p n e < <(run plain "https://$ip:9443/loki/api/v1/push" "$store_auth" POST); plain_rps=$(best "$plain_rps" "$p"); plain_err=$((plain_err + e))
  read -r p n e < <(run noauth "https://$ip:8443/loki/api/v1/push" "$store_auth" POST); noauth_rps=$(best "$noauth_rps" "$p"); noauth_err=$((noauth_err + e))
  read -r p n e < <(run auth "https://$ip/loki/api/v1/push" "$store_auth" POST); auth_rps=$(best "$auth_rps" "$p"); auth_err=$((auth_err + e))
  echo "round $round: bare $plain_rps, no-auth $noauth_rps, authenticated $auth_rps (best so far)"
done
read -r admin_rps admin_n admin_err < <(run admin "https://$ip/prometheus/api/v1/query" "$admin_auth" GET)
printf '%-52s %10s req/s  (%s errors/non-2xx over all rounds)\n' \
  "push, bare proxy (no identity, guard or limit)" "$plain_rps" "$plain_err" \
  "push, no auth (identity fixed, body guard on)" "$noauth_rps" "$noauth_err" \
  "push, store credential (exact-credential identity)" "$auth_rps" "$auth_err" \
  "admin route, password (sha512-crypt)" "$admin_rps" "$admin_err"
awk -v a="$auth_rps" -v n="$noauth_rps" -v p="$plain_rps" 'BEGIN {
  printf "ratio authenticated/no-auth: %.1f %% (goal >= 90 %%)\n", 100 * a / n
  printf "ratio authenticated/bare proxy: %.1f %% (what the whole push route costs)\n", 100 * a / p }'
