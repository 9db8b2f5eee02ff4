// TLS/PKI helpers on OpenSSL: keys, a CA, CSRs, signing, hashing, and the
// HS256 JWTs of KubeEdge's join token (KubeEdge 1.12 cloud/pkg/cloudhub/servers/httpserver). DER
// and PEM blobs are held in std::string (binary-safe).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kedge/export.h"
#include "kedge/status.h"

typedef struct evp_pkey_st EVP_PKEY;
typedef struct x509_st X509;
typedef struct X509_req_st X509_REQ;

namespace kedge::pki {

struct KEDGE_EXPORT FreeKey {
  void operator()(EVP_PKEY* k) const;
};
struct KEDGE_EXPORT FreeCert {
  void operator()(X509* c) const;
};
struct KEDGE_EXPORT FreeCsr {
  void operator()(X509_REQ* r) const;
};
using Key = std::unique_ptr<EVP_PKEY, FreeKey>;
using Cert = std::unique_ptr<X509, FreeCert>;
using Csr = std::unique_ptr<X509_REQ, FreeCsr>;

// Result<T> is kedge::Result (kedge/status.h).
using ::kedge::Result;

// A new ECDSA P-256 key.
KEDGE_EXPORT Key generate_key();

struct Name {
  std::string common_name;
  std::string organization;  // empty: none
};

enum Usage : unsigned { kServerAuth = 1, kClientAuth = 2 };

// A self-signed CA as KubeEdge makes it: CN "KubeEdge" by default, serial
// 1024, valid `days`, CA:TRUE, keyCertSign|digitalSignature|keyEncipherment,
// EKU serverAuth+clientAuth.
KEDGE_EXPORT Result<Cert> make_ca(EVP_PKEY* key, const Name& subject, int days = 36500);

// A CSR for `key`. KubeEdge 1.17+ edges use CN "system:node:<node>", O "system:nodes".
KEDGE_EXPORT Result<Csr> make_csr(EVP_PKEY* key, const Name& subject);

struct SignOptions {
  int days = 365;
  int64_t seconds = 0;  // added to `days` (short-lived certificates, tests)
  unsigned usages = kClientAuth;
  std::vector<std::string> dns_names;  // subjectAltName DNS entries
  std::vector<std::string> ips;        // subjectAltName IP entries
  // sign_csr: when common_name is set, the certificate's subject is this
  // name instead of the CSR's.
  Name subject;
};

// Signs a CSR with the CA: the CSR's own signature is checked, the subject is
// copied (or replaced by opts.subject), the serial is random, KeyUsage
// digitalSignature|keyEncipherment.
KEDGE_EXPORT Result<Cert> sign_csr(X509* ca, EVP_PKEY* ca_key, X509_REQ* csr,
                                   const SignOptions& opts);
// A server or client certificate for `key`, signed by the CA, without a CSR.
KEDGE_EXPORT Result<Cert> issue(X509* ca, EVP_PKEY* ca_key, EVP_PKEY* key, const Name& subject,
                                const SignOptions& opts);

// Encodings.
KEDGE_EXPORT std::string cert_der(X509* c);
KEDGE_EXPORT std::string cert_pem(X509* c);
KEDGE_EXPORT std::string csr_der(X509_REQ* r);
KEDGE_EXPORT std::string key_pem(EVP_PKEY* k);  // "EC PRIVATE KEY" (SEC1), as KubeEdge writes it
KEDGE_EXPORT std::string key_sec1_der(EVP_PKEY* k);  // the JWT secret of the join token
KEDGE_EXPORT Result<Cert> cert_from_der(std::string_view der);
KEDGE_EXPORT Result<Cert> cert_from_pem(std::string_view pem);
KEDGE_EXPORT Result<Csr> csr_from_der(std::string_view der);
KEDGE_EXPORT Result<Key> key_from_pem(std::string_view pem);  // SEC1 or PKCS#8

// Facts about a certificate.
KEDGE_EXPORT std::string common_name(X509* c);
KEDGE_EXPORT std::string csr_common_name(X509_REQ* r);
KEDGE_EXPORT std::chrono::system_clock::time_point not_after(X509* c);
KEDGE_EXPORT std::chrono::system_clock::time_point not_before(X509* c);
// Verifies that `c` chains to `ca` and is valid now.
KEDGE_EXPORT Status verify(X509* c, X509* ca);

// Lower-case hex SHA-256.
KEDGE_EXPORT std::string sha256_hex(std::string_view data);

// Base64url without padding (JWT).
KEDGE_EXPORT std::string base64url_encode(std::string_view data);
KEDGE_EXPORT Result<std::string> base64url_decode(std::string_view text);
// Standard base64 (RFC 4648 §4, padding optional), as Kubernetes stores a
// secret's data and a configmap's binaryData; the encoder is
// kedge::base64_encode.
KEDGE_EXPORT Result<std::string> base64_decode(std::string_view text);

// HS256 JWT with one claim, exp (seconds since the epoch).
KEDGE_EXPORT std::string jwt_hs256(std::string_view secret, int64_t exp);
// Checks the header (alg HS256), the signature and that exp is after `now`.
// Errors: kInvalidArgument for a malformed token, kFailedPrecondition for a
// bad signature or an expired token (the message says which).
KEDGE_EXPORT Status jwt_verify(std::string_view secret, std::string_view token,
                               std::chrono::system_clock::time_point now);
// An HS256 JWT over any JSON payload, and the check that returns the payload
// (the same checks as jwt_verify: HS256, signature, an exp in the future).
KEDGE_EXPORT std::string jwt_hs256_sign(std::string_view secret, std::string_view payload_json);
KEDGE_EXPORT Result<std::string> jwt_verify_payload(std::string_view secret, std::string_view token,
                                                    std::chrono::system_clock::time_point now);

// The join token: "<sha256 hex of the CA DER>.<jwt>".
struct JoinToken {
  std::string ca_hash;
  std::string jwt;
};
KEDGE_EXPORT Result<JoinToken> parse_join_token(std::string_view token);

// Files: written with mode 0600 (keys) or 0644, atomically (temp + rename).
KEDGE_EXPORT Status write_file(const std::string& path, std::string_view data, bool secret);
KEDGE_EXPORT Result<std::string> read_file(const std::string& path);

// The cloud CA in `dir` (ca.crt, ca.key): loaded, or created (ECDSA P-256,
// CN KubeEdge, 100 years) if neither file exists. Only one of them is an
// error that names both files.
struct Ca {
  Cert cert;
  Key key;
  std::string pem;
  bool created = false;
};
KEDGE_EXPORT Result<Ca> load_or_create_ca(const std::string& dir);

}  // namespace kedge::pki
