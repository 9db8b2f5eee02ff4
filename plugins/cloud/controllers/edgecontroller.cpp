// edgecontroller: between the API (apiserver, over messages) and the edge
// nodes (cloudhub).
//
// Down: watches pods, configmaps and secrets; sends each node the pods bound
// to it (spec.nodeName) and the configmaps and secrets those pods reference,
// as KubeEdge's edgecontroller does (resource node/<node>/<ns>/<type>/<name>,
// ops insert/update/delete, the object's resourceVersion in the header). A
// node marked for a full resync by cloudhub gets everything again.
//
// Up: answers edges as CloudCore's upstream controller does
// (cloud/pkg/edgecontroller/controller/upstream.go): podpatch and podstatus,
// pod deletion by the kubelet, node registration (insert), node update,
// nodepatch and nodestatus, the node lease, and queries for configmaps,
// secrets, the node, service account tokens, PVs, PVCs and volume
// attachments. A node may only report on itself and on pods bound to it.
// Answers carry CloudCore's route (source edgecontroller, group resource,
// op response) and objects their apiVersion and kind.
#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <map>
#include <set>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <optional>

#include "contracts/controllers.h"
#include "contracts/wire.h"
#include "k8s.h"
#include "kedge/common/json.h"
#include "kedge/plugin.h"

namespace {

namespace json = boost::json;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

constexpr auto& str = kedge::json_path::string_at;

// configmaps and secrets a pod uses: volumes, env and envFrom.
std::set<std::pair<std::string, std::string>> refs_of(const json::value& pod) {
  std::set<std::pair<std::string, std::string>> out;  // (type, name)
  auto* spec = pod.as_object().if_contains("spec");
  if (!spec || !spec->is_object()) return out;
  if (auto* vols = spec->as_object().if_contains("volumes"); vols && vols->is_array())
    for (auto& v : vols->as_array()) {
      if (auto n = str(v, {"configMap", "name"}); !n.empty()) out.insert({"configmap", n});
      if (auto n = str(v, {"secret", "secretName"}); !n.empty()) out.insert({"secret", n});
      if (auto* proj = v.as_object().if_contains("projected"))
        if (auto* srcs = proj->as_object().if_contains("sources"); srcs && srcs->is_array())
          for (auto& s : srcs->as_array()) {
            if (auto n = str(s, {"configMap", "name"}); !n.empty()) out.insert({"configmap", n});
            if (auto n = str(s, {"secret", "name"}); !n.empty()) out.insert({"secret", n});
          }
    }
  for (const char* list : {"containers", "initContainers"})
    if (auto* cs = spec->as_object().if_contains(list); cs && cs->is_array())
      for (auto& c : cs->as_array()) {
        if (auto* env = c.as_object().if_contains("env"); env && env->is_array())
          for (auto& e : env->as_array()) {
            if (auto n = str(e, {"valueFrom", "configMapKeyRef", "name"}); !n.empty())
              out.insert({"configmap", n});
            if (auto n = str(e, {"valueFrom", "secretKeyRef", "name"}); !n.empty())
              out.insert({"secret", n});
          }
        if (auto* ef = c.as_object().if_contains("envFrom"); ef && ef->is_array())
          for (auto& e : ef->as_array()) {
            if (auto n = str(e, {"configMapRef", "name"}); !n.empty()) out.insert({"configmap", n});
            if (auto n = str(e, {"secretRef", "name"}); !n.empty()) out.insert({"secret", n});
          }
      }
  if (auto* ips = spec->as_object().if_contains("imagePullSecrets"); ips && ips->is_array())
    for (auto& s : ips->as_array())
      if (auto n = str(s, {"name"}); !n.empty()) out.insert({"secret", n});
  return out;
}

class EdgeController final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    s_ = kedge::read_settings(kedge::contracts::kControllerSettings, cfg);
    log_ = ctx.logger();
    auto& m = ctx.metrics();
    sent_ = &m.counter("kedge_edgecontroller_sent_total", "Objects sent to edge nodes");
    reports_ = &m.counter("kedge_edgecontroller_reports_total", "Edge reports written back");
    refused_ = &m.counter("kedge_edgecontroller_refused_total",
                          "Edge reports refused (not the node's own object, or invalid)");
    return {};
  }
  Status start() override {
    retry_.emplace(ctx_->executor());
    watches_.emplace(
        *ctx_, s_.apiserver,
        [this](const std::string& path, const std::string& type, const json::value& obj) {
          if (path == "/api/v1/pods")
            on_pod(type, obj);
          else
            on_config(path == "/api/v1/configmaps" ? "configmap" : "secret", type, obj);
        });
    for (const char* t : {"pods", "configmaps", "secrets"})
      watches_->watch(std::string("/api/v1/") + t);
    return {};
  }
  Status stop() override {
    if (retry_) retry_->cancel();
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
    if (op == "connected" || op == "disconnected") return;  // nodecontroller's
    if (m->route.resource.rfind("node/", 0) == 0) return on_report(m);
  }

 private:
  static std::string key(const json::value& o) {
    return str(o, {"metadata", "namespace"}) + "/" + str(o, {"metadata", "name"});
  }

  void send(const std::string& node, const std::string& op, const std::string& type,
            const json::value& obj) {
    std::string ns = str(obj, {"metadata", "namespace"});
    auto m = kedge::make_message(
        ctx_->name(), "resource", op,
        "node/" + node + "/" + ns + "/" + type + "/" + str(obj, {"metadata", "name"}), obj);
    m.header.resource_version = str(obj, {"metadata", "resourceVersion"});
    if (Status s = ctx_->send(s_.cloudhub, kedge::share(std::move(m)), 2s); !s)
      log_->error("cannot hand {} {}/{} for node {} to cloudhub: {}", op, type,
                  str(obj, {"metadata", "name"}), node, s.message());
    else
      sent_->inc();
  }

  struct PodInfo {
    std::string node;
    json::value obj;
    std::set<std::pair<std::string, std::string>> refs;
  };

  void on_pod(const std::string& type, const json::value& pod) {
    std::string k = key(pod), node = str(pod, {"spec", "nodeName"});
    auto old = pods_.find(k);
    if (type == "DELETED") {
      if (old != pods_.end() && !old->second.node.empty())
        send(old->second.node, "delete", "pod", pod);
      if (old != pods_.end()) pods_.erase(old);
      return;
    }
    if (old != pods_.end() && !old->second.node.empty() && old->second.node != node)
      send(old->second.node, "delete", "pod", pod);  // moved to another node
    bool known = old != pods_.end() && old->second.node == node;
    PodInfo info{node, pod, refs_of(pod)};
    pods_[k] = info;
    if (node.empty()) return;  // not scheduled: kedge has no scheduler, set spec.nodeName
    // What it references first, so it is there when the pod starts.
    send_refs(node, str(pod, {"metadata", "namespace"}), info.refs);
    send(node, known ? "update" : "insert", "pod", pod);
  }

  void send_refs(const std::string& node, const std::string& ns,
                 const std::set<std::pair<std::string, std::string>>& refs) {
    for (auto& [t, name] : refs) {
      auto& cache = t == "configmap" ? configmaps_ : secrets_;
      auto it = cache.find(ns + "/" + name);
      if (it == cache.end()) continue;  // not created yet: sent when it is
      auto& sent = sent_refs_[node];
      std::string id =
          t + "/" + ns + "/" + name + "@" + str(it->second, {"metadata", "resourceVersion"});
      if (!sent.insert(id).second) continue;  // this version is there already
      send(node, t == "secret" ? "update" : "insert", t, it->second);
    }
  }

  // Nodes whose pods use ns/name of type t.
  std::set<std::string> users(const std::string& t, const std::string& ns,
                              const std::string& name) {
    std::set<std::string> out;
    for (auto& [k, p] : pods_)
      if (!p.node.empty() && str(p.obj, {"metadata", "namespace"}) == ns && p.refs.count({t, name}))
        out.insert(p.node);
    return out;
  }

  void on_config(const std::string& t, const std::string& type, const json::value& obj) {
    auto& cache = t == "configmap" ? configmaps_ : secrets_;
    std::string k = key(obj);
    if (type == "DELETED")
      cache.erase(k);
    else
      cache[k] = obj;
    for (auto& node :
         users(t, str(obj, {"metadata", "namespace"}), str(obj, {"metadata", "name"}))) {
      std::string op = type == "DELETED"                       ? "delete"
                       : (t == "secret" || type == "MODIFIED") ? "update"
                                                               : "insert";
      send(node, op, t, obj);
      sent_refs_[node].insert(t + "/" + k + "@" + str(obj, {"metadata", "resourceVersion"}));
    }
  }

  void resync(const std::string& node) {
    if (node.empty()) return;
    log_->info("full resync of node {}", node);
    sent_refs_.erase(node);
    for (auto& [k, p] : pods_)
      if (p.node == node) {
        send_refs(node, str(p.obj, {"metadata", "namespace"}), p.refs);
        send(node, "update", "pod", p.obj);
      }
  }

  // ---- requests and reports from edges ----
  void api(const std::string& method, const std::string& target, const json::value& body,
           const std::string& content_type, std::function<void(int64_t, json::value)> done) {
    kedge::k8s::api_request(*ctx_, s_.apiserver, method, target, body, content_type,
                            std::move(done));
  }

  // How CloudCore's upstream controller answers each request
  // (cloud/pkg/edgecontroller/controller/upstream.go):
  //   kObject: the object itself (queries), or {"ErrStatus": Status};
  //   kResp:   {"Object": obj, "Err": null | {"ErrStatus": Status}} (node
  //            insert, nodepatch, podpatch, leases);
  //   kOk:     "OK", or {"ErrStatus": Status} (node update, legacy
  //            nodestatus/podstatus, pod delete).
  enum class Shape { kObject, kResp, kOk };

  // apiVersion and kind of the objects each resource type carries (a stock
  // edge decodes them as unstructured objects and needs both).
  static std::pair<const char*, const char*> type_meta(const std::string& type) {
    if (type == "node" || type == "nodepatch" || type == "nodestatus") return {"v1", "Node"};
    if (type == "pod" || type == "podpatch" || type == "podstatus") return {"v1", "Pod"};
    if (type == "configmap") return {"v1", "ConfigMap"};
    if (type == "secret") return {"v1", "Secret"};
    if (type == "persistentvolume") return {"v1", "PersistentVolume"};
    if (type == "persistentvolumeclaim") return {"v1", "PersistentVolumeClaim"};
    if (type == "volumeattachment") return {"storage.k8s.io/v1", "VolumeAttachment"};
    if (type == "lease") return {"coordination.k8s.io/v1", "Lease"};
    if (type == "serviceaccounttoken") return {"authentication.k8s.io/v1", "TokenRequest"};
    return {nullptr, nullptr};
  }
  static json::value with_type(json::value obj, const std::string& type) {
    auto [api_version, kind] = type_meta(type);
    if (auto* o = obj.if_object(); o && kind) {
      if (str(obj, {"apiVersion"}).empty()) (*o)["apiVersion"] = api_version;
      if (str(obj, {"kind"}).empty()) (*o)["kind"] = kind;
    }
    return obj;
  }
  // A Kubernetes Status for a failed API call (the body when the apiserver
  // sent one).
  static json::value status_of(int64_t code, const json::value& body) {
    if (str(body, {"kind"}) == "Status") return body;
    std::string msg = str(body, {"message"});
    return json::object{{"kind", "Status"},
                        {"apiVersion", "v1"},
                        {"metadata", json::object{}},
                        {"status", "Failure"},
                        {"message", msg.empty() ? "HTTP " + std::to_string(code) : msg},
                        {"reason", code == 404   ? "NotFound"
                                   : code == 403 ? "Forbidden"
                                                 : ""},
                        {"code", code}};
  }
  static json::value forbidden(const std::string& why) {
    return json::object{{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object{}},
                        {"status", "Failure"}, {"message", why},     {"reason", "Forbidden"},
                        {"code", 403}};
  }

  // Sent back as CloudCore sends it: source edgecontroller, group resource,
  // operation response, parent id = the request's id, the request's resource.
  void answer(const MessagePtr& req, json::value content, const std::string& rv = {}) {
    Message r = kedge::new_response(*req, std::move(content));
    r.route.source = std::string(kedge::contracts::wire::source::kEdgeController);
    r.route.group = std::string(kedge::contracts::wire::group::kResource);
    r.route.operation = std::string(kedge::op::kResponse);
    r.header.resource_version = rv;
    (void)ctx_->send(s_.cloudhub, kedge::share(std::move(r)), 2s);
  }
  void reply(const MessagePtr& req, Shape shape, const std::string& type, int64_t code,
             json::value body) {
    bool ok = code >= 200 && code < 300;
    if (!ok) {
      json::value st =
          code == 403 && str(body, {"kind"}) != "Status" ? body : status_of(code, body);
      // A missing object queried, a node registering again: answers, not
      // failures.
      const std::string& op = req->route.operation;
      if (!(code == 404 && op == kedge::op::kQuery) && !(code == 409 && op == kedge::op::kInsert)) {
        refused_->inc();
        log_->warn("{} on {}: {}", req->route.operation, req->route.resource, str(st, {"message"}));
      }
      json::value err = json::object{{"ErrStatus", st}};
      return answer(req, shape == Shape::kResp
                             ? json::value(json::object{{"Object", nullptr}, {"Err", err}})
                             : err);
    }
    std::string rv = str(body, {"metadata", "resourceVersion"});
    if (shape == Shape::kOk) return answer(req, "OK", rv);
    json::value obj = with_type(std::move(body), type);
    if (shape == Shape::kObject) return answer(req, std::move(obj), rv);
    answer(req, json::object{{"Object", std::move(obj)}, {"Err", nullptr}}, rv);
  }
  void refuse(const MessagePtr& req, Shape shape, const std::string& type, const std::string& why) {
    reply(req, shape, type, 403, forbidden(why));
  }

  // A patch arrives as a JSON string (KubeEdge sends a strategic-merge patch as a string).
  static json::value patch_body(const json::value& content) {
    if (content.is_string()) {
      json::error_code ec;
      auto v = json::parse(content.as_string(), ec);
      if (!ec) return v;
    }
    return content;
  }

  static std::vector<std::string> split(const std::string& r) {
    std::vector<std::string> parts;
    size_t st = 0;
    while (st <= r.size()) {
      size_t sl = r.find('/', st);
      parts.push_back(r.substr(st, sl == std::string::npos ? std::string::npos : sl - st));
      if (sl == std::string::npos) break;
      st = sl + 1;
    }
    return parts;
  }

  void on_report(const MessagePtr& m) {
    // node/<node>/<ns>/<type>/<name>
    auto parts = split(m->route.resource);
    if (parts.size() < 5) {
      log_->debug("{} on {}: not node/<node>/<ns>/<type>/<name>", m->route.operation,
                  m->route.resource);
      return;
    }
    const std::string &node = parts[1], &ns = parts[2], &type = parts[3], &name = parts[4];
    const std::string& op = m->route.operation;
    if (type == "podpatch" || type == "podstatus") return pod_status(m, node, ns, type, name);
    if (type == "pod" && op == kedge::op::kDelete) return pod_delete(m, node, ns, name);
    if (type == "node" || type == "nodepatch" || type == "nodestatus")
      return node_report(m, node, type, name);
    if (type == "lease") return lease(m, node, ns, name);
    if (op != kedge::op::kQuery && op != "get") {
      log_->debug("node {}: {} on {} not handled", node, op, type);
      return;
    }
    if (type == "configmap" || type == "secret") {
      // Only what the node's pods use.
      if (!users(type, ns, name).count(node))
        return refuse(m, Shape::kObject, type,
                      type + " " + ns + "/" + name + " is not used by pods of node " + node);
      return get(m, Shape::kObject, type, "/api/v1/namespaces/" + ns + "/" + type + "s/" + name);
    }
    if (type == "persistentvolume")
      return get(m, Shape::kObject, type, "/api/v1/persistentvolumes/" + name);
    if (type == "persistentvolumeclaim")
      return get(m, Shape::kObject, type,
                 "/api/v1/namespaces/" + ns + "/persistentvolumeclaims/" + name);
    if (type == "volumeattachment")
      return get(m, Shape::kObject, type, "/apis/storage.k8s.io/v1/volumeattachments/" + name);
    if (type == "serviceaccounttoken") {
      // A TokenRequest for the service account of a pod on this node.
      api("POST", "/api/v1/namespaces/" + ns + "/serviceaccounts/" + name + "/token",
          patch_body(m->content), "application/json", [=, this](int64_t code, json::value res) {
            reply(m, Shape::kObject, type, code, std::move(res));
          });
      return;
    }
    log_->debug("node {}: query of {} not handled", node, type);
  }

  void get(const MessagePtr& m, Shape shape, const std::string& type, const std::string& target) {
    api("GET", target, nullptr, "",
        [=, this](int64_t code, json::value res) { reply(m, shape, type, code, std::move(res)); });
  }

  void pod_status(const MessagePtr& m, const std::string& node, const std::string& ns,
                  const std::string& type, const std::string& name) {
    bool legacy = type == "podstatus";
    json::value body =
        legacy ? json::value(json::object{
                     {"status", m->content.is_object() && m->content.as_object().contains("Status")
                                    ? m->content.at("Status")
                                    : json::value()}})
               : patch_body(m->content);
    Shape shape = legacy ? Shape::kOk : Shape::kResp;
    std::string target = "/api/v1/namespaces/" + ns + "/pods/" + name;
    // Only the pod's own node may report on it.
    api("GET", target, nullptr, "", [=, this](int64_t code, json::value pod) {
      if (code != 200) return reply(m, shape, "pod", code, std::move(pod));
      if (str(pod, {"spec", "nodeName"}) != node)
        return refuse(m, shape, "pod", "pod " + ns + "/" + name + " is not bound to node " + node);
      // The kubelet's status manager sends a strategic merge patch.
      api("PATCH", target + "/status", body,
          legacy ? "application/merge-patch+json" : "application/strategic-merge-patch+json",
          [=, this](int64_t c2, json::value res) {
            if (c2 == 200) reports_->inc();
            reply(m, shape, "pod", c2, std::move(res));
          });
    });
  }

  // A kubelet deletes the pod it stopped: DeleteOptions, or (KubeEdge <=
  // 1.11) the pod's UID as a string, a precondition either way.
  void pod_delete(const MessagePtr& m, const std::string& node, const std::string& ns,
                  const std::string& name) {
    std::string target = "/api/v1/namespaces/" + ns + "/pods/" + name;
    json::value opts = m->content.is_string() && !m->content.as_string().empty() &&
                               m->content.as_string()[0] != '{'
                           ? json::value(json::object{
                                 {"gracePeriodSeconds", 0},
                                 {"preconditions", json::object{{"uid", m->content.as_string()}}}})
                           : patch_body(m->content);
    api("GET", target, nullptr, "", [=, this](int64_t code, json::value pod) {
      if (code == 404) return answer(m, "OK");  // gone already
      if (code != 200) return reply(m, Shape::kOk, "pod", code, std::move(pod));
      if (str(pod, {"spec", "nodeName"}) != node)
        return refuse(m, Shape::kOk, "pod",
                      "pod " + ns + "/" + name + " is not bound to node " + node);
      api("DELETE", target, opts, "application/json", [=, this](int64_t c2, json::value res) {
        // Deleted meanwhile, or recreated with another UID: nothing of this
        // pod is left to delete (as CloudCore).
        if (c2 == 404 || c2 == 409) return answer(m, "OK");
        reply(m, Shape::kOk, "pod", c2, std::move(res));
      });
    });
  }

  void node_report(const MessagePtr& m, const std::string& node, const std::string& type,
                   const std::string& name) {
    const std::string& op = m->route.operation;
    if (name != node)
      return refuse(m, op == kedge::op::kQuery ? Shape::kObject : Shape::kResp, type,
                    "node " + node + " may not report on node " + name);
    std::string target = "/api/v1/nodes/" + name;
    if (type == "node" && op == kedge::op::kInsert) {
      // kubelet's registration; an existing node is AlreadyExists, which the
      // kubelet answers by reading it and patching its status.
      json::value obj = with_type(m->content.is_object() ? m->content : json::object{}, type);
      auto& o = obj.as_object();
      if (!o.contains("metadata") || !o["metadata"].is_object()) o["metadata"] = json::object{};
      o["metadata"].as_object()["name"] = name;
      o["metadata"].as_object().erase("resourceVersion");
      api("POST", "/api/v1/nodes", obj, "application/json",
          [=, this](int64_t code, json::value res) {
            if (code == 201) reports_->inc();
            reply(m, Shape::kResp, type, code == 201 ? 200 : code, std::move(res));
          });
      return;
    }
    if (op == kedge::op::kQuery || op == "get") return get(m, Shape::kObject, type, target);
    if (type == "node") {
      // update: the node's labels and annotations (upstream.go updateNode).
      json::value meta = json::object{};
      for (const char* f : {"labels", "annotations"})
        if (auto* v = kedge::json_path::find(m->content, {"metadata", f}); v && v->is_object())
          meta.as_object()[f] = *v;
      api("PATCH", target, json::object{{"metadata", meta}}, "application/merge-patch+json",
          [=, this](int64_t code, json::value res) {
            if (code == 200) reports_->inc();
            reply(m, Shape::kOk, type, code, std::move(res));
          });
      return;
    }
    bool legacy = type == "nodestatus";
    json::value body = legacy && m->content.is_object() && m->content.as_object().contains("Status")
                           ? json::value(json::object{{"status", m->content.at("Status")}})
                           : patch_body(m->content);
    api("PATCH", target + "/status", body,
        legacy ? "application/merge-patch+json" : "application/strategic-merge-patch+json",
        [=, this](int64_t code, json::value res) {
          if (code == 200) reports_->inc();
          reply(m, legacy ? Shape::kOk : Shape::kResp, type, code, std::move(res));
        });
  }

  // The node's lease in kube-node-lease: created, renewed and read by the
  // kubelet's lease controller.
  void lease(const MessagePtr& m, const std::string& node, const std::string& ns,
             const std::string& name) {
    const std::string& op = m->route.operation;
    if (ns != "kube-node-lease" || name != node)
      return refuse(m, Shape::kResp, "lease",
                    "node " + node + " may only use its own lease kube-node-lease/" + node);
    std::string coll = "/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases";
    auto done = [=, this](int64_t code, json::value res) {
      reply(m, Shape::kResp, "lease", code == 201 ? 200 : code, std::move(res));
    };
    if (op == kedge::op::kQuery || op == "get")
      return api("GET", coll + "/" + name, nullptr, "", done);
    json::value obj = with_type(patch_body(m->content), "lease");
    if (!obj.is_object()) return refuse(m, Shape::kResp, "lease", "a lease is an object");
    if (op == kedge::op::kInsert) return api("POST", coll, obj, "application/json", done);
    if (op == kedge::op::kUpdate)
      return api("PUT", coll + "/" + name, obj, "application/json", done);
    log_->debug("node {}: {} of its lease not handled", node, op);
  }

  kedge::Context* ctx_ = nullptr;
  kedge::contracts::ControllerSettings s_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<boost::asio::steady_timer> retry_;
  std::optional<kedge::k8s::Watches> watches_;
  std::map<std::string, PodInfo> pods_;  // ns/name
  std::map<std::string, json::value> configmaps_, secrets_;
  std::map<std::string, std::set<std::string>> sent_refs_;  // node -> type/ns/name@rv
  kedge::Counter *sent_ = nullptr, *reports_ = nullptr, *refused_ = nullptr;
};

}  // namespace

constexpr kedge::PeerDecl kPeers[] = {
    {kedge::contracts::kApiServer.key, "watches of pods, configmaps, secrets; status writes",
     false},
    {kedge::contracts::kCloudHub.key,
     "insert/update/delete of <ns>/pod|configmap|secret/<name> to node/<n>; answers to queries",
     false},
};

KEDGE_PLUGIN(EdgeController, {.name = "edgecontroller",
                              .version = "0.1.0",
                              .group = "controller",
                              .description = "Sends nodes their pods, configmaps and secrets; "
                                             "writes back pod and node status from edges.",
                              .config = kedge::contracts::kControllerConfig,
                              .peers = kPeers})
