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

die() { echo "bench-load: $*" >&2; exit 2; }

[ "$(podman inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] \
  || die "container $name is not running: run 'make deploy' first"
ls "$bundles"/*.env >/dev/null 2>&1 || die "no store bundles in $bundles: run 'make deploy' (the secrets role writes them)"

address="$(podman inspect -f '{{.NetworkSettings.IPAddress}}' "$name")"
[ -n "$address" ] || address="$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$name" | awk '{print $1}')"
[ -n "$address" ] || die "cannot find the address of container $name"

url="$(sed -n 's/^LOKI_URL=//p' "$(ls "$bundles"/*.env | head -n1)" | tr -d "\"'")"
hostport="${url#https://}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port=443
[ "$hostport" != "$host" ] && port="${hostport##*:}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
podman cp "$name:$ca_path" "$work/ca.crt" || die "no CA certificate at $name:$ca_path (is the tls role deployed?)"

admin_args=()
if [ -f "$vault_file" ] && [ -f "$vault_pass" ]; then
  (umask 077
   .venv/bin/ansible-vault view --vault-password-file "$vault_pass" "$vault_file" \
     | "$python" -c 'import sys, yaml; print((yaml.safe_load(sys.stdin) or {}).get("obs_secrets", {}).get("admin_password", ""))' \
     > "$work/admin-password") || true
  [ -s "$work/admin-password" ] && admin_args=(--admin-password-file "$work/admin-password")
fi
[ ${#admin_args[@]} -eq 0 ] && echo "bench-load: no admin password from $vault_file: the zero-loss check will be skipped" >&2

mkdir -p "$(dirname "$report")"
echo "bench-load: $url -> $name ($address:$port), bundles $bundles" >&2
set -x
PYTHONPATH=tools "$python" -m obs_loadtest --bundles "$bundles" --resolve "$host:$port:$address" \
  --ca-file "$work/ca.crt" "${admin_args[@]}" --json-out "$report" ${BENCH_ARGS:-} "$@"
