#!/usr/bin/env bash
# A device gateway's footprint: config/device-edge.toml (edgehub,
# metamanager, twin, dmi, the Modbus mapper in-process) connected to a local
# cloud, running DEVICES Modbus devices (one libmodbus simulator, 2
# properties each, read every second, reported every second). After
# SECONDS: the edge process's resident memory and its CPU over the last
# SECONDS/2.
# usage: bench/device_edge_rss.sh [BUILD_DIR] [DEVICES] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
devices=${2:-10}
secs=${3:-20}
kedge="$build/bin/kedge"
work=$(mktemp -d)
pids=()
trap 'exec 3>&-; for p in "${pids[@]}"; do kill -KILL $p 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hub=$(port); https=$(port); api=$(port); mb=$(port)
export KEDGE_CONFIG="$work/kedge-config"
mkfifo "$work/mb.ctl"; exec 3<>"$work/mb.ctl"
"$build/bin/kedge_modbus_sim" "$mb" <"$work/mb.ctl" >"$work/mb.log" 2>&1 &
pids+=($!)
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
name = "devicecontroller"
TOML
sed -e "s|/var/lib/kedge/edge|$work/edge|g" -e "s|127.0.0.1:10000|127.0.0.1:$hub|" \
    -e "s|127.0.0.1:10002|127.0.0.1:$https|" -e 's|log_level = "info"|log_level = "warn"|' \
    -e 's|^name = "dmi"|&\n[plugin.config]\nsocket = "dmi.sock"|' config/device-edge.toml >"$work/edge.toml"
"$kedge" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -f "$work/cloud/apiserver/admin.token" ] && break; sleep 0.1; done
sleep 0.5
"$kedge" config init --manifest "$work/cloud.toml" >/dev/null
mkdir -p "$work/edge"
"$kedge" token create --manifest "$work/cloud.toml" >"$work/edge/token"
"$kedge" run "$work/edge.toml" >"$work/edge.log" 2>&1 &
edge=$!
pids+=($edge)
{
  cat <<YAML
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: meter}
spec:
  properties:
  - {name: power, type: FLOAT, accessMode: ReadOnly}
  - {name: limit, type: INT, accessMode: ReadWrite}
YAML
  for i in $(seq "$devices"); do
    cat <<YAML
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: meter-$i}
spec:
  deviceModelRef: {name: meter}
  nodeName: gateway-1
  protocol: {protocolName: modbus, configData: {ip: 127.0.0.1, port: $mb}}
  properties:
  - {name: power, collectCycle: 1000000000, reportCycle: 1000000000, reportToCloud: true,
     visitors: {protocolName: modbus, configData: {register: InputRegister, offset: $((i % 100)), scale: 0.1}}}
  - {name: limit, desired: {value: "50"}, collectCycle: 1000000000, reportCycle: 1000000000, reportToCloud: true,
     visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: $((i % 100))}}}
YAML
  done
} >"$work/devices.yaml"
"$kedge" apply -f "$work/devices.yaml" >/dev/null
for i in $(seq 0 99); do echo "input $i $((i * 10))" >&3; done
sleep $((secs / 2))
ticks() { awk '{print $14 + $15}' /proc/$edge/stat; }
t0=$(ticks)
sleep $((secs / 2))
t1=$(ticks)
hz=$(getconf CLK_TCK)
online=$("$kedge" get devices | grep -c " online ")
printf 'device edge, %s Modbus devices (%s online): VmRSS %s kB (anonymous %s kB), threads %s, CPU %.2f%% of a core\n' \
  "$devices" "$online" "$(awk '/^VmRSS/ {print $2}' /proc/$edge/status)" \
  "$(awk '/^RssAnon/ {print $2}' /proc/$edge/status)" "$(awk '/^Threads/ {print $2}' /proc/$edge/status)" \
  "$(python3 -c "import sys; print((int(sys.argv[1]) - int(sys.argv[2])) * 100 / int(sys.argv[3]) / (int(sys.argv[4]) // 2))" "$t1" "$t0" "$hz" "$secs")"
