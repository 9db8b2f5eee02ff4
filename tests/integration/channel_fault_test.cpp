// The channel under faults, through a fault-injecting TCP proxy between the
// edge and the cloud: cloud restart and edge restart mid-stream, a 30 s black
// hole (half-open link), and 100 flaps. Each scenario streams versions of a
// set of objects and then checks, from what the edge applied, that every
// object reached its last version, that no version was applied twice, and
// that each object's versions were applied in order.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "fault_proxy.h"
#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Capture;
using testing::FaultProxy;
using testing::Harness;
namespace fs = std::filesystem;

constexpr int kObjects = 10;

class ChannelFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("kedge-faults-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "cloud");
    fs::create_directories(root_ / "edge");
    port_ = Harness::free_port();
    https_port_ = Harness::free_port();
    proxy_ = std::make_unique<FaultProxy>(port_);
  }
  void TearDown() override {
    edge_.reset();
    cloud_.reset();
    proxy_.reset();
    fs::remove_all(root_);
  }

  void start_cloud() {
    cloud_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"cloud\"\nlog_level = \"error\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"cloudhub\"\n[plugin.config]\naddress = \"127.0.0.1\"\n"
        "port = " +
            std::to_string(port_) + "\nhttps_port = " + std::to_string(https_port_) +
            "\nack_timeout_ms = 300\nkeepalive_interval_s = 1\n" + cloud_extra_,
        root_ / "cloud");
    ASSERT_TRUE(cloud_->errors().empty()) << cloud_->errors()[0];
    controller_ = &cloud_->capture("edgecontroller");
    ASSERT_TRUE(cloud_->start());
  }

  void start_edge() {
    edge_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"edge-1\"\nlog_level = \"error\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\", \"" KEDGE_FIXTURE_DIR
        "\"]\n[[plugin]]\nname = \"edgehub\"\n[plugin.config]\n"
        "server = \"127.0.0.1:" +
            std::to_string(proxy_->port()) +
            "\"\nhttp_server = \"127.0.0.1:" + std::to_string(https_port_) + "\"\ntoken_file = \"" +
            (root_ / "cloud/data/cloudhub/token").string() +
            "\"\nheartbeat_s = 1\nconnect_timeout_s = 2\nreconnect_min_ms = 50\n"
            "reconnect_max_ms = 500\nack_timeout_ms = 300\nmessage_qps = 1000\nmessage_burst = "
            "1000\n"
            "[[plugin]]\nname = \"meta-acker\"\n[plugin.config]\nrecord = true\n",
        root_ / "edge");
    ASSERT_TRUE(edge_->errors().empty()) << edge_->errors()[0];
    ASSERT_TRUE(edge_->start());
  }

  bool connected() {
    return Harness::eventually(
        [&] {
          return edge_->metrics_text().find("kedge_edgehub_connected 1\n") != std::string::npos;
        },
        20s);
  }

  // One version (rv = round) of every object, as edgecontroller sends it.
  void send_round(int round) {
    for (int i = 0; i < kObjects; ++i) {
      std::string name = "p" + std::to_string(i), rv = std::to_string(round);
      boost::json::object body{{"metadata", boost::json::object{{"name", name},
                                                                {"namespace", "default"},
                                                                {"uid", "uid-" + name},
                                                                {"resourceVersion", rv}}}};
      Message m = make_message("edgecontroller", "resource", "update",
                               "node/edge-1/default/pod/" + name, body);
      m.header.resource_version = rv;
      ASSERT_TRUE(cloud_->send("cloudhub", std::move(m), 10s));
    }
    last_round_ = round;
  }

  // A status report from the edge, numbered.
  void report(int n) {
    ASSERT_TRUE(edge_->send("edgehub", make_message("edged", "resource", "patch",
                                                    "default/podpatch/r" + std::to_string(n),
                                                    boost::json::string("{}"))));
    ++reports_;
  }

  // Per object: the versions applied, in order.
  std::map<std::string, std::vector<uint64_t>> applied() {
    std::map<std::string, std::vector<uint64_t>> out;
    std::ifstream in(root_ / "edge/data/applied.log");
    for (std::string line; std::getline(in, line);) {
      std::istringstream f(line);
      std::string res;
      uint64_t rv = 0;
      f >> res >> rv;
      out[res].push_back(rv);
    }
    return out;
  }

  // Every object reaches the last version, each version applied once, in order.
  void expect_exactly_once_in_order() {
    ASSERT_TRUE(Harness::eventually(
        [&] {
          auto a = applied();
          if (a.size() != kObjects) return false;
          for (auto& [res, rvs] : a)
            if (rvs.back() != static_cast<uint64_t>(last_round_)) return false;
          return true;
        },
        60s))
        << "not every object reached version " << last_round_;
    for (auto& [res, rvs] : applied())
      for (size_t i = 1; i < rvs.size(); ++i)
        ASSERT_LT(rvs[i - 1], rvs[i])
            << res << ": version " << rvs[i] << " applied after " << rvs[i - 1];
    EXPECT_TRUE(Harness::eventually(
        [&] {
          return cloud_->metrics_text().find("kedge_cloudhub_pending_messages 0\n") !=
                 std::string::npos;
        },
        30s));
  }

  // Every report reached the controller exactly once.
  void expect_reports_once() {
    ASSERT_TRUE(Harness::eventually(
        [&] { return edge_->metrics_text().find("kedge_edgehub_outbox 0\n") != std::string::npos; },
        60s));
    std::map<std::string, int> seen;
    for (auto& m : controller_->messages())
      if (m->route.operation == "patch") ++seen[m->route.resource];
    EXPECT_EQ(seen.size(), static_cast<size_t>(reports_));
    for (auto& [res, n] : seen) EXPECT_EQ(n, 1) << res;
  }

  fs::path root_;
  uint16_t port_ = 0, https_port_ = 0;
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<Harness> cloud_, edge_;
  Capture* controller_ = nullptr;
  int last_round_ = 0;
  int reports_ = 0;
  std::string cloud_extra_;
};

TEST_F(ChannelFaults, CloudRestartMidStream) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  for (int r = 1; r <= 10; ++r) send_round(r);
  cloud_.reset();  // with messages in flight and unACKed
  start_cloud();
  for (int r = 11; r <= 20; ++r) send_round(r);
  expect_exactly_once_in_order();
}

TEST_F(ChannelFaults, EdgeRestartMidStream) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  for (int r = 1; r <= 10; ++r) send_round(r);
  for (int n = 0; n < 5; ++n) report(n);
  edge_.reset();
  for (int r = 11; r <= 20; ++r) send_round(r);  // queued for the absent edge
  start_edge();
  for (int n = 5; n < 10; ++n) report(n);
  expect_exactly_once_in_order();
  expect_reports_once();
}

TEST_F(ChannelFaults, HundredFlaps) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  std::mt19937 rng(42);
  for (int flap = 1; flap <= 100; ++flap) {
    send_round(flap);
    report(flap);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 30));
    // Each cut hits a live link: the edge has connected `flap` times so far.
    std::string connects = "kedge_edgehub_connects_total " + std::to_string(flap) + "\n";
    ASSERT_TRUE(Harness::eventually(
        [&] { return edge_->metrics_text().find(connects) != std::string::npos; }, 10s))
        << "flap " << flap;
    proxy_->cut();
  }
  expect_exactly_once_in_order();
  expect_reports_once();
  EXPECT_EQ(proxy_->cuts(), 100);
  // The edge saw every cut: 1 first connection + 100 reconnections.
  EXPECT_TRUE(Harness::eventually(
      [&] {
        return edge_->metrics_text().find("kedge_edgehub_connects_total 101\n") !=
               std::string::npos;
      },
      10s));
}

TEST_F(ChannelFaults, CertificateIsRenewedBeforeExpiryWithoutLosingMessages) {
  cloud_extra_ = "edge_cert_validity_s = 5\n";
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  for (int r = 1; r <= 40; ++r) {  // 8 s: past the first certificate's end
    send_round(r);
    report(r);
    std::this_thread::sleep_for(200ms);
  }
  expect_exactly_once_in_order();
  expect_reports_once();
  std::string m = edge_->metrics_text();
  EXPECT_THAT(m, ::testing::Not(::testing::HasSubstr("kedge_edgehub_cert_rotations_total 0\n")));
  EXPECT_THAT(m, ::testing::Not(::testing::HasSubstr("kedge_edgehub_connects_total 1\n")));
}

TEST_F(ChannelFaults, ThirtySecondBlackHole) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  for (int r = 1; r <= 5; ++r) send_round(r);
  proxy_->blackhole(true);
  for (int r = 6; r <= 10; ++r) send_round(r);
  for (int n = 0; n < 5; ++n) report(n);
  // Both ends notice the dead link within 3 heartbeats (1 s here).
  EXPECT_TRUE(Harness::eventually(
      [&] {
        return edge_->metrics_text().find("kedge_edgehub_connected 0\n") != std::string::npos;
      },
      5s));
  EXPECT_TRUE(Harness::eventually(
      [&] {
        return cloud_->metrics_text().find("kedge_cloudhub_connected_nodes 0\n") !=
               std::string::npos;
      },
      5s));
  std::this_thread::sleep_for(30s);
  proxy_->blackhole(false);
  expect_exactly_once_in_order();
  expect_reports_once();
}

}  // namespace
}  // namespace kedge
