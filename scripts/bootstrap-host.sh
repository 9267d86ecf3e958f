#!/usr/bin/env bash
# Host prerequisites that come from Debian packages: what `make bootstrap` needs before the
# Python environment exists. Installs only what is missing; prints one line per thing.
set -euo pipefail

die() { echo "bootstrap: $*" >&2; exit 1; }
need=()
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# Headless Chromium and its WebDriver: the dashboard tests open every dashboard as a person would.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "python3 >= 3.11 is required (found: $(python3 --version 2>&1))"
python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)

if [ ${#need[@]} -eq 0 ]; then
  echo "bootstrap: host packages present"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "missing ${need[*]}; installing them needs root"
command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and apt-get is not available"
echo "bootstrap: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || die "apt-get update failed: the Debian mirror is not reachable"
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || die "apt-get install ${need[*]} failed"
