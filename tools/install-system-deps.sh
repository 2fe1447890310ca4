#!/usr/bin/env bash
# Installs the Debian packages the test suite and the local deployment need.
# Idempotent: installs only what is missing.
set -euo pipefail
# dnsname: containers on one scenario network find each other by name (CNI
# has no DNS of its own).
packages=(podman runc debootstrap containernetworking-plugins
  golang-github-containernetworking-plugin-dnsname uidmap slirp4netns
  fuse-overlayfs python3-venv wrk openssl curl
  # The browser logger's tests drive Debian's Chromium with playwright-core.
  chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! command -v python3.11 >/dev/null; then missing+=(python3.11 python3.11-venv); fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
