#!/usr/bin/env bash
# Installs everything seamless needs to build, test and benchmark on Debian 12.
# Idempotent; skips apt when every package is already present.
#   scripts/deps.sh               build, test, fuzz and benchmark (what CI runs)
#   scripts/deps.sh --build-only  just what `scripts/build.sh -DSEAMLESS_TESTS=OFF` needs
#                                 (the Docker image's build stage)
set -euo pipefail

build_packages=(
  build-essential cmake pkg-config
  libuv1-dev libyaml-cpp-dev libnftnl-dev libmnl-dev prometheus-cpp-dev
  libprotobuf-dev protobuf-compiler libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
)
# libcap2-bin: setcap for the file-capability tests; systemd: systemd-analyze verify of
# the unit in packaging/systemd/.
test_packages=(
  clang libclang-rt-14-dev
  libgtest-dev libgmock-dev
  nftables iproute2 iputils-ping procps curl python3
  redis-server redis-tools
  libcap2-bin systemd
  gnuplot-nox  # the charts of tests/bench/proxy and tests/bench/handoff
)

packages=("${build_packages[@]}")
case "${1:-}" in
  --build-only) ;;
  "") packages+=("${test_packages[@]}") ;;
  *) echo "usage: scripts/deps.sh [--build-only]" >&2; exit 2 ;;
esac

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
