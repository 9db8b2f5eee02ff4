#!/usr/bin/env bash
# Starts a cloud (cloudhub) process, connects N simulated nodes to it with
# kedge_channel_load, reports connect time and cloud memory per idle node,
# then restarts the cloud and reports the time until every node is back.
# The restarted cloud also runs the loadgen fixture plugin, which sends
# MESSAGES pod updates round-robin to the nodes once all are back; the nodes
# ACK each, and the tool reports the rate (0: skip).
# usage: bench/channel_load.sh [NODES] [BUILD_DIR] [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-1000}
build=$(cd "${2:-build}" && pwd)
messages=${3:-100000}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL $p 2>/dev/null || true; done; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || true
port=$(python3 "$(dirname "$0")/../tests/cli/free_port.py")
https=$(python3 "$(dirname "$0")/../tests/cli/free_port.py")
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
# The second run: the same cloud, with a controller that sends the messages.
{
  sed "s|^log_level.*|&\nplugin_dirs = [\"$build/lib/kedge/plugins\", \"$build/test-plugins\"]|" "$work/cloud.toml"
  echo 'routes = { resource = "loadgen" }'
  echo "[[plugin]]"
  echo 'name = "loadgen"'
  echo "[plugin.config]"
  echo "nodes = $nodes"
  echo "messages = $messages"
} >"$work/cloud2.toml"
start_cloud() {
  "$build/bin/kedge" run "$work/$1" >>"$work/cloud.log" 2>&1 &
  cloud=$!
  pids+=($cloud)
  for _ in $(seq 200); do [ -f "$work/cloud/cloudhub/token" ] && ss -ltn | grep -q ":$port " && return; sleep 0.05; done
}
start_cloud cloud.toml
"$build/bin/kedge_channel_load" --ca-dir "$work/cloud/cloudhub" --port $port --nodes $nodes --pid $cloud --reconnect --expect "$messages" >"$work/load.log" 2>&1 &
load=$!
pids+=($load)
for _ in $(seq 1200); do grep -q "connected $nodes nodes" "$work/load.log" && break; sleep 0.1; done
cat "$work/load.log"
kill -TERM $cloud; wait $cloud || true
start_cloud cloud2.toml
wait $load
tail -n +2 "$work/load.log"
