// The cloud controllers' peers: the apiserver plugin they read and write
// objects through (its message API, docs/controllers.md) and cloudhub, which
// carries their messages to the edge nodes.
#pragma once

#include <string>

#include "contracts/modules.h"
#include "kedge/settings.h"

namespace kedge::contracts {

struct ControllerSettings {
  std::string apiserver, cloudhub;
};

inline constexpr Setting<ControllerSettings> kControllerSettings[] = {
    peer_setting(kApiServer, &ControllerSettings::apiserver,
                 "The module objects are read, watched and written through."),
    peer_setting(kCloudHub, &ControllerSettings::cloudhub,
                 "The module that carries messages to the edge nodes."),
};
inline constexpr auto kControllerConfig = config_keys(kControllerSettings);

}  // namespace kedge::contracts
