// What a container sees of the objects its pod refers to, as pure functions
// (no runtime, no cache): the data of a configmap or secret, and a
// container's environment. Unit-tested in tests/unit/edged_test.cpp.
#pragma once

#include <boost/json.hpp>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kedge/status.h"

namespace kedge::edged {

// A configmap's or secret's values: a secret's data and any binaryData
// decoded from base64, a configmap's data as it is. `binary` adds
// binaryData (volumes see it; the environment does not). An error names
// the object and the key.
using ObjectData = Result<std::map<std::string, std::string>>;
ObjectData object_data(const std::string& kind, const std::string& name,
                       const boost::json::value& obj, bool binary);

// The pod's own fields a fieldRef can name.
struct PodFields {
  std::string name, ns, uid, node, pod_ip, host_ip;
};

// A configmap or secret of the pod's namespace by kind ("configmap",
// "secret") and name; nullopt if there is none.
using ObjectLookup = std::function<std::optional<boost::json::value>(const std::string& kind,
                                                                     const std::string& name)>;

// A container's environment as the kubelet builds it: envFrom (with its
// prefix), then env (value, fieldRef, configMapKeyRef, secretKeyRef; a
// later name wins in the runtime). An error names the variable and what is
// missing; optional references that are missing are left out.
using Env = std::vector<std::pair<std::string, std::string>>;
using EnvResult = Result<Env>;
EnvResult container_env(const boost::json::value& container, const PodFields& pod,
                        const ObjectLookup& lookup);

}  // namespace kedge::edged
