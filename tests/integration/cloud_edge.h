// A cloud (cloudhub, apiserver, devicecontroller) and an edge (edgehub,
// metamanager, twin, and what a test adds) in kernels of their own over the
// real mTLS channel, with helpers for devices: the cloud's API, the edge's
// twin, reports as a mapper sends them.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "kedge/testing/harness.h"

namespace kedge {

using namespace std::chrono_literals;
using testing::Harness;
namespace fs = std::filesystem;
namespace json = boost::json;

class CloudEdge : public ::testing::Test {
 protected:
  // More of the edge's manifest (plugins after the twin).
  virtual std::string edge_plugins() { return {}; }
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
    if (HasFailure()) dump_logs();
    fs::remove_all(root_);
  }
  // On a failure, the logs of the processes a test started (mapper.log, ...)
  // are printed before the directory goes.
  void dump_logs() {
    std::error_code ec;
    for (auto& e : fs::recursive_directory_iterator(root_, ec)) {
      if (!e.is_regular_file() || e.path().extension() != ".log") continue;
      std::ifstream in(e.path());
      std::deque<std::string> tail;
      for (std::string line; std::getline(in, line);) {
        tail.push_back(line);
        if (tail.size() > 80) tail.pop_front();
      }
      std::cerr << "---- " << e.path().string() << " (last " << tail.size() << " lines)\n";
      for (auto& l : tail) std::cerr << l << "\n";
    }
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
            "\"twin\"\n" +
            edge_plugins(),
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

}  // namespace kedge
