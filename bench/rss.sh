#!/usr/bin/env bash
# Idle resident memory of `kedge run MANIFEST`: starts the agent, lets it run
# for SECONDS, prints VmRSS and VmHWM (peak) from /proc, stops it with SIGTERM.
# usage: bench/rss.sh [KEDGE] [MANIFEST] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
kedge=${1:-build/bin/kedge}
manifest=${2:-config/quickstart.toml}
secs=${3:-10}
"$kedge" run "$manifest" 2>/dev/null &
pid=$!
sleep "$secs"
rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
hwm=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
anon=$(awk '/^RssAnon/ {print $2}' /proc/$pid/status)
threads=$(awk '/^Threads/ {print $2}' /proc/$pid/status)
kill -TERM $pid
wait $pid
echo "manifest=$manifest after ${secs}s: VmRSS=${rss} kB (anonymous ${anon} kB) VmHWM=${hwm} kB threads=${threads}"
