#!/bin/bash
# Print epoch seconds of: the container's start (PID 1), the first start of cassandra.service,
# its first CQL listener and the creation of the default superuser (on one node only).
set -euo pipefail
echo "container $(date -d "$(ps -o lstart= -p 1)" +%s)"
journal=$(journalctl -u cassandra.service -o short-unix --no-pager)
first() { awk -v key="$1" -v pattern="$2" '$0 ~ pattern { print key, int($1); exit }' <<<"$journal"; }
first service 'Started cassandra.service|Started Apache Cassandra'
first cql 'Starting listening for CQL clients'
first superuser 'Created default superuser role'
