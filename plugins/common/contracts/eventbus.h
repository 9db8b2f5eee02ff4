// KubeEdge 1.12's MQTT topics between EventBus, the DeviceTwin and mappers
// (edge/pkg/eventbus/mqtt, edge/pkg/devicetwin/dtcommon), written once for
// the eventbus plugin and the twin. The twin asks the eventbus to publish
// with a message {op "publish", resource <topic>, content <document>}.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace kedge::contracts::eventbus {

inline constexpr std::string_view kPublish = "publish";
inline constexpr std::string_view kSubscribe = "subscribe";
inline constexpr std::string_view kUnsubscribe = "unsubscribe";
inline constexpr std::string_view kMessage = "message";
inline constexpr std::string_view kGetResult = "get_result";

inline constexpr std::string_view kDevicePrefix = "$hw/events/device/";
inline constexpr std::string_view kNodePrefix = "$hw/events/node/";

// What EventBus subscribes to besides the topics the cloud asked for.
inline constexpr std::array<std::string_view, 6> kSubscriptions = {
    "$hw/events/upload/#",        "$hw/events/device/+/state/update",
    "$hw/events/device/+/twin/+", "$hw/events/node/+/membership/get",
    "SYS/dis/upload_records",     "+/user/#",
};

// $hw/events/device/<id>/<what>, e.g. what = "twin/update/delta".
inline std::string device_topic(std::string_view id, std::string_view what) {
  return std::string(kDevicePrefix) + std::string(id) + "/" + std::string(what);
}
// $hw/events/node/<node>/<what>, e.g. what = "membership/updated".
inline std::string node_topic(std::string_view node, std::string_view what) {
  return std::string(kNodePrefix) + std::string(node) + "/" + std::string(what);
}

}  // namespace kedge::contracts::eventbus
