// Kubernetes' defaults for objects written through the API, as
// kube-apiserver 1.24 applies them (k8s.io/kubernetes pkg/apis/core/v1
// defaults.go, and the DefaultTolerationSeconds admission plugin), so a
// stock kubelet finds what it relies on: restartPolicy, dnsPolicy,
// schedulerName, terminationGracePeriodSeconds, securityContext,
// enableServiceLinks, the not-ready/unreachable tolerations; each
// container's imagePullPolicy, terminationMessagePath/Policy, port
// protocols and probe timings; volumes' defaultMode. Fields already set are
// left as they are.
#pragma once

#include <boost/json/value.hpp>
#include <string>

namespace kedge::defaults {

// Applies the defaults of `kind` (Pod, Service; a workload's pod template)
// to `obj` in place; other kinds are left unchanged.
void apply(const std::string& kind, boost::json::value& obj);

}  // namespace kedge::defaults
