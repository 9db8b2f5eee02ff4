#!/usr/bin/env bash
# edged's benchmarks against a private containerd (scripts/containerd.sh):
# pod start latency against the raw CRI calls in the same run, and 50 pods on
# one node (time to Running, CPU and memory). Needs root.
# usage: bench/edged_load.sh [BUILD] [ROUNDS] [PODS] [STEADY_S]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
dir=$(mktemp -d)
trap 'scripts/containerd.sh stop "$dir/containerd" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
sock=$(scripts/containerd.sh start "$dir/containerd")
"$build/bin/kedge_edged_bench" "$sock" "${2:-10}" "${3:-50}" "${4:-30}"
