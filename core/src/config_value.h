// TOML values to kedge config values (JSON), checked against a ConfigKey.
#pragma once

#include <toml++/toml.h>
#include <boost/json/value.hpp>
#include <optional>
#include <string>

#include "kedge/config.h"

namespace kedge::core {

// Converts `node` to the key's type. On a mismatch returns nullopt and sets
// `err` to "expected X, got Y" (with the element index for arrays).
std::optional<boost::json::value> convert_config_value(const ConfigKey& key, const toml::node& node,
                                                       std::string& err);
// Parses the key's default literal (TOML) into a value of the key's type.
std::optional<boost::json::value> parse_default(const ConfigKey& key, std::string& err);
// Any TOML node as JSON.
boost::json::value toml_to_json(const toml::node& node);
const char* toml_type_name(toml::node_type t);

}  // namespace kedge::core
