// virtual: simulated sensors and actuators, for the quick start and tests.
//
// Device: spec.protocol.protocolName "virtual"; configData (all optional):
//   unreachable: true    connect fails (to see an unhealthy device)
// Property visitors (visitors.configData):
//   kind: sine | random | counter | constant | actuator   (default sine)
//   min, max: the range (default 0..100)
//   period_s: a sine's period (default 60)
//   value: the starting value of a constant or an actuator (default min)
// Sensors (sine, random, counter) are read-only; a constant or an actuator
// takes written (desired) values and reads them back.
#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include "kedge/mapper/mapper.h"

namespace {

using kedge::Code;
using kedge::Status;
using kedge::mapper::Device;
using kedge::mapper::Fields;
using kedge::mapper::Property;

struct Signal {
  std::string kind;
  double min = 0, max = 100, period_s = 60, value = 0, counter = 0;
  std::string text;  // a written string value
};

class VirtualDriver final : public kedge::mapper::Driver {
 public:
  VirtualDriver(std::map<std::string, Signal> s, bool unreachable, uint64_t seed)
      : signals_(std::move(s)), unreachable_(unreachable), rng_(seed) {}

  Status connect() override {
    if (unreachable_) return {Code::kUnavailable, "the virtual device is set unreachable"};
    return {};
  }
  Status read(const Property& p, std::string& value) override {
    auto& s = signals_.at(p.name);
    double v = s.value;
    if (s.kind == "sine") {
      double t = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                     .count();
      v = s.min + (s.max - s.min) * (0.5 + 0.5 * std::sin(2 * M_PI * t / s.period_s));
    } else if (s.kind == "random") {
      v = std::uniform_real_distribution<double>(s.min, s.max)(rng_);
    } else if (s.kind == "counter") {
      v = s.min + s.counter;
      s.counter = std::fmod(s.counter + 1, s.max - s.min + 1);
    }
    if (s.kind == "sine" || s.kind == "random") v = std::round(v * 100) / 100;  // 0.01 resolution
    if (p.type == "string" || p.type == "bytes")
      value = s.text.empty() ? kedge::mapper::format_number(v, "double") : s.text;
    else
      value = kedge::mapper::format_number(v, p.type);
    return {};
  }
  Status write(const Property& p, const std::string& value) override {
    auto& s = signals_.at(p.name);
    if (s.kind != "actuator" && s.kind != "constant")
      return {Code::kFailedPrecondition, "a " + s.kind + " sensor cannot be written"};
    if (p.type == "string" || p.type == "bytes") {
      s.text = value;
      return {};
    }
    double v = 0;
    if (Status st = kedge::mapper::parse_number(value, p.type, v); !st) return st;
    s.value = v;
    return {};
  }

 private:
  std::map<std::string, Signal> signals_;
  bool unreachable_;
  std::mt19937_64 rng_;
};

Status make_driver(const Device& d, std::unique_ptr<kedge::mapper::Driver>& out) {
  Fields pf(d.protocol_config, "spec.protocol.configData");
  bool unreachable = pf.boolean("unreachable", false);
  auto seed = static_cast<uint64_t>(pf.integer("seed", 1, 0, INT64_MAX));
  if (!pf.ok()) return pf.status();
  std::map<std::string, Signal> signals;
  for (auto& p : d.properties) {
    Fields f(p.visitor, "property '" + p.name + "' visitors.configData");
    Signal s;
    s.kind = f.one_of("kind", p.writable ? "actuator" : "sine",
                      {"sine", "random", "counter", "constant", "actuator"});
    s.min = f.number("min", 0);
    s.max = f.number("max", 100);
    s.period_s = f.number("period_s", 60);
    s.value = f.number("value", s.min);
    if (!f.ok()) return f.status();
    if (s.max < s.min) return kedge::invalid_argument(p.name + ": max is below min");
    if (s.period_s <= 0) return kedge::invalid_argument(p.name + ": period_s must be positive");
    signals[p.name] = s;
  }
  out = std::make_unique<VirtualDriver>(std::move(signals), unreachable, seed);
  return {};
}

kedge::mapper::MapperInfo virtual_mapper() {
  return {
      .name = "virtual-mapper", .protocol = "virtual", .version = "0.1.0", .factory = make_driver};
}

}  // namespace

KEDGE_MAPPER(virtual_mapper, "Simulated sensors and actuators (protocol \"virtual\").")
