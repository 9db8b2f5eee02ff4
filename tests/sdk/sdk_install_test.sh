#!/usr/bin/env bash
# The SDK as a third party sees it: install kedge to a temporary prefix, build
# examples/hello-plugin out of tree with find_package(kedge), run its harness
# test, then load it with the installed `kedge run` and check it exchanged
# messages with the installed echo plugin. Then a third-party mapper: `kedge
# mapper new`, built out of tree against the installed Mapper SDK, runs as a
# standalone DMI mapper beside an installed cloud and edge, and its device's
# readings show in `kedge get devices`.
# usage: sdk_install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$(realpath "$1")
SRC=$(realpath "$2")
work=$(mktemp -d)
pid=
procs=()
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  for p in "${procs[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== $*"; }

step "install to $work/prefix"
cmake --install "$BUILD" --prefix "$work/prefix" >"$work/install.log"
test -f "$work/prefix/include/kedge/plugin.h"
test -f "$work/prefix/include/kedge/testing/harness.h"
ls "$work"/prefix/lib*/cmake/kedge/kedgeConfig.cmake >/dev/null

step "build examples/hello-plugin out of tree"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$SRC/examples/hello-plugin" -B "$work/hello" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" ${KEDGE_EXAMPLE_CMAKE_ARGS:-} >"$work/configure.log"
cmake --build "$work/hello" -j2 >"$work/build.log" || { cat "$work/build.log"; exit 1; }
test -f "$work/hello/libkedge_hello.so"

step "run its harness test"
(cd "$work/hello" && ctest --output-on-failure)

step "kedge plugins sees it"
"$work/prefix/bin/kedge" plugins --plugin-dir "$work/hello" | grep -E '^hello +1\.0\.0 +2 '

step "kedge run loads it and it exchanges messages with echo"
plugdir=$(ls -d "$work"/prefix/lib*/kedge/plugins)
cat >"$work/hello.toml" <<TOML
[agent]
node_name = "sdk-test"
data_dir = "data"
plugin_dirs = ["$work/hello", "$plugdir"]

[[plugin]]
name = "echo"

[[plugin]]
name = "hello"
[plugin.config]
peer = "echo"
count = 5
TOML
"$work/prefix/bin/kedge" run "$work/hello.toml" >"$work/run.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  grep -q 'exchanged 10 messages with echo' "$work/run.log" && break
  sleep 0.05
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
cat "$work/run.log"
grep -q 'exchanged 10 messages with echo' "$work/run.log"
grep -q 'answered 5 request(s)' "$work/run.log"
grep -q 'kedge_echo_answered_total 5' "$work/data/metrics.prom"
[ "$rc" -eq 0 ] || { echo "kedge run exited $rc"; exit 1; }

step "kedge mapper new thermo, built out of tree"
test -f "$work/prefix/include/kedge/mapper/mapper.h"
"$work/prefix/bin/kedge" mapper new thermo --dir "$work/thermo"
cmake -S "$work/thermo" -B "$work/thermo/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" ${KEDGE_EXAMPLE_CMAKE_ARGS:-} >"$work/thermo-configure.log"
cmake --build "$work/thermo/build" -j2 >"$work/thermo-build.log" || { cat "$work/thermo-build.log"; exit 1; }
"$work/thermo/build/kedge-thermo-mapper" --version | grep -qx "thermo-mapper 0.1.0"
"$work/prefix/bin/kedge" plugins --plugin-dir "$work/thermo/build" | grep -qE '^thermo-mapper +0\.1\.0 +2 '
{ "$work/prefix/bin/kedge" mapper new thermo --dir "$work/thermo" 2>&1 || true; } |
  grep -q "exists and is not empty"

step "the mapper runs its device beside an installed cloud and edge"
free_port() { python3 "$(dirname "${BASH_SOURCE[0]}")/../cli/free_port.py"; }
hub=$(free_port); https=$(free_port); api=$(free_port)
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
[[plugin]]
name = "apiserver"
[plugin.config]
address = "127.0.0.1"
port = $api
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
k="$work/prefix/bin/kedge"
export KEDGE_CONFIG="$work/kedge-config"
"$k" run "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
procs+=($!)
for _ in $(seq 100); do grep -q "serving the API" "$work/cloud.log" && break; sleep 0.1; done
"$k" config init --manifest "$work/cloud.toml" >/dev/null
mkdir -p "$work/edge"
"$k" token create --manifest "$work/cloud.toml" >"$work/edge/token"
"$k" run "$work/edge.toml" >"$work/edge.log" 2>&1 &
procs+=($!)
"$work/thermo/build/kedge-thermo-mapper" --dmi-socket "$work/edge/dmi.sock" \
  --socket "$work/thermo.sock" >"$work/thermo.log" 2>&1 &
procs+=($!)
"$k" apply -f "$work/thermo/device.yaml"
ok=0
for _ in $(seq 200); do
  "$k" get devices 2>/dev/null >"$work/devices.out"
  grep -qE '^thermo-1 +online +.*temperature=21\.5' "$work/devices.out" &&
    grep -qE '^thermo-1 .*setpoint=22' "$work/devices.out" && { ok=1; break; }
  sleep 0.1
done
"$k" get devices
[ $ok = 1 ] || { tail -n 20 "$work"/edge.log "$work"/thermo.log; echo "the mapper's readings did not arrive"; exit 1; }
echo "1 passed, 0 failed"
