#!/usr/bin/env bash
# requireAuthorization with real processes and a real client: a cloud from
# config/cloudcore.toml and an edge from config/edgecore.toml, both with the
# gate on; a service account, a Role and a RoleBinding applied with `kedge
# apply`, a token from `kedge create token`. Then the edge's API over HTTPS:
# with kubectl (the one installed on the machine) if there is one, and with
# curl in any case: allowed, no token, no permission; and with the cloud
# stopped, refused (allow_cached_offline is off).
# usage: metaserver_auth_test.sh KEDGE SOURCE_DIR
set -uo pipefail
KEDGE=$(realpath "$1")
SRC=$(realpath "$2")
source "$(dirname "$0")/lib.sh"
export KEDGE_CONFIG="$work/kedge-config"
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
wait_for() {  # DESCRIPTION COMMAND...: retries for up to 20 s
  local what=$1; shift
  for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out: $what"
}

p1=$(free_port); p2=$(free_port); p3=$(free_port); pm=$(free_port)
sed -e "s|/var/lib/kedge/cloud|$work/cloud|" -e "s|port = 10000|port = $p1|" -e "s|port = 6443|port = $p3|" \
    -e "s|https_port = 10002|https_port = $p2|" -e 's|address = "0.0.0.0"|address = "127.0.0.1"|' \
    -e "s|^store = \"sqlite\".*|&\nrequire_authorization = true|" \
    "$SRC/config/cloudcore.toml" >"$work/cloud.toml"
sed -e "s|/var/lib/kedge/edge|$work/edge|g" -e "s|127.0.0.1:10000|127.0.0.1:$p1|" \
    -e "s|127.0.0.1:10002|127.0.0.1:$p2|" -e "s|heartbeat_s = 15|heartbeat_s = 1|" \
    -e "s|^name = \"metaserver\".*|&\n[plugin.config]\nport = $pm\nrequire_authorization = true\nauth_cache_ttl_s = 1|" \
    "$SRC/config/edgecore.toml" >"$work/edge.toml"
grep -q "require_authorization = true" "$work/cloud.toml" || fail "the cloud manifest was not rewritten"

"$KEDGE" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
cloud=$!
pids+=($cloud)
wait_for "the API is served" grep -q "serving the API" "$work/cloud.log"
"$KEDGE" config init --manifest "$work/cloud.toml" >/dev/null || fail "config init"
mkdir -p "$work/edge"
"$KEDGE" token create --manifest "$work/cloud.toml" >"$work/edge/token" || fail "token"
"$KEDGE" run "$work/edge.toml" >"$work/edge.log" 2>&1 &
pids+=($!)
wait_for "the edge's API over HTTPS" grep -q "serving the edge's API on https" "$work/edge.log"
wait_for "node edge-1 registered" bash -c "'$KEDGE' get nodes | grep -q '^edge-1 '"

cat >"$work/rbac.yaml" <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nobody}
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
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: edge-1
  containers: [{name: web, image: busybox}]
YAML
"$KEDGE" apply -f "$work/rbac.yaml" >/dev/null || fail "apply"
reader=$("$KEDGE" create token reader --duration 10m) || fail "create token"
nobody=$("$KEDGE" create token nobody --duration 10m) || fail "create token"
ca="$work/edge/metaserver/ca.crt"
url="https://127.0.0.1:$pm"

code() {  # TOKEN PATH -> the HTTP status
  curl -s -o "$work/body" -w '%{http_code}' --cacert "$ca" ${1:+-H "Authorization: Bearer $1"} "$url$2"
}
wait_for "the pod at the edge" bash -c "curl -sf --cacert '$ca' -H 'Authorization: Bearer $reader' '$url/api/v1/namespaces/default/pods/web'"
[ "$(code "$reader" /api/v1/namespaces/default/pods)" = 200 ] || fail "reader cannot list: $(cat "$work/body")"
grep -q '"web"' "$work/body" || fail "the list has no web pod"
[ "$(code "" /api/v1/namespaces/default/pods)" = 401 ] || fail "no token was not 401"
[ "$(code "$nobody" /api/v1/namespaces/default/pods)" = 403 ] || fail "nobody was not 403"
grep -q 'cannot list resource' "$work/body" || fail "the 403 does not say why: $(cat "$work/body")"
curl -s -o /dev/null "http://127.0.0.1:$pm/api/v1/pods" && fail "plain HTTP is still served"

checks=curl
if command -v kubectl >/dev/null; then
  checks="curl and kubectl"
  k() { kubectl --cache-dir "$work/kube-cache" --server "$url" --certificate-authority "$ca" "$@"; }
  k --token "$reader" get pods >"$work/k.out" 2>&1 || fail "kubectl get pods: $(cat "$work/k.out")"
  grep -qE '^web ' "$work/k.out" || fail "kubectl does not list web: $(cat "$work/k.out")"
  k --token "$reader" get pod web -o jsonpath='{.metadata.name}' >"$work/k.out" 2>&1
  [ "$(cat "$work/k.out")" = web ] || fail "kubectl get pod web: $(cat "$work/k.out")"
  timeout 3 kubectl --server "$url" --certificate-authority "$ca" --token "$reader" \
    get pods -w >"$work/kw.out" 2>&1 || true
  grep -qE '^web ' "$work/kw.out" || fail "kubectl get -w: $(cat "$work/kw.out")"
  k --token "$nobody" get pods >"$work/k.out" 2>&1 && fail "kubectl as nobody succeeded"
  grep -q 'forbidden' "$work/k.out" || fail "kubectl as nobody: $(cat "$work/k.out")"
  k get pods >"$work/k.out" 2>&1 && fail "kubectl without a token succeeded"
fi

# The cloud goes away: without allow_cached_offline, refused.
kill -TERM "$cloud"
wait "$cloud" 2>/dev/null
sleep 1.2
[ "$(code "$reader" /api/v1/namespaces/default/pods)" = 403 ] || fail "offline was not 403"
grep -q 'cloud is unreachable' "$work/body" || fail "the offline 403 does not say why: $(cat "$work/body")"
echo "requireAuthorization with real processes: passed ($checks)"
