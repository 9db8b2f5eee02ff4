#!/usr/bin/env bash
# MetaServer under load, and the edge's memory with a large cache.
#
# 1. Lists of 1,000 pods (each a realistic ~1.6 KB pod) from metaserver's
#    plain-HTTP API with wrk: requests/s and p99; in the same run, as
#    baselines, a get of one pod and /healthz (the HTTP path alone).
# 2. Resident memory of an edge agent (metamanager + metaserver) with an
#    empty cache and with OBJECTS cached objects (pods, configmaps, secrets,
#    services), idle and after listing everything.
#
# The cache is written straight into KubeEdge's `meta` table
# (<data_dir>/edgecore.db), as a restarted edge finds it.
# usage: bench/metaserver_load.sh [BUILD] [OBJECTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
objects=${2:-10000}
secs=${3:-10}
kedge=$build/bin/kedge
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 "$(dirname "${BASH_SOURCE[0]}")/../tests/cli/free_port.py"; }

# fill DB PODS_IN_DEFAULT OTHER_OBJECTS
fill() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sqlite3, sys
db, pods, others = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
c.execute("CREATE TABLE IF NOT EXISTS `meta` (`key` varchar(256) NOT NULL PRIMARY KEY, "
          "`type` varchar(32) NOT NULL DEFAULT '', `value` text);")
def pod(ns, i):
    name = f"app-{i:05d}"
    return name, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": f"6f1c2a4e-{i:08d}-4b1e-9c1e-0242ac120002",
                     "resourceVersion": str(1000 + i), "creationTimestamp": "2026-11-25T04:00:00Z",
                     "labels": {"app": f"app-{i % 50}", "tier": "edge"},
                     "annotations": {"kedge.io/owner": "bench"}},
        "spec": {"nodeName": "edge-1", "restartPolicy": "Always",
                 "containers": [{"name": "main", "image": "docker.io/library/nginx:1.25",
                                 "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                 "env": [{"name": "MODE", "value": "edge"}, {"name": "LEVEL", "value": "info"}],
                                 "resources": {"limits": {"cpu": "250m", "memory": "128Mi"},
                                               "requests": {"cpu": "100m", "memory": "64Mi"}},
                                 "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}],
                 "volumes": [{"name": "config", "configMap": {"name": "app-config"}}]},
        "status": {"phase": "Running", "podIP": f"10.88.{i // 250}.{i % 250 + 2}", "hostIP": "192.168.1.10",
                   "conditions": [{"type": t, "status": "True", "lastTransitionTime": "2026-11-25T04:00:05Z"}
                                  for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                   "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0,
                                          "image": "docker.io/library/nginx:1.25",
                                          "containerID": f"containerd://{i:064x}",
                                          "state": {"running": {"startedAt": "2026-11-25T04:00:04Z"}}}]}}
rows = []
for i in range(pods):
    name, v = pod("default", i)
    rows.append((f"default/pod/{name}", "pod", json.dumps(v, separators=(",", ":"))))
kinds = ["pod", "configmap", "secret", "service"]
for i in range(others):
    t = kinds[i % 4]
    ns = f"ns-{i % 20}"
    if t == "pod":
        name, v = pod(ns, i)
    else:
        name = f"{t}-{i:05d}"
        v = {"apiVersion": "v1", "kind": t.capitalize(),
             "metadata": {"name": name, "namespace": ns, "uid": f"uid-{i}", "resourceVersion": str(i)},
             "data": {"key": "x" * 600}}
    rows.append((f"{ns}/{t}/{name}", t, json.dumps(v, separators=(",", ":"))))
c.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?, ?)", rows)
c.commit()
PY
}

# start DATA_DIR: runs the edge agent, sets $pid and $port
start() {
  port=$(free_port)
  cat >"$work/edge.toml" <<EOF
[agent]
node_name = "edge-1"
data_dir = "$1"
log_level = "warn"
worker_threads = 1

[[plugin]]
name = "metamanager"

[[plugin]]
name = "metaserver"
[plugin.config]
port = $port
EOF
  "$kedge" run "$work/edge.toml" 2>"$work/edge.log" &
  pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the edge did not start:" >&2
  cat "$work/edge.log" >&2
  exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
kb() { awk "/^$1/ {print \$2}" "/proc/$pid/status"; }

# wrk URL -> "req/s p99"
load() {
  wrk -t2 -c8 -d"${secs}s" --latency "$1" >"$work/wrk.txt"
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
  echo "$rps req/s, p99 $p99"
}

echo "== 1. metaserver under wrk (2 threads, 8 connections, ${secs}s each)"
mkdir -p "$work/list"
fill "$work/list/edgecore.db" 1000 0
start "$work/list"
bytes=$(curl -s "http://127.0.0.1:$port/api/v1/namespaces/default/pods" | wc -c)
n=$(curl -s "http://127.0.0.1:$port/api/v1/namespaces/default/pods" | grep -o '"kind":"Pod"' | wc -l || true)
echo "list of $n pods ($bytes bytes):  $(load "http://127.0.0.1:$port/api/v1/namespaces/default/pods")"
echo "get of one pod (baseline):       $(load "http://127.0.0.1:$port/api/v1/namespaces/default/pods/app-00500")"
echo "/healthz (HTTP path alone):      $(load "http://127.0.0.1:$port/healthz")"
echo "agent after the load: VmRSS $(kb VmRSS) kB, VmHWM $(kb VmHWM) kB"
stop

echo "== 2. edge memory (metamanager + metaserver) with 0 and $objects cached objects"
for count in 0 "$objects"; do
  mkdir -p "$work/mem-$count"
  [ "$count" -gt 0 ] && fill "$work/mem-$count/edgecore.db" 0 "$count"
  start "$work/mem-$count"
  sleep 3
  idle=$(kb VmRSS)
  for ns in $(seq 0 19); do
    curl -s "http://127.0.0.1:$port/api/v1/namespaces/ns-$ns/pods" >/dev/null
    curl -s "http://127.0.0.1:$port/api/v1/namespaces/ns-$ns/configmaps" >/dev/null
  done
  all=$(curl -s "http://127.0.0.1:$port/api/v1/pods" | wc -c)
  sleep 1
  echo "objects=$count: idle VmRSS ${idle} kB; after listing everything (all pods: $all bytes) VmRSS $(kb VmRSS) kB, VmHWM $(kb VmHWM) kB, anonymous $(kb RssAnon) kB"
  stop
done
