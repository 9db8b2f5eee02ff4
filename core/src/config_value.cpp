#include "config_value.h"

#include <cmath>
#include <sstream>

namespace kedge::core {

namespace bj = boost::json;

const char* toml_type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

bj::value toml_to_json(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: {
      bj::object o;
      for (auto&& [k, v] : *n.as_table()) o[k.str()] = toml_to_json(v);
      return o;
    }
    case toml::node_type::array: {
      bj::array a;
      for (auto&& e : *n.as_array()) a.push_back(toml_to_json(e));
      return a;
    }
    case toml::node_type::string: return bj::string(*n.value<std::string>());
    case toml::node_type::integer: return *n.value<int64_t>();
    case toml::node_type::floating_point: return *n.value<double>();
    case toml::node_type::boolean: return *n.value<bool>();
    default: {  // dates and times: their TOML text
      std::ostringstream o;
      n.visit([&](auto&& v) { o << v; });
      return bj::string(o.str());
    }
  }
}

namespace {

std::string number_text(double v) {
  if (std::nearbyint(v) == v && std::fabs(v) < 9e15) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream o;
  o << v;
  return o.str();
}

bool in_range(const ConfigKey& key, double v, std::string& err) {
  if (!(key.max > key.min) || (v >= key.min && v <= key.max)) return true;
  err = number_text(v) + " is out of range [" + number_text(key.min) + ", " + number_text(key.max) +
        "]";
  return false;
}

}  // namespace

std::optional<bj::value> convert_config_value(const ConfigKey& key, const toml::node& n,
                                              std::string& err) {
  auto mismatch = [&](const char* got) {
    err = std::string("expected ") + config_type_name(key.type) + ", got " + got;
    return std::nullopt;
  };
  switch (key.type) {
    case ConfigType::kString:
      if (n.is_string()) return bj::string(*n.value<std::string>());
      break;
    case ConfigType::kInteger:
      if (n.is_integer()) {
        int64_t v = *n.value<int64_t>();
        if (!in_range(key, static_cast<double>(v), err)) return std::nullopt;
        return bj::value(v);
      }
      break;
    case ConfigType::kFloat:
      if (n.is_floating_point() || n.is_integer()) {
        double v = *n.value<double>();
        if (!in_range(key, v, err)) return std::nullopt;
        return bj::value(v);
      }
      break;
    case ConfigType::kBool:
      if (n.is_boolean()) return bj::value(*n.value<bool>());
      break;
    case ConfigType::kStringList:
      if (const toml::array* a = n.as_array()) {
        bj::array out;
        for (size_t i = 0; i < a->size(); ++i) {
          const toml::node& e = *a->get(i);
          if (!e.is_string()) {
            err = "element [" + std::to_string(i) + "]: expected string, got " +
                  toml_type_name(e.type());
            return std::nullopt;
          }
          out.emplace_back(bj::string(*e.value<std::string>()));
        }
        return bj::value(std::move(out));
      }
      break;
    case ConfigType::kTable:
      if (n.is_table()) return toml_to_json(n);
      break;
  }
  return mismatch(toml_type_name(n.type()));
}

std::optional<bj::value> parse_default(const ConfigKey& key, std::string& err) {
  try {
    toml::table t = toml::parse(std::string("v = ") + key.default_value);
    const toml::node* v = t.get("v");
    if (!v) {
      err = "empty literal";
      return std::nullopt;
    }
    return convert_config_value(key, *v, err);
  } catch (const toml::parse_error& e) {
    err = std::string("not a TOML literal: ") + std::string(e.description());
    return std::nullopt;
  }
}

}  // namespace kedge::core
