// Plugin configuration: a typed schema declared by the plugin (one table that
// serves validation, `kedge plugins --describe` and docs), and the validated
// values handed to Plugin::init.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kedge/export.h"

namespace kedge {

// The types a config key may have. The numeric values are part of the ABI.
enum class ConfigType : int32_t {
  kString = 1,
  kInteger = 2,
  kFloat = 3,  // an integer literal is accepted too
  kBool = 4,
  kStringList = 5,
  kTable = 6,  // free-form table, passed through as a JSON object
};

KEDGE_EXPORT const char* config_type_name(ConfigType t);

// One key of a plugin's config schema. Plain C layout: it crosses the plugin
// boundary. `default_value` is a TOML literal ("1000", "\"info\"", "[\"a\"]",
// "true", "{}"), or nullptr when the key has no default.
//
// `min` and `max` bound an integer or float key when max > min (both ends
// included): a value outside is refused when the manifest is checked, with
// its file:line:col, before any plugin starts. Give them as the last two
// initializers: {"port", ConfigType::kInteger, "10550", "Port.", false, 1, 65535}.
struct ConfigKey {
  const char* name;
  ConfigType type;
  const char* default_value;
  const char* description;
  bool required;
  double min = 0;
  double max = 0;
};

// The validated config of one plugin instance: every schema key with a default
// is present, every present key has its declared type.
class KEDGE_EXPORT Config {
 public:
  Config() = default;
  explicit Config(boost::json::object values) : values_(std::move(values)) {}

  bool has(std::string_view key) const;
  // Typed getters. A key missing from the config (no default, not set)
  // returns `fallback`.
  std::string get_string(std::string_view key, std::string_view fallback = {}) const;
  int64_t get_int(std::string_view key, int64_t fallback = 0) const;
  double get_float(std::string_view key, double fallback = 0) const;
  bool get_bool(std::string_view key, bool fallback = false) const;
  std::vector<std::string> get_strings(std::string_view key) const;
  boost::json::object get_table(std::string_view key) const;

  const boost::json::object& values() const { return values_; }

 private:
  boost::json::object values_;
};

}  // namespace kedge
