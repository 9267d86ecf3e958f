#!/usr/bin/env bash
# After phase 0 on the local lab: say what runs and whether the migration can go on.
# Phases 1-4 run clients through the ZDM proxy; without its artifact the lab stops at phase 0.
set -euo pipefail
if zdmkit-artifacts check --for lab >/dev/null 2>&1; then
  echo "lab: phase 0 is deployed. This release has no ZDM proxy role, so the lab stops at phase 0." >&2
  exit 2
fi
cat >&2 <<'MSG'
lab: phase 0 is deployed and running:
  Origin with the demo data, Target with the schema, Prometheus (http://127.0.0.1:9090),
  the demo app on Origin (http://127.0.0.1:8000) and its writer.
  The report so far: reports/migration/index.html
lab: the migration stops here. Phase 1 puts the ZDM proxy between the app and both clusters,
  and the proxy's artifact is missing from the cache:
MSG
zdmkit-artifacts check --for lab >&2 || true
echo "lab: put the artifact in \$ZDMKIT_ARTIFACTS (see: zdmkit-artifacts list) and run make lab again." >&2
exit 2
