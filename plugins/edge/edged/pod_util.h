// Pure pod logic for edged, without a runtime: resource quantities, the
// cgroup settings of a container, QoS class, restart decisions and crash-loop
// back-off, pod phase. Unit-tested in tests/unit/edged_test.cpp.
#pragma once

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kedge/status.h"

namespace kedge::edged {

// A Kubernetes quantity ("250m", "1.5", "128Mi", "1G", "2e3") scaled by
// `scale` (1000 for CPU millicores, 1 for bytes); nullopt if malformed.
std::optional<int64_t> parse_quantity(const std::string& q, int64_t scale = 1);

struct CgroupResources {
  int64_t cpu_period = 0, cpu_quota = 0, cpu_shares = 0, memory_limit = 0;
};
// From a container's resources {limits, requests}, as the kubelet maps them:
// quota = limit millicores × period / 1000 (period 100 ms); shares from the
// request (or the limit) × 1024 / 1000, at least 2; memory from the limit.
// An error names the bad field (resources.limits.cpu: "abc" ...).
using ResourcesResult = Result<CgroupResources>;
ResourcesResult cgroup_resources(const boost::json::value& resources);

// Guaranteed, Burstable or BestEffort, as Kubernetes decides it.
std::string qos_class(const boost::json::object& pod_spec);

// Whether an exited container is started again under the pod's policy.
bool should_restart(const std::string& restart_policy, int exit_code);

// Crash-loop back-off after `restarts` restarts: initial × 2^(restarts-1),
// capped at max; 0 before the first restart.
std::chrono::milliseconds backoff(int restarts, std::chrono::milliseconds initial,
                                  std::chrono::milliseconds max);

// The pod phase from its containers' states.
struct ContainerView {
  enum class State { kWaiting, kRunning, kTerminated } state = State::kWaiting;
  int exit_code = 0;
  bool will_restart = false;  // terminated, but the policy starts it again
};
std::string pod_phase(bool initialized, const std::vector<ContainerView>& containers);

// A container's spec fingerprint: a change means the container is replaced.
std::string spec_hash(const boost::json::value& container);

// RFC 3339 UTC from nanoseconds since the epoch (CRI's timestamps).
std::string rfc3339_from_ns(int64_t ns);

}  // namespace kedge::edged
