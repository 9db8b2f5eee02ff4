// The cloud's certificate authority, written once for cloudhub (the
// channel and its bootstrap endpoint), apiserver (its serving certificate)
// and `kedge token create`: one CA in one directory, as KubeEdge's CloudCore
// keeps one CA for the edges and its own servers.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "kedge/common/pki.h"

namespace kedge::cloud_ca {

// Where the CA lives unless configured: <data_dir>/cloudhub.
std::filesystem::path default_dir(const std::filesystem::path& data_dir);

// The CA in `dir` (ca.crt, ca.key), created (ECDSA P-256, CN KubeEdge) if
// neither file exists.
pki::Result<pki::Ca> load_or_create(const std::filesystem::path& dir);
// The CA that must already be there (a tool, not the cloud): an error names
// the file and says that cloudhub creates it.
pki::Result<pki::Ca> load(const std::filesystem::path& dir);

// A serving certificate (server auth, 100 years) for the addresses and names
// clients dial, signed by the CA; issued anew at each start so the SANs
// follow the configuration.
struct Serving {
  std::string cert_pem, key_pem;
};
pki::Result<Serving> serving_cert(const pki::Ca& ca, const pki::Name& subject,
                                  const std::vector<std::string>& ips,
                                  const std::vector<std::string>& dns_names);

// The HS256 secret of join tokens: the CA key's SEC1 DER (KubeEdge's
// CloudCore signs its tokens with the CA key).
std::string jwt_secret(const pki::Ca& ca);
// KubeEdge's join token: <sha256 of the CA certificate's DER>.<JWT, exp now
// + ttl>.
std::string join_token(const pki::Ca& ca, std::chrono::seconds ttl);

}  // namespace kedge::cloud_ca
