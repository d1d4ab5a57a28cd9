#!/usr/bin/env bash
# Runs every libFuzzer target in a fuzz build for a bounded time on its seed corpus.
set -euo pipefail
build=${1:?usage: run-fuzz.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-30}
shopt -s nullglob
found=0
for target in "$build"/tests/fuzz/fuzz_*; do
  [[ -x $target && -f $target ]] || continue
  found=1
  name=$(basename "$target")
  corpus=$(mktemp -d)
  seeds=$root/tests/fuzz/corpus/${name#fuzz_}
  dirs=("$corpus")
  [[ -d $seeds ]] && dirs+=("$seeds")
  echo "-- $name for ${seconds}s"
  # New inputs go to the temporary corpus (the first dir), crash inputs to the build dir.
  mkdir -p "$build/fuzz-artifacts"
  "$target" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-artifacts/$name-" "${dirs[@]}" 2>&1 | tail -n 4
  rm -rf "$corpus"
done
((found)) || { echo "run-fuzz.sh: no fuzz targets in $build" >&2; exit 1; }
