// The resources kedge serves (Kubernetes core, KubeEdge devices and
// operations): one table for the apiserver and the kedge CLI.
#pragma once

#include <string>
#include <vector>

namespace kedge::api {

struct Resource {
  std::string group;    // "" for the core group
  std::string version;  // v1, v1beta1, ...
  std::string plural;   // pods
  std::string kind;     // Pod
  bool namespaced = true;
  bool has_status = true;  // a status subresource: PUT on the object keeps status
  std::vector<std::string> short_names = {};
  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  // /api/v1 or /apis/<group>/<version>, then namespaces/<ns>/ if namespaced.
  std::string collection_path(const std::string& ns) const;
};

const std::vector<Resource>& resources();
// By plural, singular (kind lower-cased), short name or kind; nullptr if none.
const Resource* find_resource(const std::string& name);
// By apiVersion and kind, as in a manifest; nullptr if none.
const Resource* find_resource(const std::string& api_version, const std::string& kind);

}  // namespace kedge::api
