#!/usr/bin/env bash
# promtool, which the unit tests use to check and test the alert rules, taken out of Debian's
# `prometheus` package without installing it (installing it would start a Prometheus server
# on this machine). Placed at $1 (default .cache/bin/promtool).
set -euo pipefail
dest=${1:-.cache/bin/promtool}
[ -x "$dest" ] && exit 0
die() { echo "promtool: $*" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/zdmkit-promtool.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download prometheus >/dev/null 2>&1) \
  || { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null && (cd "$work" && apt-get download prometheus >/dev/null); } \
  || die "apt-get download prometheus failed: the Debian mirror is not reachable"
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$(dirname "$dest")"
install -m 0755 "$work/root/usr/bin/promtool" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "promtool: $("$dest" --version 2>&1 | head -n 1)"
