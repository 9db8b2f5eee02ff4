// dmi-grpc: DMI v1beta1 over gRPC for mapper processes (docs/dmi.md).
//
// * Serves DeviceManagerService on a Unix socket (default
//   /etc/kubeedge/dmi.sock): MapperRegister, ReportDeviceStatus,
//   ReportDeviceStates, as KubeEdge's edge does.
// * Stands in for each registered mapper towards the `dmi` plugin
//   (kedge/mapper/contract.h): it registers the mapper there with itself as
//   the module, turns dmi's calls (route.group: the mapper's protocol) into
//   the mapper's DeviceMapperService calls, and its reports into dmi's
//   "report" and "state" requests, whose verdict is the gRPC status.
// * Registered mappers are kept in <data_dir>/dmi.db, so after an edge
//   restart their devices flow again without the mapper re-registering.
//
// Only this plugin maps gRPC and protobuf: a gateway whose mappers run as
// plugins does without it.
#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>

#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "contracts/modules.h"
#include "dmi/v1beta1/api.grpc.pb.h"
#include "dmi_convert.h"
#include "kedge/common/json.h"
#include "kedge/common/sqlite.h"
#include "kedge/mapper/contract.h"
#include "kedge/plugin.h"
#include "kedge/settings.h"

namespace {

namespace json = boost::json;
namespace pb = ::v1beta1;
namespace contract = kedge::mapper::contract;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

const std::vector<std::string> kSchema = {
    "CREATE TABLE IF NOT EXISTS devicemapper (name TEXT NOT NULL, protocol TEXT NOT NULL "
    "PRIMARY KEY, address TEXT NOT NULL, info TEXT NOT NULL);",
};

std::string ns_or_default(std::string ns) { return ns.empty() ? "default" : ns; }

grpc::Status to_grpc(const Status& s) {
  if (s) return grpc::Status::OK;
  grpc::StatusCode c = grpc::StatusCode::INTERNAL;
  switch (s.code()) {
    case Code::kInvalidArgument: c = grpc::StatusCode::INVALID_ARGUMENT; break;
    case Code::kNotFound: c = grpc::StatusCode::NOT_FOUND; break;
    case Code::kFull: c = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case Code::kTimeout: c = grpc::StatusCode::DEADLINE_EXCEEDED; break;
    case Code::kUnavailable: c = grpc::StatusCode::UNAVAILABLE; break;
    default: break;
  }
  return {c, s.message()};
}

Status from_grpc(const grpc::Status& gs) {
  if (gs.ok()) return {};
  Code code = gs.error_code() == grpc::StatusCode::INVALID_ARGUMENT    ? Code::kInvalidArgument
              : gs.error_code() == grpc::StatusCode::NOT_FOUND         ? Code::kNotFound
              : gs.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? Code::kTimeout
                                                                       : Code::kUnavailable;
  return {code, gs.error_message().empty() ? "gRPC code " + std::to_string(gs.error_code())
                                           : gs.error_message()};
}

// One mapper process, by protocol.
struct Mapper {
  std::string name, version, address;
  std::unique_ptr<pb::DeviceMapperService::Stub> stub;
};

using Stub = pb::DeviceMapperService::Stub::async_interface;
template <class Req, class Resp>
using AsyncMethod = void (Stub::*)(grpc::ClientContext*, const Req*, Resp*,
                                   std::function<void(grpc::Status)>);

class DmiGrpc;

// The gRPC face: handlers hand their work to the plugin's strand and wait
// (bounded, and cut short when the plugin stops).
class ManagerService final : public pb::DeviceManagerService::Service {
 public:
  explicit ManagerService(DmiGrpc& d) : d_(d) {}
  grpc::Status MapperRegister(grpc::ServerContext*, const pb::MapperRegisterRequest* req,
                              pb::MapperRegisterResponse* resp) override;
  grpc::Status ReportDeviceStatus(grpc::ServerContext*, const pb::ReportDeviceStatusRequest* req,
                                  pb::ReportDeviceStatusResponse*) override;
  grpc::Status ReportDeviceStates(grpc::ServerContext*, const pb::ReportDeviceStatesRequest* req,
                                  pb::ReportDeviceStatesResponse*) override;

 private:
  DmiGrpc& d_;
};

struct Settings {
  std::string socket;
  int64_t call_timeout_ms = 0;
  std::string dmi;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    {"socket", &Settings::socket, "\"/etc/kubeedge/dmi.sock\"",
     "Unix socket of DeviceManagerService (relative: under data_dir)."},
    {"call_timeout_ms", &Settings::call_timeout_ms, "4000",
     "Deadline of each gRPC call to a mapper (keep it below dmi's call_timeout_ms).", false, 100,
     600000},
    {contract::kDmiKey, &Settings::dmi, "\"dmi\"",
     "The dmi module the mapper processes are registered with."},
};
constexpr auto kConfig = kedge::config_keys(kSettings);

class DmiGrpc final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    namespace fs = std::filesystem;
    auto set = kedge::read_settings(kSettings, cfg);
    socket_ = set.socket;
    if (fs::path(socket_).is_relative()) socket_ = (ctx.data_dir() / socket_).string();
    call_timeout_ = std::chrono::milliseconds(set.call_timeout_ms);
    dmi_ = set.dmi;
    auto db = kedge::sqlite::Db::open((ctx.data_dir() / "dmi.db").string());
    if (!db.status) return db.status;
    db_ = std::move(db.value);
    if (Status s = db_->migrate("dmi", kSchema); !s) return s;
    return {};
  }

  Status start() override {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(fs::path(socket_).parent_path(), ec);
    fs::remove(socket_, ec);  // stale, from an earlier run
    service_ = std::make_unique<ManagerService>(*this);
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    b.RegisterService(service_.get());
    grpc::ResourceQuota quota("kedge-dmi");
    quota.SetMaxThreads(8);
    b.SetResourceQuota(quota);
    server_ = b.BuildAndStart();
    if (!server_) return {Code::kUnavailable, "cannot serve DMI on " + socket_};
    log_->info("DeviceManagerService (DMI v1beta1) on {}", socket_);
    // Mapper processes registered before: dmi gets them again (their
    // devices come as calls), unless a mapper plugin has the protocol.
    auto sel = db_->prepare("SELECT name, protocol, address, info FROM devicemapper");
    if (!sel.status) return sel.status;
    while (sel.value.step().row) {
      pb::MapperInfo info;
      info.ParseFromString(sel.value.text(3));
      std::string protocol = sel.value.text(1);
      add(sel.value.text(0), protocol, info.version(), sel.value.text(2));
      log_->info("mapper {} ({}) at {} known from before", sel.value.text(0), protocol,
                 sel.value.text(2));
    }
    register_all(true);
    return {};
  }

  Status stop() override {
    stopping_ = true;
    // Calls in flight end now; their callbacks must be done before this
    // plugin goes (they post to it only while alive_ is).
    {
      std::lock_guard lk(calls_->mu);
      for (auto* c : calls_->in_flight) c->TryCancel();
    }
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard lk(calls_->mu);
        if (calls_->in_flight.empty()) break;
      }
      std::this_thread::sleep_for(10ms);
    }
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
    server_.reset();
    alive_.reset();
    return {};
  }

  // dmi's calls for one of the mappers behind this plugin.
  void on_message(const MessagePtr& m) override {
    if (m->is_response()) return;
    const std::string& op = m->route.operation;
    if (op == contract::op::kRegister) return register_all(false);  // dmi restarted
    auto it = mappers_.find(m->route.group);
    if (it == mappers_.end())
      return answer(m, {Code::kUnavailable, "no mapper process for protocol '" + m->route.group +
                                                "' is registered here"});
    Mapper& mp = it->second;
    if (op == contract::op::kQuery) return get_device(mp, m);
    const std::string& r = m->route.resource;
    size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
    if (b == std::string::npos) return answer(m, kedge::invalid_argument("bad resource " + r));
    std::string ns = r.substr(0, a), kind = r.substr(a + 1, b - a - 1), name = r.substr(b + 1);
    auto done = [this, m](Status s, const auto&) { answer(m, s); };
    bool del = op == contract::op::kDelete, ins = op == contract::op::kInsert;
    if (kind == contract::kDeviceModel) {
      if (del) {
        pb::RemoveDeviceModelRequest q;
        q.set_modelname(name);
        q.set_modelnamespace(ns);
        return call<pb::RemoveDeviceModelRequest, pb::RemoveDeviceModelResponse>(
            mp, std::move(q), &Stub::RemoveDeviceModel, done);
      }
      if (ins) {
        pb::CreateDeviceModelRequest q;
        *q.mutable_model() = kedge::dmi::model_to_proto(m->content);
        return call<pb::CreateDeviceModelRequest, pb::CreateDeviceModelResponse>(
            mp, std::move(q), &Stub::CreateDeviceModel, done);
      }
      pb::UpdateDeviceModelRequest q;
      *q.mutable_model() = kedge::dmi::model_to_proto(m->content);
      return call<pb::UpdateDeviceModelRequest, pb::UpdateDeviceModelResponse>(
          mp, std::move(q), &Stub::UpdateDeviceModel, done);
    }
    if (kind != contract::kDevice)
      return answer(m, kedge::invalid_argument("unknown resource type " + kind));
    if (del) {
      pb::RemoveDeviceRequest q;
      q.set_devicename(name);
      q.set_devicenamespace(ns);
      return call<pb::RemoveDeviceRequest, pb::RemoveDeviceResponse>(mp, std::move(q),
                                                                     &Stub::RemoveDevice, done);
    }
    if (ins) {
      pb::RegisterDeviceRequest q;
      *q.mutable_device() = kedge::dmi::device_to_proto(m->content);
      return call<pb::RegisterDeviceRequest, pb::RegisterDeviceResponse>(
          mp, std::move(q), &Stub::RegisterDevice, done);
    }
    pb::UpdateDeviceRequest q;
    *q.mutable_device() = kedge::dmi::device_to_proto(m->content);
    call<pb::UpdateDeviceRequest, pb::UpdateDeviceResponse>(mp, std::move(q), &Stub::UpdateDevice,
                                                            done);
  }

  // ---- called on the strand by the gRPC face ----
  void register_mapper(const pb::MapperRegisterRequest& req,
                       std::shared_ptr<pb::MapperRegisterResponse> resp,
                       std::function<void(Status)> done) {
    const auto& mi = req.mapper();
    std::string address = mi.address();
    if (address.rfind("unix://", 0) == 0) address = address.substr(7);
    if (address.rfind("unix:", 0) == 0) address = address.substr(5);
    if (mi.protocol().empty() || address.empty())
      return done(kedge::invalid_argument(
          mi.protocol().empty() ? "mapper.protocol is required"
                                : "mapper.address (the mapper's socket) is required"));
    std::string name = mi.name().empty() ? mi.protocol() + "-mapper" : mi.name();
    add(name, mi.protocol(), mi.version(), address);
    auto up = db_->prepare("INSERT OR REPLACE INTO devicemapper VALUES(?, ?, ?, ?)");
    if (up.status) {
      up.value.bind(1, name)
          .bind(2, mi.protocol())
          .bind(3, address)
          .bind(4, mi.SerializeAsString());
      if (Status s = up.value.run(); !s) log_->warn("mapper {} not saved: {}", name, s.message());
    }
    log_->info("mapper {} {} registered for protocol {} at {}", name, mi.version(), mi.protocol(),
               address);
    register_with_dmi(
        mi.protocol(), req.withdata(),
        [resp, done = std::move(done)](Status s, const json::value& a) {
          if (s) {
            if (auto* ms = kedge::json_path::find(a, {"models"}); ms && ms->is_array())
              for (auto& v : ms->as_array()) *resp->add_modellist() = kedge::dmi::model_to_proto(v);
            if (auto* ds = kedge::json_path::find(a, {"devices"}); ds && ds->is_array())
              for (auto& v : ds->as_array())
                *resp->add_devicelist() = kedge::dmi::device_to_proto(v);
          }
          done(s);
        });
  }

  // A report or state from a mapper process, to dmi; `done` gets its verdict.
  void forward(std::string op, std::string ns, std::string name, json::object content,
               std::function<void(Status)> done) {
    auto msg = kedge::make_message(ctx_->name(), dmi_, std::move(op),
                                   std::string(contract::kDevicePrefix) + ns + "/" + name,
                                   std::move(content));
    ctx_->request(
        dmi_, kedge::share(std::move(msg)), 10s,
        [done = std::move(done)](Status s, MessagePtr r) { done(contract::answer_status(s, r)); });
  }

  std::shared_ptr<int> alive() const { return alive_; }
  boost::asio::any_io_executor executor() { return ctx_->executor(); }
  std::atomic<bool> stopping_{false};

 private:
  void add(const std::string& name, const std::string& protocol, const std::string& version,
           const std::string& address) {
    Mapper& m = mappers_[protocol];
    m.name = name;
    m.version = version;
    m.address = address;
    m.stub = pb::DeviceMapperService::NewStub(
        grpc::CreateChannel("unix:" + address, grpc::InsecureChannelCredentials()));
  }

  void register_all(bool if_absent) {
    for (auto& [protocol, m] : mappers_)
      register_with_dmi(
          protocol, false,
          [this, p = protocol](Status s, const json::value&) {
            if (!s) log_->warn("mapper for {} not registered with {}: {}", p, dmi_, s.message());
          },
          if_absent);
  }

  void register_with_dmi(const std::string& protocol, bool with_data,
                         std::function<void(Status, const json::value&)> done,
                         bool if_absent = false) {
    auto it = mappers_.find(protocol);
    if (it == mappers_.end()) return done(kedge::not_found("no mapper for " + protocol), nullptr);
    contract::Registration reg{.name = it->second.name,
                               .version = it->second.version,
                               .protocol = protocol,
                               .module = ctx_->name(),
                               .with_data = with_data,
                               .if_absent = if_absent};
    auto msg = kedge::make_message(ctx_->name(), dmi_, std::string(contract::op::kRegister),
                                   std::string(contract::kMapperPrefix) + reg.name,
                                   contract::to_json(reg));
    ctx_->request(dmi_, kedge::share(std::move(msg)), 10s,
                  [done = std::move(done)](Status s, MessagePtr r) {
                    s = contract::answer_status(s, r);
                    done(s, s && r ? r->content : json::value());
                  });
  }

  void get_device(Mapper& mp, const MessagePtr& m) {
    const std::string& key = m->route.resource;
    size_t slash = key.find('/');
    pb::GetDeviceRequest q;
    q.set_devicenamespace(key.substr(0, slash));
    q.set_devicename(slash == std::string::npos ? "" : key.substr(slash + 1));
    call<pb::GetDeviceRequest, pb::GetDeviceResponse>(
        mp, std::move(q), &Stub::GetDevice, [this, m](Status s, const pb::GetDeviceResponse& resp) {
          if (!s) return answer(m, s);
          reply(m, json::object{{"device", kedge::dmi::device_from_proto(resp.device())},
                                {"status", kedge::dmi::status_to_json(resp.device().status())}});
        });
  }

  // Async gRPC: the result comes back on a gRPC thread and is posted here.
  template <class Req, class Resp>
  void call(Mapper& m, Req req, AsyncMethod<Req, Resp> method,
            std::function<void(Status, const Resp&)> done) {
    struct Call {
      grpc::ClientContext ctx;
      Req req;
      Resp resp;
    };
    auto c = std::make_shared<Call>();
    c->req = std::move(req);
    c->ctx.set_deadline(std::chrono::system_clock::now() + call_timeout_);
    {
      std::lock_guard lk(calls_->mu);
      calls_->in_flight.insert(&c->ctx);
    }
    auto ex = ctx_->executor();
    std::weak_ptr<int> alive = alive_;
    (m.stub->async()->*method)(
        &c->ctx, &c->req, &c->resp,
        [calls = calls_, c, ex, alive, done = std::move(done)](grpc::Status gs) mutable {
          {
            std::lock_guard lk(calls->mu);
            calls->in_flight.erase(&c->ctx);
          }
          boost::asio::post(ex, [alive, gs, c, done = std::move(done)] {
            if (alive.lock()) done(from_grpc(gs), c->resp);
          });
        });
  }

  void reply(const MessagePtr& req, json::value content) {
    if (req->header.id.empty()) return;
    Message r = kedge::new_response(*req, std::move(content));
    r.route.source = ctx_->name();
    (void)ctx_->respond(kedge::share(std::move(r)));
  }
  void answer(const MessagePtr& req, const Status& s) {
    reply(req, s ? json::value(json::string("OK")) : json::value(contract::error_answer(s)));
  }

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  std::string socket_, dmi_;
  std::chrono::milliseconds call_timeout_{4000};
  std::unique_ptr<kedge::sqlite::Db> db_;
  std::map<std::string, Mapper> mappers_;  // by protocol
  std::unique_ptr<ManagerService> service_;
  std::unique_ptr<grpc::Server> server_;
  struct Calls {
    std::mutex mu;
    std::set<grpc::ClientContext*> in_flight;
  };
  std::shared_ptr<Calls> calls_ = std::make_shared<Calls>();
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// Runs `work` on the plugin's strand and waits for its Status (bounded; cut
// short when the plugin stops).
template <class Work>
grpc::Status on_strand(DmiGrpc& d, Work work) {
  if (d.stopping_) return {grpc::StatusCode::UNAVAILABLE, "the edge's DMI is stopping"};
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  std::weak_ptr<int> alive = d.alive();
  boost::asio::post(d.executor(), [alive, promise, work = std::move(work)]() mutable {
    if (!alive.lock()) return promise->set_value({Code::kUnavailable, "stopping"});
    work([promise](Status s) { promise->set_value(std::move(s)); });
  });
  for (int i = 0; i < 300; ++i) {  // 30 s
    if (future.wait_for(100ms) == std::future_status::ready) return to_grpc(future.get());
    if (d.stopping_) return {grpc::StatusCode::UNAVAILABLE, "the edge's DMI is stopping"};
  }
  return {grpc::StatusCode::DEADLINE_EXCEEDED, "the edge did not answer in 30 s"};
}

grpc::Status ManagerService::MapperRegister(grpc::ServerContext*,
                                            const pb::MapperRegisterRequest* req,
                                            pb::MapperRegisterResponse* resp) {
  // Built on the strand into a copy (the call may give up waiting first).
  auto out = std::make_shared<pb::MapperRegisterResponse>();
  grpc::Status s = on_strand(
      d_, [this, req = *req, out](auto done) { d_.register_mapper(req, out, std::move(done)); });
  if (s.ok()) resp->Swap(out.get());
  return s;
}

grpc::Status ManagerService::ReportDeviceStatus(grpc::ServerContext*,
                                                const pb::ReportDeviceStatusRequest* req,
                                                pb::ReportDeviceStatusResponse*) {
  if (req->devicename().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "deviceName is required"};
  json::object status = kedge::dmi::status_to_json(req->reporteddevice());
  std::string ns = ns_or_default(req->devicenamespace()), name = req->devicename();
  return on_strand(d_, [this, ns, name, status](auto done) {
    d_.forward(std::string(contract::op::kReport), ns, name, status, std::move(done));
  });
}

grpc::Status ManagerService::ReportDeviceStates(grpc::ServerContext*,
                                                const pb::ReportDeviceStatesRequest* req,
                                                pb::ReportDeviceStatesResponse*) {
  if (req->devicename().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "deviceName is required"};
  std::string ns = ns_or_default(req->devicenamespace()), name = req->devicename();
  json::object content{{"state", req->state()}};
  return on_strand(d_, [this, ns, name, content](auto done) {
    d_.forward(std::string(contract::op::kState), ns, name, content, std::move(done));
  });
}

constexpr kedge::PeerDecl kPeers[] = {
    {contract::kDmiKey, "register, report and state for each mapper process (requests)", false},
};
constexpr const char* kDeps[] = {kedge::contracts::kDmi.default_name};

}  // namespace

KEDGE_PLUGIN(DmiGrpc, {.name = "dmi-grpc",
                       .version = "0.2.0",
                       .group = contract::kMapperGroup,
                       .description = "DMI v1beta1 over gRPC: mapper processes register on the "
                                      "DMI socket and are driven through the dmi plugin.",
                       .config = kConfig,
                       .dependencies = kDeps,
                       .peers = kPeers})
