// A small metrics registry exported in Prometheus text format (version 0.0.4).
// Counters and gauges are lock-free to update; registration takes a lock and
// returns a reference that stays valid for the registry's lifetime.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kedge/export.h"

namespace kedge {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

class KEDGE_EXPORT MetricsRegistry {
 public:
  // Returns the counter for (name, labels), creating it on first use. The name
  // must match [a-zA-Z_:][a-zA-Z0-9_:]* and should end in _total; a name
  // already registered as another type, or an invalid name, throws
  // std::invalid_argument (a programming error, found by the first test).
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});

  // The whole registry in Prometheus text exposition format, families sorted
  // by name, series in registration order.
  std::string prometheus_text() const;

 private:
  enum class Type { kCounter, kGauge };
  struct Series {
    std::string labels;  // rendered: {a="b",c="d"} or empty
    Counter* counter = nullptr;
    Gauge* gauge = nullptr;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<Series> series;
  };
  Family& family(std::string_view name, std::string_view help, Type type);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
  std::deque<Counter> counters_;
  std::deque<Gauge> gauges_;
};

}  // namespace kedge
