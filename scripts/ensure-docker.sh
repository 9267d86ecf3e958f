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
# A machine that was stopped without stopping dockerd keeps its pid files; dockerd refuses to
# start while they name a process, so a pid file whose process is gone (or is no longer that
# daemon) is removed. A running daemon that does not answer is left alone and reported.
for entry in /var/run/docker.pid:dockerd /var/run/docker/containerd/containerd.pid:containerd; do
  pidfile=${entry%%:*} daemon=${entry##*:}
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$daemon" ]; then
    [ "$daemon" = dockerd ] && die "dockerd (pid $pid) runs but does not answer on its socket; see $log"
    continue
  fi
  echo "docker: removing stale $pidfile (no $daemon runs as pid ${pid:-?})"
  rm -f "$pidfile"
done

echo "docker: starting dockerd (log: $log)"
mkdir -p "$(dirname "$log")"
nohup dockerd >>"$log" 2>&1 </dev/null &
dockerd_pid=$!
for _ in $(seq "$wait_s"); do
  if docker info >/dev/null 2>&1; then
    echo "docker: engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  kill -0 "$dockerd_pid" 2>/dev/null \
    || die "dockerd exited while starting; last lines of $log: $(tail -n 3 "$log" | tr '\n' ' ')"
  sleep 1
done
die "dockerd did not answer within ${wait_s} s; last lines of $log: $(tail -n 3 "$log" | tr '\n' ' ')"
