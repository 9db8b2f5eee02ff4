// Joining (the token bootstrap: fetch the CA, check it against the token's
// hash, send a CSR, keep key and certificate) and certificate rotation (a
// new certificate at 70-90% of the lifetime, then a reconnect with it), as
// KubeEdge's EdgeHub certificate manager does.
#include <fstream>

#include "edgehub.h"
#include "kedge/common/http_client.h"
#include "kedge/common/pki.h"

namespace kedge::edgehub {

using namespace std::chrono_literals;

bool EdgeHub::have_certificate() const {
  return fs::exists(dir_ / "edge.crt") && fs::exists(dir_ / "edge.key") &&
         fs::exists(dir_ / "ca.crt");
}

void EdgeHub::join(std::function<void(Status)> done) {
  std::string token = s_.token;
  if (token.empty()) {
    std::filesystem::path tf = s_.token_file;
    if (!tf.empty() && tf.is_relative()) tf = ctx_->data_dir() / tf;
    if (auto f = pki::read_file(tf.string()); f.ok()) token = f.value;
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
  if (token.empty())
    return done(kedge::invalid_argument("no certificate in " + dir_.string() +
                                        " and no join token (set token or token_file)"));
  auto t = pki::parse_join_token(token);
  if (!t.ok()) return done(kedge::invalid_argument("join token: " + t.status.message()));
  auto insecure = net::client_context({}, false);
  auto timeout = std::chrono::seconds(s_.connect_timeout_s);
  net::http_request(
      ctx_->executor(), insecure.value, http_server_.host, http_server_.port,
      {"GET", "/ca.crt", {}, "", ""}, timeout, 1 << 20,
      [this, t = t.value, done, timeout](net::HttpResult r) {
        if (!r.status) return done({r.status.code(), "fetching the CA: " + r.status.message()});
        if (r.http_status != 200)
          return done(
              {Code::kUnavailable, "fetching the CA: HTTP " + std::to_string(r.http_status)});
        std::string hash = pki::sha256_hex(r.body);
        if (hash != t.ca_hash)
          return done({Code::kFailedPrecondition, "the cloud's CA (sha256 " + hash +
                                                      ") is not the one in the join token (" +
                                                      t.ca_hash + ")"});
        auto ca = pki::cert_from_der(r.body);
        if (!ca.ok()) return done(ca.status);
        ca_pem_ = pki::cert_pem(ca.value.get());
        auto key = std::make_shared<pki::Key>(pki::generate_key());
        auto csr = pki::make_csr(key->get(), {"system:node:" + node_, "system:nodes"});
        if (!csr.ok()) return done(csr.status);
        auto verified = net::client_context({ca_pem_, "", ""}, true);
        net::http_request(
            ctx_->executor(), verified.value, http_server_.host, http_server_.port,
            {"GET",
             "/edge.crt",
             {{"Authorization", "Bearer " + t.jwt}, {"NodeName", node_}},
             pki::csr_der(csr.value.get()),
             ""},
            timeout, 1 << 20, [this, key, done](net::HttpResult r2) {
              if (!r2.status)
                return done({r2.status.code(), "requesting a certificate: " + r2.status.message()});
              if (r2.http_status != 200)
                return done({Code::kFailedPrecondition,
                             "the cloud refused the certificate request (HTTP " +
                                 std::to_string(r2.http_status) + "): " + r2.body});
              auto cert = pki::cert_from_der(r2.body);
              if (!cert.ok()) return done(cert.status);
              for (auto [file, data, secret] :
                   {std::tuple{"ca.crt", ca_pem_, false},
                    std::tuple{"edge.key", pki::key_pem(key->get()), true},
                    std::tuple{"edge.crt", pki::cert_pem(cert.value.get()), false}})
                if (Status s = pki::write_file((dir_ / file).string(), data, secret); !s)
                  return done(s);
              log_->info("joined: certificate for system:node:{} stored in {}", node_,
                         dir_.string());
              done({});
            });
      });
}

// An expired certificate cannot renew itself: join again with the token.
bool EdgeHub::certificate_expired() {
  auto pem = pki::read_file((dir_ / "edge.crt").string());
  if (!pem.ok()) return false;
  auto c = pki::cert_from_pem(pem.value);
  return c.ok() && pki::not_after(c.value.get()) <= std::chrono::system_clock::now();
}

// Renews the certificate at a random point between 70% and 90% of its
// lifetime, with the current certificate as the credential, then
// reconnects with the new one (the outbox and the cloud's queue carry what
// is in flight across the reconnect).
void EdgeHub::schedule_rotation() {
  if (!s_.rotate_certificates || rotating_) return;
  auto pem = pki::read_file((dir_ / "edge.crt").string());
  if (!pem.ok()) return;
  auto cert = pki::cert_from_pem(pem.value);
  if (!cert.ok()) return;
  auto nb = pki::not_before(cert.value.get()), na = pki::not_after(cert.value.get());
  std::uniform_real_distribution<double> frac(0.7, 0.9);
  auto at =
      nb + std::chrono::duration_cast<std::chrono::system_clock::duration>((na - nb) * frac(rng_));
  auto delay =
      std::max(std::chrono::system_clock::duration::zero(), at - std::chrono::system_clock::now());
  rotate_timer_->expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(delay));
  rotate_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) rotate(std::chrono::seconds(2));
  });
}

void EdgeHub::rotate(std::chrono::seconds retry) {
  if (stopped_) return;
  rotating_ = true;
  auto ca = pki::read_file((dir_ / "ca.crt").string());
  auto cert = pki::read_file((dir_ / "edge.crt").string());
  auto key = pki::read_file((dir_ / "edge.key").string());
  auto next_key = std::make_shared<pki::Key>(pki::generate_key());
  auto csr = pki::make_csr(next_key->get(), {"system:node:" + node_, "system:nodes"});
  if (!ca.ok() || !cert.ok() || !key.ok() || !csr.ok()) {
    rotating_ = false;
    return;
  }
  auto tls = net::client_context({ca.value, cert.value, key.value}, true);
  if (!tls.status) {
    rotating_ = false;
    log_->error("certificate renewal: {}", tls.status.message());
    return;
  }
  net::http_request(ctx_->executor(), tls.value, http_server_.host, http_server_.port,
                    {"GET", "/edge.crt", {{"NodeName", node_}}, pki::csr_der(csr.value.get()), ""},
                    std::chrono::seconds(s_.connect_timeout_s), 1 << 20,
                    [this, next_key, retry](net::HttpResult r) {
                      if (stopped_) return;
                      auto fail = [&](const std::string& why) {
                        log_->warn("certificate renewal failed: {}; retrying in {} s", why,
                                   retry.count());
                        rotate_timer_->expires_after(retry);
                        rotate_timer_->async_wait([this, retry](boost::system::error_code ec) {
                          if (!ec) rotate(std::min(retry * 2, std::chrono::seconds(32)));
                        });
                      };
                      if (!r.status) return fail(r.status.message());
                      if (r.http_status != 200)
                        return fail("HTTP " + std::to_string(r.http_status) + ": " + r.body);
                      auto renewed = pki::cert_from_der(r.body);
                      if (!renewed.ok()) return fail(renewed.status.message());
                      // Both new files are complete before either replaces its old one;
                      // connect() finishes a switch a crash interrupted.
                      if (Status s = pki::write_file((dir_ / "edge.key.new").string(),
                                                     pki::key_pem(next_key->get()), true);
                          !s)
                        return fail(s.message());
                      if (Status s = pki::write_file((dir_ / "edge.crt.new").string(),
                                                     pki::cert_pem(renewed.value.get()), false);
                          !s)
                        return fail(s.message());
                      finish_switch();
                      rotations_->inc();
                      rotating_ = false;
                      log_->info("certificate renewed; reconnecting with it");
                      if (conn_) {
                        auto old = conn_;
                        on_disconnected({Code::kUnavailable, "certificate renewed"});
                        old->close({Code::kUnavailable, "certificate renewed"});
                      }
                    });
}

}  // namespace kedge::edgehub
