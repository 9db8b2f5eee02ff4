// metaserver: a read-only Kubernetes API on the edge (127.0.0.1:10550, plain
// HTTP), served from metamanager's cache, so edge applications and ordinary
// Kubernetes clients (kubectl) work while the cloud is away.
//
// * Discovery: /api, /apis, /api/v1, /apis/devices.kubeedge.io/v1beta1.
// * get and list (label selectors) of pods, configmaps, secrets, services,
//   endpoints, nodes, devices and devicemodels, from metamanager (queries).
// * watch: the current objects as ADDED (without resourceVersion or with
//   0), then the changes metamanager stores, as they are stored; with a
//   resourceVersion, changes to objects newer than it.
// * Writes get 405: the edge's API is read-only; changes go through the
//   cloud. Errors are Kubernetes Status objects.
#include <spdlog/logger.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <map>
#include <set>

#include "k8s.h"
#include "kedge/net.h"
#include "kedge/plugin.h"
#include "resources.h"

namespace {

namespace json = boost::json;
namespace net = kedge::net;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

const std::set<std::string> kServed = {"pods",      "configmaps", "secrets", "services",
                                       "endpoints", "nodes",      "devices", "devicemodels"};

std::string status_json(int code, const std::string& reason, const std::string& message) {
  return json::serialize(json::object{{"kind", "Status"},
                                      {"apiVersion", "v1"},
                                      {"metadata", json::object{}},
                                      {"status", "Failure"},
                                      {"message", message},
                                      {"reason", reason},
                                      {"code", code}});
}

// The edge's resource type for a plural (pods -> pod).
std::string type_of(const kedge::api::Resource& r) {
  std::string k = r.kind;
  std::transform(k.begin(), k.end(), k.begin(), ::tolower);
  return k;
}

int64_t rv_of(const json::value& o) {
  auto* md = o.is_object() ? o.as_object().if_contains("metadata") : nullptr;
  if (!md || !md->is_object()) return 0;
  auto* rv = md->as_object().if_contains("resourceVersion");
  if (!rv || !rv->is_string()) return 0;
  return std::atoll(std::string(rv->as_string()).c_str());
}

class MetaServer final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    cfg_ = cfg;
    requests_ = &ctx.metrics().counter("kedge_metaserver_requests_total", "Requests answered");
    return {};
  }
  Status start() override {
    net::HttpServer::Options o;
    o.max_body = 1 << 20;
    server_ = net::HttpServer::create(ctx_->executor(), nullptr, o);
    std::string addr = cfg_.get_string("address");
    if (Status s = server_->listen(addr, static_cast<uint16_t>(cfg_.get_int("port")),
                                   [this](net::ExchangePtr ex) { serve(std::move(ex)); });
        !s)
      return s;
    log_->info("serving the edge's API on http://{}:{}", addr, server_->port());
    return {};
  }
  Status stop() override {
    if (server_) server_->stop();
    watches_.clear();
    return {};
  }

  // Changes stored by metamanager: to the watches they concern.
  void on_message(const MessagePtr& m) override {
    if (m->route.source != "metamanager") return;
    // <ns>/<type>/<name>
    const std::string& r = m->route.resource;
    size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
    if (b == std::string::npos) return;
    std::string ns = r.substr(0, a), type = r.substr(a + 1, b - a - 1);
    const std::string& op = m->route.operation;
    const char* event = op == "delete" ? "DELETED" : op == "insert" ? "ADDED" : "MODIFIED";
    for (auto it = watches_.begin(); it != watches_.end();) {
      Watch& w = it->second;
      bool match = w.type == type && (w.ns.empty() || w.ns == ns) && m->content.is_object() &&
                   w.selector.matches(kedge::k8s::labels_of(m->content)) &&
                   (w.after == 0 || rv_of(m->content) > w.after);
      if (match &&
          !w.ex->write(json::serialize(json::object{{"type", event}, {"object", m->content}}) +
                       "\n")) {
        w.ex->end();
        it = watches_.erase(it);
        continue;
      }
      ++it;
    }
  }

 private:
  struct Watch {
    net::ExchangePtr ex;
    std::string type, ns;
    kedge::k8s::Selector selector;
    int64_t after = 0;
  };

  void error(const net::ExchangePtr& ex, int code, const std::string& reason,
             const std::string& message) {
    ex->reply({code, "application/json", status_json(code, reason, message)});
  }

  static json::object resource_list(const std::string& gv) {
    json::array rs;
    for (auto& r : kedge::api::resources()) {
      if (r.api_version() != gv || !kServed.count(r.plural)) continue;
      json::array shorts;
      for (auto& s : r.short_names) shorts.push_back(json::string(s));
      rs.push_back(json::object{{"name", r.plural},
                                {"singularName", type_of(r)},
                                {"namespaced", r.namespaced},
                                {"kind", r.kind},
                                {"verbs", json::array{"get", "list", "watch"}},
                                {"shortNames", shorts}});
    }
    return {
        {"kind", "APIResourceList"}, {"apiVersion", "v1"}, {"groupVersion", gv}, {"resources", rs}};
  }

  void serve(net::ExchangePtr ex) {
    requests_->inc();
    const auto& req = ex->request();
    auto u = boost::urls::parse_origin_form(req.target);
    if (!u) return error(ex, 400, "BadRequest", "malformed request target");
    std::string path(u->path());
    std::map<std::string, std::string> q;
    for (auto p : u->params()) q[std::string(p.key)] = p.has_value ? std::string(p.value) : "";
    if (path == "/healthz" || path == "/readyz" || path == "/livez")
      return ex->reply({200, "text/plain", "ok"});
    if (path == "/version")
      return ex->reply({200, "application/json",
                        R"({"major":"1","minor":"22","gitVersion":"v1.22.17-kedge-edge"})"});
    if (path == "/api")
      return ex->reply(
          {200, "application/json",
           R"({"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]})"});
    if (path == "/apis")
      return ex->reply(
          {200, "application/json",
           json::serialize(json::object{
               {"kind", "APIGroupList"},
               {"apiVersion", "v1"},
               {"groups", json::array{json::object{
                              {"name", "devices.kubeedge.io"},
                              {"versions", json::array{json::object{
                                               {"groupVersion", "devices.kubeedge.io/v1beta1"},
                                               {"version", "v1beta1"}}}},
                              {"preferredVersion",
                               json::object{{"groupVersion", "devices.kubeedge.io/v1beta1"},
                                            {"version", "v1beta1"}}}}}}})});
    if (path == "/api/v1")
      return ex->reply({200, "application/json", json::serialize(resource_list("v1"))});
    if (path == "/apis/devices.kubeedge.io/v1beta1")
      return ex->reply(
          {200, "application/json", json::serialize(resource_list("devices.kubeedge.io/v1beta1"))});
    // /api/v1[/namespaces/<ns>]/<plural>[/<name>], /apis/<g>/<v>/...
    std::vector<std::string> seg;
    for (auto s : u->segments()) seg.push_back(std::string(s));
    size_t i = 0;
    std::string gv;
    if (seg.size() >= 3 && seg[0] == "api") {
      gv = seg[1];
      i = 2;
    } else if (seg.size() >= 4 && seg[0] == "apis") {
      gv = seg[1] + "/" + seg[2];
      i = 3;
    } else {
      return error(ex, 404, "NotFound", "the server could not find the requested resource");
    }
    std::string ns;
    if (seg.size() >= i + 3 && seg[i] == "namespaces") {
      ns = seg[i + 1];
      i += 2;
    }
    const kedge::api::Resource* res = nullptr;
    for (auto& r : kedge::api::resources())
      if (r.api_version() == gv && r.plural == seg[i] && kServed.count(r.plural)) res = &r;
    if (!res)
      return error(ex, 404, "NotFound",
                   "the edge does not serve \"" + seg[i] +
                       "\" (served: pods, configmaps, secrets, "
                       "services, endpoints, nodes, devices, devicemodels)");
    std::string name = seg.size() > i + 1 ? seg[i + 1] : "";
    if (seg.size() > i + 2)
      return error(ex, 404, "NotFound", "no subresources at the edge: " + path);
    if (req.method != "GET")
      return error(ex, 405, "MethodNotAllowed",
                   req.method +
                       " is not allowed: the edge's API is read-only; change objects "
                       "through the cloud");
    kedge::k8s::Selector sel;
    if (auto it = q.find("labelSelector"); it != q.end()) {
      auto s = kedge::k8s::parse_label_selector(it->second);
      if (!s.ok()) return error(ex, 400, "BadRequest", s.status.message());
      sel = std::move(s.value);
    }
    std::string type = type_of(*res);
    // Nodes and other cluster objects are stored under "default" at the edge.
    std::string key = (res->namespaced ? (ns.empty() ? "*" : ns) : "*") + "/" + type +
                      (name.empty() ? "" : "/" + name);
    bool watch = q.count("watch") && (q["watch"] == "1" || q["watch"] == "true");
    int64_t after = 0;
    if (auto it = q.find("resourceVersion"); it != q.end() && !it->second.empty()) {
      char* end = nullptr;
      after = std::strtoll(it->second.c_str(), &end, 10);
      if (*end || after < 0)
        return error(ex, 400, "BadRequest",
                     "resourceVersion \"" + it->second + "\" is not a resource version");
    }
    auto query = kedge::make_message(ctx_->name(), "meta", "query", key);
    ctx_->request(
        "metamanager", kedge::share(std::move(query)), 10s,
        [this, ex, res, name, sel, watch, after, type, ns](Status s, MessagePtr r) {
          if (!s || !r || !r->content.is_array())
            return error(
                ex, 503, "ServiceUnavailable",
                "the edge's cache did not answer: " + (s ? std::string("empty") : s.message()));
          json::array items;
          int64_t newest = 0;
          for (auto& v : r->content.as_array()) {
            if (!v.is_string()) continue;
            json::error_code ec;
            auto obj = json::parse(v.as_string(), ec);
            if (ec || !obj.is_object()) continue;
            newest = std::max(newest, rv_of(obj));
            if (sel.matches(kedge::k8s::labels_of(obj))) items.push_back(std::move(obj));
          }
          if (!name.empty() && !watch) {
            if (items.empty())
              return error(ex, 404, "NotFound", res->plural + " \"" + name + "\" not found");
            return ex->reply({200, "application/json", json::serialize(items[0])});
          }
          if (!watch)
            return ex->reply(
                {200, "application/json",
                 json::serialize(json::object{
                     {"kind", res->kind + "List"},
                     {"apiVersion", res->api_version()},
                     {"metadata", json::object{{"resourceVersion", std::to_string(newest)}}},
                     {"items", std::move(items)}})});
          ex->begin_stream(200, "application/json");
          if (after == 0)
            for (auto& o : items)
              (void)ex->write(json::serialize(json::object{{"type", "ADDED"}, {"object", o}}) +
                              "\n");
          uint64_t id = next_++;
          watches_[id] = {ex, type, ns, sel, after};
          ex->on_closed([this, id] {
            boost::asio::post(ctx_->executor(), [this, id] { watches_.erase(id); });
          });
        });
  }

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  kedge::Config cfg_;
  std::shared_ptr<net::HttpServer> server_;
  std::map<uint64_t, Watch> watches_;
  uint64_t next_ = 1;
  kedge::Counter* requests_ = nullptr;
};

constexpr kedge::ConfigKey kConfig[] = {
    {"address", kedge::ConfigType::kString, "\"127.0.0.1\"",
     "Address of the edge's API (plain HTTP: keep it on loopback).", false},
    {"port", kedge::ConfigType::kInteger, "10550", "Port of the edge's API.", false},
};

}  // namespace

KEDGE_PLUGIN(MetaServer, {.name = "metaserver",
                          .version = "0.1.0",
                          .description = "Read-only Kubernetes API on the edge, from "
                                         "metamanager's cache (get, list, watch).",
                          .config = kConfig})
