#!/usr/bin/env bash
# Compares seamless with HAProxy (one thread, tcp mode, the same services) in one run,
# on the same two network namespaces, and prints a table of ratios. Not part of CI.
#
#   sudo tests/bench/proxy/compare_haproxy.sh [path/to/seamless]   (default build/proxy/seamless)
#   DURATION=10 ROUNDS=3 IDLE_CONNECTIONS=5000 tests/bench/proxy/compare_haproxy.sh ...
#
# Topology (RFC 2544 addresses only):  peer 198.18.0.1 (load generators, backends)
#   <-veth->  host 198.18.0.2 (the proxy under test). Each workload has its own service:
#   port 70x0 is seamless, 70x1 HAProxy; both forward to the same backend.
# Workloads: iperf3 with 1 and 8 streams (Gbit/s), redis-benchmark GET with 50 clients
# (requests/s), new connections per second (redis-benchmark PING with -k 0: one TCP
# connection per request), each proxy's CPU time per GET request (µs), and the proxy's
# RSS growth with IDLE_CONNECTIONS idle connections (bytes per connection). Each figure
# is the median of ROUNDS interleaved runs.
# Besides the table on stdout it draws the ratios as a bar chart, a PNG written to CHART
# (default ./compare_haproxy.png; CHART= for none), with gnuplot (Debian: gnuplot-nox).
set -euo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
seamless=${1:-$root/build/proxy/seamless}
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
idle=${IDLE_CONNECTIONS:-5000}
chart=${CHART-$PWD/compare_haproxy.png}
[[ -z $chart || $chart == /* ]] || chart=$PWD/$chart
[[ -x $seamless ]] || { echo "no seamless binary at $seamless (build first)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces)" >&2; exit 2; }

need=()
tools=(haproxy iperf3 redis-server redis-benchmark python3)
[[ -z $chart ]] || tools+=(gnuplot)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
  pkgs=()
  for tool in "${need[@]}"; do
    case $tool in
      redis-server) pkgs+=(redis-server) ;;
      redis-benchmark) pkgs+=(redis-tools) ;;
      gnuplot) pkgs+=(gnuplot-nox) ;;
      *) pkgs+=("$tool") ;;
    esac
  done
  echo "installing: ${pkgs[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
fi

tag="slb-$$"
peer="$tag-peer"
host="$tag-host"
work=$(mktemp -d /tmp/seamless-bench-XXXXXX)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "$peer" 2>/dev/null || true
  ip netns del "$host" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

in_peer() { ip netns exec "$peer" "$@"; }
in_host() { ip netns exec "$host" "$@"; }
# Starts a command in a namespace in the background and records its PID, which is the
# command's own (ip netns exec execs it), so cleanup can kill it.
spawn() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@" &
  pids+=($!)
}

setup_hosts() {
  ip netns add "$peer"
  ip netns add "$host"
  ip link add "${tag}p" netns "$peer" type veth peer name "${tag}h" netns "$host"
  in_peer ip addr add 198.18.0.1/24 dev "${tag}p"
  in_host ip addr add 198.18.0.2/24 dev "${tag}h"
  for ns in "$peer" "$host"; do
    ip netns exec "$ns" ip link set lo up
  done
  in_peer ip link set "${tag}p" up
  in_host ip link set "${tag}h" up
  # One TCP connection per request leaves a TIME_WAIT socket each, on the client and
  # on the proxy's backend side: allow reuse, or the ports run out mid-run.
  for ns in "$peer" "$host"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
  done
}

# Waits until something listens on host:port inside a namespace.
wait_listen() {
  local ns=$1 addr=$2 port=$3
  for _ in $(seq 1 200); do
    ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $addr:$port in $ns" >&2
  return 1
}

start_backends() {
  spawn "$peer" iperf3 -s -B 198.18.0.1 -p 5201 >/dev/null 2>&1
  spawn "$peer" redis-server --bind 198.18.0.1 --port 6379 --save "" --appendonly no --protected-mode no \
    --dir "$work" --maxclients 20000 >/dev/null 2>&1
  # Accepts and holds connections (the idle-connection workload).
  spawn "$peer" bash -c "ulimit -n \$(ulimit -Hn); exec python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((\"198.18.0.1\", 9000)); s.listen(65535)
held = []
while True:
    held.append(s.accept()[0])
'"
  wait_listen "$peer" 198.18.0.1 5201
  wait_listen "$peer" 198.18.0.1 6379
  wait_listen "$peer" 198.18.0.1 9000
}

# service name, listen port, backend
services=(
  "iperf 7000 198.18.0.1:5201"
  "redis 7010 198.18.0.1:6379"
  "conn 7020 198.18.0.1:6379"
  "idle 7030 198.18.0.1:9000"
)

start_proxies() {
  {
    echo "services:"
    for s in "${services[@]}"; do
      read -r name port backend <<<"$s"
      printf '  - name: %s\n    listen: "198.18.0.2:%s"\n    max_connections: 100000\n' "$name" "$port"
      printf '    backends:\n      - address: "%s"\n' "$backend"
    done
    printf 'metrics:\n  listen: "off"\nlog:\n  level: warn\n'
  } >"$work/seamless.yaml"
  {
    printf 'global\n  nbthread 1\n  maxconn 9000\n'
    printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n'
    for s in "${services[@]}"; do
      read -r name port backend <<<"$s"
      printf 'listen %s\n  bind 198.18.0.2:%s\n  server s1 %s\n' "$name" $((port + 1)) "$backend"
    done
  } >"$work/haproxy.cfg"
  spawn "$host" bash -c "ulimit -n \$(ulimit -Hn); exec $seamless run --config $work/seamless.yaml" \
    2>"$work/seamless.log"
  seamless_pid=${pids[-1]}
  spawn "$host" bash -c "ulimit -n \$(ulimit -Hn); exec haproxy -db -f $work/haproxy.cfg" \
    >"$work/haproxy.log" 2>&1
  haproxy_pid=${pids[-1]}
  wait_listen "$host" 198.18.0.2 7000 || { cat "$work/seamless.log" >&2; exit 1; }
  wait_listen "$host" 198.18.0.2 7001 || { cat "$work/haproxy.log" >&2; exit 1; }
}

# Prints the median of its arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One iperf3 server serves both proxies' runs, one test at a time; a client that arrives
# while it is still closing the previous test is turned away ("control socket has closed
# unexpectedly"). Such a run is tried again, up to three times.
iperf_gbps() {  # port streams
  local attempt json
  for attempt in 1 2 3; do
    json=$(in_peer iperf3 -c 198.18.0.2 -p "$1" -P "$2" -t "$duration" -J || true)
    if python3 -c '
import json, sys
r = json.loads(sys.argv[1])
if "error" in r: sys.exit("iperf3 to port '"$1"': " + r["error"])
print("%.2f" % (r["end"]["sum_received"]["bits_per_second"] / 1e9))' "$json"; then
      return 0
    fi
    sleep 1
  done
  return 1
}

redis_rps() {  # port extra-args...
  local port=$1
  shift
  in_peer redis-benchmark -h 198.18.0.2 -p "$port" -q "$@" |
    tr '\r' '\n' | awk -F'[: ]+' '/requests per second/ {print $2; exit}'
}

# A proxy is its process and its children: seamless's keeper (which accepts and holds a
# duplicate of every socket) and its worker (the data path); HAProxy has no children.
# sum_over_tree PID FILE AWK: the sum of what AWK prints from /proc/P/FILE over the tree
# (a child that exits meanwhile counts 0).
sum_over_tree() {
  local pid value total=0
  for pid in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    value=$(awk "$3" "/proc/$pid/$2" 2>/dev/null)
    total=$((total + ${value:-0}))
  done
  echo "$total"
}
rss_kib() { sum_over_tree "$1" status '/^VmRSS/ {print $2}'; }

# RSS growth per idle connection (bytes): opens $idle connections, measures, closes.
idle_bytes_per_conn() {  # port pid
  local before after
  before=$(rss_kib "$2")
  ip netns exec "$peer" bash -c "ulimit -n \$(ulimit -Hn); exec python3 -c '
import socket, sys, time
conns = [socket.create_connection((\"198.18.0.2\", $1)) for _ in range($idle)]
print(\"open\", flush=True)
sys.stdin.readline()
'" <"$work/idle.fifo" >"$work/idle.out" &
  local client=$!
  exec 7>"$work/idle.fifo"
  for _ in $(seq 1 600); do grep -q open "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1  # let the proxy finish its backend connects
  after=$(rss_kib "$2")
  echo >&7
  exec 7>&-
  wait "$client" || true
  echo $(((after - before) * 1024 / idle))
}

declare -A results
measure() {  # key command-with-PORT-placeholder (seamless port, haproxy port)
  local key=$1 sport=$2 hport=$3
  shift 3
  local s=() h=()
  for _ in $(seq 1 "$rounds"); do
    s+=("$("$@" "$sport")")
    h+=("$("$@" "$hport")")
  done
  results[$key.s]=$(median "${s[@]}")
  results[$key.h]=$(median "${h[@]}")
}

iperf1() { iperf_gbps "$1" 1; }
iperf8() { iperf_gbps "$1" 8; }
redis_get() { redis_rps "$1" -t get -c 50 -n "$get_requests"; }
get_requests=100000

# The proxy's own CPU time (user + system, from /proc) per GET request, in µs. On a
# shared or small machine the request rate mostly measures who got the cores; this is
# what each proxy spent per request, whatever the scheduler did.
cpu_ticks() { sum_over_tree "$1" stat '{print $14 + $15}'; }
get_with_cpu() {  # port pid: prints "requests/s µs-per-request"
  local before after rps
  before=$(cpu_ticks "$2")
  rps=$(redis_get "$1")
  after=$(cpu_ticks "$2")
  echo "$rps $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$get_requests" \
    'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
}
measure_redis() {
  local s=() h=() sc=() hc=() out
  for _ in $(seq 1 "$rounds"); do
    out=$(get_with_cpu 7010 "$seamless_pid")
    s+=("${out% *}") sc+=("${out#* }")
    out=$(get_with_cpu 7011 "$haproxy_pid")
    h+=("${out% *}") hc+=("${out#* }")
  done
  results[redis.s]=$(median "${s[@]}") results[redis.h]=$(median "${h[@]}")
  results[cpu.s]=$(median "${sc[@]}") results[cpu.h]=$(median "${hc[@]}")
}
new_conns() { redis_rps "$1" -t ping_inline -c 50 -n 10000 -k 0; }

setup_hosts
start_backends
start_proxies
mkfifo "$work/idle.fifo"

echo "seamless: $seamless (pid $seamless_pid), haproxy: $(haproxy -v | head -1) (pid $haproxy_pid)" >&2
echo "duration ${duration}s, rounds $rounds, idle connections $idle" >&2
measure iperf1 7000 7001 iperf1
measure iperf8 7000 7001 iperf8
measure_redis
measure conn 7020 7021 new_conns
results[idle.s]=$(idle_bytes_per_conn 7030 "$seamless_pid")
results[idle.h]=$(idle_bytes_per_conn 7031 "$haproxy_pid")

# One bar per workload: the ratio seamless / haproxy, with the two raw figures under its
# name. A dashed line marks parity. CPU and RSS are drawn in another colour: lower is better.
write_chart() {
  local data=$work/chart.dat xtics="" i=0 line key label unit ratio s h colour
  : >"$data"
  for line in "${rows[@]}"; do
    IFS='|' read -r key label unit <<<"$line"
    s=${results[$key.s]} h=${results[$key.h]}
    ratio=$(awk -v s="$s" -v h="$h" 'BEGIN { if (h > 0) printf "%.4f", s / h; else print "NaN" }')
    colour=$([[ $key == idle || $key == cpu ]] && echo $((0xd9822b)) || echo $((0x3b75c4)))
    echo "$i $ratio $colour" >>"$data"
    xtics+="${xtics:+, }\"$label\\n$s vs $h $unit\" $i"
    i=$((i + 1))
  done
  # Room above the tallest bar for its label, and always the parity line in view.
  local ymax
  ymax=$(awk 'BEGIN { m = 1 } $2 == $2 + 0 && $2 > m { m = $2 } END { printf "%.2f", m * 1.15 }' "$data")
  gnuplot <<GNUPLOT
set terminal pngcairo size 1100,600 font "DejaVu Sans,11"
set output "$chart"
set title "seamless / HAProxy, 1 thread each, median of $rounds runs of ${duration}s\\nabove 1: seamless ahead (blue); for CPU and RSS (orange) lower is better"
set ylabel "ratio seamless / haproxy"
set xtics ($xtics) scale 0 font ",10"
set xrange [-0.6:$((i - 1)).6]
set yrange [0:$ymax]
set grid ytics
set key off
set style fill solid 0.85 border rgb "#222222"
set boxwidth 0.6
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 linewidth 2 linecolor rgb "#333333" back
set bmargin 5
set style textbox opaque noborder
plot "$data" using 1:2:3 with boxes linecolor rgb variable, \\
     "$data" using 1:2:(sprintf("%.2f×", \$2)) with labels boxed offset 0,0.8 font ",12"
GNUPLOT
}

# key|label|unit, in table order
rows=(
  "iperf1|iperf3 1 stream|Gbit/s"
  "iperf8|iperf3 8 streams|Gbit/s"
  "redis|redis GET -c 50|req/s"
  "cpu|proxy CPU per GET request|µs"
  "conn|new connections|conn/s"
  "idle|RSS per idle connection|bytes"
)

printf '\n%-36s %14s %14s %10s\n' "workload" "seamless" "haproxy" "ratio"
row() {  # key label (ratio = seamless / haproxy; for memory, lower is better)
  local s=${results[$1.s]} h=${results[$1.h]}
  local ratio
  ratio=$(awk -v s="$s" -v h="$h" 'BEGIN { if (h > 0) printf "%.2f", s / h; else print "-" }')
  printf '%-36s %14s %14s %10s\n' "$2" "$s" "$h" "$ratio"
}
for line in "${rows[@]}"; do
  IFS='|' read -r key label unit <<<"$line"
  row "$key" "$label ($unit)"
done
echo "(ratio = seamless / haproxy; higher is better except for CPU and RSS)"
if [[ -n $chart ]]; then
  write_chart
  echo "chart: $chart"
fi
