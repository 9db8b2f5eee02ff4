#include "api_detail.h"
#include "kedge/mapper/device.h"

#include "k8s.h"

#include <openssl/rand.h>

#include <boost/url/parse.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace kedge::api::detail {

Response status_error(int code, const std::string& reason, const std::string& message,
                      const Resource* res, const std::string& name,
                      const std::vector<Cause>& causes) {
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

json::value with_rv(const std::string& stored, int64_t rev) {
  json::value v = json::parse(stored);
  if (auto* o = v.if_object()) {
    auto& md = (*o)["metadata"];
    if (!md.is_object()) md = json::object{};
    md.as_object()["resourceVersion"] = std::to_string(rev);
  }
  return v;
}

json::value without_rv(json::value v) {
  if (auto* o = v.if_object())
    if (auto m = o->find("metadata"); m != o->end() && m->value().is_object())
      m->value().as_object().erase("resourceVersion");
  return v;
}


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

}  // namespace kedge::api::detail
