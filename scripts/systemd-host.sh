#!/usr/bin/env bash
# Start a throw-away systemd host (a container of the local test images), or remove it.
#   scripts/systemd-host.sh start NAME [IMAGE]    (default image: $AIODEPLOY_IMAGE_1 or aiodeploy/debian:12)
#   scripts/systemd-host.sh rm NAME
# AIODEPLOY_HOST_NETWORK=1 puts the host in the machine's network namespace (several hosts, each on its own
# 127.0.0.x), as the load_balanced scenario does.
set -euo pipefail
action=$1 name=$2
image=${3:-${AIODEPLOY_IMAGE_1:-aiodeploy/debian:12}}

case $action in
start)
    docker rm -f "$name" >/dev/null 2>&1 || true
    # The systemd container options that work on these machines (the Molecule platforms use the same).
    if [ -n "${AIODEPLOY_HOST_NETWORK:-}" ]; then network=(--network host); else network=(--hostname "$name"); fi
    docker run -d --name "$name" "${network[@]}" \
        --cap-add SYS_ADMIN --cap-add NET_ADMIN \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --tmpfs /run --tmpfs /run/lock --cgroupns host \
        -v /sys/fs/cgroup:/sys/fs/cgroup:rw --stop-signal SIGRTMIN+3 \
        "$image" /lib/systemd/systemd >/dev/null
    ;;
rm)
    docker rm -f "$name" >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: $0 start|rm NAME [IMAGE]" >&2
    exit 2
    ;;
esac
