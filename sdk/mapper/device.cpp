// Device and DeviceModel objects -> kedge::mapper::Device, with errors that
// name the field.
#include "kedge/mapper/device.h"

#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace kedge::mapper {

namespace json = boost::json;

namespace {

const json::value* at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto p : path) {
    auto* o = cur->if_object();
    if (!o) return nullptr;
    cur = o->if_contains(p);
    if (!cur) return nullptr;
  }
  return cur;
}

std::string text(const json::value* v) {
  if (!v || v->is_null()) return {};
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct ModelProp {
  std::string type = "string", access, unit, minimum, maximum;
};

// v1beta1: {name, type: "INT", accessMode, minimum, maximum, unit};
// v1alpha2: {name, type: {int: {accessMode, minimum, maximum, unit}}}.
std::map<std::string, ModelProp> model_props(const json::value* model) {
  std::map<std::string, ModelProp> out;
  if (!model) return out;
  auto* ps = at(*model, {"spec", "properties"});
  if (!ps || !ps->is_array()) return out;
  for (auto& p : ps->as_array()) {
    ModelProp m;
    const json::value* t = at(p, {"type"});
    const json::value* src = &p;
    if (t && t->is_string()) {
      m.type = lower(std::string(t->as_string()));
    } else if (t && t->is_object() && !t->as_object().empty()) {
      m.type = lower(std::string(t->as_object().begin()->key()));
      src = &t->as_object().begin()->value();
    }
    if (m.type == "integer") m.type = "int";
    if (m.type == "bool") m.type = "boolean";
    m.access = text(at(*src, {"accessMode"}));
    m.unit = text(at(*src, {"unit"}));
    m.minimum = text(at(*src, {"minimum"}));
    m.maximum = text(at(*src, {"maximum"}));
    out[text(at(p, {"name"}))] = m;
  }
  return out;
}

// Integer field of an object, or an error naming it.
Status integer_field(const json::value& obj, std::string_view key, const std::string& where,
                     int64_t& out) {
  auto* v = at(obj, {key});
  if (!v || v->is_null()) return {};
  if (v->is_int64()) {
    out = v->as_int64();
  } else if (v->is_uint64() && v->as_uint64() <= INT64_MAX) {
    out = static_cast<int64_t>(v->as_uint64());
  } else if (v->is_double() && std::floor(v->as_double()) == v->as_double() &&
             std::fabs(v->as_double()) < 9e18) {
    out = static_cast<int64_t>(v->as_double());
  } else {
    return invalid_argument(where + "." + std::string(key) + ": expected an integer, got " +
                            json::serialize(*v));
  }
  return {};
}

Status cycle(const json::value& p, std::string_view key, const std::string& where,
             std::chrono::milliseconds& out) {
  int64_t ns = 0;
  if (Status s = integer_field(p, key, where, ns); !s) return s;
  if (ns < 0) return invalid_argument(where + "." + std::string(key) + ": must not be negative");
  if (ns == 0) return {};  // default
  if (ns < 1'000'000)
    return invalid_argument(where + "." + std::string(key) + ": " + std::to_string(ns) +
                            " ns is below 1 ms (cycles are nanoseconds: 1 s = 1000000000)");
  out = std::chrono::milliseconds(ns / 1'000'000);
  return {};
}

// "tcp://host:port", "mqtt://host:port", "host:port" or "host".
Status broker(const std::string& address, const std::string& where, PushMqtt& m) {
  std::string a = address;
  for (std::string_view scheme : {"tcp://", "mqtt://"})
    if (a.rfind(scheme, 0) == 0) a = a.substr(scheme.size());
  if (a.find("://") != std::string::npos)
    return invalid_argument(where + ".address: '" + address +
                            "': only tcp:// and mqtt:// brokers are supported");
  size_t colon = a.rfind(':');
  if (colon != std::string::npos) {
    int port = 0;
    auto [p, ec] = std::from_chars(a.data() + colon + 1, a.data() + a.size(), port);
    if (ec != std::errc() || p != a.data() + a.size() || port < 1 || port > 65535)
      return invalid_argument(where + ".address: '" + address + "': bad port");
    m.port = port;
    a = a.substr(0, colon);
  }
  if (a.empty()) return invalid_argument(where + ".address: '" + address + "': no host");
  m.host = a;
  return {};
}

Status push_method(const json::value& pm, const std::string& where, Property& prop) {
  if (auto* mq = at(pm, {"mqtt"}); mq && mq->is_object()) {
    std::string w = where + ".mqtt";
    PushMqtt m;
    std::string address = text(at(*mq, {"address"}));
    if (address.empty()) return invalid_argument(w + ".address: required (tcp://host:port)");
    if (Status s = broker(address, w, m); !s) return s;
    m.topic = text(at(*mq, {"topic"}));
    if (m.topic.empty()) return invalid_argument(w + ".topic: required");
    if (m.topic.find_first_of("+#") != std::string::npos)
      return invalid_argument(w + ".topic: '" + m.topic + "': wildcards cannot be published to");
    int64_t qos = 0;
    if (Status s = integer_field(*mq, "qos", w, qos); !s) return s;
    if (qos < 0 || qos > 2) return invalid_argument(w + ".qos: must be 0, 1 or 2");
    m.qos = static_cast<int>(qos);
    if (auto* r = at(*mq, {"retained"})) {
      if (!r->is_bool()) return invalid_argument(w + ".retained: expected true or false");
      m.retained = r->as_bool();
    }
    prop.mqtt = m;
  }
  if (auto* h = at(pm, {"http"}); h && h->is_object()) {
    std::string w = where + ".http";
    PushHttp x;
    std::string host = text(at(*h, {"hostName"}));
    if (host.empty()) host = text(at(*h, {"hostname"}));
    if (host.rfind("http://", 0) == 0) host = host.substr(7);
    if (host.rfind("https://", 0) == 0)
      return invalid_argument(w + ".hostName: https is not supported");
    if (host.empty()) return invalid_argument(w + ".hostName: required");
    x.host = host;
    int64_t port = 80;
    if (Status s = integer_field(*h, "port", w, port); !s) return s;
    if (port < 1 || port > 65535) return invalid_argument(w + ".port: must be 1-65535");
    x.port = static_cast<int>(port);
    std::string path = text(at(*h, {"requestPath"}));
    if (path.empty()) path = text(at(*h, {"requestpath"}));
    x.path = path.empty() ? "/" : (path[0] == '/' ? path : "/" + path);
    int64_t timeout = 0;
    if (Status s = integer_field(*h, "timeout", w, timeout); !s) return s;
    if (timeout < 0) return invalid_argument(w + ".timeout: must not be negative");
    if (timeout > 0) x.timeout = std::chrono::milliseconds(timeout);
    prop.http = x;
  }
  return {};
}

}  // namespace

const Property* Device::property(std::string_view n) const {
  for (auto& p : properties)
    if (p.name == n) return &p;
  return nullptr;
}

std::string protocol_of(const json::value& device) {
  auto* proto = at(device, {"spec", "protocol"});
  if (!proto || !proto->is_object()) return {};
  if (std::string n = text(at(*proto, {"protocolName"})); !n.empty()) return n;
  for (const char* k : {"modbus", "opcua", "bluetooth"})
    if (proto->as_object().contains(k)) return k;
  return text(at(*proto, {"customizedProtocol", "protocolName"}));
}

Status parse_device(const json::value& device, const json::value* model, Device& out) {
  out = Device{};
  if (!device.is_object()) return invalid_argument("a Device must be a JSON object");
  out.name = text(at(device, {"metadata", "name"}));
  if (out.name.empty()) return invalid_argument("metadata.name: required");
  if (std::string ns = text(at(device, {"metadata", "namespace"})); !ns.empty()) out.ns = ns;
  out.model = text(at(device, {"spec", "deviceModelRef", "name"}));
  out.protocol = protocol_of(device);
  if (auto* proto = at(device, {"spec", "protocol"}); proto && proto->is_object()) {
    const json::value* cfg = at(*proto, {"configData"});
    if (!cfg && !out.protocol.empty()) cfg = at(*proto, {out.protocol});  // v1alpha2 block
    if (!cfg) cfg = at(*proto, {"customizedProtocol", "configData"});
    if (cfg && !cfg->is_null()) {
      if (!cfg->is_object())
        return invalid_argument("spec.protocol.configData: expected an object");
      out.protocol_config = cfg->as_object();
    }
  }
  auto mprops = model_props(model);
  const json::value* ps = at(device, {"spec", "properties"});
  bool alpha = false;
  if (!ps || ps->is_null()) {
    ps = at(device, {"spec", "propertyVisitors"});  // v1alpha2
    alpha = ps != nullptr;
  }
  if (!ps || ps->is_null()) return {};
  if (!ps->is_array())
    return invalid_argument(std::string(alpha ? "spec.propertyVisitors" : "spec.properties") +
                            ": expected a list");
  std::set<std::string> seen;
  size_t i = 0;
  for (auto& p : ps->as_array()) {
    std::string where = std::string(alpha ? "spec.propertyVisitors[" : "spec.properties[") +
                        std::to_string(i++) + "]";
    if (!p.is_object()) return invalid_argument(where + ": expected an object");
    Property prop;
    prop.name = text(at(p, {alpha ? "propertyName" : "name"}));
    if (prop.name.empty()) return invalid_argument(where + ".name: required");
    if (!seen.insert(prop.name).second)
      return invalid_argument(where + ".name: '" + prop.name + "' is listed twice");
    if (model) {
      auto it = mprops.find(prop.name);
      if (it == mprops.end())
        return invalid_argument(where + ".name: '" + prop.name + "' is not a property of model '" +
                                out.model + "'");
      prop.type = it->second.type;
      prop.writable = it->second.access == "ReadWrite";
      prop.unit = it->second.unit;
      prop.minimum = it->second.minimum;
      prop.maximum = it->second.maximum;
    }
    if (std::string d = text(at(p, {"desired", "value"})); !d.empty()) prop.desired = d;
    const json::value* vis = alpha ? (out.protocol.empty() ? nullptr : at(p, {out.protocol}))
                                   : at(p, {"visitors", "configData"});
    if (vis && !vis->is_null()) {
      if (!vis->is_object())
        return invalid_argument(where + ".visitors.configData: expected an object");
      prop.visitor = vis->as_object();
    }
    if (Status s = cycle(p, "collectCycle", where, prop.collect_cycle); !s) return s;
    if (Status s = cycle(p, "reportCycle", where, prop.report_cycle); !s) return s;
    if (auto* r = at(p, {"reportToCloud"}); r && !r->is_null()) {
      if (!r->is_bool()) return invalid_argument(where + ".reportToCloud: expected true or false");
      prop.report_to_cloud = r->as_bool();
    }
    if (auto* pm = at(p, {"pushMethod"}); pm && pm->is_object())
      if (Status s = push_method(*pm, where + ".pushMethod", prop); !s) return s;
    out.properties.push_back(std::move(prop));
  }
  return {};
}

Status validate_model(const json::value& model) {
  auto* ps = at(model, {"spec", "properties"});
  if (!ps || ps->is_null()) return {};
  if (!ps->is_array()) return invalid_argument("spec.properties: expected a list");
  std::set<std::string> seen;
  size_t i = 0;
  for (auto& p : ps->as_array()) {
    std::string where = "spec.properties[" + std::to_string(i++) + "]";
    if (!p.is_object()) return invalid_argument(where + ": expected an object");
    std::string name = text(at(p, {"name"}));
    if (name.empty()) return invalid_argument(where + ".name: required");
    if (!seen.insert(name).second)
      return invalid_argument(where + ".name: '" + name + "' is listed twice");
    const json::value* t = at(p, {"type"});
    const json::value* src = &p;
    std::string type;
    if (t && t->is_string()) {
      type = lower(std::string(t->as_string()));
    } else if (t && t->is_object() && t->as_object().size() == 1) {
      type = lower(std::string(t->as_object().begin()->key()));
      src = &t->as_object().begin()->value();
    } else if (t && !t->is_null()) {
      return invalid_argument(where + ".type: expected a type name such as INT");
    }
    static const std::set<std::string> kTypes = {"int",    "integer", "float", "double",
                                                 "string", "boolean", "bytes", "stream"};
    if (!type.empty() && !kTypes.count(type))
      return invalid_argument(where + ".type: '" + type +
                              "' is not one of INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES, STREAM");
    std::string access = text(at(*src, {"accessMode"}));
    if (!access.empty() && access != "ReadOnly" && access != "ReadWrite")
      return invalid_argument(where + ".accessMode: '" + access + "' is not ReadOnly or ReadWrite");
  }
  return {};
}

// ---- Fields ----

const json::value* Fields::get(std::string_view key, bool required) {
  if (!status_) return nullptr;
  auto* v = obj_.if_contains(key);
  if ((!v || v->is_null()) && required) fail(key, "required");
  return v && !v->is_null() ? v : nullptr;
}

void Fields::fail(std::string_view key, const std::string& what) {
  if (status_) status_ = invalid_argument(where_ + ": " + std::string(key) + ": " + what);
}

std::string Fields::str(std::string_view key, std::string_view fallback, bool required) {
  auto* v = get(key, required);
  if (!v) return std::string(fallback);
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64() || v->is_uint64() || v->is_double() || v->is_bool()) return json::serialize(*v);
  fail(key, "expected a string, got " + json::serialize(*v));
  return std::string(fallback);
}

int64_t Fields::integer(std::string_view key, int64_t fallback, int64_t min, int64_t max,
                        bool required) {
  auto* v = get(key, required);
  if (!v) return fallback;
  int64_t out = 0;
  bool ok = false;
  if (v->is_int64()) {
    out = v->as_int64();
    ok = true;
  } else if (v->is_uint64() && v->as_uint64() <= INT64_MAX) {
    out = static_cast<int64_t>(v->as_uint64());
    ok = true;
  } else if (v->is_double() && std::floor(v->as_double()) == v->as_double() &&
             std::fabs(v->as_double()) < 9e18) {
    out = static_cast<int64_t>(v->as_double());
    ok = true;
  } else if (v->is_string()) {
    auto s = v->as_string();
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    ok = ec == std::errc() && p == s.data() + s.size() && !s.empty();
  }
  if (!ok) {
    fail(key, "expected an integer, got " + json::serialize(*v));
    return fallback;
  }
  if (out < min || out > max) {
    fail(key, std::to_string(out) + " is out of range " + std::to_string(min) + "-" +
                  std::to_string(max));
    return fallback;
  }
  return out;
}

double Fields::number(std::string_view key, double fallback, bool required) {
  auto* v = get(key, required);
  if (!v) return fallback;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  if (v->is_string()) {
    double out = 0;
    if (parse_number(std::string(v->as_string()), "double", out)) return out;
  }
  fail(key, "expected a number, got " + json::serialize(*v));
  return fallback;
}

bool Fields::boolean(std::string_view key, bool fallback) {
  auto* v = get(key, false);
  if (!v) return fallback;
  if (v->is_bool()) return v->as_bool();
  if (v->is_string() && (v->as_string() == "true" || v->as_string() == "false"))
    return v->as_string() == "true";
  fail(key, "expected true or false, got " + json::serialize(*v));
  return fallback;
}

std::string Fields::one_of(std::string_view key, std::string_view fallback,
                           std::initializer_list<std::string_view> allowed) {
  std::string s = str(key, fallback, fallback.empty());
  if (!status_) return s;
  for (auto a : allowed)
    if (s == a) return s;
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  fail(key, "'" + s + "' is not one of " + list);
  return std::string(fallback);
}

// ---- values ----

std::string format_number(double v, std::string_view type) {
  if (type == "boolean" || type == "bool") return v != 0 ? "true" : "false";
  if (type == "int" || type == "integer") return std::to_string(std::llround(v));
  if (!std::isfinite(v)) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

Status parse_number(std::string_view text, std::string_view type, double& out) {
  if (type == "boolean" || type == "bool") {
    if (text == "true" || text == "1") return out = 1, Status{};
    if (text == "false" || text == "0") return out = 0, Status{};
    return invalid_argument("'" + std::string(text) + "' is not a boolean (true or false)");
  }
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v))
    return invalid_argument("'" + s + "' is not a number");
  if ((type == "int" || type == "integer") && std::floor(v) != v)
    return invalid_argument("'" + s + "' is not an integer");
  out = v;
  return {};
}

}  // namespace kedge::mapper
