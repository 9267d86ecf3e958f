#!/bin/sh
# Print the smallest cgroup memory limit (bytes) on the path from this process's cgroup up to
# the root, for cgroup v1 and v2; 0 when there is none. Read only.
min=0
while IFS=: read -r _ controllers path; do
    case "$controllers" in
        memory) base=/sys/fs/cgroup/memory file=memory.limit_in_bytes ;;
        "") base=/sys/fs/cgroup file=memory.max ;;
        *) continue ;;
    esac
    while :; do
        value=$(cat "$base$path/$file" 2>/dev/null || true)
        case "$value" in
            "" | max) ;;
            *) if [ "$min" -eq 0 ] || [ "$value" -lt "$min" ]; then min=$value; fi ;;
        esac
        if [ -z "$path" ] || [ "$path" = / ]; then
            break
        fi
        path=$(dirname "$path")
    done
done </proc/self/cgroup
echo "$min"
