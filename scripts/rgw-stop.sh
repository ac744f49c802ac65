#!/bin/bash
# Stop a gateway started by scripts/rgw-start.sh and remove its state directory.
#
#   scripts/rgw-stop.sh STATE_DIR [--keep]     (--keep: leave the directory, e.g. for its logs)
#
# Only the processes whose PIDs rgw-start.sh recorded in STATE_DIR/run/*.pidx are stopped.
set -uo pipefail
B=${1:?usage: rgw-stop.sh STATE_DIR [--keep]}
KEEP=${2:-}
[ -d "$B/run" ] || { echo "rgw-stop: không có trạng thái RGW trong $B" >&2; exit 0; }

pids=()
for f in "$B"/run/rgw.pidx "$B"/run/osd.pidx "$B"/run/mon.pidx; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
done
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
done
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
rm -f "$B"/run/*.pidx
[ "$KEEP" = "--keep" ] || rm -rf "$B"
echo "RGW stopped ($B)"
