#!/usr/bin/env bash
# Builds the offline, systemd-capable Debian image that every Molecule scenario
# and `make deploy` boot. No registry is reachable here, so the root filesystem
# comes from debootstrap and is imported into podman.
#
# The image is cached: its label `obs.recipe` holds a hash of this script, and
# the build is skipped while an image with the same hash exists.
#
# Usage: tools/build-test-image.sh [bookworm|trixie]   (default: bookworm)
set -euo pipefail

suite="${1:-bookworm}"
mirror="${OBS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
image="localhost/obs-test:${suite}"
here="$(cd "$(dirname "$0")" && pwd)"

# Installed in the image: what systemd, Ansible and the probes need to run.
base_packages=(
  systemd systemd-sysv dbus python3 python3-apt procps iproute2
  ca-certificates curl openssl netcat-openbsd acl jq sudo
)
# Only downloaded into /var/cache/apt/archives: the roles still install them
# for real, but from the local cache, so a scenario costs no mirror traffic and
# stays fast. Roles that need more simply fetch it from the mirror.
cached_packages=(
  nginx libnginx-mod-http-lua lua-cjson lua-zlib prometheus prometheus-alertmanager prometheus-node-exporter
  ufw cron sqlite3 restic systemd-timesyncd python3-cryptography
  unzip zstd rsync logrotate apache2-utils tzdata
)

recipe_hash="$(
  {
    cat "$0"
    echo "$suite $mirror"
  } | sha256sum | cut -c1-16
)"

if podman image exists "$image" &&
  [ "$(podman image inspect --format '{{ index .Labels "obs.recipe" }}' "$image")" = "$recipe_hash" ]; then
  echo "test image $image is current (recipe $recipe_hash)"
  exit 0
fi

command -v debootstrap >/dev/null || {
  echo "debootstrap is missing: apt-get install debootstrap" >&2
  exit 1
}

start=$(date +%s)
rootfs="$(mktemp -d /var/tmp/obs-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

echo "building $image with debootstrap ($suite, recipe $recipe_hash)"
include="$(IFS=,; echo "${base_packages[*]}")"
debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >/dev/null

cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
# debootstrap's minbase leaves the .debs it used; the cache must keep what we
# download on purpose, and apt must not clean it after installs.
echo 'APT::Keep-Downloaded-Packages "true";' >"$rootfs/etc/apt/apt.conf.d/10keep-debs"
chroot "$rootfs" apt-get update -qq
chroot "$rootfs" apt-get install -y -qq --download-only "${cached_packages[@]}" >/dev/null

# Container hygiene: no getty on a console that does not exist, no kernel
# module loading (the host owns the kernel; trixie fails kmod.service), a machine-id
# made at boot, a hostname set by podman.
rm -f "$rootfs/etc/machine-id" "$rootfs/var/lib/dbus/machine-id"
: >"$rootfs/etc/machine-id"
chroot "$rootfs" systemctl mask getty@tty1.service serial-getty@.service \
  systemd-remount-fs.service dev-hugepages.mount sys-fs-fuse-connections.mount \
  kmod.service systemd-modules-load.service >/dev/null 2>&1 || true

tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=podman' \
  --change "LABEL obs.recipe=$recipe_hash" \
  - "$image" >/dev/null

echo "built $image in $(($(date +%s) - start)) s"
