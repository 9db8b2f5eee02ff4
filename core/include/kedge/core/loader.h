// The plugin loader (Boost.DLL). A library is loaded with local symbol
// visibility and never unloaded (RTLD_NODELETE), so no code or static data a
// message or a handler may still point to ever goes away.
#pragma once

#include <boost/dll/shared_library.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kedge/plugin.h"
#include "kedge/status.h"

namespace kedge::core {

struct LoadedPlugin {
  std::filesystem::path file;
  std::shared_ptr<boost::dll::shared_library> library;
  const PluginDescriptor* descriptor = nullptr;
};

// On error, the status names the file and what is wrong.
using LoadResult = Result<LoadedPlugin>;

// Loads one plugin library and checks its descriptor: the file exists, is an
// ELF shared object, exports kedge_plugin_entry, speaks this kernel's ABI, and
// its descriptor is well-formed (name, factory, config schema and defaults).
LoadResult load_plugin(const std::filesystem::path& file);

// Loads every *.so in the directories (non-recursive), in name order.
std::vector<LoadResult> scan_plugins(const std::vector<std::filesystem::path>& dirs);

// Where plugins are looked for when the manifest names no plugin_dirs:
// <directory of the kedge binary>/../<libdir>/kedge/plugins, which holds in the
// build tree and in an installed tree alike.
std::filesystem::path default_plugin_dir();

// The library file name a plugin called `name` is expected to have.
std::string library_file_name(const std::string& name);

// Human-readable description of a plugin: name, version, ABI, group,
// dependencies and each config key with type, default and description.
std::string describe_plugin(const LoadedPlugin& p);

}  // namespace kedge::core
