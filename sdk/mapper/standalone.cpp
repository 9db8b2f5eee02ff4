// A mapper as its own process: DMI v1beta1 over gRPC on Unix sockets.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include "dmi/v1beta1/api.grpc.pb.h"
#include "dmi_convert.h"
#include "kedge/mapper/mapper.h"
#include "kedge/mapper/service.h"

namespace kedge::mapper {

namespace json = boost::json;
namespace pb = ::v1beta1;
namespace po = boost::program_options;
using namespace std::chrono_literals;

namespace {

std::chrono::system_clock::time_point deadline(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

// Reports to the edge's DeviceManagerService.
class GrpcUplink final : public Uplink {
 public:
  GrpcUplink(const std::string& socket, std::shared_ptr<spdlog::logger> log)
      : stub_(pb::DeviceManagerService::NewStub(
            grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()))),
        log_(std::move(log)) {}

  Status report_status(const Device& d, const std::vector<Reading>& twins) override {
    pb::ReportDeviceStatusRequest req;
    req.set_devicename(d.name);
    req.set_devicenamespace(d.ns);
    auto* st = req.mutable_reporteddevice();
    for (auto& r : twins) {
      auto* t = st->add_twins();
      t->set_propertyname(r.property);
      t->mutable_reported()->set_value(r.value);
      auto& md = *t->mutable_reported()->mutable_metadata();
      md["timestamp"] = std::to_string(r.timestamp_ms);
      md["type"] = r.type;
      if (!r.observed_desired.empty()) t->mutable_observeddesired()->set_value(r.observed_desired);
    }
    pb::ReportDeviceStatusResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline(5s));
    return check(stub_->ReportDeviceStatus(&ctx, req, &resp));
  }

  Status report_state(const Device& d, const std::string& state) override {
    pb::ReportDeviceStatesRequest req;
    req.set_devicename(d.name);
    req.set_devicenamespace(d.ns);
    req.set_state(state);
    pb::ReportDeviceStatesResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline(5s));
    return check(stub_->ReportDeviceStates(&ctx, req, &resp));
  }

  grpc::Status register_mapper(const pb::MapperRegisterRequest& req,
                               pb::MapperRegisterResponse& resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline(10s));
    return stub_->MapperRegister(&ctx, req, &resp);
  }

  // Set when the edge seems to have gone away: the mapper registers again.
  std::atomic<bool> lost{true};

 private:
  Status check(const grpc::Status& s) {
    if (s.ok()) return {};
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) lost = true;
    Code c = s.error_code() == grpc::StatusCode::NOT_FOUND          ? Code::kNotFound
             : s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? Code::kInvalidArgument
                                                                    : Code::kUnavailable;
    return {c, "edge: " + s.error_message()};
  }
  std::unique_ptr<pb::DeviceManagerService::Stub> stub_;
  std::shared_ptr<spdlog::logger> log_;
};

grpc::Status to_grpc(const Status& s) {
  if (s) return grpc::Status::OK;
  return {s.code() == Code::kInvalidArgument ? grpc::StatusCode::INVALID_ARGUMENT
                                             : grpc::StatusCode::INTERNAL,
          s.message()};
}

// What the edge calls on this mapper.
class MapperService final : public pb::DeviceMapperService::Service {
 public:
  explicit MapperService(Engine& e) : e_(e) {}
  grpc::Status RegisterDevice(grpc::ServerContext*, const pb::RegisterDeviceRequest* req,
                              pb::RegisterDeviceResponse* resp) override {
    resp->set_devicename(req->device().name());
    resp->set_devicenamespace(req->device().namespace_());
    return to_grpc(e_.upsert_device(dmi::device_from_proto(req->device())));
  }
  grpc::Status UpdateDevice(grpc::ServerContext*, const pb::UpdateDeviceRequest* req,
                            pb::UpdateDeviceResponse*) override {
    return to_grpc(e_.upsert_device(dmi::device_from_proto(req->device())));
  }
  grpc::Status RemoveDevice(grpc::ServerContext*, const pb::RemoveDeviceRequest* req,
                            pb::RemoveDeviceResponse*) override {
    e_.remove_device(ns(req->devicenamespace()), req->devicename());
    return grpc::Status::OK;
  }
  grpc::Status CreateDeviceModel(grpc::ServerContext*, const pb::CreateDeviceModelRequest* req,
                                 pb::CreateDeviceModelResponse* resp) override {
    resp->set_devicemodelname(req->model().name());
    resp->set_devicemodelnamespace(req->model().namespace_());
    return to_grpc(e_.upsert_model(dmi::model_from_proto(req->model())));
  }
  grpc::Status UpdateDeviceModel(grpc::ServerContext*, const pb::UpdateDeviceModelRequest* req,
                                 pb::UpdateDeviceModelResponse*) override {
    return to_grpc(e_.upsert_model(dmi::model_from_proto(req->model())));
  }
  grpc::Status RemoveDeviceModel(grpc::ServerContext*, const pb::RemoveDeviceModelRequest* req,
                                 pb::RemoveDeviceModelResponse*) override {
    e_.remove_model(ns(req->modelnamespace()), req->modelname());
    return grpc::Status::OK;
  }
  grpc::Status GetDevice(grpc::ServerContext*, const pb::GetDeviceRequest* req,
                         pb::GetDeviceResponse* resp) override {
    std::string n = ns(req->devicenamespace());
    json::value obj = e_.device_object(n, req->devicename());
    if (obj.is_null())
      return {grpc::StatusCode::NOT_FOUND, "no device " + n + "/" + req->devicename()};
    *resp->mutable_device() = dmi::device_to_proto(obj);
    // The last readings as the device's status.
    if (auto snap = e_.snapshot(n, req->devicename()))
      if (auto* props = snap->if_contains("properties"); props && props->is_array())
        for (auto& p : props->as_array()) {
          auto& o = p.as_object();
          if (!o.contains("value")) continue;
          auto* t = resp->mutable_device()->mutable_status()->add_twins();
          t->set_propertyname(std::string(o.at("name").as_string()));
          t->mutable_reported()->set_value(std::string(o.at("value").as_string()));
          (*t->mutable_reported()->mutable_metadata())["type"] =
              std::string(o.at("type").as_string());
          (*t->mutable_reported()->mutable_metadata())["timestamp"] =
              json::serialize(o.at("timestamp"));
        }
    return grpc::Status::OK;
  }

 private:
  static std::string ns(const std::string& n) { return n.empty() ? "default" : n; }
  Engine& e_;
};

}  // namespace

int run_standalone(int argc, char** argv, MapperInfo info) {
  std::string dmi_socket, socket, http, level, name;
  po::options_description opts("usage: " + std::string(argv[0]) + " [options]\n\n" + info.name +
                               " (protocol " + info.protocol +
                               "), a kedge mapper speaking DMI "
                               "v1beta1\n\noptions");
  opts.add_options()("help,h", "show this help")("version", "print the version")(
      "dmi-socket", po::value(&dmi_socket)->default_value("/etc/kubeedge/dmi.sock"),
      "the edge's DeviceManagerService socket")(
      "socket", po::value(&socket)->default_value("/etc/kubeedge/" + info.protocol + ".sock"),
      "this mapper's DeviceMapperService socket")(
      "http", po::value(&http)->default_value(""),
      "Device-as-a-Service on host:port (empty: not served)")(
      "log-level", po::value(&level)->default_value("info"), "trace, debug, info, warn, error")(
      "name", po::value(&name)->default_value(info.name), "the mapper's name at the edge");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n" << opts << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << info.name << " " << info.version << "\n";
    return 0;
  }
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    std::cerr << "error: --log-level: unknown level '" << level << "'\n";
    return 2;
  }
  info.name = name;
  auto log = spdlog::stderr_color_mt(info.name);
  log->set_level(lvl);
  namespace fs = std::filesystem;
  std::error_code ec;
  socket = fs::absolute(socket, ec).string();
  dmi_socket = fs::absolute(dmi_socket, ec).string();

  // SIGINT/SIGTERM are taken by sigtimedwait below, in this thread only.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  MetricsRegistry metrics;
  GrpcUplink uplink(dmi_socket, log);
  Engine engine(info, uplink, log, metrics);
  MapperService service(engine);

  fs::create_directories(fs::path(socket).parent_path(), ec);
  fs::remove(socket, ec);  // a stale socket of an earlier run
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    log->error("cannot serve DeviceMapperService on {}", socket);
    return 1;
  }
  log->info("{} {} serving DeviceMapperService on {}", info.name, info.version, socket);

  boost::asio::io_context io;
  std::unique_ptr<DeviceService> daas;
  std::thread io_thread;
  auto work = boost::asio::make_work_guard(io);
  if (!http.empty()) {
    daas = std::make_unique<DeviceService>(engine, io.get_executor(), &metrics);
    if (Status s = daas->listen(http); !s) {
      log->error("{}", s.message());
      server->Shutdown(deadline(1s));
      return 1;
    }
    log->info("Device-as-a-Service on http://{}", http);
    io_thread = std::thread([&io] { io.run(); });
  }

  // Register (again whenever the edge seems gone) until told to stop.
  auto backoff = 500ms;
  int attempts = 0;
  for (;;) {
    if (uplink.lost) {
      pb::MapperRegisterRequest req;
      req.set_withdata(true);
      auto* mi = req.mutable_mapper();
      mi->set_name(info.name);
      mi->set_version(info.version);
      mi->set_api_version("v1beta1");
      mi->set_protocol(info.protocol);
      mi->set_address(socket);
      mi->set_state("running");
      pb::MapperRegisterResponse resp;
      grpc::Status s = uplink.register_mapper(req, resp);
      if (s.ok()) {
        uplink.lost = false;
        std::vector<json::value> models, devices;
        for (auto& m : resp.modellist()) models.push_back(dmi::model_from_proto(m));
        for (auto& d : resp.devicelist()) devices.push_back(dmi::device_from_proto(d));
        engine.reset(models, devices);
        log->info("registered with the edge at {}: {} device(s), {} model(s)", dmi_socket,
                  devices.size(), models.size());
        backoff = 500ms;
        attempts = 0;
      } else {
        if (attempts++ % 10 == 0)
          log->warn("cannot register with the edge at {}: {}; retrying", dmi_socket,
                    s.error_message());
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, 10s);
      }
    }
    timespec ts{0, 0};
    auto wait = uplink.lost ? backoff : 1000ms;
    ts.tv_sec = wait.count() / 1000;
    ts.tv_nsec = (wait.count() % 1000) * 1000000;
    int sig = sigtimedwait(&sigs, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      log->info("signal {}: stopping", sig);
      break;
    }
  }
  server->Shutdown(deadline(2s));
  engine.stop();
  if (daas) daas->stop();
  work.reset();
  io.stop();
  if (io_thread.joinable()) io_thread.join();
  fs::remove(socket, ec);
  return 0;
}

}  // namespace kedge::mapper
