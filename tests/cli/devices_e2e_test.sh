#!/usr/bin/env bash
# Devices end to end, with real processes and real peers: a cloud
# (cloudhub, apiserver, devicecontroller), an edge (edgehub, metamanager,
# twin, dmi), a mosquitto broker, a Modbus TCP device (libmodbus's server,
# tests/tools/modbus_sim.cpp) and the standalone Modbus mapper speaking DMI
# over gRPC.
#  * kedge apply a DeviceModel and a Device for the node: the mapper
#    registers the device, and the temperature in its input register shows
#    in `kedge get device -o yaml` (and `kedge get devices`);
#  * the desired setpoint is written to the holding register, and again when
#    it changes; the desired heater state to a coil;
#  * each reading is published to the broker, where mosquitto_sub gets it;
#  * the mapper is killed and restarted: it registers again and resumes;
#  * the Modbus device goes away: the device turns unhealthy, and online
#    again when it is back.
# usage: devices_e2e_test.sh KEDGE SOURCE_DIR
set -uo pipefail
KEDGE=$(realpath "$1")
SRC=$(realpath "$2")
BIN=$(dirname "$KEDGE")
source "$(dirname "$0")/lib.sh"
export KEDGE_CONFIG="$work/kedge-config"
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -25 "$f"; done; exit 1; }
wait_for() {  # DESCRIPTION COMMAND...: retries for up to 30 s
  local what=$1; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out: $what"
}
for tool in mosquitto mosquitto_sub; do
  command -v $tool >/dev/null || fail "$tool is not installed (.ci/install-deps.sh installs it)"
done

hub=$(free_port); https=$(free_port); api=$(free_port); mqtt=$(free_port); mb=$(free_port)

# The broker.
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_for "mosquitto up" bash -c "echo > /dev/tcp/127.0.0.1/$mqtt"

# The Modbus device, driven through a FIFO on its stdin.
mkfifo "$work/modbus.ctl"
exec 3<>"$work/modbus.ctl"
start_device() {
  "$BIN/kedge_modbus_sim" "$mb" <"$work/modbus.ctl" >>"$work/modbus.log" 2>&1 &
  device=$!
  pids+=($device)
  wait_for "the Modbus device up" grep -q "listening on 127.0.0.1:$mb" "$work/modbus.log"
}
start_device
echo "input 0 215" >&3   # 21.5 degrees with scale 0.1

cat >"$work/cloud.toml" <<TOML
[agent]
node_name = "cloud"
data_dir = "$work/cloud"
[[plugin]]
name = "cloudhub"
[plugin.config]
address = "127.0.0.1"
port = $hub
https_port = $https
keepalive_interval_s = 1
[[plugin]]
name = "apiserver"
[plugin.config]
address = "127.0.0.1"
port = $api
[[plugin]]
name = "nodecontroller"
[[plugin]]
name = "devicecontroller"
TOML
cat >"$work/edge.toml" <<TOML
[agent]
node_name = "edge-1"
data_dir = "$work/edge"
[[plugin]]
name = "edgehub"
[plugin.config]
server = "127.0.0.1:$hub"
http_server = "127.0.0.1:$https"
token_file = "token"
heartbeat_s = 1
[[plugin]]
name = "metamanager"
[[plugin]]
name = "twin"
[[plugin]]
name = "dmi"
[[plugin]]
name = "dmi-grpc"
[plugin.config]
socket = "dmi.sock"
TOML

"$KEDGE" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
pids+=($!)
wait_for "the API is served" grep -q "serving the API" "$work/cloud.log"
"$KEDGE" config init --manifest "$work/cloud.toml" >/dev/null || fail "config init"
mkdir -p "$work/edge"
"$KEDGE" token create --manifest "$work/cloud.toml" >"$work/edge/token" || fail "token"
"$KEDGE" run "$work/edge.toml" >"$work/edge.log" 2>&1 &
pids+=($!)
wait_for "node edge-1 Ready" bash -c "'$KEDGE' get nodes | grep -qE '^edge-1 +Ready'"

mapper_args=(--dmi-socket "$work/edge/dmi.sock" --socket "$work/modbus.sock")
start_mapper() {
  "$BIN/kedge-modbus-mapper" "${mapper_args[@]}" >>"$work/mapper.log" 2>&1 &
  mapper=$!
  pids+=($mapper)
}
start_mapper

device_yaml() {  # SETPOINT
  cat <<YAML
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata:
  name: thermostat
spec:
  protocol: modbus
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly, unit: celsius}
  - {name: setpoint, type: INT, accessMode: ReadWrite}
  - {name: heater, type: BOOLEAN, accessMode: ReadWrite}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: thermostat-1
spec:
  deviceModelRef: {name: thermostat}
  nodeName: edge-1
  protocol:
    protocolName: modbus
    configData: {ip: 127.0.0.1, port: $mb, slaveID: 1, timeout_ms: 500}
  properties:
  - name: temperature
    collectCycle: 100000000        # 100 ms
    reportCycle: 200000000
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {register: InputRegister, offset: 0, limit: 1, scale: 0.1}
    pushMethod:
      mqtt: {address: "tcp://127.0.0.1:$mqtt", topic: kedge/thermostat-1/temperature, qos: 1}
  - name: setpoint
    desired: {value: "$1"}
    collectCycle: 100000000
    reportCycle: 200000000
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {register: HoldingRegister, offset: 1}
  - name: heater
    desired: {value: "true"}
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {register: CoilRegister, offset: 2}
YAML
}
device_yaml 25 >"$work/device.yaml"
"$KEDGE" apply -f "$work/device.yaml" >"$work/apply.out" 2>&1 || fail "apply: $(cat "$work/apply.out")"
grep -q "device/thermostat-1 created" "$work/apply.out" || fail "apply: $(cat "$work/apply.out")"

reported() {  # PROPERTY VALUE: the Device's status has it
  "$KEDGE" get device thermostat-1 -o json | python3 -c '
import json, sys
d = json.load(sys.stdin)
want = {t["propertyName"]: t.get("reported", {}).get("value") for t in d.get("status", {}).get("twins", [])}
sys.exit(0 if want.get(sys.argv[1]) == sys.argv[2] else 1)' "$1" "$2"
}
state_is() { "$KEDGE" get device thermostat-1 -o json | grep -q "\"state\":\"$1\""; }

# The reading reaches the cloud.
wait_for "temperature 21.5 in the Device's status" reported temperature 21.5
"$KEDGE" get device thermostat-1 -o yaml | grep -qE 'value: "?21.5"?' || fail "kedge get device -o yaml"
wait_for "the device online" state_is online
"$KEDGE" get devices | grep -qE '^thermostat-1 +online +.*temperature=21.5' ||
  fail "kedge get devices: $("$KEDGE" get devices)"
# The desired value is in the holding register.
wait_for "setpoint 25 written to the register" grep -q "write holding 1 25" "$work/modbus.log"
wait_for "setpoint 25 reported" reported setpoint 25
wait_for "the heater's coil switched on" grep -q "write coil 2 1" "$work/modbus.log"
wait_for "heater true reported" reported heater true
# Readings on MQTT.
timeout 10 mosquitto_sub -h 127.0.0.1 -p "$mqtt" -t kedge/thermostat-1/temperature -C 1 \
  >"$work/mqtt.out" 2>&1 || fail "no reading on MQTT: $(cat "$work/mqtt.out")"
python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); assert d["deviceName"]=="thermostat-1" and d["value"]=="21.5", d' \
  "$work/mqtt.out" || fail "MQTT payload: $(cat "$work/mqtt.out")"
# A new desired value.
device_yaml 30 | "$KEDGE" apply -f - >/dev/null || fail "apply setpoint 30"
wait_for "setpoint 30 written" grep -q "write holding 1 30" "$work/modbus.log"
# The mapper is killed; the temperature changes meanwhile; a new mapper
# registers and resumes.
{ kill -KILL $mapper; wait $mapper; } 2>/dev/null
echo "input 0 230" >&3
sleep 1
reported temperature 21.5 || fail "a dead mapper reported"
start_mapper
wait_for "temperature 23 after the mapper's restart" reported temperature 23
[ "$(grep -c "registered with the edge" "$work/mapper.log")" -ge 2 ] || fail "the mapper did not register again"
# The device goes away: unhealthy; back: online.
{ kill -KILL $device; wait $device; } 2>/dev/null
wait_for "the device unhealthy" state_is unhealthy
start_device
echo "input 0 240" >&3
wait_for "the device online again" state_is online
wait_for "temperature 24" reported temperature 24
kill -TERM $mapper
wait $mapper || fail "the mapper did not exit cleanly on SIGTERM"
echo "1 passed, 0 failed"
