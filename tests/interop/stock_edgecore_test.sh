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
#  * the pod deleted in the cloud goes away at the edge;
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
source "$SRC/tests/cli/lib.sh"
export HOME="$work/home" && mkdir -p "$HOME"
node=stock-$$
pod=p-$$
ctrd="$work/ctrd"
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
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
healthz=$(free_port); ro=$(free_port); ms=$(free_port)
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
"$KEDGE" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
pids+=($!)
wait_for 20 "the cloud's API" bash -c "echo > /dev/tcp/127.0.0.1/$api"
"$KEDGE" config init --manifest "$work/cloud.toml" >/dev/null || fail "kedge config init"

sock=$(bash "$SRC/scripts/containerd.sh" start "$ctrd") || fail "containerd did not start"
ec=$("$PEERS/stock-edgecore.sh" binary "$work/bin") || fail "cannot unpack the stock EdgeCore"
token=$("$KEDGE" token create --manifest "$work/cloud.toml") || fail "kedge token create"
mkdir -p /etc/kubeedge
DATA="$work/edge" NODE=$node HUB=127.0.0.1:$hub BOOT=127.0.0.1:$https TOKEN=$token CRI=$sock \
  CNI_CONF="$ctrd/cni/conf" HEALTHZ_PORT=$healthz READONLY_PORT=$ro METASERVER_PORT=$ms \
  "$PEERS/stock-edgecore.sh" config >"$work/edgecore.yaml" || fail "cannot render edgecore.yaml"
# (its kubelet writes kubelet.crt/.key into its working directory)
(cd "$work" && exec "$ec" --config "$work/edgecore.yaml") >"$work/edge.log" 2>&1 &
pids+=($!)

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

# Deleted in the cloud: the kubelet stops it.
"$KEDGE" delete pod "$pod" >/dev/null || fail "kedge delete pod"
# (the only pod on this private containerd: no task of it, nor of its
# sandbox, is left running)
no_tasks() { ! ctr -a "$sock" -n k8s.io tasks ls 2>/dev/null | grep -q RUNNING; }
wait_for 90 "the pod's containers stopped at the edge" no_tasks

# No protocol errors, from start-up on.
for pat in "no handler found for the message" "timeout to get response" "failed to ensure lease" \
  "Error getting node" "failed to unmarshal message content to unstructured obj: Object 'Kind' is missing in '{\"apiVersion\""; do
  if grep -F "$pat" "$work/edge.log" >/dev/null; then
    grep -F "$pat" "$work/edge.log" | head -3
    fail "the stock edge logged '$pat'"
  fi
done
if grep -E "no controller for group|error" "$work/cloud.log" | grep -v "^.*debug" >/dev/null; then
  grep -E "no controller for group|error" "$work/cloud.log" | grep -v "debug" | head -5
  fail "kedge's cloud logged a protocol error"
fi
echo "PASS: stock EdgeCore v1.12.7 joined, registered $node (Ready), ran $pod and removed it"
