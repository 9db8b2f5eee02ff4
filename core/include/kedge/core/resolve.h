// Resolution: from a parsed manifest to the plugins to run, in start order.
// Loads each enabled plugin's library, validates its config against the
// plugin's schema, and orders plugins by their dependencies.
#pragma once

#include <string>
#include <vector>

#include "kedge/config.h"
#include "kedge/core/loader.h"
#include "kedge/core/manifest.h"

namespace kedge::core {

struct ResolvedPlugin {
  const PluginEntry* entry = nullptr;
  LoadedPlugin plugin;
  Config config;
  std::vector<std::string> dependencies;
};

// One declared conversation, resolved: `from` sends `what` to `to`.
struct PeerLink {
  std::string from, to, what;
  bool present = true;  // false: an optional peer that is not loaded
};

struct Resolution {
  std::vector<std::string> errors;    // each "file:line:col: what is wrong"
  std::vector<ResolvedPlugin> order;  // start order (dependencies first)
  std::vector<PeerLink> peers;        // who sends what to whom
  // Required peers that are not loaded ("file:line:col: ..."). `kedge check`
  // and `kedge run` refuse them; the test harness lets capture modules
  // stand in for them.
  std::vector<std::string> peer_errors;
  bool ok() const { return errors.empty(); }
};

Resolution resolve(const Manifest& manifest);

// Validates one plugin config table against a schema and returns the config
// with defaults filled in. Errors are appended, each with its position.
Config validate_config(const PluginDescriptor& d, const toml::table* table, const SourceLoc& entry,
                       const std::string& plugin_name, std::vector<std::string>& errors);

}  // namespace kedge::core
