// dmi: the edge's side of DMI v1beta1 (docs/dmi.md).
//
// * Serves DeviceManagerService on a Unix socket (default
//   /etc/kubeedge/dmi.sock): MapperRegister, ReportDeviceStatus,
//   ReportDeviceStates. Mapper plugins in the same agent register and report
//   with messages instead (ops "register", "report", "state").
// * Knows the node's devices and models: read from metamanager at start,
//   then kept current by what the twin forwards (stored inserts, updates and
//   deletes of <ns>/device/<name> and <ns>/devicemodel/<name>) and by new
//   desired values (op "desired").
// * For each registered mapper (one per protocol) it keeps what the mapper
//   has acknowledged and reconciles towards what it should have: models
//   first, then devices, then removals; one call at a time per mapper, each
//   with a deadline; a failed call is retried with back-off (0.5 s to 30 s),
//   so a mapper that disconnects mid-call gets the rest once it is back.
//   Registration with withData answers with the mapper's devices and models.
// * A query for "device/<ns>/<name>" asks the device's mapper (GetDevice)
//   and answers with the device and its readings as the mapper has them.
// * Reports become twin updates (device/<name>/twin/update,
//   device/<name>/state/update): stored by the twin and sent to the cloud
//   through edgehub's outbox. The twin's verdict (404 unknown device, 400
//   invalid value) is the gRPC status the mapper gets.
// * Registered mappers are kept in <data_dir>/dmi.db, so after an edge
//   restart their devices flow again without the mapper re-registering.
#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "dmi/v1beta1/api.grpc.pb.h"
#include "dmi_convert.h"
#include "kedge/mapper/device.h"
#include "kedge/plugin.h"
#include "kedge/sqlite.h"

namespace {

namespace json = boost::json;
namespace pb = ::v1beta1;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

const std::vector<std::string> kSchema = {
    "CREATE TABLE IF NOT EXISTS devicemapper (name TEXT NOT NULL, protocol TEXT NOT NULL "
    "PRIMARY KEY, address TEXT NOT NULL, info TEXT NOT NULL);",
};

std::string str(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto p : path) {
    auto* o = cur->if_object();
    if (!o || !(cur = o->if_contains(p))) return {};
  }
  if (cur->is_string()) return std::string(cur->as_string());
  if (cur->is_null()) return {};
  return json::serialize(*cur);
}

std::string ns_or_default(std::string ns) { return ns.empty() ? "default" : ns; }
std::string key_of(const json::value& obj) {
  return ns_or_default(str(obj, {"metadata", "namespace"})) + "/" + str(obj, {"metadata", "name"});
}
std::string model_key(const json::value& device) {
  return ns_or_default(str(device, {"metadata", "namespace"})) + "/" +
         str(device, {"spec", "deviceModelRef", "name"});
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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

// One mapper: a process behind a socket, or a plugin in this agent.
struct Mapper {
  std::string name, protocol, version;
  std::string address;  // gRPC: the mapper's socket
  std::string module;   // in-process: its module name
  std::unique_ptr<pb::DeviceMapperService::Stub> stub;
  // What the mapper has acknowledged: key -> the object's JSON text.
  std::map<std::string, std::string> models, devices;
  bool busy = false;
  int failures = 0;
  uint64_t generation = 0;  // a new registration makes older call results void
  std::unique_ptr<boost::asio::steady_timer> retry;
};

class Dmi;

// The gRPC face: handlers hand their work to the plugin's strand and wait
// (bounded, and cut short when the plugin stops).
class ManagerService final : public pb::DeviceManagerService::Service {
 public:
  explicit ManagerService(Dmi& d) : dmi_(d) {}
  grpc::Status MapperRegister(grpc::ServerContext*, const pb::MapperRegisterRequest* req,
                              pb::MapperRegisterResponse* resp) override;
  grpc::Status ReportDeviceStatus(grpc::ServerContext*, const pb::ReportDeviceStatusRequest* req,
                                  pb::ReportDeviceStatusResponse*) override;
  grpc::Status ReportDeviceStates(grpc::ServerContext*, const pb::ReportDeviceStatesRequest* req,
                                  pb::ReportDeviceStatesResponse*) override;

 private:
  Dmi& dmi_;
};

class Dmi final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    namespace fs = std::filesystem;
    socket_ = cfg.get_string("socket");
    if (fs::path(socket_).is_relative()) socket_ = (ctx.data_dir() / socket_).string();
    call_timeout_ = std::chrono::milliseconds(cfg.get_int("call_timeout_ms"));
    if (call_timeout_ < 100ms) return kedge::invalid_argument("call_timeout_ms must be >= 100");
    auto db = kedge::sqlite::Db::open((ctx.data_dir() / "dmi.db").string());
    if (!db.status) return db.status;
    db_ = std::move(db.db);
    if (Status s = db_->migrate("dmi", kSchema); !s) return s;
    auto& m = ctx.metrics();
    mappers_gauge_ = &m.gauge("kedge_dmi_mappers", "Registered mappers");
    calls_ = &m.counter("kedge_dmi_calls_total", "Calls to mappers (device and model changes)");
    call_errors_ = &m.counter("kedge_dmi_call_errors_total", "Calls to mappers that failed");
    reports_ = &m.counter("kedge_dmi_reports_total", "Device reports from mappers");
    rejected_ = &m.counter("kedge_dmi_rejected_total", "Mapper registrations and reports refused");
    // Mapper processes registered before.
    auto sel = db_->prepare("SELECT name, protocol, address, info FROM devicemapper");
    if (!sel.status) return sel.status;
    while (sel.stmt.step().row) {
      Mapper& mp = add_mapper(sel.stmt.text(0), sel.stmt.text(1), "", sel.stmt.text(2), "");
      log_->info("mapper {} ({}) at {} known from before", mp.name, mp.protocol, mp.address);
    }
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
    load();
    return {};
  }

  Status stop() override {
    stopping_ = true;
    for (auto& [p, m] : mappers_)
      if (m.retry) m.retry->cancel();
    // Calls in flight end now; their callbacks must be done before this
    // plugin goes (they post to it only while alive_ is).
    {
      std::lock_guard lk(calls_state_->mu);
      for (auto* c : calls_state_->in_flight) c->TryCancel();
    }
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard lk(calls_state_->mu);
        if (calls_state_->in_flight.empty()) break;
      }
      std::this_thread::sleep_for(10ms);
    }
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
    server_.reset();
    alive_.reset();
    return {};
  }

  void on_message(const MessagePtr& m) override {
    if (m->is_response()) return;
    const std::string& op = m->route.operation;
    if (op == "register") return register_local(m);
    if (op == "report" || op == "state") return local_report(m);
    if (op == "desired") return on_desired(m);
    if (op == "query") return live(m);
    if (op == "insert" || op == "update" || op == "delete") {
      if (!loaded_) return early_.push_back(m);
      return apply(m);
    }
  }

  // ---- called on the strand by the gRPC face ----
  Status register_mapper(const pb::MapperRegisterRequest& req, pb::MapperRegisterResponse* resp) {
    const auto& mi = req.mapper();
    std::string address = mi.address();
    if (address.rfind("unix://", 0) == 0) address = address.substr(7);
    if (address.rfind("unix:", 0) == 0) address = address.substr(5);
    if (mi.protocol().empty() || address.empty()) {
      rejected_->inc();
      return kedge::invalid_argument(mi.protocol().empty()
                                         ? "mapper.protocol is required"
                                         : "mapper.address (the mapper's socket) is required");
    }
    std::string name = mi.name().empty() ? mi.protocol() + "-mapper" : mi.name();
    Mapper& m = add_mapper(name, mi.protocol(), mi.version(), address, "");
    auto up = db_->prepare("INSERT OR REPLACE INTO devicemapper VALUES(?, ?, ?, ?)");
    if (up.status) {
      up.stmt.bind(1, name).bind(2, mi.protocol()).bind(3, address).bind(4, mi.SerializeAsString());
      if (Status s = up.stmt.run(); !s) log_->warn("mapper {} not saved: {}", name, s.message());
    }
    log_->info("mapper {} {} registered for protocol {} at {}", name, mi.version(), mi.protocol(),
               address);
    if (req.withdata()) {
      for (auto& [k, v] : wanted_models(m.protocol)) {
        *resp->add_modellist() = kedge::dmi::model_to_proto(*v);
        m.models[k] = json::serialize(*v);
      }
      for (auto& [k, v] : wanted_devices(m.protocol)) {
        *resp->add_devicelist() = kedge::dmi::device_to_proto(*v);
        m.devices[k] = json::serialize(*v);
      }
    }
    sync(m);
    return {};
  }

  // Reports from a mapper (gRPC or plugin) to the twin; `done` gets the
  // twin's verdict.
  void report(const std::string& ns, const std::string& name, const json::value& status,
              std::function<void(Status)> done) {
    reports_->inc();
    json::object twin;
    if (auto* tw = status.is_object() ? status.as_object().if_contains("twins") : nullptr;
        tw && tw->is_array())
      for (auto& t : tw->as_array()) {
        std::string prop = str(t, {"propertyName"});
        if (prop.empty()) continue;
        if (!t.as_object().contains("reported")) continue;
        std::string type = str(t, {"reported", "metadata", "type"});
        if (type.empty()) type = str(t, {"reported", "metadata", "propertyType"});  // v1alpha1
        int64_t ts = std::atoll(str(t, {"reported", "metadata", "timestamp"}).c_str());
        json::object actual{{"value", str(t, {"reported", "value"})},
                            {"metadata", json::object{{"timestamp", ts > 0 ? ts : now_ms()}}}};
        json::object o{{"actual", std::move(actual)}};
        if (!type.empty())
          o["metadata"] = json::object{{"type", type == "integer" ? std::string("int") : type}};
        twin[prop] = std::move(o);
      }
    if (twin.empty()) {
      rejected_->inc();
      return done(kedge::invalid_argument("the report carries no twin with a reported value"));
    }
    to_twin("device/" + name + "/twin/update",
            json::object{{"event_id", kedge::new_uuid()}, {"timestamp", now_ms()}, {"twin", twin}},
            std::move(done));
    (void)ns;  // the twin keys devices by name (as KubeEdge 1.12)
  }

  void state(const std::string& ns, const std::string& name, const std::string& st,
             std::function<void(Status)> done) {
    (void)ns;
    if (st.empty()) {
      rejected_->inc();
      return done(kedge::invalid_argument("state is required"));
    }
    to_twin("device/" + name + "/state/update",
            json::object{{"event_id", kedge::new_uuid()}, {"timestamp", now_ms()}, {"state", st}},
            std::move(done));
  }

  std::shared_ptr<int> alive() const { return alive_; }
  boost::asio::any_io_executor executor() { return ctx_->executor(); }
  std::atomic<bool> stopping_{false};

 private:
  Mapper& add_mapper(const std::string& name, const std::string& protocol,
                     const std::string& version, const std::string& address,
                     const std::string& module) {
    Mapper& m = mappers_[protocol];
    if (m.retry) m.retry->cancel();
    m = Mapper{};
    m.name = name;
    m.protocol = protocol;
    m.version = version;
    m.address = address;
    m.module = module;
    m.generation = ++generation_;
    m.retry = std::make_unique<boost::asio::steady_timer>(ctx_->executor());
    if (!address.empty())
      m.stub = pb::DeviceMapperService::NewStub(
          grpc::CreateChannel("unix:" + address, grpc::InsecureChannelCredentials()));
    mappers_gauge_->set(static_cast<int64_t>(mappers_.size()));
    return m;
  }

  // ---- the cache ----
  void load() {
    auto pending = std::make_shared<int>(2);
    auto answer = [this, pending, alive = std::weak_ptr<int>(alive_)](const std::string& what,
                                                                      Status s, MessagePtr r) {
      if (!alive.lock()) return;
      auto& into = what == "device" ? devices_ : models_;
      if (s && r && r->content.is_array()) {
        for (auto& v : r->content.as_array()) {
          json::error_code ec;
          json::value obj = v.is_string() ? json::parse(v.as_string(), ec) : v;
          if (!ec && obj.is_object()) into[key_of(obj)] = obj;
        }
      } else if (!s && s.code() != Code::kNotFound) {
        log_->warn("cannot read the cached {}s from metamanager: {}", what, s.message());
      }
      if (--*pending == 0) loaded();
    };
    for (std::string what : {"device", "devicemodel"}) {
      auto q = kedge::make_message(ctx_->name(), "meta", "query", "*/" + what, nullptr);
      ctx_->request("metamanager", kedge::share(std::move(q)), 10s,
                    [answer, what](Status s, MessagePtr r) { answer(what, s, r); });
    }
  }

  void loaded() {
    loaded_ = true;
    log_->info("{} device(s) and {} model(s) cached", devices_.size(), models_.size());
    for (auto& m : early_) apply(m);
    early_.clear();
    for (auto& [p, m] : mappers_) sync(m);
  }

  void apply(const MessagePtr& m) {
    const std::string& r = m->route.resource;
    size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
    if (b == std::string::npos) return;
    std::string key = r.substr(0, a) + "/" + r.substr(b + 1), type = r.substr(a + 1, b - a - 1);
    bool del = m->route.operation == "delete";
    std::set<std::string> touched;
    if (type == "device") {
      if (auto it = devices_.find(key); it != devices_.end())
        touched.insert(kedge::mapper::protocol_of(it->second));
      if (del)
        devices_.erase(key);
      else if (m->content.is_object())
        devices_[key] = m->content;
      if (!del) touched.insert(kedge::mapper::protocol_of(m->content));
    } else if (type == "devicemodel") {
      if (del)
        models_.erase(key);
      else if (m->content.is_object())
        models_[key] = m->content;
      for (auto& [k, d] : devices_)
        if (model_key(d) == key) touched.insert(kedge::mapper::protocol_of(d));
    }
    for (auto& p : touched)
      if (auto it = mappers_.find(p); it != mappers_.end()) sync(it->second);
  }

  // New desired values from the twin (device/<name>): overlaid on the
  // cached device, which its mapper then gets.
  void on_desired(const MessagePtr& m) {
    std::string name = str(m->content, {"device"});
    auto* desired =
        m->content.is_object() ? m->content.as_object().if_contains("desired") : nullptr;
    if (!desired || !desired->is_object()) return;
    for (auto& [k, d] : devices_) {
      if (str(d, {"metadata", "name"}) != name) continue;
      auto* ps = d.as_object().contains("spec") && d.at("spec").is_object()
                     ? d.at("spec").as_object().if_contains("properties")
                     : nullptr;
      if (!ps || !ps->is_array()) continue;
      bool changed = false;
      for (auto& p : ps->as_array()) {
        std::string prop = str(p, {"name"});
        if (!desired->as_object().contains(prop)) continue;
        std::string v = str(desired->as_object().at(prop), {"value"});
        if (str(p, {"desired", "value"}) == v) continue;
        p.as_object()["desired"] = json::object{{"value", v}};
        changed = true;
      }
      if (changed)
        if (auto it = mappers_.find(kedge::mapper::protocol_of(d)); it != mappers_.end())
          sync(it->second);
    }
  }

  std::map<std::string, const json::value*> wanted_devices(const std::string& protocol) {
    std::map<std::string, const json::value*> out;
    for (auto& [k, d] : devices_)
      if (kedge::mapper::protocol_of(d) == protocol) out[k] = &d;
    return out;
  }
  std::map<std::string, const json::value*> wanted_models(const std::string& protocol) {
    std::map<std::string, const json::value*> out;
    for (auto& [k, d] : devices_)
      if (kedge::mapper::protocol_of(d) == protocol)
        if (auto it = models_.find(model_key(d)); it != models_.end()) out[it->first] = &it->second;
    return out;
  }

  // ---- reconciling a mapper ----
  enum class Op { kCreateModel, kUpdateModel, kRemoveModel, kRegister, kUpdate, kRemove };

  void sync(Mapper& m) {
    if (m.busy || !loaded_ || stopping_) return;
    auto devs = wanted_devices(m.protocol);
    auto models = wanted_models(m.protocol);
    // 1. devices that went away, 2. models, 3. devices, 4. models no longer used.
    for (auto& [k, text] : m.devices)
      if (!devs.count(k)) return call(m, Op::kRemove, k, nullptr);
    for (auto& [k, v] : models) {
      auto it = m.models.find(k);
      if (it == m.models.end()) return call(m, Op::kCreateModel, k, *v);
      if (it->second != json::serialize(*v)) return call(m, Op::kUpdateModel, k, *v);
    }
    for (auto& [k, v] : devs) {
      auto it = m.devices.find(k);
      if (it == m.devices.end()) return call(m, Op::kRegister, k, *v);
      if (it->second != json::serialize(*v)) return call(m, Op::kUpdate, k, *v);
    }
    for (auto& [k, text] : m.models)
      if (!models.count(k)) return call(m, Op::kRemoveModel, k, nullptr);
  }

  void call(Mapper& m, Op op, const std::string& key, const json::value& obj) {
    m.busy = true;
    calls_->inc();
    std::string text = obj.is_null() ? std::string() : json::serialize(obj);
    auto done = [this, protocol = m.protocol, gen = m.generation, op, key, text](Status s) {
      auto it = mappers_.find(protocol);
      if (it == mappers_.end() || it->second.generation != gen) return;  // re-registered
      Mapper& mp = it->second;
      mp.busy = false;
      if (s) {
        mp.failures = 0;
        bool model = op == Op::kCreateModel || op == Op::kUpdateModel || op == Op::kRemoveModel;
        auto& acked = model ? mp.models : mp.devices;
        if (op == Op::kRemove || op == Op::kRemoveModel)
          acked.erase(key);
        else
          acked[key] = text;
        return sync(mp);
      }
      call_errors_->inc();
      // Refused as invalid: retrying will not help until the object changes.
      if (s.code() == Code::kInvalidArgument) {
        log_->error("mapper {} refused {}: {}", mp.name, key, s.message());
        bool model = op == Op::kCreateModel || op == Op::kUpdateModel || op == Op::kRemoveModel;
        (model ? mp.models : mp.devices)[key] = text;
        return sync(mp);
      }
      auto delay =
          std::min<std::chrono::milliseconds>(500ms * (1 << std::min(mp.failures, 6)), 30s);
      if (mp.failures++ % 10 == 0)
        log_->warn("mapper {} did not take {}: {}; retrying in {} ms", mp.name, key, s.message(),
                   delay.count());
      mp.retry->expires_after(delay);
      mp.retry->async_wait([this, protocol, gen](boost::system::error_code ec) {
        if (ec || stopping_) return;
        auto it2 = mappers_.find(protocol);
        if (it2 != mappers_.end() && it2->second.generation == gen) sync(it2->second);
      });
    };
    if (!m.module.empty()) return call_local(m, op, key, obj, std::move(done));
    call_grpc(m, op, key, obj, std::move(done));
  }

  void call_local(Mapper& m, Op op, const std::string& key, const json::value& obj,
                  std::function<void(Status)> done) {
    size_t slash = key.find('/');
    bool model = op == Op::kCreateModel || op == Op::kUpdateModel || op == Op::kRemoveModel;
    std::string resource =
        key.substr(0, slash) + (model ? "/devicemodel/" : "/device/") + key.substr(slash + 1);
    std::string verb = op == Op::kRemove || op == Op::kRemoveModel     ? "delete"
                       : op == Op::kCreateModel || op == Op::kRegister ? "insert"
                                                                       : "update";
    auto msg = kedge::make_message(ctx_->name(), "dmi", verb, resource, obj);
    ctx_->request(
        m.module, kedge::share(std::move(msg)), call_timeout_,
        [done = std::move(done)](Status s, MessagePtr r) {
          // A refusal is answered {"error": "..."}.
          if (s && r && r->content.is_object() && r->content.as_object().contains("error"))
            s = kedge::invalid_argument(str(r->content, {"error"}));
          done(s);
        });
  }

  // Async gRPC: the result comes back on a gRPC thread and is posted here.
  template <class Req, class Resp, class Fn>
  void grpc_call(Mapper& m, Req req, Fn method, std::function<void(Status)> done) {
    grpc_call<Req, Resp>(m, std::move(req), method,
                         std::function<void(Status, const Resp&)>(
                             [done = std::move(done)](Status s, const Resp&) { done(s); }));
  }
  template <class Req, class Resp, class Fn>
  void grpc_call(Mapper& m, Req req, Fn method, std::function<void(Status, const Resp&)> done) {
    struct Call {
      grpc::ClientContext ctx;
      Req req;
      Resp resp;
    };
    auto c = std::make_shared<Call>();
    c->req = std::move(req);
    c->ctx.set_deadline(std::chrono::system_clock::now() + call_timeout_);
    {
      std::lock_guard lk(calls_state_->mu);
      calls_state_->in_flight.insert(&c->ctx);
    }
    auto ex = ctx_->executor();
    std::weak_ptr<int> alive = alive_;
    (m.stub->async()->*method)(
        &c->ctx, &c->req, &c->resp,
        [calls = calls_state_, c, ex, alive, done = std::move(done)](grpc::Status gs) mutable {
          {
            std::lock_guard lk(calls->mu);
            calls->in_flight.erase(&c->ctx);
          }
          boost::asio::post(ex, [alive, gs, c, done = std::move(done)] {
            if (!alive.lock()) return;
            if (gs.ok()) return done({}, c->resp);
            Code code = gs.error_code() == grpc::StatusCode::INVALID_ARGUMENT
                            ? Code::kInvalidArgument
                        : gs.error_code() == grpc::StatusCode::NOT_FOUND ? Code::kNotFound
                                                                         : Code::kUnavailable;
            done({code, gs.error_message().empty() ? "gRPC code " + std::to_string(gs.error_code())
                                                   : gs.error_message()},
                 c->resp);
          });
        });
  }

  void call_grpc(Mapper& m, Op op, const std::string& key, const json::value& obj,
                 std::function<void(Status)> done) {
    using S = pb::DeviceMapperService::Stub::async_interface;
    size_t slash = key.find('/');
    std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
    switch (op) {
      case Op::kCreateModel: {
        pb::CreateDeviceModelRequest r;
        *r.mutable_model() = kedge::dmi::model_to_proto(obj);
        return grpc_call<pb::CreateDeviceModelRequest, pb::CreateDeviceModelResponse>(
            m, std::move(r),
            static_cast<void (S::*)(grpc::ClientContext*, const pb::CreateDeviceModelRequest*,
                                    pb::CreateDeviceModelResponse*,
                                    std::function<void(grpc::Status)>)>(&S::CreateDeviceModel),
            std::move(done));
      }
      case Op::kUpdateModel: {
        pb::UpdateDeviceModelRequest r;
        *r.mutable_model() = kedge::dmi::model_to_proto(obj);
        return grpc_call<pb::UpdateDeviceModelRequest, pb::UpdateDeviceModelResponse>(
            m, std::move(r),
            static_cast<void (S::*)(grpc::ClientContext*, const pb::UpdateDeviceModelRequest*,
                                    pb::UpdateDeviceModelResponse*,
                                    std::function<void(grpc::Status)>)>(&S::UpdateDeviceModel),
            std::move(done));
      }
      case Op::kRemoveModel: {
        pb::RemoveDeviceModelRequest r;
        r.set_modelname(name);
        r.set_modelnamespace(ns);
        return grpc_call<pb::RemoveDeviceModelRequest, pb::RemoveDeviceModelResponse>(
            m, std::move(r),
            static_cast<void (S::*)(grpc::ClientContext*, const pb::RemoveDeviceModelRequest*,
                                    pb::RemoveDeviceModelResponse*,
                                    std::function<void(grpc::Status)>)>(&S::RemoveDeviceModel),
            std::move(done));
      }
      case Op::kRegister: {
        pb::RegisterDeviceRequest r;
        *r.mutable_device() = kedge::dmi::device_to_proto(obj);
        return grpc_call<pb::RegisterDeviceRequest, pb::RegisterDeviceResponse>(
            m, std::move(r),
            static_cast<void (S::*)(grpc::ClientContext*, const pb::RegisterDeviceRequest*,
                                    pb::RegisterDeviceResponse*,
                                    std::function<void(grpc::Status)>)>(&S::RegisterDevice),
            std::move(done));
      }
      case Op::kUpdate: {
        pb::UpdateDeviceRequest r;
        *r.mutable_device() = kedge::dmi::device_to_proto(obj);
        return grpc_call<pb::UpdateDeviceRequest, pb::UpdateDeviceResponse>(
            m, std::move(r),
            static_cast<void (S::*)(grpc::ClientContext*, const pb::UpdateDeviceRequest*,
                                    pb::UpdateDeviceResponse*, std::function<void(grpc::Status)>)>(
                &S::UpdateDevice),
            std::move(done));
      }
      case Op::kRemove: {
        pb::RemoveDeviceRequest r;
        r.set_devicename(name);
        r.set_devicenamespace(ns);
        return grpc_call<pb::RemoveDeviceRequest, pb::RemoveDeviceResponse>(
            m, std::move(r),
            static_cast<void (S::*)(grpc::ClientContext*, const pb::RemoveDeviceRequest*,
                                    pb::RemoveDeviceResponse*, std::function<void(grpc::Status)>)>(
                &S::RemoveDevice),
            std::move(done));
      }
    }
  }

  // A device as its mapper has it now (GetDevice): query
  // "device/<ns>/<name>" -> {"device": {...}, "status": {"twins": [...]}}
  // or {"error": "..."}.
  void live(const MessagePtr& m) {
    const std::string& r = m->route.resource;
    auto fail = [&](const std::string& why) {
      reply(m, kedge::new_response(*m, json::object{{"error", why}}));
    };
    if (r.rfind("device/", 0) != 0) return fail("query device/<namespace>/<name>");
    std::string key = r.substr(7);
    auto d = devices_.find(key);
    if (d == devices_.end()) return fail("no device " + key + " on this node");
    std::string protocol = kedge::mapper::protocol_of(d->second);
    auto mp = mappers_.find(protocol);
    if (mp == mappers_.end())
      return fail("no mapper for protocol '" + protocol + "' has registered");
    if (!mp->second.module.empty()) {  // a plugin answers the query itself
      Message q = kedge::make_message(ctx_->name(), "dmi", "query", key, nullptr);
      return ctx_->request(
          mp->second.module, kedge::share(std::move(q)), call_timeout_,
          [this, m](Status s, MessagePtr a) {
            if (!s) return reply(m, kedge::new_response(*m, json::object{{"error", s.message()}}));
            reply(m, kedge::new_response(*m, a->content));
          });
    }
    pb::GetDeviceRequest req;
    size_t slash = key.find('/');
    req.set_devicenamespace(key.substr(0, slash));
    req.set_devicename(key.substr(slash + 1));
    using S = pb::DeviceMapperService::Stub::async_interface;
    grpc_call<pb::GetDeviceRequest, pb::GetDeviceResponse>(
        mp->second, std::move(req),
        static_cast<void (S::*)(grpc::ClientContext*, const pb::GetDeviceRequest*,
                                pb::GetDeviceResponse*, std::function<void(grpc::Status)>)>(
            &S::GetDevice),
        std::function<void(Status, const pb::GetDeviceResponse&)>(
            [this, m](Status s, const pb::GetDeviceResponse& resp) {
              if (!s)
                return reply(m, kedge::new_response(*m, json::object{{"error", s.message()}}));
              reply(m,
                    kedge::new_response(
                        *m, json::object{
                                {"device", kedge::dmi::device_from_proto(resp.device())},
                                {"status", kedge::dmi::status_to_json(resp.device().status())}}));
            }));
  }

  // ---- mapper plugins in this agent ----
  void register_local(const MessagePtr& m) {
    std::string protocol = str(m->content, {"protocol"});
    std::string module = str(m->content, {"module"});
    if (module.empty()) module = m->route.source;
    if (protocol.empty()) {
      rejected_->inc();
      return reply(m, kedge::new_response(*m, json::object{{"error", "protocol is required"}}));
    }
    Mapper& mp =
        add_mapper(str(m->content, {"name"}), protocol, str(m->content, {"version"}), "", module);
    // It is told its devices in the answer.
    json::array models, devices;
    for (auto& [k, v] : wanted_models(protocol)) {
      models.push_back(*v);
      mp.models[k] = json::serialize(*v);
    }
    for (auto& [k, v] : wanted_devices(protocol)) {
      devices.push_back(*v);
      mp.devices[k] = json::serialize(*v);
    }
    log_->info("mapper plugin {} registered for protocol {} ({} device(s))", module, protocol,
               devices.size());
    reply(m, kedge::new_response(
                 *m, json::object{{"models", std::move(models)}, {"devices", std::move(devices)}}));
    if (!loaded_) mp.devices.clear(), mp.models.clear();  // loaded() syncs it
  }

  void local_report(const MessagePtr& m) {
    // device/<ns>/<name>
    const std::string& r = m->route.resource;
    size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
    if (r.rfind("device/", 0) != 0 || b == std::string::npos) return;
    std::string ns = r.substr(a + 1, b - a - 1), name = r.substr(b + 1);
    auto done = [this, name](Status s) {
      if (!s) log_->debug("report on {} refused: {}", name, s.message());
    };
    if (m->route.operation == "state") return state(ns, name, str(m->content, {"state"}), done);
    report(ns, name, m->content, done);
  }

  void reply(const MessagePtr& req, Message r) {
    if (req->header.id.empty()) return;
    r.route.source = ctx_->name();
    (void)ctx_->respond(kedge::share(std::move(r)));
  }

  void to_twin(const std::string& resource, json::object content,
               std::function<void(Status)> done) {
    auto msg = kedge::make_message(ctx_->name(), "twin", "update", resource, std::move(content));
    ctx_->request("twin", kedge::share(std::move(msg)), 10s,
                  [done = std::move(done)](Status s, MessagePtr r) {
                    if (!s) return done(s);
                    int code = 0;
                    std::string reason;
                    if (r && r->content.is_object()) {
                      auto& o = r->content.as_object();
                      if (auto* c = o.if_contains("code"); c && c->is_int64())
                        code = static_cast<int>(c->as_int64());
                      reason = str(r->content, {"reason"});
                    }
                    if (code == 404) return done(kedge::not_found(reason));
                    if (code == 400) return done(kedge::invalid_argument(reason));
                    if (code) return done(kedge::internal_error(reason));
                    done({});
                  });
  }

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  std::string socket_;
  std::chrono::milliseconds call_timeout_{5000};
  std::unique_ptr<kedge::sqlite::Db> db_;
  std::map<std::string, json::value> devices_, models_;  // "ns/name"
  std::map<std::string, Mapper> mappers_;                // by protocol
  uint64_t generation_ = 0;
  bool loaded_ = false;
  std::vector<MessagePtr> early_;
  std::unique_ptr<ManagerService> service_;
  std::unique_ptr<grpc::Server> server_;
  struct Calls {
    std::mutex mu;
    std::set<grpc::ClientContext*> in_flight;
  };
  std::shared_ptr<Calls> calls_state_ = std::make_shared<Calls>();
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  kedge::Gauge* mappers_gauge_ = nullptr;
  kedge::Counter *calls_ = nullptr, *call_errors_ = nullptr, *reports_ = nullptr,
                 *rejected_ = nullptr;
};

// Runs `work` on the plugin's strand and waits for its Status (bounded; cut
// short when the plugin stops).
template <class Work>
grpc::Status on_strand(Dmi& d, Work work) {
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
  // The answer is built on the strand into a copy, then handed over.
  // Built on the strand into a copy (the call may give up waiting first).
  auto out = std::make_shared<pb::MapperRegisterResponse>();
  grpc::Status s = on_strand(
      dmi_, [this, req = *req, out](auto done) { done(dmi_.register_mapper(req, out.get())); });
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
  return on_strand(dmi_,
                   [this, ns, name, status](auto done) { dmi_.report(ns, name, status, done); });
}

grpc::Status ManagerService::ReportDeviceStates(grpc::ServerContext*,
                                                const pb::ReportDeviceStatesRequest* req,
                                                pb::ReportDeviceStatesResponse*) {
  if (req->devicename().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "deviceName is required"};
  std::string ns = ns_or_default(req->devicenamespace()), name = req->devicename(),
              st = req->state();
  return on_strand(dmi_, [this, ns, name, st](auto done) { dmi_.state(ns, name, st, done); });
}

constexpr kedge::ConfigKey kConfig[] = {
    {"socket", kedge::ConfigType::kString, "\"/etc/kubeedge/dmi.sock\"",
     "Unix socket of DeviceManagerService (relative: under data_dir).", false},
    {"call_timeout_ms", kedge::ConfigType::kInteger, "5000", "Deadline of each call to a mapper.",
     false},
};
constexpr const char* kDeps[] = {"twin"};

}  // namespace

KEDGE_PLUGIN(Dmi, {.name = "dmi",
                   .version = "0.1.0",
                   .description = "DMI v1beta1: mappers register over gRPC (or as plugins), get "
                                  "their devices, and report through the twin.",
                   .config = kConfig,
                   .dependencies = kDeps})
