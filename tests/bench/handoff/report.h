// What one handoff_bench run measured, and how it is printed (table, TSV for the plot).
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "tests/bench/handoff/harness.h"
#include "tests/bench/handoff/traffic.h"

namespace seamless::bench {

// Max and p99 over connections, in ms.
struct Spread {
  double max = 0;
  double p99 = 0;
  double median = 0;
};

struct Summary {
  Spread stall;     // largest gap between deliveries, handoff window
  Spread latency;   // largest delivery latency, handoff window
  Spread baseline;  // largest gap between deliveries, baseline window (resolution)
  uint64_t bytes = 0;
};

// Counters of the bench's namespace, /proc/net/snmp and netstat.
struct TcpCounters {
  long long retrans = 0, out_rsts = 0, estab_resets = 0, timeouts = 0;
  long long loss_probes = 0;  // tail loss probes (TcpExt:TCPLossProbes), part of retrans
  TcpCounters minus(const TcpCounters& o) const {
    return {retrans - o.retrans, out_rsts - o.out_rsts, estab_resets - o.estab_resets,
            timeouts - o.timeouts, loss_probes - o.loss_probes};
  }
};
TcpCounters parse_tcp_counters(const std::string& snmp_and_netstat);

struct RunResult {
  Event event = Event::kUpgrade;
  TrafficOptions options;
  Summary down;      // client receiving
  Summary up;        // backend receiving
  Summary combined;  // per connection, the worse of its two directions
  Summary probes;    // the same over the probe connections (the three above are the bulk)
  std::map<std::string, PhaseSeconds> phases;
  LogTimeline timeline;
  TcpCounters tcp;           // during the handoff window
  TcpCounters tcp_baseline;  // during the baseline window
  double baseline_gap_end_ms = -1;  // median end of the worst baseline gap, after its start
  double window_ms = 0;
  bool resumed = false;
  size_t error_count = 0;
  std::vector<std::string> errors;
};

// Over the bulk connections (`probes` false) or over the probes only.
Summary side_summary(const std::vector<DirectionStats>& stats, const TrafficOptions& options,
                     bool probes);
Summary combined_summary(const std::vector<DirectionStats>& a,
                         const std::vector<DirectionStats>& b, const TrafficOptions& options,
                         bool probes);

void print_run_details(FILE* out, const RunResult& r);
void print_table(FILE* out, const std::vector<RunResult>& results);
void write_tsv(const std::string& path, const std::vector<RunResult>& results);

}  // namespace seamless::bench
