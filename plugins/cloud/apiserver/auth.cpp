// Service-account tokens and a minimal RBAC (api.h, class Auth).
//
// Tokens: HS256 JWTs signed with the apiserver's own secret
// (<data_dir>/apiserver/sa.key), with Kubernetes' claims — iss, sub
// (system:serviceaccount:<ns>:<name>), iat, exp and kubernetes.io
// {namespace, serviceaccount {name, uid}}. A token is good while it has not
// expired and its account still exists with the same UID.
//
// RBAC: rbac.authorization.k8s.io/v1 Roles, ClusterRoles, RoleBindings and
// ClusterRoleBindings, as Kubernetes evaluates them: a ClusterRoleBinding
// grants its ClusterRole everywhere; a RoleBinding grants its Role or
// ClusterRole in the binding's namespace. Subjects: ServiceAccount, User
// (system:serviceaccount:...), Group (system:serviceaccounts,
// system:serviceaccounts:<ns>, system:authenticated). Rules: verbs,
// apiGroups, resources (with "res/sub" and "*/sub" for subresources) and
// resourceNames; "*" matches anything. No aggregation, no nonResourceURLs.
#include <openssl/crypto.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>

#include "api.h"
#include "kedge/common/json.h"
#include "kedge/common/pki.h"

namespace kedge::api {

namespace json = boost::json;

namespace {

constexpr auto& str = kedge::json_path::string_at;

bool has(const json::value& list, const std::string& want, bool star = true) {
  auto* a = list.if_array();
  if (!a) return false;
  for (auto& v : *a)
    if (v.is_string() && (v.as_string() == want || (star && v.as_string() == "*"))) return true;
  return false;
}

bool rule_matches(const json::value& rule, const Attributes& a) {
  auto* r = rule.if_object();
  if (!r) return false;
  auto at = [&](const char* k) -> const json::value& {
    static const json::value kNull;
    auto* v = r->if_contains(k);
    return v ? *v : kNull;
  };
  if (!has(at("verbs"), a.verb)) return false;
  if (!has(at("apiGroups"), a.group)) return false;
  const json::value& res = at("resources");
  bool res_ok = a.subresource.empty()
                    ? has(res, a.resource)
                    : has(res, a.resource + "/" + a.subresource, false) ||
                          has(res, "*/" + a.subresource, false) || has(res, "*", false);
  if (!res_ok) return false;
  const json::value& names = at("resourceNames");
  if (names.is_array() && !names.as_array().empty())
    return !a.name.empty() && has(names, a.name, false);
  return true;
}

bool subject_matches(const json::value& subject, const Identity& who,
                     const std::string& binding_ns) {
  std::string kind = str(subject, {"kind"}), name = str(subject, {"name"});
  if (kind == "ServiceAccount") {
    std::string ns = str(subject, {"namespace"});
    if (ns.empty()) ns = binding_ns;
    return name == who.name && ns == who.ns;
  }
  if (kind == "User") return name == who.username();
  if (kind == "Group")
    return name == "system:authenticated" || name == "system:serviceaccounts" ||
           name == "system:serviceaccounts:" + who.ns;
  return false;
}

}  // namespace

std::string Identity::username() const {
  switch (kind) {
    case Kind::kServiceAccount: return "system:serviceaccount:" + ns + ":" + name;
    case Kind::kNode: return "system:node:" + name;
    case Kind::kAdmin: return "admin";
    default: return "system:anonymous";
  }
}

std::string Auth::issue(const std::string& ns, const std::string& name, const std::string& uid,
                        int64_t exp) const {
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  json::object claims{
      {"iss", "kedge"},
      {"sub", "system:serviceaccount:" + ns + ":" + name},
      {"iat", now},
      {"exp", exp},
      {"kubernetes.io",
       json::object{{"namespace", ns},
                    {"serviceaccount", json::object{{"name", name}, {"uid", uid}}}}}};
  return pki::jwt_hs256_sign(secret_, json::serialize(claims));
}

bool Auth::authenticate(std::string_view token, Identity& who, std::string& why) const {
  auto p = pki::jwt_verify_payload(secret_, token, std::chrono::system_clock::now());
  if (!p.ok()) {
    why = "invalid bearer token: " + p.status.message();
    return false;
  }
  json::error_code ec;
  json::value c = json::parse(p.value, ec);
  std::string ns = str(c, {"kubernetes.io", "namespace"});
  std::string name = str(c, {"kubernetes.io", "serviceaccount", "name"});
  std::string uid = str(c, {"kubernetes.io", "serviceaccount", "uid"});
  if (ec || ns.empty() || name.empty() || uid.empty()) {
    why = "invalid bearer token: not a service account token";
    return false;
  }
  auto sa = store_.get("/registry/serviceaccounts/" + ns + "/" + name);
  if (!sa.ok()) {
    why = "invalid bearer token: service account " + ns + "/" + name +
          (sa.status.code() == Code::kNotFound ? " has been deleted"
                                               : " cannot be read: " + sa.status.message());
    return false;
  }
  json::value o = json::parse(sa.value.value, ec);
  if (ec || str(o, {"metadata", "uid"}) != uid) {
    why = "invalid bearer token: service account " + ns + "/" + name +
          " was re-created (its UID no longer matches)";
    return false;
  }
  who.kind = Identity::Kind::kServiceAccount;
  who.name = name;
  who.ns = ns;
  who.uid = uid;
  return true;
}

Decision Auth::authorize(const Identity& who, const Attributes& a) const {
  if (who.kind == Identity::Kind::kAdmin) return {true, "administrator"};
  if (who.kind != Identity::Kind::kServiceAccount) return {false, "not a service account"};
  auto parse = [](const std::string& text) {
    json::error_code ec;
    json::value v = json::parse(text, ec);
    return ec ? json::value() : v;
  };
  auto role_allows = [&](const json::value& ref, const std::string& binding_ns) {
    std::string kind = str(ref, {"kind"}), name = str(ref, {"name"});
    std::string key = kind == "ClusterRole" ? "/registry/clusterroles/" + name
                      : kind == "Role" && !binding_ns.empty()
                          ? "/registry/roles/" + binding_ns + "/" + name
                          : std::string();
    if (key.empty()) return false;
    auto r = store_.get(key);
    if (!r.ok()) return false;
    json::value role = parse(r.value.value);
    auto* rules = role.is_object() ? role.as_object().if_contains("rules") : nullptr;
    if (!rules || !rules->is_array()) return false;
    for (auto& rule : rules->as_array())
      if (rule_matches(rule, a)) return true;
    return false;
  };
  auto bound = [&](const json::value& b, const std::string& binding_ns) {
    auto* subjects = b.is_object() ? b.as_object().if_contains("subjects") : nullptr;
    if (!subjects || !subjects->is_array()) return false;
    for (auto& s : subjects->as_array())
      if (subject_matches(s, who, binding_ns)) return true;
    return false;
  };
  auto crbs = store_.list("/registry/clusterrolebindings/");
  if (crbs.ok())
    for (auto& item : crbs.value.items) {
      json::value b = parse(item.value);
      if (bound(b, "") && str(b, {"roleRef", "kind"}) == "ClusterRole" &&
          role_allows(b.as_object().at("roleRef"), ""))
        return {true, "ClusterRoleBinding " + str(b, {"metadata", "name"})};
    }
  if (!a.ns.empty()) {
    auto rbs = store_.list("/registry/rolebindings/" + a.ns + "/");
    if (rbs.ok())
      for (auto& item : rbs.value.items) {
        json::value b = parse(item.value);
        if (bound(b, a.ns) && b.as_object().contains("roleRef") &&
            role_allows(b.as_object().at("roleRef"), a.ns))
          return {true, "RoleBinding " + a.ns + "/" + str(b, {"metadata", "name"})};
      }
  }
  return {false, forbidden_message(who, a)};
}

std::string Auth::forbidden_message(const Identity& who, const Attributes& a) {
  std::string res = a.resource + (a.subresource.empty() ? "" : "/" + a.subresource);
  std::string what = a.name.empty() ? res : res + " \"" + a.name + "\"";
  return what + " is forbidden: User \"" + who.username() + "\" cannot " + a.verb + " resource \"" +
         res + "\" in API group \"" + a.group + "\"" +
         (a.ns.empty() ? std::string(" at the cluster scope")
                       : " in the namespace \"" + a.ns + "\"");
}

}  // namespace kedge::api
