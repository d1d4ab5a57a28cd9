#!/usr/bin/env bash
# Installs everything seamless needs to build, test and benchmark on Debian 12.
# Idempotent; skips apt when every package is already present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev libyaml-cpp-dev libnftnl-dev libmnl-dev prometheus-cpp-dev
  libprotobuf-dev protobuf-compiler libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev
  nftables iproute2 iputils-ping procps curl python3
  redis-server redis-tools
  gnuplot-nox  # the bar chart of tests/bench/proxy/compare_haproxy.sh
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
