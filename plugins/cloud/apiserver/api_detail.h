// The API's building blocks, as functions of their inputs (api.cpp applies
// them to requests): errors as Kubernetes Status objects, names, field
// selectors, request targets, resource versions, body and spec checks.
#pragma once

#include <boost/json.hpp>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

#include "api.h"

namespace kedge::api::detail {

namespace json = boost::json;

// ---- errors as Kubernetes Status ----

struct Cause {
  std::string field, message, reason = "FieldValueInvalid";
};

Response status_error(int code, const std::string& reason, const std::string& message,
                      const Resource* res = nullptr, const std::string& name = "",
                      const std::vector<Cause>& causes = {});

Response from_status(const Status& s, const Resource& res, const std::string& name);

Response invalid(const Resource& res, const std::string& name, const std::vector<Cause>& causes);

Response bad_request(const std::string& message);

// ---- helpers ----

std::string uuid4();

std::string random_suffix();

// RFC 1123 subdomain: lowercase alphanumerics, '-' and '.', starting and
// ending alphanumeric, at most 253 characters.
std::string check_name(const std::string& n);

std::string str_at(const json::value& v, std::initializer_list<const char*> path);

// A dotted field path (spec.nodeName) as a string, "" if absent.
std::string field_at(const json::value& v, const std::string& dotted);

// Field selectors: metadata.name, metadata.namespace, spec.*, status.* with
// =, == and !=.
struct FieldReq {
  std::string path, value;
  bool negate = false;
};

store::Result<std::vector<FieldReq>> parse_field_selector(const std::string& s);

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
std::variant<Target, Response> parse_target(const std::string& target);

std::string key_of(const Resource& r, const std::string& ns, const std::string& name);
std::string prefix_of(const Resource& r, const std::string& ns);

// The stored value with metadata.resourceVersion set from the store.
json::value with_rv(const std::string& stored, int64_t rev);

// The object as stored: without metadata.resourceVersion (the store's
// revision is the version).
json::value without_rv(json::value v);
inline std::string stored_form(json::value v) { return json::serialize(without_rv(std::move(v))); }

int64_t parse_rv(const std::string& s, bool& ok);

// Checks a body: a JSON object whose apiVersion and kind (filled in when
// absent) match the resource.
std::variant<json::value, Response> parse_body(const std::string& body, const Resource& res,
                                               const std::string& name_hint);

// Resource-specific checks of what is written (the spec; status writes are
// not checked): Devices and DeviceModels as their mappers will read them.
std::vector<Cause> check_spec(const Resource& res, const json::value& v);

// Keeps the server-owned metadata of `old` in `next`.
void carry_metadata(json::object& next, const json::object& old);

bool spec_changed(const json::object& a, const json::object& b);

int64_t generation_of(const json::object& o);

}  // namespace kedge::api::detail
