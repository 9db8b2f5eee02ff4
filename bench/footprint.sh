#!/usr/bin/env bash
# The footprint of each shipped manifest, idle and connected to a local cloud
# (cloudhub, apiserver, the controllers). For each agent: start it, wait for
# steady state (devices online, node Ready), let it run SECONDS, then print
# one row: VmRSS, PSS, anonymous, file-backed, threads and CPU over the last
# SECONDS/2; then its ten largest mappings by RSS and every shared object it
# maps (the lines starting with '#', 'libs:').
#
# agents:
#   kernel          config/quickstart.toml (the kernel with echo and ticker)
#   gateway-N       config/device-edge.toml with N Modbus devices (libmodbus
#                   simulators of 100 devices each), e.g. gateway-10,
#                   gateway-1000; each device: 2 registers read every
#                   second, reported every 10 s
#   edge-no-edged   config/edgecore.toml without edged
#   edge-no-grpc    the same without dmi-grpc (mappers as plugins only)
#   edge            config/edgecore.toml with edged on a private containerd
#                   (root; scripts/containerd.sh)
#   stock-edgecore  KubeEdge's EdgeCore v1.12.7 from ../shared/peers with the
#                   same modules on the same containerd (root); side by side
#                   with `edge`: bench/side_by_side.sh
# The edge with 10,000 cached objects, before and after listing them all
# through MetaServer: bench/metaserver_load.sh.
# usage: bench/footprint.sh [BUILD_DIR] [SECONDS] [AGENT...]   (default: all)
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
src=$PWD
secs=${2:-20}
shift 2 || shift $#
agents=("$@")
[ ${#agents[@]} -eq 0 ] && agents=(kernel gateway-10 gateway-1000 edge-no-grpc edge-no-edged edge)
kedge="$build/bin/kedge"
source tests/cli/lib.sh  # work, pids, free_port, cleanup on exit
containerd_dir=
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$containerd_dir" ] && bash "$src/scripts/containerd.sh" stop "$containerd_dir" >/dev/null 2>&1 || true
  # a kubelet's mounts under its data dir
  awk -v d="$work/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
port() { free_port; }
export KEDGE_CONFIG="$work/kedge-config"
ulimit -n 8192 2>/dev/null || true

cloud_up=0
start_cloud() {
  [ $cloud_up -eq 1 ] && return 0
  hub=$(port); https=$(port); api=$(port)
  cat >"$work/cloud.toml" <<TOML
[agent]
node_name = "cloud"
data_dir = "$work/cloud"
log_level = "warn"
[[plugin]]
name = "cloudhub"
[plugin.config]
address = "127.0.0.1"
port = $hub
https_port = $https
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
TOML
  "$kedge" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -f "$work/cloud/apiserver/admin.token" ] && break; sleep 0.1; done
  sleep 0.5
  "$kedge" config init --manifest "$work/cloud.toml" >/dev/null
  cloud_up=1
}

# edge_manifest SRC NAME: SRC with its data, ports and token rewritten.
edge_manifest() {
  local from=$1 name=$2 dir="$work/$2"
  mkdir -p "$dir"
  "$kedge" token create --manifest "$work/cloud.toml" >"$dir/token"
  sed -e "s|/var/lib/kedge/edge|$dir|g" -e "s|127.0.0.1:10000|127.0.0.1:$hub|" \
      -e "s|127.0.0.1:10002|127.0.0.1:$https|" -e 's|log_level = "info"|log_level = "warn"|' \
      -e "s|^node_name = .*|node_name = \"$name\"|" "$from"
}

sims=()
start_sims() {  # start_sims TAG COUNT: COUNT libmodbus devices of 100 registers each
  local tag=$1 n=$2 i
  for i in $(seq "$n"); do
    local p
    p=$(port)
    mkfifo "$work/$tag-sim$i.ctl"
    exec {fd}<>"$work/$tag-sim$i.ctl"
    "$build/bin/kedge_modbus_sim" "$p" <"$work/$tag-sim$i.ctl" >"$work/$tag-sim$i.log" 2>&1 &
    pids+=($!)
    for r in $(seq 0 99); do echo "input $r $((r * 10))" >&$fd; done
    sims+=("$p")
  done
}

devices_yaml() {  # devices_yaml NODE COUNT
  local node=$1 n=$2 i
  cat <<YAML
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: meter}
spec:
  properties:
  - {name: power, type: FLOAT, accessMode: ReadOnly}
  - {name: limit, type: INT, accessMode: ReadWrite}
YAML
  for i in $(seq "$n"); do
    local sim=${sims[$(((i - 1) / 100))]} off=$(((i - 1) % 100))
    cat <<YAML
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: $node-m$i}
spec:
  deviceModelRef: {name: meter}
  nodeName: $node
  protocol: {protocolName: modbus, configData: {ip: 127.0.0.1, port: $sim}}
  properties:
  - {name: power, collectCycle: 1000000000, reportCycle: 10000000000, reportToCloud: true,
     visitors: {protocolName: modbus, configData: {register: InputRegister, offset: $off, scale: 0.1}}}
  - {name: limit, desired: {value: "50"}, collectCycle: 1000000000, reportCycle: 10000000000, reportToCloud: true,
     visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: $off}}}
YAML
  done
}

wait_for() {  # wait_for SECONDS CMD...: until CMD succeeds
  local t=$1
  shift
  for _ in $(seq $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
online_count() { "$kedge" get devices 2>/dev/null | grep -c " online " || true; }
node_ready() { "$kedge" get nodes 2>/dev/null | grep -E "^$1 +Ready" ; }

# measure NAME PID: the row, the top mappings and the libraries.
measure() {
  local name=$1 pid=$2 hz t0 t1
  hz=$(getconf CLK_TCK)
  sleep $((secs - secs / 2))
  t0=$(awk '{print $14 + $15}' /proc/$pid/stat)
  sleep $((secs / 2))
  t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
  python3 - "$name" "$pid" "$t0" "$t1" "$hz" "$((secs / 2))" <<'PY'
import collections, os, sys
name, pid, t0, t1, hz, span = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
kb = lambda k: int(status[k].split()[0])
roll = {}
for l in open(f"/proc/{pid}/smaps_rollup"):
    parts = l.split()
    if len(parts) >= 3 and parts[-1] == "kB":
        roll[parts[0].rstrip(":")] = int(parts[1])
per = collections.Counter()
cur = None
for l in open(f"/proc/{pid}/smaps"):
    f = l.split()
    if "-" in f[0] and len(f) >= 5 and not f[0].endswith(":"):
        cur = f[5] if len(f) >= 6 else "[anon]"
    elif f[0] == "Rss:":
        per[os.path.basename(cur) if cur.startswith("/") else cur] += int(f[1])
cpu = (t1 - t0) * 100.0 / hz / max(span, 1)
mb = lambda k: k / 1024
print(f"| {name} | {mb(kb('VmRSS')):.1f} | {mb(roll.get('Pss', 0)):.1f} | {mb(kb('RssAnon')):.1f} | "
      f"{mb(kb('RssFile')):.1f} | {int(status['Threads'])} | {cpu:.2f} |")
for lib, rss in per.most_common(10):
    print(f"#   {lib:40s} {rss:7d} kB")
libs = sorted({os.path.basename(l.split()[5]) for l in open(f"/proc/{pid}/maps")
               if len(l.split()) >= 6 and ".so" in l.split()[5]})
print("libs: " + " ".join(libs))
# FOOTPRINT_DETAIL=libcrypto,libkedge_net: each mapping of those, page by kind.
want = [w for w in os.environ.get("FOOTPRINT_DETAIL", "").split(",") if w]
cur = None
for l in open(f"/proc/{pid}/smaps") if want else []:
    f = l.split()
    if "-" in f[0] and len(f) >= 5 and not f[0].endswith(":"):
        cur = {"name": f[5] if len(f) >= 6 else "[anon]", "perm": f[1]}
    elif f[0] == "VmFlags:" and any(w in cur["name"] for w in want):
        print(f"#     {os.path.basename(cur['name']):28s} {cur['perm']} size {cur['Size']:6d} rss {cur['Rss']:6d} "
              f"clean {cur['Shared_Clean'] + cur['Private_Clean']:6d} dirty {cur['Private_Dirty']:5d} kB")
    elif f[0].endswith(":") and len(f) >= 2 and f[1].isdigit():
        cur[f[0][:-1]] = int(f[1])
PY
}

sock=
start_containerd() {  # one private containerd for every agent that runs pods; its socket in $sock
  [ -n "$containerd_dir" ] && return 0
  containerd_dir="$work/containerd"
  sock=$(bash scripts/containerd.sh start "$containerd_dir" | tail -1)
}

pid=
run_agent() {  # run_agent NAME MANIFEST: starts it; its pid in $pid
  ${FOOTPRINT_WRAP:-} "$kedge" run "$2" >"$work/$1.log" 2>&1 &  # e.g. FOOTPRINT_WRAP="heaptrack -o /tmp/h"
  pid=$!
  pids+=($pid)
}
stop_agent() {  # stops $pid and waits for it (FOOTPRINT_HOLD=SECONDS: after a pause, to look at it)
  [ -n "${FOOTPRINT_HOLD:-}" ] && { echo "# holding pid $pid for $FOOTPRINT_HOLD s"; sleep "$FOOTPRINT_HOLD"; }
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "| agent | VmRSS MB | PSS MB | anonymous MB | file-backed MB | threads | CPU % of a core |"
echo "|---|---|---|---|---|---|---|"
for a in "${agents[@]}"; do
  case $a in
    kernel)
      sed -e "s|^data_dir = .*|data_dir = \"$work/kernel\"|" -e 's|log_level = "info"|log_level = "warn"|' \
        config/quickstart.toml >"$work/kernel.toml"
      run_agent kernel "$work/kernel.toml"
      sleep 1
      measure "kernel only (echo, ticker)" "$pid"
      stop_agent
      ;;
    gateway-*)
      n=${a#gateway-}
      start_cloud
      sims=()
      start_sims "$a" $(((n + 99) / 100))
      node="gw$n"
      edge_manifest config/device-edge.toml "$node" >"$work/$node.toml"
      run_agent "$node" "$work/$node.toml"
      wait_for 30 node_ready "$node" || echo "# $node: node not Ready" >&2
      devices_yaml "$node" "$n" >"$work/$node-devices.yaml"
      "$kedge" apply -f "$work/$node-devices.yaml" >/dev/null
      # Devices online (all but at most 1%).
      for _ in $(seq 120); do [ "$(online_count)" -ge $((n - n / 100)) ] && break; sleep 1; done
      online=$(online_count)
      measure "device gateway, $n devices ($online online)" "$pid"
      stop_agent
      "$kedge" delete -f "$work/$node-devices.yaml" >/dev/null 2>&1 || true
      ;;
    edge-no-edged | edge-no-grpc)
      # edgecore.toml without edged (and, for edge-no-grpc, without dmi-grpc:
      # mapper plugins only).
      start_cloud
      node=${a}
      drop="edged"
      [ "$a" = edge-no-grpc ] && drop="edged|dmi-grpc"
      edge_manifest config/edgecore.toml "$node" | python3 -c '
import re, sys
text = sys.stdin.read()
print(re.sub(r"\[\[plugin\]\]\nname = \"(" + sys.argv[1] + r")\".*?(?=\n\[\[plugin\]\]|\Z)", "", text, flags=re.S))' "$drop" |
        sed -e "/^name = \"metaserver\"/a [plugin.config]\nport = $(port)" \
          -e "/^name = \"dmi-grpc\"/a [plugin.config]\nsocket = \"dmi.sock\"" >"$work/$node.toml"
      run_agent "$node" "$work/$node.toml"
      wait_for 30 node_ready "$node" || echo "# $node: node not Ready" >&2
      if [ "$a" = edge-no-edged ]; then
        measure "full edge without edged" "$pid"
      else
        measure "full edge without edged and dmi-grpc" "$pid"
      fi
      stop_agent
      ;;
    edge)
      if [ "$(id -u)" -ne 0 ] || ! command -v containerd >/dev/null; then
        echo "# edge: skipped (needs root and containerd)"
        continue
      fi
      start_cloud
      start_containerd
      edge_manifest config/edgecore.toml edge >"$work/edge.toml"
      sed -i -e "s|unix:///run/containerd/containerd.sock|unix://$sock|" \
        -e "/^name = \"metaserver\"/a [plugin.config]\nport = $(port)" \
        -e "/^name = \"dmi-grpc\"/a [plugin.config]\nsocket = \"dmi.sock\"" "$work/edge.toml"
      run_agent edge "$work/edge.toml"
      wait_for 60 node_ready edge || echo "# edge: node not Ready" >&2
      measure "full edge (edged on containerd)" "$pid"
      stop_agent
      ;;
    stock-edgecore)
      # KubeEdge's own EdgeCore v1.12.7 with the same modules (EdgeHub,
      # MetaManager with MetaServer, DeviceTwin, Edged on the same private
      # containerd; EventBus, EdgeStream, ServiceBus off), joined to the same
      # kedge cloud (docs/compatibility.md).
      peers=${KEDGE_PEERS:-$src/../shared/peers}
      if [ "$(id -u)" -ne 0 ] || [ ! -x "$peers/stock-edgecore.sh" ]; then
        echo "# stock-edgecore: skipped (needs root and $peers/stock-edgecore.sh)"
        continue
      fi
      start_cloud
      start_containerd
      ec=$("$peers/stock-edgecore.sh" binary "$work/stock-bin")
      mkdir -p /etc/kubeedge "$work/stock"
      DATA="$work/stock/data" NODE=stock-edge HUB=127.0.0.1:$hub BOOT=127.0.0.1:$https \
        TOKEN=$("$kedge" token create --manifest "$work/cloud.toml") CRI=$sock \
        CNI_CONF="$containerd_dir/cni/conf" HEALTHZ_PORT=$(port) READONLY_PORT=$(port) \
        METASERVER_PORT=$(port) "$peers/stock-edgecore.sh" config >"$work/stock/edgecore.yaml"
      # (its kubelet writes kubelet.crt/.key into its working directory)
      (cd "$work/stock" && exec "$ec" --config "$work/stock/edgecore.yaml") >"$work/stock.log" 2>&1 &
      pid=$!
      pids+=($pid)
      # Its kubelet waits about a minute for the runtime's status.
      wait_for 180 node_ready stock-edge || echo "# stock-edgecore: node not Ready" >&2
      measure "stock EdgeCore v1.12.7 (edged on containerd)" "$pid"
      stop_agent
      ;;
    *) echo "unknown agent $a" >&2; exit 2 ;;
  esac
done
