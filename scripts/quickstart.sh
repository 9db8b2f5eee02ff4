#!/usr/bin/env bash
# The quick start: installs what kedge needs (Debian 12), builds it, and runs
# the demo (scripts/demo.sh): a local cloud and edge node, `kedge apply` of
# examples/quickstart/ and `kedge get`, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
bash scripts/build.sh build
exec bash scripts/demo.sh build "$@"
