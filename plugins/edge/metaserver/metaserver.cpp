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
#include <spdlog/logger.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <functional>
#include <map>
#include <set>

#include "k8s.h"
#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "kedge/plugin.h"
#include "resources.h"

namespace {

namespace json = boost::json;
namespace net = kedge::net;
namespace pki = kedge::pki;
using Clock = std::chrono::steady_clock;
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

// The exp claim of a JWT, read without checking it (only the cloud can):
// an offline decision never outlives its token. 0 if there is none.
int64_t token_exp(std::string_view token) {
  size_t a = token.find('.'), b = a == std::string_view::npos ? a : token.find('.', a + 1);
  if (b == std::string_view::npos) return 0;
  auto p = pki::base64url_decode(token.substr(a + 1, b - a - 1));
  if (!p.ok()) return 0;
  json::error_code ec;
  auto v = json::parse(p.value, ec);
  auto* exp = !ec && v.is_object() ? v.as_object().if_contains("exp") : nullptr;
  return exp && exp->is_int64() ? exp->as_int64() : 0;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// metadata.resourceVersion of a stored object without parsing it (the
// first "resourceVersion" member: metadata comes before spec and status in
// what the cloud sends).
int64_t raw_rv(std::string_view v) {
  static constexpr std::string_view kKey = "\"resourceVersion\":\"";
  size_t p = v.find(kKey);
  if (p == std::string_view::npos) return 0;
  int64_t n = 0;
  for (p += kKey.size(); p < v.size() && v[p] >= '0' && v[p] <= '9'; ++p) n = n * 10 + (v[p] - '0');
  return n;
}

class MetaServer final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    cfg_ = cfg;
    auto& m = ctx.metrics();
    requests_ = &m.counter("kedge_metaserver_requests_total", "Requests answered");
    auth_asked_ = &m.counter("kedge_metaserver_auth_cloud_checks_total",
                             "Authorization decisions asked of the cloud");
    auth_cached_ = &m.counter("kedge_metaserver_auth_cache_hits_total",
                              "Authorization decisions taken from the cache");
    auth_refused_ =
        &m.counter("kedge_metaserver_auth_refused_total", "Requests refused with 401 or 403");
    gate_ = cfg.get_bool("require_authorization");
    if (gate_) {
      if (Status s = load_tls(); !s) return s;
    }
    return {};
  }
  Status start() override {
    net::HttpServer::Options o;
    o.max_body = 1 << 20;
    o.handshake_timeout = std::chrono::milliseconds(cfg_.get_int("handshake_timeout_ms"));
    o.idle_timeout = std::chrono::milliseconds(cfg_.get_int("idle_timeout_ms"));
    o.max_connections = static_cast<size_t>(cfg_.get_int("max_connections"));
    server_ = net::HttpServer::create(ctx_->executor(), tls_, o);
    std::string addr = cfg_.get_string("address");
    if (Status s = server_->listen(addr, static_cast<uint16_t>(cfg_.get_int("port")),
                                   [this](net::ExchangePtr ex) { serve(std::move(ex)); });
        !s)
      return s;
    log_->info("serving the edge's API on {}://{}:{}{}", gate_ ? "https" : "http", addr,
               server_->port(),
               gate_ ? " (requireAuthorization: bearer tokens checked by the cloud)" : "");
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

 private:
  struct Watch {
    net::ExchangePtr ex;
    std::string type, ns;
    kedge::k8s::Selector selector;
    int64_t after = 0;
    std::shared_ptr<boost::asio::steady_timer> timer;  // ?timeoutSeconds= (goes with it)
    std::string name;  // a watch of one object (…/pods/<name>?watch=1)
  };

  void error(const net::ExchangePtr& ex, int code, const std::string& reason,
             const std::string& message) {
    ex->reply({code, "application/json", status_json(code, reason, message)});
  }

  // ---- requireAuthorization ----

  // The serving certificate: the configured one, or one issued at each start
  // by a CA of this edge's own (<data_dir>/metaserver/ca.crt, for clients to
  // trust) for 127.0.0.1, ::1, localhost and the listen address.
  Status load_tls() {
    std::string cert = cfg_.get_string("tls_cert_file"), key = cfg_.get_string("tls_key_file");
    std::string cert_pem, key_pem, ca_pem;
    if (!cert.empty() || !key.empty()) {
      auto c = pki::read_file(cert);
      auto k = pki::read_file(key);
      if (!c.ok()) return kedge::invalid_argument("tls_cert_file: " + c.status.message());
      if (!k.ok()) return kedge::invalid_argument("tls_key_file: " + k.status.message());
      cert_pem = c.value;
      key_pem = k.value;
      ca_pem = c.value;
    } else {
      auto dir = ctx_->data_dir() / "metaserver";
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      auto ca = pki::load_or_create_ca(dir.string());
      if (!ca.ok()) return ca.status;
      pki::Key k = pki::generate_key();
      pki::SignOptions o;
      o.usages = pki::kServerAuth;
      o.days = 3650;
      o.ips = {"127.0.0.1", "::1"};
      std::string addr = cfg_.get_string("address");
      if (addr != "127.0.0.1" && addr != "::1" && addr != "0.0.0.0" && addr != "::" &&
          addr.find_first_not_of("0123456789.:abcdefABCDEF") == std::string::npos)
        o.ips.push_back(addr);
      o.dns_names = {"localhost"};
      auto c =
          pki::issue(ca.value.cert.get(), ca.value.key.get(), k.get(), {"kedge-metaserver", ""}, o);
      if (!c.ok()) return c.status;
      cert_pem = pki::cert_pem(c.value.get());
      key_pem = pki::key_pem(k.get());
      ca_pem = ca.value.pem;
    }
    auto ctx = net::server_context({ca_pem, cert_pem, key_pem}, net::ClientCert::kNone);
    if (!ctx.status) return ctx.status;
    tls_ = ctx.ctx;
    return {};
  }

  struct Decision {
    int code = 0;  // 0: allowed; else 401 or 403
    std::string reason, message;
    Clock::time_point at;
    int64_t token_exp = 0;
  };
  using Decided = std::function<void(const Decision&)>;

  void refuse(const net::ExchangePtr& ex, const Decision& d) {
    auth_refused_->inc();
    error(ex, d.code, d.reason, d.message);
  }

  // Decides whether `token` may `verb` the object at `key`
  // (/<group|core>/<version>/<resource>/<ns|null>/<name|null>; empty for
  // "authenticate"), then calls `done` on this plugin's executor.
  void authorize(const std::string& token, const std::string& verb, const std::string& key,
                 Decided done) {
    std::string id = pki::sha256_hex(token) + " " + verb + " " + key;
    auto now = Clock::now();
    auto ttl = std::chrono::seconds(cfg_.get_int("auth_cache_ttl_s"));
    if (auto it = cache_.find(id); it != cache_.end() && now - it->second.at < ttl) {
      auth_cached_->inc();
      return done(it->second);
    }
    auto [p, first] = pending_.try_emplace(id);
    p->second.push_back(std::move(done));
    if (!first) return;  // the same question is already with the cloud
    auth_asked_->inc();
    std::string node = ctx_->node_name();
    json::object app{{"ID", pki::sha256_hex(node + key + verb + token)},
                     {"Key", key},
                     {"Verb", verb},
                     {"Nodename", node},
                     {"Status", "PreApplying"},
                     {"Reason", ""},
                     {"Option", ""},
                     {"ReqBody", ""},
                     {"RespBody", ""},
                     {"Subresource", ""},
                     {"Error", json::object{{"ErrStatus", json::object{}}}},
                     {"Token", token}};
    auto m = kedge::make_message(ctx_->name(), "dynamiccontroller", "null", "null", app);
    m.header.sync = true;
    ctx_->request(
        "edgehub", kedge::share(std::move(m)),
        std::chrono::milliseconds(cfg_.get_int("auth_timeout_ms")),
        [this, id, token](Status s, MessagePtr r) {
          Decision d;
          d.at = Clock::now();
          d.token_exp = token_exp(token.substr(std::min<size_t>(7, token.size())));
          bool answered =
              s && r && r->route.operation != kedge::op::kError && r->content.is_object();
          std::string why = !s   ? s.message()
                            : !r ? "no answer"
                            : r->route.operation == kedge::op::kError && r->content.is_string()
                                ? std::string(r->content.as_string())
                                : "an answer that is not an Application";
          if (answered) {
            auto& answer = r->content.as_object();
            auto status = answer.if_contains("Status");
            bool approved = status && status->is_string() && status->as_string() == "Approved";
            if (approved) {
              d.code = 0;
            } else {
              const json::value* es = nullptr;
              if (auto* e = answer.if_contains("Error"); e && e->is_object())
                es = e->as_object().if_contains("ErrStatus");
              auto field = [&](const char* k) -> std::string {
                auto* v = es && es->is_object() ? es->as_object().if_contains(k) : nullptr;
                return v && v->is_string() ? std::string(v->as_string()) : std::string();
              };
              auto* c = es && es->is_object() ? es->as_object().if_contains("code") : nullptr;
              d.code = c && c->is_int64() && c->as_int64() == 401 ? 401 : 403;
              d.reason = field("reason").empty() ? (d.code == 401 ? "Unauthorized" : "Forbidden")
                                                 : field("reason");
              d.message = field("message");
              if (d.message.empty()) {
                auto* reason = answer.if_contains("Reason");
                d.message = reason && reason->is_string() && !reason->as_string().empty()
                                ? std::string(reason->as_string())
                                : "the cloud rejected the request";
              }
            }
            remember(id, d);
          } else {
            // Offline (or no answer in time): a cached decision only under
            // the opt-in, and never past the token's own expiry.
            auto it = cache_.find(id);
            auto max_age = std::chrono::seconds(cfg_.get_int("offline_max_age_s"));
            if (cfg_.get_bool("allow_cached_offline") && it != cache_.end() &&
                d.at - it->second.at < max_age &&
                (it->second.token_exp == 0 || unix_now() < it->second.token_exp)) {
              auth_cached_->inc();
              log_->debug("cloud unreachable ({}): cached decision used", why);
              d = it->second;
            } else if (d.token_exp != 0 && unix_now() >= d.token_exp) {
              d.code = 401;
              d.reason = "Unauthorized";
              d.message = "Unauthorized: the token has expired";
            } else {
              d.code = 403;
              d.reason = "Forbidden";
              d.message =
                  "cannot authorize the request: the cloud is unreachable (" + why + ")" +
                  (cfg_.get_bool("allow_cached_offline")
                       ? " and there is no usable cached decision for this token and request"
                       : "; this edge does not use cached decisions offline "
                         "(metaserver allow_cached_offline)");
            }
          }
          auto waiting = std::move(pending_[id]);
          pending_.erase(id);
          for (auto& f : waiting) f(d);
        });
  }

  void remember(const std::string& id, const Decision& d) {
    size_t max = static_cast<size_t>(cfg_.get_int("max_cached_decisions"));
    if (cache_.size() >= max && !cache_.count(id)) {
      auto oldest = cache_.begin();
      for (auto it = cache_.begin(); it != cache_.end(); ++it)
        if (it->second.at < oldest->second.at) oldest = it;
      cache_.erase(oldest);
    }
    cache_[id] = d;
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
  bool resource_key(const boost::urls::url_view& u, const std::map<std::string, std::string>& q,
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
      if (r.api_version() == gv && r.plural == seg[i] && !r.namespaced && ns != "null")
        return false;
    std::string name = seg.size() > i + 1 ? seg[i + 1] : "null";
    auto w = q.find("watch");
    bool watch = w != q.end() && (w->second == "1" || w->second == "true");
    verb = watch ? "watch" : name == "null" ? "list" : "get";
    key = "/" + group + "/" + version + "/" + seg[i] + "/" + ns + "/" + name;
    return true;
  }

  void route(const net::ExchangePtr& ex, const boost::urls::url_view& uv, const std::string& path,
             std::map<std::string, std::string> q) {
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
    if (!res->namespaced && !ns.empty())
      return error(ex, 404, "NotFound",
                   res->plural + " are not namespaced: use " + res->collection_path(""));
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
    int64_t timeout_s = 0;
    if (auto it = q.find("timeoutSeconds"); it != q.end() && !it->second.empty()) {
      char* end = nullptr;
      timeout_s = std::strtoll(it->second.c_str(), &end, 10);
      if (*end || timeout_s < 0 || it->second.size() > 10)
        return error(ex, 400, "BadRequest",
                     "timeoutSeconds \"" + it->second + "\" is not a number of seconds");
    }
    auto query = kedge::make_message(ctx_->name(), "meta", "query", key);
    ctx_->request(
        "metamanager", kedge::share(std::move(query)), 10s,
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
              (void)ex->write(json::serialize(json::object{{"type", "ADDED"}, {"object", o}}) +
                              "\n");
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

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  kedge::Config cfg_;
  std::shared_ptr<net::HttpServer> server_;
  std::map<uint64_t, Watch> watches_;
  uint64_t next_ = 1;
  kedge::Counter* requests_ = nullptr;
  bool gate_ = false;
  net::SslContext tls_;
  std::map<std::string, Decision> cache_;                // token hash, verb, key -> decision
  std::map<std::string, std::vector<Decided>> pending_;  // asked of the cloud
  kedge::Counter *auth_asked_ = nullptr, *auth_cached_ = nullptr, *auth_refused_ = nullptr;
};

constexpr kedge::ConfigKey kConfig[] = {
    {"address", kedge::ConfigType::kString, "\"127.0.0.1\"",
     "Address of the edge's API (plain HTTP: keep it on loopback).", false},
    {"port", kedge::ConfigType::kInteger, "10550", "Port of the edge's API.", false},
    {"require_authorization", kedge::ConfigType::kBool, "false",
     "The requireAuthorization gate: HTTPS only, and every request needs a bearer token the "
     "cloud authenticates and authorizes (set it in the cloud's apiserver too).",
     false},
    {"tls_cert_file", kedge::ConfigType::kString, "\"\"",
     "Serving certificate under the gate (default: issued at start by <data_dir>/metaserver/ca.crt "
     "for 127.0.0.1, ::1 and localhost).",
     false},
    {"tls_key_file", kedge::ConfigType::kString, "\"\"", "Its private key.", false},
    {"auth_cache_ttl_s", kedge::ConfigType::kInteger, "10",
     "How long a decision of the cloud is reused before asking again.", false},
    {"auth_timeout_ms", kedge::ConfigType::kInteger, "5000",
     "How long to wait for the cloud's decision.", false},
    {"allow_cached_offline", kedge::ConfigType::kBool, "false",
     "Offline, serve requests a cached decision allowed (until the token expires or "
     "offline_max_age_s). Off: every request is refused while the cloud is away.",
     false},
    {"offline_max_age_s", kedge::ConfigType::kInteger, "86400",
     "Oldest cached decision used offline.", false},
    {"max_cached_decisions", kedge::ConfigType::kInteger, "10000",
     "Decisions kept (the oldest goes first).", false},
    {"handshake_timeout_ms", kedge::ConfigType::kInteger, "10000",
     "A client must send its request head (and finish TLS) within this.", false},
    {"idle_timeout_ms", kedge::ConfigType::kInteger, "90000",
     "A kept-alive connection with no request is closed after this.", false},
    {"max_connections", kedge::ConfigType::kInteger, "1024",
     "Connections served at once; more are refused.", false},
};

}  // namespace

KEDGE_PLUGIN(MetaServer, {.name = "metaserver",
                          .version = "0.1.0",
                          .description = "Read-only Kubernetes API on the edge, from "
                                         "metamanager's cache (get, list, watch).",
                          .config = kConfig})
