// The agent manifest (TOML): agent settings and the plugins to load.
//
//   [agent]
//   node_name = "edge-1"
//   data_dir = "data"            # relative paths are relative to the manifest
//   log_level = "info"
//   worker_threads = 1
//   plugin_dirs = ["plugins"]
//
//   [[plugin]]
//   name = "echo"                # module name, unique
//   library = "libkedge_echo.so" # optional: default libkedge_<name>.so on plugin_dirs
//   enabled = true
//   required = true              # a required plugin failing at start fails the agent
//   restart = { policy = "on-failure", initial_backoff_ms = 500, max_backoff_ms = 30000,
//   max_restarts = 10 } [plugin.config]              # the plugin's own keys, checked against its
//   schema
#pragma once

#include <toml++/toml.h>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kedge::core {

struct SourceLoc {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  // "file:line:col" (or just "file" when the position is unknown).
  std::string str() const;
};

struct RestartPolicy {
  enum class Kind { kNever, kOnFailure };
  Kind kind = Kind::kOnFailure;
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  int64_t max_restarts = 10;  // consecutive failed restarts before giving up; 0 = never give up
};

struct PluginEntry {
  std::string name;
  std::string library;  // as written; empty = search plugin_dirs
  bool enabled = true;
  bool required = true;
  RestartPolicy restart;
  std::string log_level;                // empty = the agent's level
  size_t queue_capacity = 0;            // 0 = the agent's default
  const toml::table* config = nullptr;  // the [plugin.config] table, or null
  SourceLoc loc;                        // where the [[plugin]] entry starts
};

struct AgentSettings {
  std::string node_name;
  std::filesystem::path data_dir;
  std::string log_level = "info";
  int64_t worker_threads = 1;
  std::vector<std::filesystem::path> plugin_dirs;  // absolute after parsing
  size_t queue_capacity = 1024;
  std::string metrics_file = "metrics.prom";  // under data_dir; "" disables
  std::chrono::milliseconds metrics_interval{10000};
};

struct Manifest {
  std::filesystem::path file;
  std::filesystem::path base_dir;  // relative paths resolve against it
  AgentSettings agent;
  std::vector<PluginEntry> plugins;   // in manifest order, disabled ones included
  std::shared_ptr<toml::table> root;  // keeps the config tables alive
};

struct ManifestResult {
  std::vector<std::string> errors;  // each "file:line:col: what is wrong"
  std::optional<Manifest> manifest;
  bool ok() const { return errors.empty() && manifest.has_value(); }
};

// Parses and checks the manifest's own structure (not the plugins' configs:
// that needs the plugins, see resolve.h).
ManifestResult parse_manifest_file(const std::filesystem::path& file);
// Same, from text; `file` names it in errors, `base_dir` anchors relative paths.
ManifestResult parse_manifest_text(std::string_view text, const std::string& file,
                                   const std::filesystem::path& base_dir);

}  // namespace kedge::core
