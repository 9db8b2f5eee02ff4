// The Mapper SDK. A mapper author writes a Driver (kedge/mapper/driver.h)
// and a factory, then declares the mapper once:
//
//   kedge::mapper::MapperInfo modbus_mapper() {
//     return {.name = "modbus-mapper", .protocol = "modbus", .version = "1.0.0",
//             .factory = make_modbus_driver};
//   }
//   KEDGE_MAPPER(modbus_mapper, "Modbus TCP devices (libmodbus).")
//
// The same source builds two ways (kedge_add_mapper in CMake does both):
//  * a kedge plugin, run inside the edge agent: devices come from the `dmi`
//    plugin as messages, reports go back the same way;
//  * a standalone mapper process speaking DMI v1beta1 over gRPC: it
//    registers with the edge's DeviceManagerService (/etc/kubeedge/dmi.sock)
//    and serves DeviceMapperService on a socket of its own. A KubeEdge edge
//    can drive it too.
// Either way the SDK runs the devices (kedge/mapper/engine.h) and, if asked,
// serves Device-as-a-Service (kedge/mapper/service.h).
#pragma once

#include <memory>

#include "kedge/mapper/contract.h"
#include "kedge/mapper/device.h"
#include "kedge/mapper/driver.h"
#include "kedge/mapper/engine.h"
#include "kedge/plugin.h"
#include "kedge/settings.h"

namespace kedge::mapper {

// The standalone mapper's main(): flags --dmi-socket, --socket, --http,
// --log-level, --name (see --help). Returns the process exit code.
KEDGE_EXPORT int run_standalone(int argc, char** argv, MapperInfo info);

// The in-process host: a kedge plugin that runs the engine.
class KEDGE_EXPORT MapperPlugin : public Plugin {
 public:
  explicit MapperPlugin(MapperInfo info);
  ~MapperPlugin() override;
  Status init(Context& ctx, const Config& config) override;
  Status start() override;
  Status stop() override;
  void on_message(const MessagePtr& msg) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The plugin host's config (kedge/settings.h): every mapper plugin has it.
struct MapperPluginSettings {
  std::string dmi, http_address;
  int64_t health_cycle_ms = 0, max_threads = 0;
};
inline constexpr Setting<MapperPluginSettings> kMapperPluginSettings[] = {
    {contract::kDmiKey, &MapperPluginSettings::dmi, "\"dmi\"",
     "The module that hands this mapper its devices (kedge's dmi plugin)."},
    {"http_address", &MapperPluginSettings::http_address, "\"\"",
     "Device-as-a-Service: host:port of the mapper's HTTP API (empty: not served)."},
    {"health_cycle_ms", &MapperPluginSettings::health_cycle_ms, "5000",
     "How often each device's health is checked.", false, 100, 3600000},
    {"max_threads", &MapperPluginSettings::max_threads, "4",
     "Threads that run the devices' driver calls (started as needed).", false, 1, 64},
};
inline constexpr auto kMapperPluginConfig = config_keys(kMapperPluginSettings);
inline constexpr const char* kMapperPluginDependencies[] = {contract::kDmiKey};
inline constexpr PeerDecl kMapperPluginPeers[] = {
    {contract::kDmiKey, "register (request), report and state of its devices", false},
};

}  // namespace kedge::mapper

#ifdef KEDGE_MAPPER_STANDALONE
#define KEDGE_MAPPER(INFO_FN, DESCRIPTION) \
  int main(int argc, char** argv) { return ::kedge::mapper::run_standalone(argc, argv, INFO_FN()); }
#else
#define KEDGE_MAPPER(INFO_FN, DESCRIPTION)                                                     \
  namespace {                                                                                  \
  class KedgeMapperPlugin final : public ::kedge::mapper::MapperPlugin {                       \
   public:                                                                                     \
    KedgeMapperPlugin() : MapperPlugin(INFO_FN()) {}                                           \
  };                                                                                           \
  const ::kedge::mapper::MapperInfo& kedge_mapper_info() {                                     \
    static const ::kedge::mapper::MapperInfo kedge_info_ = INFO_FN();                          \
    return kedge_info_;                                                                        \
  }                                                                                            \
  }                                                                                            \
  KEDGE_PLUGIN(KedgeMapperPlugin, {.name = kedge_mapper_info().name.c_str(),                   \
                                   .version = kedge_mapper_info().version.c_str(),             \
                                   .group = ::kedge::mapper::contract::kMapperGroup,           \
                                   .description = DESCRIPTION,                                 \
                                   .config = ::kedge::mapper::kMapperPluginConfig,             \
                                   .dependencies = ::kedge::mapper::kMapperPluginDependencies, \
                                   .peers = ::kedge::mapper::kMapperPluginPeers})
#endif
