// Devices between the cloud and the edge, each in a kernel of its own over the
// real mTLS channel: devicecontroller (with cloudhub and the apiserver) and
// the edge's twin (with edgehub and metamanager). Desired values go down,
// reported values and state come up into the Device's status, offline
// reports arrive later, and the twin keeps its state across a restart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <thread>

#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
namespace fs = std::filesystem;
namespace json = boost::json;

class Devices : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("kedge-devices-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "cloud");
    fs::create_directories(root_ / "edge");
    port_ = Harness::free_port();
    https_port_ = Harness::free_port();
    api_port_ = Harness::free_port();
  }
  void TearDown() override {
    edge_.reset();
    cloud_.reset();
    fs::remove_all(root_);
  }
  void start_cloud() {
    cloud_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"cloud\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"cloudhub\"\n[plugin.config]\naddress = \"127.0.0.1\"\nport = " +
            std::to_string(port_) + "\nhttps_port = " + std::to_string(https_port_) +
            "\nkeepalive_interval_s = 1\nack_timeout_ms = 300\n[[plugin]]\nname = "
            "\"apiserver\"\n[plugin.config]\naddress = \"127.0.0.1\"\nport = " +
            std::to_string(api_port_) + "\n[[plugin]]\nname = \"devicecontroller\"\n",
        root_ / "cloud");
    ASSERT_TRUE(cloud_->errors().empty()) << cloud_->errors()[0];
    ASSERT_TRUE(cloud_->start());
  }
  void start_edge() {
    edge_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"edgehub\"\n[plugin.config]\nserver = \"127.0.0.1:" +
            std::to_string(port_) + "\"\nhttp_server = \"127.0.0.1:" + std::to_string(https_port_) +
            "\"\ntoken_file = \"" + (root_ / "cloud/data/cloudhub/token").string() +
            "\"\nheartbeat_s = 1\nreconnect_min_ms = 50\nreconnect_max_ms = 400\n"
            "ack_timeout_ms = 300\n[[plugin]]\nname = \"metamanager\"\n[[plugin]]\nname = "
            "\"twin\"\n",
        root_ / "edge");
    ASSERT_TRUE(edge_->errors().empty()) << edge_->errors()[0];
    ASSERT_TRUE(edge_->start());
  }
  bool connected() {
    return Harness::eventually(
        [&] {
          return edge_->metrics_text().find("kedge_edgehub_connected 1\n") != std::string::npos;
        },
        15s);
  }

  std::pair<int, json::value> api(const std::string& method, const std::string& target,
                                  json::value body = nullptr,
                                  const std::string& ct = "application/json") {
    auto [s, r] = cloud_->request(
        "apiserver",
        make_message(
            "test", "", "request", "",
            json::object{
                {"method", method}, {"target", target}, {"body", body}, {"contentType", ct}}),
        10s);
    if (!s || !r) return {0, nullptr};
    auto& o = r->content.as_object();
    return {static_cast<int>(o.at("code").as_int64()), o.at("body")};
  }
  // The twin as the edge has it.
  json::value twin(const std::string& device) {
    auto [s, r] = edge_->request(
        "twin", make_message("test", "twin", "get", "device/" + device + "/twin/get"), 5s);
    return s && r ? r->content : json::value();
  }
  std::string expected(const std::string& device, const char* prop) {
    auto t = twin(device);
    auto* v = t.is_object() ? t.as_object().if_contains("twin") : nullptr;
    if (!v || !v->as_object().contains(prop)) return {};
    auto* e = v->at(prop).as_object().if_contains("expected");
    return e ? std::string(e->at("value").as_string()) : std::string();
  }
  std::string actual(const std::string& device, const char* prop) {
    auto t = twin(device);
    auto* v = t.is_object() ? t.as_object().if_contains("twin") : nullptr;
    if (!v || !v->as_object().contains(prop)) return {};
    auto* a = v->at(prop).as_object().if_contains("actual");
    return a ? std::string(a->at("value").as_string()) : std::string();
  }
  json::value report(const std::string& device, const std::string& prop, const std::string& value) {
    auto [s, r] = edge_->request(
        "twin",
        make_message(
            "mapper", "twin", "update", "device/" + device + "/twin/update",
            json::object{
                {"event_id", "e1"},
                {"timestamp", 1},
                {"twin",
                 json::object{{prop, json::object{{"actual", json::object{{"value", value}}},
                                                  {"metadata", json::object{{"type", "int"}}}}}}}}),
        5s);
    return s && r ? r->content : json::value();
  }
  std::string reported(const std::string& device, const char* prop) {
    auto [code, dev] =
        api("GET", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/" + device);
    if (code != 200) return {};
    auto* twins = dev.as_object().contains("status")
                      ? dev.at("status").as_object().if_contains("twins")
                      : nullptr;
    if (!twins) return {};
    for (auto& t : twins->as_array())
      if (t.at("propertyName") == prop && t.as_object().contains("reported"))
        return std::string(t.at("reported").at("value").as_string());
    return {};
  }
  void create_device(const std::string& setpoint) {
    ASSERT_EQ(api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devicemodels",
                  json::parse(R"({"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel",
                    "metadata":{"name":"thermometer"},
                    "spec":{"properties":[{"name":"temperature","type":"INT","accessMode":"ReadOnly"},
                                          {"name":"setpoint","type":"INT","accessMode":"ReadWrite"}]}})"))
                  .first,
              201);
    ASSERT_EQ(api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices",
                  json::parse(R"({"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device",
                    "metadata":{"name":"thermo-1"},
                    "spec":{"deviceModelRef":{"name":"thermometer"},"nodeName":"edge-1",
                            "properties":[{"name":"temperature"},
                                          {"name":"setpoint","desired":{"value":")" +
                              setpoint + R"("}}]}})"))
                  .first,
              201);
  }

  fs::path root_;
  uint16_t port_ = 0, https_port_ = 0, api_port_ = 0;
  std::unique_ptr<Harness> cloud_, edge_;
};

TEST_F(Devices, DesiredGoesDownReportedAndStateComeUp) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  create_device("25");
  ASSERT_TRUE(Harness::eventually([&] { return expected("thermo-1", "setpoint") == "25"; }, 10s))
      << json::serialize(twin("thermo-1"));
  // A mapper reports: the twin answers with the stored document, the cloud
  // gets it into the Device's status.
  auto doc = report("thermo-1", "temperature", "21");
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.at("twin").at("temperature").at("actual").at("value"), "21");
  EXPECT_TRUE(
      Harness::eventually([&] { return reported("thermo-1", "temperature") == "21"; }, 10s));
  // Device state.
  auto [s, r] =
      edge_->request("twin",
                     make_message("mapper", "twin", "update", "device/thermo-1/state/update",
                                  json::object{{"state", "online"}}),
                     5s);
  ASSERT_TRUE(s);
  EXPECT_TRUE(Harness::eventually(
      [&] {
        auto [c, d] =
            api("GET", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/thermo-1");
        return c == 200 && d.as_object().contains("status") &&
               d.at("status").as_object().contains("state") &&
               d.at("status").at("state") == "online";
      },
      10s));
  // A new desired value reaches the edge.
  ASSERT_EQ(api("PATCH", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/thermo-1",
                json::parse(R"({"spec":{"properties":[{"name":"temperature"},
                                 {"name":"setpoint","desired":{"value":"30"}}]}})"),
                "application/merge-patch+json")
                .first,
            200);
  EXPECT_TRUE(Harness::eventually([&] { return expected("thermo-1", "setpoint") == "30"; }, 10s));
  // Bad reports are refused with KubeEdge's error document.
  auto bad = report("thermo-1", "temperature", "not valid!");
  EXPECT_EQ(bad.at("code").as_int64(), 400);
  auto unknown = report("no-such-device", "temperature", "1");
  EXPECT_EQ(unknown.at("code").as_int64(), 404);
}

TEST_F(Devices, OfflineReportsArriveLaterAndTheTwinSurvivesARestart) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  create_device("25");
  ASSERT_TRUE(Harness::eventually([&] { return expected("thermo-1", "setpoint") == "25"; }, 10s));
  cloud_.reset();
  ASSERT_TRUE(Harness::eventually(
      [&] {
        return edge_->metrics_text().find("kedge_edgehub_connected 0\n") != std::string::npos;
      },
      10s));
  ASSERT_EQ(
      report("thermo-1", "temperature", "22").at("twin").at("temperature").at("actual").at("value"),
      "22");
  // The edge restarts while the cloud is still away: the twin is on disk.
  edge_.reset();
  start_edge();
  EXPECT_EQ(expected("thermo-1", "setpoint"), "25");
  EXPECT_EQ(actual("thermo-1", "temperature"), "22");
  // The cloud comes back: the report made offline reaches the status.
  start_cloud();
  EXPECT_TRUE(
      Harness::eventually([&] { return reported("thermo-1", "temperature") == "22"; }, 20s));
}

TEST_F(Devices, ADeviceMovedOrDeletedLeavesTheNode) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  create_device("25");
  ASSERT_TRUE(Harness::eventually([&] { return expected("thermo-1", "setpoint") == "25"; }, 10s));
  ASSERT_EQ(
      api("DELETE", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/thermo-1").first,
      200);
  EXPECT_TRUE(Harness::eventually(
      [&] {
        auto t = twin("thermo-1");
        return t.is_object() && t.at("twin").as_object().empty();
      },
      10s));
  // Reports on it are refused now.
  EXPECT_EQ(report("thermo-1", "temperature", "1").at("code").as_int64(), 404);
}

}  // namespace
}  // namespace kedge
