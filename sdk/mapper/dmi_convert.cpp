#include "dmi_convert.h"

#include <google/protobuf/wrappers.pb.h>

#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <concepts>
#include <map>

namespace kedge::dmi {

namespace json = boost::json;
namespace gp = google::protobuf;

namespace {

using Path = std::initializer_list<std::string_view>;

const json::value* at(const json::object& o, Path path) {
  const json::object* cur = &o;
  const json::value* v = nullptr;
  for (auto p : path) {
    if (!cur || !(v = cur->if_contains(p))) return nullptr;
    cur = v->if_object();
  }
  return v;
}
const json::value* at(const json::value& v, Path path) {
  auto* o = v.if_object();
  return o ? at(*o, path) : nullptr;
}
// No json::value temporaries from objects: the pointers returned point into
// the caller's document.
template <class T>
concept Doc = std::same_as<T, json::value> || std::same_as<T, json::object>;
template <Doc D>
std::string str(const D& v, Path path) {
  auto* x = at(v, path);
  if (!x || x->is_null()) return {};
  if (x->is_string()) return std::string(x->as_string());
  return json::serialize(*x);
}
template <Doc D>
int64_t num(const D& v, Path path) {
  auto* x = at(v, path);
  if (!x) return 0;
  if (x->is_int64()) return x->as_int64();
  if (x->is_uint64()) return static_cast<int64_t>(x->as_uint64());
  if (x->is_double()) return static_cast<int64_t>(x->as_double());
  if (x->is_string()) {
    int64_t out = 0;
    auto s = x->as_string();
    std::from_chars(s.data(), s.data() + s.size(), out);
    return out;
  }
  return 0;
}
template <Doc D>
bool flag(const D& v, Path path) {
  auto* x = at(v, path);
  return x && x->is_bool() && x->as_bool();
}
template <Doc D>
const json::object* obj(const D& v, Path path) {
  auto* x = at(v, path);
  return x ? x->if_object() : nullptr;
}

void twin_property(const json::value* in, pb::TwinProperty& out) {
  if (!in || !in->is_object()) return;
  out.set_value(str(*in, {"value"}));
  if (auto* md = obj(*in, {"metadata"}))
    for (auto& [k, v] : *md)
      (*out.mutable_metadata())[std::string(k)] =
          v.is_string() ? std::string(v.as_string()) : json::serialize(v);
}
json::object twin_property_json(const pb::TwinProperty& p) {
  json::object md;
  for (auto& [k, v] : p.metadata()) md[k] = v;
  json::object o{{"value", p.value()}};
  if (!md.empty()) o["metadata"] = std::move(md);
  return o;
}

}  // namespace

void to_customized(const json::object& in, pb::CustomizedValue& out) {
  auto& data = *out.mutable_data();
  for (auto& [k, v] : in) {
    gp::Any any;
    if (v.is_string()) {
      gp::StringValue w;
      w.set_value(std::string(v.as_string()));
      any.PackFrom(w);
    } else if (v.is_bool()) {
      gp::BoolValue w;
      w.set_value(v.as_bool());
      any.PackFrom(w);
    } else if (v.is_int64() || v.is_uint64()) {
      int64_t i = v.is_int64() ? v.as_int64() : static_cast<int64_t>(v.as_uint64());
      if (i >= INT32_MIN && i <= INT32_MAX) {
        gp::Int32Value w;
        w.set_value(static_cast<int32_t>(i));
        any.PackFrom(w);
      } else {
        gp::Int64Value w;
        w.set_value(i);
        any.PackFrom(w);
      }
    } else if (v.is_double()) {
      // FloatValue: what KubeEdge's mapper framework decodes (it has no
      // DoubleValue case); from_customized reads it back at float's
      // shortest precision, so 0.1 stays 0.1.
      gp::FloatValue w;
      w.set_value(static_cast<float>(v.as_double()));
      any.PackFrom(w);
    } else if (v.is_null()) {
      continue;
    } else {
      gp::StringValue w;
      w.set_value(json::serialize(v));
      any.PackFrom(w);
    }
    data[std::string(k)] = std::move(any);
  }
}

json::object from_customized(const pb::CustomizedValue& in) {
  json::object out;
  // Sorted by key: a protobuf map's order is not stable, and the object's
  // text is compared to tell changes.
  std::map<std::string, const gp::Any*> sorted;
  for (auto& [k, any] : in.data()) sorted[k] = &any;
  for (auto& [k, anyp] : sorted) {
    const gp::Any& any = *anyp;
    if (gp::StringValue w; any.Is<gp::StringValue>() && any.UnpackTo(&w)) {
      out[k] = w.value();
    } else if (gp::BoolValue b; any.Is<gp::BoolValue>() && any.UnpackTo(&b)) {
      out[k] = b.value();
    } else if (gp::Int32Value i; any.Is<gp::Int32Value>() && any.UnpackTo(&i)) {
      out[k] = static_cast<int64_t>(i.value());
    } else if (gp::Int64Value l; any.Is<gp::Int64Value>() && any.UnpackTo(&l)) {
      out[k] = l.value();
    } else if (gp::UInt32Value u; any.Is<gp::UInt32Value>() && any.UnpackTo(&u)) {
      out[k] = static_cast<int64_t>(u.value());
    } else if (gp::UInt64Value ul; any.Is<gp::UInt64Value>() && any.UnpackTo(&ul)) {
      out[k] = ul.value();
    } else if (gp::FloatValue f; any.Is<gp::FloatValue>() && any.UnpackTo(&f)) {
      char buf[32];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, f.value());
      double d = f.value();
      if (ec == std::errc()) std::from_chars(buf, p, d);
      out[k] = d;
    } else if (gp::DoubleValue d2; any.Is<gp::DoubleValue>() && any.UnpackTo(&d2)) {
      out[k] = d2.value();
    }
    // Other message types: not ours to interpret; left out.
  }
  return out;
}

pb::Device device_to_proto(const json::value& d) {
  pb::Device out;
  out.set_name(str(d, {"metadata", "name"}));
  std::string ns = str(d, {"metadata", "namespace"});
  out.set_namespace_(ns.empty() ? "default" : ns);
  auto* spec = out.mutable_spec();
  spec->set_devicemodelreference(str(d, {"spec", "deviceModelRef", "name"}));
  auto* proto = spec->mutable_protocol();
  std::string pname = str(d, {"spec", "protocol", "protocolName"});
  const json::object* cfg = obj(d, {"spec", "protocol", "configData"});
  if (pname.empty()) {  // v1alpha2 blocks
    for (const char* k : {"modbus", "opcua", "bluetooth"})
      if (auto* b = obj(d, {"spec", "protocol", k})) {
        pname = k;
        cfg = b;
        break;
      }
    if (pname.empty()) {
      pname = str(d, {"spec", "protocol", "customizedProtocol", "protocolName"});
      cfg = obj(d, {"spec", "protocol", "customizedProtocol", "configData"});
    }
  }
  proto->set_protocolname(pname);
  if (cfg) to_customized(*cfg, *proto->mutable_configdata());
  if (auto* ps = at(d, {"spec", "properties"}); ps && ps->is_array())
    for (auto& p : ps->as_array()) {
      auto* dp = spec->add_properties();
      dp->set_name(str(p, {"name"}));
      if (auto* des = at(p, {"desired"})) twin_property(des, *dp->mutable_desired());
      if (auto* v = obj(p, {"visitors"})) {
        auto* vc = dp->mutable_visitors();
        vc->set_protocolname(str(*v, {"protocolName"}));
        if (auto* c = obj(*v, {"configData"})) to_customized(*c, *vc->mutable_configdata());
      }
      dp->set_reportcycle(num(p, {"reportCycle"}));
      dp->set_collectcycle(num(p, {"collectCycle"}));
      dp->set_reporttocloud(flag(p, {"reportToCloud"}));
      if (auto* pm = obj(p, {"pushMethod"})) {
        auto* out_pm = dp->mutable_pushmethod();
        if (auto* h = obj(*pm, {"http"})) {
          auto* x = out_pm->mutable_http();
          std::string host = str(*h, {"hostName"});
          x->set_hostname(host.empty() ? str(*h, {"hostname"}) : host);
          x->set_port(num(*h, {"port"}));
          std::string path = str(*h, {"requestPath"});
          x->set_requestpath(path.empty() ? str(*h, {"requestpath"}) : path);
          x->set_timeout(num(*h, {"timeout"}));
        }
        if (auto* m = obj(*pm, {"mqtt"})) {
          auto* x = out_pm->mutable_mqtt();
          x->set_address(str(*m, {"address"}));
          x->set_topic(str(*m, {"topic"}));
          x->set_qos(static_cast<int32_t>(num(*m, {"qos"})));
          x->set_retained(flag(*m, {"retained"}));
        }
        if (auto* o = obj(*pm, {"otel"}))
          out_pm->mutable_otel()->set_endpointurl(str(*o, {"endpointURL"}));
      }
    }
  if (auto* ms = at(d, {"spec", "methods"}); ms && ms->is_array())
    for (auto& m : ms->as_array()) {
      auto* dm = spec->add_methods();
      dm->set_name(str(m, {"name"}));
      dm->set_description(str(m, {"description"}));
      if (auto* pn = at(m, {"propertyNames"}); pn && pn->is_array())
        for (auto& n : pn->as_array())
          if (n.is_string()) dm->add_propertynames(std::string(n.as_string()));
    }
  if (auto* tw = at(d, {"status", "twins"}); tw && tw->is_array())
    for (auto& t : tw->as_array()) {
      auto* x = out.mutable_status()->add_twins();
      x->set_propertyname(str(t, {"propertyName"}));
      twin_property(at(t, {"reported"}), *x->mutable_reported());
      twin_property(at(t, {"observedDesired"}), *x->mutable_observeddesired());
    }
  return out;
}

pb::DeviceModel model_to_proto(const json::value& m) {
  pb::DeviceModel out;
  out.set_name(str(m, {"metadata", "name"}));
  std::string ns = str(m, {"metadata", "namespace"});
  out.set_namespace_(ns.empty() ? "default" : ns);
  if (auto* ps = at(m, {"spec", "properties"}); ps && ps->is_array())
    for (auto& p : ps->as_array()) {
      auto* mp = out.mutable_spec()->add_properties();
      mp->set_name(str(p, {"name"}));
      mp->set_description(str(p, {"description"}));
      const json::value* src = &p;
      std::string type = str(p, {"type"});
      if (auto* t = obj(p, {"type"}); t && !t->empty()) {  // v1alpha2: {int: {...}}
        type = std::string(t->begin()->key());
        src = &t->begin()->value();
      }
      for (auto& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      mp->set_type(type);
      mp->set_accessmode(str(*src, {"accessMode"}));
      mp->set_minimum(str(*src, {"minimum"}));
      mp->set_maximum(str(*src, {"maximum"}));
      mp->set_unit(str(*src, {"unit"}));
    }
  return out;
}

json::value device_from_proto(const pb::Device& d) {
  const auto& s = d.spec();
  json::object protocol{{"protocolName", s.protocol().protocolname()}};
  if (s.protocol().has_configdata())
    protocol["configData"] = from_customized(s.protocol().configdata());
  json::array props;
  for (auto& p : s.properties()) {
    json::object o{{"name", p.name()}};
    if (p.has_desired()) o["desired"] = twin_property_json(p.desired());
    if (p.has_visitors()) {
      json::object v{{"protocolName", p.visitors().protocolname()}};
      if (p.visitors().has_configdata())
        v["configData"] = from_customized(p.visitors().configdata());
      o["visitors"] = std::move(v);
    }
    if (p.reportcycle()) o["reportCycle"] = p.reportcycle();
    if (p.collectcycle()) o["collectCycle"] = p.collectcycle();
    if (p.reporttocloud()) o["reportToCloud"] = true;
    if (p.has_pushmethod()) {
      json::object pm;
      if (p.pushmethod().has_http()) {
        auto& h = p.pushmethod().http();
        pm["http"] = json::object{{"hostName", h.hostname()},
                                  {"port", h.port()},
                                  {"requestPath", h.requestpath()},
                                  {"timeout", h.timeout()}};
      }
      if (p.pushmethod().has_mqtt()) {
        auto& m = p.pushmethod().mqtt();
        pm["mqtt"] = json::object{{"address", m.address()},
                                  {"topic", m.topic()},
                                  {"qos", m.qos()},
                                  {"retained", m.retained()}};
      }
      if (p.pushmethod().has_otel())
        pm["otel"] = json::object{{"endpointURL", p.pushmethod().otel().endpointurl()}};
      o["pushMethod"] = std::move(pm);
    }
    props.push_back(std::move(o));
  }
  json::object spec{{"deviceModelRef", json::object{{"name", s.devicemodelreference()}}},
                    {"protocol", std::move(protocol)},
                    {"properties", std::move(props)}};
  if (s.methods_size()) {
    json::array ms;
    for (auto& m : s.methods()) {
      json::array names;
      for (auto& n : m.propertynames()) names.push_back(json::string(n));
      ms.push_back(json::object{
          {"name", m.name()}, {"description", m.description()}, {"propertyNames", names}});
    }
    spec["methods"] = std::move(ms);
  }
  return json::object{
      {"apiVersion", "devices.kubeedge.io/v1beta1"},
      {"kind", "Device"},
      {"metadata",
       json::object{{"name", d.name()},
                    {"namespace", d.namespace_().empty() ? "default" : d.namespace_()}}},
      {"spec", std::move(spec)}};
}

json::value model_from_proto(const pb::DeviceModel& m) {
  json::array props;
  for (auto& p : m.spec().properties()) {
    json::object o{{"name", p.name()}, {"type", p.type()}};
    if (!p.description().empty()) o["description"] = p.description();
    if (!p.accessmode().empty()) o["accessMode"] = p.accessmode();
    if (!p.minimum().empty()) o["minimum"] = p.minimum();
    if (!p.maximum().empty()) o["maximum"] = p.maximum();
    if (!p.unit().empty()) o["unit"] = p.unit();
    props.push_back(std::move(o));
  }
  return json::object{
      {"apiVersion", "devices.kubeedge.io/v1beta1"},
      {"kind", "DeviceModel"},
      {"metadata",
       json::object{{"name", m.name()},
                    {"namespace", m.namespace_().empty() ? "default" : m.namespace_()}}},
      {"spec", json::object{{"properties", std::move(props)}}}};
}

json::object status_to_json(const pb::DeviceStatus& s) {
  json::array twins;
  for (auto& t : s.twins()) {
    json::object o{{"propertyName", t.propertyname()}};
    if (t.has_reported()) o["reported"] = twin_property_json(t.reported());
    if (t.has_observeddesired()) o["observedDesired"] = twin_property_json(t.observeddesired());
    twins.push_back(std::move(o));
  }
  return {{"twins", std::move(twins)}};
}

pb::DeviceStatus status_from_json(const json::value& v) {
  pb::DeviceStatus s;
  if (auto* tw = at(v, {"twins"}); tw && tw->is_array())
    for (auto& t : tw->as_array()) {
      auto* x = s.add_twins();
      x->set_propertyname(str(t, {"propertyName"}));
      if (auto* r = at(t, {"reported"})) twin_property(r, *x->mutable_reported());
      if (auto* o = at(t, {"observedDesired"})) twin_property(o, *x->mutable_observeddesired());
    }
  return s;
}

}  // namespace kedge::dmi
