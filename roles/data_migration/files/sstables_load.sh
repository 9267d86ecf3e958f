#!/bin/bash
# Streams this Origin node's SSTables of the given tables to Target with sstableloader: a snapshot
# (hard links: no copy of the data), one load per table, then the snapshot is removed, also on
# failure. Every cell keeps its writetime and TTL; deletions keep their tombstones.
#
#   sstables_load.sh keyspace.table ...
#
# Environment (the data_migration role sets it):
#   ZDMKIT_LOADER, ZDMKIT_NODETOOL   the node's sstableloader and nodetool
#   ZDMKIT_DATA_DIRS                 the node's data directories, space-separated
#   ZDMKIT_TAG                       the snapshot's name (one left by a killed run is replaced)
#   ZDMKIT_TARGETS                   Target's contact points, comma-separated
#   ZDMKIT_TARGET_PORT, ZDMKIT_STORAGE_PORT   Target's CQL and internode ports
#   ZDMKIT_THROTTLE_MIB              MiB/s for this node's streams; 0: no limit
#   ZDMKIT_TARGET_USERNAME           Target's user, when it has credentials
#   ZDMKIT_TARGET_PASSWORD_FILE      a file with its password, removed once read (the password is
#                                    on the loader's command line while it runs: it takes it no other way)
# Output: one line per table with what was streamed. Exit 1, naming the table and the loader's
# last lines, when a load fails or Target skips a file (its table does not exist there).
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 keyspace.table ..." >&2
    exit 2
fi

log=$(mktemp)
cleanup() {
    "$ZDMKIT_NODETOOL" clearsnapshot -t "$ZDMKIT_TAG" >/dev/null 2>&1 || true
    rm -f "$log"
}
trap cleanup EXIT

password=""
if [ -n "${ZDMKIT_TARGET_PASSWORD_FILE:-}" ]; then
    password=$(cat "$ZDMKIT_TARGET_PASSWORD_FILE")
    rm -f "$ZDMKIT_TARGET_PASSWORD_FILE"
fi
auth=()
if [ -n "${ZDMKIT_TARGET_USERNAME:-}" ]; then
    auth=(-u "$ZDMKIT_TARGET_USERNAME" -pw "$password")
fi

# A snapshot flushes the memtables first: it holds every write this node has acknowledged.
"$ZDMKIT_NODETOOL" clearsnapshot -t "$ZDMKIT_TAG" >/dev/null
"$ZDMKIT_NODETOOL" snapshot -t "$ZDMKIT_TAG" -kt "$(IFS=,; echo "$*")" >/dev/null

# The loader's last lines without Java stack frames or progress updates.
loader_tail() {
    tr '\r' '\n' <"$log" | grep -v -e '^[[:space:]]*at ' -e '^progress' -e '^[[:space:]]*$' -e 'common frames omitted' \
        | tail -n 15 || true
}

# summary_value NAME: the value on the loader's "NAME : value" summary line.
summary_value() {
    sed -n "s/^ *$1 *: *\([^ ]*\).*/\1/p" "$log" | tail -n 1
}

for entry in "$@"; do
    ks=${entry%%.*}
    table=${entry#*.}
    sstables=0
    transferred=0
    for data in $ZDMKIT_DATA_DIRS; do
        # Table directories are <table>-<id>; a table name has no '-', so the glob is exact.
        for dir in "$data/$ks/$table"-*/snapshots/"$ZDMKIT_TAG"; do
            [ -d "$dir" ] || continue
            count=$(find "$dir" -maxdepth 1 -name '*-Data.db' | wc -l)
            [ "$count" -gt 0 ] || continue
            # -k: the snapshot directory's path names the table, not the keyspace
            "$ZDMKIT_LOADER" -d "$ZDMKIT_TARGETS" -p "$ZDMKIT_TARGET_PORT" -sp "$ZDMKIT_STORAGE_PORT" \
                "${auth[@]}" --throttle-mib "$ZDMKIT_THROTTLE_MIB" -k "$ks" "$dir" >"$log" 2>&1 &
            loader=$!
            # the loader's peak resident set (its launcher execs Java: one process)
            peak_kb=0
            while kill -0 "$loader" 2>/dev/null; do
                hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$loader/status" 2>/dev/null || true)
                if [ -n "$hwm" ] && [ "$hwm" -gt "$peak_kb" ]; then
                    peak_kb=$hwm
                fi
                sleep 0.5
            done
            if ! wait "$loader"; then
                echo "sstableloader failed for $entry ($dir):" >&2
                loader_tail >&2
                exit 1
            fi
            if grep -q '^Skipping file' "$log"; then
                echo "Target skipped SSTables of $entry ($dir):" >&2
                grep '^Skipping file' "$log" | head -n 5 >&2
                exit 1
            fi
            files=$(summary_value 'Total files transferred')
            if [ "${files:-0}" -eq 0 ]; then
                echo "sstableloader streamed no file of $entry ($dir):" >&2
                loader_tail >&2
                exit 1
            fi
            sstables=$((sstables + count))
            transferred=$((transferred + files))
            echo "streamed $entry from $dir: $(summary_value 'Total bytes transferred') in" \
                "$(summary_value 'Total duration') ms, loader peak memory $((peak_kb / 1024)) MiB"
        done
    done
    echo "loaded $entry: $sstables SSTable(s), $transferred file(s) streamed to Target"
done
