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

#include <fmt/core.h>
#include <spdlog/version.h>

#include <boost/version.hpp>
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
inline constexpr uint32_t kAbiVersion = 2;

// The descriptor carries C++ types (a Plugin with a vtable, std::string and
// std::function in Context and Config, Asio executors, spdlog loggers), so
// a plugin also depends on what it was compiled with. The build fingerprint
// records that: the compiler family and major version, libstdc++'s release
// and string ABI, and the Boost, spdlog and fmt versions, plus the ABI
// version and whether AddressSanitizer is on. The loader refuses a plugin
// whose fingerprint differs from the kernel's, naming both.
#define KEDGE_STR_DETAIL(x) #x
#define KEDGE_STR(x) KEDGE_STR_DETAIL(x)
#if defined(__clang__)
#define KEDGE_FP_COMPILER "clang-" KEDGE_STR(__clang_major__)
#elif defined(__GNUC__)
#define KEDGE_FP_COMPILER "gcc-" KEDGE_STR(__GNUC__)
#else
#define KEDGE_FP_COMPILER "unknown"
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KEDGE_FP_ASAN "1"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEDGE_FP_ASAN "1"
#endif
#endif
#ifndef KEDGE_FP_ASAN
#define KEDGE_FP_ASAN "0"
#endif
#define KEDGE_BUILD_FINGERPRINT \
  "abi=2;cxx=" KEDGE_FP_COMPILER ";libstdc++=" KEDGE_STR(_GLIBCXX_RELEASE) ";cxx11abi=" \
  KEDGE_STR(_GLIBCXX_USE_CXX11_ABI) ";boost=" KEDGE_STR(BOOST_VERSION) ";spdlog="        \
  KEDGE_STR(SPDLOG_VER_MAJOR) "." KEDGE_STR(SPDLOG_VER_MINOR) "." KEDGE_STR(            \
      SPDLOG_VER_PATCH) ";fmt=" KEDGE_STR(FMT_VERSION) ";asan=" KEDGE_FP_ASAN

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

// A conversation a plugin starts: the config key (a string key of its own
// schema) whose value names the module it sends to, and what it sends
// there. `kedge check` prints these and refuses a manifest where a required
// peer is not loaded. Declare every module a plugin names; never name one
// by a literal in code.
struct PeerDecl {
  const char* config_key;
  const char* sends;  // e.g. "update device/<name>/twin/update (request)"
  bool optional;      // true: the plugin does without it
};

// What a plugin library exports. Plain C layout; the strings and arrays are
// static data of the plugin library, which is never unloaded.
struct PluginDescriptor {
  uint32_t abi_version;           // must be the first field
  uint32_t descriptor_size;       // sizeof(PluginDescriptor) as the plugin saw it
  const char* build_fingerprint;  // KEDGE_BUILD_FINGERPRINT as the plugin was built
  const char* name;               // module name: [a-z0-9][a-z0-9_-]*
  const char* version;
  const char* group;  // module group; defaults to name
  const char* description;
  const ConfigKey* config_keys;
  size_t config_key_count;
  const char* const* dependencies;  // names of plugins that must start first
  size_t dependency_count;
  Plugin* (*create)();
  void (*destroy)(Plugin*);
  const PeerDecl* peers;
  size_t peer_count;
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
  std::span<const PeerDecl> peers = {};
};

namespace detail {
template <class T>
PluginDescriptor describe(const PluginInfo& info) {
  return PluginDescriptor{
      kAbiVersion,
      sizeof(PluginDescriptor),
      KEDGE_BUILD_FINGERPRINT,
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
      info.peers.data(),
      info.peers.size(),
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
