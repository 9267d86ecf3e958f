#!/usr/bin/env bash
# `make lab` after phase 0: run the phases the local lab has not reached yet, 1 to 5, each
# with its playbook (the writer keeps writing all along), then the loss check and the report.
# A lab that already reached phase 5 only gets the loss check and the report again.
set -euo pipefail
cd "$(dirname "$0")/.."
state=inventories/lab/state/phase.json
recorded() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["phase"])' "$state" 2>/dev/null || echo 0; }

for phase in 1 2 3 4 5; do
  if [ "$(recorded)" -lt "$phase" ]; then
    echo "lab: phase $phase (playbooks/phase$phase.yml)"
    started=$(date +%s)
    ansible-playbook "playbooks/phase$phase.yml"
    echo "lab: phase $phase done in $(( $(date +%s) - started )) s"
  fi
done
ansible-playbook playbooks/loss_check.yml
ansible-playbook playbooks/status.yml
ansible-playbook playbooks/report.yml
cat <<'MSG'
lab: the migration is done: clients use Target directly, the proxies are stopped.
  The report:      reports/migration/index.html
  Prometheus:      http://127.0.0.1:9090
  The demo app:    curl -s "localhost:8000/status/eva?entries=2"
  Its clusters:    docker exec -it cassandra-target-1 cqlsh -u cassandra -p cassandra
  Remove the lab:  make lab-down
MSG
