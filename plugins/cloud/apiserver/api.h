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

// Who is asking: an administrator (bearer token) or a node (certificate).
struct Identity {
  enum class Kind { kNone, kAdmin, kNode } kind = Kind::kNone;
  std::string name;  // token name or node name
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
  explicit Api(store::Store& s) : store_(s) {}

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
};

// Exposed for tests (label selectors are in k8s.h).
boost::json::value merge_patch(const boost::json::value& target, const boost::json::value& patch);


}  // namespace kedge::api
