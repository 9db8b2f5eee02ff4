// Devices under load, with a cloud and an edge in kernels of their own over
// the real mTLS channel (cloudhub, apiserver, devicecontroller / edgehub,
// metamanager, twin, dmi, the Modbus mapper plugin):
//
// 1. Twin reports per second from a mapper to the cloud: REPORTS
//    ReportDeviceStatus calls over DMI (gRPC, 4 callers) spread over DEVICES
//    devices, each a new value; timed until the edge accepted them all, and
//    until every Device's status in the cloud shows its last value. Baseline
//    in the same run: the same number of status patches written straight
//    into the API (what the cloud side of each report costs at least).
// 2. End-to-end latency of a reading: a value written into a Modbus input
//    register (kedge_modbus_sim, a libmodbus server) until it is in the
//    edge's twin and until it is in the Device's status in the cloud, with
//    collect and report cycles of CYCLE_MS; ROUNDS rounds.
//
// edgehub's upstream budget is QPS messages/s (KubeEdge's default, 30, unless
// given); a device's newer report replaces its older one still queued.
//
// usage: kedge_device_bench [DEVICES] [REPORTS] [ROUNDS] [CYCLE_MS] [QPS]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <thread>

#include "dmi/v1beta1/api.grpc.pb.h"
#include "kedge/testing/harness.h"

namespace {

using namespace std::chrono_literals;
using kedge::testing::Harness;
using Clock = std::chrono::steady_clock;
namespace json = boost::json;
namespace fs = std::filesystem;
namespace pb = ::v1beta1;

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Env {
  fs::path root;
  uint16_t port = Harness::free_port(), https = Harness::free_port(), api = Harness::free_port();
  std::unique_ptr<Harness> cloud, edge;

  std::pair<int, json::value> call(const std::string& method, const std::string& target,
                                   json::value body = nullptr,
                                   const std::string& ct = "application/json") {
    auto [s, r] = cloud->request(
        "apiserver",
        kedge::make_message(
            "bench", "", "request", "",
            json::object{
                {"method", method}, {"target", target}, {"body", body}, {"contentType", ct}}),
        10s);
    if (!s || !r) return {0, nullptr};
    auto& o = r->content.as_object();
    return {static_cast<int>(o.at("code").as_int64()), o.at("body")};
  }
  std::string reported(const std::string& device, const std::string& prop) {
    auto [code, d] =
        call("GET", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/" + device);
    if (code != 200) return {};
    auto* st = d.as_object().if_contains("status");
    auto* tw = st && st->is_object() ? st->as_object().if_contains("twins") : nullptr;
    if (!tw || !tw->is_array()) return {};
    for (auto& t : tw->as_array())
      if (t.at("propertyName") == prop.c_str() && t.as_object().contains("reported"))
        return std::string(t.at("reported").at("value").as_string());
    return {};
  }
  std::string at_edge(const std::string& device, const std::string& prop) {
    auto [s, r] = edge->request(
        "twin", kedge::make_message("bench", "twin", "get", "device/" + device + "/twin/get"), 5s);
    if (!s || !r || !r->content.is_object()) return {};
    auto* tw = r->content.as_object().if_contains("twin");
    if (!tw || !tw->as_object().contains(prop)) return {};
    auto* a = tw->at(prop).as_object().if_contains("actual");
    return a ? std::string(a->at("value").as_string()) : std::string();
  }
};

}  // namespace

int main(int argc, char** argv) {
  int devices = argc > 1 ? std::atoi(argv[1]) : 10;
  int reports = argc > 2 ? std::atoi(argv[2]) : 2000;
  int rounds = argc > 3 ? std::atoi(argv[3]) : 30;
  int cycle_ms = argc > 4 ? std::atoi(argv[4]) : 50;
  int qps = argc > 5 ? std::atoi(argv[5]) : 30;
  Env e;
  e.root = fs::temp_directory_path() / ("kedge-device-bench-" + std::to_string(::getpid()));
  fs::create_directories(e.root / "cloud");
  fs::create_directories(e.root / "edge");
  uint16_t mb = Harness::free_port();
  e.cloud = std::make_unique<Harness>(
      "[agent]\nnode_name = \"cloud\"\nlog_level = \"warn\"\nworker_threads = 1\nplugin_dirs = "
      "[\"" KEDGE_PLUGIN_DIR
      "\"]\n[[plugin]]\nname = \"cloudhub\"\n[plugin.config]\naddress = \"127.0.0.1\"\nport = " +
          std::to_string(e.port) + "\nhttps_port = " + std::to_string(e.https) +
          "\n[[plugin]]\nname = \"apiserver\"\n[plugin.config]\naddress = \"127.0.0.1\"\nport = " +
          std::to_string(e.api) + "\n[[plugin]]\nname = \"devicecontroller\"\n",
      e.root / "cloud");
  if (!e.cloud->start()) return std::fprintf(stderr, "cloud did not start\n"), 1;
  e.edge = std::make_unique<Harness>(
      "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nworker_threads = 1\nplugin_dirs = "
      "[\"" KEDGE_PLUGIN_DIR
      "\"]\n[[plugin]]\nname = \"edgehub\"\n[plugin.config]\nserver = \"127.0.0.1:" +
          std::to_string(e.port) + "\"\nhttp_server = \"127.0.0.1:" + std::to_string(e.https) +
          "\"\ntoken_file = \"" + (e.root / "cloud/data/cloudhub/token").string() +
          "\"\nmessage_qps = " + std::to_string(qps) +
          "\nmessage_burst = " + std::to_string(2 * qps) +
          "\n[[plugin]]\nname = \"metamanager\"\n[[plugin]]\nname = \"twin\"\n[[plugin]]\nname = "
          "\"dmi\"\n[[plugin]]\nname = \"dmi-grpc\"\n[plugin.config]\nsocket = \"dmi.sock\"\n"
          "[[plugin]]\nname = \"modbus-mapper\"\n",
      e.root / "edge");
  if (!e.edge->start()) return std::fprintf(stderr, "edge did not start\n"), 1;
  if (!Harness::eventually(
          [&] {
            return e.edge->metrics_text().find("kedge_edgehub_connected 1\n") != std::string::npos;
          },
          20s))
    return std::fprintf(stderr, "edge did not connect\n"), 1;

  // ---- 1. reports per second ----
  e.call(
      "POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devicemodels",
      json::parse(
          R"({"metadata":{"name":"meter"},"spec":{"properties":[{"name":"count","type":"INT","accessMode":"ReadOnly"}]}})"));
  for (int i = 0; i < devices; ++i)
    e.call("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices",
           json::parse(R"({"metadata":{"name":"m)" + std::to_string(i) +
                       R"("},"spec":{"deviceModelRef":{"name":"meter"},"nodeName":"edge-1",
                         "protocol":{"protocolName":"bench"},"properties":[{"name":"count"}]}})"));
  auto stub = pb::DeviceManagerService::NewStub(grpc::CreateChannel(
      "unix:" + (e.root / "edge/data/dmi.sock").string(), grpc::InsecureChannelCredentials()));
  auto report = [&](int dev, int value) {
    pb::ReportDeviceStatusRequest req;
    req.set_devicename("m" + std::to_string(dev));
    auto* t = req.mutable_reporteddevice()->add_twins();
    t->set_propertyname("count");
    t->mutable_reported()->set_value(std::to_string(value));
    (*t->mutable_reported()->mutable_metadata())["type"] = "int";
    pb::ReportDeviceStatusResponse resp;
    grpc::ClientContext ctx;
    return stub->ReportDeviceStatus(&ctx, req, &resp);
  };
  // Every device is at the edge before the clock starts.
  for (int i = 0; i < devices; ++i)
    if (!Harness::eventually([&] { return report(i, 0).ok(); }, 20s))
      return std::fprintf(stderr, "device m%d did not reach the edge\n", i), 1;
  if (!Harness::eventually(
          [&] { return e.reported("m" + std::to_string(devices - 1), "count") == "0"; }, 20s))
    return std::fprintf(stderr, "first reports did not reach the cloud\n"), 1;

  // Baseline: the same number of status patches straight into the API.
  auto b0 = Clock::now();
  for (int i = 0; i < reports; ++i) {
    int dev = i % devices;
    e.call("PATCH",
           "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/m" + std::to_string(dev) +
               "/status",
           json::parse(R"({"status":{"twins":[{"propertyName":"count","reported":{"value":")" +
                       std::to_string(-i - 1) + R"(","metadata":{"type":"int"}}}]}})"),
           "application/merge-patch+json");
  }
  double baseline = reports / secs(Clock::now() - b0);

  std::atomic<int> next{0}, failed{0};
  auto t0 = Clock::now();
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int i; (i = next++) < reports;)
        if (!report(i % devices, i + 1).ok()) ++failed;
    });
  for (auto& t : callers) t.join();
  auto accepted = Clock::now();
  bool all = true;
  for (int d = 0; d < devices; ++d) {
    int last = reports - 1 - ((reports - 1 - d) % devices) + 1;  // last value sent to device d
    all = all &&
          Harness::eventually(
              [&] { return e.reported("m" + std::to_string(d), "count") == std::to_string(last); },
              120s);
  }
  auto arrived = Clock::now();
  auto metric = [&](const char* name) {
    std::string text = e.edge->metrics_text();
    size_t at = text.find(std::string("\n") + name + " ");
    return at == std::string::npos ? 0LL : std::atoll(text.c_str() + at + std::strlen(name) + 2);
  };
  std::printf(
      "twin reports, %d devices, %d reports over DMI (4 gRPC callers), %d failed, edgehub "
      "budget %d msg/s:\n",
      devices, reports, failed.load(), qps);
  std::printf("  accepted by the edge (stored, queued for the cloud)  %8.0f reports/s\n",
              reports / secs(accepted - t0));
  std::printf("  in the cloud's Device status (end to end)            %8.0f reports/s%s\n",
              reports / secs(arrived - t0), all ? "" : "  (NOT ALL ARRIVED)");
  std::printf("  baseline: status patches straight into the API       %8.0f patches/s\n", baseline);
  std::printf("  end to end / baseline                                %8.2f\n",
              reports / secs(arrived - t0) / baseline);
  std::printf(
      "  every device's last value in the cloud after         %8.2f s (%.2f s after the last "
      "report)\n",
      secs(arrived - t0), secs(arrived - accepted));
  std::printf("  upstream messages sent / superseded while queued     %8lld / %lld\n",
              metric("kedge_edgehub_upstream_total"),
              metric("kedge_edgehub_reports_superseded_total"));

  // ---- 2. latency of a reading: Modbus register -> edge -> cloud ----
  std::string sim = std::string(KEDGE_BIN_DIR "/kedge_modbus_sim ") + std::to_string(mb) + " > " +
                    (e.root / "modbus.log").string() + " 2>&1";
  FILE* ctl = ::popen(sim.c_str(), "w");
  if (!ctl) return std::fprintf(stderr, "cannot start kedge_modbus_sim\n"), 1;
  std::fprintf(ctl, "input 0 1\n");
  std::fflush(ctl);
  std::string cycle_ns = std::to_string(int64_t{cycle_ms} * 1'000'000);
  e.call(
      "POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devicemodels",
      json::parse(
          R"({"metadata":{"name":"gauge"},"spec":{"properties":[{"name":"level","type":"INT","accessMode":"ReadOnly"}]}})"));
  e.call(
      "POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices",
      json::parse(
          R"({"metadata":{"name":"gauge-1"},"spec":{"deviceModelRef":{"name":"gauge"},"nodeName":"edge-1",
           "protocol":{"protocolName":"modbus","configData":{"ip":"127.0.0.1","port":)" +
          std::to_string(mb) + R"(}},
           "properties":[{"name":"level","collectCycle":)" +
          cycle_ns + R"(,"reportCycle":)" + cycle_ns + R"(,"reportToCloud":true,
             "visitors":{"protocolName":"modbus","configData":{"register":"InputRegister","offset":0}}}]}})"));
  if (!Harness::eventually([&] { return e.reported("gauge-1", "level") == "1"; }, 30s))
    return std::fprintf(stderr, "the Modbus reading did not arrive\n"), 1;
  std::vector<double> edge_ms, cloud_ms;
  std::mt19937 rng(7);
  for (int r = 0; r < rounds; ++r) {
    std::string v = std::to_string(100 + r);
    auto s0 = Clock::now();
    std::fprintf(ctl, "input 0 %d\n", 100 + r);
    std::fflush(ctl);
    double at_edge = -1;
    while (Clock::now() - s0 < 10s) {
      if (at_edge < 0 && e.at_edge("gauge-1", "level") == v) at_edge = ms(Clock::now() - s0);
      if (e.reported("gauge-1", "level") == v) break;
      std::this_thread::sleep_for(1ms);
    }
    cloud_ms.push_back(ms(Clock::now() - s0));
    edge_ms.push_back(at_edge < 0 ? cloud_ms.back() : at_edge);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (cycle_ms + 1)));
  }
  auto show = [](const char* what, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    std::printf("  %-40s mean %6.1f ms  median %6.1f ms  p90 %6.1f ms  max %6.1f ms\n", what, mean,
                v[v.size() / 2], v[v.size() * 9 / 10], v.back());
  };
  std::printf("a Modbus reading, collect and report cycles of %d ms, %d rounds:\n", cycle_ms,
              rounds);
  show("register -> the edge's twin", edge_ms);
  show("register -> the Device's status (cloud)", cloud_ms);
  e.edge.reset();
  e.cloud.reset();
  ::pclose(ctl);  // the simulator exits when its input closes
  fs::remove_all(e.root);
  return 0;
}
