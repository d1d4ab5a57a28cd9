#!/usr/bin/env bash
# Runs handoff_bench (the stall of busy connections across a SIGUSR2 upgrade and across
# a worker's SIGKILL) for each connection count and event, and plots the results next
# to the table:
#   $OUT/table.md      the table (also printed)
#   $OUT/results.tsv   one row per event and connection count
#   $OUT/handoff.png   stall and handoff phases per event and connection count
#   $OUT/seamless-EVENT-N.log, metrics-EVENT-N.txt   what seamless logged and exposed
#
# usage: sudo [EVENTS="upgrade crash"] tests/bench/handoff/run.sh [N ...]
#   N defaults to 100 1000 5000; EVENTS (default "upgrade crash") picks SIGUSR2 to the
#   keeper (upgrade), SIGKILL to the worker (crash), or both.
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
read -r -a events <<<"${EVENTS:-upgrade crash}"
event_list=$(IFS=,; echo "${events[*]}")
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
  "$bench" --seamless "$build/proxy/seamless" --connections "$list" --event "$event_list" \
    --out "$out" \
    ${nice:+--autogroup-nice "$nice"} ${BENCH_FLAGS:-} >"$out/table.md" &
  bench_pid=$!
  wait "$bench_pid" || rc=$?
  bench_pid=
fi
cat "$out/table.md"

if [[ -s $out/results.tsv ]] && command -v gnuplot >/dev/null; then
  # The probes' bar only when a row has probes (column 26): gnuplot fails on a histogram
  # column without a valid point, and results.tsv of older benches has no such column.
  probe_bar=
  if awk -F'\t' 'NR > 1 && $26 > 0 { found = 1 } END { exit !found }' "$out/results.tsv"; then
    probe_bar=', "" using 28 title "probe stall max (fine resolution)" lc rgb "#16a085"'
  fi
  gnuplot <<EOF
set terminal pngcairo size 1500,680 font "sans,11"
set output "$out/handoff.png"
set datafile separator "\t"
set key autotitle columnhead
set multiplot layout 1,2 title "seamless under load: SIGUSR2 upgrade and worker SIGKILL (handoff\\\_bench)"
set style data histograms
set style fill solid 0.85 border -1
set grid ytics
set xlabel "\nevent, busy connections"  # the tic labels take two lines
# results.tsv: 1 event, 2 connections, 4/5 stall max/p99, 10 latency max,
# 12 baseline gap max, 15 stop, 16 checkpoint, 17 exec, 18 restore, 19 finish (-1 = n/a),
# 26 probes, 28 probe stall max
label(e, n) = e . "\n" . n
pos(x) = x < 0 ? 0 : x
# issue 5: upgrade <= 50 ms at 100, <= 200 ms at 5000; issue 6: crash <= 150 ms at 1000
goal(e, n) = e eq "crash" ? (n == 1000 ? 150 : NaN) : (n == 100 ? 50 : (n == 5000 ? 200 : NaN))

set key outside below maxrows 2 samplen 2
set title "Stall per connection (largest gap between deliveries; log scale)"
set ylabel "ms"
set logscale y
set yrange [1:*]
set style histogram clustered gap 1
plot "$out/results.tsv" using 4:xtic(label(strcol(1), strcol(2))) title "stall max" lc rgb "#c0392b", \
     "" using 5 title "stall p99" lc rgb "#e67e22", \
     "" using 10 title "latency max" lc rgb "#2980b9", \
     "" using 12 title "baseline gap max (resolution)" lc rgb "#95a5a6", \
     "" using (\$0):(goal(strcol(1), \$2)) with points pt 9 ps 2.5 lc rgb "black" title "goal (issues 5, 6)"${probe_bar}

set title "Where the handoff goes (log timeline; upgrade: from preflight passed)"
set ylabel "ms"
unset logscale y
set yrange [0:*]
set style histogram rowstacked
set boxwidth 0.6
plot "$out/results.tsv" using (pos(\$15)):xtic(label(strcol(1), strcol(2))) title "stop (quiesce | death seen)" lc rgb "#8e44ad", \
     "" using (pos(\$16)) title "checkpoint (lock+dump+write)" lc rgb "#c0392b", \
     "" using (pos(\$17)) title "exec + new keeper (upgrade)" lc rgb "#f1c40f", \
     "" using (pos(\$18)) title "worker start + restore" lc rgb "#27ae60", \
     "" using (pos(\$19)) title "ready -> done" lc rgb "#7f8c8d"
unset multiplot
EOF
  echo "chart: $out/handoff.png"
fi
exit "$rc"
