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
// * requireAuthorization (require_authorization = true): HTTPS only, every
//   request but /healthz, /livez, /readyz and /version needs a bearer token
//   (a service-account token of the cloud's apiserver). The cloud decides —
//   an Application (KubeEdge 1.12 edge/pkg/metamanager/client/application.go) sent through edgehub
//   — and the decision is cached for auth_cache_ttl_s. Offline, requests are refused unless
//   allow_cached_offline is set: then a cached decision stands until the
//   token expires or offline_max_age_s passes.
#include "metaserver.h"

#include "contracts/modules.h"
#include "contracts/wire.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

namespace kedge::metaserver {

using namespace std::chrono_literals;

namespace {
constexpr kedge::Setting<Settings> kSettings[] = {
    {"address", &Settings::address, "\"127.0.0.1\"",
     "Address of the edge's API (plain HTTP: keep it on loopback)."},
    {"port", &Settings::port, "10550", "Port of the edge's API.", false, 1, 65535},
    {"require_authorization", &Settings::require_authorization, "false",
     "The requireAuthorization gate: HTTPS only, and every request needs a bearer token the "
     "cloud authenticates and authorizes (set it in the cloud's apiserver too)."},
    {"tls_cert_file", &Settings::tls_cert_file, "\"\"",
     "Serving certificate under the gate (default: issued at start by <data_dir>/metaserver/ca.crt "
     "for 127.0.0.1, ::1 and localhost)."},
    {"tls_key_file", &Settings::tls_key_file, "\"\"", "Its private key."},
    {"auth_cache_ttl_s", &Settings::auth_cache_ttl_s, "10",
     "How long a decision of the cloud is reused before asking again.", false, 0, 86400},
    {"auth_timeout_ms", &Settings::auth_timeout_ms, "5000",
     "How long to wait for the cloud's decision.", false, 1, 600000},
    {"allow_cached_offline", &Settings::allow_cached_offline, "false",
     "Offline, serve requests a cached decision allowed (until the token expires or "
     "offline_max_age_s). Off: every request is refused while the cloud is away."},
    {"offline_max_age_s", &Settings::offline_max_age_s, "86400",
     "Oldest cached decision used offline.", false, 0, 31536000},
    {"max_cached_decisions", &Settings::max_cached_decisions, "10000",
     "Decisions kept (the oldest goes first).", false, 1, 10000000},
    {"handshake_timeout_ms", &Settings::handshake_timeout_ms, "10000",
     "A client must send its request head (and finish TLS) within this.", false, 1, 3600000},
    {"idle_timeout_ms", &Settings::idle_timeout_ms, "90000",
     "A kept-alive connection with no request is closed after this.", false, 1, 86400000},
    {"max_connections", &Settings::max_connections, "1024",
     "Connections served at once; more are refused.", false, 1, 1000000},
    kedge::contracts::peer_setting(kedge::contracts::kMetaManager, &Settings::metamanager,
                                   "The module whose cache is served (queries, its change feed)."),
    kedge::contracts::peer_setting(kedge::contracts::kEdgeHub, &Settings::edgehub,
                                   "The module the cloud's authorization decisions come through."),
};
constexpr auto kConfig = kedge::config_keys(kSettings);
constexpr kedge::PeerDecl kPeers[] = {
    {kedge::contracts::kMetaManager.key, "queries of <ns>/<type>[/<name>] (sync)", false},
    {kedge::contracts::kEdgeHub.key,
     "requireAuthorization: a dynamiccontroller Application per token (sync)", true},
};
}  // namespace

Status MetaServer::init(kedge::Context& ctx, const kedge::Config& cfg) {
  ctx_ = &ctx;
  log_ = ctx.logger();
  s_ = kedge::read_settings(kSettings, cfg);
  auto& m = ctx.metrics();
  requests_ = &m.counter("kedge_metaserver_requests_total", "Requests answered");
  auth_asked_ = &m.counter("kedge_metaserver_auth_cloud_checks_total",
                           "Authorization decisions asked of the cloud");
  auth_cached_ = &m.counter("kedge_metaserver_auth_cache_hits_total",
                            "Authorization decisions taken from the cache");
  auth_refused_ =
      &m.counter("kedge_metaserver_auth_refused_total", "Requests refused with 401 or 403");
  gate_ = s_.require_authorization;
  if (gate_) {
    if (Status s = load_tls(); !s) return s;
  }
  return {};
}

Status MetaServer::start() {
  net::HttpServer::Options o;
  o.max_body = 1 << 20;
  o.handshake_timeout = std::chrono::milliseconds(s_.handshake_timeout_ms);
  o.idle_timeout = std::chrono::milliseconds(s_.idle_timeout_ms);
  o.max_connections = static_cast<size_t>(s_.max_connections);
  server_ = net::HttpServer::create(ctx_->executor(), tls_, o);
  std::string addr = s_.address;
  if (Status s = server_->listen(addr, static_cast<uint16_t>(s_.port),
                                 [this](net::ExchangePtr ex) { serve(std::move(ex)); });
      !s)
    return s;
  log_->info("serving the edge's API on {}://{}:{}{}", gate_ ? "https" : "http", addr,
             server_->port(),
             gate_ ? " (requireAuthorization: bearer tokens checked by the cloud)" : "");
  return {};
}

Status MetaServer::stop() {
  if (server_) server_->stop();
  watches_.clear();
  return {};
}

// Changes stored by metamanager: to the watches they concern.
void MetaServer::on_message(const MessagePtr& m) {
  if (m->route.source != s_.metamanager) return;
  // <ns>/<type>/<name>
  const std::string& r = m->route.resource;
  size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
  if (b == std::string::npos) return;
  std::string ns = r.substr(0, a), type = r.substr(a + 1, b - a - 1);
  const std::string& op = m->route.operation;
  const char* event = op == kedge::op::kDelete   ? "DELETED"
                      : op == kedge::op::kInsert ? "ADDED"
                                                 : "MODIFIED";
  for (auto it = watches_.begin(); it != watches_.end();) {
    Watch& w = it->second;
    bool match = w.type == type && (w.ns.empty() || w.ns == ns) &&
                 (w.name.empty() || r.substr(b + 1) == w.name) && m->content.is_object() &&
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

void MetaServer::error(const net::ExchangePtr& ex, int code, const std::string& reason,
                       const std::string& message) {
  ex->reply({code, "application/json", status_json(code, reason, message)});
}

json::object MetaServer::resource_list(const std::string& gv) {
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

void MetaServer::serve(net::ExchangePtr ex) {
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
  if (!gate_) return route(ex, *u, path, std::move(q));
  auto h = req.headers.find("authorization");
  if (h == req.headers.end() || h->second.rfind("Bearer ", 0) != 0 || h->second.size() <= 7) {
    auth_refused_->inc();
    return error(ex, 401, "Unauthorized",
                 "Unauthorized: a bearer token is required (requireAuthorization is on)");
  }
  std::string verb = "authenticate", key;
  if (!resource_key(*u, q, req.method, verb, key))
    return route(ex, *u, path, std::move(q));  // errors need no decision
  authorize(h->second, verb, key,
            [this, ex, target = req.target, path, q](const Decision& d) mutable {
              if (ex->closed()) return;
              if (d.code != 0) return refuse(ex, d);
              auto u2 = boost::urls::parse_origin_form(target);
              route(ex, *u2, path, std::move(q));
            });
}

// For the gate: the Application's Verb and Key of a request. Discovery
// paths need an authenticated token; get, list and watch their RBAC
// permission. False for what is refused without asking (bad paths,
// writes).
bool MetaServer::resource_key(const boost::urls::url_view& u,
                              const std::map<std::string, std::string>& q,
                              const std::string& method, std::string& verb, std::string& key) {
  std::vector<std::string> seg;
  for (auto s : u.segments()) seg.push_back(std::string(s));
  if (seg.empty() || (seg[0] != "api" && seg[0] != "apis")) return false;
  size_t i = seg[0] == "api" ? 2 : 3;
  if (seg.size() <= i) {  // discovery: any method needs an authenticated token
    verb = "authenticate";
    key.clear();
    return true;
  }
  if (method != "GET") return false;
  std::string group = seg[0] == "api" ? "core" : seg[1], version = seg[i - 1];
  std::string ns = "null";
  if (seg.size() >= i + 3 && seg[i] == "namespaces") {
    ns = seg[i + 1];
    i += 2;
  }
  if (seg.size() > i + 2) return false;
  // A cluster-scoped resource under a namespace path is refused by route();
  // never ask the cloud with a namespace a RoleBinding could match.
  std::string gv = seg[0] == "api" ? version : group + "/" + version;
  for (auto& r : kedge::api::resources())
    if (r.api_version() == gv && r.plural == seg[i] && !r.namespaced && ns != "null") return false;
  std::string name = seg.size() > i + 1 ? seg[i + 1] : "null";
  auto w = q.find("watch");
  bool watch = w != q.end() && (w->second == "1" || w->second == "true");
  verb = watch ? "watch" : name == "null" ? "list" : "get";
  key = "/" + group + "/" + version + "/" + seg[i] + "/" + ns + "/" + name;
  return true;
}

void MetaServer::route(const net::ExchangePtr& ex, const boost::urls::url_view& uv,
                       const std::string& path, std::map<std::string, std::string> q) {
  const auto& req = ex->request();
  const boost::urls::url_view* u = &uv;
  bool discovery = path == "/api" || path == "/apis" || path == "/api/v1" ||
                   path == "/apis/devices.kubeedge.io/v1beta1";
  if (discovery && req.method != "GET")
    return error(ex, 405, "MethodNotAllowed", req.method + " is not allowed on " + path);
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
             {"groups",
              json::array{json::object{
                  {"name", "devices.kubeedge.io"},
                  {"versions",
                   json::array{json::object{{"groupVersion", "devices.kubeedge.io/v1beta1"},
                                            {"version", "v1beta1"}}}},
                  {"preferredVersion", json::object{{"groupVersion", "devices.kubeedge.io/v1beta1"},
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
  if (!res->namespaced && !ns.empty())
    return error(ex, 404, "NotFound",
                 res->plural + " are not namespaced: use " + res->collection_path(""));
  std::string name = seg.size() > i + 1 ? seg[i + 1] : "";
  if (seg.size() > i + 2) return error(ex, 404, "NotFound", "no subresources at the edge: " + path);
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
  int64_t timeout_s = 0;
  if (auto it = q.find("timeoutSeconds"); it != q.end() && !it->second.empty()) {
    char* end = nullptr;
    timeout_s = std::strtoll(it->second.c_str(), &end, 10);
    if (*end || timeout_s < 0 || it->second.size() > 10)
      return error(ex, 400, "BadRequest",
                   "timeoutSeconds \"" + it->second + "\" is not a number of seconds");
  }
  auto query = kedge::make_message(
      ctx_->name(), std::string(kedge::contracts::wire::local_group::kMeta), "query", key);
  ctx_->request(
      s_.metamanager, kedge::share(std::move(query)), 10s,
      [this, ex, res, name, sel, watch, after, type, ns, timeout_s](Status s, MessagePtr r) {
        if (!s || !r || !r->content.is_array())
          return error(
              ex, 503, "ServiceUnavailable",
              "the edge's cache did not answer: " + (s ? std::string("empty") : s.message()));
        const json::array& stored = r->content.as_array();
        if (!watch && sel.reqs.empty()) {
          // No selector: the stored JSON goes out as it is, unparsed.
          if (!name.empty()) {
            if (stored.empty() || !stored[0].is_string())
              return error(ex, 404, "NotFound", res->plural + " \"" + name + "\" not found");
            return ex->reply({200, "application/json", std::string(stored[0].as_string())});
          }
          size_t total = 0;
          int64_t newest = 0;
          for (auto& v : stored)
            if (v.is_string()) {
              total += v.as_string().size() + 1;
              newest = std::max(newest, raw_rv(v.as_string()));
            }
          std::string body;
          body.reserve(total + 160);
          body += "{\"kind\":\"" + res->kind + "List\",\"apiVersion\":\"" + res->api_version() +
                  "\",\"metadata\":{\"resourceVersion\":\"" + std::to_string(newest) +
                  "\"},\"items\":[";
          bool first = true;
          for (auto& v : stored) {
            if (!v.is_string() || v.as_string().empty() || v.as_string()[0] != '{') continue;
            if (!first) body += ',';
            first = false;
            body.append(v.as_string().data(), v.as_string().size());
          }
          body += "]}";
          return ex->reply({200, "application/json", std::move(body)});
        }
        json::array items;
        int64_t newest = 0;
        for (auto& v : stored) {
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
            (void)ex->write(json::serialize(json::object{{"type", "ADDED"}, {"object", o}}) + "\n");
        uint64_t id = next_++;
        watches_[id] = {ex, type, ns, sel, after, nullptr, name};
        if (timeout_s > 0) {  // ?timeoutSeconds=: the stream ends then, as Kubernetes'
          auto t = std::make_shared<boost::asio::steady_timer>(ctx_->executor());
          t->expires_after(std::chrono::seconds(timeout_s));
          t->async_wait([this, id](boost::system::error_code ec) {
            if (ec) return;
            if (auto it = watches_.find(id); it != watches_.end()) {
              it->second.ex->end();
              watches_.erase(it);
            }
          });
          watches_[id].timer = t;
        }
        ex->on_closed([this, id] {
          boost::asio::post(ctx_->executor(), [this, id] { watches_.erase(id); });
        });
      });
}

}  // namespace kedge::metaserver

KEDGE_PLUGIN(kedge::metaserver::MetaServer,
             {.name = "metaserver",
              .version = "0.1.0",
              .description = "Read-only Kubernetes API on the edge, from "
                             "metamanager's cache (get, list, watch).",
              .config = kedge::metaserver::kConfig,
              .peers = kedge::metaserver::kPeers})
