// Names that travel on KubeEdge's cloud-edge channel. CloudCore and EdgeCore
// route on them, so they are fixed by the wire and kept apart from kedge's
// in-process module names (contracts/modules.h), which a manifest may
// change.
#pragma once

#include <string_view>

namespace kedge::contracts::wire {

// Message groups on the wire (route.group).
namespace group {
inline constexpr std::string_view kResource = "resource";
inline constexpr std::string_view kTwin = "twin";
inline constexpr std::string_view kUser = "user";
inline constexpr std::string_view kFunc = "func";
inline constexpr std::string_view kNodeUpgrade = "nodeupgradejobcontroller";  // 1.12
inline constexpr std::string_view kDynamicController = "dynamiccontroller";
}  // namespace group

// The local groups EdgeHub delivers wire groups to (resource and func ->
// meta, twin -> twin, user -> bus), and EdgeHub's own.
namespace local_group {
inline constexpr std::string_view kMeta = "meta";
inline constexpr std::string_view kTwin = "twin";
inline constexpr std::string_view kBus = "bus";
inline constexpr std::string_view kHub = "hub";
}  // namespace local_group

// Message sources (route.source) as KubeEdge's modules write them.
namespace source {
// Edge.
inline constexpr std::string_view kEdgeHub = "websocket";  // even over QUIC
inline constexpr std::string_view kEdged = "edged";
inline constexpr std::string_view kMetaManager = "metamanager";
inline constexpr std::string_view kMetaServer = "metaserver";
inline constexpr std::string_view kTwin = "twin";
inline constexpr std::string_view kBus = "bus";  // EventBus: MQTT uploads
inline constexpr std::string_view kRouterEventBus = "router_eventbus";
inline constexpr std::string_view kRouterServiceBus = "router_servicebus";
// Cloud.
inline constexpr std::string_view kCloudHub = "cloudhub";
inline constexpr std::string_view kCloudStream = "cloudStream";
inline constexpr std::string_view kEdgeController = "edgecontroller";
inline constexpr std::string_view kDeviceController = "devicecontroller";
inline constexpr std::string_view kSyncController = "synccontroller";
inline constexpr std::string_view kDynamicController = "dynamiccontroller";
inline constexpr std::string_view kNodeUpgradeController = "nodeupgradejobcontroller";
}  // namespace source

// The common name KubeEdge 1.12-1.16 edges put in every certificate request
// (edge/pkg/edgehub/certificate; 1.17+ send system:node:<name>): the node's
// name comes in the NodeName header instead.
inline constexpr std::string_view kLegacyEdgeCsrCn = "kubeedge.io";

// Whether a message EdgeHub handed over came from the cloud: MetaManager
// treats cloudhub, cloudStream, devicecontroller, edgecontroller and
// synccontroller as cloud modules (KubeEdge's edge/pkg/metamanager), kedge
// also the controllers that are cloud-only in KubeEdge 1.12
// (dynamiccontroller, nodeupgradejobcontroller) and its own cloud group
// `controller`. Anything else is a report of a local module.
constexpr bool is_cloud_source(std::string_view s) {
  return s == source::kCloudHub || s == source::kCloudStream || s == source::kEdgeController ||
         s == source::kDeviceController || s == source::kSyncController ||
         s == source::kDynamicController || s == source::kNodeUpgradeController ||
         s == "nodeupgradecontroller" || s == "controller";
}

}  // namespace kedge::contracts::wire
