#!/usr/bin/env bash
# Guards the edge's footprint: bench/footprint.sh runs the device gateway
# (config/device-edge.toml, 10 Modbus devices) and the full edge without
# edged and dmi-grpc, connected to a local cloud; each must map none of the
# libraries its plugins do not need (gRPC, protobuf: only dmi-grpc and edged
# use them) and stay under its RSS ceiling: the figure in docs/benchmarks.md
# plus a margin, so that later work cannot quietly regress it.
# usage: footprint_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$2")
out=$(bash "$src/bench/footprint.sh" "$build" 8 gateway-10 edge-no-grpc) || {
  echo "$out"
  echo "bench/footprint.sh failed"
  exit 1
}
echo "$out"
python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1].splitlines()
# name pattern -> (RSS ceiling in MB, libraries it must not map, devices online)
checks = {
    r"device gateway, 10 devices \((\d+) online\)": (18.5, ["libgrpc", "libprotobuf", "libkedge_dmi_api", "libabsl"], 10),
    r"full edge without edged and dmi-grpc": (18.0, ["libgrpc", "libprotobuf", "libkedge_dmi_api", "libabsl", "libkedge_cri"], None),
}
passed = failed = 0
for pattern, (ceiling, forbidden, online) in checks.items():
    row = next((i for i, l in enumerate(out) if l.startswith("| ") and re.search(pattern, l)), None)
    if row is None:
        print(f"FAIL {pattern}: no row in the output"); failed += 1; continue
    cells = [c.strip() for c in out[row].strip("|").split("|")]
    rss = float(cells[1])
    libs = next(l for l in out[row:] if l.startswith("libs: "))[6:].split()
    bad = [l for l in libs if any(l.startswith(f) for f in forbidden)]
    problems = []
    if rss > ceiling: problems.append(f"VmRSS {rss} MB is over the ceiling of {ceiling} MB")
    if bad: problems.append("maps libraries its plugins do not need: " + " ".join(bad))
    if online is not None:
        got = int(re.search(pattern, out[row]).group(1))
        if got < online: problems.append(f"only {got} of {online} devices online")
    if problems:
        print(f"FAIL {cells[0]}: " + "; ".join(problems)); failed += 1
    else:
        print(f"ok   {cells[0]}: VmRSS {rss} MB (ceiling {ceiling} MB), no {', '.join(forbidden)}"); passed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
