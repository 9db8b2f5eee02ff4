#include "kedge/common/pki.h"
#include "kedge/message.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kedge::pki {

void FreeKey::operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
void FreeCert::operator()(X509* c) const { X509_free(c); }
void FreeCsr::operator()(X509_REQ* r) const { X509_REQ_free(r); }

namespace {

struct FreeBio {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, FreeBio>;

// The last OpenSSL error, for messages.
std::string ssl_error(const char* what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return what;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return std::string(what) + ": " + buf;
}

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

bool set_name(X509_NAME* n, const Name& subject) {
  auto add = [&](const char* field, const std::string& v) {
    return v.empty() || X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8,
                                                   reinterpret_cast<const unsigned char*>(v.data()),
                                                   static_cast<int>(v.size()), -1, 0) == 1;
  };
  return add("O", subject.organization) && add("CN", subject.common_name);
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

bool random_serial(X509* c) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  bytes[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  if (!bn) return false;
  bool ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) != nullptr;
  BN_free(bn);
  return ok;
}

bool set_validity(X509* c, int days, int64_t seconds = 0) {
  return X509_gmtime_adj(X509_getm_notBefore(c), 0) &&
         X509_time_adj_ex(X509_getm_notAfter(c), days, static_cast<long>(seconds), nullptr);
}

std::string eku_value(unsigned usages) {
  std::string v;
  if (usages & kServerAuth) v += "serverAuth";
  if (usages & kClientAuth) v += std::string(v.empty() ? "" : ",") + "clientAuth";
  return v;
}

std::string san_value(const SignOptions& o) {
  std::string v;
  for (auto& d : o.dns_names) v += (v.empty() ? "" : ",") + std::string("DNS:") + d;
  for (auto& ip : o.ips) v += (v.empty() ? "" : ",") + std::string("IP:") + ip;
  return v;
}

// Builds and signs a leaf certificate for `pub` with `subject`.
Result<Cert> make_leaf(X509* ca, EVP_PKEY* ca_key, EVP_PKEY* pub, X509_NAME* subject,
                       const SignOptions& opts) {
  Result<Cert> r;
  Cert c(X509_new());
  if (!c || X509_set_version(c.get(), 2) != 1 || !random_serial(c.get()) ||
      !set_validity(c.get(), opts.days, opts.seconds) ||
      X509_set_subject_name(c.get(), subject) != 1 ||
      X509_set_issuer_name(c.get(), X509_get_subject_name(ca)) != 1 ||
      X509_set_pubkey(c.get(), pub) != 1 ||
      !add_ext(c.get(), ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
      (opts.usages && !add_ext(c.get(), ca, NID_ext_key_usage, eku_value(opts.usages))) ||
      !add_ext(c.get(), ca, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(c.get(), ca, NID_subject_key_identifier, "hash") ||
      !add_ext(c.get(), ca, NID_authority_key_identifier, "keyid:always") ||
      (!san_value(opts).empty() && !add_ext(c.get(), ca, NID_subject_alt_name, san_value(opts)))) {
    r.status = internal_error(ssl_error("cannot build certificate"));
    return r;
  }
  if (X509_sign(c.get(), ca_key, EVP_sha256()) <= 0) {
    r.status = internal_error(ssl_error("cannot sign certificate"));
    return r;
  }
  r.value = std::move(c);
  return r;
}

std::chrono::system_clock::time_point asn1_time(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

Key generate_key() { return Key(EVP_EC_gen("P-256")); }

Result<Cert> make_ca(EVP_PKEY* key, const Name& subject, int days) {
  Result<Cert> r;
  Cert c(X509_new());
  if (!c || X509_set_version(c.get(), 2) != 1 ||
      ASN1_INTEGER_set(X509_get_serialNumber(c.get()), 1024) != 1 || !set_validity(c.get(), days) ||
      !set_name(X509_get_subject_name(c.get()), subject) ||
      X509_set_issuer_name(c.get(), X509_get_subject_name(c.get())) != 1 ||
      X509_set_pubkey(c.get(), key) != 1 ||
      !add_ext(c.get(), c.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(c.get(), c.get(), NID_key_usage,
               "critical,keyCertSign,digitalSignature,keyEncipherment") ||
      !add_ext(c.get(), c.get(), NID_ext_key_usage, "serverAuth,clientAuth") ||
      !add_ext(c.get(), c.get(), NID_subject_key_identifier, "hash") ||
      X509_sign(c.get(), key, EVP_sha256()) <= 0) {
    r.status = internal_error(ssl_error("cannot make CA certificate"));
    return r;
  }
  r.value = std::move(c);
  return r;
}

Result<Csr> make_csr(EVP_PKEY* key, const Name& subject) {
  Result<Csr> r;
  Csr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      !set_name(X509_REQ_get_subject_name(req.get()), subject) ||
      X509_REQ_set_pubkey(req.get(), key) != 1 ||
      X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) {
    r.status = internal_error(ssl_error("cannot make CSR"));
    return r;
  }
  r.value = std::move(req);
  return r;
}

Result<Cert> sign_csr(X509* ca, EVP_PKEY* ca_key, X509_REQ* csr, const SignOptions& opts) {
  Result<Cert> r;
  EVP_PKEY* pub = X509_REQ_get0_pubkey(csr);
  if (!pub || X509_REQ_verify(csr, pub) != 1) {
    r.status = invalid_argument(ssl_error("the CSR's signature does not verify"));
    return r;
  }
  if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC) {
    r.status = invalid_argument("the CSR's key is not an EC key (ECDSA P-256 expected)");
    return r;
  }
  if (opts.subject.common_name.empty())
    return make_leaf(ca, ca_key, pub, X509_REQ_get_subject_name(csr), opts);
  std::unique_ptr<X509_NAME, decltype(&X509_NAME_free)> name(X509_NAME_new(), X509_NAME_free);
  if (!name || !set_name(name.get(), opts.subject)) {
    r.status = internal_error(ssl_error("cannot build subject"));
    return r;
  }
  return make_leaf(ca, ca_key, pub, name.get(), opts);
}

Result<Cert> issue(X509* ca, EVP_PKEY* ca_key, EVP_PKEY* key, const Name& subject,
                   const SignOptions& opts) {
  X509_NAME* name = X509_NAME_new();
  if (!name || !set_name(name, subject)) {
    X509_NAME_free(name);
    return {internal_error(ssl_error("cannot build subject")), {}};
  }
  auto r = make_leaf(ca, ca_key, key, name, opts);
  X509_NAME_free(name);
  return r;
}

std::string cert_der(X509* c) {
  unsigned char* buf = nullptr;
  int n = i2d_X509(c, &buf);
  if (n <= 0) return {};
  std::string out(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  OPENSSL_free(buf);
  return out;
}

std::string csr_der(X509_REQ* r) {
  unsigned char* buf = nullptr;
  int n = i2d_X509_REQ(r, &buf);
  if (n <= 0) return {};
  std::string out(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  OPENSSL_free(buf);
  return out;
}

std::string key_sec1_der(EVP_PKEY* k) {
  unsigned char* buf = nullptr;
  int n = i2d_PrivateKey(k, &buf);  // type-specific: SEC1 ECPrivateKey for EC keys
  if (n <= 0) return {};
  std::string out(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  OPENSSL_free(buf);
  return out;
}

std::string cert_pem(X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), c) != 1) return {};
  return bio_string(b.get());
}

std::string key_pem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b ||
      PEM_write_bio_PrivateKey_traditional(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return {};
  return bio_string(b.get());
}

Result<Cert> cert_from_der(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  Cert c(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!c) return {invalid_argument(ssl_error("not a DER certificate")), {}};
  return {{}, std::move(c)};
}

Result<Cert> cert_from_pem(std::string_view pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) return {invalid_argument(ssl_error("not a PEM certificate")), {}};
  return {{}, std::move(c)};
}

Result<Csr> csr_from_der(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  Csr r(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!r) return {invalid_argument(ssl_error("not a DER certificate request")), {}};
  return {{}, std::move(r)};
}

Result<Key> key_from_pem(std::string_view pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) return {invalid_argument(ssl_error("not a PEM private key")), {}};
  return {{}, std::move(k)};
}

std::string common_name(X509* c) {
  char buf[256] = {};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::string csr_common_name(X509_REQ* r) {
  char buf[256] = {};
  int n = X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(r), NID_commonName, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::chrono::system_clock::time_point not_after(X509* c) {
  return asn1_time(X509_get0_notAfter(c));
}
std::chrono::system_clock::time_point not_before(X509* c) {
  return asn1_time(X509_get0_notBefore(c));
}

Status verify(X509* c, X509* ca) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  Status s;
  if (!store || !ctx || X509_STORE_add_cert(store, ca) != 1 ||
      X509_STORE_CTX_init(ctx, store, c, nullptr) != 1) {
    s = internal_error(ssl_error("cannot set up verification"));
  } else if (X509_verify_cert(ctx) != 1) {
    s = {Code::kFailedPrecondition,
         std::string("certificate does not verify: ") +
             X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx))};
  }
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return s;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

std::string base64url_encode(std::string_view data) {
  std::string out = kedge::base64_encode(data);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
  }
  return out;
}

Result<std::string> base64url_decode(std::string_view text) {
  std::string in(text);
  for (char& c : in) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/'))
      return {invalid_argument("invalid base64url character"), {}};
  }
  if (in.size() % 4 == 1) return {invalid_argument("invalid base64url length"), {}};
  while (in.size() % 4) in += '=';
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return {invalid_argument("invalid base64url"), {}};
  out.resize(static_cast<size_t>(n) - (in.size() - text.size()));  // minus the '=' added
  return {{}, std::move(out)};
}

Result<std::string> base64_decode(std::string_view text) {
  for (int i = 0; i < 2 && !text.empty() && text.back() == '='; ++i) text.remove_suffix(1);
  if (text.find_first_of("-_=") != std::string_view::npos)
    return {invalid_argument("invalid base64 character"), {}};
  auto r = base64url_decode(text);
  if (!r.ok()) return {invalid_argument("invalid base64"), {}};
  return r;
}

namespace {
std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &n);
  return std::string(reinterpret_cast<char*>(md), n);
}
}  // namespace

std::string jwt_hs256_sign(std::string_view secret, std::string_view payload_json) {
  std::string header = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  std::string signing_input = header + "." + base64url_encode(payload_json);
  return signing_input + "." + base64url_encode(hmac_sha256(secret, signing_input));
}

std::string jwt_hs256(std::string_view secret, int64_t exp) {
  return jwt_hs256_sign(secret, "{\"exp\":" + std::to_string(exp) + "}");
}

Status jwt_verify(std::string_view secret, std::string_view token,
                  std::chrono::system_clock::time_point now) {
  return jwt_verify_payload(secret, token, now).status;
}

Result<std::string> jwt_verify_payload(std::string_view secret, std::string_view token,
                                       std::chrono::system_clock::time_point now) {
  size_t d1 = token.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return {invalid_argument("token is not a JWT (expected header.payload.signature)"), {}};
  auto header = base64url_decode(token.substr(0, d1));
  auto payload = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64url_decode(token.substr(d2 + 1));
  if (!header.ok() || !payload.ok() || !sig.ok())
    return {invalid_argument("token is not a JWT (a part is not base64url)"), {}};
  boost::system::error_code ec;
  auto h = boost::json::parse(header.value, ec);
  if (ec || !h.is_object()) return {invalid_argument("token header is not a JSON object"), {}};
  auto* alg = h.as_object().if_contains("alg");
  if (!alg || !alg->is_string() || alg->as_string() != "HS256")
    return {invalid_argument("token algorithm is not HS256"), {}};
  auto p = boost::json::parse(payload.value, ec);
  if (ec || !p.is_object()) return {invalid_argument("token payload is not a JSON object"), {}};
  std::string expected = hmac_sha256(secret, token.substr(0, d2));
  if (expected.size() != sig.value.size() ||
      CRYPTO_memcmp(expected.data(), sig.value.data(), expected.size()) != 0)
    return {{Code::kFailedPrecondition, "token signature is invalid"}, {}};
  auto* exp = p.as_object().if_contains("exp");
  if (!exp || !(exp->is_int64() || exp->is_double()))
    return {invalid_argument("token has no exp claim"), {}};
  double e = exp->is_int64() ? static_cast<double>(exp->as_int64()) : exp->as_double();
  double t = static_cast<double>(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  if (e <= t) return {{Code::kFailedPrecondition, "token has expired"}, {}};
  return {{}, std::move(payload.value)};
}

Result<JoinToken> parse_join_token(std::string_view token) {
  size_t dot = token.find('.');
  if (dot != 64)
    return {invalid_argument("join token must start with the 64-hex-digit CA hash"), {}};
  for (char c : token.substr(0, 64))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return {invalid_argument("join token's CA hash is not lower-case hex"), {}};
  JoinToken t{std::string(token.substr(0, 64)), std::string(token.substr(65))};
  if (std::count(t.jwt.begin(), t.jwt.end(), '.') != 2)
    return {invalid_argument("join token's second part is not a JWT"), {}};
  return {{}, std::move(t)};
}

Status write_file(const std::string& path, std::string_view data, bool secret) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0) return internal_error("cannot write " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return internal_error("cannot write " + tmp + ": " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return internal_error("cannot write " + tmp + ": " + std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return internal_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  return {};
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {not_found("cannot read " + path + ": " + std::strerror(errno)), {}};
  std::stringstream ss;
  ss << in.rdbuf();
  return {{}, ss.str()};
}

Result<Ca> load_or_create_ca(const std::string& dir) {
  std::string ca_path = dir + "/ca.crt", key_path = dir + "/ca.key";
  auto ca = read_file(ca_path);
  auto key = read_file(key_path);
  Result<Ca> out;
  if (ca.ok() != key.ok()) {
    out.status = invalid_argument("found only one of " + ca_path + " and " + key_path);
    return out;
  }
  if (!ca.ok()) {
    Key k = generate_key();
    auto c = make_ca(k.get(), {"KubeEdge", ""});
    if (!c.ok()) {
      out.status = c.status;
      return out;
    }
    if (Status s = write_file(key_path, key_pem(k.get()), true); !s) {
      out.status = s;
      return out;
    }
    if (Status s = write_file(ca_path, cert_pem(c.value.get()), false); !s) {
      out.status = s;
      return out;
    }
    out.value.created = true;
    ca = read_file(ca_path);
    key = read_file(key_path);
  }
  auto cert = cert_from_pem(ca.value);
  auto k = key_from_pem(key.value);
  if (!cert.ok()) {
    out.status = invalid_argument(ca_path + ": " + cert.status.message());
    return out;
  }
  if (!k.ok()) {
    out.status = invalid_argument(key_path + ": " + k.status.message());
    return out;
  }
  out.value.cert = std::move(cert.value);
  out.value.key = std::move(k.value);
  out.value.pem = ca.value;
  return out;
}

}  // namespace kedge::pki
