#!/bin/bash
# Seconds of each part of installing packages on a fresh host, one "part value" a line:
# updating the package lists, downloading the packages, unpacking and configuring them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
t() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  awk -v ns=$((end - start)) 'BEGIN { printf "%.1f", ns / 1e9 }'
}
echo "update $(t apt-get update -qq)"
echo "download $(t apt-get install -y -qq --no-install-recommends --download-only "$@")"
echo "install $(t apt-get install -y -qq --no-install-recommends "$@")"
echo "archives_mb $(du -sm /var/cache/apt/archives | cut -f1)"
echo "lists_mb $(du -sm /var/lib/apt/lists | cut -f1)"
