// metaserver's one class, declared for the files that implement it:
// metaserver.cpp (the plugin, discovery, get, list and watch) and
// authorization.cpp (requireAuthorization: TLS, the cloud's decisions and
// their cache). Not installed: the plugin's private interior.
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <boost/url/url_view.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "k8s.h"
#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "kedge/plugin.h"
#include "resources.h"

namespace kedge::metaserver {

namespace json = boost::json;
namespace net = kedge::net;
namespace pki = kedge::pki;

// metaserver's config (kSettings in metaserver.cpp declares each key).
struct Settings {
  std::string address;
  int64_t port = 0;
  bool require_authorization = false;
  std::string tls_cert_file;
  std::string tls_key_file;
  int64_t auth_cache_ttl_s = 0;
  int64_t auth_timeout_ms = 0;
  bool allow_cached_offline = false;
  int64_t offline_max_age_s = 0;
  int64_t max_cached_decisions = 0;
  int64_t handshake_timeout_ms = 0;
  int64_t idle_timeout_ms = 0;
  int64_t max_connections = 0;
  std::string metamanager, edgehub;
};
using Clock = std::chrono::steady_clock;
using kedge::MessagePtr;
using kedge::Status;

inline const std::set<std::string> kServed = {"pods",      "configmaps", "secrets", "services",
                                              "endpoints", "nodes",      "devices", "devicemodels"};

inline std::string status_json(int code, const std::string& reason, const std::string& message) {
  return json::serialize(json::object{{"kind", "Status"},
                                      {"apiVersion", "v1"},
                                      {"metadata", json::object{}},
                                      {"status", "Failure"},
                                      {"message", message},
                                      {"reason", reason},
                                      {"code", code}});
}

// The edge's resource type for a plural (pods -> pod).
inline std::string type_of(const kedge::api::Resource& r) {
  std::string k = r.kind;
  std::transform(k.begin(), k.end(), k.begin(), ::tolower);
  return k;
}

inline int64_t rv_of(const json::value& o) {
  auto* md = o.is_object() ? o.as_object().if_contains("metadata") : nullptr;
  if (!md || !md->is_object()) return 0;
  auto* rv = md->as_object().if_contains("resourceVersion");
  if (!rv || !rv->is_string()) return 0;
  return std::atoll(std::string(rv->as_string()).c_str());
}

// The exp claim of a JWT, read without checking it (only the cloud can):
// an offline decision never outlives its token. 0 if there is none.
inline int64_t token_exp(std::string_view token) {
  size_t a = token.find('.'), b = a == std::string_view::npos ? a : token.find('.', a + 1);
  if (b == std::string_view::npos) return 0;
  auto p = pki::base64url_decode(token.substr(a + 1, b - a - 1));
  if (!p.ok()) return 0;
  json::error_code ec;
  auto v = json::parse(p.value, ec);
  auto* exp = !ec && v.is_object() ? v.as_object().if_contains("exp") : nullptr;
  return exp && exp->is_int64() ? exp->as_int64() : 0;
}

inline int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// metadata.resourceVersion of a stored object without parsing it (the
// first "resourceVersion" member: metadata comes before spec and status in
// what the cloud sends).
inline int64_t raw_rv(std::string_view v) {
  static constexpr std::string_view kKey = "\"resourceVersion\":\"";
  size_t p = v.find(kKey);
  if (p == std::string_view::npos) return 0;
  int64_t n = 0;
  for (p += kKey.size(); p < v.size() && v[p] >= '0' && v[p] <= '9'; ++p) n = n * 10 + (v[p] - '0');
  return n;
}

class MetaServer final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override;
  Status start() override;
  Status stop() override;
  // Changes stored by metamanager: to the watches they concern.
  void on_message(const MessagePtr& m) override;

 private:
  struct Watch {
    net::ExchangePtr ex;
    std::string type, ns;
    kedge::k8s::Selector selector;
    int64_t after = 0;
    std::shared_ptr<boost::asio::steady_timer> timer;  // ?timeoutSeconds= (goes with it)
    std::string name;  // a watch of one object (…/pods/<name>?watch=1)
  };
  struct Decision {
    int code = 0;  // 0: allowed; else 401 or 403
    std::string reason, message;
    Clock::time_point at;
    int64_t token_exp = 0;
  };
  using Decided = std::function<void(const Decision&)>;

  // ---- requireAuthorization (authorization.cpp) ----
  // The serving certificate: the configured one, or one issued at each start
  // by a CA of this edge's own (<data_dir>/metaserver/ca.crt, for clients to
  // trust) for 127.0.0.1, ::1, localhost and the listen address.
  Status load_tls();
  void refuse(const net::ExchangePtr& ex, const Decision& d);
  // Decides whether `token` may `verb` the object at `key`
  // (/<group|core>/<version>/<resource>/<ns|null>/<name|null>; empty for
  // "authenticate"), then calls `done` on this plugin's executor.
  void authorize(const std::string& token, const std::string& verb, const std::string& key,
                 Decided done);
  void remember(const std::string& id, const Decision& d);

  // ---- serving (metaserver.cpp) ----
  void error(const net::ExchangePtr& ex, int code, const std::string& reason,
             const std::string& message);
  static json::object resource_list(const std::string& gv);
  void serve(net::ExchangePtr ex);
  // For the gate: the Application's Verb and Key of a request. Discovery
  // paths need an authenticated token; get, list and watch their RBAC
  // permission. False for what is refused without asking (bad paths,
  // writes).
  bool resource_key(const boost::urls::url_view& u, const std::map<std::string, std::string>& q,
                    const std::string& method, std::string& verb, std::string& key);
  void route(const net::ExchangePtr& ex, const boost::urls::url_view& uv, const std::string& path,
             std::map<std::string, std::string> q);

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  Settings s_;
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

}  // namespace kedge::metaserver
