#include "tests/bench/handoff/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace seamless::bench {
namespace {

Spread spread(std::vector<int64_t> ns) {
  Spread s;
  if (ns.empty()) return s;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    const size_t rank = size_t(std::ceil(q * double(ns.size())));
    return double(ns[std::min(ns.size() - 1, rank == 0 ? 0 : rank - 1)]) / 1e6;
  };
  s.max = double(ns.back()) / 1e6;
  s.p99 = at(0.99);
  s.median = at(0.5);
  return s;
}

double phase_ms(const RunResult& r, const std::string& phase) {
  auto it = r.phases.find(phase);
  return it == r.phases.end() || it->second.count == 0 ? -1 : it->second.sum * 1000;
}

// Log-derived durations in ms: the span between two timeline marks, -1 if one is absent.
double span(double from, double to) { return from < 0 || to < 0 ? -1 : to - from; }

// The handoff in consecutive spans (ms). `stop` is how long the old worker took to
// stop forwarding for good: upgrade, quiesce asked (after the preflight and the new
// worker's start) -> quiesced; crash, SIGKILL ->
// the keeper logged the death (reaped, channel drained). `checkpoint` runs from there
// to the checkpoint line; `exec` (upgrade only) to the new keeper's start; `restore`
// to the restoring worker's "ready" (its spawn included); `finish` to "handoff done".
struct Timeline {
  double preflight, stop, checkpoint, exec, restore, finish, done;
};

Timeline timeline_of(Event event, const LogTimeline& t) {
  if (event == Event::kCrash) {
    return {-1,
            t.worker_died,
            span(t.worker_died, t.checkpoint_done),
            -1,
            span(t.checkpoint_done, t.worker_ready),
            span(t.worker_ready, t.done),
            t.done};
  }
  return {t.quiesce_asked,
          span(t.quiesce_asked, t.quiesced),
          span(t.quiesced, t.checkpoint_done),
          span(t.checkpoint_done, t.new_keeper),
          span(t.new_keeper, t.worker_ready),
          span(t.worker_ready, t.done),
          t.done};
}

// "12 ms", or "–" for a span that does not apply (or was not logged).
std::string ms_cell(double ms) {
  if (ms < 0) return "–";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f ms", ms);
  return buf;
}

// "12.3 ms", or "–" for a run without probes.
std::string probe_cell(const RunResult& r, double ms) {
  if (r.options.probes == 0) return "–";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f ms", ms);
  return buf;
}

}  // namespace

TcpCounters parse_tcp_counters(const std::string& text) {
  std::map<std::string, long long> values;
  std::istringstream lines(text);
  std::string names, numbers;
  while (std::getline(lines, names) && std::getline(lines, numbers)) {
    std::istringstream n(names), v(numbers);
    std::string group, name, value;
    n >> group;
    v >> value;
    while (n >> name && v >> value) values[group + name] = std::stoll(value);
  }
  return {values["Tcp:RetransSegs"], values["Tcp:OutRsts"], values["Tcp:EstabResets"],
          values["TcpExt:TCPTimeouts"], values["TcpExt:TCPLossProbes"]};
}

Summary side_summary(const std::vector<DirectionStats>& stats, const TrafficOptions& options,
                     bool probes) {
  std::vector<int64_t> gap, latency, baseline;
  Summary s;
  for (size_t i = 0; i < stats.size(); ++i) {
    if (options.is_probe(i) != probes) continue;
    const DirectionStats& d = stats[i];
    gap.push_back(d.max_gap_ns[kHandoff]);
    latency.push_back(d.max_latency_ns[kHandoff]);
    baseline.push_back(d.max_gap_ns[kBaseline]);
    s.bytes += d.bytes;
  }
  s.stall = spread(gap);
  s.latency = spread(latency);
  s.baseline = spread(baseline);
  return s;
}

Summary combined_summary(const std::vector<DirectionStats>& a,
                         const std::vector<DirectionStats>& b, const TrafficOptions& options,
                         bool probes) {
  std::vector<int64_t> gap, latency, baseline;
  Summary s;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (options.is_probe(i) != probes) continue;
    gap.push_back(std::max(a[i].max_gap_ns[kHandoff], b[i].max_gap_ns[kHandoff]));
    latency.push_back(std::max(a[i].max_latency_ns[kHandoff], b[i].max_latency_ns[kHandoff]));
    baseline.push_back(std::max(a[i].max_gap_ns[kBaseline], b[i].max_gap_ns[kBaseline]));
    s.bytes += a[i].bytes + b[i].bytes;
  }
  s.stall = spread(gap);
  s.latency = spread(latency);
  s.baseline = spread(baseline);
  return s;
}

void print_run_details(FILE* out, const RunResult& r) {
  const size_t n = r.options.connections;
  std::fprintf(out, "  %s, %zu connections, a %zu-byte write every %d ms per direction%s\n",
               event_name(r.event), n, r.options.chunk, r.options.interval_ms,
               r.options.nodelay ? ", TCP_NODELAY" : "");
  for (auto [name, s] : {std::pair{"client receiving ", &r.down},
                         std::pair{"backend receiving", &r.up}}) {
    std::fprintf(out,
                 "  %s: stall max %.1f p99 %.1f median %.1f ms | latency max %.1f p99 %.1f ms |"
                 " baseline gap max %.1f p99 %.1f ms | %llu bytes verified\n",
                 name, s->stall.max, s->stall.p99, s->stall.median, s->latency.max, s->latency.p99,
                 s->baseline.max, s->baseline.p99, static_cast<unsigned long long>(s->bytes));
  }
  if (r.options.probes > 0) {
    const Summary& p = r.probes;
    std::fprintf(out,
                 "  %zu probes, a %zu-byte write every %d ms (worse direction): stall max %.1f p99 "
                 "%.1f median %.1f ms | latency max %.1f p99 %.1f ms | baseline gap max %.1f p99 "
                 "%.1f ms\n",
                 r.options.probes, r.options.chunk, r.options.probe_interval_ms, p.stall.max,
                 p.stall.p99, p.stall.median, p.latency.max, p.latency.p99, p.baseline.max,
                 p.baseline.p99);
  }
  const Timeline t = timeline_of(r.event, r.timeline);
  if (r.event == Event::kCrash) {
    std::fprintf(out,
                 "  log timeline after SIGKILL (ms): death logged %.0f, checkpoint %.0f (keeper "
                 "says %.0f), new worker restored %.0f, ready->done %.0f, done at %.0f\n",
                 t.stop, t.checkpoint, r.timeline.checkpoint_ms, t.restore, t.finish, t.done);
    std::fprintf(out, "  %s\n", r.timeline.died_line.c_str());
  } else {
    std::fprintf(out,
                 "  log timeline after SIGUSR2 (ms): preflight+new worker %.0f, quiesce %.0f, checkpoint "
                 "%.0f (keeper says %.0f), exec %.0f, restore %.0f, ready->done %.0f, done at "
                 "%.0f\n",
                 t.preflight, t.stop, t.checkpoint, r.timeline.checkpoint_ms, t.exec, t.restore,
                 t.finish, t.done);
  }
  std::fprintf(out, "  %s\n  %s\n", r.timeline.checkpoint_line.c_str(),
               r.timeline.done_line.c_str());
  std::fprintf(out, "  metrics seamless_handoff_phase_seconds (sum, ms):");
  for (const auto& [phase, v] : r.phases) {
    if (v.count > 0) std::fprintf(out, " %s %.1f (n=%.0f)", phase.c_str(), v.sum * 1000, v.count);
  }
  std::fprintf(out,
               "\n  bench-side TCP during the window: %lld retransmitted segments (%lld tail loss "
               "probes), %lld RTO timeouts, %lld resets sent, %lld established resets (a new "
               "worker's first health probe closes with RST: 1 is expected; stream resets count "
               "as stream errors)\n",
               r.tcp.retrans, r.tcp.loss_probes, r.tcp.timeouts, r.tcp.out_rsts,
               r.tcp.estab_resets);
  std::fprintf(out,
               "  baseline: %lld retransmitted segments, %lld RTO timeouts; its worst gaps ended "
               "%.0f ms into it (median)\n",
               r.tcp_baseline.retrans, r.tcp_baseline.timeouts, r.baseline_gap_end_ms);
  std::fprintf(out, "  window %.0f ms, every connection resumed: %s, stream errors: %zu\n",
               r.window_ms, r.resumed ? "yes" : "NO", r.error_count);
  for (const std::string& e : r.errors) std::fprintf(out, "    %s\n", e.c_str());
}

void print_table(FILE* out, const std::vector<RunResult>& results) {
  std::fprintf(out,
               "\n| event | conns | write every | stall max | stall p99 | latency max |"
               " baseline gap max | stop | checkpoint | exec | restore | done after signal |"
               " errors | probe stall max | probe stall p99 | probe latency max |"
               " probe baseline gap max |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
               "\n");
  for (const RunResult& r : results) {
    const Timeline t = timeline_of(r.event, r.timeline);
    std::fprintf(out,
                 "| %s | %zu | %d ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %s | %s | %s | %s |"
                 " %s | %zu%s | %s | %s | %s | %s |\n",
                 event_name(r.event), r.options.connections, r.options.interval_ms,
                 r.combined.stall.max, r.combined.stall.p99, r.combined.latency.max,
                 r.combined.baseline.max, ms_cell(t.stop).c_str(), ms_cell(t.checkpoint).c_str(),
                 ms_cell(t.exec).c_str(), ms_cell(t.restore).c_str(), ms_cell(t.done).c_str(),
                 r.error_count, r.resumed ? "" : " (not all resumed)",
                 probe_cell(r, r.probes.stall.max).c_str(),
                 probe_cell(r, r.probes.stall.p99).c_str(),
                 probe_cell(r, r.probes.latency.max).c_str(),
                 probe_cell(r, r.probes.baseline.max).c_str());
  }
  std::fprintf(out,
               "stall = largest gap between deliveries to a receiving application, per connection "
               "(worse direction), over the bulk connections; probe = the same over the probe "
               "connections, which write every few ms and so resolve the hold to that; goals: "
               "upgrade <= 50 ms at 100 and <= 200 ms at 5000 (issue 5), crash <= 150 ms at 1000 "
               "(issue 6).\n"
               "stop = upgrade: quiesce asked -> quiesced; crash: SIGKILL -> the keeper logged "
               "the death. Signal = SIGUSR2 to the keeper (upgrade), SIGKILL to the worker "
               "(crash).\n");
}

void write_tsv(const std::string& path, const std::vector<RunResult>& results) {
  std::ofstream out(path);
  out << "event\tconnections\tinterval_ms\tstall_max\tstall_p99\tdown_max\tdown_p99\tup_max\tup_p99"
         "\tlatency_max\tlatency_p99\tbaseline_max\tbaseline_p99\tpreflight\tstop\tcheckpoint"
         "\texec\trestore\tfinish\tdone\tm_dump\tm_exec\tm_restore\tm_total\terrors"
         "\tprobes\tprobe_interval_ms\tprobe_stall_max\tprobe_stall_p99\tprobe_latency_max"
         "\tprobe_baseline_max\n";
  for (const RunResult& r : results) {
    const Timeline t = timeline_of(r.event, r.timeline);
    out << event_name(r.event) << '\t' << r.options.connections << '\t' << r.options.interval_ms
        << '\t' << r.combined.stall.max << '\t' << r.combined.stall.p99 << '\t' << r.down.stall.max
        << '\t' << r.down.stall.p99 << '\t' << r.up.stall.max << '\t' << r.up.stall.p99 << '\t'
        << r.combined.latency.max << '\t' << r.combined.latency.p99 << '\t'
        << r.combined.baseline.max << '\t' << r.combined.baseline.p99 << '\t' << t.preflight << '\t'
        << t.stop << '\t' << t.checkpoint << '\t' << t.exec << '\t' << t.restore << '\t' << t.finish
        << '\t' << t.done << '\t' << phase_ms(r, "dump") << '\t' << phase_ms(r, "exec") << '\t'
        << phase_ms(r, "restore") << '\t' << phase_ms(r, "total") << '\t' << r.error_count << '\t'
        << r.options.probes << '\t' << r.options.probe_interval_ms << '\t' << r.probes.stall.max
        << '\t' << r.probes.stall.p99 << '\t' << r.probes.latency.max << '\t'
        << r.probes.baseline.max << '\n';
  }
}

}  // namespace seamless::bench
