#!/usr/bin/env bash
# API throughput with wrk: a real cloud process (apiserver only, one worker
# thread) on SQLite or on a real etcd; create (POST with generateName), get
# (one object) and list (100 objects) for SECONDS each, CONNECTIONS
# keep-alive connections over HTTPS. Then the watch fan-out tool: WATCHERS
# watch streams receive EVENTS changes.
# usage: bench/api_load.sh [sqlite|etcd] [BUILD_DIR] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:-sqlite}
build=$(cd "${2:-build}" && pwd)
secs=${3:-10}
conns=${4:-8}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL $p 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 "$(dirname "${BASH_SOURCE[0]}")/../tests/cli/free_port.py"; }
port=$(free_port)
extra='store = "sqlite"'
if [ "$store" = etcd ]; then
  e1=$(free_port); e2=$(free_port)
  etcd --name b --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$e1" \
    --advertise-client-urls "http://127.0.0.1:$e1" --listen-peer-urls "http://127.0.0.1:$e2" \
    --initial-advertise-peer-urls "http://127.0.0.1:$e2" --initial-cluster "b=http://127.0.0.1:$e2" \
    >"$work/etcd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$e1) 2>/dev/null && break; sleep 0.1; done
  extra="store = \"etcd\"
etcd_endpoints = [\"127.0.0.1:$e1\"]"
fi
cat >"$work/cloud.toml" <<TOML
[agent]
node_name = "cloud"
data_dir = "$work/cloud"
log_level = "warn"
worker_threads = 1
[[plugin]]
name = "apiserver"
[plugin.config]
address = "127.0.0.1"
port = $port
$extra
TOML
"$build/bin/kedge" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -f "$work/cloud/apiserver/admin.token" ] && (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
token=$(cat "$work/cloud/apiserver/admin.token")
url="https://127.0.0.1:$port"
base="$url/api/v1/namespaces/default/configmaps"
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"bench-"},"data":{"k":"v"}}'
wrk.headers["Content-Type"] = "application/json"
LUA
hdr=(-H "Authorization: Bearer $token")
run() {  # NAME wrk-args...
  local name=$1; shift
  local out
  out=$(wrk -t 2 -c "$conns" -d "${secs}s" --latency "${hdr[@]}" "$@")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-8s %-7s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$store" "$name" "$rps" "$p50" "$p99" "${errs:-0}"
}
# 100 objects for get and list.
for i in $(seq 100); do
  "$build/bin/kedge" apply -f - --server "$url" --token "$token" --insecure-skip-tls-verify \
    <<<"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-$i\"},\"data\":{\"k\":\"v\"}}" >/dev/null
done
run get "$base/cm-1"
run list "$base?labelSelector=absent%3Dno"   # the 100 objects scanned, none returned
run list100 "$base" --timeout 10s
run create -s "$work/post.lua" "$base"
"$build/bin/kedge_watch_fanout" --server "$url" --token "$token" --watchers "${WATCHERS:-100}" \
  --events "${EVENTS:-1000}" --label "$store"
