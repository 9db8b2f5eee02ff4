#!/usr/bin/env bash
# The quick start's demo: a private containerd (scripts/containerd.sh, with
# locally built busybox images), a local cloud (config/quickstart-cloud.toml)
# and an edge node (config/quickstart-edge.toml) on loopback, joined with a
# token; then `kedge apply` of examples/quickstart/, the pod running in
# containerd, and `kedge get`. Runs until Ctrl-C (or, with --exit, stops
# after showing the result). Without root or containerd the pod stays
# Pending and the demo says why. The thermometer device is simulated by the
# edge's virtual mapper; its readings show in `kedge get devices`.
# usage: scripts/demo.sh [BUILD_DIR] [--exit] [--fresh]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
exit_after=0
fresh=0
for a in "$@"; do
  case "$a" in
    --exit) exit_after=1 ;;
    --fresh) fresh=1 ;;
    *) build=$a ;;
  esac
done
kedge="$build/bin/kedge"
state=build/quickstart
[ "$fresh" = 1 ] && rm -rf "$state"
mkdir -p "$state/cloud" "$state/edge"
export KEDGE_CONFIG="$state/kedge-config"
pids=()
runtime=0
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$runtime" = 1 ]; then scripts/containerd.sh stop "$state/containerd" || true; fi
}
trap stop EXIT
trap 'exit 0' INT TERM
wait_for() {  # WHAT COMMAND...: up to 30 s
  local what=$1; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what; logs in $state/*.log" >&2
  tail -5 "$state"/*.log >&2
  exit 1
}

if [ "$(id -u)" = 0 ] && command -v containerd >/dev/null && command -v runc >/dev/null &&
   [ -x /bin/busybox ]; then
  echo "== starting a private containerd ($state/containerd)"
  runtime=1
  scripts/containerd.sh start "$state/containerd" >/dev/null
else
  echo "== no container runtime: needs root and containerd, runc, busybox-static (scripts/quickstart.sh installs them); pods will stay Pending"
fi

echo "== starting the cloud (log: $state/cloud.log)"
"$kedge" run config/quickstart-cloud.toml >"$state/cloud.log" 2>&1 &
pids+=($!)
wait_for "the API server" grep -q "serving the API" "$state/cloud.log"
"$kedge" config init --manifest config/quickstart-cloud.toml
if [ ! -f "$state/edge/edgehub/edge.crt" ]; then
  "$kedge" token create --manifest config/quickstart-cloud.toml >"$state/edge/token"
fi

echo "== starting the edge node quickstart-edge (log: $state/edge.log)"
"$kedge" run config/quickstart-edge.toml >"$state/edge.log" 2>&1 &
pids+=($!)
if [ "$runtime" = 1 ]; then
  wait_for "the node to be Ready" bash -c "'$kedge' get nodes | grep -qE '^quickstart-edge +Ready'"
else
  wait_for "the node to register" bash -c "'$kedge' get nodes | grep -qE '^quickstart-edge '"
fi

echo "== kedge apply -f examples/quickstart/"
"$kedge" apply -f examples/quickstart/
meta() {  # the edge's cache (KubeEdge's meta table)
  python3 -c 'import sqlite3,sys; [print("  " + " ".join(r)) for r in sqlite3.connect(sys.argv[1]).execute("SELECT type, key FROM meta ORDER BY key")]' "$state/edge/edgecore.db"
}
at_edge() { meta | grep -q " $1$"; }
wait_for "the pod at the edge" at_edge default/pod/greeter
if [ "$runtime" = 1 ]; then
  wait_for "the pod to run in containerd" bash -c "'$kedge' get pods | grep -qE '^greeter +1/1 +Running'"
fi
wait_for "the thermometer's readings" bash -c "'$kedge' get devices | grep -qE '^thermometer-1 +online .*temperature='"
echo
echo "== kedge get nodes"
"$kedge" get nodes
echo
echo "== kedge get pods -o wide"
"$kedge" get pods -o wide
echo
echo "== kedge get devices     (readings of the simulated thermometer, from the edge's virtual mapper)"
"$kedge" get devices
echo
echo "== curl http://127.0.0.1:20777/api/v1/device/default/thermometer-1/temperature   (Device-as-a-Service at the edge)"
curl -s http://127.0.0.1:20777/api/v1/device/default/thermometer-1/temperature || true
echo
echo "The edge's metadata cache ($state/edge/edgecore.db, table meta) holds:"
meta
echo
if command -v kubectl >/dev/null; then
  echo "== kubectl --server http://127.0.0.1:10550 get pods,configmaps   (the edge's own API)"
  kubectl --server http://127.0.0.1:10550 get pods,configmaps || true
  echo
fi
if [ "$runtime" = 1 ]; then
  echo "The pod runs in containerd on the edge; what it prints:"
  tail -3 "$state/edge/edged/pods/"*/logs/greeter/0.log 2>/dev/null | sed 's/^/  /' || true
else
  echo "The pod stays Pending: no container runtime on this machine (see above)."
fi
echo "Try:  KEDGE_CONFIG=$KEDGE_CONFIG $kedge get pods -w"
[ "$exit_after" = 1 ] && exit 0
echo "Ctrl-C stops the cloud and the edge."
wait
