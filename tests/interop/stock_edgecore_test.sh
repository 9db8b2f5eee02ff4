#!/usr/bin/env bash
# A stock KubeEdge EdgeCore v1.12.7 (../shared/peers, built from KubeEdge's
# public source) under a kedge cloud, on a private containerd:
#  * it joins with a token from `kedge token create` alone (its CSR for CN
#    kubeedge.io is signed for system:node:<name>);
#  * its kubelet registers the node (insert, AlreadyExists, query,
#    nodepatch): Ready, VERSION v1.22.17-kubeedge-v1.12.7, the edge roles;
#  * its lease controller keeps kube-node-lease/<node>;
#  * a pod with a configmap volume and a secret in its env runs (1/1
#    Running with an IP; its log at the edge shows both);
#  * the pod updated in the cloud is stored by the edge, which keeps its
#    containers;
#  * the cloud restarts: the edge reconnects, stays Ready, nothing is applied
#    again (same containers, no restarts);
#  * the edge offline for a minute (SIGSTOP): NotReady, then Ready again,
#    the pod kept with its containers;
#  * the pod deleted in the cloud goes away at the edge;
#  * a Device for the stock node reaches its DeviceTwin (the `device` and
#    `device_twin` tables of edgecore.db, with the desired value), and a
#    value a 1.12-era mapper publishes to the broker beside the edge
#    ($hw/events/device/<id>/twin/update, mosquitto as EventBus's external
#    broker) reaches the Device's status in the cloud;
#  * no protocol error in either log: none of the stock edge's `no handler
#    found for the message`, `timeout to get response`, `failed to ensure
#    lease`, `Error getting node`, and no `no controller for group` of
#    kedge's cloud.
# Skipped (exit 77) when ../shared/peers is absent or not run as root.
# usage: stock_edgecore_test.sh KEDGE SOURCE_DIR
set -uo pipefail
KEDGE=$(realpath "$1")
SRC=$(realpath "$2")
PEERS=${KEDGE_PEERS:-$SRC/../shared/peers}
if [ ! -x "$PEERS/stock-edgecore.sh" ]; then
  echo "SKIP: no stock EdgeCore ($PEERS/stock-edgecore.sh is absent)"; exit 77
fi
if [ "$(id -u)" != 0 ]; then echo "SKIP: the stock EdgeCore's kubelet needs root"; exit 77; fi
for tool in mosquitto mosquitto_pub sqlite3; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
source "$SRC/tests/cli/lib.sh"
export HOME="$work/home" && mkdir -p "$HOME"
node=stock-$$
pod=p-$$
ctrd="$work/ctrd"
stop_all() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  done
  bash "$SRC/scripts/containerd.sh" stop "$ctrd" >/dev/null 2>&1 || true
  rm -rf /var/log/pods/default_${pod}_* 2>/dev/null
  # The kubelet's volume mounts (configmap, secret) under its data dir.
  awk -v d="$work/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  cleanup
}
trap stop_all EXIT
fail() {
  echo "FAIL: $*"
  for f in "$work"/cloud.log "$work"/edge.log; do
    echo "--- $f (errors, last 40)"
    grep -E '^E[0-9]|error|warn' "$f" | grep -vE 'product_name|oom_score|perf_event|readlink|rlimit|cgroup|cadvisor|filesystem|garbage|runtime status|checkpoint' | tail -40
  done
  exit 1
}
wait_for() {  # SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  fail "timed out after ${secs}s: $what"
}

hub=$(free_port); https=$(free_port); api=$(free_port)
healthz=$(free_port); ro=$(free_port); ms=$(free_port); mqtt=$(free_port)
# The broker EventBus and the mappers share (external mode, as 1.12's default).
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
cat >"$work/cloud.toml" <<EOF
[agent]
node_name = "cloud"
data_dir = "$work/cloud"
log_level = "debug"
[[plugin]]
name = "cloudhub"
[plugin.config]
address = "127.0.0.1"
port = $hub
https_port = $https
keepalive_interval_s = 5
[[plugin]]
name = "apiserver"
[plugin.config]
address = "127.0.0.1"
port = $api
[[plugin]]
name = "edgecontroller"
[[plugin]]
name = "nodecontroller"
[[plugin]]
name = "devicecontroller"
EOF
start_cloud() {
  "$KEDGE" run "$work/cloud.toml" >>"$work/cloud.log" 2>&1 &
  cloud_pid=$!
  pids+=($cloud_pid)
  wait_for 20 "the cloud's API" bash -c "echo > /dev/tcp/127.0.0.1/$api"
}
start_cloud
"$KEDGE" config init --manifest "$work/cloud.toml" >/dev/null || fail "kedge config init"

sock=$(bash "$SRC/scripts/containerd.sh" start "$ctrd") || fail "containerd did not start"
ec=$("$PEERS/stock-edgecore.sh" binary "$work/bin") || fail "cannot unpack the stock EdgeCore"
token=$("$KEDGE" token create --manifest "$work/cloud.toml") || fail "kedge token create"
mkdir -p /etc/kubeedge
DATA="$work/edge" NODE=$node HUB=127.0.0.1:$hub BOOT=127.0.0.1:$https TOKEN=$token CRI=$sock \
  CNI_CONF="$ctrd/cni/conf" HEALTHZ_PORT=$healthz READONLY_PORT=$ro METASERVER_PORT=$ms MQTT=127.0.0.1:$mqtt \
  "$PEERS/stock-edgecore.sh" config >"$work/edgecore.yaml" || fail "cannot render edgecore.yaml"
# (its kubelet writes kubelet.crt/.key into its working directory)
(cd "$work" && exec "$ec" --config "$work/edgecore.yaml") >"$work/edge.log" 2>&1 &
edge_pid=$!
pids+=($edge_pid)

# The node: registered by the stock kubelet with its nodeInfo, and Ready
# (its kubelet waits about a minute for the runtime status).
ready() {
  "$KEDGE" get nodes "$node" | grep -E "^$node +Ready +agent,edge .* v1.22.17-kubeedge-v1.12.7"
}
wait_for 150 "node $node Ready with VERSION v1.22.17-kubeedge-v1.12.7" ready
"$KEDGE" get nodes -o wide
wait_for 30 "the node's lease" bash -c "'$KEDGE' get leases -n kube-node-lease | grep -q '^$node '"

# A pod with a configmap volume and a secret env.
cat >"$work/pod.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: greeting-$$, namespace: default}
data: {greeting: "hello from a kedge cloud"}
---
apiVersion: v1
kind: Secret
metadata: {name: pw-$$, namespace: default}
data: {password: c2VjcmV0LTQy}
---
apiVersion: v1
kind: Pod
metadata: {name: $pod, namespace: default}
spec:
  nodeName: $node
  containers:
  - name: main
    image: localhost/busybox:local
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /cfg/greeting; echo; echo pw=\$PW; sleep 3600"]
    env:
    - name: PW
      valueFrom: {secretKeyRef: {name: pw-$$, key: password}}
    volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes:
  - name: cfg
    configMap: {name: greeting-$$}
EOF
"$KEDGE" apply -f "$work/pod.yaml" >/dev/null || fail "kedge apply"
running() { "$KEDGE" get pods "$pod" -o wide | grep -E "^$pod +1/1 +Running +0 .* [0-9]+\.[0-9]+\.[0-9]+\.[0-9]+ +$node"; }
wait_for 120 "pod $pod 1/1 Running with an IP" running
"$KEDGE" get pods -o wide
logs() { cat /var/log/pods/default_${pod}_*/main/0.log 2>/dev/null; }
wait_for 20 "the pod's output" bash -c "cat /var/log/pods/default_${pod}_*/main/0.log | grep -q 'pw=secret-42'"
logs | grep -q "hello from a kedge cloud" || fail "the configmap's content is not in the pod's output: $(logs)"
containers() { ctr -a "$sock" -n k8s.io containers ls -q | sort | tr '\n' ' '; }
ids=$(containers)
[ -n "$ids" ] || fail "no containers of the pod in containerd"
same_pod() {  # still 1/1 Running, restart count 0, the same containers
  running || fail "pod $pod is no longer 1/1 Running with 0 restarts: $("$KEDGE" get pods "$pod" -o wide)"
  [ "$(containers)" = "$ids" ] || fail "the pod's containers changed: '$ids' -> '$(containers)'"
}

# Updated in the cloud: the stock edge stores the new version in its
# metamanager's table, and its kubelet keeps the running containers.
sed -i "s|^metadata: {name: $pod, namespace: default}|metadata: {name: $pod, namespace: default, labels: {rev: r2-$$}}|" "$work/pod.yaml"
"$KEDGE" apply -f "$work/pod.yaml" >/dev/null || fail "kedge apply (the update)"
stored() { sqlite3 "$work/edge/edgecore.db" "select value from meta where type = 'pod'" | grep -q "r2-$$"; }
wait_for 30 "the updated pod in the stock edge's meta table" stored
sleep 3
same_pod

# The cloud restarts: the edge reconnects, stays Ready, and nothing is
# applied again (same containers, no restart).
kill -TERM "$cloud_pid"
for _ in $(seq 50); do kill -0 "$cloud_pid" 2>/dev/null || break; sleep 0.2; done
connects() { grep -c "node $node connected from" "$work/cloud.log"; }
before=$(connects)
start_cloud
wait_for 60 "the stock edge connected to the restarted cloud" bash -c "[ \$(grep -c 'node $node connected from' '$work/cloud.log') -gt $before ]"
sleep 10
ready >/dev/null || fail "node $node not Ready after the cloud's restart: $("$KEDGE" get nodes "$node")"
same_pod
echo "cloud restarted: $node reconnected, Ready, pod $pod untouched"

# The edge is offline for a minute (frozen: its link goes silent, as a cut
# cable would): the node goes NotReady within the cloud's dead-link time
# (3 keepalives of 5 s), then Ready again once it is back; its pod is not
# evicted and keeps its containers.
offline_from=$(wc -l <"$work/edge.log")
kill -STOP "$edge_pid"
t0=$SECONDS
not_ready() { "$KEDGE" get nodes "$node" | grep -qE "^$node +NotReady"; }
wait_for 40 "node $node NotReady while its edge is offline" not_ready
echo "offline: NotReady after $((SECONDS - t0)) s"
sleep $((60 - (SECONDS - t0) > 0 ? 60 - (SECONDS - t0) : 0))
"$KEDGE" get pods "$pod" >/dev/null || fail "pod $pod was removed while its node was offline"
kill -CONT "$edge_pid"
t1=$SECONDS
wait_for 90 "node $node Ready again after a minute offline" ready
echo "back online: Ready after $((SECONDS - t1)) s"
# (requests the frozen edge had in flight time out when it resumes: its log
# from the freeze to Ready again is not checked for protocol errors)
back_from=$(wc -l <"$work/edge.log")
same_pod

# Deleted in the cloud: the kubelet stops it.
"$KEDGE" delete pod "$pod" >/dev/null || fail "kedge delete pod"
# (the only pod on this private containerd: no task of it, nor of its
# sandbox, is left running)
no_tasks() { ! ctr -a "$sock" -n k8s.io tasks ls 2>/dev/null | grep -q RUNNING; }
wait_for 90 "the pod's containers stopped at the edge" no_tasks

# A Device for the stock node: its DeviceTwin stores it with the desired
# value (membership and twin messages as 1.12's devicecontroller sends
# them), and a value a mapper publishes on the broker reaches the cloud.
dev=thermo-$$
cat >"$work/device.yaml" <<EOF
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo-$$, namespace: default}
spec:
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly}
  - {name: setpoint, type: INT, accessMode: ReadWrite}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: $dev, namespace: default}
spec:
  deviceModelRef: {name: thermo-$$}
  nodeName: $node
  protocol: {protocolName: modbus}
  properties:
  - name: setpoint
    desired: {value: "21"}
    collectCycle: 1000000000
    reportCycle: 1000000000
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {register: HoldingRegister, offset: 1}
EOF
"$KEDGE" apply -f "$work/device.yaml" >"$work/apply.out" 2>&1 || fail "kedge apply (device): $(cat "$work/apply.out")"
edge_sql() { sqlite3 "$work/edge/edgecore.db" "$1" 2>/dev/null; }
in_twin() { edge_sql "select id from device where id = '$dev'" | grep -q "$dev"; }
wait_for 60 "device $dev in the stock edge's device table" in_twin
# (the membership message inserts the device; the desired twins come in
# their own message after it, and the edge may hold its database locked
# while it writes them)
desired() { [ "$(edge_sql "select expected from device_twin where deviceid = '$dev' and name = 'setpoint'")" = "21" ]; }
for _ in $(seq 60); do desired && break; sleep 0.5; done
desired || fail "the stock edge's twin has no desired setpoint 21 after 30 s; its twins: $(edge_sql 'select * from device_twin')"
# A 1.12-era mapper reports over MQTT: EventBus hands it to the twin, which
# sends twin/edge_updated up.
now_ms=$(($(date +%s) * 1000))
mosquitto_pub -h 127.0.0.1 -p "$mqtt" -t "\$hw/events/device/$dev/twin/update" \
  -m "{\"event_id\":\"e-$$\",\"timestamp\":$now_ms,\"twin\":{\"setpoint\":{\"actual\":{\"value\":\"20\"},\"metadata\":{\"type\":\"int\"}},\"temperature\":{\"actual\":{\"value\":\"19.5\"},\"metadata\":{\"type\":\"float\"}}}}" ||
  fail "mosquitto_pub"
reported() {
  "$KEDGE" get device "$dev" -o json | python3 -c '
import json, sys
d = json.load(sys.stdin)
got = {t["propertyName"]: t.get("reported", {}).get("value") for t in d.get("status", {}).get("twins", [])}
sys.exit(0 if got.get("setpoint") == "20" and got.get("temperature") == "19.5" else 1)'
}
wait_for 60 "the reported values of $dev in the Device's status" reported
echo "device $dev: in the stock edge's twin; its reported values in the cloud"

# No protocol errors, from start-up on.
for pat in "no handler found for the message" "timeout to get response" "failed to ensure lease" \
  "Error getting node" "failed to unmarshal message content to unstructured obj: Object 'Kind' is missing in '{\"apiVersion\"" \
  "invalid message content" "cannot find protocol name"; do
  checked() { head -n "$offline_from" "$work/edge.log"; tail -n +"$((back_from + 1))" "$work/edge.log"; }
  if checked | grep -F "$pat" >/dev/null; then
    checked | grep -F "$pat" | head -3
    fail "the stock edge logged '$pat'"
  fi
done
if grep -E "no controller for group|error" "$work/cloud.log" | grep -v "^.*debug" >/dev/null; then
  grep -E "no controller for group|error" "$work/cloud.log" | grep -v "debug" | head -5
  fail "kedge's cloud logged a protocol error"
fi
echo "PASS: stock EdgeCore v1.12.7 joined, registered $node (Ready), ran $pod and removed it"
