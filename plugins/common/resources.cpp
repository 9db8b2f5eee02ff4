#include "resources.h"

#include <algorithm>

namespace kedge::api {

const std::vector<Resource>& resources() {
  static const std::vector<Resource> r = {
      {"", "v1", "namespaces", "Namespace", false, true, {"ns"}},
      {"", "v1", "nodes", "Node", false, true, {"no"}},
      {"", "v1", "pods", "Pod", true, true, {"po"}},
      {"", "v1", "configmaps", "ConfigMap", true, false, {"cm"}},
      {"", "v1", "secrets", "Secret", true, false},
      {"", "v1", "services", "Service", true, true, {"svc"}},
      {"", "v1", "endpoints", "Endpoints", true, false, {"ep"}},
      {"", "v1", "serviceaccounts", "ServiceAccount", true, false, {"sa"}},
      {"coordination.k8s.io", "v1", "leases", "Lease", true, false},
      {"devices.kubeedge.io", "v1beta1", "devices", "Device", true, true},
      {"devices.kubeedge.io", "v1beta1", "devicemodels", "DeviceModel", true, false},
      {"operations.kubeedge.io", "v1alpha1", "nodeupgradejobs", "NodeUpgradeJob", false, true},
      {"rbac.authorization.k8s.io", "v1", "roles", "Role", true, false},
      {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, false},
      {"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, false},
      {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false,
       false},
  };
  return r;
}

std::string Resource::collection_path(const std::string& ns) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) p += "/namespaces/" + ns;
  return p + "/" + plural;
}

const Resource* find_resource(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  for (auto& r : resources()) {
    std::string kind = r.kind;
    std::transform(kind.begin(), kind.end(), kind.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (n == r.plural || n == kind ||
        std::find(r.short_names.begin(), r.short_names.end(), n) != r.short_names.end())
      return &r;
    // kind.group, plural.group (devices.devices.kubeedge.io)
    if (!r.group.empty() && (n == r.plural + "." + r.group || n == kind + "." + r.group)) return &r;
  }
  return nullptr;
}

const Resource* find_resource(const std::string& api_version, const std::string& kind) {
  for (auto& r : resources())
    if (r.api_version() == api_version && r.kind == kind) return &r;
  return nullptr;
}

}  // namespace kedge::api
