#include "api.h"

#include "api_detail.h"
#include "kedge/mapper/device.h"

#include "defaults.h"
#include "k8s.h"
#include "patch.h"

#include <openssl/rand.h>

#include <boost/url/parse.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace kedge::api {

namespace json = boost::json;
using namespace detail;

// ---- the API ----

Status Api::bootstrap() {
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
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

// What a node may do: read everything; write its own Node, its own Lease in
// kube-node-lease, and the status of pods bound to it.
bool node_may(const Identity& who, const Request& r, const Target& t, store::Store& s) {
  if (r.method == "GET") return true;
  if (t.res->plural == "nodes") return t.name == who.name && r.method != "DELETE";
  if (t.res->plural == "leases")
    return t.ns == "kube-node-lease" && (t.name == who.name || r.method == "POST");
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
    defaults::apply(res.kind, v);  // as kube-apiserver: a kubelet relies on them
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
      // A UID precondition (a kubelet deletes the pod it ran, not a newer
      // one of the same name): checked against the stored object, which is
      // then removed only at the version that was checked.
      if (std::string uid = field_at(opts, "preconditions.uid"); !uid.empty()) {
        auto cur = store_.get(key_of(res, t.ns, t.name));
        if (!cur.ok()) return from_status(cur.status, res, t.name);
        json::error_code pec;
        auto obj = json::parse(cur.value.value, pec);
        std::string have = pec ? std::string() : str_at(obj, {"metadata", "uid"});
        if (have != uid)
          return status_error(
              409, "Conflict",
              "Precondition failed: UID in precondition: " + uid + ", UID in object meta: " + have);
        if (expected == 0) expected = cur.value.mod_rev;
      }
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
    bool strategic = false;
    if (r.method == "PATCH") {
      std::string ct = r.content_type.substr(0, r.content_type.find(';'));
      strategic = ct == "application/strategic-merge-patch+json";
      if (ct != "application/merge-patch+json" && ct != "application/strategic-merge-patch+json")
        return status_error(415, "UnsupportedMediaType",
                            "the body of a PATCH must be application/merge-patch+json or "
                            "application/strategic-merge-patch+json, not \"" +
                                ct + "\"");
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
        if (strategic) {
          if (Status ps = patch::strategic_merge(old, patch, res.kind, next); !ps)
            return invalid(res, t.name, {{"patch", ps.message()}});
        } else {
          next = patch::json_merge(old, patch);
        }
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
      if (!t.status) {
        defaults::apply(res.kind, next);
        if (auto causes = check_spec(res, next); !causes.empty())
          return invalid(res, t.name, causes);
      }
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
