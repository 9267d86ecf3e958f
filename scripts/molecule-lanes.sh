#!/usr/bin/env bash
# Runs Molecule scenarios in lanes side by side: each argument is one lane, its scenarios
# (separated by spaces) one after another; a lane stops at its first failed scenario, the other
# lanes go on. Each scenario's output is kept, stamped, in $SUITE_LOGS/molecule-NAME.log
# (scripts/suite_timings.py); with more than one lane, every console line starts with [NAME].
# The first lane comes first when the cores are all busy: the others' commands run at nice 10
# (a scenario's containers can weigh more too: ZDMKIT_MOLECULE_CPU_SHARES in its molecule.yml).
#   scripts/molecule-lanes.sh lab "substrate cassandra tls"   # two lanes
#   scripts/molecule-lanes.sh "cassandra tls"                  # one lane, one after another
set -uo pipefail
cd "$(dirname "$0")/.."
logs=${SUITE_LOGS:-.cache/suite}
[ $# -gt 0 ] || { echo "usage: $0 LANE [LANE ...] (a lane: scenario names separated by spaces)" >&2; exit 2; }
for lane in "$@"; do
  for s in $lane; do
    [ -f "molecule/$s/molecule.yml" ] || { echo "molecule-lanes: no scenario '$s' (molecule/$s/molecule.yml)" >&2; exit 2; }
  done
done

lane() {
  local prefix=$1 niceness=$2 s; shift 2
  for s in "$@"; do
    echo "${prefix:+[$s] }== molecule test -s $s"
    nice -n "$niceness" python3 scripts/suite_timings.py run --log "$logs/molecule-$s.log" ${prefix:+--prefix "[$s] "} \
      -- molecule test -s "$s" || { echo "${prefix:+[$s] }== molecule test -s $s failed"; return 1; }
  done
}

if [ $# -eq 1 ]; then
  # shellcheck disable=SC2086  # the lane's names split on purpose
  lane "" 0 $1
  exit
fi
pids=()
niceness=0
for l in "$@"; do
  # shellcheck disable=SC2086
  lane side-by-side "$niceness" $l &
  pids+=("$!")
  niceness=10
done
rc=0
for pid in "${pids[@]}"; do
  wait "$pid" || rc=1
done
exit $rc
