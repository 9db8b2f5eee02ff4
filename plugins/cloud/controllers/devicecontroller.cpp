// devicecontroller: devices between the API and the edge nodes (docs/devices.md).
//
// Down (as KubeEdge 1.12 cloud/pkg/devicecontroller does): watches Devices and
// DeviceModels (devices.kubeedge.io/v1beta1) and sends each device's node
// * a membership update (group twin, node/<node>/membership, op update,
//   added_devices / removed_devices) when a device joins or leaves it;
// * the device and its model (group resource,
//   node/<node>/<ns>/device/<name> and .../devicemodel/<model>, insert,
//   update, delete, with the resourceVersion);
// * the desired twin values when they change (group twin,
//   node/<node>/device/<name>/twin/cloud_updated, op update,
//   {"twin":{<property>:{"expected":{"value"},"metadata":{"type"}}}}).
// The node is spec.nodeName, or (v1alpha2 style) the first value of the
// first nodeSelector term.
//
// Up: device/<name>/twin/edge_updated (reported values) and
// device/<name>/state/update (online, offline, ...) from the device's own
// node are written to the Device's status (twins[].reported, state,
// lastOnlineTime).
#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include "contracts/controllers.h"
#include "contracts/twin.h"
#include "device_versions.h"
#include "k8s.h"
#include "kedge/common/json.h"
#include "kedge/plugin.h"

namespace {

namespace json = boost::json;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

const char* kDevices = "/apis/devices.kubeedge.io/v1beta1/devices";
const char* kModels = "/apis/devices.kubeedge.io/v1beta1/devicemodels";

using kedge::json_path::find;
constexpr auto& str = kedge::json_path::scalar_text;
using kedge::now_ms;

// The node a device is bound to.
std::string node_of(const json::value& dev) {
  std::string n = str(dev, {"spec", "nodeName"});
  if (!n.empty()) return n;
  auto* terms = find(dev, {"spec", "nodeSelector", "nodeSelectorTerms"});
  if (!terms || !terms->is_array() || terms->as_array().empty()) return {};
  auto* exprs = find(terms->as_array()[0], {"matchExpressions"});
  if (!exprs || !exprs->is_array() || exprs->as_array().empty()) return {};
  auto* vals = find(exprs->as_array()[0], {"values"});
  if (!vals || !vals->is_array() || vals->as_array().empty() || !vals->as_array()[0].is_string())
    return {};
  return std::string(vals->as_array()[0].as_string());
}

// property -> desired value (spec.properties[].desired.value).
std::map<std::string, std::string> desired_of(const json::value& dev) {
  std::map<std::string, std::string> out;
  auto* ps = find(dev, {"spec", "properties"});
  if (!ps || !ps->is_array()) return out;
  for (auto& p : ps->as_array()) {
    auto* d = find(p, {"desired", "value"});
    if (d)
      out[str(p, {"name"})] = d->is_string() ? std::string(d->as_string()) : json::serialize(*d);
  }
  return out;
}

class DeviceController final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    s_ = kedge::read_settings(kedge::contracts::kControllerSettings, cfg);
    log_ = ctx.logger();
    auto& m = ctx.metrics();
    sent_ = &m.counter("kedge_devicecontroller_sent_total", "Messages sent to edge nodes");
    reports_ = &m.counter("kedge_devicecontroller_reports_total",
                          "Twin and state reports written to Device status");
    refused_ = &m.counter("kedge_devicecontroller_refused_total",
                          "Reports refused (not the node's device, or invalid)");
    return {};
  }
  Status start() override {
    watches_.emplace(
        *ctx_, s_.apiserver,
        [this](const std::string& path, const std::string& type, const json::value& obj) {
          if (path == kModels)
            on_model(type, obj);
          else
            on_device(type, obj);
        });
    watches_->watch(kModels);
    watches_->watch(kDevices);
    return {};
  }
  Status stop() override {
    if (watches_) watches_->stop();
    return {};
  }

  void on_message(const MessagePtr& m) override {
    const std::string& op = m->route.operation;
    if (op == "watchevent") {
      if (watches_) watches_->on_message(m);
      return;
    }
    if (op == "resync") return resync(str(m->content, {"node"}));
    if (op == "connected") {
      // An edge that announced kedge's protocol at connect acts on v1beta1
      // objects; any other speaks KubeEdge 1.12's wire (v1alpha2).
      std::string node = str(m->content, {"client_id"});
      auto* k = find(m->content, {"kedge_edge"});
      if (k && k->is_bool() && k->as_bool())
        kedge_edges_.insert(node);
      else
        kedge_edges_.erase(node);
      return resync(node);
    }
    if (op == "disconnected") return;
    if (m->route.resource.rfind("node/", 0) == 0 && !m->is_response()) return on_report(m);
  }

 private:
  struct Dev {
    std::string node;
    json::value obj;
  };
  std::set<std::string> kedge_edges_;  // nodes whose edge is kedge's

  static std::string key(const json::value& o) {
    return str(o, {"metadata", "namespace"}) + "/" + str(o, {"metadata", "name"});
  }

  void send(const std::string& node, const std::string& group, const std::string& op,
            const std::string& resource, json::value content, const std::string& rv = "") {
    auto m = kedge::make_message(ctx_->name(), group, op, "node/" + node + "/" + resource,
                                 std::move(content));
    m.header.resource_version = rv;
    if (Status s = ctx_->send(s_.cloudhub, kedge::share(std::move(m)), 2s); !s)
      log_->error("cannot hand {} {} for node {} to cloudhub: {}", op, resource, node, s.message());
    else
      sent_->inc();
  }
  // A Device or DeviceModel as the node's edge decodes it: v1beta1 for
  // kedge's edges, v1alpha2 for KubeEdge 1.12's (and for a node not seen
  // since start: kedge's edge takes either).
  void send_object(const std::string& node, const std::string& op, const std::string& type,
                   const json::value& obj) {
    json::value content = kedge_edges_.count(node) ? obj
                          : type == "device"       ? kedge::devices::device_to_v1alpha2(obj)
                                                   : kedge::devices::model_to_v1alpha2(obj);
    send(node, "resource", op,
         str(obj, {"metadata", "namespace"}) + "/" + type + "/" + str(obj, {"metadata", "name"}),
         std::move(content), str(obj, {"metadata", "resourceVersion"}));
  }

  // A desired value as KubeEdge 1.12's devicecontroller sends it (a
  // dttype.MsgTwin): the expected value with its time, the type, and
  // expected_version {cloud: the Device's resourceVersion, edge: 0}. A 1.12
  // edge's twin refuses a cloud twin without a version ("Version not allowed
  // be nil while syncing", dtmanager/twin.go dealVersion).
  json::object msg_twin(const json::value& dev, const std::string& model_key,
                        const std::string& prop, const std::string& value) {
    int64_t cloud_version = 0;
    try {
      cloud_version = std::stoll(str(dev, {"metadata", "resourceVersion"}));
    } catch (...) {
    }
    return json::object{
        {"expected",
         json::object{{"value", value}, {"metadata", json::object{{"timestamp", now_ms()}}}}},
        {"optional", false},
        {"metadata", json::object{{"type", type_of(model_key, prop)}}},
        {"expected_version", json::object{{"cloud", cloud_version}, {"edge", 0}}}};
  }

  // The device as a membership entry (KubeEdge devicetwin dttype.Device).
  json::object member(const json::value& dev) {
    json::object twin;
    std::string model_key =
        str(dev, {"metadata", "namespace"}) + "/" + str(dev, {"spec", "deviceModelRef", "name"});
    for (auto& [prop, value] : desired_of(dev)) twin[prop] = msg_twin(dev, model_key, prop, value);
    return {{"id", str(dev, {"metadata", "name"})},
            {"name", str(dev, {"metadata", "name"})},
            {"description", str(dev, {"metadata", "labels", "description"})},
            {"twin", std::move(twin)}};
  }
  // A property's type from its model (lower-case, as twin metadata types).
  std::string type_of(const std::string& model_key, const std::string& prop) {
    auto it = models_.find(model_key);
    return kedge::contracts::twin::value_type(it == models_.end() ? nullptr : &it->second, prop);
  }

  void membership(const std::string& node, const char* field, const json::value& dev) {
    send(node, "twin", "update", "membership",
         json::object{{"event_id", kedge::new_uuid()},
                      {"timestamp", now_ms()},
                      {field, json::array{member(dev)}}});
  }

  void on_device(const std::string& type, const json::value& dev) {
    std::string k = key(dev), node = node_of(dev);
    std::string model =
        str(dev, {"metadata", "namespace"}) + "/" + str(dev, {"spec", "deviceModelRef", "name"});
    auto old = devices_.find(k);
    if (type == "DELETED") {
      if (old != devices_.end() && !old->second.node.empty()) remove_from(old->second.node, dev);
      devices_.erase(k);
      return;
    }
    bool moved = old != devices_.end() && old->second.node != node;
    if (moved && !old->second.node.empty()) remove_from(old->second.node, old->second.obj);
    bool known = old != devices_.end() && !moved;
    // A change of status alone (the edge's own reports) is not sent back
    // down: with 1,000 devices reporting every 10 s that would be 200
    // messages a second to the node, each stored and routed for nothing.
    bool same = known && edge_view(old->second.obj) == edge_view(dev);
    auto before = known ? desired_of(old->second.obj) : std::map<std::string, std::string>{};
    devices_[k] = {node, dev};
    if (node.empty() || same) return;
    if (!known) membership(node, "added_devices", dev);
    if (auto m = models_.find(model); m != models_.end())
      send_object(node, known ? "update" : "insert", "devicemodel", m->second);
    send_object(node, known ? "update" : "insert", "device", dev);
    // Desired values that changed: to the twin.
    json::object twin;
    for (auto& [prop, value] : desired_of(dev))
      if (!known || before[prop] != value) twin[prop] = msg_twin(dev, model, prop, value);
    if (!twin.empty())
      send(
          node, "twin", "update",
          "device/" + str(dev, {"metadata", "name"}) + "/twin/cloud_updated",
          json::object{
              {"event_id", kedge::new_uuid()}, {"timestamp", now_ms()}, {"twin", std::move(twin)}});
  }

  // What the edge is sent of a device: its metadata and spec, without what
  // changes on every write (resourceVersion, generation, managedFields) and
  // without its status.
  static std::string edge_view(const json::value& dev) {
    json::object v;
    if (auto* md = find(dev, {"metadata"}); md && md->is_object()) {
      json::object m = md->as_object();
      m.erase("resourceVersion");
      m.erase("generation");
      m.erase("managedFields");
      v["metadata"] = std::move(m);
    }
    if (auto* spec = find(dev, {"spec"})) v["spec"] = *spec;
    return json::serialize(v);
  }

  void remove_from(const std::string& node, const json::value& dev) {
    membership(node, "removed_devices", dev);
    send_object(node, "delete", "device", dev);
  }

  void on_model(const std::string& type, const json::value& model) {
    std::string k = key(model);
    if (type == "DELETED")
      models_.erase(k);
    else
      models_[k] = model;
    std::set<std::string> nodes;
    for (auto& [dk, d] : devices_)
      if (!d.node.empty() && str(d.obj, {"metadata", "namespace"}) + "/" +
                                     str(d.obj, {"spec", "deviceModelRef", "name"}) ==
                                 k)
        nodes.insert(d.node);
    for (auto& n : nodes)
      send_object(n,
                  type == "DELETED" ? "delete"
                  : type == "ADDED" ? "insert"
                                    : "update",
                  "devicemodel", model);
  }

  void resync(const std::string& node) {
    if (node.empty()) return;
    for (auto& [k, d] : devices_) {
      if (d.node != node) continue;
      std::string model = str(d.obj, {"metadata", "namespace"}) + "/" +
                          str(d.obj, {"spec", "deviceModelRef", "name"});
      membership(node, "added_devices", d.obj);
      if (auto m = models_.find(model); m != models_.end())
        send_object(node, "update", "devicemodel", m->second);
      send_object(node, "update", "device", d.obj);
    }
  }

  // ---- reports: node/<node>/device/<name>/twin/edge_updated, .../state/update ----
  void on_report(const MessagePtr& m) {
    const std::string& r = m->route.resource;
    std::vector<std::string> p;
    for (size_t st = 0;;) {
      size_t sl = r.find('/', st);
      p.push_back(r.substr(st, sl == std::string::npos ? std::string::npos : sl - st));
      if (sl == std::string::npos) break;
      st = sl + 1;
    }
    if (p.size() < 5 || p[2] != "device") {
      log_->debug("{} on {}: not a device report", m->route.operation, r);
      return;
    }
    const std::string &node = p[1], &name = p[3];
    std::string what = p[4] + (p.size() > 5 ? "/" + p[5] : "");
    // The device must be bound to the reporting node (any namespace).
    const Dev* dev = nullptr;
    for (auto& [k, d] : devices_)
      if (str(d.obj, {"metadata", "name"}) == name && d.node == node) dev = &d;
    if (!dev) {
      refused_->inc();
      log_->warn("node {} reported on device {}, which is not bound to it; refused", node, name);
      return;
    }
    json::value content = m->content;
    if (content.is_string()) {
      json::error_code ec;
      auto v = json::parse(content.as_string(), ec);
      if (!ec) content = v;
    }
    std::string ns = str(dev->obj, {"metadata", "namespace"});
    std::string target = "/apis/devices.kubeedge.io/v1beta1/namespaces/" + ns + "/devices/" + name;
    if (what == "twin/edge_updated") {
      auto* twin = find(content, {"twin"});
      if (!twin || !twin->is_object()) {
        refused_->inc();
        return;
      }
      json::object updates = twin->as_object();
      kedge::k8s::api_request(
          *ctx_, s_.apiserver, "GET", target, nullptr, "",
          [this, target, updates](int64_t code, json::value cur) {
            if (code != 200) return log_->warn("device status: GET {} -> {}", target, code);
            json::array twins;
            if (auto* t = find(cur, {"status", "twins"}); t && t->is_array()) twins = t->as_array();
            for (auto& [prop, tw] : updates) {
              auto* val = find(tw, {"actual", "value"});
              if (!val) continue;
              std::string ts = str(tw, {"actual", "metadata", "timestamp"});
              json::object reported{
                  {"value",
                   val->is_string() ? std::string(val->as_string()) : json::serialize(*val)},
                  {"metadata",
                   json::object{{"timestamp", ts.empty() ? std::to_string(now_ms()) : ts},
                                {"type", str(tw, {"metadata", "type"})}}}};
              bool found = false;
              for (auto& e : twins)
                if (str(e, {"propertyName"}) == prop) {
                  e.as_object()["reported"] = reported;
                  found = true;
                }
              if (!found)
                twins.push_back(json::object{{"propertyName", prop}, {"reported", reported}});
            }
            kedge::k8s::api_request(*ctx_, s_.apiserver, "PATCH", target + "/status",
                                    json::object{{"status", json::object{{"twins", twins}}}},
                                    "application/merge-patch+json",
                                    [this, target](int64_t c2, json::value) {
                                      if (c2 == 200)
                                        reports_->inc();
                                      else
                                        log_->warn("device status: PATCH {} -> {}", target, c2);
                                    });
          });
      return;
    }
    if (what == "state/update") {
      std::string state = str(content, {"state"});
      json::object st{{"state", state}};
      if (state == "online" || state == "ok") st["lastOnlineTime"] = kedge::k8s::now_rfc3339();
      kedge::k8s::api_request(*ctx_, s_.apiserver, "PATCH", target + "/status",
                              json::object{{"status", st}}, "application/merge-patch+json",
                              [this, target](int64_t code, json::value) {
                                if (code == 200)
                                  reports_->inc();
                                else
                                  log_->warn("device state: PATCH {} -> {}", target, code);
                              });
      return;
    }
    log_->debug("device report {} not handled", what);
  }

  kedge::Context* ctx_ = nullptr;
  kedge::contracts::ControllerSettings s_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<kedge::k8s::Watches> watches_;
  std::map<std::string, Dev> devices_;         // ns/name
  std::map<std::string, json::value> models_;  // ns/name
  kedge::Counter *sent_ = nullptr, *reports_ = nullptr, *refused_ = nullptr;
};

}  // namespace

constexpr kedge::PeerDecl kPeers[] = {
    {kedge::contracts::kApiServer.key, "watches of devices and models; status writes", false},
    {kedge::contracts::kCloudHub.key, "devices, models, membership and desired twins to node/<n>",
     false},
};

KEDGE_PLUGIN(DeviceController, {.name = "devicecontroller",
                                .version = "0.1.0",
                                .group = "controller",
                                .description = "Sends nodes their devices, models and desired "
                                               "twins; writes reported twins and state back.",
                                .config = kedge::contracts::kControllerConfig,
                                .peers = kPeers})
