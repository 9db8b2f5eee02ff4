#include "cloud_ca.h"

namespace kedge::cloud_ca {

namespace fs = std::filesystem;

fs::path default_dir(const fs::path& data_dir) { return data_dir / "cloudhub"; }

pki::Result<pki::Ca> load_or_create(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return {invalid_argument("cannot create " + dir.string() + ": " + ec.message()), {}};
  return pki::load_or_create_ca(dir.string());
}

pki::Result<pki::Ca> load(const fs::path& dir) {
  std::string ca_path = (dir / "ca.crt").string(), key_path = (dir / "ca.key").string();
  auto ca = pki::read_file(ca_path);
  auto key = pki::read_file(key_path);
  if (!ca.ok() || !key.ok())
    return {not_found((ca.ok() ? key.status.message() : ca.status.message()) +
                      " (has cloudhub run once to create its CA?)"),
            {}};
  auto cert = pki::cert_from_pem(ca.value);
  if (!cert.ok()) return {invalid_argument(ca_path + ": " + cert.status.message()), {}};
  auto k = pki::key_from_pem(key.value);
  if (!k.ok()) return {invalid_argument(key_path + ": " + k.status.message()), {}};
  pki::Result<pki::Ca> out;
  out.value.cert = std::move(cert.value);
  out.value.key = std::move(k.value);
  out.value.pem = std::move(ca.value);
  return out;
}

pki::Result<Serving> serving_cert(const pki::Ca& ca, const pki::Name& subject,
                                  const std::vector<std::string>& ips,
                                  const std::vector<std::string>& dns_names) {
  pki::Key k = pki::generate_key();
  pki::SignOptions o;
  o.usages = pki::kServerAuth;
  o.days = 36500;
  o.ips = ips;
  o.dns_names = dns_names;
  auto c = pki::issue(ca.cert.get(), ca.key.get(), k.get(), subject, o);
  if (!c.ok()) return {c.status, {}};
  return {{}, {pki::cert_pem(c.value.get()), pki::key_pem(k.get())}};
}

std::string jwt_secret(const pki::Ca& ca) { return pki::key_sec1_der(ca.key.get()); }

std::string join_token(const pki::Ca& ca, std::chrono::seconds ttl) {
  auto exp = std::chrono::duration_cast<std::chrono::seconds>(
                 (std::chrono::system_clock::now() + ttl).time_since_epoch())
                 .count();
  return pki::sha256_hex(pki::cert_der(ca.cert.get())) + "." + pki::jwt_hs256(jwt_secret(ca), exp);
}

}  // namespace kedge::cloud_ca
