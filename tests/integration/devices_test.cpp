// Devices between the cloud and the edge, each in a kernel of its own over the
// real mTLS channel: devicecontroller (with cloudhub and the apiserver) and
// the edge's twin (with edgehub and metamanager). Desired values go down,
// reported values and state come up into the Device's status, offline
// reports arrive later, and the twin keeps its state across a restart.
#include "cloud_edge.h"

namespace kedge {
namespace {

using Devices = CloudEdge;

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
