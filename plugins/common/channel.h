// Facts of the cloud-edge channel shared by cloudhub and edgehub (wire spec
// §1-§3): resource trimming and prefixing, object keys for de-duplication,
// resourceVersion comparison, and the local groups of wire groups.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kedge/message.h"

namespace kedge::channel {

inline constexpr std::string_view kDefaultProjectId = "e632aba927ea4ac2b575ec1603d56f10";

// The node a cloud-internal resource is for: the token after the first
// "node" token ("node/<id>/...", "upgrade/<job>/node/<id>"). Empty if none.
std::string node_of(std::string_view resource);
// Cloud -> edge: "node/<id>/<rest>" with at least 3 tokens loses its first two.
std::string trim_for_edge(std::string_view resource);
// Edge -> cloud: every resource gets "node/<id>/".
std::string prefix_for_cloud(std::string_view node, std::string_view resource);

// The key that identifies the object a message is about, for replacing a
// queued older version and de-duplicating: the object's metadata.uid when the
// content has one, else the resource string.
std::string object_key(const Message& m);
// resourceVersions compare as unsigned 64-bit integers; unparsable ones as 0.
uint64_t parse_rv(std::string_view rv);

// EdgeHub: the local group for a wire group (resource->meta, twin->twin,
// func->meta, user->bus); empty for unknown groups.
std::string local_group(std::string_view wire_group);

}  // namespace kedge::channel
