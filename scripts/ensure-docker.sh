#!/usr/bin/env bash
# Make sure a Docker engine answers. An engine that already answers is never touched;
# otherwise Debian's docker.io is installed (when dockerd is missing) and dockerd is started
# in the background, logging to a file.
set -euo pipefail

log=${ZDMKIT_DOCKERD_LOG:-/var/log/zdmkit-dockerd.log}
wait_s=${ZDMKIT_DOCKERD_WAIT:-90}

die() { echo "docker: $*" >&2; exit 1; }

if docker info >/dev/null 2>&1; then
  echo "docker: engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "no engine answers and installing Debian's docker.io needs root (or start an engine yourself)"
  command -v apt-get >/dev/null 2>&1 || die "no engine answers and apt-get is missing: install a Docker engine yourself"
  echo "docker: installing Debian package docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed: the Debian mirror is not reachable"
  apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null \
    || die "apt-get install docker.io failed: no Docker engine obtainable from the Debian mirror"
fi

[ "$(id -u)" = 0 ] || die "dockerd is installed but not running, and starting it needs root"
echo "docker: starting dockerd (log: $log)"
mkdir -p "$(dirname "$log")"
nohup dockerd >>"$log" 2>&1 </dev/null &
for _ in $(seq "$wait_s"); do
  if docker info >/dev/null 2>&1; then
    echo "docker: engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 1
done
die "dockerd did not answer within ${wait_s} s; last lines of $log: $(tail -n 3 "$log" | tr '\n' ' ')"
