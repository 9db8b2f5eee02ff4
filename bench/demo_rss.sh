#!/usr/bin/env bash
# Resident memory of the quick start's cloud and edge processes
# (scripts/demo.sh: cloudhub + apiserver + controllers; edgehub + metamanager
# + echo + ticker), SECONDS after the demo's objects were applied.
# usage: bench/demo_rss.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
secs=${2:-10}
bash scripts/demo.sh "$build" --fresh >/tmp/kedge-demo-rss.log 2>&1 &
demo=$!
trap 'kill -TERM $demo 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q "Ctrl-C stops" /tmp/kedge-demo-rss.log && break; sleep 0.1; done
sleep "$secs"
for which in cloud edge; do
  pid=$(pgrep -f "kedge run config/quickstart-$which.toml" | head -1)
  printf '%-6s VmRSS %6s kB   anonymous %6s kB\n' "$which" \
    "$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)" "$(awk '/^RssAnon/ {print $2}' /proc/$pid/status)"
done
