#!/usr/bin/env bash
# Sets up and runs seamless on config/examples/default.yaml: 127.0.0.1:7000 in front
# of a demo echo backend on 127.0.0.1:7001 that this script starts (and stops).
# Try it from another terminal:  echo hello | nc -q1 127.0.0.1 7000
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [[ $EUID -ne 0 ]]; then
  echo "scripts/demo.sh: needs root (TCP_REPAIR and nftables need CAP_NET_ADMIN); run it with sudo" >&2
  exit 1
fi
scripts/deps.sh
BUILD_DIR=$root/build scripts/build.sh -DSEAMLESS_TESTS=OFF

python3 scripts/demo_backend.py 127.0.0.1 7001 &
backend=$!
trap 'kill "$backend" 2>/dev/null || true' EXIT
echo "demo backend (echo) on 127.0.0.1:7001, pid $backend"
build/proxy/seamless check --config config/examples/default.yaml
build/proxy/seamless run --config config/examples/default.yaml
