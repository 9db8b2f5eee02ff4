#include "columns.h"

#include <ctime>
#include <set>

#include "kedge/common/json.h"

namespace kedge::api {

namespace json = boost::json;

std::string age(const json::value& obj) {
  std::string ts;
  if (auto* md = obj.as_object().if_contains("metadata"))
    if (auto* c = md->as_object().if_contains("creationTimestamp"))
      if (c->is_string()) ts = std::string(c->as_string());
  std::tm tm{};
  if (ts.empty() || !strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) return "<unknown>";
  auto secs = static_cast<long>(std::difftime(std::time(nullptr), timegm(&tm)));
  if (secs < 0) secs = 0;
  if (secs < 120) return std::to_string(secs) + "s";
  if (secs < 7200) return std::to_string(secs / 60) + "m";
  if (secs < 172800) return std::to_string(secs / 3600) + "h";
  return std::to_string(secs / 86400) + "d";
}

namespace {

constexpr auto& at_value = kedge::json_path::find;
constexpr auto& at = kedge::json_path::scalar_text;

size_t count_of(const json::value& v, const char* field) {
  auto* o = v.if_object();
  if (!o) return 0;
  auto* f = o->if_contains(field);
  if (!f) return 0;
  if (f->is_object()) return f->as_object().size();
  if (f->is_array()) return f->as_array().size();
  return 0;
}

}  // namespace

std::vector<std::string> columns(const Resource& r, bool wide) {
  if (r.plural == "pods") {
    std::vector<std::string> h = {"NAME", "READY", "STATUS", "RESTARTS", "AGE"};
    if (wide) h.insert(h.end(), {"IP", "NODE"});
    return h;
  }
  if (r.plural == "nodes") return {"NAME", "STATUS", "ROLES", "AGE", "VERSION"};
  if (r.plural == "namespaces") return {"NAME", "STATUS", "AGE"};
  if (r.plural == "configmaps") return {"NAME", "DATA", "AGE"};
  if (r.plural == "secrets") return {"NAME", "TYPE", "DATA", "AGE"};
  if (r.plural == "services") return {"NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"};
  if (r.plural == "devices") {
    std::vector<std::string> h = {"NAME", "STATE", "READINGS", "AGE"};
    if (wide) h.insert(h.end(), {"MODEL", "NODE"});
    return h;
  }
  return {"NAME", "AGE"};
}

std::vector<std::string> row(const Resource& r, const json::value& o, bool wide) {
  std::string name = at(o, {"metadata", "name"});
  if (r.plural == "pods") {
    size_t total = 0, ready = 0;
    int64_t restarts = 0;
    if (auto* spec = o.as_object().if_contains("spec")) total = count_of(*spec, "containers");
    if (auto* st = o.as_object().if_contains("status"))
      if (auto* cs = st->as_object().if_contains("containerStatuses"); cs && cs->is_array())
        for (auto& c : cs->as_array()) {
          if (at(c, {"ready"}) == "true") ++ready;
          if (auto* rc = c.as_object().if_contains("restartCount"); rc && rc->is_int64())
            restarts += rc->as_int64();
        }
    std::string phase = at(o, {"status", "phase"});
    std::vector<std::string> row = {name, std::to_string(ready) + "/" + std::to_string(total),
                                    phase.empty() ? "Pending" : phase, std::to_string(restarts),
                                    age(o)};
    if (wide) {
      std::string ip = at(o, {"status", "podIP"}), node = at(o, {"spec", "nodeName"});
      row.push_back(ip.empty() ? "<none>" : ip);
      row.push_back(node.empty() ? "<none>" : node);
    }
    return row;
  }
  if (r.plural == "nodes") {
    std::string status = "Unknown";
    if (auto* st = o.as_object().if_contains("status"))
      if (auto* conds = st->as_object().if_contains("conditions"); conds && conds->is_array())
        for (auto& c : conds->as_array())
          if (at(c, {"type"}) == "Ready")
            status = at(c, {"status"}) == "True" ? "Ready" : "NotReady";
    std::set<std::string> role_set;  // sorted, as kubectl prints them
    if (auto* md = o.as_object().if_contains("metadata"))
      if (auto* l = md->as_object().if_contains("labels"); l && l->is_object())
        for (auto& [k, v] : l->as_object()) {
          std::string key(k);
          if (key.rfind("node-role.kubernetes.io/", 0) == 0) role_set.insert(key.substr(24));
        }
    std::string roles;
    for (auto& role : role_set) roles += (roles.empty() ? "" : ",") + role;
    std::string version = at(o, {"status", "nodeInfo", "kubeletVersion"});
    return {name, status, roles.empty() ? "<none>" : roles, age(o),
            version.empty() ? "<none>" : version};
  }
  if (r.plural == "namespaces") {
    std::string phase = at(o, {"status", "phase"});
    return {name, phase.empty() ? "Active" : phase, age(o)};
  }
  if (r.plural == "configmaps")
    return {name, std::to_string(count_of(o, "data") + count_of(o, "binaryData")), age(o)};
  if (r.plural == "secrets") {
    std::string type = at(o, {"type"});
    return {name, type.empty() ? "Opaque" : type, std::to_string(count_of(o, "data")), age(o)};
  }
  if (r.plural == "services") {
    std::string type = at(o, {"spec", "type"}), ip = at(o, {"spec", "clusterIP"}), ports;
    if (auto* spec = o.as_object().if_contains("spec"))
      if (auto* ps = spec->as_object().if_contains("ports"); ps && ps->is_array())
        for (auto& p : ps->as_array()) {
          std::string proto = at(p, {"protocol"});
          ports +=
              (ports.empty() ? "" : ",") + at(p, {"port"}) + "/" + (proto.empty() ? "TCP" : proto);
        }
    return {name, type.empty() ? "ClusterIP" : type, ip.empty() ? "<none>" : ip,
            ports.empty() ? "<none>" : ports, age(o)};
  }
  if (r.plural == "devices") {
    // The reported values from status.twins, as property=value.
    std::string readings;
    if (auto* st = o.as_object().if_contains("status"); st && st->is_object())
      if (auto* tw = st->as_object().if_contains("twins"); tw && tw->is_array())
        for (auto& t : tw->as_array()) {
          std::string v = at(t, {"reported", "value"});
          if (!v.empty())
            readings += (readings.empty() ? "" : ",") + at(t, {"propertyName"}) + "=" + v;
        }
    std::string state = at(o, {"status", "state"});
    std::vector<std::string> row = {name, state.empty() ? "<unknown>" : state,
                                    readings.empty() ? "<none>" : readings, age(o)};
    if (wide) {
      std::string node = at(o, {"spec", "nodeName"});
      if (node.empty())
        if (auto* sel = at_value(o, {"spec", "nodeSelector", "nodeSelectorTerms"});
            sel && sel->is_array() && !sel->as_array().empty())
          if (auto* ex = at_value(sel->as_array()[0], {"matchExpressions"});
              ex && ex->is_array() && !ex->as_array().empty())
            if (auto* vals = at_value(ex->as_array()[0], {"values"});
                vals && vals->is_array() && !vals->as_array().empty() &&
                vals->as_array()[0].is_string())
              node = vals->as_array()[0].as_string();
      std::string model = at(o, {"spec", "deviceModelRef", "name"});
      row.push_back(model.empty() ? "<none>" : model);
      row.push_back(node.empty() ? "<none>" : node);
    }
    return row;
  }
  return {name, age(o)};
}

}  // namespace kedge::api
