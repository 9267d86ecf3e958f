#!/usr/bin/env bash
# Build the lab host image: debootstrap a Debian bookworm root with systemd and python3,
# then `docker import` it. The tag is derived from this recipe (this script and
# packages.txt), so an unchanged recipe is never rebuilt.
#   build.sh            build when missing, print the tag
#   build.sh --tag      only print the tag
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=${ZDMKIT_IMAGE_REPO:-zdmkit/bookworm-systemd}
suite=bookworm
recipe_hash=$(cat "$here/build.sh" "$here/packages.txt" | sha256sum | cut -c1-12)
tag="$repo:$recipe_hash"

if [ "${1:-}" = "--tag" ]; then echo "$tag"; exit 0; fi

die() { echo "base image: $*" >&2; exit 1; }

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image: $tag present" >&2
  echo "$tag"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "building $tag needs root (debootstrap)"
if ! command -v debootstrap >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
    || die "debootstrap is missing and apt-get could not install it"
fi

# Use the mirror this machine already uses, when it is a Debian machine; otherwise
# debootstrap's own default.
mirror=${ZDMKIT_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hoE '^(URIs:|deb) +[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | head -n 1 | awk '{print $2}' || true)
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/zdmkit-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
include=$(grep -vE '^\s*(#|$)' "$here/packages.txt" | paste -sd, -)
echo "base image: debootstrap $suite (${mirror:-default mirror}) into $root" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$root" ${mirror:+"$mirror"} >"$root.log" 2>&1 \
  || die "debootstrap failed; last lines: $(tail -n 5 "$root.log" | tr '\n' ' ')"
rm -f "$root.log"

# Same package sources as this machine when it runs bookworm (keeps a snapshot pin).
if grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
  : >"$root/etc/apt/sources.list"
fi

# What a container does not need, or cannot do, at boot.
for unit in getty.target systemd-udevd.service systemd-udev-trigger.service \
            systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
            systemd-remount-fs.service systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
: >"$root/etc/machine-id"
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/90zdmkit-norecommends"
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/tmp/"*
# The image carries no package lists: date the empty list directory to the epoch so that
# `apt: update_cache=true cache_valid_time=...` updates them on first use.
touch -d @0 "$root/var/lib/apt/lists"

tar -C "$root" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/sbin/init"]' \
  --message "zdmkit lab host ($suite, recipe $recipe_hash)" - "$tag" >/dev/null \
  || die "docker import failed"
echo "base image: built $tag" >&2
echo "$tag"
