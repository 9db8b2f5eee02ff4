// Patches of Kubernetes objects, as kube-apiserver applies them:
//   * JSON merge patch (RFC 7386, application/merge-patch+json);
//   * strategic merge patch (application/strategic-merge-patch+json), the
//     form kubectl apply and the kubelet send (a kubelet's pod and node
//     status patches carry `$setElementOrder/conditions` and only the
//     conditions that changed). Lists with a patch merge key in the
//     Kubernetes types (containers by name, conditions by type, ...) are
//     merged element by element; other lists are replaced. The directives
//     `$patch` (replace, delete, merge), `$setElementOrder/<list>`,
//     `$deleteFromPrimitiveList/<list>` and `$retainKeys` are honoured.
//     The merge keys are those of k8s.io/api's core/v1, apps/v1 and meta/v1
//     types (`patchMergeKey` struct tags); a kind without a table gets JSON
//     merge semantics for its lists, as kube-apiserver does for custom
//     resources.
#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "kedge/status.h"

namespace kedge::patch {

boost::json::value json_merge(const boost::json::value& target, const boost::json::value& patch);

// `kind` is the object's kind (Pod, Node, ...). A malformed directive
// (a `$patch` that is not replace/delete/merge, a `$setElementOrder` that is
// not a list) is an invalid_argument naming the field.
kedge::Status strategic_merge(const boost::json::value& target, const boost::json::value& patch,
                              const std::string& kind, boost::json::value& out);

}  // namespace kedge::patch
