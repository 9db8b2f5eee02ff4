#include "pod_util.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <functional>

namespace kedge::edged {

namespace json = boost::json;

std::optional<int64_t> parse_quantity(const std::string& q, int64_t scale) {
  if (q.empty() || q.size() > 64) return std::nullopt;
  size_t i = 0;
  if (q[0] == '+' || q[0] == '-') ++i;
  size_t digits_start = i;
  while (i < q.size() && (std::isdigit(static_cast<unsigned char>(q[i])) || q[i] == '.')) ++i;
  if (i == digits_start) return std::nullopt;
  std::string number = q.substr(0, i), suffix = q.substr(i);
  char* end = nullptr;
  double v = std::strtod(number.c_str(), &end);
  if (*end) return std::nullopt;
  double mult = 1;
  static const std::pair<const char*, double> kSuffixes[] = {
      {"Ki", 1024.0},
      {"Mi", 1024.0 * 1024},
      {"Gi", 1024.0 * 1024 * 1024},
      {"Ti", 1024.0 * 1024 * 1024 * 1024},
      {"Pi", 1024.0 * 1024 * 1024 * 1024 * 1024},
      {"Ei", 1024.0 * 1024 * 1024 * 1024 * 1024 * 1024},
      {"n", 1e-9},
      {"u", 1e-6},
      {"m", 1e-3},
      {"k", 1e3},
      {"M", 1e6},
      {"G", 1e9},
      {"T", 1e12},
      {"P", 1e15},
      {"E", 1e18},
  };
  if (!suffix.empty()) {
    bool found = false;
    bool in_table = false;
    for (auto& [sfx, m] : kSuffixes) in_table = in_table || suffix == sfx;
    if (!in_table && (suffix[0] == 'e' || suffix[0] == 'E')) {
      char* e2 = nullptr;
      long exp = std::strtol(suffix.c_str() + 1, &e2, 10);
      if (*e2 || suffix.size() == 1 || exp > 18 || exp < -9) {
        return std::nullopt;
      } else {
        mult = std::pow(10.0, static_cast<double>(exp));
        found = true;
      }
    }
    for (auto& [s, m] : kSuffixes)
      if (!found && suffix == s) {
        mult = m;
        found = true;
      }
    if (!found) return std::nullopt;
  }
  double r = v * mult * static_cast<double>(scale);
  if (!std::isfinite(r) || std::fabs(r) > 9.2e18) return std::nullopt;
  return static_cast<int64_t>(std::ceil(r - 1e-9));
}

namespace {
std::string str(const json::value* v) {
  if (!v) return {};
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  if (v->is_double()) return json::serialize(*v);
  return {};
}
const json::value* at(const json::value& v, const char* k) {
  auto* o = v.if_object();
  return o ? o->if_contains(k) : nullptr;
}
}  // namespace

ResourcesResult cgroup_resources(const json::value& resources) {
  ResourcesResult out;
  auto get = [&](const char* part, const char* res, int64_t scale) -> std::optional<int64_t> {
    auto* p = at(resources, part);
    auto* v = p ? at(*p, res) : nullptr;
    if (!v) return std::nullopt;
    auto q = parse_quantity(str(v), scale);
    if (!q || *q < 0) {
      if (out.ok())
        out.status = kedge::invalid_argument(std::string("resources.") + part + "." + res + ": \"" +
                                             str(v) + "\" is not a quantity");
      return std::nullopt;
    }
    return q;
  };
  auto cpu_limit = get("limits", "cpu", 1000);
  auto cpu_request = get("requests", "cpu", 1000);
  auto mem_limit = get("limits", "memory", 1);
  (void)get("requests", "memory", 1);
  if (!out.ok()) return out;
  // Clamped before multiplying: a million cores is more than any node.
  constexpr int64_t kMaxMillicores = int64_t{1000000} * 1000;
  if (cpu_limit && *cpu_limit > 0) {
    out.value.cpu_period = 100000;
    out.value.cpu_quota = std::max<int64_t>(1000, std::min(*cpu_limit, kMaxMillicores) * 100);
  }
  auto shares_from = cpu_request ? cpu_request : cpu_limit;
  // The kubelet's bounds: 2 .. 262144.
  out.value.cpu_shares =
      shares_from
          ? std::clamp<int64_t>(std::min(*shares_from, kMaxMillicores) * 1024 / 1000, 2, 262144)
          : 2;
  if (mem_limit) out.value.memory_limit = *mem_limit;
  return out;
}

std::string qos_class(const json::object& spec) {
  bool any = false, guaranteed = true;
  auto* cs = spec.if_contains("containers");
  if (!cs || !cs->is_array()) return "BestEffort";
  for (auto& c : cs->as_array()) {
    auto* r = at(c, "resources");
    for (const char* res : {"cpu", "memory"}) {
      auto* l = r && at(*r, "limits") ? at(*at(*r, "limits"), res) : nullptr;
      auto* q = r && at(*r, "requests") ? at(*at(*r, "requests"), res) : nullptr;
      if (l || q) any = true;
      if (!l) {
        guaranteed = false;
        continue;
      }
      // A request defaults to the limit.
      if (q && parse_quantity(str(q), 1000) != parse_quantity(str(l), 1000)) guaranteed = false;
    }
  }
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

bool should_restart(const std::string& policy, int exit_code) {
  if (policy == "Never") return false;
  if (policy == "OnFailure") return exit_code != 0;
  return true;  // Always (the default)
}

std::chrono::milliseconds backoff(int restarts, std::chrono::milliseconds initial,
                                  std::chrono::milliseconds max) {
  if (restarts <= 0) return std::chrono::milliseconds(0);
  auto d = initial;
  for (int i = 1; i < restarts && d < max; ++i) d *= 2;
  return std::min(d, max);
}

std::string pod_phase(bool initialized, const std::vector<ContainerView>& cs) {
  if (!initialized || cs.empty()) return "Pending";
  bool any_running = false, all_terminated = true, any_failed = false, restarting = false;
  for (auto& c : cs) {
    if (c.state == ContainerView::State::kRunning) any_running = true;
    if (c.state != ContainerView::State::kTerminated) all_terminated = false;
    if (c.state == ContainerView::State::kTerminated) {
      if (c.will_restart) restarting = true;
      if (c.exit_code != 0) any_failed = true;
    }
  }
  if (any_running || restarting) return "Running";
  if (all_terminated) return any_failed ? "Failed" : "Succeeded";
  return "Pending";
}

std::string spec_hash(const json::value& container) {
  size_t h = std::hash<std::string>{}(json::serialize(container));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016zx", h);
  return buf;
}

std::string rfc3339_from_ns(int64_t ns) {
  if (ns <= 0) return {};
  std::time_t t = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace kedge::edged
