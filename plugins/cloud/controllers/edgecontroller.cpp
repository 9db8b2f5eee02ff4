// edgecontroller: between the API (apiserver, over messages) and the edge
// nodes (cloudhub).
//
// Down: watches pods, configmaps and secrets; sends each node the pods bound
// to it (spec.nodeName) and the configmaps and secrets those pods reference,
// as KubeEdge's edgecontroller does (resource node/<node>/<ns>/<type>/<name>,
// ops insert/update/delete, the object's resourceVersion in the header). A
// node marked for a full resync by cloudhub gets everything again.
//
// Up: writes back what edges report (cloud/pkg/edgecontroller/controller/upstream.go): podpatch and
// podstatus, node registration (insert), nodepatch and nodestatus, and answers queries for
// configmaps, secrets and the node. A node may only report on itself and on pods bound to it.
#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <map>
#include <set>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <optional>

#include "contracts/controllers.h"
#include "k8s.h"
#include "kedge/common/json.h"
#include "kedge/plugin.h"

namespace {

namespace json = boost::json;
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

  // ---- reports from edges ----
  void api(const std::string& method, const std::string& target, const json::value& body,
           const std::string& content_type, std::function<void(int64_t, json::value)> done) {
    kedge::k8s::api_request(*ctx_, s_.apiserver, method, target, body, content_type,
                            std::move(done));
  }

  void answer(const MessagePtr& req, json::value content) {
    (void)ctx_->send(s_.cloudhub, kedge::share(kedge::new_response(*req, std::move(content))), 2s);
  }
  void refuse(const MessagePtr& req, const std::string& why) {
    refused_->inc();
    log_->warn("refused {} on {}: {}", req->route.operation, req->route.resource, why);
    answer(req, json::object{{"Object", nullptr}, {"Err", why}});
  }

  static std::string error_of(int64_t code, const json::value& body) {
    std::string msg = str(body, {"message"});
    return "HTTP " + std::to_string(code) + (msg.empty() ? "" : ": " + msg);
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

  void on_report(const MessagePtr& m) {
    // node/<node>/<ns>/<type>/<name>
    std::vector<std::string> parts;
    size_t st = 0;
    const std::string& r = m->route.resource;
    while (st <= r.size()) {
      size_t sl = r.find('/', st);
      parts.push_back(r.substr(st, sl == std::string::npos ? std::string::npos : sl - st));
      if (sl == std::string::npos) break;
      st = sl + 1;
    }
    if (parts.size() < 5) return;
    const std::string &node = parts[1], &ns = parts[2], &type = parts[3], &name = parts[4];
    const std::string& op = m->route.operation;
    if (type == "podpatch" || type == "podstatus") {
      json::value body =
          type == "podpatch"
              ? patch_body(m->content)
              : json::value(json::object{
                    {"status", m->content.is_object() && m->content.as_object().contains("Status")
                                   ? m->content.at("Status")
                                   : json::value()}});
      std::string target = "/api/v1/namespaces/" + ns + "/pods/" + name;
      // Only the pod's own node may report on it.
      api("GET", target, nullptr, "", [=, this](int64_t code, json::value pod) {
        if (code != 200) return refuse(m, error_of(code, pod));
        if (str(pod, {"spec", "nodeName"}) != node)
          return refuse(m, "pod " + ns + "/" + name + " is not bound to node " + node);
        api("PATCH", target + "/status", body, "application/merge-patch+json",
            [=, this](int64_t c2, json::value res) {
              if (c2 != 200) return refuse(m, error_of(c2, res));
              reports_->inc();
              answer(m, type == "podpatch"
                            ? json::value(json::object{{"Object", res}, {"Err", nullptr}})
                            : json::value("OK"));
            });
      });
      return;
    }
    if (type == "node" || type == "nodepatch" || type == "nodestatus") {
      if (name != node) return refuse(m, "node " + node + " may not report on node " + name);
      std::string target = "/api/v1/nodes/" + name;
      if (type == "node" && op == kedge::op::kInsert) {
        json::value obj = m->content.is_object() ? m->content : json::value(json::object{});
        auto& o = obj.as_object();
        o["apiVersion"] = "v1";
        o["kind"] = "Node";
        if (!o.contains("metadata") || !o["metadata"].is_object()) o["metadata"] = json::object{};
        o["metadata"].as_object()["name"] = name;
        o["metadata"].as_object().erase("resourceVersion");
        api("POST", "/api/v1/nodes", obj, "application/json",
            [=, this](int64_t code, json::value res) {
              if (code == 201) {
                reports_->inc();
                return answer(m, json::object{{"Object", res}, {"Err", nullptr}});
              }
              if (code != 409) return refuse(m, error_of(code, res));
              api("GET", target, nullptr, "", [=, this](int64_t c2, json::value cur) {
                if (c2 != 200) return refuse(m, error_of(c2, cur));
                answer(m, json::object{{"Object", cur}, {"Err", nullptr}});
              });
            });
        return;
      }
      if (op == kedge::op::kQuery || op == "get") {
        api("GET", target, nullptr, "", [=, this](int64_t code, json::value res) {
          if (code != 200) return refuse(m, error_of(code, res));
          answer(m, json::object{{"Object", res}, {"Err", nullptr}});
        });
        return;
      }
      json::value body = type == "nodepatch" ? patch_body(m->content)
                         : type == "nodestatus" && m->content.is_object() &&
                                 m->content.as_object().contains("Status")
                             ? json::value(json::object{{"status", m->content.at("Status")}})
                             : patch_body(m->content);
      std::string path = type == "node" ? target : target + "/status";
      api("PATCH", path, body, "application/merge-patch+json",
          [=, this](int64_t code, json::value res) {
            if (code != 200) return refuse(m, error_of(code, res));
            reports_->inc();
            answer(m, type == "nodestatus"
                          ? json::value("OK")
                          : json::value(json::object{{"Object", res}, {"Err", nullptr}}));
          });
      return;
    }
    if ((type == "configmap" || type == "secret") && (op == kedge::op::kQuery || op == "get")) {
      // Only what the node's pods use.
      if (!users(type, ns, name).count(node))
        return refuse(m, type + " " + ns + "/" + name + " is not used by pods of node " + node);
      api("GET", "/api/v1/namespaces/" + ns + "/" + type + "s/" + name, nullptr, "",
          [=, this](int64_t code, json::value res) {
            if (code != 200) return refuse(m, error_of(code, res));
            answer(m, res);
          });
      return;
    }
    log_->debug("node {}: {} on {} not handled", node, op, type);
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
