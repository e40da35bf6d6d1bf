#!/usr/bin/env bash
# docker-base-image.sh - makes the debian:bookworm image locally when the
# engine has none: no image registry is reachable from these machines
# (../shared/notes/docker-here.md), so the base is debootstrapped from the
# machine's own apt mirror and imported. Once made, the engine keeps it.
set -euo pipefail
docker=${DOCKER:-/usr/bin/docker}
if "$docker" image inspect debian:bookworm >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null || { echo "docker-base-image: debootstrap is not installed" >&2; exit 1; }
mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
mirror=${mirror:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /var/tmp/ringkv-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "docker-base-image: debootstrap bookworm from $mirror (about a minute, once)"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
# apt inside image builds reaches the same packages as this machine
cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
cp /etc/apt/apt.conf.d/* "$rootfs/etc/apt/apt.conf.d/" 2>/dev/null || true
rm -f "$rootfs/etc/apt/sources.list"
tar -C "$rootfs" -c . | "$docker" import - debian:bookworm >/dev/null
echo "docker-base-image: debian:bookworm imported"
