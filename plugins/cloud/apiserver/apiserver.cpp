// apiserver: the cloud's Kubernetes-style REST API over HTTPS (api.h), on
// the SQLite or etcd store. Administrators authenticate with bearer tokens;
// nodes with their channel certificates (CN system:node:<name>), issued by
// the cloud CA, which this plugin shares with cloudhub.
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/logger.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>

#include "api.h"
#include "channel.h"
#include "cloud_ca.h"
#include "contracts/apiserver.h"
#include "contracts/modules.h"
#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "kedge/plugin.h"

namespace {

namespace fs = std::filesystem;
namespace net = kedge::net;
namespace pki = kedge::pki;
using kedge::Code;
using kedge::Status;

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

struct Settings {
  std::string address;
  int64_t port = 0;
  std::string store;
  std::string sqlite_path;
  std::vector<std::string> etcd_endpoints;
  std::string etcd_prefix;
  int64_t history = 0;
  bool require_authorization = false;
  int64_t token_min_seconds = 0;
  std::vector<std::string> admin_tokens;
  std::string ca_dir;
  std::vector<std::string> advertise_addresses;
  std::vector<std::string> dns_names;
  int64_t max_body_bytes = 0;
  std::string cloudhub;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    {"address", &Settings::address, "\"0.0.0.0\"", "Address the API listens on."},
    {"port", &Settings::port, kedge::contracts::apiserver::kDefaultPortToml,
     "HTTPS port of the API.", false, 1, 65535},
    {"store", &Settings::store, "\"sqlite\"", "Backend: \"sqlite\" or \"etcd\"."},
    {"sqlite_path", &Settings::sqlite_path, "\"\"",
     "SQLite file (default <data_dir>/apiserver/store.db)."},
    {"etcd_endpoints", &Settings::etcd_endpoints, "[\"127.0.0.1:2379\"]",
     "etcd client endpoints (host:port, plain gRPC)."},
    {"etcd_prefix", &Settings::etcd_prefix, "\"/kedge\"", "Key prefix in etcd."},
    {"history", &Settings::history, "100000",
     "Revisions kept for watches that resume; older starts get 410 Expired.", false, 1, 100000000},
    {"require_authorization", &Settings::require_authorization, "false",
     "The requireAuthorization gate: edges' Applications are checked (service-account token "
     "and RBAC) instead of approved."},
    {"token_min_seconds", &Settings::token_min_seconds, "600",
     "Shortest expirationSeconds a TokenRequest may ask for (Kubernetes: 600).", false, 1,
     315360000},
    {"admin_tokens", &Settings::admin_tokens, "[]",
     "Bearer tokens of administrators, besides <data_dir>/apiserver/admin.token."},
    {"ca_dir", &Settings::ca_dir, "\"\"",
     "Directory of the cloud CA (default <data_dir>/cloudhub, shared with cloudhub)."},
    {"advertise_addresses", &Settings::advertise_addresses, "[\"127.0.0.1\"]",
     "IP addresses clients dial; they go into the serving certificate."},
    {"dns_names", &Settings::dns_names, "[\"localhost\"]",
     "DNS names clients dial; they go into the serving certificate."},
    {"max_body_bytes", &Settings::max_body_bytes, "3145728", "Largest request body (413 past it).",
     false, 1024, 1073741824},
    kedge::contracts::peer_setting(kedge::contracts::kCloudHub, &Settings::cloudhub,
                                   "The module decisions on edges' Applications go back through."),
};
constexpr auto kConfig = kedge::config_keys(kSettings);
constexpr kedge::PeerDecl kPeers[] = {
    {kedge::contracts::kCloudHub.key,
     "applicationResponse to an edge's Application (requireAuthorization), to node/<n>", true},
};

class ApiServer final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    s_ = kedge::read_settings(kSettings, cfg);
    dir_ = kedge::contracts::apiserver::files_dir(ctx.data_dir());
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return kedge::invalid_argument("cannot create " + dir_.string() + ": " + ec.message());
    if (Status s = open_store(); !s) return s;
    if (Status s = load_tokens(); !s) return s;
    if (Status s = load_tls(); !s) return s;
    auto secret = load_secret((dir_ / "sa.key").string());
    if (!secret.ok()) return secret.status;
    auth_ = std::make_unique<kedge::api::Auth>(*store_, secret.value);
    auth_->min_token_seconds = s_.token_min_seconds;
    api_ = std::make_unique<kedge::api::Api>(*store_, auth_.get());
    if (Status s = api_->bootstrap(); !s) return s;
    auto& m = ctx.metrics();
    requests_ = &m.counter("kedge_apiserver_requests_total", "API requests answered");
    errors_ = &m.counter("kedge_apiserver_errors_total", "API requests answered with 4xx/5xx");
    watches_ = &m.gauge("kedge_apiserver_watches", "Watch streams open");
    applications_ = &m.counter("kedge_apiserver_applications_total",
                               "Authorization requests (Applications) from edges");
    refused_apps_ =
        &m.counter("kedge_apiserver_applications_refused_total", "Applications answered Rejected");
    return {};
  }

  Status start() override {
    net::HttpServer::Options o;
    o.max_body = static_cast<size_t>(s_.max_body_bytes);
    server_ = net::HttpServer::create(ctx_->executor(), tls_, o);
    std::string addr = s_.address;
    if (Status s = server_->listen(addr, static_cast<uint16_t>(s_.port),
                                   [this](net::ExchangePtr ex) { serve(std::move(ex)); });
        !s)
      return s;
    log_->info("serving the API on https://{}:{} ({} store)", addr, server_->port(),
               store_->backend());
    return {};
  }

  Status stop() override {
    if (server_) server_->stop();
    streams_.clear();  // cancels their store watches
    internal_.clear();
    watches_->set(0);
    return {};
  }

  // The API for other plugins (controllers), over the router:
  // * op "request", content {"method","target","body"(object or string),
  //   "contentType"}: answered with content {"code": N, "body": <JSON>}.
  // * op "watch", content {"target"} (a collection path; selectors and
  //   resourceVersion in the query): events come as messages op
  //   "watchevent", parent_id = the watch's id, content {"type","object"};
  //   an ERROR event (410 Expired, or the watch ending) is the last one.
  // * op "unwatch", parent_id = the watch's id.
  // Plugins act as administrators.
  void on_message(const kedge::MessagePtr& m) override {
    const std::string& op = m->route.operation;
    if (m->route.group == "dynamiccontroller") return on_application(m);
    if (op == "request") return on_request(m);
    if (op == "watch") return on_watch(m);
    if (op == "unwatch") {
      for (auto it = internal_.begin(); it != internal_.end(); ++it)
        if (it->second.id == m->header.parent_id) {
          if (it->second.watch) it->second.watch->cancel();
          internal_.erase(it);
          break;
        }
      return;
    }
    log_->debug("ignored message op {} from {}", op, m->route.source);
  }

 private:
  Status open_store() {
    std::string kind = s_.store;
    int64_t history = s_.history;
    if (kind == "sqlite") {
      std::string path = s_.sqlite_path;
      if (path.empty()) path = (dir_ / "store.db").string();
      auto s = kedge::store::open_sqlite({path, history, true});
      if (!s.ok()) return s.status;
      store_ = std::move(s.value);
      return {};
    }
    if (kind == "etcd") {
      kedge::store::EtcdOptions o;
      o.endpoints = s_.etcd_endpoints;
      o.prefix = s_.etcd_prefix;
      o.history = history;
      auto s = kedge::store::open_etcd(o);
      if (!s.ok()) return s.status;
      store_ = std::move(s.value);
      return {};
    }
    return kedge::invalid_argument("store: expected \"sqlite\" or \"etcd\", got \"" + kind + "\"");
  }

  // The key that signs service-account tokens: created at first start.
  static pki::Result<std::string> load_secret(const std::string& file) {
    auto k = pki::read_file(file);
    if (!k.ok()) {
      if (Status s = pki::write_file(file, random_hex(32) + "\n", true); !s) return {s, {}};
      k = pki::read_file(file);
      if (!k.ok()) return k;
    }
    while (!k.value.empty() && (k.value.back() == '\n' || k.value.back() == '\r'))
      k.value.pop_back();
    if (k.value.size() < 32)
      return {kedge::invalid_argument(file + ": key shorter than 32 characters"), {}};
    return k;
  }

  // Admin tokens: the configured ones, and <data_dir>/apiserver/admin.token
  // (created at first start) for the local administrator.
  Status load_tokens() {
    for (auto& t : s_.admin_tokens) tokens_.push_back(t);
    std::string file = kedge::contracts::apiserver::admin_token_file(ctx_->data_dir()).string();
    auto t = pki::read_file(file);
    if (!t.ok()) {
      if (Status s = pki::write_file(file, random_hex(32) + "\n", true); !s) return s;
      t = pki::read_file(file);
      if (!t.ok()) return t.status;
      log_->info("created the administrator token in {}", file);
    }
    std::string tok = t.value;
    while (!tok.empty() && (tok.back() == '\n' || tok.back() == '\r')) tok.pop_back();
    if (tok.size() < 16)
      return kedge::invalid_argument(file + ": token shorter than 16 characters");
    tokens_.push_back(tok);
    return {};
  }

  Status load_tls() {
    std::string ca_dir = s_.ca_dir;
    auto ca = kedge::cloud_ca::load_or_create(
        ca_dir.empty() ? kedge::cloud_ca::default_dir(ctx_->data_dir()) : fs::path(ca_dir));
    if (!ca.ok()) return ca.status;
    auto serving = kedge::cloud_ca::serving_cert(ca.value, {"kedge-apiserver", ""},
                                                 s_.advertise_addresses, s_.dns_names);
    if (!serving.ok()) return serving.status;
    // Written for clients (kedge CLI): the CA to trust.
    if (Status s = pki::write_file(kedge::contracts::apiserver::ca_file(ctx_->data_dir()).string(),
                                   ca.value.pem, false);
        !s)
      return s;
    auto ctx = net::server_context({ca.value.pem, serving.value.cert_pem, serving.value.key_pem},
                                   net::ClientCert::kOptional);
    if (!ctx.status) return ctx.status;
    tls_ = ctx.value;
    return {};
  }

  kedge::api::Identity identify(const net::HttpRequest& r) const {
    kedge::api::Identity who;
    auto auth = r.headers.find("authorization");
    if (auth != r.headers.end() && auth->second.rfind("Bearer ", 0) == 0) {
      std::string given = auth->second.substr(7);
      for (auto& t : tokens_)
        if (t.size() == given.size() && CRYPTO_memcmp(t.data(), given.data(), t.size()) == 0) {
          who.kind = kedge::api::Identity::Kind::kAdmin;
          who.name = "admin";
          return who;
        }
      if (!auth_->authenticate(given, who, who.failure))
        who.kind = kedge::api::Identity::Kind::kNone;
      return who;  // a wrong token is not a fall-back to the certificate
    }
    if (r.peer_cert_cn.rfind("system:node:", 0) == 0) {
      who.kind = kedge::api::Identity::Kind::kNode;
      who.name = r.peer_cert_cn.substr(12);
    }
    return who;
  }

  void serve(net::ExchangePtr ex) {
    const net::HttpRequest& hr = ex->request();
    requests_->inc();
    if (hr.target == "/healthz" || hr.target == "/readyz" || hr.target == "/livez") {
      ex->reply({200, "text/plain", "ok"});
      return;
    }
    if (hr.target == "/version") {
      ex->reply(
          {200, "application/json",
           R"({"major":"1","minor":"22","gitVersion":"v1.22.17-kedge","platform":"linux/amd64"})"});
      return;
    }
    kedge::api::Request req;
    req.method = hr.method;
    req.target = hr.target;
    req.body = hr.body;
    if (auto ct = hr.headers.find("content-type"); ct != hr.headers.end())
      req.content_type = ct->second;
    req.who = identify(hr);
    if (kedge::api::Api::is_watch(req)) return start_watch(std::move(ex), req);
    kedge::api::Response res = api_->handle(req);
    if (res.status >= 400) errors_->inc();
    log_->debug("{} {} -> {}", req.method, req.target, res.status);
    ex->reply({res.status, "application/json", std::move(res.body)});
  }

  static std::string text_of(const boost::json::object& c, const char* key) {
    auto* v = c.if_contains(key);
    if (!v) return {};
    if (v->is_string()) return std::string(v->as_string());
    if (v->is_null()) return {};
    return boost::json::serialize(*v);
  }

  void on_request(const kedge::MessagePtr& m) {
    auto* c = m->content.if_object();
    boost::json::object answer;
    if (!c) {
      answer = {{"code", 400}, {"body", "request content must be an object"}};
    } else {
      kedge::api::Request req;
      req.method = text_of(*c, "method");
      req.target = text_of(*c, "target");
      req.body = text_of(*c, "body");
      req.content_type = text_of(*c, "contentType");
      if (req.content_type.empty()) req.content_type = "application/json";
      req.who = {kedge::api::Identity::Kind::kAdmin, "plugin:" + m->route.source};
      auto res = api_->handle(req);
      requests_->inc();
      if (res.status >= 400) errors_->inc();
      boost::json::error_code ec;
      auto body = boost::json::parse(res.body, ec);
      answer = {{"code", res.status}, {"body", ec ? boost::json::value(res.body) : body}};
    }
    (void)ctx_->respond(kedge::share(kedge::new_response(*m, std::move(answer))));
  }

  // An edge's metaserver asks whether a caller's request may be served
  // (KubeEdge's Application): the token in `Token` is
  // authenticated and the request (`Verb` on `Key`) authorized with RBAC.
  // The answer is the Application with Status Approved, or Rejected with a
  // Kubernetes Status in Error.ErrStatus (401 or 403). Without
  // require_authorization every Application is approved, as KubeEdge's
  // cloud does with the gate off. Verb "authenticate" (kedge's) checks only
  // the token, for discovery paths. RespBody is not filled: kedge edges
  // serve the data from their cache.
  void on_application(const kedge::MessagePtr& m) {
    namespace json = boost::json;
    json::object app = m->content.is_object() ? m->content.as_object() : json::object{};
    auto field = [&](const char* k) { return text_of(app, k); };
    auto reject = [&](int code, const std::string& reason, const std::string& message) {
      app["Status"] = "Rejected";
      app["Reason"] = message;
      app["Error"] = json::object{{"ErrStatus", json::object{{"kind", "Status"},
                                                             {"apiVersion", "v1"},
                                                             {"metadata", json::object{}},
                                                             {"status", "Failure"},
                                                             {"message", message},
                                                             {"reason", reason},
                                                             {"code", code}}}};
    };
    std::string node = kedge::channel::node_of(m->route.resource);
    applications_->inc();
    if (!m->content.is_object()) {
      reject(400, "BadRequest", "the Application is not a JSON object");
    } else if (!s_.require_authorization) {
      app["Status"] = "Approved";
      app["Reason"] = "authorization is not required by the cloud";
    } else {
      std::string token = field("Token"), verb = field("Verb");
      kedge::api::Identity who;
      kedge::api::Attributes a;
      if (token.rfind("Bearer ", 0) != 0) {
        reject(401, "Unauthorized", "Unauthorized: a bearer token is required");
      } else if (!auth_->authenticate(token.substr(7), who, who.failure)) {
        reject(401, "Unauthorized", "Unauthorized: " + who.failure);
      } else if (verb == "authenticate") {
        app["Status"] = "Approved";
      } else if (!attributes_of_key(field("Key"), verb, field("Subresource"), a)) {
        reject(400, "BadRequest",
               "the Application's Key \"" + field("Key") +
                   "\" is not /<group>/<version>/<resource>/<ns>/<name>");
      } else if (auto d = auth_->authorize(who, a); !d.allowed) {
        reject(403, "Forbidden", d.reason);
      } else {
        app["Status"] = "Approved";
        app["Reason"] = d.reason;
      }
    }
    if (text_of(app, "Status") != "Approved") refused_apps_->inc();
    log_->debug("node {}: Application {} {} -> {}", node, text_of(app, "Verb"), text_of(app, "Key"),
                text_of(app, "Status"));
    kedge::Message r = kedge::new_response(*m, std::move(app));
    r.route.source = "dynamiccontroller";
    r.route.group = "resource";
    r.route.operation = "applicationResponse";
    r.route.resource = "node/" + node + "/ignore/Application/ignore";
    (void)ctx_->send(s_.cloudhub, kedge::share(std::move(r)), std::chrono::seconds(2));
  }

  // /<group or core>/<version>/<resource>/<ns or null>/<name or null>
  static bool attributes_of_key(const std::string& key, const std::string& verb,
                                const std::string& sub, kedge::api::Attributes& a) {
    std::vector<std::string> p;
    size_t pos = 1;
    if (key.empty() || key[0] != '/') return false;
    while (pos <= key.size()) {
      size_t slash = key.find('/', pos);
      if (slash == std::string::npos) slash = key.size();
      p.push_back(key.substr(pos, slash - pos));
      pos = slash + 1;
    }
    if (p.size() != 5 || p[2].empty() || verb.empty()) return false;
    a.verb = verb;
    a.group = p[0] == "core" ? "" : p[0];
    a.resource = p[2];
    a.ns = p[3] == "null" ? "" : p[3];
    // A cluster-scoped resource has no namespace, whatever the Key says:
    // no RoleBinding may grant it.
    for (auto& r : kedge::api::resources())
      if (r.group == a.group && r.plural == a.resource && !r.namespaced) a.ns.clear();
    a.name = p[4] == "null" ? "" : p[4];
    a.subresource = sub;
    return true;
  }

  void on_watch(const kedge::MessagePtr& m) {
    auto* c = m->content.if_object();
    std::string target = c ? text_of(*c, "target") : "";
    std::string to = m->route.source, id = m->header.id;
    uint64_t key = next_stream_++;
    auto strand = ctx_->executor();
    auto deliver = [this, key, to, id, target, strand](std::string line, bool last) {
      boost::asio::post(strand, [=, this] {
        auto it = internal_.find(key);
        if (it == internal_.end()) return;
        boost::json::error_code ec;
        auto ev = boost::json::parse(line, ec);
        auto msg = kedge::make_message(ctx_->name(), "resource", "watchevent", target,
                                       ec ? boost::json::value() : ev);
        msg.header.parent_id = id;
        Status s = ctx_->send(to, kedge::share(std::move(msg)));
        if (!s || last) {
          if (!s && !last) {
            // The watcher cannot keep up: end its watch; it re-watches.
            auto end = kedge::make_message(
                ctx_->name(), "resource", "watchevent", target,
                boost::json::object{
                    {"type", "ERROR"},
                    {"object", boost::json::object{{"code", 500}, {"message", s.message()}}}});
            end.header.parent_id = id;
            (void)ctx_->send(to, kedge::share(std::move(end)), std::chrono::seconds(1));
          }
          if (it->second.watch) it->second.watch->cancel();
          internal_.erase(it);
        }
      });
    };
    internal_[key].id = id;
    kedge::api::Request req{"GET", target, "", "", {kedge::api::Identity::Kind::kAdmin, to}};
    auto w = api_->watch(
        req, [deliver](std::string line) { deliver(std::move(line), false); },
        [deliver](std::string line) { deliver(std::move(line), true); });
    if (w.error) {
      internal_.erase(key);
      auto msg = kedge::make_message(
          ctx_->name(), "resource", "watchevent", target,
          boost::json::object{{"type", "ERROR"}, {"object", boost::json::parse(w.error->body)}});
      msg.header.parent_id = id;
      (void)ctx_->send(to, kedge::share(std::move(msg)));
      return;
    }
    internal_[key].watch = std::move(w.watch);
  }

  struct InternalWatch {
    std::string id;
    std::unique_ptr<kedge::store::Watch> watch;
  };

  struct Stream {
    net::ExchangePtr ex;
    std::unique_ptr<kedge::store::Watch> watch;
    std::unique_ptr<boost::asio::steady_timer> timeout;
  };

  void start_watch(net::ExchangePtr ex, const kedge::api::Request& req) {
    uint64_t id = next_stream_++;
    auto strand = ctx_->executor();
    // Events come from the store's thread: hop to this plugin's strand.
    auto emit = [this, id, strand](std::string line) {
      boost::asio::post(strand, [this, id, line = std::move(line)]() mutable {
        auto it = streams_.find(id);
        if (it == streams_.end()) return;
        Status s = it->second.ex->write(std::move(line));
        if (s.code() == Code::kFull) {
          log_->warn("watch {}: {}; ending it", it->second.ex->request().target, s.message());
          end_stream(id);
        } else if (!s) {
          end_stream(id);
        }
      });
    };
    auto on_end = [this, id, strand](std::string line) {
      boost::asio::post(strand, [this, id, line = std::move(line)]() mutable {
        auto it = streams_.find(id);
        if (it == streams_.end()) return;
        (void)it->second.ex->write(std::move(line));
        end_stream(id);
      });
    };
    streams_[id].ex = ex;  // before watch(): the backfill is posted behind this
    auto w = api_->watch(req, emit, on_end);
    if (w.error) {
      streams_.erase(id);
      errors_->inc();
      ex->reply({w.error->status, "application/json", std::move(w.error->body)});
      return;
    }
    Stream& s = streams_[id];
    s.watch = std::move(w.watch);
    ex->begin_stream(200, "application/json");
    ex->on_closed(
        [this, id] { boost::asio::post(ctx_->executor(), [this, id] { end_stream(id); }); });
    auto q = ex->request().target.find("timeoutSeconds=");
    if (q != std::string::npos) {
      long secs = std::atol(ex->request().target.c_str() + q + 15);
      if (secs > 0) {
        s.timeout = std::make_unique<boost::asio::steady_timer>(strand, std::chrono::seconds(secs));
        s.timeout->async_wait([this, id](boost::system::error_code ec) {
          if (!ec) end_stream(id);
        });
      }
    }
    watches_->set(static_cast<int64_t>(streams_.size()));
  }

  void end_stream(uint64_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    if (it->second.watch) it->second.watch->cancel();
    if (it->second.timeout) it->second.timeout->cancel();
    it->second.ex->end();
    streams_.erase(it);
    watches_->set(static_cast<int64_t>(streams_.size()));
  }

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  Settings s_;
  fs::path dir_;
  std::unique_ptr<kedge::store::Store> store_;
  std::unique_ptr<kedge::api::Api> api_;
  std::vector<std::string> tokens_;
  std::unique_ptr<kedge::api::Auth> auth_;
  kedge::Counter *applications_ = nullptr, *refused_apps_ = nullptr;
  net::SslContext tls_;
  std::shared_ptr<net::HttpServer> server_;
  std::map<uint64_t, Stream> streams_;
  std::map<uint64_t, InternalWatch> internal_;
  uint64_t next_stream_ = 1;
  kedge::Counter *requests_ = nullptr, *errors_ = nullptr;
  kedge::Gauge* watches_ = nullptr;
};

}  // namespace

KEDGE_PLUGIN(ApiServer, {.name = "apiserver",
                         .version = "0.1.0",
                         .description = "Kubernetes-style resource API over HTTPS on the SQLite "
                                        "or etcd store.",
                         .config = kConfig,
                         .peers = kPeers})
