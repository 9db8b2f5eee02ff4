// dmi: the edge's device routing for DMI v1beta1 (docs/dmi.md), over
// messages only (the contract is kedge/mapper/contract.h).
//
// * Mappers register with it: mapper plugins in this agent, and dmi-grpc for
//   mapper processes (it serves DeviceManagerService on the DMI socket and
//   stands in for them). Loading dmi alone maps no gRPC and no protobuf.
// * Knows the node's devices and models: read from metamanager at start,
//   then kept current by what the twin forwards (stored inserts, updates and
//   deletes of <ns>/device/<name> and <ns>/devicemodel/<name>) and by new
//   desired values (op "desired").
// * For each registered mapper (one per protocol) it keeps what the mapper
//   has acknowledged and reconciles towards what it should have: models
//   first, then devices, then removals; one call at a time per mapper, each
//   with a deadline; a failed call is retried with back-off (0.5 s to 30 s),
//   so a mapper that disconnects mid-call gets the rest once it is back.
// * A query for "device/<ns>/<name>" asks the device's mapper and answers
//   with the device and its readings as the mapper has them.
// * Reports become twin updates (device/<name>/twin/update,
//   device/<name>/state/update): stored by the twin and sent to the cloud
//   through edgehub's outbox. The twin's verdict (404 unknown device, 400
//   invalid value) is the answer the mapper gets.
#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <map>
#include <set>

#include "contracts/modules.h"
#include "contracts/wire.h"
#include "kedge/common/json.h"
#include "kedge/mapper/contract.h"
#include "kedge/mapper/device.h"
#include "kedge/plugin.h"

namespace {

namespace json = boost::json;
namespace contract = kedge::mapper::contract;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using kedge::json_path::text;
using namespace std::chrono_literals;

std::string ns_or_default(std::string ns) { return ns.empty() ? "default" : ns; }

// What a mapper acts on: the object's name, namespace and spec (a v1beta1
// device's desired values are in spec.properties[].desired). Its status
// (reported and observed values, state), resourceVersion and managed fields
// change with every report cycle; a mapper built on KubeEdge's
// mapper-framework stops and restarts a device on each UpdateDevice
// (DevPanel.UpdateDev), so they must not cause one.
json::value mapper_view(const json::value& v) {
  json::object meta;
  for (const char* k : {"name", "namespace"})
    if (auto* x = kedge::json_path::find(v, {"metadata", k})) meta[k] = *x;
  json::object out{{"metadata", std::move(meta)}};
  if (auto* spec = kedge::json_path::find(v, {"spec"})) out["spec"] = *spec;
  return out;
}

// FNV-1a of that view's JSON text: what a mapper acknowledged, compared
// with what it should have.
uint64_t digest(const json::value& v) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : json::serialize(mapper_view(v))) h = (h ^ c) * 1099511628211ull;
  return h;
}
std::string key_of(const json::value& obj) {
  return ns_or_default(text(obj, {"metadata", "namespace"})) + "/" +
         text(obj, {"metadata", "name"});
}
std::string model_key(const json::value& device) {
  return ns_or_default(text(device, {"metadata", "namespace"})) + "/" +
         text(device, {"spec", "deviceModelRef", "name"});
}

// A cached device or model, with what is read of it again and again.
struct Obj {
  json::value v;
  uint64_t digest = 0;
  std::string protocol, model;  // devices: spec.protocol and "<ns>/<model>"
};
Obj make_obj(json::value v) {
  Obj o;
  o.v = std::move(v);
  o.digest = digest(o.v);
  o.protocol = kedge::mapper::protocol_of(o.v);
  o.model = model_key(o.v);
  return o;
}

// One registered mapper: a plugin in this agent, or a process behind
// dmi-grpc (module "dmi-grpc", told apart by the protocol in route.group).
struct Mapper {
  std::string name, protocol, version;
  std::string module;
  // What the mapper has acknowledged: key -> a hash of the object's JSON
  // text (a gateway with 1,000 devices keeps 8 bytes each, not 3 kB).
  std::map<std::string, uint64_t> models, devices;
  bool busy = false;
  int failures = 0;
  uint64_t generation = 0;  // a new registration makes older call results void
  std::unique_ptr<boost::asio::steady_timer> retry;
};

constexpr const char* kSocketKey = "socket";
struct Settings {
  int64_t call_timeout_ms = 0;
  std::string twin, metamanager, socket;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    {"call_timeout_ms", &Settings::call_timeout_ms, "5000", "Deadline of each call to a mapper.",
     false, 100, 600000},
    {contract::kTwinKey, &Settings::twin, "\"twin\"", "The device twin module reports go to."},
    kedge::contracts::peer_setting(
        kedge::contracts::kMetaManager, &Settings::metamanager,
        "The module the cached devices and models are read from at start."),
    {kSocketKey, &Settings::socket, nullptr,
     "Moved to dmi-grpc (the gRPC socket for mapper processes); set here, it is an error."},
};
constexpr auto kConfig = kedge::config_keys(kSettings);

class Dmi final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    if (cfg.has(kSocketKey))
      return kedge::invalid_argument(
          "dmi: 'socket' moved to the dmi-grpc plugin, which serves DMI's gRPC socket for mapper "
          "processes: add [[plugin]] name = \"dmi-grpc\" with [plugin.config] socket = \"" +
          cfg.get_string(kSocketKey) + "\"");
    s_ = kedge::read_settings(kSettings, cfg);
    call_timeout_ = std::chrono::milliseconds(s_.call_timeout_ms);
    auto& m = ctx.metrics();
    mappers_gauge_ = &m.gauge("kedge_dmi_mappers", "Registered mappers");
    calls_ = &m.counter("kedge_dmi_calls_total", "Calls to mappers (device and model changes)");
    call_errors_ = &m.counter("kedge_dmi_call_errors_total", "Calls to mappers that failed");
    reports_ = &m.counter("kedge_dmi_reports_total", "Device reports from mappers");
    rejected_ = &m.counter("kedge_dmi_rejected_total", "Mapper registrations and reports refused");
    return {};
  }

  Status start() override {
    load();
    return {};
  }

  Status stop() override {
    stopping_ = true;
    for (auto& [p, m] : mappers_)
      if (m.retry) m.retry->cancel();
    alive_.reset();
    return {};
  }

  void on_message(const MessagePtr& m) override {
    if (m->is_response()) return;
    const std::string& op = m->route.operation;
    if (op == contract::op::kRegister) return register_mapper(m);
    if (op == contract::op::kReport || op == contract::op::kState) return report(m);
    if (op == contract::op::kDesired) return on_desired(m);
    if (op == contract::op::kQuery) return live(m);
    if (op == contract::op::kInsert || op == contract::op::kUpdate || op == contract::op::kDelete) {
      if (!loaded_) return early_.push_back(m);
      return apply(m);
    }
  }

 private:
  // ---- the cache ----
  void load() {
    auto pending = std::make_shared<int>(2);
    auto answer = [this, pending, alive = std::weak_ptr<int>(alive_)](const std::string& what,
                                                                      Status s, MessagePtr r) {
      if (!alive.lock()) return;
      auto& into = what == contract::kDevice ? devices_ : models_;
      if (s && r && r->content.is_array()) {
        for (auto& v : r->content.as_array()) {
          json::error_code ec;
          json::value obj = v.is_string() ? json::parse(v.as_string(), ec) : v;
          if (!ec && obj.is_object()) into[key_of(obj)] = make_obj(std::move(obj));
        }
      } else if (!s && s.code() != Code::kNotFound) {
        log_->warn("cannot read the cached {}s from {}: {}", what, s_.metamanager, s.message());
      }
      if (--*pending == 0) loaded();
    };
    for (std::string what : {std::string(contract::kDevice), std::string(contract::kDeviceModel)}) {
      auto q =
          kedge::make_message(ctx_->name(), std::string(kedge::contracts::wire::local_group::kMeta),
                              std::string(kedge::op::kQuery), "*/" + what, nullptr);
      ctx_->request(s_.metamanager, kedge::share(std::move(q)), 10s,
                    [answer, what](Status s, MessagePtr r) { answer(what, s, r); });
    }
  }

  void loaded() {
    loaded_ = true;
    log_->info("{} device(s) and {} model(s) cached", devices_.size(), models_.size());
    for (auto& m : early_) apply(m);
    early_.clear();
    for (auto& [p, m] : mappers_) sync(m);
    // Restarted on its own (the kernel restarts a failed plugin alone), dmi
    // has lost its registrations: the mappers register again.
    if (mappers_.empty()) {
      auto ask = kedge::make_message(ctx_->name(), contract::kMapperGroup,
                                     std::string(contract::op::kRegister), "mapper/*", nullptr);
      (void)ctx_->send_to_group(contract::kMapperGroup, kedge::share(std::move(ask)));
    }
  }

  void apply(const MessagePtr& m) {
    const std::string& r = m->route.resource;
    size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
    if (b == std::string::npos) return;
    std::string key = r.substr(0, a) + "/" + r.substr(b + 1), type = r.substr(a + 1, b - a - 1);
    bool del = m->route.operation == contract::op::kDelete;
    std::set<std::string> touched;
    if (type == contract::kDevice) {
      if (auto it = devices_.find(key); it != devices_.end()) touched.insert(it->second.protocol);
      if (del)
        devices_.erase(key);
      else if (m->content.is_object())
        touched.insert((devices_[key] = make_obj(m->content)).protocol);
    } else if (type == contract::kDeviceModel) {
      if (del)
        models_.erase(key);
      else if (m->content.is_object())
        models_[key] = make_obj(m->content);
      for (auto& [k, d] : devices_)
        if (d.model == key) touched.insert(d.protocol);
    }
    for (auto& p : touched)
      if (auto it = mappers_.find(p); it != mappers_.end()) sync(it->second);
  }

  // New desired values from the twin (device/<name>): overlaid on the
  // cached device, which its mapper then gets.
  void on_desired(const MessagePtr& m) {
    std::string name = text(m->content, {"device"});
    auto* desired = kedge::json_path::find(m->content, {"desired"});
    if (!desired || !desired->is_object()) return;
    for (auto& [k, d] : devices_) {
      if (text(d.v, {"metadata", "name"}) != name) continue;
      auto* ps = const_cast<json::value*>(kedge::json_path::find(d.v, {"spec", "properties"}));
      if (!ps || !ps->is_array()) continue;
      bool changed = false;
      for (auto& p : ps->as_array()) {
        std::string prop = text(p, {"name"});
        if (!desired->as_object().contains(prop)) continue;
        std::string v = text(desired->as_object().at(prop), {"value"});
        if (text(p, {"desired", "value"}) == v) continue;
        p.as_object()["desired"] = json::object{{"value", v}};
        changed = true;
      }
      if (!changed) continue;
      d.digest = digest(d.v);
      if (auto it = mappers_.find(d.protocol); it != mappers_.end()) sync(it->second);
    }
  }

  std::map<std::string, const Obj*> wanted_devices(const std::string& protocol) {
    std::map<std::string, const Obj*> out;
    for (auto& [k, d] : devices_)
      if (d.protocol == protocol) out[k] = &d;
    return out;
  }
  std::map<std::string, const Obj*> wanted_models(const std::string& protocol) {
    std::map<std::string, const Obj*> out;
    for (auto& [k, d] : devices_)
      if (d.protocol == protocol)
        if (auto it = models_.find(d.model); it != models_.end()) out[it->first] = &it->second;
    return out;
  }

  // ---- reconciling a mapper ----
  enum class Op { kCreateModel, kUpdateModel, kRemoveModel, kRegister, kUpdate, kRemove };
  static bool is_model(Op op) {
    return op == Op::kCreateModel || op == Op::kUpdateModel || op == Op::kRemoveModel;
  }

  void sync(Mapper& m) {
    if (m.busy || !loaded_ || stopping_) return;
    auto devs = wanted_devices(m.protocol);
    auto models = wanted_models(m.protocol);
    // 1. devices that went away, 2. models, 3. devices, 4. models no longer used.
    for (auto& [k, unused] : m.devices)
      if (!devs.count(k)) return call(m, Op::kRemove, k, Obj{});
    for (auto& [k, v] : models) {
      auto it = m.models.find(k);
      if (it == m.models.end()) return call(m, Op::kCreateModel, k, *v);
      if (it->second != v->digest) return call(m, Op::kUpdateModel, k, *v);
    }
    for (auto& [k, v] : devs) {
      auto it = m.devices.find(k);
      if (it == m.devices.end()) return call(m, Op::kRegister, k, *v);
      if (it->second != v->digest) return call(m, Op::kUpdate, k, *v);
    }
    for (auto& [k, unused] : m.models)
      if (!models.count(k)) return call(m, Op::kRemoveModel, k, Obj{});
  }

  void call(Mapper& m, Op op, const std::string& key, const Obj& o) {
    m.busy = true;
    calls_->inc();
    const json::value& obj = o.v;
    uint64_t body = o.digest;
    auto done = [this, protocol = m.protocol, gen = m.generation, op, key, body](Status s) {
      auto it = mappers_.find(protocol);
      if (it == mappers_.end() || it->second.generation != gen) return;  // re-registered
      Mapper& mp = it->second;
      mp.busy = false;
      auto& acked = is_model(op) ? mp.models : mp.devices;
      if (s) {
        mp.failures = 0;
        if (op == Op::kRemove || op == Op::kRemoveModel)
          acked.erase(key);
        else
          acked[key] = body;
        return sync(mp);
      }
      call_errors_->inc();
      // Refused as invalid: retrying will not help until the object changes.
      if (s.code() == Code::kInvalidArgument) {
        log_->error("mapper {} refused {}: {}", mp.name, key, s.message());
        acked[key] = body;
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
    size_t slash = key.find('/');
    std::string resource = key.substr(0, slash) + "/" +
                           std::string(is_model(op) ? contract::kDeviceModel : contract::kDevice) +
                           "/" + key.substr(slash + 1);
    std::string_view verb = op == Op::kRemove || op == Op::kRemoveModel     ? contract::op::kDelete
                            : op == Op::kCreateModel || op == Op::kRegister ? contract::op::kInsert
                                                                            : contract::op::kUpdate;
    auto msg = kedge::make_message(ctx_->name(), m.protocol, std::string(verb), resource, obj);
    ctx_->request(
        m.module, kedge::share(std::move(msg)), call_timeout_,
        [done = std::move(done)](Status s, MessagePtr r) { done(contract::answer_status(s, r)); });
  }

  // A device as its mapper has it now: query "device/<ns>/<name>" ->
  // {"device": {...}, "status": {"twins": [...]}} or {"error": "..."}.
  void live(const MessagePtr& m) {
    const std::string& r = m->route.resource;
    auto fail = [&](const std::string& why) {
      reply(m, kedge::new_response(*m, json::object{{"error", why}}));
    };
    if (r.rfind(contract::kDevicePrefix, 0) != 0) return fail("query device/<namespace>/<name>");
    std::string key = r.substr(contract::kDevicePrefix.size());
    auto d = devices_.find(key);
    if (d == devices_.end()) return fail("no device " + key + " on this node");
    std::string protocol = d->second.protocol;
    auto mp = mappers_.find(protocol);
    if (mp == mappers_.end())
      return fail("no mapper for protocol '" + protocol + "' has registered");
    Message q = kedge::make_message(ctx_->name(), protocol, std::string(contract::op::kQuery), key,
                                    nullptr);
    ctx_->request(
        mp->second.module, kedge::share(std::move(q)), call_timeout_,
        [this, m](Status s, MessagePtr a) {
          if (!s) return reply(m, kedge::new_response(*m, json::object{{"error", s.message()}}));
          reply(m, kedge::new_response(*m, a->content));
        });
  }

  // ---- mappers ----
  void register_mapper(const MessagePtr& m) {
    contract::Registration reg = contract::registration_from_json(m->content);
    if (reg.module.empty()) reg.module = m->route.source;
    if (reg.protocol.empty()) {
      rejected_->inc();
      return reply(m, kedge::new_response(*m, json::object{{"error", "protocol is required"}}));
    }
    if (reg.name.empty()) reg.name = reg.protocol + "-mapper";
    if (auto it = mappers_.find(reg.protocol);
        reg.if_absent && it != mappers_.end() && it->second.module != reg.module) {
      log_->info("mapper {} through {} not taken: {} serves protocol {}", reg.name, reg.module,
                 it->second.name, reg.protocol);
      return reply(m, kedge::new_response(*m, json::object{{"models", json::array()},
                                                           {"devices", json::array()},
                                                           {"skipped", true}}));
    }
    Mapper& mp = mappers_[reg.protocol];
    if (mp.retry) mp.retry->cancel();
    mp = Mapper{};
    mp.name = reg.name;
    mp.protocol = reg.protocol;
    mp.version = reg.version;
    mp.module = reg.module;
    mp.generation = ++generation_;
    mp.retry = std::make_unique<boost::asio::steady_timer>(ctx_->executor());
    mappers_gauge_->set(static_cast<int64_t>(mappers_.size()));
    // With data, it is told its devices in the answer; without, each comes
    // as a call.
    json::array models, devices;
    if (reg.with_data && loaded_) {
      for (auto& [k, v] : wanted_models(reg.protocol)) {
        models.push_back(v->v);
        mp.models[k] = v->digest;
      }
      for (auto& [k, v] : wanted_devices(reg.protocol)) {
        devices.push_back(v->v);
        mp.devices[k] = v->digest;
      }
    }
    log_->info("mapper {} {} registered for protocol {} through {} ({} device(s) in the answer)",
               reg.name, reg.version, reg.protocol, reg.module, devices.size());
    reply(m, kedge::new_response(
                 *m, json::object{{"models", std::move(models)}, {"devices", std::move(devices)}}));
    sync(mp);
  }

  // A report or state from a mapper (device/<ns>/<name>), answered with the
  // twin's verdict when it was a request.
  void report(const MessagePtr& m) {
    const std::string& r = m->route.resource;
    size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
    auto done = [this, m](Status s) {
      if (!s)
        log_->debug("{} on {} refused: {}", m->route.operation, m->route.resource, s.message());
      reply(m, s ? kedge::new_response(*m, json::string("OK"))
                 : kedge::new_response(*m, contract::error_answer(s)));
    };
    if (r.rfind(contract::kDevicePrefix, 0) != 0 || b == std::string::npos || b + 1 >= r.size()) {
      rejected_->inc();
      return done(kedge::invalid_argument("report on device/<namespace>/<name>, not '" + r + "'"));
    }
    // The twin keys devices by name (as KubeEdge 1.12).
    std::string name = r.substr(b + 1);
    if (m->route.operation == contract::op::kState) {
      std::string st = text(m->content, {"state"});
      if (st.empty()) {
        rejected_->inc();
        return done(kedge::invalid_argument("state is required"));
      }
      return to_twin(
          "device/" + name + "/state/update",
          json::object{
              {"event_id", kedge::new_uuid()}, {"timestamp", kedge::now_ms()}, {"state", st}},
          std::move(done));
    }
    reports_->inc();
    json::object twin;
    if (auto* tw = kedge::json_path::find(m->content, {"twins"}); tw && tw->is_array())
      for (auto& t : tw->as_array()) {
        std::string prop = text(t, {"propertyName"});
        if (prop.empty() || !kedge::json_path::find(t, {"reported"})) continue;
        std::string type = text(t, {"reported", "metadata", "type"});
        if (type.empty()) type = text(t, {"reported", "metadata", "propertyType"});  // v1alpha1
        int64_t ts = std::atoll(text(t, {"reported", "metadata", "timestamp"}).c_str());
        json::object actual{
            {"value", text(t, {"reported", "value"})},
            {"metadata", json::object{{"timestamp", ts > 0 ? ts : kedge::now_ms()}}}};
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
            json::object{
                {"event_id", kedge::new_uuid()}, {"timestamp", kedge::now_ms()}, {"twin", twin}},
            std::move(done));
  }

  void reply(const MessagePtr& req, Message r) {
    if (req->header.id.empty()) return;
    r.route.source = ctx_->name();
    (void)ctx_->respond(kedge::share(std::move(r)));
  }

  void to_twin(const std::string& resource, json::object content,
               std::function<void(Status)> done) {
    auto msg =
        kedge::make_message(ctx_->name(), std::string(kedge::contracts::wire::local_group::kTwin),
                            std::string(kedge::op::kUpdate), resource, std::move(content));
    ctx_->request(s_.twin, kedge::share(std::move(msg)), 10s,
                  [done = std::move(done)](Status s, MessagePtr r) {
                    if (!s) return done(s);
                    int code = 0;
                    if (auto* c = r ? kedge::json_path::find(r->content, {"code"}) : nullptr;
                        c && c->is_int64())
                      code = static_cast<int>(c->as_int64());
                    std::string reason = r ? text(r->content, {"reason"}) : std::string();
                    if (code == 404) return done(kedge::not_found(reason));
                    if (code == 400) return done(kedge::invalid_argument(reason));
                    if (code) return done(kedge::internal_error(reason));
                    done({});
                  });
  }

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  Settings s_;
  std::chrono::milliseconds call_timeout_{5000};
  std::map<std::string, Obj> devices_, models_;  // "ns/name"
  std::map<std::string, Mapper> mappers_;        // by protocol
  uint64_t generation_ = 0;
  bool loaded_ = false;
  bool stopping_ = false;
  std::vector<MessagePtr> early_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  kedge::Gauge* mappers_gauge_ = nullptr;
  kedge::Counter *calls_ = nullptr, *call_errors_ = nullptr, *reports_ = nullptr,
                 *rejected_ = nullptr;
};

constexpr kedge::PeerDecl kPeers[] = {
    {contract::kTwinKey, "update device/<name>/twin/update and state/update (requests)", false},
    {kedge::contracts::kMetaManager.key, "query */device and */devicemodel at start", true},
};
constexpr const char* kDeps[] = {kedge::contracts::kTwin.default_name};

}  // namespace

KEDGE_PLUGIN(Dmi, {.name = "dmi",
                   .version = "0.2.0",
                   .description = "DMI device routing: mappers (plugins, or processes through "
                                  "dmi-grpc) register, get their devices, and report through the "
                                  "twin.",
                   .config = kConfig,
                   .dependencies = kDeps,
                   .peers = kPeers})
