#include "env.h"

#include "kedge/common/json.h"
#include "kedge/common/pki.h"

namespace kedge::edged {

namespace json = boost::json;
using kedge::json_path::find;
constexpr auto& str = kedge::json_path::scalar_text;
constexpr auto& arr = kedge::json_path::array_at;

namespace {
bool flag(const json::value* v) { return v && v->is_bool() && v->as_bool(); }
}  // namespace

ObjectData object_data(const std::string& kind, const std::string& name, const json::value& obj,
                       bool binary) {
  ObjectData out;
  for (const char* field : {"data", "binaryData"}) {
    bool is_binary = std::string_view(field) == "binaryData";
    if (is_binary && !binary) continue;
    auto* d = find(obj, {field});
    if (!d || !d->is_object()) continue;
    for (auto& [k, v] : d->as_object()) {
      std::string text = v.is_string() ? std::string(v.as_string()) : "";
      if (kind == "secret" || is_binary) {
        auto dec = kedge::pki::base64_decode(text);
        if (!dec.ok()) {
          out.status = kedge::invalid_argument(kind + " \"" + name + "\": key " + std::string(k) +
                                               " is not base64");
          return out;
        }
        text = std::move(dec.value);
      }
      out.value[std::string(k)] = std::move(text);
    }
  }
  return out;
}

EnvResult container_env(const json::value& c, const PodFields& pod, const ObjectLookup& lookup) {
  EnvResult r;
  auto fail = [&r](std::string why) {
    r.value.clear();
    r.status = kedge::invalid_argument(std::move(why));
    return r;
  };
  for (auto& ef : arr(c, {"envFrom"})) {
    bool secret = find(ef, {"secretRef"}) != nullptr;
    const char* ref = secret ? "secretRef" : "configMapRef";
    std::string name = str(ef, {ref, "name"}), kind = secret ? "secret" : "configmap";
    auto obj = lookup(kind, name);
    if (!obj) {
      if (flag(find(ef, {ref, "optional"}))) continue;
      return fail(kind + " \"" + name + "\" not found (envFrom)");
    }
    auto data = object_data(kind, name, *obj, false);
    if (!data.ok()) return fail(data.status.message());
    for (auto& [k, v] : data.value) r.value.push_back({str(ef, {"prefix"}) + k, v});
  }
  for (auto& e : arr(c, {"env"})) {
    std::string name = str(e, {"name"});
    auto* vf = find(e, {"valueFrom"});
    if (!vf) {
      r.value.push_back({name, str(e, {"value"})});
      continue;
    }
    if (auto* fr = find(*vf, {"fieldRef"})) {
      std::string path = str(*fr, {"fieldPath"});
      std::string val = path == "metadata.name"        ? pod.name
                        : path == "metadata.namespace" ? pod.ns
                        : path == "metadata.uid"       ? pod.uid
                        : path == "spec.nodeName"      ? pod.node
                        : path == "status.podIP"       ? pod.pod_ip
                        : path == "status.hostIP"      ? pod.host_ip
                                                       : "";
      r.value.push_back({name, val});
      continue;
    }
    bool secret = find(*vf, {"secretKeyRef"}) != nullptr;
    auto* ref = find(*vf, {secret ? "secretKeyRef" : "configMapKeyRef"});
    if (!ref)
      return fail("env " + name +
                  ": valueFrom is not supported (fieldRef, configMapKeyRef, secretKeyRef are)");
    std::string kind = secret ? "secret" : "configmap";
    std::string obj_name = str(*ref, {"name"}), key = str(*ref, {"key"});
    std::optional<std::string> val;
    if (auto obj = lookup(kind, obj_name)) {
      auto data = object_data(kind, obj_name, *obj, false);
      if (!data.ok()) return fail("env " + name + ": " + data.status.message());
      if (auto it = data.value.find(key); it != data.value.end()) val = it->second;
    }
    if (val) {
      r.value.push_back({name, *val});
    } else if (!flag(find(*ref, {"optional"}))) {
      return fail("env " + name + ": " + kind + " \"" + obj_name + "\" has no key \"" + key + "\"");
    }
  }
  return r;
}

}  // namespace kedge::edged
