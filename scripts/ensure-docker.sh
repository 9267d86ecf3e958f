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
# A machine that was stopped without stopping dockerd keeps its pid files, and dockerd refuses
# to start while they exist: a pid file whose process is gone (or is another program now) is
# removed. A dockerd that runs but does not answer yet (still starting) is waited for instead.
run_dir=${ZDMKIT_DOCKER_RUN_DIR:-/var/run}
dockerd_pid=
for entry in "$run_dir/docker.pid:dockerd" "$run_dir/docker/containerd/containerd.pid:containerd"; do
  pidfile=${entry%:*} daemon=${entry##*:}
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$daemon" ]; then
    [ "$daemon" = dockerd ] && dockerd_pid=$pid
    continue
  fi
  echo "docker: removing stale $pidfile (no $daemon runs as pid ${pid:-?})"
  rm -f "$pidfile"
done

mkdir -p "$(dirname "$log")"
if [ -n "$dockerd_pid" ]; then
  echo "docker: dockerd runs (pid $dockerd_pid) but does not answer yet; waiting for it (log: $log)"
else
  echo "docker: starting dockerd (log: $log)"
  nohup dockerd >>"$log" 2>&1 </dev/null &
  dockerd_pid=$!
fi
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
