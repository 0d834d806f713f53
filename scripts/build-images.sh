#!/usr/bin/env bash
# Build the local systemd images that Molecule boots as test hosts.
# No image registry is reachable, so each image is bootstrapped from the Debian
# mirror this machine's apt already uses (override with AIODEPLOY_DEBIAN_MIRROR).
# An image that exists is kept; remove it with `docker rmi` to rebuild it.
set -euo pipefail

# tag=suite
images=(
    "aiodeploy/debian:12=bookworm"
    "aiodeploy/debian:13=trixie"
)
# What a freshly installed server has, plus the tools the tests run inside it.
packages=python3,systemd,systemd-sysv,dbus,ca-certificates,iproute2,sudo,curl,procps,openssl

debian_mirror() {
    if [[ -n "${AIODEPLOY_DEBIAN_MIRROR:-}" ]]; then
        echo "$AIODEPLOY_DEBIAN_MIRROR"
        return
    fi
    local uri
    # deb822 sources first, then the one-line format; skip the security archive.
    uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -v -- '-security' | head -n1 || true)
    if [[ -z "$uri" ]]; then
        uri=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v -- '-security' | head -n1 || true)
    fi
    [[ -n "$uri" ]] || { echo "No Debian mirror found in apt sources; set AIODEPLOY_DEBIAN_MIRROR" >&2; exit 1; }
    echo "$uri"
}

for entry in "${images[@]}"; do
    tag=${entry%%=*}
    suite=${entry#*=}
    if docker image inspect "$tag" >/dev/null 2>&1; then
        continue
    fi
    mirror=$(debian_mirror)
    root=$(mktemp -d "/var/tmp/aiodeploy-${suite}.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    printf '\n== Building %s from %s (%s)\n' "$tag" "$suite" "$mirror"
    debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -n 30 "$root.log" >&2; exit 1; }
    rm -f "$root.log"
    # Nothing in the image needs these; they only slow container boots or fail in containers.
    rm -f "$root"/etc/systemd/system/*.wants/systemd-timesyncd.service
    tar -C "$root" -c . | docker import \
        -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' - "$tag" >/dev/null
    rm -rf "$root"
    trap - EXIT
done
