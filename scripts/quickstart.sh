#!/usr/bin/env bash
# The quick start: installs what kedge needs (Debian 12), builds it, and runs
# the demo agent (config/quickstart.toml) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
bash scripts/build.sh build
exec build/bin/kedge run config/quickstart.toml
