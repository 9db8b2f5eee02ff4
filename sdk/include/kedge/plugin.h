// The plugin interface and its ABI.
//
// A plugin library exports one C entry point, `kedge_plugin_entry`, returning a
// PluginDescriptor. The kernel reads `abi_version` (the first field) before
// anything else and refuses a library built for another ABI. Define the entry
// point with KEDGE_PLUGIN:
//
//   static constexpr kedge::ConfigKey kKeys[] = {
//       {"interval_ms", kedge::ConfigType::kInteger, "1000", "How often to tick.", false}};
//   KEDGE_PLUGIN(MyPlugin, {.name = "my", .version = "1.0.0", .config = kKeys})
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kedge/config.h"
#include "kedge/context.h"
#include "kedge/export.h"
#include "kedge/message.h"
#include "kedge/status.h"

namespace kedge {

// Bumped whenever PluginDescriptor, ConfigKey, Plugin or Context change in a
// way that breaks compiled plugins.
inline constexpr uint32_t kAbiVersion = 1;

// A plugin instance. The kernel calls init, then start, then stop, each on the
// plugin's strand; on_message is called one message at a time on that strand.
// None of them should block for long: blocking work belongs on a thread of
// the plugin's own.
class Plugin {
 public:
  virtual ~Plugin() = default;
  // Receives the validated config. The context outlives the instance.
  virtual Status init(Context& ctx, const Config& config) = 0;
  virtual Status start() = 0;
  virtual Status stop() = 0;
  virtual void on_message(const MessagePtr& msg) { (void)msg; }
};

// What a plugin library exports. Plain C layout; the strings and arrays are
// static data of the plugin library, which is never unloaded.
struct PluginDescriptor {
  uint32_t abi_version;      // must be the first field
  uint32_t descriptor_size;  // sizeof(PluginDescriptor) as the plugin saw it
  const char* name;          // module name: [a-z0-9][a-z0-9_-]*
  const char* version;
  const char* group;  // module group; defaults to name
  const char* description;
  const ConfigKey* config_keys;
  size_t config_key_count;
  const char* const* dependencies;  // names of plugins that must start first
  size_t dependency_count;
  Plugin* (*create)();
  void (*destroy)(Plugin*);
};

extern "C" {
typedef const PluginDescriptor* (*PluginEntryFn)();
}
inline constexpr const char* kEntryPointName = "kedge_plugin_entry";

// What a plugin author fills in for KEDGE_PLUGIN.
struct PluginInfo {
  const char* name = nullptr;
  const char* version = "0.0.0";
  const char* group = nullptr;
  const char* description = "";
  std::span<const ConfigKey> config = {};
  std::span<const char* const> dependencies = {};
};

namespace detail {
template <class T>
PluginDescriptor describe(const PluginInfo& info) {
  return PluginDescriptor{
      kAbiVersion,
      sizeof(PluginDescriptor),
      info.name,
      info.version,
      info.group ? info.group : info.name,
      info.description,
      info.config.data(),
      info.config.size(),
      info.dependencies.data(),
      info.dependencies.size(),
      []() -> Plugin* { return new T(); },
      [](Plugin* p) { delete p; },
  };
}
}  // namespace detail

}  // namespace kedge

#define KEDGE_PLUGIN(CLASS, ...)                                                  \
  extern "C" KEDGE_EXPORT const ::kedge::PluginDescriptor* kedge_plugin_entry() { \
    static const ::kedge::PluginDescriptor d =                                    \
        ::kedge::detail::describe<CLASS>(::kedge::PluginInfo __VA_ARGS__);        \
    return &d;                                                                    \
  }
