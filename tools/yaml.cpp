#include "yaml.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <regex>

namespace kedge::cli {

namespace json = boost::json;

namespace {

// YAML 1.2 core schema for plain scalars; quoted scalars stay strings.
json::value scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() != "?") return json::value(s);  // quoted or explicitly tagged
  static const std::regex kInt("[-+]?[0-9]+"), kHex("0x[0-9a-fA-F]+"), kOct("0o[0-7]+"),
      kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  try {
    if (std::regex_match(s, kInt)) return static_cast<int64_t>(std::stoll(s));
    if (std::regex_match(s, kHex))
      return static_cast<int64_t>(std::stoll(s.substr(2), nullptr, 16));
    if (std::regex_match(s, kOct)) return static_cast<int64_t>(std::stoll(s.substr(2), nullptr, 8));
    if (std::regex_match(s, kFloat)) return std::stod(s);
  } catch (const std::out_of_range&) {
    return json::value(s);  // too large for a number: keep the text
  }
  if (s == ".inf" || s == ".Inf" || s == "+.inf") return HUGE_VAL;
  if (s == "-.inf" || s == "-.Inf") return -HUGE_VAL;
  return json::value(s);
}

json::value convert(const YAML::Node& n, const std::string& name) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar(n);
    case YAML::NodeType::Sequence: {
      json::array a;
      for (const auto& item : n) a.push_back(convert(item, name));
      return a;
    }
    case YAML::NodeType::Map: {
      json::object o;
      for (const auto& kv : n) {
        if (!kv.first.IsScalar())
          throw YAML::ParserException(kv.first.Mark(), "map keys must be scalars");
        std::string key = kv.first.Scalar();
        if (o.contains(key))
          throw YAML::ParserException(kv.first.Mark(), "duplicate key \"" + key + "\"");
        o[key] = convert(kv.second, name);
      }
      return o;
    }
  }
  return nullptr;
}

void emit(YAML::Emitter& e, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: e << YAML::Null; break;
    case json::kind::bool_: e << v.get_bool(); break;
    case json::kind::int64: e << v.get_int64(); break;
    case json::kind::uint64: e << v.get_uint64(); break;
    case json::kind::double_: e << v.get_double(); break;
    case json::kind::string: {
      std::string s(v.get_string());
      // Quote what would read back as another type.
      bool plain_ok = false;
      try {
        YAML::Node probe = YAML::Load(s);
        plain_ok =
            !s.empty() && probe.IsScalar() && scalar(probe).is_string() && probe.Scalar() == s;
      } catch (...) {
      }
      if (plain_ok)
        e << s;
      else
        e << YAML::DoubleQuoted << s;
      break;
    }
    case json::kind::array:
      e << YAML::BeginSeq;
      for (auto& x : v.get_array()) emit(e, x);
      e << YAML::EndSeq;
      break;
    case json::kind::object:
      e << YAML::BeginMap;
      for (auto& [k, x] : v.get_object()) {
        e << YAML::Key << std::string(k) << YAML::Value;
        emit(e, x);
      }
      e << YAML::EndMap;
      break;
  }
}

}  // namespace

Status parse_yaml(const std::string& text, const std::string& name, std::vector<Document>& out) {
  try {
    for (const auto& doc : YAML::LoadAll(text)) {
      if (doc.IsNull()) continue;
      out.push_back({convert(doc, name), doc.Mark().line + 1});
    }
  } catch (const YAML::Exception& e) {
    return invalid_argument(name + ":" + std::to_string(e.mark.line + 1) + ":" +
                            std::to_string(e.mark.column + 1) + ": invalid YAML: " + e.msg);
  }
  return {};
}

std::string to_yaml(const json::value& v) {
  YAML::Emitter e;
  emit(e, v);
  return std::string(e.c_str()) + "\n";
}

}  // namespace kedge::cli
