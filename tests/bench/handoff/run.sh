#!/usr/bin/env bash
# Runs handoff_bench (the stall of busy connections across a SIGUSR2 upgrade) for each
# connection count and plots the results next to the table:
#   $OUT/table.md      the table (also printed)
#   $OUT/results.tsv   one row per connection count
#   $OUT/handoff.png   stall and handoff phases per connection count
#   $OUT/seamless-N.log, metrics-N.txt   what seamless logged and exposed in each run
#
# usage: sudo tests/bench/handoff/run.sh [N ...]        (default: 100 1000 5000)
#   BUILD_DIR (default ./build) must hold proxy/seamless and tests/bench/handoff/handoff_bench
#   (cmake --build build --target seamless handoff_bench); OUT defaults to
#   $BUILD_DIR/bench/handoff. Extra handoff_bench flags go in BENCH_FLAGS, e.g.
#   BENCH_FLAGS="--interval-ms 2 --chunk 128". The bench runs in a scheduler autogroup of
#   its own at BENCH_NICE (default -10; "" = leave it): on a machine shared with other
#   sessions' work the figures otherwise measure the neighbours.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
build=${BUILD_DIR:-$root/build}
out=${OUT:-$build/bench/handoff}
counts=("$@")
((${#counts[@]})) || counts=(100 1000 5000)
list=$(IFS=,; echo "${counts[*]}")
bench=$build/tests/bench/handoff/handoff_bench
[[ -x $bench && -x $build/proxy/seamless ]] || {
  echo "build first: cmake --build $build --target seamless handoff_bench" >&2
  exit 2
}
mkdir -p "$out"

# handoff_bench removes what it made, even when a run fails; this covers the bench
# itself dying: its namespaces (named after its PID) and the seamless it started.
bench_pid=
cleanup() {
  [[ -n $bench_pid ]] || return 0
  kill "$bench_pid" 2>/dev/null && wait "$bench_pid" 2>/dev/null || true
  for f in "$out"/seamless-*.pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    if grep -q sl-hbench- "/proc/$pid/cmdline" 2>/dev/null; then kill -KILL "$pid" || true; fi
    rm -f "$f"
  done
  ip netns list | awk '{print $1}' | grep "^sl-$bench_pid-" | xargs -r -n1 ip netns del || true
}
trap cleanup EXIT

rc=0
if [[ -z ${PLOT_ONLY:-} ]]; then  # PLOT_ONLY=1: plot $OUT/results.tsv again, run nothing
  rm -f "$out"/results.tsv "$out"/handoff.png
  nice=${BENCH_NICE--10}
  # shellcheck disable=SC2086
  "$bench" --seamless "$build/proxy/seamless" --connections "$list" --out "$out" \
    ${nice:+--autogroup-nice "$nice"} ${BENCH_FLAGS:-} >"$out/table.md" &
  bench_pid=$!
  wait "$bench_pid" || rc=$?
  bench_pid=
fi
cat "$out/table.md"

if [[ -s $out/results.tsv ]] && command -v gnuplot >/dev/null; then
  gnuplot <<EOF
set terminal pngcairo size 1400,640 font "sans,11"
set output "$out/handoff.png"
set datafile separator "\t"
set key autotitle columnhead
set multiplot layout 1,2 title "seamless: SIGUSR2 upgrade under load (handoff\\\_bench)"
set style data histograms
set style fill solid 0.85 border -1
set grid ytics
set xlabel "busy connections"

set key outside below maxrows 2 samplen 2
set title "Stall per connection (largest gap between deliveries; log scale)"
set ylabel "ms"
set logscale y
set yrange [1:*]
set style histogram clustered gap 1
goal(n) = n == 100 ? 50 : (n == 5000 ? 200 : NaN)
plot "$out/results.tsv" using 3:xtic(1) title "stall max" lc rgb "#c0392b", \
     "" using 4 title "stall p99" lc rgb "#e67e22", \
     "" using 9 title "latency max" lc rgb "#2980b9", \
     "" using 11 title "baseline gap max (resolution)" lc rgb "#95a5a6", \
     "" using (\$0):(goal(\$1)) with points pt 9 ps 2.5 lc rgb "black" title "goal (issue 5)"

set title "Where the handoff goes (log timeline after SIGUSR2)"
set ylabel "ms"
unset logscale y
set yrange [0:*]
set style histogram rowstacked
set boxwidth 0.6
plot "$out/results.tsv" using 14:xtic(1) title "quiesce" lc rgb "#8e44ad", \
     "" using 15 title "checkpoint (lock+dump+write)" lc rgb "#c0392b", \
     "" using 16 title "exec + new keeper" lc rgb "#f1c40f", \
     "" using 17 title "worker restore" lc rgb "#27ae60", \
     "" using 18 title "ready -> done" lc rgb "#7f8c8d"
unset multiplot
EOF
  echo "chart: $out/handoff.png"
fi
exit "$rc"
