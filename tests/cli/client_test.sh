#!/usr/bin/env bash
# The kedge API client against a real cloud process (config/cloudcore.toml,
# ports and data moved to a temporary place): config init, apply, get,
# describe, delete, watch, and the errors users meet (unreachable server,
# refused token, invalid YAML with its line, unknown kinds, usage).
# usage: client_test.sh KEDGE SOURCE_DIR
set -uo pipefail
KEDGE=$(realpath "$1")
SRC=$(realpath "$2")
source "$(dirname "$0")/lib.sh"
export KEDGE_CONFIG="$work/kedge-config"
pass=0
fail=0
# expect NAME WANT_EXIT PATTERN -- command...
expect() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $name: exit $rc (want $want), output must match /$pattern/:"
    sed 's/^/    /' <<<"$out"
  fi
}

p1=$(free_port); p2=$(free_port); p3=$(free_port)
sed -e "s|/var/lib/kedge/cloud|$work/cloud|" -e "s|port = 10000|port = $p1|" -e "s|port = 6443|port = $p3|" \
    -e "s|https_port = 10002|https_port = $p2|" -e 's|address = "0.0.0.0"|address = "127.0.0.1"|' \
    "$SRC/config/cloudcore.toml" >"$work/cloud.toml"
"$KEDGE" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
cloud=$!
pids+=($cloud)
for _ in $(seq 200); do grep -q "serving the API" "$work/cloud.log" && break; sleep 0.05; done

expect config-init 0 "wrote $KEDGE_CONFIG" -- "$KEDGE" config init --manifest "$work/cloud.toml"
expect config-init-no-manifest 2 "needs --manifest" -- "$KEDGE" config init

cat >"$work/app.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  nodeName: edge-1
  containers:
  - name: nginx
    image: nginx:1.25
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  level: "3"
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: thermo-1
spec:
  deviceModelRef: {name: thermometer}
YAML
expect apply-create 0 "pod/web created" -- "$KEDGE" apply -f "$work/app.yaml"
expect apply-again 0 "pod/web unchanged" -- "$KEDGE" apply -f "$work/app.yaml"
sed -i 's/app: web}/app: web, tier: front}/' "$work/app.yaml"
expect apply-change 0 "pod/web configured" -- "$KEDGE" apply -f "$work/app.yaml"
expect get-pods 0 "^NAME +READY +STATUS +RESTARTS +AGE" -- "$KEDGE" get pods
expect get-pods-row 0 "^web +0/1 +Pending +0 +[0-9]+s" -- "$KEDGE" get pods
expect get-wide 0 "web .* edge-1$" -- "$KEDGE" get pods -o wide
expect get-all-ns 0 "^NAMESPACE +NAME" -- "$KEDGE" get pods -A
expect get-selector 0 "^web " -- "$KEDGE" get pods -l tier=front
expect get-selector-none 0 "No resources found" -- "$KEDGE" get pods -l tier=back
expect get-json 0 '"kind":"Pod"' -- "$KEDGE" get pod web -o json
expect get-yaml 0 "^  nodeName: edge-1" -- "$KEDGE" get pod web -o yaml
expect get-cm 0 "^settings +1 " -- "$KEDGE" get cm
expect get-devices 0 "^thermo-1 " -- "$KEDGE" get devices
expect get-ns 0 "^kube-system +Active" -- "$KEDGE" get namespaces
expect describe 0 "^Labels: +app=web" -- "$KEDGE" describe pod web
expect watch 124 "^ADDED +web" -- timeout 3 "$KEDGE" get pods -w   # streams until stopped
expect get-missing 1 'pods "nope" not found' -- "$KEDGE" get pod nope
expect unknown-kind 1 "doesn't have a resource type \"widgets\"" -- "$KEDGE" get widgets
expect get-usage 2 "usage: kedge get" -- "$KEDGE" get
expect bad-flag 2 "unknown flag --frobnicate" -- "$KEDGE" get pods --frobnicate

printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  labels: {a: [1, 2}\n' >"$work/bad.yaml"
expect invalid-yaml 1 "bad.yaml:[0-9]+:[0-9]+: invalid YAML" -- "$KEDGE" apply -f "$work/bad.yaml"
printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n' >"$work/invalid.yaml"
expect invalid-object 1 "invalid.yaml:1: pod/Bad_Name: .*metadata.name.*422 Invalid" -- "$KEDGE" apply -f "$work/invalid.yaml"
printf 'apiVersion: v9\nkind: Gadget\nmetadata:\n  name: g\n' >"$work/gadget.yaml"
expect unknown-manifest-kind 1 'gadget.yaml:1: no resource of kind "Gadget"' -- "$KEDGE" apply -f "$work/gadget.yaml"
expect missing-file 1 'the path ".*nope.yaml" does not exist' -- "$KEDGE" apply -f "$work/nope.yaml"
expect unreachable 1 "cannot reach the API server at https://127.0.0.1:1" -- "$KEDGE" get pods --server https://127.0.0.1:1
expect bad-token 1 "refused the credentials \(401 Unauthorized\)" -- "$KEDGE" get pods --token not-the-token
expect bad-server-url 1 "is not an https://HOST:PORT URL" -- "$KEDGE" get pods --server http://x
# Service-account tokens (kubectl create token) and RBAC on the cloud's API.
cat > "$work/sa.yaml" <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
subjects: [{kind: ServiceAccount, name: reader}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
YAML
expect apply-rbac 0 "rolebinding.rbac.authorization.k8s.io/reader created|rolebinding/reader created" -- "$KEDGE" apply -f "$work/sa.yaml"
sa_token=$("$KEDGE" create token reader --duration 10m)
expect sa-may-list 0 "^web " -- "$KEDGE" get pods --token "$sa_token"
expect sa-may-not 1 'User "system:serviceaccount:default:reader" cannot list resource "configmaps"' -- "$KEDGE" get cm --token "$sa_token"
expect token-no-sa 1 'serviceaccounts "ghost" not found' -- "$KEDGE" create token ghost
expect token-bad-duration 2 'is not a duration' -- "$KEDGE" create token reader --duration soon
expect token-too-short 1 'must be between 600 and' -- "$KEDGE" create token reader --duration 5s
expect delete 0 'pod "web" deleted' -- "$KEDGE" delete pod web
expect delete-file 1 'configmap "settings" deleted' -- "$KEDGE" delete -f "$work/app.yaml"
expect deleted 1 'pods "web" not found' -- "$KEDGE" get pod web

# (the pod was deleted above: its 404 is reported and the rest still goes)
kill -TERM "$cloud"
wait "$cloud" 2>/dev/null
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
