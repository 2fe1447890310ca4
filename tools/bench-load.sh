#!/usr/bin/env bash
# Load-tests the local deployment (`make deploy`) through its nginx edge and
# prints the figures: `make bench-load` (BENCH_ARGS="..." passes options to the
# load tool, e.g. BENCH_ARGS="--sustained 100:30s --spike 200:10s").
#
# What it uses, all from the local deployment:
#   - the store bundles the secrets role wrote: $INVENTORY/credentials/*.env
#     (LOKI_URL=https://<obs_domain>, LOKI_USERNAME, LOKI_PASSWORD, STORE_ID);
#   - the container's address: the edge's name (from LOKI_URL) is pinned to it
#     with --resolve, so TLS is verified against the real name;
#   - the deployment's CA certificate, copied out of the container (/etc/obs-tls/ca.crt);
#   - the admin password from the inventory's vault (for the zero-loss query),
#     when the vault and its password file are there; else the check is skipped.
# Writes the JSON report to reports/bench-load.json.
#
# Two modes (BENCH_UPSTREAM):
#   loki (default)  the whole path: edge -> the container's real Loki, with the
#                   zero-loss check. Refuses to run (exit 2) when the edge has no
#                   push route (Loki not deployed: obs_components.loki false):
#                   every push would get 401 and the figures would mean nothing.
#                   Loki deployed but down: runs, and the 502s are the finding.
#   test            opt-in, only where Loki does NOT run (no Loki binary on the
#                   machine, docs/testing.md): measures the real edge (TLS, per-store
#                   basic auth, push rate limit, proxying) in front of a TEST
#                   STAND-IN that is not Loki. It redeploys only the nginx role
#                   (--tags nginx) with obs_components.loki true, so the edge
#                   renders its push route; starts molecule/edge/files/test_upstream.py
#                   (answers a push with 204, stores nothing) as the transient
#                   unit obs-bench-test-upstream on 127.0.0.1:3100 in the
#                   container; runs the load tool with --verify off (the stand-in
#                   cannot answer queries); and on exit, even on failure, stops
#                   the stand-in and redeploys nginx with the inventory's own
#                   settings (the state of `make deploy`). The output and the
#                   JSON report (key "bench") say the upstream was a stand-in.
# BENCH_PUSH_RATE / BENCH_PUSH_BURST (either mode) raise the edge's per-store
# push limit (nginx_push_rate / nginx_push_burst) for the run only, the same
# way (nginx redeployed for the run, restored after). Unset: the deployed limit.
# The nginx redeploys log to reports/bench-load-edge.log. The hourly backup
# (minute 17), if it runs meanwhile, archives the temporary nginx.conf.
set -euo pipefail
cd "$(dirname "$0")/.."

name="${OBS_LOCAL_HOST:-obs-central}"
inventory="${INVENTORY:-inventories/local}"
bundles="${BUNDLES:-$inventory/credentials}"
ca_path="${OBS_CA_PATH:-/etc/obs-tls/ca.crt}"
vault_file="$inventory/secrets.vault.yml"
vault_pass="${ANSIBLE_VAULT_PASSWORD_FILE:-$inventory/.vault-pass}"
python="${PYTHON:-.venv/bin/python}"
report="${REPORT:-reports/bench-load.json}"
mode="${BENCH_UPSTREAM:-loki}"
push_rate="${BENCH_PUSH_RATE:-}"
push_burst="${BENCH_PUSH_BURST:-}"
edge_log="reports/bench-load-edge.log"
upstream_unit=obs-bench-test-upstream
upstream_script=/run/obs-bench-test-upstream.py
upstream_src=molecule/edge/files/test_upstream.py

die() { echo "bench-load: $*" >&2; exit 2; }

case "$mode" in loki | test) ;; *) die "BENCH_UPSTREAM=$mode: expected loki (default) or test" ;; esac
for v in "$push_rate" "$push_burst"; do
  [ -z "$v" ] || [[ "$v" =~ ^[0-9]+$ ]] || die "BENCH_PUSH_RATE/BENCH_PUSH_BURST must be whole numbers (got '$v')"
done
[ -z "$push_rate" ] || [ "$push_rate" -gt 0 ] || die "BENCH_PUSH_RATE must be > 0"

[ "$(podman inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] \
  || die "container $name is not running: run 'make deploy' first"
ls "$bundles"/*.env >/dev/null 2>&1 || die "no store bundles in $bundles: run 'make deploy' (the secrets role writes them)"

loki_state="$(podman exec "$name" systemctl is-active loki 2>/dev/null || true)"
push_route="$(podman exec "$name" grep -c 'location = /loki/api/v1/push' /etc/nginx/nginx.conf 2>/dev/null || true)"
if [ "$mode" = loki ] && [ "${push_route:-0}" = 0 ]; then
  die "the edge of $name has no push route: Loki is not deployed there (loki.service: ${loki_state:-unknown};
  obs_components.loki is false when no Loki release file is in /srv/artifacts). Every push would get
  401 and the figures would mean nothing. Either install Loki from real artifacts (README, \"Logs and
  dashboards\") and run 'make deploy', or measure the edge alone in front of a test stand-in (NOT
  Loki): make bench-load BENCH_UPSTREAM=test"
fi
if [ "$mode" = loki ] && [ "$loki_state" != active ]; then
  echo "bench-load: WARNING: loki.service is ${loki_state:-unknown} in $name: pushes will get 502; that is the finding" >&2
fi
if [ "$mode" = test ] && [ "$loki_state" = active ]; then
  die "Loki runs in $name: benchmark the real path (without BENCH_UPSTREAM=test)"
fi

address="$(podman inspect -f '{{.NetworkSettings.IPAddress}}' "$name")"
[ -n "$address" ] || address="$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$name" | awk '{print $1}')"
[ -n "$address" ] || die "cannot find the address of container $name"

url="$(sed -n 's/^LOKI_URL=//p' "$(ls "$bundles"/*.env | head -n1)" | tr -d "\"'")"
hostport="${url#https://}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port=443
[ "$hostport" != "$host" ] && port="${hostport##*:}"

work="$(mktemp -d)"
edge_changed=""
upstream_started=""

# nginx only, with the inventory's settings plus the extra vars given ($@).
deploy_edge() {
  mkdir -p "$(dirname "$edge_log")"
  echo "=== $(date -u +%FT%TZ) ansible-playbook --tags nginx $*" >>"$edge_log"
  ANSIBLE_VAULT_PASSWORD_FILE="$vault_pass" .venv/bin/ansible-playbook -i "$inventory" \
    playbooks/site.yml --tags nginx "$@" >>"$edge_log" 2>&1
}

cleanup() {
  local rc=$?
  if [ -n "$upstream_started" ]; then
    podman exec "$name" systemctl stop "$upstream_unit" >/dev/null 2>&1 || true
    podman exec "$name" rm -f "$upstream_script" || true
    echo "bench-load: stopped the test upstream ($upstream_unit)" >&2
  fi
  if [ -n "$edge_changed" ]; then
    echo "bench-load: restoring the edge: nginx redeployed with the inventory's settings (log: $edge_log)" >&2
    if ! deploy_edge; then
      echo "bench-load: RESTORING THE EDGE FAILED (see $edge_log): run 'make deploy'" >&2
      rc=1
    fi
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

podman cp "$name:$ca_path" "$work/ca.crt" || die "no CA certificate at $name:$ca_path (is the tls role deployed?)"

admin_args=()
if [ "$mode" = loki ]; then
  if [ -f "$vault_file" ] && [ -f "$vault_pass" ]; then
    (umask 077
     .venv/bin/ansible-vault view --vault-password-file "$vault_pass" "$vault_file" \
       | "$python" -c 'import sys, yaml; print((yaml.safe_load(sys.stdin) or {}).get("obs_secrets", {}).get("admin_password", ""))' \
       > "$work/admin-password") || true
    [ -s "$work/admin-password" ] && admin_args=(--admin-password-file "$work/admin-password")
  fi
  [ ${#admin_args[@]} -eq 0 ] && echo "bench-load: no admin password from $vault_file: the zero-loss check will be skipped" >&2
else
  # The stand-in cannot answer queries: no zero-loss check.
  admin_args=(--verify off)
fi

# The edge for the run: the push route (test mode) and/or a raised push limit.
if [ "$mode" = test ] || [ -n "$push_rate$push_burst" ]; then
  [ -f "$vault_pass" ] || die "no vault password file $vault_pass: needed to redeploy nginx"
  if [ "$mode" = test ]; then
    podman exec "$name" python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 3100))' 2>/dev/null \
      || die "port 127.0.0.1:3100 is taken in $name: Loki's port must be free for the test upstream"
  fi
  # The inventory's rendered obs_components, with Loki's route switched on.
  ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=ansible.builtin.json \
    .venv/bin/ansible "$name" -i "$inventory" -m ansible.builtin.debug \
    -a "msg={{ obs_components | combine({'loki': true} if '$mode' == 'test' else {}) }}" 2>/dev/null \
    | MODE="$mode" RATE="$push_rate" BURST="$push_burst" HOST="$name" "$python" -c '
import json, os, sys
out = json.load(sys.stdin)
extra = {}
if os.environ["MODE"] == "test":
    extra["obs_components"] = out["plays"][0]["tasks"][0]["hosts"][os.environ["HOST"]]["msg"]
if os.environ["RATE"]:
    extra["nginx_push_rate"] = int(os.environ["RATE"])
if os.environ["BURST"]:
    extra["nginx_push_burst"] = int(os.environ["BURST"])
print(json.dumps(extra))' >"$work/edge-vars.json" || die "cannot read obs_components from the inventory $inventory"
  echo "bench-load: redeploying nginx for the run: $(cat "$work/edge-vars.json") (log: $edge_log)" >&2
  edge_changed=1
  deploy_edge -e "@$work/edge-vars.json" || { tail -n 30 "$edge_log" >&2; die "redeploying nginx failed (see $edge_log)"; }
fi

if [ "$mode" = test ]; then
  # Through the container's shell: podman cp cannot write into its /run tmpfs.
  podman exec -i "$name" sh -c "umask 022; cat > $upstream_script" <"$upstream_src"
  upstream_started=1
  podman exec "$name" systemd-run --quiet --collect --unit="$upstream_unit" \
    --description="obs bench-load TEST upstream on 127.0.0.1:3100 (NOT Loki)" \
    /usr/bin/python3 "$upstream_script" /dev/null 127.0.0.1:3100
  for _ in $(seq 1 20); do
    podman exec "$name" python3 -c 'import socket; socket.create_connection(("127.0.0.1", 3100), 1)' 2>/dev/null && break
    sleep 0.5
  done
  podman exec "$name" python3 -c 'import socket; socket.create_connection(("127.0.0.1", 3100), 1)' 2>/dev/null \
    || die "the test upstream did not start listening on 127.0.0.1:3100 in $name"
fi

# The push limit the edge enforces during the run, as nginx was given it.
limit="$(podman exec "$name" cat /etc/nginx/nginx.conf \
  | sed -n -e 's/.*zone=obs_push:[^ ]* rate=\([0-9]*\)r\/s.*/rate \1 r\/s/p' \
           -e 's/.*limit_req zone=obs_push burst=\([0-9]*\).*/burst \1/p' | paste -sd ' ')"
limit="per-store push limit ${limit:-unknown}"
if [ -n "$push_rate$push_burst" ]; then limit="$limit (raised for this run)"; fi

banner() {
  [ "$mode" = test ] || return 0
  cat <<EOF
==============================================================================
  TEST UPSTREAM -- NOT LOKI. These figures measure the EDGE of $name only:
  TLS, per-store basic auth, $limit, proxying,
  in front of $upstream_src on 127.0.0.1:3100, which answers 204 and stores
  nothing. No log reached Loki; there is no zero-loss check. Loki's own
  ingestion was NOT measured (no Loki binary on this machine, docs/testing.md).
==============================================================================
EOF
}

mkdir -p "$(dirname "$report")"
echo "bench-load: $url -> $name ($address:$port), bundles $bundles, upstream: $([ "$mode" = test ] && echo "TEST STAND-IN (not Loki)" || echo Loki), $limit" >&2
banner
rc=0
set -x
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
PYTHONPATH=tools "$python" -m obs_loadtest --bundles "$bundles" --resolve "$host:$port:$address" \
  --ca-file "$work/ca.crt" "${admin_args[@]}" --json-out "$report" ${BENCH_ARGS:-} "$@" || rc=$?
{ set +x; } 2>/dev/null
if [ "$mode" = test ] && [ -f "$report" ]; then
  UPSTREAM="$upstream_src on 127.0.0.1:3100 in $name (transient unit $upstream_unit)" LIMIT="$limit" \
    "$python" - "$report" <<'EOF'
import json, os, sys
path = sys.argv[1]
with open(path) as fh:
    report = json.load(fh)
note = ("TEST UPSTREAM, NOT LOKI: the edge was measured in front of " + os.environ["UPSTREAM"]
        + ", which answers 204 and stores nothing; no zero-loss check")
report["bench"] = {"upstream": "test-stand-in-not-loki", "upstream_detail": os.environ["UPSTREAM"],
                   "edge_limit": os.environ["LIMIT"], "note": note}
report["warnings"] = [note] + report.get("warnings", [])
with open(path, "w") as fh:
    json.dump(report, fh, indent=2)
EOF
fi
banner
exit "$rc"
