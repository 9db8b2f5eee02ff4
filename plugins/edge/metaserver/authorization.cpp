// requireAuthorization (KubeEdge 1.12's metaserver): the serving
// certificate, and whether a bearer token may do what it asks, as the cloud
// decides (an Application sent through edgehub), with the decisions cached.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "metaserver.h"

#include "contracts/wire.h"

namespace kedge::metaserver {

using namespace std::chrono_literals;

// The serving certificate: the configured one, or one issued at each start
// by a CA of this edge's own (<data_dir>/metaserver/ca.crt, for clients to
// trust) for 127.0.0.1, ::1, localhost and the listen address.
Status MetaServer::load_tls() {
  std::string cert = s_.tls_cert_file, key = s_.tls_key_file;
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
    std::string addr = s_.address;
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
  tls_ = ctx.value;
  return {};
}

void MetaServer::refuse(const net::ExchangePtr& ex, const Decision& d) {
  auth_refused_->inc();
  error(ex, d.code, d.reason, d.message);
}

// Decides whether `token` may `verb` the object at `key`
// (/<group|core>/<version>/<resource>/<ns|null>/<name|null>; empty for
// "authenticate"), then calls `done` on this plugin's executor.
void MetaServer::authorize(const std::string& token, const std::string& verb,
                           const std::string& key, Decided done) {
  std::string id = pki::sha256_hex(token) + " " + verb + " " + key;
  auto now = Clock::now();
  auto ttl = std::chrono::seconds(s_.auth_cache_ttl_s);
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
  auto m = kedge::make_message(ctx_->name(),
                               std::string(kedge::contracts::wire::group::kDynamicController),
                               "null", "null", app);
  m.header.sync = true;
  ctx_->request(
      s_.edgehub, kedge::share(std::move(m)), std::chrono::milliseconds(s_.auth_timeout_ms),
      [this, id, token](Status s, MessagePtr r) {
        Decision d;
        d.at = Clock::now();
        d.token_exp = token_exp(token.substr(std::min<size_t>(7, token.size())));
        bool answered = s && r && r->route.operation != kedge::op::kError && r->content.is_object();
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
          auto max_age = std::chrono::seconds(s_.offline_max_age_s);
          if (s_.allow_cached_offline && it != cache_.end() && d.at - it->second.at < max_age &&
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
            d.message = "cannot authorize the request: the cloud is unreachable (" + why + ")" +
                        (s_.allow_cached_offline
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

void MetaServer::remember(const std::string& id, const Decision& d) {
  size_t max = static_cast<size_t>(s_.max_cached_decisions);
  if (cache_.size() >= max && !cache_.count(id)) {
    auto oldest = cache_.begin();
    for (auto it = cache_.begin(); it != cache_.end(); ++it)
      if (it->second.at < oldest->second.at) oldest = it;
    cache_.erase(oldest);
  }
  cache_[id] = d;
}

}  // namespace kedge::metaserver
