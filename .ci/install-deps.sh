#!/usr/bin/env bash
# Installs every build and test dependency of kedge from Debian 12 packages. Idempotent.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-filesystem1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libboost-program-options1.81-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev
  libsqlite3-dev libssl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang-format python3
  etcd-server wrk libyaml-cpp-dev curl
  containerd runc containernetworking-plugins busybox-static iproute2 procps
  libmodbus-dev libmosquitto-dev mosquitto mosquitto-clients
  xz-utils libsqlite3-0 sqlite3         # the stock EdgeCore of the interop test, and its tables
  python3-grpcio python3-protobuf       # the Python DMI mapper built from KubeEdge's proto
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
