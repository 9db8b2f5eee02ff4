#!/usr/bin/env bash
# Starts a cloud (cloudhub) process, connects N simulated nodes to it with
# kedge_channel_load, reports connect time and cloud memory per idle node,
# then restarts the cloud and reports the time until every node is back.
# usage: bench/channel_load.sh [NODES] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-1000}
build=${2:-build}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL $p 2>/dev/null || true; done; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || true
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
https=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/cloud.toml" <<TOML
[agent]
node_name = "cloud"
data_dir = "$work/cloud"
log_level = "warn"
worker_threads = 1
[[plugin]]
name = "cloudhub"
[plugin.config]
address = "127.0.0.1"
port = $port
https_port = $https
node_limit = 100000
TOML
start_cloud() {
  "$build/bin/kedge" run "$work/cloud.toml" >>"$work/cloud.log" 2>&1 &
  cloud=$!
  pids+=($cloud)
  for _ in $(seq 200); do [ -f "$work/cloud/cloudhub/token" ] && ss -ltn | grep -q ":$port " && return; sleep 0.05; done
}
start_cloud
"$build/bin/kedge_channel_load" --ca-dir "$work/cloud/cloudhub" --port $port --nodes $nodes --pid $cloud --reconnect >"$work/load.log" 2>&1 &
load=$!
pids+=($load)
for _ in $(seq 1200); do grep -q "connected $nodes nodes" "$work/load.log" && break; sleep 0.1; done
cat "$work/load.log"
kill -TERM $cloud; wait $cloud || true
start_cloud
wait $load
tail -1 "$work/load.log"
