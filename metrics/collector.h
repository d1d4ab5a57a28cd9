// The seamless registry: one prometheus::Collectable that reads the shared segment at
// scrape time and returns every family of DESIGN.md §8, so that prometheus-cpp's text
// serializer and exposer do the formatting and the HTTP. It holds no values of its own
// (they are all in the segment), which is why a new worker serves the same counters its
// predecessor did.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <string_view>
#include <vector>

#include "metrics/segment.h"
#include "metrics/snapshot.h"

namespace seamless::metrics {

// Turns a snapshot into families, with seamless_build_info{version} added. Pure.
std::vector<prometheus::MetricFamily> to_families(const Snapshot& snapshot,
                                                  std::string_view version);

class SegmentCollector : public prometheus::Collectable {
 public:
  // Borrows the segment, which must outlive the collector (and any exposer holding it).
  SegmentCollector(MetricsSegment& segment, std::string version)
      : segment_(&segment.data()), version_(std::move(version)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  layout::Segment* segment_;
  std::string version_;
};

}  // namespace seamless::metrics
