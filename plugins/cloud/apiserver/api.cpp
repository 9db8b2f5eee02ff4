#include "api.h"
#include "kedge/mapper/device.h"

#include "k8s.h"

#include <openssl/rand.h>

#include <boost/url/parse.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace kedge::api {

namespace json = boost::json;

namespace {

// ---- errors as Kubernetes Status ----

struct Cause {
  std::string field, message, reason = "FieldValueInvalid";
};

Response status_error(int code, const std::string& reason, const std::string& message,
                      const Resource* res = nullptr, const std::string& name = "",
                      const std::vector<Cause>& causes = {}) {
  json::object details;
  if (!name.empty()) details["name"] = name;
  if (res) {
    if (!res->group.empty()) details["group"] = res->group;
    details["kind"] = res->plural;
  }
  if (!causes.empty()) {
    json::array a;
    for (auto& c : causes)
      a.push_back(json::object{{"reason", c.reason}, {"message", c.message}, {"field", c.field}});
    details["causes"] = std::move(a);
  }
  json::object s{{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object{}},
                 {"status", "Failure"}, {"message", message}, {"reason", reason},
                 {"code", code}};
  if (!details.empty()) s["details"] = std::move(details);
  return {code, json::serialize(s)};
}

Response from_status(const Status& s, const Resource& res, const std::string& name) {
  std::string what = res.plural + " \"" + name + "\"";
  switch (s.code()) {
    case Code::kNotFound: return status_error(404, "NotFound", what + " not found", &res, name);
    case Code::kAlreadyExists:
      return status_error(409, "AlreadyExists", what + " already exists", &res, name);
    case Code::kConflict:
      return status_error(409, "Conflict",
                          "Operation cannot be fulfilled on " + what +
                              ": the object has been modified; please apply your changes to "
                              "the latest version and try again (" +
                              s.message() + ")",
                          &res, name);
    case Code::kGone: return status_error(410, "Expired", s.message(), &res, name);
    case Code::kTimeout: return status_error(504, "Timeout", s.message(), &res, name);
    case Code::kUnavailable:
      return status_error(503, "ServiceUnavailable", s.message(), &res, name);
    default: return status_error(500, "InternalError", s.message(), &res, name);
  }
}

Response invalid(const Resource& res, const std::string& name, const std::vector<Cause>& causes) {
  std::string msg = res.kind + " \"" + name + "\" is invalid: ";
  for (size_t i = 0; i < causes.size(); ++i)
    msg += (i ? ", " : "") + causes[i].field + ": " + causes[i].message;
  return status_error(422, "Invalid", msg, &res, name, causes);
}

Response bad_request(const std::string& message) {
  return status_error(400, "BadRequest", message);
}

// ---- helpers ----

std::string uuid4() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

std::string random_suffix() {
  static const char kChars[] = "bcdfghjklmnpqrstvwxz2456789";  // as Kubernetes
  unsigned char b[5];
  RAND_bytes(b, sizeof b);
  std::string s;
  for (unsigned char c : b) s += kChars[c % (sizeof kChars - 1)];
  return s;
}

// RFC 1123 subdomain: lowercase alphanumerics, '-' and '.', starting and
// ending alphanumeric, at most 253 characters.
std::string check_name(const std::string& n) {
  if (n.empty()) return "name or generateName is required";
  if (n.size() > 253) return "must be no more than 253 characters";
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (char c : n)
    if (!alnum(c) && c != '-' && c != '.')
      return "Invalid value: \"" + n +
             "\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
             "characters, '-' or '.', and must start and end with an alphanumeric character";
  if (!alnum(n.front()) || !alnum(n.back()))
    return "Invalid value: \"" + n + "\": must start and end with an alphanumeric character";
  return {};
}

std::string str_at(const json::value& v, std::initializer_list<const char*> path) {
  const json::value* cur = &v;
  for (const char* p : path) {
    auto* o = cur->if_object();
    if (!o) return {};
    auto it = o->find(p);
    if (it == o->end()) return {};
    cur = &it->value();
  }
  if (auto* s = cur->if_string()) return std::string(*s);
  return {};
}

// A dotted field path (spec.nodeName) as a string, "" if absent.
std::string field_at(const json::value& v, const std::string& dotted) {
  const json::value* cur = &v;
  size_t start = 0;
  while (start <= dotted.size()) {
    size_t dot = dotted.find('.', start);
    std::string part =
        dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    auto* o = cur->if_object();
    if (!o) return {};
    auto it = o->find(part);
    if (it == o->end()) return {};
    cur = &it->value();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (auto* s = cur->if_string()) return std::string(*s);
  if (cur->is_bool()) return cur->get_bool() ? "true" : "false";
  if (cur->is_int64()) return std::to_string(cur->get_int64());
  return {};
}

// Field selectors: metadata.name, metadata.namespace, spec.*, status.* with
// =, == and !=.
struct FieldReq {
  std::string path, value;
  bool negate = false;
};

store::Result<std::vector<FieldReq>> parse_field_selector(const std::string& s) {
  std::vector<FieldReq> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t comma = s.find(',', start);
    std::string part =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? s.size() : comma + 1;
    if (part.empty()) continue;
    FieldReq r;
    size_t op;
    if ((op = part.find("!=")) != std::string::npos) {
      r.negate = true;
      r.path = part.substr(0, op);
      r.value = part.substr(op + 2);
    } else if ((op = part.find("==")) != std::string::npos) {
      r.path = part.substr(0, op);
      r.value = part.substr(op + 2);
    } else if ((op = part.find('=')) != std::string::npos) {
      r.path = part.substr(0, op);
      r.value = part.substr(op + 1);
    } else {
      return {invalid_argument("invalid field selector \"" + part + "\": expected field=value")};
    }
    if (r.path.rfind("metadata.", 0) != 0 && r.path.rfind("spec.", 0) != 0 &&
        r.path.rfind("status.", 0) != 0)
      return {invalid_argument("field selector \"" + part +
                               "\": only metadata.*, spec.* and status.* fields are supported")};
    out.push_back(std::move(r));
  }
  return {{}, std::move(out)};
}

// ---- the parsed request ----

struct Target {
  const Resource* res = nullptr;
  std::string ns, name;
  bool status = false;  // the /status subresource
  bool token = false;   // serviceaccounts/{name}/token (TokenRequest)
  std::map<std::string, std::string> query;
};

// Parses /api/v1/... and /apis/<group>/<version>/...; an error response if
// the path is not one of ours.
std::variant<Target, Response> parse_target(const std::string& target) {
  auto u = boost::urls::parse_origin_form(target);
  if (!u) return bad_request("malformed request target \"" + target + "\"");
  Target t;
  for (auto p : u->params()) t.query[std::string(p.key)] = p.has_value ? std::string(p.value) : "";
  std::vector<std::string> seg;
  for (auto s : u->segments()) seg.push_back(std::string(s));
  std::string group, version;
  size_t i = 0;
  if (seg.size() >= 2 && seg[0] == "api") {
    version = seg[1];
    i = 2;
  } else if (seg.size() >= 3 && seg[0] == "apis") {
    group = seg[1];
    version = seg[2];
    i = 3;
  } else {
    return status_error(404, "NotFound", "the server could not find the requested resource");
  }
  auto find = [&](const std::string& plural) -> const Resource* {
    for (auto& r : resources())
      if (r.group == group && r.version == version && r.plural == plural) return &r;
    return nullptr;
  };
  auto rest = std::vector<std::string>(seg.begin() + static_cast<long>(i), seg.end());
  // namespaces/{ns}/{resource}/... (but namespaces/{name}[/status] is the namespace itself)
  // namespaces/{ns}/{resource}/..., but in the core group namespaces/{name}/status
  // is the namespace's own status.
  bool in_namespace =
      rest.size() >= 3 && rest[0] == "namespaces" && (!group.empty() || rest[2] != "status");
  if (in_namespace) {
    t.ns = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
    t.res = find(rest[0]);
    if (!t.res || !t.res->namespaced)
      return status_error(404, "NotFound",
                          "the server could not find the requested resource (" + rest[0] + ")");
  } else if (!rest.empty()) {
    t.res = find(rest[0]);
    if (!t.res)
      return status_error(404, "NotFound",
                          "the server could not find the requested resource (" + rest[0] + ")");
  } else {
    return status_error(404, "NotFound", "the server could not find the requested resource");
  }
  if (rest.size() >= 2) t.name = rest[1];
  if (rest.size() == 3) {
    if (rest[2] == "token" && t.res->plural == "serviceaccounts") {
      t.token = true;
      return t;
    }
    if (rest[2] != "status")
      return status_error(404, "NotFound", "no subresource \"" + rest[2] + "\"");
    if (!t.res->has_status)
      return status_error(404, "NotFound", t.res->plural + " have no status subresource");
    t.status = true;
  }
  if (rest.size() > 3)
    return status_error(404, "NotFound", "the server could not find the requested resource");
  return t;
}

std::string key_of(const Resource& r, const std::string& ns, const std::string& name) {
  return "/registry/" + r.plural + "/" + (r.namespaced ? ns + "/" : "") + name;
}
std::string prefix_of(const Resource& r, const std::string& ns) {
  return "/registry/" + r.plural + "/" + (r.namespaced && !ns.empty() ? ns + "/" : "");
}

// The stored value with metadata.resourceVersion set from the store.
json::value with_rv(const std::string& stored, int64_t rev) {
  json::value v = json::parse(stored);
  if (auto* o = v.if_object()) {
    auto& md = (*o)["metadata"];
    if (!md.is_object()) md = json::object{};
    md.as_object()["resourceVersion"] = std::to_string(rev);
  }
  return v;
}

// The object as stored: without metadata.resourceVersion (the store's
// revision is the version).
json::value without_rv(json::value v) {
  if (auto* o = v.if_object())
    if (auto m = o->find("metadata"); m != o->end() && m->value().is_object())
      m->value().as_object().erase("resourceVersion");
  return v;
}
std::string stored_form(json::value v) { return json::serialize(without_rv(std::move(v))); }

int64_t parse_rv(const std::string& s, bool& ok) {
  ok = true;
  if (s.empty()) return 0;
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used != s.size() || v < 0) ok = false;
    return v;
  } catch (...) {
    ok = false;
    return 0;
  }
}

// Checks a body: a JSON object whose apiVersion and kind (filled in when
// absent) match the resource.
std::variant<json::value, Response> parse_body(const std::string& body, const Resource& res,
                                               const std::string& name_hint) {
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return bad_request("the request body is not valid JSON: " + ec.message());
  auto* o = v.if_object();
  if (!o) return bad_request("the request body must be a JSON object");
  std::vector<Cause> causes;
  auto check = [&](const char* field, const std::string& want) {
    auto it = o->find(field);
    if (it == o->end()) {
      (*o)[field] = want;
    } else if (!it->value().is_string() || it->value().as_string() != want) {
      causes.push_back({field, "Invalid value: " + json::serialize(it->value()) + ": must be \"" +
                                   want + "\" for " + res.plural});
    }
  };
  check("apiVersion", res.api_version());
  check("kind", res.kind);
  auto md = o->find("metadata");
  if (md == o->end())
    (*o)["metadata"] = json::object{};
  else if (!md->value().is_object())
    causes.push_back({"metadata", "Invalid value: must be an object"});
  if (!causes.empty()) return invalid(res, name_hint, causes);
  return v;
}

// Resource-specific checks of what is written (the spec; status writes are
// not checked): Devices and DeviceModels as their mappers will read them.
std::vector<Cause> check_spec(const Resource& res, const json::value& v) {
  Status s;
  if (res.group == "devices.kubeedge.io" && res.kind == "Device") {
    kedge::mapper::Device d;
    s = kedge::mapper::parse_device(v, nullptr, d);
  } else if (res.group == "devices.kubeedge.io" && res.kind == "DeviceModel") {
    s = kedge::mapper::validate_model(v);
  }
  if (s) return {};
  // "field: what" -> a cause on that field.
  const std::string& m = s.message();
  size_t colon = m.find(": ");
  if (colon == std::string::npos) return {{"spec", m}};
  return {{m.substr(0, colon), m.substr(colon + 2)}};
}

// Keeps the server-owned metadata of `old` in `next`.
void carry_metadata(json::object& next, const json::object& old) {
  auto& nm = next["metadata"].as_object();
  const auto& om = old.at("metadata").as_object();
  for (const char* k : {"uid", "creationTimestamp", "name", "namespace"})
    if (auto it = om.find(k); it != om.end()) nm[k] = it->value();
}

bool spec_changed(const json::object& a, const json::object& b) {
  auto sa = a.find("spec"), sb = b.find("spec");
  json::value va = sa == a.end() ? json::value() : sa->value();
  json::value vb = sb == b.end() ? json::value() : sb->value();
  return va != vb;
}

int64_t generation_of(const json::object& o) {
  auto m = o.find("metadata");
  if (m == o.end() || !m->value().is_object()) return 0;
  auto g = m->value().as_object().find("generation");
  return g != m->value().as_object().end() && g->value().is_int64() ? g->value().get_int64() : 0;
}

}  // namespace

// ---- merge patch (RFC 7386) ----

json::value merge_patch(const json::value& target, const json::value& patch) {
  if (!patch.is_object()) return patch;
  json::value result = target.is_object() ? target : json::object{};
  auto& r = result.as_object();
  for (auto& [k, v] : patch.as_object()) {
    if (v.is_null()) {
      r.erase(k);
    } else {
      auto it = r.find(k);
      r[k] = merge_patch(it == r.end() ? json::value() : it->value(), v);
    }
  }
  return result;
}

// ---- the API ----

Status Api::bootstrap() {
  for (const char* ns : {"default", "kube-system", "kube-public"}) {
    json::object o{
        {"apiVersion", "v1"},
        {"kind", "Namespace"},
        {"metadata",
         json::object{{"name", ns}, {"uid", uuid4()}, {"creationTimestamp", k8s::now_rfc3339()}}},
        {"spec", json::object{{"finalizers", json::array{"kubernetes"}}}},
        {"status", json::object{{"phase", "Active"}}}};
    auto r = store_.create("/registry/namespaces/" + std::string(ns), json::serialize(o));
    if (!r.ok() && r.status.code() != Code::kAlreadyExists) return r.status;
  }
  return {};
}

bool Api::is_watch(const Request& r) {
  if (r.method != "GET") return false;
  auto t = parse_target(r.target);
  auto* tt = std::get_if<Target>(&t);
  if (!tt) return false;
  auto it = tt->query.find("watch");
  return it != tt->query.end() && (it->second == "1" || it->second == "true") && tt->name.empty();
}

namespace {

// Filters from ?labelSelector= and ?fieldSelector=.
struct Filter {
  k8s::Selector labels;
  std::vector<FieldReq> fields;
  bool matches(const json::value& obj) const {
    if (!labels.reqs.empty() && !labels.matches(k8s::labels_of(obj))) return false;
    for (auto& f : fields)
      if ((field_at(obj, f.path) == f.value) == f.negate) return false;
    return true;
  }
};

std::variant<Filter, Response> filter_of(const Target& t) {
  Filter f;
  if (auto it = t.query.find("labelSelector"); it != t.query.end()) {
    auto s = k8s::parse_label_selector(it->second);
    if (!s.ok()) return bad_request(s.status.message());
    f.labels = std::move(s.value);
  }
  if (auto it = t.query.find("fieldSelector"); it != t.query.end()) {
    auto s = parse_field_selector(it->second);
    if (!s.ok()) return bad_request(s.status.message());
    f.fields = std::move(s.value);
  }
  return f;
}

// What a node may do: read everything; write its own Node, and the status
// of pods bound to it.
bool node_may(const Identity& who, const Request& r, const Target& t, store::Store& s) {
  if (r.method == "GET") return true;
  if (t.res->plural == "nodes") return t.name == who.name && r.method != "DELETE";
  if (t.res->plural == "pods" && t.status && (r.method == "PUT" || r.method == "PATCH")) {
    auto cur = s.get(key_of(*t.res, t.ns, t.name));
    if (!cur.ok()) return false;
    json::error_code ec;
    auto v = json::parse(cur.value.value, ec);
    return !ec && field_at(v, "spec.nodeName") == who.name;
  }
  return false;
}

}  // namespace

namespace {

Attributes attributes(const Request& r, const Target& t) {
  Attributes a;
  a.group = t.res->group;
  a.resource = t.res->plural;
  a.subresource = t.status ? "status" : t.token ? "token" : "";
  a.ns = t.ns;
  a.name = t.name;
  if (r.method == "GET") {
    auto w = t.query.find("watch");
    bool watch = w != t.query.end() && (w->second == "1" || w->second == "true");
    a.verb = watch ? "watch" : t.name.empty() ? "list" : "get";
  } else if (r.method == "POST") {
    a.verb = "create";
  } else if (r.method == "PUT") {
    a.verb = "update";
  } else if (r.method == "PATCH") {
    a.verb = "patch";
  } else if (r.method == "DELETE") {
    a.verb = "delete";
  } else {
    a.verb = r.method;
  }
  return a;
}

// POST serviceaccounts/{name}/token: a TokenRequest (authentication.k8s.io/v1).
Response token_request(store::Store& store_, const Auth* auth_, const Request& r, const Target& t) {
  if (r.method != "POST")
    return status_error(405, "MethodNotAllowed", "tokens are requested with POST");
  if (!auth_)
    return status_error(404, "NotFound", "this API server does not issue service account tokens");
  const Resource& res = *t.res;
  auto sa = store_.get(key_of(res, t.ns, t.name));
  if (!sa.ok()) return from_status(sa.status, res, t.name);
  int64_t seconds = 3600;
  if (!r.body.empty()) {
    json::error_code ec;
    auto b = json::parse(r.body, ec);
    if (ec || !b.is_object()) return bad_request("the TokenRequest is not a JSON object");
    const json::value* spec = b.as_object().if_contains("spec");
    const json::value* ep =
        spec && spec->is_object() ? spec->as_object().if_contains("expirationSeconds") : nullptr;
    if (ep && !ep->is_null()) {
      const json::value& e = *ep;
      if (!e.is_int64() && !e.is_uint64())
        return bad_request("spec.expirationSeconds must be an integer");
      seconds = e.to_number<int64_t>();
    }
  }
  if (seconds < auth_->min_token_seconds || seconds > auth_->max_token_seconds)
    return status_error(
        422, "Invalid",
        "TokenRequest.authentication.k8s.io \"" + t.name +
            "\" is invalid: spec.expirationSeconds: Invalid value: " + std::to_string(seconds) +
            ": must be between " + std::to_string(auth_->min_token_seconds) + " and " +
            std::to_string(auth_->max_token_seconds) + " seconds",
        &res, t.name, {{"spec.expirationSeconds", "out of range"}});
  json::value v = json::parse(sa.value.value);
  std::string uid = str_at(v, {"metadata", "uid"});
  auto exp = std::chrono::system_clock::now() + std::chrono::seconds(seconds);
  int64_t exp_s = std::chrono::duration_cast<std::chrono::seconds>(exp.time_since_epoch()).count();
  std::time_t tt = static_cast<std::time_t>(exp_s);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json::object out{
      {"kind", "TokenRequest"},
      {"apiVersion", "authentication.k8s.io/v1"},
      {"metadata", json::object{{"name", t.name}, {"namespace", t.ns}}},
      {"spec", json::object{{"expirationSeconds", seconds}, {"audiences", json::array{}}}},
      {"status", json::object{{"token", auth_->issue(t.ns, t.name, uid, exp_s)},
                              {"expirationTimestamp", when}}}};
  return {201, json::serialize(out)};
}

}  // namespace

bool attributes_of(const Request& r, Attributes& out) {
  auto parsed = parse_target(r.target);
  auto* t = std::get_if<Target>(&parsed);
  if (!t) return false;
  out = attributes(r, *t);
  return true;
}

Response Api::handle(const Request& r) {
  if (r.who.kind == Identity::Kind::kNone)
    return status_error(401, "Unauthorized",
                        r.who.failure.empty()
                            ? "Unauthorized: a bearer token or a node certificate is required"
                            : "Unauthorized: " + r.who.failure);
  auto parsed = parse_target(r.target);
  if (auto* e = std::get_if<Response>(&parsed)) return *e;
  Target t = std::get<Target>(parsed);
  const Resource& res = *t.res;
  if (r.who.kind == Identity::Kind::kServiceAccount) {
    Attributes a = attributes(r, t);
    if (!auth_ || !auth_->authorize(r.who, a).allowed)
      return status_error(403, "Forbidden", Auth::forbidden_message(r.who, a), &res, t.name);
  }
  if (t.token) return token_request(store_, auth_, r, t);
  if (r.who.kind == Identity::Kind::kNode && !node_may(r.who, r, t, store_))
    return status_error(403, "Forbidden",
                        "node \"" + r.who.name + "\" cannot " + r.method + " " + res.plural +
                            (t.name.empty() ? "" : " \"" + t.name + "\"") +
                            ": nodes may only "
                            "write their own Node and the status of their own pods",
                        &res, t.name);
  if (res.namespaced && !t.ns.empty() && r.method == "POST") {
    auto ns = store_.get("/registry/namespaces/" + t.ns);
    if (!ns.ok() && ns.status.code() == Code::kNotFound)
      return status_error(404, "NotFound", "namespaces \"" + t.ns + "\" not found", nullptr, t.ns);
  }
  if (res.namespaced && t.ns.empty() && (r.method != "GET" || !t.name.empty()))
    return bad_request(res.plural + " are namespaced: use /namespaces/{namespace}/" + res.plural);

  // ---- list ----
  if (r.method == "GET" && t.name.empty()) {
    auto f = filter_of(t);
    if (auto* e = std::get_if<Response>(&f)) return *e;
    auto l = store_.list(prefix_of(res, t.ns));
    if (!l.ok()) return from_status(l.status, res, "");
    json::array items;
    for (auto& o : l.value.items) {
      json::value v = with_rv(o.value, o.mod_rev);
      if (std::get<Filter>(f).matches(v)) items.push_back(std::move(v));
    }
    json::object list{{"kind", res.kind + "List"},
                      {"apiVersion", res.api_version()},
                      {"metadata", json::object{{"resourceVersion", std::to_string(l.value.rev)}}},
                      {"items", std::move(items)}};
    return {200, json::serialize(list)};
  }
  // ---- get ----
  if (r.method == "GET") {
    auto g = store_.get(key_of(res, t.ns, t.name));
    if (!g.ok()) return from_status(g.status, res, t.name);
    return {200, json::serialize(with_rv(g.value.value, g.value.mod_rev))};
  }
  // ---- create ----
  if (r.method == "POST") {
    if (!t.name.empty() || t.status)
      return status_error(405, "MethodNotAllowed", "POST is for collections: " + r.target);
    auto b = parse_body(r.body, res, "");
    if (auto* e = std::get_if<Response>(&b)) return *e;
    json::value v = std::move(std::get<json::value>(b));
    auto& md = v.as_object()["metadata"].as_object();
    std::string name = str_at(v, {"metadata", "name"});
    if (name.empty() && md.contains("generateName") && md["generateName"].is_string())
      name = std::string(md["generateName"].as_string()) + random_suffix();
    std::vector<Cause> causes;
    if (std::string why = check_name(name); !why.empty()) causes.push_back({"metadata.name", why});
    std::string body_ns = str_at(v, {"metadata", "namespace"});
    if (res.namespaced && !body_ns.empty() && body_ns != t.ns)
      return bad_request("the namespace of the object (" + body_ns +
                         ") does not match the namespace of the request (" + t.ns + ")");
    if (md.contains("resourceVersion") && !str_at(v, {"metadata", "resourceVersion"}).empty())
      causes.push_back({"metadata.resourceVersion", "must not be set on create"});
    for (auto& c : check_spec(res, v)) causes.push_back(c);
    if (!causes.empty()) return invalid(res, name, causes);
    md["name"] = name;
    if (res.namespaced) md["namespace"] = t.ns;
    md["uid"] = uuid4();
    md["creationTimestamp"] = k8s::now_rfc3339();
    md["generation"] = 1;
    md.erase("resourceVersion");
    auto c = store_.create(key_of(res, t.ns, name), stored_form(v));
    // A generated name that is taken: draw again (5 characters from 27 collide
    // once in a few million).
    bool generated = str_at(v, {"metadata", "generateName"}).size() > 0 &&
                     name.rfind(str_at(v, {"metadata", "generateName"}), 0) == 0;
    for (int i = 0; i < 5 && generated && c.status.code() == Code::kAlreadyExists; ++i) {
      name = str_at(v, {"metadata", "generateName"}) + random_suffix();
      md["name"] = name;
      c = store_.create(key_of(res, t.ns, name), stored_form(v));
    }
    if (!c.ok()) return from_status(c.status, res, name);
    return {201, json::serialize(with_rv(stored_form(v), c.value))};
  }
  // ---- delete ----
  if (r.method == "DELETE") {
    if (t.name.empty())
      return status_error(405, "MethodNotAllowed", "deleting a collection is not supported");
    int64_t expected = 0;
    if (!r.body.empty()) {
      json::error_code ec;
      auto opts = json::parse(r.body, ec);
      if (ec) return bad_request("DeleteOptions are not valid JSON: " + ec.message());
      bool ok = true;
      expected = parse_rv(field_at(opts, "preconditions.resourceVersion"), ok);
      if (!ok) return bad_request("preconditions.resourceVersion is not a resource version");
    }
    auto d = store_.remove(key_of(res, t.ns, t.name), expected);
    if (!d.ok()) return from_status(d.status, res, t.name);
    if (res.plural == "namespaces") {  // its objects go with it
      for (auto& other : resources()) {
        if (!other.namespaced) continue;
        auto l = store_.list(prefix_of(other, t.name));
        if (l.ok())
          for (auto& o : l.value.items) (void)store_.remove(o.key, 0);
      }
    }
    return {200, json::serialize(with_rv(d.value.value, d.value.mod_rev))};
  }
  // ---- update / patch ----
  if (r.method == "PUT" || r.method == "PATCH") {
    if (t.name.empty())
      return status_error(405, "MethodNotAllowed", r.method + " needs an object name");
    std::string key = key_of(res, t.ns, t.name);
    json::value patch;
    if (r.method == "PATCH") {
      std::string ct = r.content_type.substr(0, r.content_type.find(';'));
      if (ct != "application/merge-patch+json" && ct != "application/strategic-merge-patch+json")
        return status_error(
            415, "UnsupportedMediaType",
            "the body of a PATCH must be application/merge-patch+json, not \"" + ct + "\"");
      json::error_code ec;
      patch = json::parse(r.body, ec);
      if (ec || !patch.is_object())
        return bad_request("the patch is not a JSON object" + (ec ? ": " + ec.message() : ""));
    }
    for (int attempt = 0; attempt < 5; ++attempt) {  // PATCH retries lost races itself
      auto cur = store_.get(key);
      if (!cur.ok()) return from_status(cur.status, res, t.name);
      json::value old = with_rv(cur.value.value, cur.value.mod_rev);
      json::value next;
      int64_t expected = cur.value.mod_rev;
      if (r.method == "PATCH") {
        next = merge_patch(old, patch);
        if (auto* o = next.if_object())
          if (auto m = o->find("metadata"); m != o->end() && m->value().is_object())
            m->value().as_object().erase("resourceVersion");
      } else {
        auto b = parse_body(r.body, res, t.name);
        if (auto* e = std::get_if<Response>(&b)) return *e;
        next = std::move(std::get<json::value>(b));
        bool ok = true;
        expected = parse_rv(str_at(next, {"metadata", "resourceVersion"}), ok);
        std::vector<Cause> causes;
        if (!ok)
          causes.push_back({"metadata.resourceVersion", "Invalid value: not a resource version"});
        else if (expected == 0)
          causes.push_back({"metadata.resourceVersion", "must be specified for an update"});
        std::string body_name = str_at(next, {"metadata", "name"});
        if (!body_name.empty() && body_name != t.name)
          causes.push_back({"metadata.name", "Invalid value: \"" + body_name +
                                                 "\": does not match the name in the path"});
        if (!causes.empty()) return invalid(res, t.name, causes);
      }
      auto& no = next.as_object();
      const auto& oo = old.as_object();
      if (!no.contains("metadata") || !no["metadata"].is_object()) no["metadata"] = json::object{};
      carry_metadata(no, oo);
      // The status subresource writes only status; the object, all but status.
      if (res.has_status) {
        if (t.status) {
          json::value st = no.contains("status") ? no["status"] : json::value();
          json::value base = old;
          if (st.is_null())
            base.as_object().erase("status");
          else
            base.as_object()["status"] = st;
          next = std::move(base);
        } else if (oo.contains("status")) {
          no["status"] = oo.at("status");
        } else {
          no.erase("status");
        }
      }
      if (!t.status)
        if (auto causes = check_spec(res, next); !causes.empty())
          return invalid(res, t.name, causes);
      auto& fo = next.as_object();
      int64_t gen = generation_of(oo);
      fo["metadata"].as_object()["generation"] = spec_changed(fo, oo) ? gen + 1 : gen;
      // Nothing changed: no write, no new resourceVersion (as Kubernetes).
      json::value stored = without_rv(std::move(next));
      if (stored == without_rv(old) && expected == cur.value.mod_rev)
        return {200, json::serialize(old)};
      std::string value = json::serialize(stored);
      auto u = store_.update(key, value, expected);
      if (u.ok()) return {200, json::serialize(with_rv(value, u.value))};
      if (u.status.code() == Code::kConflict && r.method == "PATCH") continue;
      return from_status(u.status, res, t.name);
    }
    return status_error(409, "Conflict", "gave up after 5 conflicting writes", &res, t.name);
  }
  return status_error(405, "MethodNotAllowed", "method " + r.method + " is not supported");
}

WatchStart Api::watch(const Request& r, std::function<void(std::string)> emit,
                      std::function<void(std::string)> on_end) {
  WatchStart out;
  if (r.who.kind == Identity::Kind::kNone) {
    out.error =
        status_error(401, "Unauthorized",
                     r.who.failure.empty() ? "Unauthorized" : "Unauthorized: " + r.who.failure);
    return out;
  }
  auto parsed = parse_target(r.target);
  if (auto* e = std::get_if<Response>(&parsed)) {
    out.error = *e;
    return out;
  }
  Target t = std::get<Target>(parsed);
  const Resource& res = *t.res;
  if (r.who.kind == Identity::Kind::kServiceAccount) {
    Attributes a = attributes(r, t);
    if (!auth_ || !auth_->authorize(r.who, a).allowed) {
      out.error = status_error(403, "Forbidden", Auth::forbidden_message(r.who, a), &res, t.name);
      return out;
    }
  }
  auto f = filter_of(t);
  if (auto* e = std::get_if<Response>(&f)) {
    out.error = *e;
    return out;
  }
  Filter filter = std::get<Filter>(f);
  bool ok = true;
  std::string rv_param = t.query.count("resourceVersion") ? t.query["resourceVersion"] : "";
  int64_t from = parse_rv(rv_param, ok);
  if (!ok) {
    out.error = bad_request("resourceVersion \"" + rv_param + "\" is not a resource version");
    return out;
  }
  auto line = [](const char* type, const json::value& obj) {
    return json::serialize(json::object{{"type", type}, {"object", obj}}) + "\n";
  };
  auto on_event = [emit, filter, line](const store::Event& e) {
    json::error_code ec;
    json::value v = json::parse(e.value, ec);
    if (ec) return;
    if (auto* o = v.if_object()) {
      auto& md = (*o)["metadata"];
      if (md.is_object()) md.as_object()["resourceVersion"] = std::to_string(e.rev);
    }
    if (!filter.matches(v)) return;
    emit(line(store::type_name(e.type), v));
  };
  if (from == 0) {
    // Kubernetes: no resourceVersion (or 0) starts with the current state as
    // ADDED events, then changes after it.
    auto l = store_.list(prefix_of(res, t.ns));
    if (!l.ok()) {
      out.error = from_status(l.status, res, "");
      return out;
    }
    for (auto& o : l.value.items) {
      json::value v = with_rv(o.value, o.mod_rev);
      if (filter.matches(v)) emit(line("ADDED", v));
    }
    from = l.value.rev;
  }
  auto w = store_.watch(prefix_of(res, t.ns), from, on_event, [on_end, line](const Status& s) {
    auto err = s.code() == Code::kGone
                   ? status_error(410, "Expired", s.message())
                   : status_error(500, "InternalError", "watch ended: " + s.message());
    on_end(line("ERROR", json::parse(err.body)));
  });
  if (!w.ok()) {
    if (w.status.code() == Code::kGone) {
      // As Kubernetes: the stream starts, with one ERROR event (410 Expired).
      on_end(line("ERROR",
                  json::parse(status_error(410, "Expired",
                                           "too old resource version: " + std::to_string(from) +
                                               " (" + w.status.message() + ")")
                                  .body)));
      return out;
    }
    out.error = from_status(w.status, res, "");
    return out;
  }
  out.watch = std::move(w.value);
  return out;
}

}  // namespace kedge::api
