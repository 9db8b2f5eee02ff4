#!/usr/bin/env bash
# kedge's edge and a stock KubeEdge EdgeCore v1.12.7 side by side: the same
# modules (hub, metamanager with MetaServer, device twin, edged), the same
# private containerd, the same kedge cloud; each joined, its node Ready, then
# idle for SECONDS (default 90), one after the other. Prints VmRSS, PSS,
# anonymous and file-backed memory, threads and CPU for both (the rows of
# bench/footprint.sh), and the ratio of each figure. Needs root and
# ../shared/peers (or KEDGE_PEERS).
# usage: bench/side_by_side.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
secs=${2:-90}
out=$(bash "$here/footprint.sh" "$build" "$secs" edge stock-edgecore)
echo "$out"
echo
echo "$out" | python3 -c '
import sys
rows = [l.split("|")[1:-1] for l in sys.stdin if l.startswith("| ") and l[2:3] != "a"]
rows = [[c.strip() for c in r] for r in rows if len(r) == 7 and r[1].strip()[:1].isdigit()]
if len(rows) != 2:
    sys.exit("side_by_side: expected a row for each agent, got %d" % len(rows))
k, s = rows
names = ["VmRSS", "PSS", "anonymous", "file-backed", "threads"]
print("| figure | kedge edge | stock EdgeCore | stock / kedge |")
print("|---|---|---|---|")
for i, n in enumerate(names, start=1):
    a, b = float(k[i]), float(s[i])
    print(f"| {n} | {k[i]} | {s[i]} | {b / a:.1f}x |" if a else f"| {n} | {k[i]} | {s[i]} | - |")
'
