#!/usr/bin/env bash
# Starts or removes the local systemd container that `make deploy` targets.
# Usage: tools/local-container.sh up NAME IMAGE | down NAME
set -euo pipefail
action="$1" name="$2"
case "$action" in
  up)
    image="$3"
    if ! podman container exists "$name"; then
      podman run -d --name "$name" --hostname "$name" \
        --systemd=always --privileged \
        --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
        "$image" /sbin/init >/dev/null
      echo "created container $name from $image"
    elif [ "$(podman inspect -f '{{.State.Running}}' "$name")" != true ]; then
      podman start "$name" >/dev/null
    fi
    # Wait for systemd to finish booting rather than sleeping a fixed time.
    for _ in $(seq 1 60); do
      state="$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)"
      case "$state" in running | degraded) exit 0 ;; esac
      sleep 1
    done
    echo "container $name did not finish booting (state: $state)" >&2
    exit 1
    ;;
  down)
    podman rm -f "$name" >/dev/null 2>&1 && echo "removed container $name" || echo "no container $name"
    ;;
  *)
    echo "usage: $0 up NAME IMAGE | down NAME" >&2
    exit 2
    ;;
esac
