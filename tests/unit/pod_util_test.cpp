// edged's pure pod logic: quantities, cgroup mapping, QoS, restart policy,
// back-off, phase.
#include <gtest/gtest.h>

#include "pod_util.h"

namespace kedge::edged {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

TEST(PodUtil, ParsesQuantities) {
  EXPECT_EQ(parse_quantity("250m", 1000), 250);
  EXPECT_EQ(parse_quantity("1", 1000), 1000);
  EXPECT_EQ(parse_quantity("1.5", 1000), 1500);
  EXPECT_EQ(parse_quantity("128Mi"), 128 * 1024 * 1024);
  EXPECT_EQ(parse_quantity("1Gi"), 1024LL * 1024 * 1024);
  EXPECT_EQ(parse_quantity("1G"), 1000000000);
  EXPECT_EQ(parse_quantity("64k"), 64000);
  EXPECT_EQ(parse_quantity("2e3"), 2000);
  EXPECT_EQ(parse_quantity("0.1", 1000), 100);
  EXPECT_EQ(parse_quantity("1Ei"), 1152921504606846976LL);
  EXPECT_EQ(parse_quantity("1E"), 1000000000000000000LL);
  EXPECT_FALSE(parse_quantity("1Ex"));
  EXPECT_FALSE(parse_quantity(""));
  EXPECT_FALSE(parse_quantity("lots"));
  EXPECT_FALSE(parse_quantity("12Qi"));
  EXPECT_FALSE(parse_quantity("1e99"));
  EXPECT_FALSE(parse_quantity(std::string(100, '9')));
}

TEST(PodUtil, MapsResourcesToCgroupsAsTheKubelet) {
  auto r = cgroup_resources(json::parse(
      R"({"limits":{"cpu":"500m","memory":"64Mi"},"requests":{"cpu":"250m","memory":"32Mi"}})"));
  ASSERT_TRUE(r.status.message().empty());
  EXPECT_EQ(r.value.cpu_period, 100000);
  EXPECT_EQ(r.value.cpu_quota, 50000);
  EXPECT_EQ(r.value.cpu_shares, 256);
  EXPECT_EQ(r.value.memory_limit, 64 * 1024 * 1024);
  auto none = cgroup_resources(json::value());
  EXPECT_EQ(none.value.cpu_quota, 0);
  EXPECT_EQ(none.value.cpu_shares, 2);
  EXPECT_EQ(none.value.memory_limit, 0);
  auto tiny = cgroup_resources(json::parse(R"({"limits":{"cpu":"1m"}})"));
  EXPECT_EQ(tiny.value.cpu_quota, 1000);  // the kernel's minimum
  auto bad = cgroup_resources(json::parse(R"({"limits":{"memory":"lots"}})"));
  EXPECT_EQ(bad.status.message(), "resources.limits.memory: \"lots\" is not a quantity");
  auto huge = cgroup_resources(json::parse(R"({"limits":{"cpu":"1e13"}})"));
  EXPECT_EQ(huge.value.cpu_quota, int64_t{1000000} * 1000 * 100);  // clamped, no overflow
  EXPECT_EQ(huge.value.cpu_shares, 262144);
  auto neg = cgroup_resources(json::parse(R"({"requests":{"cpu":"-1"}})"));
  EXPECT_FALSE(neg.status.message().empty());
}

TEST(PodUtil, QosClass) {
  auto spec = [](const char* resources) {
    return json::parse(std::string(R"({"containers":[{"name":"c","resources":)") + resources +
                       "}]}")
        .as_object();
  };
  EXPECT_EQ(qos_class(spec("{}")), "BestEffort");
  EXPECT_EQ(qos_class(spec(R"({"limits":{"cpu":"1","memory":"1Gi"}})")), "Guaranteed");
  EXPECT_EQ(
      qos_class(spec(
          R"({"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"1000m","memory":"1Gi"}})")),
      "Guaranteed");
  EXPECT_EQ(qos_class(spec(R"({"limits":{"memory":"1Gi"}})")), "Burstable");
  EXPECT_EQ(qos_class(spec(R"({"requests":{"cpu":"1"}})")), "Burstable");
}

TEST(PodUtil, RestartPolicyAndBackOff) {
  EXPECT_TRUE(should_restart("Always", 0));
  EXPECT_TRUE(should_restart("", 1));
  EXPECT_TRUE(should_restart("OnFailure", 2));
  EXPECT_FALSE(should_restart("OnFailure", 0));
  EXPECT_FALSE(should_restart("Never", 1));
  EXPECT_EQ(backoff(0, 10s, 300s), 0ms);
  EXPECT_EQ(backoff(1, 10s, 300s), 10s);
  EXPECT_EQ(backoff(2, 10s, 300s), 20s);
  EXPECT_EQ(backoff(5, 10s, 300s), 160s);
  EXPECT_EQ(backoff(6, 10s, 300s), 300s);
  EXPECT_EQ(backoff(1000, 10s, 300s), 300s);
}

TEST(PodUtil, Phase) {
  using S = ContainerView::State;
  EXPECT_EQ(pod_phase(false, {{S::kRunning, 0, false}}), "Pending");
  EXPECT_EQ(pod_phase(true, {{S::kWaiting, 0, false}}), "Pending");
  EXPECT_EQ(pod_phase(true, {{S::kRunning, 0, false}, {S::kWaiting, 0, false}}), "Running");
  EXPECT_EQ(pod_phase(true, {{S::kTerminated, 1, true}}), "Running");
  EXPECT_EQ(pod_phase(true, {{S::kTerminated, 0, false}}), "Succeeded");
  EXPECT_EQ(pod_phase(true, {{S::kTerminated, 0, false}, {S::kTerminated, 2, false}}), "Failed");
}

TEST(PodUtil, Timestamps) {
  EXPECT_EQ(rfc3339_from_ns(int64_t{1764043200} * 1000000000), "2025-11-25T04:00:00Z");
  EXPECT_EQ(rfc3339_from_ns(0), "");
  EXPECT_NE(spec_hash(json::parse(R"({"image":"a"})")), spec_hash(json::parse(R"({"image":"b"})")));
}

}  // namespace
}  // namespace kedge::edged
