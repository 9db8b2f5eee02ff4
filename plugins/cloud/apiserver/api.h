// The Kubernetes-style resource API over a kedge::store::Store, without the
// HTTP transport (apiserver.cpp serves it over HTTPS): paths, verbs, objects,
// label and field selectors, JSON merge patch, the status subresource,
// watches, and errors as Kubernetes Status objects.
#pragma once

#include <boost/json.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "resources.h"
#include "store.h"

namespace kedge::api {

// Who is asking: an administrator (bearer token), a node (certificate) or a
// service account (a token the API issued).
struct Identity {
  enum class Kind { kNone, kAdmin, kNode, kServiceAccount } kind = Kind::kNone;
  std::string name;               // token name, node name or service account name
  std::string ns = {}, uid = {};  // a service account's namespace and UID
  std::string failure = {};       // kNone: why a given token was refused
  // As Kubernetes names it: system:serviceaccount:<ns>:<name>, system:node:<name>.
  std::string username() const;
};

// What a request does, in RBAC's terms.
struct Attributes {
  std::string verb;  // get list watch create update patch delete
  std::string group, resource, subresource, ns, name;
};

struct Decision {
  bool allowed = false;
  std::string reason;  // why not (or which binding allowed it)
};

// Service-account tokens (HS256 JWTs bound to the account's UID) and a
// minimal RBAC: Roles, ClusterRoles and their bindings, read from the store
// at each decision (auth.cpp).
class Auth {
 public:
  Auth(store::Store& s, std::string secret) : store_(s), secret_(std::move(secret)) {}
  // A token for the account, valid until `exp` (seconds since the epoch).
  std::string issue(const std::string& ns, const std::string& name, const std::string& uid,
                    int64_t exp) const;
  // The account a token stands for; false and `why` (for a 401) if the token
  // is malformed, forged or expired, or its account is gone or was re-created.
  bool authenticate(std::string_view token, Identity& who, std::string& why) const;
  Decision authorize(const Identity& who, const Attributes& a) const;
  // Kubernetes' wording of a refusal, for a 403 Status.
  static std::string forbidden_message(const Identity& who, const Attributes& a);

  int64_t min_token_seconds = 600;  // TokenRequest's expirationSeconds bounds (Kubernetes')
  int64_t max_token_seconds = 48 * 3600;

 private:
  store::Store& store_;
  std::string secret_;
};

struct Request {
  std::string method;  // GET POST PUT PATCH DELETE
  std::string target;  // path and query, as received
  std::string content_type;
  std::string body;
  Identity who;
};

struct Response {
  int status = 200;
  std::string body;  // JSON
};

// A started watch: events arrive as JSON lines through `emit`.
struct WatchStart {
  std::optional<Response> error;  // the request was refused
  std::unique_ptr<store::Watch> watch;
};

class Api {
 public:
  // Without `auth`, service-account tokens are neither issued nor accepted.
  explicit Api(store::Store& s, const Auth* auth = nullptr) : store_(s), auth_(auth) {}

  // Creates the namespaces every cluster has (default, kube-system).
  Status bootstrap();

  // True if the request is a watch (?watch=1|true) to be served by watch().
  static bool is_watch(const Request& r);
  Response handle(const Request& r);
  // `emit` and `on_end` run on the store's thread: post them to your own.
  WatchStart watch(const Request& r, std::function<void(std::string line)> emit,
                   std::function<void(std::string last_line)> on_end);

 private:
  store::Store& store_;
  const Auth* auth_;
};

// The RBAC attributes of a request (verb from the method, the path's
// resource, namespace, name and subresource); false if the path is not a
// resource path.
bool attributes_of(const Request& r, Attributes& out);

}  // namespace kedge::api
