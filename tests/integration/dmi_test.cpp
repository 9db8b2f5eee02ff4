// DMI and mappers with a cloud and an edge over the real channel: a mapper
// plugin inside the agent and a standalone mapper process over gRPC get
// their devices, report readings and state into the Device's status, write
// desired values, and come back after being killed; the edge's
// DeviceManagerService refuses bad input clearly; a mapper that drops a
// call gets the device once it is back.
#include <grpcpp/grpcpp.h>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <fstream>
#include <sstream>

#include "../common/process.h"
#include "cloud_edge.h"
#include "dmi/v1beta1/api.grpc.pb.h"

namespace kedge {
namespace {

namespace pb = ::v1beta1;

const char* kModel = R"({"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel",
  "metadata":{"name":"sim"},
  "spec":{"properties":[{"name":"temperature","type":"FLOAT","accessMode":"ReadOnly"},
                        {"name":"setpoint","type":"INT","accessMode":"ReadWrite"}]}})";

std::string device(const std::string& name, const std::string& protocol, const std::string& kind,
                   const std::string& setpoint) {
  return R"({"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device",
    "metadata":{"name":")" +
         name + R"("},
    "spec":{"deviceModelRef":{"name":"sim"},"nodeName":"edge-1",
      "protocol":{"protocolName":")" +
         protocol + R"("},
      "properties":[
        {"name":"temperature","collectCycle":50000000,"reportCycle":100000000,"reportToCloud":true,
         "visitors":{"protocolName":")" +
         protocol + R"(","configData":{"kind":")" + kind +
         R"(","min":20,"max":30,"period_s":5}}},
        {"name":"setpoint","desired":{"value":")" +
         setpoint + R"("},"collectCycle":50000000,"reportCycle":100000000,"reportToCloud":true,
         "visitors":{"protocolName":")" +
         protocol + R"(","configData":{"kind":"actuator"}}}]}})";
}

class Dmi : public CloudEdge {
 protected:
  std::string extra_;
  std::string edge_plugins() override {
    return "[[plugin]]\nname = \"dmi\"\n[plugin.config]\ncall_timeout_ms = 1000\n"
           "[[plugin]]\nname = \"dmi-grpc\"\n[plugin.config]\nsocket = \"dmi.sock\"\n"
           "call_timeout_ms = 800\n" +
           extra_;
  }
  std::string dmi_socket() { return (root_ / "edge/data/dmi.sock").string(); }

  json::value get_device(const std::string& name) {
    auto [code, d] =
        api("GET", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/" + name);
    return code == 200 ? d : json::value();
  }
  std::string state(const std::string& name) {
    auto d = get_device(name);
    auto* st = d.is_object() && d.as_object().contains("status")
                   ? d.at("status").as_object().if_contains("state")
                   : nullptr;
    return st && st->is_string() ? std::string(st->as_string()) : std::string();
  }
  void set_desired(const std::string& name, const std::string& v) {
    ASSERT_EQ(
        api("PATCH", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/" + name,
            json::parse(R"({"spec":{"properties":[
                    {"name":"temperature","collectCycle":50000000,"reportCycle":100000000,"reportToCloud":true,
                     "visitors":{"protocolName":"virtual","configData":{"kind":"sine","min":20,"max":30,"period_s":5}}},
                    {"name":"setpoint","desired":{"value":")" +
                        v +
                        R"("},"collectCycle":50000000,"reportCycle":100000000,"reportToCloud":true,
                     "visitors":{"protocolName":"virtual","configData":{"kind":"actuator"}}}]}})"),
            "application/merge-patch+json")
            .first,
        200);
  }
  void create(const std::string& name, const std::string& kind = "sine") {
    ASSERT_EQ(api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devicemodels",
                  json::parse(kModel))
                  .first,
              201);
    ASSERT_EQ(api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices",
                  json::parse(device(name, "virtual", kind, "25")))
                  .first,
              201);
  }
  bool temperature_reported(const std::string& name) {
    std::string t = reported(name, "temperature");
    if (t.empty()) return false;
    double v = std::stod(t);
    return v >= 20 && v <= 30;
  }
};

TEST_F(Dmi, AMapperPluginRunsItsDevicesFromTheCloud) {
  extra_ = "[[plugin]]\nname = \"virtual-mapper\"\n";
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  create("sim-1");
  EXPECT_TRUE(Harness::eventually([&] { return temperature_reported("sim-1"); }, 15s))
      << json::serialize(get_device("sim-1"));
  EXPECT_TRUE(Harness::eventually([&] { return reported("sim-1", "setpoint") == "25"; }, 15s));
  EXPECT_TRUE(Harness::eventually([&] { return state("sim-1") == "online"; }, 15s));
  // A new desired value is written and read back.
  set_desired("sim-1", "30");
  EXPECT_TRUE(Harness::eventually([&] { return reported("sim-1", "setpoint") == "30"; }, 15s));
  // The edge asks the mapper plugin for the device as it has it now.
  auto [qs, live] =
      edge_->request("dmi", make_message("test", "dmi", "query", "device/default/sim-1"), 5s);
  ASSERT_TRUE(qs);
  EXPECT_EQ(live->content.at("device").at("metadata").at("name"), "sim-1");
  EXPECT_EQ(live->content.at("status").at("twins").as_array().size(), 2u);
  auto [q2, none] =
      edge_->request("dmi", make_message("test", "dmi", "query", "device/default/nope"), 5s);
  EXPECT_EQ(none->content.at("error"), "no device default/nope on this node");
  // A device the mapper cannot run is reported unhealthy, the rest go on.
  ASSERT_EQ(api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices",
                json::parse(device("sim-bad", "virtual", "lava", "1")))
                .first,
            201);
  EXPECT_TRUE(Harness::eventually([&] { return state("sim-bad") == "unhealthy"; }, 15s));
  EXPECT_EQ(state("sim-1"), "online");
}

TEST_F(Dmi, BadDeviceSpecsAreRefusedByTheApi) {
  start_cloud();
  auto bad = json::parse(device("x", "virtual", "sine", "1"));
  bad.at("spec").at("properties").at(0).as_object()["collectCycle"] = 1000;
  auto [code, body] =
      api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices", bad);
  EXPECT_EQ(code, 422);
  EXPECT_EQ(body.at("message"),
            "Device \"x\" is invalid: spec.properties[0].collectCycle: 1000 ns is below 1 ms "
            "(cycles are nanoseconds: 1 s = 1000000000)");
  EXPECT_EQ(body.at("details").at("causes").at(0).at("field"), "spec.properties[0].collectCycle");
  auto model = json::parse(kModel);
  model.at("spec").at("properties").at(0).as_object()["type"] = "DECIMAL";
  auto [mcode, mbody] =
      api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devicemodels", model);
  EXPECT_EQ(mcode, 422);
  EXPECT_THAT(std::string(mbody.at("message").as_string()),
              ::testing::HasSubstr("spec.properties[0].type: 'decimal' is not one of INT"));
}

std::pair<int, std::string> http_get(uint16_t port, const std::string& target) {
  namespace beast = boost::beast;
  boost::asio::io_context ioc;
  beast::tcp_stream s(ioc);
  boost::system::error_code ec;
  s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return {0, ec.message()};
  beast::http::request<beast::http::string_body> req{beast::http::verb::get, target, 11};
  req.set(beast::http::field::host, "127.0.0.1");
  beast::http::write(s, req, ec);
  beast::flat_buffer buf;
  beast::http::response<beast::http::string_body> res;
  beast::http::read(s, buf, res, ec);
  if (ec) return {0, ec.message()};
  return {static_cast<int>(res.result_int()), res.body()};
}

TEST_F(Dmi, AStandaloneMapperOverGrpcSurvivesKillsAndEdgeRestarts) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  create("sim-2");
  uint16_t http = Harness::free_port();
  std::vector<std::string> argv = {KEDGE_BIN_DIR "/kedge-virtual-mapper",
                                   "--dmi-socket",
                                   dmi_socket(),
                                   "--socket",
                                   (root_ / "virtual.sock").string(),
                                   "--http",
                                   "127.0.0.1:" + std::to_string(http),
                                   "--log-level",
                                   "debug"};
  auto mapper = std::make_unique<testing::Process>(argv, (root_ / "mapper.log").string());
  ASSERT_TRUE(mapper->error().empty()) << mapper->error();
  EXPECT_TRUE(Harness::eventually([&] { return temperature_reported("sim-2"); }, 15s))
      << json::serialize(get_device("sim-2"));
  EXPECT_TRUE(Harness::eventually([&] { return reported("sim-2", "setpoint") == "25"; }, 15s));
  EXPECT_TRUE(Harness::eventually([&] { return state("sim-2") == "online"; }, 15s));
  // The edge asks the mapper (GetDevice) for the device as it has it now.
  auto [qs, live] =
      edge_->request("dmi", make_message("test", "dmi", "query", "device/default/sim-2"), 5s);
  ASSERT_TRUE(qs);
  ASSERT_TRUE(live->content.is_object() && live->content.as_object().contains("device"))
      << json::serialize(live->content);
  EXPECT_EQ(live->content.at("device").at("metadata").at("name"), "sim-2");
  EXPECT_EQ(live->content.at("status").at("twins").as_array().size(), 2u);
  // Device-as-a-Service.
  auto [code, body] = http_get(http, "/api/v1/device/default/sim-2");
  ASSERT_EQ(code, 200) << body;
  EXPECT_EQ(json::parse(body).at("state"), "online");
  auto [c2, b2] = http_get(http, "/api/v1/device/default/sim-2/setpoint");
  EXPECT_EQ(json::parse(b2).at("value"), "25");
  // Killed: the edge's calls fail meanwhile and are retried; the restarted
  // mapper registers again and gets the new desired value.
  mapper->kill(SIGKILL);
  set_desired("sim-2", "31");
  std::this_thread::sleep_for(1500ms);  // a call or two fails
  mapper = std::make_unique<testing::Process>(argv, (root_ / "mapper.log").string());
  EXPECT_TRUE(Harness::eventually([&] { return reported("sim-2", "setpoint") == "31"; }, 20s));
  // The edge restarts: the mapper registers again on its own and the edge
  // still knows where it is.
  edge_.reset();
  start_edge();
  ASSERT_TRUE(connected());
  set_desired("sim-2", "32");
  EXPECT_TRUE(Harness::eventually([&] { return reported("sim-2", "setpoint") == "32"; }, 20s));
  EXPECT_EQ(mapper->kill(SIGTERM), 0);  // a clean exit on SIGTERM
}

// A mapper process that owes nothing to kedge: Python, with stubs generated
// from KubeEdge's published DMI proto (../shared/peers), not kedge's copy.
// It counts the calls it gets: one RegisterDevice and one CreateDeviceModel,
// no UpdateDevice while only its own reports change the Device, one per
// desired value, and RemoveDevice/RemoveDeviceModel when the device goes.
std::string stock_dmi_proto() {
  if (const char* p = std::getenv("KEDGE_PEERS"))
    return std::string(p) + "/kubeedge-dmi-v1beta1.proto";
  return KEDGE_SHARED_DIR "/peers/kubeedge-dmi-v1beta1.proto";
}

TEST_F(Dmi, AStockPythonMapperIsCalledOnlyWhenWhatItIsGivenChanges) {
  if (!std::filesystem::exists(stock_dmi_proto()))
    GTEST_SKIP() << "needs KubeEdge's DMI proto at " << stock_dmi_proto() << " (../shared/peers)";
  if (std::system("/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null") != 0 ||
      !std::filesystem::exists("/usr/bin/grpc_python_plugin"))
    GTEST_SKIP() << "needs python3-grpcio, python3-protobuf and protobuf-compiler-grpc";
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  ASSERT_EQ(api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devicemodels",
                json::parse(kModel))
                .first,
            201);
  ASSERT_EQ(api("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices",
                json::parse(device("py-1", "python", "sine", "25")))
                .first,
            201);
  std::string counts_file = (root_ / "counts.json").string();
  testing::Process mapper({"/usr/bin/python3", KEDGE_TEST_SOURCE_DIR "/interop/stock_dmi_mapper.py",
                           "--proto", stock_dmi_proto(), "--dmi-socket", dmi_socket(), "--socket",
                           (root_ / "python.sock").string(), "--protocol", "python", "--counts",
                           counts_file, "--cycle-ms", "200"},
                          (root_ / "mapper.log").string());
  auto counts = [&] {
    std::ifstream in(counts_file);
    std::stringstream ss;
    ss << in.rdbuf();
    json::error_code ec;
    auto v = json::parse(ss.str(), ec);
    return ec || !v.is_object() ? json::value(json::object{}) : v;
  };
  auto calls = [&](const char* rpc) -> int64_t {
    auto v = counts();
    auto* n = v.is_object() && v.as_object().contains("calls")
                  ? v.at("calls").as_object().if_contains(rpc)
                  : nullptr;
    return n ? n->to_number<int64_t>() : 0;
  };
  auto reports = [&]() -> int64_t {
    auto v = counts();
    return v.as_object().contains("sent") ? v.at("sent").at("reports").to_number<int64_t>() : 0;
  };
  // It registers (withData carries the device, or RegisterDevice does) and
  // its reports reach the Device's status in the cloud.
  ASSERT_TRUE(Harness::eventually([&] { return calls("MapperRegister") == 1; }, 20s))
      << json::serialize(counts());
  EXPECT_TRUE(Harness::eventually([&] { return reported("py-1", "setpoint") == "25"; }, 20s))
      << json::serialize(get_device("py-1"));
  EXPECT_TRUE(Harness::eventually([&] { return !reported("py-1", "temperature").empty(); }, 20s));
  EXPECT_TRUE(Harness::eventually([&] { return state("py-1") == "online"; }, 20s));
  auto devices = counts().at("devices");
  EXPECT_EQ(json::serialize(devices), R"(["default/py-1"])");
  // A steady period: every report changes the Device's status, none of it
  // is the mapper's business.
  int64_t reg0 = calls("RegisterDevice"), upd0 = calls("UpdateDevice"), rep0 = reports(),
          model0 = calls("UpdateDeviceModel");
  EXPECT_EQ(upd0, 0) << "the device's spec has not changed since it was given: "
                     << json::serialize(counts());
  std::this_thread::sleep_for(4s);
  EXPECT_GE(reports() - rep0, 8) << json::serialize(counts());
  EXPECT_EQ(calls("UpdateDevice"), upd0) << json::serialize(counts());
  EXPECT_EQ(calls("RegisterDevice"), reg0);
  EXPECT_EQ(calls("UpdateDeviceModel"), model0);
  // A new desired value is one UpdateDevice, and the mapper's value follows.
  auto d31 = json::parse(device("py-1", "python", "sine", "31"));
  ASSERT_EQ(api("PATCH", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/py-1",
                json::object{{"spec", d31.at("spec")}}, "application/merge-patch+json")
                .first,
            200);
  EXPECT_TRUE(Harness::eventually([&] { return reported("py-1", "setpoint") == "31"; }, 20s));
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(calls("UpdateDevice"), 1) << json::serialize(counts());
  // The edge asks the mapper for the device as it has it (GetDevice).
  auto [qs, live] =
      edge_->request("dmi", make_message("test", "dmi", "query", "device/default/py-1"), 5s);
  ASSERT_TRUE(qs);
  ASSERT_TRUE(live->content.is_object() && live->content.as_object().contains("device"))
      << json::serialize(live->content);
  EXPECT_EQ(live->content.at("device").at("metadata").at("name"), "py-1");
  EXPECT_EQ(calls("GetDevice"), 1);
  // The device goes: RemoveDevice, and its model, no longer used, goes too.
  ASSERT_EQ(
      api("DELETE", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/py-1").first,
      200);
  EXPECT_TRUE(Harness::eventually([&] { return calls("RemoveDevice") == 1; }, 20s))
      << json::serialize(counts());
  EXPECT_TRUE(Harness::eventually([&] { return calls("RemoveDeviceModel") == 1; }, 20s))
      << json::serialize(counts());
  EXPECT_EQ(calls("UpdateDevice"), 1);
  EXPECT_EQ(mapper.kill(SIGTERM), 0);
}

// A mapper's side written by hand: it can hang in RegisterDevice, as a
// mapper that dies mid-call.
class HangingMapper final : public pb::DeviceMapperService::Service {
 public:
  std::mutex mu;
  std::condition_variable cv;
  bool hang = true;
  std::vector<std::string> registered;
  grpc::Status RegisterDevice(grpc::ServerContext* ctx, const pb::RegisterDeviceRequest* req,
                              pb::RegisterDeviceResponse*) override {
    std::unique_lock lk(mu);
    while (hang && !ctx->IsCancelled()) cv.wait_for(lk, 20ms);
    if (hang) return {grpc::StatusCode::UNAVAILABLE, "went away"};
    registered.push_back(req->device().name());
    return grpc::Status::OK;
  }
  grpc::Status CreateDeviceModel(grpc::ServerContext*, const pb::CreateDeviceModelRequest*,
                                 pb::CreateDeviceModelResponse*) override {
    return grpc::Status::OK;
  }
};

TEST_F(Dmi, TheEdgeRefusesBadInputAndOutlastsAMapperThatDropsACall) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  auto stub = pb::DeviceManagerService::NewStub(
      grpc::CreateChannel("unix:" + dmi_socket(), grpc::InsecureChannelCredentials()));
  auto reg = [&](const std::string& protocol, const std::string& address, bool with_data,
                 pb::MapperRegisterResponse* resp = nullptr) {
    pb::MapperRegisterRequest req;
    req.set_withdata(with_data);
    req.mutable_mapper()->set_name(protocol + "-test");
    req.mutable_mapper()->set_protocol(protocol);
    req.mutable_mapper()->set_address(address);
    pb::MapperRegisterResponse r;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    return stub->MapperRegister(&ctx, req, resp ? resp : &r);
  };
  auto s = reg("", "/x.sock", true);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "mapper.protocol is required");
  s = reg("modbus", "", true);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A protocol no device uses: welcome, with nothing to do.
  pb::MapperRegisterResponse resp;
  EXPECT_TRUE(reg("zigbee", (root_ / "zigbee.sock").string(), true, &resp).ok());
  EXPECT_EQ(resp.devicelist_size(), 0);
  // Reports on unknown devices, or without values.
  {
    pb::ReportDeviceStatusRequest req;
    req.set_devicename("ghost");
    auto* t = req.mutable_reporteddevice()->add_twins();
    t->set_propertyname("temperature");
    t->mutable_reported()->set_value("1");
    pb::ReportDeviceStatusResponse r;
    grpc::ClientContext ctx;
    auto st = stub->ReportDeviceStatus(&ctx, req, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
    EXPECT_EQ(st.error_message(), "device \"ghost\" is not a member of this node");
  }
  {
    pb::ReportDeviceStatusRequest req;
    req.set_devicename("ghost");
    pb::ReportDeviceStatusResponse r;
    grpc::ClientContext ctx;
    EXPECT_EQ(stub->ReportDeviceStatus(&ctx, req, &r).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  // A mapper that hangs in RegisterDevice and then goes away.
  std::string sock = (root_ / "hang.sock").string();
  auto serve = [&](HangingMapper& svc) {
    std::filesystem::remove(sock);
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + sock, grpc::InsecureServerCredentials());
    b.RegisterService(&svc);
    return b.BuildAndStart();
  };
  HangingMapper first;
  auto server = serve(first);
  ASSERT_TRUE(server);
  ASSERT_TRUE(reg("virtual", sock, false).ok());
  create("sim-3");
  std::this_thread::sleep_for(300ms);  // the call is in flight, hanging
  server->Shutdown(std::chrono::system_clock::now());
  server.reset();
  HangingMapper second;
  second.hang = false;
  server = serve(second);
  ASSERT_TRUE(server);
  EXPECT_TRUE(Harness::eventually(
      [&] {
        std::lock_guard lk(second.mu);
        return second.registered == std::vector<std::string>{"sim-3"};
      },
      15s));
  EXPECT_NE(edge_->metrics_text().find("kedge_dmi_call_errors_total"), std::string::npos);
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace kedge
