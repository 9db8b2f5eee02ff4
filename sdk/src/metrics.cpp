#include "kedge/metrics.h"

#include <stdexcept>

namespace kedge {

namespace {

bool valid_name(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void escape_into(std::string_view s, std::string& out, bool quote_too) {
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quote_too && c == '"')
      out += "\\\"";
    else
      out += c;
  }
}

std::string render_labels(const Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (!valid_name(labels[i].first))
      throw std::invalid_argument("invalid metric label name: " + labels[i].first);
    if (i) out += ',';
    out += labels[i].first;
    out += "=\"";
    escape_into(labels[i].second, out, true);
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help,
                                                 Type type) {
  if (!valid_name(name)) throw std::invalid_argument("invalid metric name: " + std::string(name));
  auto it = families_.find(name);
  if (it == families_.end())
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}}).first;
  else if (it->second.type != type)
    throw std::invalid_argument("metric " + std::string(name) + " registered with another type");
  return it->second;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help,
                                  const Labels& labels) {
  std::string rendered = render_labels(labels);
  std::lock_guard lock(mu_);
  Family& f = family(name, help, Type::kCounter);
  for (auto& s : f.series)
    if (s.labels == rendered) return *s.counter;
  Counter& c = counters_.emplace_back();
  f.series.push_back({std::move(rendered), &c, nullptr});
  return c;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::string rendered = render_labels(labels);
  std::lock_guard lock(mu_);
  Family& f = family(name, help, Type::kGauge);
  for (auto& s : f.series)
    if (s.labels == rendered) return *s.gauge;
  Gauge& g = gauges_.emplace_back();
  f.series.push_back({std::move(rendered), nullptr, &g});
  return g;
}

std::string MetricsRegistry::prometheus_text() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " ";
    escape_into(f.help, out, false);
    out += "\n# TYPE " + name + (f.type == Type::kCounter ? " counter\n" : " gauge\n");
    for (const auto& s : f.series) {
      out += name;
      out += s.labels;
      out += ' ';
      out += s.counter ? std::to_string(s.counter->value()) : std::to_string(s.gauge->value());
      out += '\n';
    }
  }
  return out;
}

}  // namespace kedge
