#!/usr/bin/env bash
# Prepare this machine for the demo and the test suite. Idempotent: every step
# is skipped when its result is already there.
#   1. host packages: Docker engine (distro docker.io), debootstrap, wrk, shellcheck
#   2. a running Docker daemon
#   3. the development virtualenv (.venv) from requirements-dev.txt
#   4. the local systemd test images (scripts/build-images.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

host_packages=(docker.io debootstrap wrk shellcheck)

missing=()
for pkg in "${host_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "Installing host packages: ${missing[*]}"
    apt-get update -qq
    # The distro package may start the daemon through its own scripts; we do that ourselves below.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    log "Starting the Docker daemon (log: /var/log/dockerd.log)"
    # No init system runs services on these machines: start dockerd detached.
    setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

stamp=.venv/.requirements-dev.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [[ ! -x .venv/bin/ansible-playbook || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "Creating the development virtualenv .venv"
    python3 -m venv .venv
    # pip's configuration here may name local indexes that do not exist: keep those warnings out.
    .venv/bin/pip install -q --upgrade pip 2> >(grep -v 'is ignored: it is neither' >&2)
    .venv/bin/pip install -q -r requirements-dev.txt 2> >(grep -v 'is ignored: it is neither' >&2)
    echo "$want" >"$stamp"
fi

scripts/build-images.sh
