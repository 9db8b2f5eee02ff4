#!/usr/bin/env bash
# The SDK as a third party sees it: install kedge to a temporary prefix, build
# examples/hello-plugin out of tree with find_package(kedge), run its harness
# test, then load it with the installed `kedge run` and check it exchanged
# messages with the installed echo plugin.
# usage: sdk_install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$(realpath "$1")
SRC=$(realpath "$2")
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
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
"$work/prefix/bin/kedge" plugins --plugin-dir "$work/hello" | grep -E '^hello +1\.0\.0 +1 '

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
echo "1 passed, 0 failed"
