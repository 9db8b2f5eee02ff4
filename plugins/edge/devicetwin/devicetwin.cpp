// twin: the edge's DeviceTwin (edge/pkg/devicetwin in KubeEdge 1.12; docs/devices.md).
//
// * State in KubeEdge's tables (`device`, `device_attr`, `device_twin`, the
//   same DDL as EdgeCore 1.12, in <data_dir>/twin.db: metamanager's group
//   commit holds edgecore.db's write lock between its batches): per device and
//   property the desired value (expected) and the reported one (actual),
//   each with its metadata (timestamp) and version ({"cloud":n,"edge":n}).
//   Restarted, the twin has its state back without the cloud.
// * From the cloud: devices and models metamanager stored (it hands them
//   over), membership updates (added and removed devices) and desired values
//   (device/<name>/twin/cloud_updated). A desired value is accepted only if
//   its cloud version is not older than the one stored. New desired values
//   go to the mapper side (module `dmi`, op "desired") if it runs.
// * From mappers (the dmi plugin, or any local module): reported values
//   (op update, device/<name>/twin/update, a twin document as on KubeEdge's
//   MQTT topic) and device state (device/<name>/state/update). Keys and
//   values are checked as KubeEdge checks them; each report is stored, then
//   sent to the cloud (device/<name>/twin/edge_updated,
//   device/<name>/state/update) through edgehub, whose outbox keeps it while
//   the cloud is away. Answered with the updated twin or an error document.
// * Queries: device/<name>/twin/get (the twin), membership (the devices).
#include <spdlog/logger.h>

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <regex>

#include "contracts/eventbus.h"
#include "contracts/modules.h"
#include "contracts/twin.h"
#include "kedge/common/json.h"
#include "kedge/common/sqlite.h"
#include "kedge/plugin.h"

namespace {

namespace json = boost::json;
namespace eb = kedge::contracts::eventbus;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

// KubeEdge 1.12's tables, as its edgecore creates them (edge/pkg/common/dbm).
const std::vector<std::string> kSchema = {
    "CREATE TABLE IF NOT EXISTS `device` (`id` varchar(64) NOT NULL PRIMARY KEY, `name` text, "
    "`description` text, `state` text, `last_online` text);"
    "CREATE TABLE IF NOT EXISTS `device_attr` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, "
    "`deviceid` text, `name` text, `description` text, `value` text, `optional` bool, "
    "`attr_type` text, `metadata` text);"
    "CREATE TABLE IF NOT EXISTS `device_twin` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, "
    "`deviceid` text, `name` text, `description` text, `expected` text, `actual` text, "
    "`expected_meta` text, `actual_meta` text, `expected_version` text, `actual_version` text, "
    "`optional` bool, `attr_type` text, `metadata` text);",
};

const std::regex kKey("^[a-zA-Z0-9-_.,:/@#]{1,128}$");
const std::regex kValue("^[a-zA-Z0-9-_.,:/@#]{1,512}$");

using kedge::json_path::find;
constexpr auto& str = kedge::json_path::scalar_text;
using kedge::now_ms;
json::value parse_or_null(const std::string& text) {
  json::error_code ec;
  auto v = json::parse(text, ec);
  return ec ? json::value() : v;
}

struct TwinRow {
  std::string expected, actual, expected_meta, actual_meta, expected_version, actual_version, type;
};

struct Settings {
  std::string db_path, dmi, edgehub, metamanager, eventbus;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    {"db_path", &Settings::db_path, "\"\"",
     "SQLite database of KubeEdge's device tables (default <data_dir>/twin.db)."},
    kedge::contracts::peer_setting(kedge::contracts::kDmi, &Settings::dmi,
                                   "The module mappers are driven by."),
    kedge::contracts::peer_setting(kedge::contracts::kEdgeHub, &Settings::edgehub,
                                   "The module that carries messages to the cloud."),
    kedge::contracts::peer_setting(kedge::contracts::kMetaManager, &Settings::metamanager,
                                   "The module stored device and model changes come from."),
    kedge::contracts::peer_setting(kedge::contracts::kEventBus, &Settings::eventbus,
                                   "The module that publishes deltas, documents and membership "
                                   "updates to mappers over MQTT."),
};
constexpr auto kConfig = kedge::config_keys(kSettings);

class DeviceTwin final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    auto set = kedge::read_settings(kSettings, cfg);
    dmi_ = set.dmi;
    hub_ = set.edgehub;
    metamanager_ = set.metamanager;
    eventbus_ = set.eventbus;
    std::string path = set.db_path;
    if (path.empty()) path = (ctx.data_dir() / "twin.db").string();
    auto db = kedge::sqlite::Db::open(path);
    if (!db.status) return db.status;
    db_ = std::move(db.value);
    if (Status s = db_->migrate("devicetwin", kSchema); !s) return s;
    auto& m = ctx.metrics();
    reports_ = &m.counter("kedge_twin_reports_total", "Reported values stored and sent up");
    desired_ = &m.counter("kedge_twin_desired_total", "Desired values accepted from the cloud");
    rejected_ = &m.counter("kedge_twin_rejected_total", "Twin updates refused (invalid, stale)");
    return load();
  }
  Status start() override { return {}; }
  Status stop() override { return {}; }

  void on_message(const MessagePtr& m) override {
    if (m->is_response()) return;
    const std::string& r = m->route.resource;
    const std::string& op = m->route.operation;
    if (op == kedge::op::kConnect) return;
    // From metamanager: <ns>/device/<name>, <ns>/devicemodel/<name>; the
    // DMI side (if it runs) gets them next, to hand on to mappers.
    if (m->route.source == metamanager_) {
      on_stored(m);
      return to_dmi(m);
    }
    if (r == "membership" || r.rfind("membership", 0) == 0) {
      if (op == kedge::op::kUpdate) {
        on_membership(m);
        return ack(m);
      }
      return reply(m, membership());
    }
    // device/<name>/...
    if (r.rfind("device/", 0) != 0) return;
    size_t slash = r.find('/', 7);
    if (slash == std::string::npos) return;
    std::string name = r.substr(7, slash - 7), what = r.substr(slash + 1);
    if (what == "twin/cloud_updated") {
      on_cloud_twin(m, name);
      return ack(m);  // stored: the cloud stops resending it
    }
    if (what == "twin/update") return on_report(m, name);
    if (what == "state/update") return on_state(m, name);
    if (what == "twin/get") {
      reply(m, twin_doc(name));
      return publish_delta(name);
    }
    log_->debug("{} on {}: not handled", op, r);
  }

 private:
  // ---- storage ----
  Status load() {
    auto sel = db_->prepare("SELECT id, state FROM device");
    if (!sel.status) return sel.status;
    while (sel.value.step().row) devices_[sel.value.text(0)] = sel.value.text(1);
    log_->info("{} device(s) in the twin tables", devices_.size());
    return {};
  }

  std::map<std::string, TwinRow> twins(const std::string& id) {
    std::map<std::string, TwinRow> out;
    auto sel = db_->prepare(
        "SELECT name, expected, actual, expected_meta, actual_meta, expected_version, "
        "actual_version, attr_type FROM device_twin WHERE deviceid = ?");
    if (!sel.status) return out;
    sel.value.bind(1, id);
    while (sel.value.step().row)
      out[sel.value.text(0)] = {sel.value.text(1), sel.value.text(2), sel.value.text(3),
                                sel.value.text(4), sel.value.text(5), sel.value.text(6),
                                sel.value.text(7)};
    return out;
  }

  Status put_twin(const std::string& id, const std::string& name, const TwinRow& t) {
    auto del = db_->prepare("DELETE FROM device_twin WHERE deviceid = ? AND name = ?");
    if (!del.status) return del.status;
    del.value.bind(1, id).bind(2, name);
    if (Status s = del.value.run(); !s) return s;
    auto ins = db_->prepare(
        "INSERT INTO device_twin(deviceid, name, description, expected, actual, expected_meta, "
        "actual_meta, expected_version, actual_version, optional, attr_type, metadata) "
        "VALUES(?, ?, '', ?, ?, ?, ?, ?, ?, 1, ?, ?)");
    if (!ins.status) return ins.status;
    ins.value.bind(1, id)
        .bind(2, name)
        .bind(3, t.expected)
        .bind(4, t.actual)
        .bind(5, t.expected_meta)
        .bind(6, t.actual_meta)
        .bind(7, t.expected_version)
        .bind(8, t.actual_version)
        .bind(9, t.type)
        .bind(10, json::serialize(json::object{{"type", t.type}}));
    return ins.value.run();
  }

  Status put_device(const std::string& id, const std::string& description) {
    auto up = db_->prepare(
        "INSERT INTO device(id, name, description, state, last_online) VALUES(?, ?, ?, 'unknown', "
        "'') ON CONFLICT(id) DO UPDATE SET description = excluded.description");
    if (!up.status) return up.status;
    up.value.bind(1, id).bind(2, id).bind(3, description);
    if (Status s = up.value.run(); !s) return s;
    devices_.try_emplace(id, "unknown");
    return {};
  }

  Status remove_device(const std::string& id) {
    kedge::sqlite::Transaction tx(*db_);
    for (const char* sql :
         {"DELETE FROM device_twin WHERE deviceid = ?",
          "DELETE FROM device_attr WHERE deviceid = ?", "DELETE FROM device WHERE id = ?"}) {
      auto st = db_->prepare(sql);
      if (!st.status) return st.status;
      st.value.bind(1, id);
      if (Status s = st.value.run(); !s) return s;
    }
    devices_.erase(id);
    return tx.commit();
  }

  // ---- documents (KubeEdge devicetwin dttype) ----
  static json::object version_of(const std::string& text) {
    auto v = parse_or_null(text);
    return v.is_object() ? v.as_object() : json::object{{"cloud", 0}, {"edge", 0}};
  }
  // One property as a MsgTwin.
  static json::object msg_twin(const TwinRow& t) {
    json::object o{{"metadata", json::object{{"type", t.type}}}, {"optional", true}};
    if (!t.expected.empty() || !t.expected_meta.empty()) {
      json::object e{{"value", t.expected}};
      if (auto m = parse_or_null(t.expected_meta); m.is_object()) e["metadata"] = m;
      o["expected"] = e;
      o["expected_version"] = version_of(t.expected_version);
    }
    if (!t.actual.empty()) {
      json::object a{{"value", t.actual}};
      if (auto m = parse_or_null(t.actual_meta); m.is_object()) a["metadata"] = m;
      o["actual"] = a;
      o["actual_version"] = version_of(t.actual_version);
    }
    return o;
  }
  json::object twin_doc(const std::string& id) {
    json::object twin;
    for (auto& [name, t] : twins(id)) twin[name] = msg_twin(t);
    return {{"event_id", kedge::new_uuid()}, {"timestamp", now_ms()}, {"twin", std::move(twin)}};
  }

  // ---- to mappers over MQTT (through eventbus, if it runs) ----
  void to_bus(const std::string& topic, json::object doc) {
    auto msg =
        kedge::make_message(ctx_->name(), "bus", std::string(eb::kPublish), topic, std::move(doc));
    Status s = ctx_->send(eventbus_, kedge::share(std::move(msg)));
    if (!s && s.code() != Code::kNotFound)
      log_->warn("{} not passed to eventbus: {}", topic, s.message());
  }
  // The desired values a mapper has yet to apply (expected != actual), as
  // KubeEdge's twin/update/delta.
  void publish_delta(const std::string& id) {
    json::object delta, twin;
    for (auto& [name, t] : twins(id)) {
      twin[name] = msg_twin(t);
      if (!t.expected.empty() && t.expected != t.actual) delta[name] = t.expected;
    }
    if (delta.empty()) return;
    to_bus(eb::device_topic(id, "twin/update/delta"), {{"event_id", kedge::new_uuid()},
                                                       {"timestamp", now_ms()},
                                                       {"twin", std::move(twin)},
                                                       {"delta", std::move(delta)}});
  }
  json::object membership() {
    json::array devs;
    for (auto& [id, state] : devices_)
      devs.push_back(json::object{{"id", id}, {"name", id}, {"state", state}});
    return {{"event_id", kedge::new_uuid()}, {"timestamp", now_ms()}, {"devices", std::move(devs)}};
  }
  static json::object error_doc(int code, const std::string& reason) {
    return {{"event_id", kedge::new_uuid()},
            {"timestamp", now_ms()},
            {"code", code},
            {"reason", reason}};
  }

  // The cloud's messages are ACKed (through edgehub) once stored.
  void ack(const MessagePtr& m) {
    if (m->route.source == ctx_->name() || m->header.id.empty()) return;
    (void)ctx_->send(hub_, kedge::share(kedge::new_response(*m, json::string("OK"))), 5s);
  }

  void reply(const MessagePtr& m, json::value content) {
    if (m->header.id.empty()) return;
    // A result carries the request's event id, as KubeEdge's do.
    json::value req =
        m->content.is_string() ? parse_or_null(std::string(m->content.as_string())) : m->content;
    if (std::string ev = kedge::json_path::string_at(req, {"event_id"});
        !ev.empty() && content.is_object())
      content.as_object()["event_id"] = ev;
    Message r = kedge::new_response(*m, std::move(content));
    r.route.source = ctx_->name();
    (void)ctx_->respond(kedge::share(std::move(r)));
  }

  // ---- from the cloud ----
  std::string type_in_model(const std::string& model_key, const std::string& prop) {
    auto it = models_.find(model_key);
    return kedge::contracts::twin::value_type(it == models_.end() ? nullptr : &it->second, prop);
  }

  void on_stored(const MessagePtr& m) {
    const std::string& r = m->route.resource;
    size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
    if (b == std::string::npos) return;
    std::string ns = r.substr(0, a), type = r.substr(a + 1, b - a - 1), name = r.substr(b + 1);
    bool del = m->route.operation == kedge::op::kDelete;
    if (type == "devicemodel") {
      if (del)
        models_.erase(ns + "/" + name);
      else if (m->content.is_object())
        models_[ns + "/" + name] = m->content;
      return;
    }
    if (type != "device") return;
    if (del) {
      if (Status s = remove_device(name); !s)
        log_->error("cannot remove device {}: {}", name, s.message());
      return;
    }
    if (!m->content.is_object()) return;
    const json::value& dev = m->content;
    if (Status s = put_device(name, str(dev, {"metadata", "labels", "description"})); !s)
      return log_->error("cannot store device {}: {}", name, s.message());
    // Properties: rows for each, desired values where given.
    std::string model = ns + "/" + str(dev, {"spec", "deviceModelRef", "name"});
    auto have = twins(name);
    auto* ps = find(dev, {"spec", "properties"});
    int64_t cloud = std::atoll(str(dev, {"metadata", "resourceVersion"}).c_str());
    if (ps && ps->is_array())
      for (auto& p : ps->as_array()) {
        std::string prop = str(p, {"name"});
        if (prop.empty()) continue;
        TwinRow t = have.count(prop) ? have[prop] : TwinRow{};
        t.type = type_in_model(model, prop);
        if (auto* d = find(p, {"desired", "value"})) {
          std::string v = d->is_string() ? std::string(d->as_string()) : json::serialize(*d);
          if (v != t.expected) {
            t.expected = v;
            t.expected_meta = json::serialize(json::object{{"timestamp", now_ms()}});
            t.expected_version = json::serialize(json::object{{"cloud", cloud}, {"edge", 0}});
          }
        }
        if (Status s = put_twin(name, prop, t); !s)
          log_->error("cannot store twin {}/{}: {}", name, prop, s.message());
      }
    push_desired(name);
  }

  void on_membership(const MessagePtr& m) {
    json::array added_out, removed_out;
    if (auto* added = find(m->content, {"added_devices"}); added && added->is_array())
      for (auto& d : added->as_array()) {
        std::string id = str(d, {"id"});
        if (id.empty()) continue;
        (void)put_device(id, str(d, {"description"}));
        if (auto* tw = find(d, {"twin"}); tw && tw->is_object())
          apply_desired(id, tw->as_object(), 0);
        added_out.push_back(d);
      }
    if (auto* removed = find(m->content, {"removed_devices"}); removed && removed->is_array())
      for (auto& d : removed->as_array())
        if (std::string id = str(d, {"id"}); !id.empty()) {
          (void)remove_device(id);
          removed_out.push_back(d);
        }
    // Mappers on MQTT learn of it on membership/updated.
    if (!added_out.empty() || !removed_out.empty())
      to_bus(eb::node_topic(ctx_->node_name(), "membership/updated"),
             {{"event_id", kedge::new_uuid()},
              {"timestamp", now_ms()},
              {"added_devices", std::move(added_out)},
              {"removed_devices", std::move(removed_out)}});
    for (auto& d : kedge::json_path::array_at(m->content, {"added_devices"}))
      if (std::string id = str(d, {"id"}); !id.empty()) publish_delta(id);
  }

  // Desired values: taken unless older than the stored cloud version.
  int apply_desired(const std::string& id, const json::object& twin, int64_t message_cloud) {
    auto have = twins(id);
    int taken = 0;
    for (auto& [prop, tw] : twin) {
      auto* v = find(tw, {"expected", "value"});
      if (!v) continue;
      TwinRow t = have.count(std::string(prop)) ? have[std::string(prop)] : TwinRow{};
      // The cloud's version of this value: the twin's own expected_version
      // (as KubeEdge's devicecontroller sends it), else the message's.
      int64_t cloud = message_cloud;
      if (auto* c = find(tw, {"expected_version", "cloud"}); c && c->is_int64() && c->as_int64())
        cloud = c->as_int64();
      int64_t stored = 0;
      json::object ver = version_of(t.expected_version);
      if (auto* c = ver.if_contains("cloud"); c && c->is_int64()) stored = c->as_int64();
      if (cloud != 0 && cloud < stored) {
        rejected_->inc();
        continue;
      }
      t.expected = v->is_string() ? std::string(v->as_string()) : json::serialize(*v);
      t.expected_meta = json::serialize(json::object{{"timestamp", now_ms()}});
      t.expected_version =
          json::serialize(json::object{{"cloud", cloud ? cloud : stored}, {"edge", 0}});
      if (std::string type = str(tw, {"metadata", "type"}); !type.empty()) t.type = type;
      if (Status s = put_twin(id, std::string(prop), t); !s) {
        log_->error("cannot store desired {}/{}: {}", id, std::string(prop), s.message());
        continue;
      }
      ++taken;
      desired_->inc();
    }
    return taken;
  }

  void on_cloud_twin(const MessagePtr& m, const std::string& id) {
    auto* tw = find(m->content, {"twin"});
    if (!tw || !tw->is_object()) return;
    if (!devices_.count(id)) (void)put_device(id, "");
    int64_t cloud = std::atoll(m->header.resource_version.c_str());
    if (apply_desired(id, tw->as_object(), cloud) > 0) push_desired(id);
  }

  void to_dmi(const MessagePtr& m) {
    Status s = ctx_->send(dmi_, m, 1s);
    if (!s && s.code() != Code::kNotFound)
      log_->warn("{} of {} not passed to dmi: {}", m->route.operation, m->route.resource,
                 s.message());
  }

  // The desired values to the mapper side, if one runs here.
  void push_desired(const std::string& id) {
    publish_delta(id);
    json::object desired;
    for (auto& [name, t] : twins(id))
      if (!t.expected.empty())
        desired[name] = json::object{{"value", t.expected}, {"type", t.type}};
    if (desired.empty()) return;
    auto msg = kedge::make_message(ctx_->name(), dmi_, "desired", "device/" + id,
                                   json::object{{"device", id}, {"desired", desired}});
    Status s = ctx_->send(dmi_, kedge::share(std::move(msg)));
    if (!s && s.code() != Code::kNotFound)
      log_->warn("desired values of {} not passed on: {}", id, s.message());
  }

  // ---- from mappers ----
  void on_report(const MessagePtr& m, const std::string& id) {
    json::value content = m->content;
    if (content.is_string()) content = parse_or_null(std::string(content.as_string()));
    auto* tw = find(content, {"twin"});
    if (!tw || !tw->is_object()) {
      rejected_->inc();
      return reply(m, error_doc(400, "a twin update needs a \"twin\" object"));
    }
    if (!devices_.count(id)) {
      rejected_->inc();
      return reply(m, error_doc(404, "device \"" + id + "\" is not a member of this node"));
    }
    auto have = twins(id);
    json::object up;
    kedge::sqlite::Transaction tx(*db_);  // one commit for the whole report
    for (auto& [prop, t] : tw->as_object()) {
      std::string key(prop);
      auto* v = find(t, {"actual", "value"});
      if (!std::regex_match(key, kKey)) {
        rejected_->inc();
        return reply(m, error_doc(400, "twin key \"" + key + "\" is not valid"));
      }
      if (!v) continue;
      std::string value = v->is_string() ? std::string(v->as_string()) : json::serialize(*v);
      if (!std::regex_match(value, kValue)) {
        rejected_->inc();
        return reply(m, error_doc(400, "value of twin \"" + key + "\" is not valid"));
      }
      TwinRow row = have.count(key) ? have[key] : TwinRow{};
      bool changed = row.actual != value;
      if (std::string type = str(t, {"metadata", "type"}); !type.empty()) {
        changed = changed || row.type != type;
        row.type = type;
      }
      if (row.type.empty()) row.type = "string";
      int64_t ts = now_ms();
      if (auto* mts = find(t, {"actual", "metadata", "timestamp"}); mts && mts->is_int64())
        ts = mts->as_int64();
      auto ver = version_of(row.actual_version);
      int64_t edge = ver.contains("edge") && ver["edge"].is_int64() ? ver["edge"].as_int64() : 0;
      row.actual = value;
      row.actual_meta = json::serialize(json::object{{"timestamp", ts}});
      row.actual_version = json::serialize(json::object{{"cloud", 0}, {"edge", edge + 1}});
      if (Status s = put_twin(id, key, row); !s)
        return reply(m, error_doc(500, "cannot store twin " + key + ": " + s.message()));
      if (!changed) continue;  // the cloud has this value already
      up[key] = json::object{
          {"actual", json::object{{"value", value}, {"metadata", json::object{{"timestamp", ts}}}}},
          {"metadata", json::object{{"type", row.type}}}};
    }
    if (Status s = tx.commit(); !s)
      return reply(m, error_doc(500, "cannot store the report: " + s.message()));
    // The document: each changed property before and after (KubeEdge's
    // twin/update/document).
    if (!up.empty()) {
      auto now = twins(id);
      json::object doc;
      for (auto& [key, v] : up) {
        std::string k(key);
        json::object e{{"current", msg_twin(now[k])}};
        e["last"] = have.count(k) ? json::value(msg_twin(have[k])) : json::value(nullptr);
        doc[k] = std::move(e);
      }
      to_bus(eb::device_topic(id, "twin/update/document"),
             {{"event_id", kedge::new_uuid()}, {"timestamp", now_ms()}, {"twin", std::move(doc)}});
    }
    if (!up.empty()) {
      // Every reported value goes up, not only the changed ones: the newest
      // report of a device then stands for all before it, and edgehub keeps
      // only that one while the cloud is slow or away.
      reports_->inc();
      upstream("device/" + id + "/twin/edge_updated", json::object{{"event_id", kedge::new_uuid()},
                                                                   {"timestamp", now_ms()},
                                                                   {"twin", reported(id)}});
    }
    reply(m, twin_doc(id));
  }

  // All reported values of a device, as the cloud's twin update wants them.
  json::object reported(const std::string& id) {
    json::object out;
    for (auto& [name, t] : twins(id)) {
      if (t.actual.empty()) continue;
      json::object actual{{"value", t.actual}};
      if (auto md = parse_or_null(t.actual_meta); md.is_object()) actual["metadata"] = md;
      out[name] =
          json::object{{"actual", std::move(actual)}, {"metadata", json::object{{"type", t.type}}}};
    }
    return out;
  }

  void on_state(const MessagePtr& m, const std::string& id) {
    json::value content = m->content;
    if (content.is_string()) content = parse_or_null(std::string(content.as_string()));
    std::string state = str(content, {"state"});
    if (state.empty() || !devices_.count(id)) {
      rejected_->inc();
      return reply(m,
                   error_doc(state.empty() ? 400 : 404,
                             state.empty() ? "a state update needs \"state\""
                                           : "device \"" + id + "\" is not a member of this node"));
    }
    std::string now = std::to_string(now_ms());
    auto up = db_->prepare("UPDATE device SET state = ?, last_online = ? WHERE id = ?");
    if (up.status) {
      up.value.bind(1, state).bind(2, state == "online" ? now : std::string()).bind(3, id);
      (void)up.value.run();
    }
    bool changed = devices_[id] != state;
    devices_[id] = state;
    if (changed)
      upstream(
          "device/" + id + "/state/update",
          json::object{{"event_id", kedge::new_uuid()}, {"timestamp", now_ms()}, {"state", state}});
    reply(m, json::object{{"event_id", kedge::new_uuid()},
                          {"timestamp", now_ms()},
                          {"device", json::object{{"id", id}, {"state", state}}}});
  }

  // To the cloud through edgehub (its outbox keeps it while offline).
  void upstream(const std::string& resource, json::object content) {
    auto msg =
        kedge::make_message(ctx_->name(), "resource", "update", resource, std::move(content));
    Status s = ctx_->send(hub_, kedge::share(std::move(msg)), 1s);
    if (!s && s.code() != Code::kNotFound) log_->warn("{} not sent up: {}", resource, s.message());
  }

  kedge::Context* ctx_ = nullptr;
  std::string dmi_, hub_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<kedge::sqlite::Db> db_;
  std::map<std::string, std::string> devices_;  // id -> state
  std::map<std::string, json::value> models_;   // ns/name
  kedge::Counter *reports_ = nullptr, *desired_ = nullptr, *rejected_ = nullptr;
  std::string metamanager_, eventbus_;
};

constexpr kedge::PeerDecl kPeers[] = {
    {kedge::contracts::kDmi.key, "stored device and model changes, \"desired\" values", true},
    {kedge::contracts::kEventBus.key,
     "publish of twin/update/delta, twin/update/document, membership/updated", true},
    {kedge::contracts::kEdgeHub.key,
     "twin and state updates up to the cloud, ACKs of the cloud's messages", true},
};

}  // namespace

KEDGE_PLUGIN(DeviceTwin, {.name = "twin",
                          .version = "0.1.0",
                          .group = "twin",
                          .description = "DeviceTwin: devices' desired and reported values in "
                                         "KubeEdge's tables, synced with the cloud both ways.",
                          .config = kConfig,
                          .peers = kPeers})
