#include "kedge/config.h"

namespace kedge {

const char* config_type_name(ConfigType t) {
  switch (t) {
    case ConfigType::kString: return "string";
    case ConfigType::kInteger: return "integer";
    case ConfigType::kFloat: return "float";
    case ConfigType::kBool: return "boolean";
    case ConfigType::kStringList: return "array of strings";
    case ConfigType::kTable: return "table";
  }
  return "unknown";
}

bool Config::has(std::string_view key) const { return values_.contains(key); }

std::string Config::get_string(std::string_view key, std::string_view fallback) const {
  auto* v = values_.if_contains(key);
  if (v && v->is_string()) return std::string(v->get_string());
  return std::string(fallback);
}

int64_t Config::get_int(std::string_view key, int64_t fallback) const {
  auto* v = values_.if_contains(key);
  if (v && v->is_int64()) return v->get_int64();
  return fallback;
}

double Config::get_float(std::string_view key, double fallback) const {
  auto* v = values_.if_contains(key);
  if (!v) return fallback;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  return fallback;
}

bool Config::get_bool(std::string_view key, bool fallback) const {
  auto* v = values_.if_contains(key);
  if (v && v->is_bool()) return v->get_bool();
  return fallback;
}

std::vector<std::string> Config::get_strings(std::string_view key) const {
  std::vector<std::string> out;
  auto* v = values_.if_contains(key);
  if (v && v->is_array())
    for (const auto& e : v->get_array())
      if (e.is_string()) out.emplace_back(e.get_string());
  return out;
}

boost::json::object Config::get_table(std::string_view key) const {
  auto* v = values_.if_contains(key);
  if (v && v->is_object()) return v->get_object();
  return {};
}

}  // namespace kedge
