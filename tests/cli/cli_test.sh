#!/usr/bin/env bash
# Tests of the `kedge` command line: exit codes and the messages people see.
# usage: cli_test.sh KEDGE FIXTURE_DIR SOURCE_DIR
set -u
KEDGE=$(realpath "$1")
FIX=$(realpath "$2")
SRC=$(realpath "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0

# expect NAME RC REGEX -- CMD...: runs CMD, checks its exit code and that its
# combined output matches REGEX (grep -E).
expect() {
  local name=$1 rc=$2 re=$3
  shift 4
  local out got
  out=$("$@" 2>&1)
  got=$?
  if [ "$got" -ne "$rc" ] || ! grep -qE -- "$re" <<<"$out"; then
    echo "FAIL $name: exit $got (want $rc), output must match /$re/:"
    sed 's/^/    /' <<<"$out"
    fail=$((fail + 1))
  else
    echo "ok   $name"
    pass=$((pass + 1))
  fi
}

# manifest NAME BODY: writes $work/NAME.toml with the fixture plugin dir.
manifest() {
  printf '[agent]\nplugin_dirs = ["%s"]\ndata_dir = "data-%s"\n%b' "$FIX" "$1" "$2" >"$work/$1.toml"
  echo "$work/$1.toml"
}

expect version 0 '^kedge [0-9]+\.[0-9]+\.[0-9]+ \(plugin ABI 2\)$' -- "$KEDGE" version
expect version-build 0 '^build: abi=2;cxx=gcc-[0-9]+;libstdc\+\+=[0-9]+;cxx11abi=1;boost=[0-9]+;spdlog=[0-9.]+;fmt=[0-9]+;asan=[01]$' -- "$KEDGE" version
expect no-args 2 'usage: kedge' -- "$KEDGE"
expect unknown-command 2 "unknown command 'frobnicate'" -- "$KEDGE" frobnicate
expect run-needs-manifest 2 'takes exactly one MANIFEST' -- "$KEDGE" run
expect missing-manifest 2 'nope.toml: cannot open manifest' -- "$KEDGE" check "$work/nope.toml"

m=$(manifest good '[[plugin]]\nname = "beta"\n[[plugin]]\nname = "alpha"\n[plugin.config]\ntags = ["x"]\n')
expect check-ok 0 'OK, 2 plugin\(s\) enabled; start order: alpha beta' -- "$KEDGE" check "$m"
expect quickstart-check 0 'start order: echo ticker' -- "$KEDGE" check "$SRC/config/quickstart.toml"
# Who sends what to whom, as the plugins declare it.
expect check-peers 0 '  dmi -> twin: update device/<name>/twin/update' -- "$KEDGE" check "$SRC/config/device-edge.toml"
expect check-peers-mapper 0 '  modbus-mapper -> dmi: register' -- "$KEDGE" check "$SRC/config/device-edge.toml"
printf '[agent]\ndata_dir = "data-peer"\n[[plugin]]\nname = "twin"\n[[plugin]]\nname = "dmi"\n[plugin.config]\ntwin = "twinn"\n' >"$work/peer.toml"
expect check-peer-missing 2 "peer.toml:8:8: plugin 'dmi': config.twin names module 'twinn', which is not in the manifest" -- "$KEDGE" check "$work/peer.toml"
printf '[agent]\ndata_dir = "data-sock"\n[[plugin]]\nname = "twin"\n[[plugin]]\nname = "dmi"\n[plugin.config]\nsocket = "dmi.sock"\n' >"$work/sock.toml"
# The edge's conversations come from the contracts each plugin declares.
expect check-peers-edge 0 '  edged -> metamanager: queries of <ns>/configmap' -- "$KEDGE" check "$SRC/config/quickstart-edge.toml"
expect check-peers-meta 0 '  metamanager -> edgehub: ACKs' -- "$KEDGE" check "$SRC/config/quickstart-edge.toml"
printf '[agent]\ndata_dir = "data-edged"\n[[plugin]]\nname = "edged"\n[plugin.config]\nmetamanager = "meta"\n' >"$work/edged-peer.toml"
expect check-edged-peer 2 "edged-peer.toml:6:15: plugin 'edged': config.metamanager names module 'meta', which is not in the manifest" -- "$KEDGE" check "$work/edged-peer.toml"
printf '[agent]\ndata_dir = "data-edged2"\n[[plugin]]\nname = "metamanager"\n[[plugin]]\nname = "edged"\n[plugin.config]\nmax_pods = 0\n' >"$work/edged-range.toml"
expect check-edged-range 2 "edged-range.toml:8:12: plugin 'edged': config.max_pods: 0 is out of range \\[1, 100000\\]" -- "$KEDGE" check "$work/edged-range.toml"
expect dmi-socket-moved 1 "'socket' moved to the dmi-grpc plugin" -- "$KEDGE" run "$work/sock.toml"

# Every manifest error names file:line:col and what was expected.
m=$(manifest syntax '[[plugin]]\nname = "alpha\n')
expect syntax-error 2 "syntax.toml:5:[0-9]+: TOML syntax error" -- "$KEDGE" check "$m"
m=$(manifest unknown-key '[[plugin]]\nname = "alpha"\nenable = false\n')
expect unknown-key 2 "unknown-key.toml:6:1: plugin 'alpha': unknown key 'enable'" -- "$KEDGE" check "$m"
m=$(manifest wrong-type '[[plugin]]\nname = "alpha"\nrequired = "yes"\n')
expect wrong-type 2 "wrong-type.toml:6:12: plugin 'alpha'.required: expected a boolean, got string" -- "$KEDGE" check "$m"
m=$(manifest missing-name '[[plugin]]\nenabled = true\n')
expect missing-required-key 2 "missing-name.toml:4:1: plugin\[0\]: missing required key 'name'" -- "$KEDGE" check "$m"
m=$(manifest unknown-plugin '[[plugin]]\nname = "nosuch"\n')
expect unknown-plugin 2 "unknown-plugin.toml:4:1: unknown plugin 'nosuch': no libkedge_nosuch.so in" -- "$KEDGE" check "$m"
m=$(manifest dup '[[plugin]]\nname = "alpha"\n[[plugin]]\nname = "alpha"\n')
expect duplicate-plugin 2 "dup.toml:7:8: duplicate plugin name 'alpha'" -- "$KEDGE" check "$m"
m=$(manifest cycle '[[plugin]]\nname = "cyc-a"\n[[plugin]]\nname = "cyc-b"\n[[plugin]]\nname = "cyc-c"\n')
expect dependency-cycle 2 "cycle.toml:[0-9]+:1: dependency cycle: cyc-a -> cyc-b -> cyc-c -> cyc-a" -- "$KEDGE" check "$m"
m=$(manifest missing-dep '[[plugin]]\nname = "lonely"\n')
expect missing-dependency 2 "missing-dep.toml:4:1: plugin 'lonely' depends on 'absent', which is not in the manifest" -- "$KEDGE" check "$m"
m=$(manifest cfg-unknown '[[plugin]]\nname = "alpha"\n[plugin.config]\nfail_inti = true\n')
expect config-unknown-key 2 "cfg-unknown.toml:7:1: plugin 'alpha': config: unknown key 'fail_inti'" -- "$KEDGE" check "$m"
m=$(manifest cfg-type '[[plugin]]\nname = "alpha"\n[plugin.config]\nfail_init = "no"\n')
expect config-wrong-type 2 "cfg-type.toml:7:13: plugin 'alpha': config.fail_init: expected boolean, got string" -- "$KEDGE" check "$m"
m=$(manifest cfg-range '[[plugin]]\nname = "alpha"\n[plugin.config]\nfail_start_times = 1000\n')
expect config-out-of-range 2 "cfg-range.toml:7:20: plugin 'alpha': config.fail_start_times: 1000 is out of range \\[0, 100\\]" -- "$KEDGE" check "$m"
m=$(manifest cfg-missing '[[plugin]]\nname = "needy"\n')
expect config-missing-required 2 "cfg-missing.toml:4:1: plugin 'needy': config: missing required key 'label'" -- "$KEDGE" check "$m"
m=$(manifest abi '[[plugin]]\nname = "alpha"\nlibrary = "libkedge_abi.so"\n')
expect abi-mismatch 2 "ABI version mismatch: the plugin was built for ABI 999, this kedge speaks ABI 2" -- "$KEDGE" check "$m"
m=$(manifest otherbuild '[[plugin]]\nname = "other-build"\n')
expect build-mismatch 2 "libkedge_other-build.so: build mismatch: the plugin was built with \\[abi=2;.*cxx11abi=0;.*\\], this kedge with \\[abi=2;.*cxx11abi=1;" -- "$KEDGE" check "$m"

expect plugins-list 0 'alpha +1\.2\.3 +2 +fail_init,fail_start_times,fail_stop,label,ratio,tags,extra ' -- "$KEDGE" plugins --plugin-dir "$FIX"
expect plugins-list-warns 0 'libkedge_noentry.so: no entry point' -- "$KEDGE" plugins --plugin-dir "$FIX"
expect plugins-describe 0 'fail_start_times \(integer\), default 0, range \[0, 100\]' -- "$KEDGE" plugins --plugin-dir "$FIX" --describe alpha
expect plugins-describe-unknown 1 "no plugin named 'nosuch'" -- "$KEDGE" plugins --plugin-dir "$FIX" --describe nosuch
expect plugins-default-dir 0 'echo +0\.1\.0' -- "$KEDGE" plugins
expect token-needs-source 2 'needs --manifest FILE or --ca-dir DIR' -- "$KEDGE" token create
expect token-no-ca 1 'cannot read /nonexistent/ca.crt' -- "$KEDGE" token create --ca-dir /nonexistent
expect token-bad-ttl 2 "expected a positive number of hours, got 'soon'" -- "$KEDGE" token create --ca-dir /x --ttl-hours soon
expect plugins-bad-flag 2 "unknown argument '--frob'" -- "$KEDGE" plugins --frob

# kedge run: stops cleanly on SIGTERM and SIGINT, in reverse dependency order.
for sig in TERM INT; do
  m=$(manifest run-$sig '[[plugin]]\nname = "gamma"\n[[plugin]]\nname = "beta"\n[[plugin]]\nname = "alpha"\n')
  "$KEDGE" run "$m" >"$work/run-$sig.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q 'plugin gamma 1.2.3 is running' "$work/run-$sig.log" && break; sleep 0.05; done
  kill -$sig $pid
  wait $pid
  rc=$?
  order=$(grep -o 'plugin [a-z]* stopped' "$work/run-$sig.log" | tr '\n' ',')
  events=$(tr '\n' ',' <"$work/data-run-$sig/events.log")
  if [ $rc -eq 0 ] && [ "$order" = "plugin gamma stopped,plugin beta stopped,plugin alpha stopped," ] &&
    [ "$events" = "alpha init,alpha start,beta init,beta start,gamma init,gamma start,gamma stop,beta stop,alpha stop," ]; then
    echo "ok   run-stops-on-SIG$sig"
    pass=$((pass + 1))
  else
    echo "FAIL run-stops-on-SIG$sig: rc=$rc order=$order events=$events"
    sed 's/^/    /' "$work/run-$sig.log"
    fail=$((fail + 1))
  fi
done

m=$(manifest run-fail '[[plugin]]\nname = "alpha"\n[[plugin]]\nname = "faulty"\n[plugin.config]\nfail_init = true\n')
expect run-required-fails 1 "required plugin 'faulty' failed to start: init failed: configured to fail at init" -- "$KEDGE" run "$m"
m=$(manifest run-bad '[[plugin]]\nname = "nosuch"\n')
expect run-invalid-manifest 2 "manifest is invalid, not starting" -- "$KEDGE" run "$m"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
