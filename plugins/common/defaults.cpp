#include "defaults.h"

#include <boost/json.hpp>

namespace kedge::defaults {

namespace json = boost::json;

namespace {

json::object& obj_at(json::object& o, const char* key) {
  auto& v = o[key];
  if (!v.is_object()) v = json::object{};
  return v.as_object();
}

void set_default(json::object& o, const char* key, json::value v) {
  if (!o.contains(key) || o.at(key).is_null()) o[key] = std::move(v);
}

std::string image_tag(const std::string& image) {
  std::string ref = image.substr(0, image.find('@'));
  size_t slash = ref.rfind('/'), colon = ref.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) return {};
  return ref.substr(colon + 1);
}

void probe(json::object& c, const char* key) {
  auto* p = c.if_contains(key);
  if (!p || !p->is_object()) return;
  auto& o = p->as_object();
  set_default(o, "timeoutSeconds", 1);
  set_default(o, "periodSeconds", 10);
  set_default(o, "successThreshold", 1);
  set_default(o, "failureThreshold", 3);
  if (auto* h = o.if_contains("httpGet"); h && h->is_object())
    set_default(h->as_object(), "scheme", "HTTP");
}

void container(json::object& c) {
  std::string image = c.contains("image") && c.at("image").is_string()
                          ? std::string(c.at("image").as_string())
                          : std::string();
  // An image without a tag, or :latest, is pulled every time.
  bool digest = image.find('@') != std::string::npos;
  std::string tag = image_tag(image);
  set_default(c, "imagePullPolicy",
              !digest && (tag.empty() || tag == "latest") ? "Always" : "IfNotPresent");
  set_default(c, "terminationMessagePath", "/dev/termination-log");
  set_default(c, "terminationMessagePolicy", "File");
  set_default(c, "resources", json::object{});
  if (auto* ports = c.if_contains("ports"); ports && ports->is_array())
    for (auto& p : ports->as_array())
      if (p.is_object()) set_default(p.as_object(), "protocol", "TCP");
  if (auto* env = c.if_contains("env"); env && env->is_array())
    for (auto& e : env->as_array())
      if (auto* vf = e.is_object() ? e.as_object().if_contains("valueFrom") : nullptr;
          vf && vf->is_object())
        if (auto* fr = vf->as_object().if_contains("fieldRef"); fr && fr->is_object())
          set_default(fr->as_object(), "apiVersion", "v1");
  for (const char* p : {"livenessProbe", "readinessProbe", "startupProbe"}) probe(c, p);
}

void volume(json::object& v) {
  for (const char* src : {"configMap", "secret", "projected", "downwardAPI"})
    if (auto* s = v.if_contains(src); s && s->is_object())
      set_default(s->as_object(), "defaultMode", 420);  // 0644
  if (auto* h = v.if_contains("hostPath"); h && h->is_object())
    set_default(h->as_object(), "type", "");
}

void pod_spec(json::object& spec) {
  set_default(spec, "restartPolicy", "Always");
  set_default(spec, "terminationGracePeriodSeconds", 30);
  set_default(spec, "dnsPolicy", "ClusterFirst");
  set_default(spec, "securityContext", json::object{});
  set_default(spec, "schedulerName", "default-scheduler");
  set_default(spec, "enableServiceLinks", true);
  for (const char* list : {"containers", "initContainers"})
    if (auto* cs = spec.if_contains(list); cs && cs->is_array())
      for (auto& c : cs->as_array())
        if (c.is_object()) container(c.as_object());
  if (auto* vs = spec.if_contains("volumes"); vs && vs->is_array())
    for (auto& v : vs->as_array())
      if (v.is_object()) volume(v.as_object());
}

// The DefaultTolerationSeconds admission plugin: a pod stays 300 s on a
// node that is not ready or unreachable before it is evicted.
void default_tolerations(json::object& spec) {
  auto& t = spec["tolerations"];
  if (!t.is_array()) t = json::array{};
  auto& list = t.as_array();
  for (const char* key : {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}) {
    bool have = false;
    for (auto& e : list)
      if (e.is_object() && e.as_object().contains("key") && e.at("key") == key) have = true;
    if (!have)
      list.push_back(json::object{{"key", key},
                                  {"operator", "Exists"},
                                  {"effect", "NoExecute"},
                                  {"tolerationSeconds", 300}});
  }
}

json::object* spec_at(json::value& obj, std::initializer_list<const char*> path) {
  json::value* v = &obj;
  for (auto* k : path) {
    if (!v->is_object()) return nullptr;
    v = v->as_object().if_contains(k);
    if (!v) return nullptr;
  }
  return v->is_object() ? &v->as_object() : nullptr;
}

}  // namespace

void apply(const std::string& kind, json::value& obj) {
  if (!obj.is_object()) return;
  if (kind == "Pod") {
    auto& spec = obj_at(obj.as_object(), "spec");
    pod_spec(spec);
    default_tolerations(spec);
    set_default(spec, "priority", 0);
    set_default(spec, "preemptionPolicy", "PreemptLowerPriority");
    auto& status = obj_at(obj.as_object(), "status");
    set_default(status, "phase", "Pending");
    return;
  }
  if (kind == "Deployment" || kind == "ReplicaSet" || kind == "StatefulSet" ||
      kind == "DaemonSet" || kind == "Job") {
    if (auto* spec = spec_at(obj, {"spec", "template", "spec"})) pod_spec(*spec);
    return;
  }
  if (kind == "Service") {
    auto& spec = obj_at(obj.as_object(), "spec");
    set_default(spec, "type", "ClusterIP");
    set_default(spec, "sessionAffinity", "None");
    if (auto* ports = spec.if_contains("ports"); ports && ports->is_array())
      for (auto& p : ports->as_array())
        if (p.is_object()) {
          auto& po = p.as_object();
          set_default(po, "protocol", "TCP");
          if (po.contains("port")) set_default(po, "targetPort", po.at("port"));
        }
  }
}

}  // namespace kedge::defaults
