#!/usr/bin/env bash
# Installs what kedge needs (Debian 12), builds it, and runs the whole test
# suite with ctest: unit and integration tests, first in the normal build,
# then again in an AddressSanitizer + UndefinedBehaviorSanitizer build.
# usage: scripts/test.sh [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=1
[ "${1:-}" = "--no-sanitize" ] && sanitize=0
bash .ci/install-deps.sh

bash scripts/build.sh build
ctest --test-dir build --output-on-failure -j2

if [ $sanitize -eq 1 ]; then
  bash scripts/build.sh build-asan -DKEDGE_SANITIZE=ON -DKEDGE_BUILD_BENCHMARKS=OFF
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j2
fi
