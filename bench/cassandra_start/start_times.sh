#!/bin/bash
# Each start of cassandra.service on this node, one JSON object a line: when systemd started
# it, and the seconds from then to the first CQL listener and to the default superuser's creation.
set -euo pipefail
journalctl -u cassandra.service -o short-unix --no-pager | awk '
  function num(t) { return t == "" ? "null" : sprintf("%.1f", t - start) }
  function emit() { printf "{\"start\": %d, \"at\": %.3f, \"cql_s\": %s, \"superuser_s\": %s}\n", n, start, num(cql), num(su) }
  /systemd\[1\]: Started (cassandra\.service|Apache Cassandra)/ { if (n) emit(); n++; start = $1; cql = ""; su = "" }
  n && cql == "" && /Starting listening for CQL clients/ { cql = $1 }
  n && su == "" && /Created default superuser role/ { su = $1 }
  END { if (n) emit() }'
