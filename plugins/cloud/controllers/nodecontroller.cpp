// nodecontroller: registers a node in the API on its first connection and
// keeps its Ready condition in step with the channel (cloudhub's connected /
// disconnected events): True while connected, Unknown when the link is gone
// ("NodeStatusUnknown", as Kubernetes' node lifecycle controller). It never
// evicts pods from a NotReady edge node: they keep running there (offline
// autonomy) and the cloud's view of them is kept.
#include <spdlog/logger.h>

#include <chrono>
#include <ctime>

#include <boost/json/serialize.hpp>
#include <optional>

#include "contracts/modules.h"
#include "k8s.h"
#include "kedge/plugin.h"

namespace {

namespace json = boost::json;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

struct Settings {
  std::string apiserver;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    kedge::contracts::peer_setting(kedge::contracts::kApiServer, &Settings::apiserver,
                                   "The module nodes are read and written through."),
};
constexpr auto kConfig = kedge::config_keys(kSettings);

class NodeController final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    s_ = kedge::read_settings(kSettings, cfg);
    log_ = ctx.logger();
    transitions_ = &ctx.metrics().counter("kedge_nodecontroller_transitions_total",
                                          "Node Ready condition changes written");
    return {};
  }
  Status start() override { return {}; }
  Status stop() override { return {}; }

  void on_message(const MessagePtr& m) override {
    const std::string& op = m->route.operation;
    if (op != "connected" && op != "disconnected") return;
    std::string node;
    if (auto* c = m->content.if_object())
      if (auto* id = c->if_contains("client_id"); id && id->is_string()) node = id->as_string();
    if (node.empty()) return;
    bool up = op == "connected";
    if (up)
      ensure(node, [this, node] { set_ready(node, true); });
    else
      set_ready(node, false);
  }

 private:
  void api(const std::string& method, const std::string& target, const json::value& body,
           std::function<void(int64_t, json::value)> done) {
    kedge::k8s::api_request(*ctx_, s_.apiserver, method, target, body,
                            method == "PATCH" ? "application/merge-patch+json" : "application/json",
                            std::move(done));
  }

  // Creates the Node if it does not exist (KubeEdge's edge labels).
  void ensure(const std::string& node, std::function<void()> then) {
    api("GET", "/api/v1/nodes/" + node, nullptr, [=, this](int64_t code, json::value) {
      if (code == 200) return then();
      json::object n{
          {"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", json::object{{"name", node},
                                    {"labels", json::object{{"node-role.kubernetes.io/edge", ""},
                                                            {"node-role.kubernetes.io/agent", ""},
                                                            {"kubernetes.io/hostname", node}}}}}};
      api("POST", "/api/v1/nodes", n, [=, this](int64_t c2, json::value) {
        if (c2 == 201) log_->info("registered node {}", node);
        then();
      });
    });
  }

  void set_ready(const std::string& node, bool up) {
    std::string now = kedge::k8s::now_rfc3339();
    json::object cond{{"type", "Ready"},
                      {"status", up ? "True" : "Unknown"},
                      {"reason", up ? "EdgeConnected" : "NodeStatusUnknown"},
                      {"message", up ? "the edge node is connected to the cloud"
                                     : "the edge node's link to the cloud is down; its pods keep "
                                       "running and are not evicted"},
                      {"lastHeartbeatTime", now},
                      {"lastTransitionTime", now}};
    // A merge patch replaces the conditions list: Ready is the one kept here.
    json::object patch{{"status", json::object{{"conditions", json::array{cond}}}}};
    api("PATCH", "/api/v1/nodes/" + node + "/status", patch, [=, this](int64_t code, json::value) {
      if (code != 200) {
        log_->warn("cannot mark node {} {}: HTTP {}", node, up ? "Ready" : "NotReady", code);
        return;
      }
      transitions_->inc();
      log_->info("node {} is {}", node, up ? "Ready" : "NotReady (link down; pods kept)");
    });
  }

  kedge::Context* ctx_ = nullptr;
  Settings s_;
  std::shared_ptr<spdlog::logger> log_;
  kedge::Counter* transitions_ = nullptr;
};

}  // namespace

constexpr kedge::PeerDecl kPeers[] = {
    {kedge::contracts::kApiServer.key, "node registration and Ready condition writes", false},
};

KEDGE_PLUGIN(NodeController, {.name = "nodecontroller",
                              .version = "0.1.0",
                              .group = "controller",
                              .description = "Registers edge nodes and tracks Ready from the "
                                             "channel's liveness; never evicts.",
                              .config = kConfig,
                              .peers = kPeers})
