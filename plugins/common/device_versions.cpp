#include "device_versions.h"

#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kedge/common/json.h"

namespace kedge::devices {
namespace {

namespace json = boost::json;
using kedge::json_path::find;
using kedge::json_path::string_at;

// The JSON type a field of KubeEdge's v1alpha2 Go types has. A value of
// another type would fail the edge's decoding of the whole object, so it is
// converted where that is lossless ("3" -> 3) and dropped otherwise.
enum class Kind { kString, kInt, kFloat, kBool, kObject };
struct Field {
  std::string_view name;
  Kind kind;
};

std::optional<json::value> coerce(const json::value& v, Kind k) {
  switch (k) {
    case Kind::kString:
      if (v.is_string()) return v;
      if (v.is_number() || v.is_bool()) return json::value(json::serialize(v));
      return std::nullopt;
    case Kind::kInt:
      if (v.is_int64() || v.is_uint64()) return v;
      if (v.is_double() &&
          v.as_double() == static_cast<double>(static_cast<int64_t>(v.as_double())))
        return json::value(static_cast<int64_t>(v.as_double()));
      if (v.is_string()) {
        std::string_view s = v.as_string();
        int64_t n = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return json::value(n);
      }
      return std::nullopt;
    case Kind::kFloat:
      if (v.is_number()) return json::value(v.to_number<double>());
      if (v.is_string()) {
        std::string s(v.as_string());
        char* end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end == s.c_str() + s.size()) return json::value(d);
      }
      return std::nullopt;
    case Kind::kBool:
      if (v.is_bool()) return v;
      if (v.is_string() && (v.as_string() == "true" || v.as_string() == "false"))
        return json::value(v.as_string() == "true");
      return std::nullopt;
    case Kind::kObject:
      if (v.is_object()) return v;
      return std::nullopt;
  }
  return std::nullopt;
}

// Copies `from`'s fields into `to`: the listed ones coerced to their kind
// (and dropped if they cannot be), the others as they are.
void copy_typed(const json::object& from, json::object& to, std::span<const Field> fields) {
  for (auto& [key, v] : from) {
    const Field* f = nullptr;
    for (auto& x : fields)
      if (x.name == key) f = &x;
    if (!f) {
      to[key] = v;
      continue;
    }
    if (auto c = coerce(v, f->kind)) to[key] = std::move(*c);
  }
}

const json::object& object_at(const json::value& v, kedge::json_path::Path path) {
  static const json::object kEmpty;
  auto* x = find(v, path);
  return x && x->is_object() ? x->as_object() : kEmpty;
}

constexpr Field kOpcuaProtocol[] = {
    {"url", Kind::kString},          {"userName", Kind::kString},
    {"password", Kind::kString},     {"securityPolicy", Kind::kString},
    {"securityMode", Kind::kString}, {"certificate", Kind::kString},
    {"privateKey", Kind::kString},   {"timeout", Kind::kInt}};
constexpr Field kBluetoothProtocol[] = {{"macAddress", Kind::kString}};
constexpr Field kTcp[] = {{"ip", Kind::kString}, {"port", Kind::kInt}};
constexpr Field kCom[] = {{"serialPort", Kind::kString},
                          {"baudRate", Kind::kInt},
                          {"dataBits", Kind::kInt},
                          {"parity", Kind::kString},
                          {"stopBits", Kind::kInt}};
constexpr Field kCommon[] = {{"commType", Kind::kString},       {"reconnTimeout", Kind::kInt},
                             {"reconnRetryTimes", Kind::kInt},  {"collectTimeout", Kind::kInt},
                             {"collectRetryTimes", Kind::kInt}, {"collectType", Kind::kString}};
constexpr Field kModbusVisitor[] = {{"register", Kind::kString}, {"offset", Kind::kInt},
                                    {"limit", Kind::kInt},       {"scale", Kind::kFloat},
                                    {"isSwap", Kind::kBool},     {"isRegisterSwap", Kind::kBool}};
constexpr Field kOpcuaVisitor[] = {{"nodeID", Kind::kString}, {"browseName", Kind::kString}};
constexpr Field kBluetoothVisitor[] = {{"characteristicUUID", Kind::kString},
                                       {"dataWrite", Kind::kObject},
                                       {"dataConverter", Kind::kObject}};

bool listed(std::string_view key, std::span<const Field> fields) {
  for (auto& f : fields)
    if (f.name == key) return true;
  return false;
}

// v1beta1 spec.protocol -> v1alpha2 spec.protocol.
json::object protocol_to_v1alpha2(const json::value& dev) {
  std::string name = string_at(dev, {"spec", "protocol", "protocolName"});
  const json::object& cd = object_at(dev, {"spec", "protocol", "configData"});
  json::object out;
  if (name == "modbus") {
    json::object modbus, common, tcp, com, custom;
    for (auto& [key, v] : cd) {
      json::object* to = &custom;
      Kind kind = Kind::kObject;
      bool typed = true;
      if (key == "slaveID") {
        to = &modbus, kind = Kind::kInt;
      } else if (listed(key, kTcp)) {
        to = &tcp, kind = key == "port" ? Kind::kInt : Kind::kString;
      } else if (listed(key, kCom)) {
        to = &com;
        for (auto& f : kCom)
          if (f.name == key) kind = f.kind;
      } else if (listed(key, kCommon)) {
        to = &common;
        for (auto& f : kCommon)
          if (f.name == key) kind = f.kind;
      } else {
        typed = false;
      }
      if (!typed)
        custom[key] = v;
      else if (auto c = coerce(v, kind))
        (*to)[key] = std::move(*c);
    }
    if (!tcp.empty()) common["tcp"] = std::move(tcp);
    if (!com.empty()) common["com"] = std::move(com);
    if (!custom.empty()) common["customizedValues"] = std::move(custom);
    out["modbus"] = std::move(modbus);
    if (!common.empty()) out["common"] = std::move(common);
  } else if (name == "opcua") {
    json::object o;
    copy_typed(cd, o, kOpcuaProtocol);
    out["opcua"] = std::move(o);
  } else if (name == "bluetooth") {
    json::object o;
    copy_typed(cd, o, kBluetoothProtocol);
    out["bluetooth"] = std::move(o);
  } else if (!name.empty()) {
    json::object o{{"protocolName", name}};
    if (!cd.empty()) o["configData"] = cd;
    out["customizedProtocol"] = std::move(o);
  }
  return out;
}

// A v1beta1 property's visitors -> the v1alpha2 property visitor.
json::object visitor_to_v1alpha2(const std::string& protocol, const json::value& prop) {
  json::object out{{"propertyName", string_at(prop, {"name"})}};
  for (const char* cycle : {"reportCycle", "collectCycle"})
    if (auto* c = find(prop, {cycle}))
      if (auto v = coerce(*c, Kind::kInt)) out[cycle] = std::move(*v);
  std::string name = string_at(prop, {"visitors", "protocolName"});
  if (name.empty()) name = protocol;
  const json::object& cd = object_at(prop, {"visitors", "configData"});
  json::object block;
  if (name == "modbus") {
    copy_typed(cd, block, kModbusVisitor);
    out["modbus"] = std::move(block);
  } else if (name == "opcua") {
    copy_typed(cd, block, kOpcuaVisitor);
    out["opcua"] = std::move(block);
  } else if (name == "bluetooth") {
    copy_typed(cd, block, kBluetoothVisitor);
    out["bluetooth"] = std::move(block);
  } else {
    block["protocolName"] = name;
    if (!cd.empty()) block["configData"] = cd;
    out["customizedProtocol"] = std::move(block);
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

json::object with_kind(const json::value& obj, const char* api, const char* kind) {
  json::object out{{"apiVersion", api}, {"kind", kind}};
  if (auto* md = find(obj, {"metadata"})) out["metadata"] = *md;
  return out;
}

}  // namespace

bool is_v1alpha2(const json::value& obj) { return string_at(obj, {"apiVersion"}) == kV1alpha2; }

json::value device_to_v1alpha2(const json::value& dev) {
  if (!dev.is_object()) return dev;
  json::object out = with_kind(dev, kV1alpha2, "Device");
  json::object spec;
  if (auto* ref = find(dev, {"spec", "deviceModelRef"})) spec["deviceModelRef"] = *ref;
  if (std::string node = string_at(dev, {"spec", "nodeName"}); !node.empty())
    spec["nodeSelector"] = json::object{
        {"nodeSelectorTerms",
         json::array{json::object{
             {"matchExpressions",
              json::array{json::object{{"key", ""},
                                       {"operator", "In"},
                                       {"values", json::array{json::value(node)}}}}}}}}};
  else if (auto* sel = find(dev, {"spec", "nodeSelector"}))
    spec["nodeSelector"] = *sel;
  spec["protocol"] = protocol_to_v1alpha2(dev);
  std::string protocol = string_at(dev, {"spec", "protocol", "protocolName"});
  json::array visitors, twins;
  for (auto& p : kedge::json_path::array_at(dev, {"spec", "properties"})) {
    if (find(p, {"visitors"})) visitors.push_back(visitor_to_v1alpha2(protocol, p));
    if (auto* d = find(p, {"desired"}))
      twins.push_back(json::object{{"propertyName", string_at(p, {"name"})}, {"desired", *d}});
  }
  spec["propertyVisitors"] = std::move(visitors);
  out["spec"] = std::move(spec);
  // reported values next to the desired ones (one entry per property)
  for (auto& t : kedge::json_path::array_at(dev, {"status", "twins"})) {
    auto* rep = find(t, {"reported"});
    if (!rep) continue;
    std::string name = string_at(t, {"propertyName"});
    bool merged = false;
    for (auto& x : twins)
      if (x.as_object()["propertyName"] == json::value(name)) {
        x.as_object()["reported"] = *rep;
        merged = true;
      }
    if (!merged) twins.push_back(json::object{{"propertyName", name}, {"reported", *rep}});
  }
  if (!twins.empty()) out["status"] = json::object{{"twins", std::move(twins)}};
  return out;
}

json::value model_to_v1alpha2(const json::value& model) {
  if (!model.is_object()) return model;
  json::object out = with_kind(model, kV1alpha2, "DeviceModel");
  json::object spec;
  if (auto* proto = find(model, {"spec", "protocol"}); proto && proto->is_string())
    spec["protocol"] = *proto;
  json::array props;
  for (auto& p : kedge::json_path::array_at(model, {"spec", "properties"})) {
    std::string type = lower(string_at(p, {"type"}));
    if (type == "stream") type = "bytes";  // 1.12 has no stream type
    json::object t;
    if (std::string am = string_at(p, {"accessMode"}); !am.empty()) t["accessMode"] = am;
    Kind bound = type == "int" ? Kind::kInt : Kind::kFloat;
    if (type == "int" || type == "float" || type == "double") {
      for (const char* b : {"minimum", "maximum"})
        if (auto* v = find(p, {b}))
          if (auto c = coerce(*v, bound)) t[b] = std::move(*c);
      if (std::string unit = string_at(p, {"unit"}); !unit.empty()) t["unit"] = unit;
    }
    json::object prop{{"name", string_at(p, {"name"})}};
    if (std::string d = string_at(p, {"description"}); !d.empty()) prop["description"] = d;
    prop["type"] = json::object{{type.empty() ? "string" : type, std::move(t)}};
    props.push_back(std::move(prop));
  }
  spec["properties"] = std::move(props);
  out["spec"] = std::move(spec);
  return out;
}

json::value device_from_v1alpha2(const json::value& dev) {
  if (!dev.is_object()) return dev;
  json::object out = with_kind(dev, kV1beta1, "Device");
  json::object spec;
  if (auto* ref = find(dev, {"spec", "deviceModelRef"})) spec["deviceModelRef"] = *ref;
  // the first value of the first expression of the first term (as 1.12's
  // devicecontroller reads it)
  auto& terms = kedge::json_path::array_at(dev, {"spec", "nodeSelector", "nodeSelectorTerms"});
  if (!terms.empty()) {
    auto& exprs = kedge::json_path::array_at(terms[0], {"matchExpressions"});
    if (!exprs.empty()) {
      auto& vals = kedge::json_path::array_at(exprs[0], {"values"});
      if (!vals.empty() && vals[0].is_string()) spec["nodeName"] = vals[0];
    }
  }
  const json::object& proto = object_at(dev, {"spec", "protocol"});
  std::string protocol;
  json::object cd;
  if (auto* m = proto.if_contains("modbus"); m && m->is_object()) {
    protocol = "modbus";
    cd = m->as_object();
    const json::object& common = object_at(dev, {"spec", "protocol", "common"});
    for (auto& [key, v] : common) {
      if ((key == "tcp" || key == "com" || key == "customizedValues") && v.is_object())
        for (auto& [k2, v2] : v.as_object()) cd[k2] = v2;
      else
        cd[key] = v;
    }
  } else if (auto* o = proto.if_contains("opcua"); o && o->is_object()) {
    protocol = "opcua", cd = o->as_object();
  } else if (auto* b = proto.if_contains("bluetooth"); b && b->is_object()) {
    protocol = "bluetooth", cd = b->as_object();
  } else if (auto* c = proto.if_contains("customizedProtocol"); c && c->is_object()) {
    protocol = string_at(*c, {"protocolName"});
    cd = object_at(*c, {"configData"});
  }
  json::object p{{"protocolName", protocol}};
  if (!cd.empty()) p["configData"] = std::move(cd);
  spec["protocol"] = std::move(p);

  // properties: the visitors, with the desired values from status.twins
  json::array props;
  auto property = [&props](const std::string& name) -> json::object& {
    for (auto& x : props)
      if (x.as_object()["name"] == json::value(name)) return x.as_object();
    // KubeEdge 1.12 sends every reported twin to the cloud
    props.push_back(json::object{{"name", name}, {"reportToCloud", true}});
    return props.back().as_object();
  };
  for (auto& v : kedge::json_path::array_at(dev, {"spec", "propertyVisitors"})) {
    json::object& prop = property(string_at(v, {"propertyName"}));
    for (const char* cycle : {"reportCycle", "collectCycle"})
      if (auto* c = find(v, {cycle})) prop[cycle] = *c;
    json::object visitors;
    for (const char* block : {"modbus", "opcua", "bluetooth"})
      if (auto* x = find(v, {block}); x && x->is_object())
        visitors = json::object{{"protocolName", block}, {"configData", *x}};
    if (auto* x = find(v, {"customizedProtocol"}); x && x->is_object()) {
      visitors = json::object{{"protocolName", string_at(*x, {"protocolName"})}};
      if (auto* c = find(*x, {"configData"})) visitors["configData"] = *c;
    }
    if (!visitors.empty()) prop["visitors"] = std::move(visitors);
  }
  json::array reported;
  for (auto& t : kedge::json_path::array_at(dev, {"status", "twins"})) {
    std::string name = string_at(t, {"propertyName"});
    if (auto* d = find(t, {"desired"})) property(name)["desired"] = *d;
    if (auto* r = find(t, {"reported"}))
      reported.push_back(json::object{{"propertyName", name}, {"reported", *r}});
  }
  spec["properties"] = std::move(props);
  out["spec"] = std::move(spec);
  if (!reported.empty()) out["status"] = json::object{{"twins", std::move(reported)}};
  return out;
}

json::value model_from_v1alpha2(const json::value& model) {
  if (!model.is_object()) return model;
  json::object out = with_kind(model, kV1beta1, "DeviceModel");
  json::object spec;
  if (auto* proto = find(model, {"spec", "protocol"}); proto && proto->is_string())
    spec["protocol"] = *proto;
  json::array props;
  for (auto& p : kedge::json_path::array_at(model, {"spec", "properties"})) {
    json::object prop{{"name", string_at(p, {"name"})}};
    if (std::string d = string_at(p, {"description"}); !d.empty()) prop["description"] = d;
    const json::object& type = object_at(p, {"type"});
    if (!type.empty()) {
      const auto& [key, t] = *type.begin();
      prop["type"] = upper(std::string(key));
      if (std::string am = string_at(t, {"accessMode"}); !am.empty()) prop["accessMode"] = am;
      for (const char* b : {"minimum", "maximum"})
        if (auto* v = find(t, {b}))
          if (auto c = coerce(*v, Kind::kString)) prop[b] = std::move(*c);
      if (std::string unit = string_at(t, {"unit"}); !unit.empty()) prop["unit"] = unit;
    }
    props.push_back(std::move(prop));
  }
  spec["properties"] = std::move(props);
  out["spec"] = std::move(spec);
  return out;
}

}  // namespace kedge::devices
