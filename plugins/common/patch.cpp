#include "patch.h"

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace kedge::patch {

namespace json = boost::json;

json::value json_merge(const json::value& target, const json::value& patch) {
  if (!patch.is_object()) return patch;
  json::value result = target.is_object() ? target : json::object{};
  auto& r = result.as_object();
  for (auto& [k, v] : patch.as_object()) {
    if (v.is_null()) {
      r.erase(k);
    } else {
      auto it = r.find(k);
      r[k] = json_merge(it == r.end() ? json::value() : it->value(), v);
    }
  }
  return result;
}

namespace {

// List fields with a patch merge key (k8s.io/api `patchStrategy:"merge"`
// `patchMergeKey:"..."`), as paths of field names below the pod spec.
// An empty key: a list of primitives merged as a set.
const std::map<std::string, std::string>& pod_spec_lists() {
  static const std::map<std::string, std::string> m = {
      {"containers", "name"},
      {"initContainers", "name"},
      {"ephemeralContainers", "name"},
      {"volumes", "name"},
      {"imagePullSecrets", "name"},
      {"hostAliases", "ip"},
      {"topologySpreadConstraints", "topologyKey"},
      {"containers.env", "name"},
      {"containers.ports", "containerPort"},
      {"containers.volumeMounts", "mountPath"},
      {"containers.volumeDevices", "devicePath"},
      {"initContainers.env", "name"},
      {"initContainers.ports", "containerPort"},
      {"initContainers.volumeMounts", "mountPath"},
      {"initContainers.volumeDevices", "devicePath"},
      {"ephemeralContainers.env", "name"},
      {"ephemeralContainers.volumeMounts", "mountPath"},
  };
  return m;
}

// Where a kind keeps its pod template's spec.
std::optional<std::string> pod_spec_prefix(const std::string& kind) {
  if (kind == "Pod") return "spec.";
  if (kind == "PodTemplate") return "template.spec.";
  if (kind == "Deployment" || kind == "ReplicaSet" || kind == "StatefulSet" ||
      kind == "DaemonSet" || kind == "Job" || kind == "ReplicationController")
    return "spec.template.spec.";
  if (kind == "CronJob") return "spec.jobTemplate.spec.template.spec.";
  return std::nullopt;
}

// The merge key of the list at `path` in an object of `kind`; nullopt: the
// list is replaced whole.
std::optional<std::string> merge_key(const std::string& kind, const std::string& path) {
  if (path == "metadata.finalizers") return "";
  if (path == "metadata.ownerReferences") return "uid";
  if (auto p = pod_spec_prefix(kind); p && path.rfind(*p, 0) == 0) {
    auto& m = pod_spec_lists();
    if (auto it = m.find(path.substr(p->size())); it != m.end()) return it->second;
  }
  if (kind == "Pod") {
    if (path == "status.conditions") return "type";
    if (path == "status.podIPs") return "ip";
  }
  if (kind == "Node") {
    if (path == "status.conditions" || path == "status.addresses") return "type";
    if (path == "spec.podCIDRs") return "";
  }
  if (kind == "Service" && path == "spec.ports") return "port";
  if ((kind == "Deployment" || kind == "ReplicaSet" || kind == "StatefulSet" ||
       kind == "DaemonSet" || kind == "Job") &&
      path == "status.conditions")
    return "type";
  return std::nullopt;
}

constexpr std::string_view kPatch = "$patch";
constexpr std::string_view kRetainKeys = "$retainKeys";
constexpr std::string_view kOrder = "$setElementOrder/";
constexpr std::string_view kDeletePrimitive = "$deleteFromPrimitiveList/";

class Merger {
 public:
  explicit Merger(std::string kind) : kind_(std::move(kind)) {}

  // nullopt: the map is deleted ($patch: delete).
  std::optional<json::value> map(const json::value& target, const json::object& patch,
                                 const std::string& path) {
    if (auto* d = patch.if_contains(kPatch)) {
      std::string v = d->is_string() ? std::string(d->as_string()) : std::string();
      if (v == "delete") return std::nullopt;
      if (v == "replace") {
        json::object out = strip(patch);
        return json::value(std::move(out));
      }
      if (v != "merge") return fail(path, "$patch: '" + v + "' is not replace, delete or merge");
    }
    json::object out = target.is_object() ? target.as_object() : json::object{};
    std::map<std::string, json::array> orders, removals;
    for (auto& [k, v] : patch) {
      std::string key(k);
      std::string child = path.empty() ? key : path + "." + key;
      if (key == kPatch || key == kRetainKeys) continue;
      if (key.rfind(kOrder, 0) == 0 || key.rfind(kDeletePrimitive, 0) == 0) {
        if (!v.is_array()) return fail(child, "must be a list");
        (key.rfind(kOrder, 0) == 0 ? orders[key.substr(kOrder.size())]
                                   : removals[key.substr(kDeletePrimitive.size())]) = v.as_array();
        continue;
      }
      if (v.is_null()) {
        out.erase(key);
        continue;
      }
      auto* cur = out.if_contains(key);
      if (v.is_object()) {
        auto merged = map(cur ? *cur : json::value(), v.as_object(), child);
        if (!status_) return std::nullopt;
        if (merged)
          out[key] = std::move(*merged);
        else
          out.erase(key);
      } else if (v.is_array()) {
        auto mk = merge_key(kind_, child);
        if (!mk) {
          out[key] = strip_list(v.as_array());
        } else {
          out[key] = list(cur && cur->is_array() ? cur->as_array() : json::array{}, v.as_array(),
                          *mk, child);
          if (!status_) return std::nullopt;
        }
      } else {
        out[key] = v;
      }
    }
    for (auto& [field, gone] : removals)
      if (auto* l = out.if_contains(field); l && l->is_array()) {
        json::array kept;
        for (auto& e : l->as_array())
          if (std::find(gone.begin(), gone.end(), e) == gone.end()) kept.push_back(e);
        *l = std::move(kept);
      }
    for (auto& [field, order] : orders)
      if (auto* l = out.if_contains(field); l && l->is_array())
        reorder(l->as_array(), order, merge_key(kind_, path.empty() ? field : path + "." + field));
    if (auto* rk = patch.if_contains(kRetainKeys)) {
      if (!rk->is_array()) return fail(path, "$retainKeys must be a list");
      std::set<std::string> keep;
      for (auto& k : rk->as_array())
        if (k.is_string()) keep.insert(std::string(k.as_string()));
      for (auto it = out.begin(); it != out.end();)
        it = keep.count(std::string(it->key())) ? std::next(it) : out.erase(it);
    }
    return json::value(std::move(out));
  }

  kedge::Status status() const { return status_; }

 private:
  std::optional<json::value> fail(const std::string& path, const std::string& why) {
    if (status_) status_ = kedge::invalid_argument((path.empty() ? "" : path + ": ") + why);
    return std::nullopt;
  }

  // The patch's directives go nowhere near the stored object.
  static json::object strip(const json::object& o) {
    json::object out;
    for (auto& [k, v] : o) {
      std::string_view key = k;
      if (key.size() && key[0] == '$') continue;
      out[k] = v.is_object()  ? json::value(strip(v.as_object()))
               : v.is_array() ? json::value(strip_list(v.as_array()))
                              : v;
    }
    return out;
  }
  static json::array strip_list(const json::array& a) {
    json::array out;
    for (auto& e : a) out.push_back(e.is_object() ? json::value(strip(e.as_object())) : e);
    return out;
  }

  json::array list(const json::array& target, const json::array& patch, const std::string& key,
                   const std::string& path) {
    if (key.empty()) {  // a set of primitives
      json::array out = target;
      for (auto& e : patch)
        if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
      return out;
    }
    for (auto& e : patch)
      if (auto* o = e.if_object();
          o && o->size() == 1 && o->contains(kPatch) && o->at(kPatch) == json::value("replace")) {
        json::array out;
        for (auto& x : patch)
          if (&x != &e) out.push_back(x.is_object() ? json::value(strip(x.as_object())) : x);
        return out;
      }
    json::array out = target;
    for (auto& e : patch) {
      if (!e.is_object()) {
        fail(path, "elements of this list are objects merged by '" + key + "'");
        return out;
      }
      auto& o = e.as_object();
      const json::value* k = o.if_contains(key);
      auto it = k ? std::find_if(out.begin(), out.end(),
                                 [&](const json::value& x) {
                                   auto* xo = x.if_object();
                                   auto* xk = xo ? xo->if_contains(key) : nullptr;
                                   return xk && *xk == *k;
                                 })
                  : out.end();
      auto* d = o.if_contains(kPatch);
      if (d && *d == json::value("delete")) {
        if (it != out.end()) out.erase(it);
        continue;
      }
      auto merged = map(it != out.end() ? *it : json::value(), o, path);
      if (!status_) return out;
      if (!merged) {
        if (it != out.end()) out.erase(it);
      } else if (it != out.end()) {
        *it = std::move(*merged);
      } else {
        out.push_back(std::move(*merged));
      }
    }
    return out;
  }

  // `$setElementOrder`: the listed elements in that order, others after.
  static void reorder(json::array& l, const json::array& order,
                      const std::optional<std::string>& key) {
    auto rank = [&](const json::value& e) -> size_t {
      for (size_t i = 0; i < order.size(); ++i) {
        if (key && !key->empty()) {
          auto* eo = e.if_object();
          auto* oo = order[i].if_object();
          if (eo && oo && eo->contains(*key) && oo->contains(*key) && eo->at(*key) == oo->at(*key))
            return i;
        } else if (e == order[i]) {
          return i;
        }
      }
      return order.size();
    };
    std::vector<std::pair<size_t, json::value>> ranked;
    for (auto& e : l) ranked.emplace_back(rank(e), e);
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](auto& a, auto& b) { return a.first < b.first; });
    l.clear();
    for (auto& [r, e] : ranked) l.push_back(std::move(e));
  }

  std::string kind_;
  kedge::Status status_;
};

}  // namespace

kedge::Status strategic_merge(const json::value& target, const json::value& patch,
                              const std::string& kind, json::value& out) {
  if (!patch.is_object()) return kedge::invalid_argument("a strategic merge patch is an object");
  Merger m(kind);
  auto r = m.map(target, patch.as_object(), "");
  if (!m.status()) return m.status();
  out = r ? std::move(*r) : json::value(json::object{});
  return {};
}

}  // namespace kedge::patch
