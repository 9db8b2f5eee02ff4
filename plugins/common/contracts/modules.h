// The in-process conversations between kedge's plugins: which module a
// plugin talks to is a string key of its config, with the name it has by
// default, and every such key is declared as a peer (kedge::PeerDecl), so
// `kedge check` prints who sends what to whom and refuses a manifest where a
// required peer is missing. No plugin names another module by a literal;
// it names one of these.
//
// These names never travel on KubeEdge's wire: a user may load a module
// under another name and point its peers at it. The names that do travel
// (message sources and groups CloudCore and EdgeCore route on) are in
// contracts/wire.h.
#pragma once

#include <string>

#include "kedge/config.h"
#include "kedge/settings.h"

namespace kedge::contracts {

struct Peer {
  const char* key;           // the config key naming the module
  const char* default_name;  // its default value
  const char* default_json;  // the same, as the schema's JSON default
};

// The config key for a peer, with the peer's default.
constexpr ConfigKey peer_key(const Peer& p, const char* description) {
  return ConfigKey{p.key, ConfigType::kString, p.default_json, description, false};
}

// The same, bound to a field of a plugin's settings struct (kedge/settings.h).
template <class S>
constexpr Setting<S> peer_setting(const Peer& p, std::string S::*member, const char* description) {
  return Setting<S>{p.key, member, p.default_json, description};
}

// Edge.
inline constexpr Peer kEdgeHub{"edgehub", "edgehub", "\"edgehub\""};
inline constexpr Peer kMetaManager{"metamanager", "metamanager", "\"metamanager\""};
inline constexpr Peer kMetaServer{"metaserver", "metaserver", "\"metaserver\""};
inline constexpr Peer kEdged{"edged", "edged", "\"edged\""};
inline constexpr Peer kTwin{"twin", "twin", "\"twin\""};
inline constexpr Peer kDmi{"dmi", "dmi", "\"dmi\""};
inline constexpr Peer kEventBus{"eventbus", "eventbus", "\"eventbus\""};
// Cloud.
inline constexpr Peer kCloudHub{"cloudhub", "cloudhub", "\"cloudhub\""};
inline constexpr Peer kApiServer{"apiserver", "apiserver", "\"apiserver\""};

}  // namespace kedge::contracts
