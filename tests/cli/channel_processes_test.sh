#!/usr/bin/env bash
# A cloud and an edge as real processes from config/cloudcore.toml and
# config/edgecore.toml (ports and directories moved to a temporary place):
# token bootstrap, mTLS connection, the edge's restart with its stored
# certificate, and clean stops.
# usage: channel_processes_test.sh KEDGE SOURCE_DIR
set -euo pipefail
KEDGE=$(realpath "$1")
SRC=$(realpath "$2")
source "$(dirname "$0")/lib.sh"
wait_for() {  # FILE PATTERN
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1:"; cat "$1"; return 1
}
p1=$(free_port); p2=$(free_port); p3=$(free_port)
sed -e "s|/var/lib/kedge/cloud|$work/cloud|" -e "s|port = 10000|port = $p1|" -e "s|port = 6443|port = $p3|" \
    -e "s|https_port = 10002|https_port = $p2|" -e 's|address = "0.0.0.0"|address = "127.0.0.1"|' \
    "$SRC/config/cloudcore.toml" >"$work/cloud.toml"
sed -e "s|/var/lib/kedge/edge|$work/edge|g" -e "s|127.0.0.1:10000|127.0.0.1:$p1|" \
    -e "s|127.0.0.1:10002|127.0.0.1:$p2|" -e "s|heartbeat_s = 15|heartbeat_s = 1|" \
    "$SRC/config/edgecore.toml" >"$work/edge.toml"
"$KEDGE" check "$work/cloud.toml"
"$KEDGE" check "$work/edge.toml"

"$KEDGE" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 & pids+=($!); cloud=$!
wait_for "$work/cloud.log" "listening on"
mkdir -p "$work/edge"
"$KEDGE" token create --manifest "$work/cloud.toml" >"$work/edge/token"
grep -qE '^[0-9a-f]{64}\.[^.]+\.[^.]+\.[^.]+$' "$work/edge/token"

"$KEDGE" run "$work/edge.toml" >"$work/edge.log" 2>&1 & pids+=($!); edge=$!
wait_for "$work/edge.log" "joined: certificate for system:node:edge-1"
wait_for "$work/edge.log" "connected to the cloud"
wait_for "$work/cloud.log" "node edge-1 connected"

# The edge restarts without the token: its stored certificate suffices.
kill -TERM $edge; wait $edge
rm "$work/edge/token"
"$KEDGE" run "$work/edge.toml" >"$work/edge2.log" 2>&1 & pids+=($!); edge=$!
wait_for "$work/edge2.log" "connected to the cloud"
! grep -q "joined" "$work/edge2.log"

kill -TERM $edge; wait $edge
kill -TERM $cloud; wait $cloud
echo "1 passed, 0 failed"
