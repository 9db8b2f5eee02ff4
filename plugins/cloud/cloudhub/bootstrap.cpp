// The cloud's side of joining: its CA (shared with apiserver, see
// cloud_ca.h), the join token it writes for operators, and the bootstrap
// HTTPS endpoint (/ca.crt; /edge.crt signs an edge's CSR against a join
// token, or renews the certificate of a connected node), as KubeEdge's
// CloudHub serves them.
#include "cloud_ca.h"
#include "cloudhub.h"

#include "contracts/wire.h"

namespace kedge::cloudhub {

using namespace std::chrono_literals;

Status CloudHub::load_or_create_pki() {
  auto ca = kedge::cloud_ca::load_or_create(dir_);
  if (!ca.ok()) return ca.status;
  if (ca.value.created) log_->info("created the cloud CA in {}", (dir_ / "ca.crt").string());
  ca_ = std::move(ca.value);
  ca_der_ = pki::cert_der(ca_.cert.get());
  jwt_secret_ = kedge::cloud_ca::jwt_secret(ca_);
  auto serving = kedge::cloud_ca::serving_cert(ca_, {"KubeEdge", "KubeEdge"},
                                               s_.advertise_addresses, s_.dns_names);
  if (!serving.ok()) return serving.status;
  server_cert_pem_ = std::move(serving.value.cert_pem);
  server_key_pem_ = std::move(serving.value.key_pem);
  // The current join token, for operators (also: kedge token create).
  return pki::write_file((dir_ / "token").string(), make_token() + "\n", true);
}

std::string CloudHub::make_token() const {
  return kedge::cloud_ca::join_token(ca_, std::chrono::seconds(s_.token_ttl_s));
}

net::HttpResponse CloudHub::bootstrap(const net::HttpRequest& r) {
  auto text = [](int status, std::string body) {
    return net::HttpResponse{status, "text/plain", std::move(body) + "\n"};
  };
  if (r.target == "/ca.crt" && r.method == "GET") return {200, "application/octet-stream", ca_der_};
  if (r.target != "/edge.crt") return text(404, "no such path: " + r.target);
  if (r.method != "GET" && r.method != "POST") return text(405, "use GET");
  auto nn = r.headers.find("nodename");
  if (nn == r.headers.end() || nn->second.empty()) return text(400, "missing NodeName header");
  const std::string& node = nn->second;
  bool rotation = !r.peer_cert_cn.empty();
  if (rotation) {
    if (r.peer_cert_cn != "system:node:" + node && !s_.allow_legacy_cert_cn)
      return text(403, "client certificate is for '" + r.peer_cert_cn + "', not node " + node);
  } else {
    auto auth = r.headers.find("authorization");
    if (auth == r.headers.end() || auth->second.rfind("Bearer ", 0) != 0)
      return text(401, "missing bearer token (Authorization: Bearer <jwt>)");
    Status s =
        pki::jwt_verify(jwt_secret_, auth->second.substr(7), std::chrono::system_clock::now());
    if (!s) return text(401, "token refused: " + s.message());
  }
  auto csr = pki::csr_from_der(r.body);
  if (!csr.ok()) return text(400, "body is not a DER certificate request: " + csr.status.message());
  std::string cn = pki::csr_common_name(csr.value.get());
  pki::SignOptions o;
  // A 1.12-1.16 edge asks for CN kubeedge.io whatever its name: the token
  // (or its current certificate) vouches for the node named in NodeName, so
  // it gets a certificate for that node, which binds its channel to it.
  if (cn == kedge::contracts::wire::kLegacyEdgeCsrCn)
    o.subject = {"system:node:" + node, "system:nodes"};
  else if (cn != "system:node:" + node && !s_.allow_legacy_cert_cn)
    return text(403, "CSR is for '" + cn + "', expected 'system:node:" + node + "' (or '" +
                         std::string(kedge::contracts::wire::kLegacyEdgeCsrCn) +
                         "', as KubeEdge 1.12-1.16 edges send)");
  o.days = 0;
  o.seconds = s_.edge_cert_validity_s;
  o.usages = pki::kClientAuth;
  auto cert = pki::sign_csr(ca_.cert.get(), ca_.key.get(), csr.value.get(), o);
  if (!cert.ok()) return text(400, "cannot sign the CSR: " + cert.status.message());
  log_->info("issued a certificate for node {} ({})", node, rotation ? "rotation" : "join token");
  return {200, "application/octet-stream", pki::cert_der(cert.value.get())};
}

}  // namespace kedge::cloudhub
