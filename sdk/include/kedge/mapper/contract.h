// The messages between the edge's `dmi` plugin and the mappers it drives
// inside the agent: mapper plugins (MapperPlugin, kedge/mapper/mapper.h) and
// `dmi-grpc`, which stands in for mapper processes speaking DMI v1beta1 over
// gRPC. Both sides use these names; none of them travels on KubeEdge's wire.
//
// mapper -> dmi (requests, answered as below):
//   op "register", resource "mapper/<name>", content Registration
//       -> {"models": [...], "devices": [...]} (the objects the mapper gets now;
//          with with_data false both are empty and dmi sends each as a call)
//   op "report",   resource "device/<ns>/<name>", content {"twins": [...]}
//   op "state",    resource "device/<ns>/<name>", content {"state": "online"}
//       -> "OK" or an error answer (the twin's verdict: not found, invalid)
// dmi -> mapper (requests; route.group is the mapper's protocol, so one
// module such as dmi-grpc can front several mappers):
//   op insert/update/delete, resource "<ns>/device/<name>" or
//       "<ns>/devicemodel/<name>", content the object (null on delete)
//   op "query", resource "<ns>/<name>" -> {"device": {...}, "status": {...}}
//   op "register", sent to the group kMapperGroup when dmi (re)starts
//       without registrations: register again
// twin -> dmi: op "desired", content {"device": name, "desired": {...}}.
//
// An error answer is {"error": "text", "code": "<kedge::code_name>"}; a
// missing code means the request was refused as invalid, so retrying the
// same object will not help. Other codes (unavailable, timeout) are retried.
#pragma once

#include <boost/json.hpp>
#include <string>
#include <string_view>

#include "kedge/message.h"
#include "kedge/status.h"

namespace kedge::mapper::contract {

// The module group of every module dmi drives (mapper plugins, dmi-grpc).
inline constexpr const char* kMapperGroup = "mapper";

// The config key naming the dmi module, and its default.
inline constexpr const char* kDmiKey = "dmi";
inline constexpr const char* kDmiDefault = "dmi";
// The config key naming the twin module (dmi's peer), and its default.
inline constexpr const char* kTwinKey = "twin";
inline constexpr const char* kTwinDefault = "twin";

namespace op {
inline constexpr std::string_view kRegister = "register";
inline constexpr std::string_view kReport = "report";
inline constexpr std::string_view kState = "state";
inline constexpr std::string_view kDesired = "desired";
// The channel's own operations, under the same names.
using kedge::op::kDelete;
using kedge::op::kInsert;
using kedge::op::kQuery;
using kedge::op::kUpdate;
}  // namespace op

// Resource kinds in "<ns>/<kind>/<name>".
inline constexpr std::string_view kDevice = "device";
inline constexpr std::string_view kDeviceModel = "devicemodel";
// The resource prefix of registrations ("mapper/<name>") and reports
// ("device/<ns>/<name>").
inline constexpr std::string_view kMapperPrefix = "mapper/";
inline constexpr std::string_view kDevicePrefix = "device/";

// What a mapper says of itself when it registers.
struct Registration {
  std::string name, version, protocol;
  std::string module;      // the module dmi sends its calls to
  bool with_data = true;   // take the devices in the answer (else: as calls)
  bool if_absent = false;  // only if no mapper has this protocol (a remembered one)
};

inline boost::json::object to_json(const Registration& r) {
  return {{"name", r.name},          {"version", r.version},     {"protocol", r.protocol},
          {"module", r.module},      {"with_data", r.with_data}, {"if_absent", r.if_absent},
          {"api_version", "v1beta1"}};
}

inline Registration registration_from_json(const boost::json::value& v) {
  Registration r;
  auto* o = v.if_object();
  if (!o) return r;
  auto text = [&](std::string_view k) {
    auto* f = o->if_contains(k);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  r.name = text("name");
  r.version = text("version");
  r.protocol = text("protocol");
  r.module = text("module");
  if (auto* w = o->if_contains("with_data"); w && w->is_bool()) r.with_data = w->as_bool();
  if (auto* w = o->if_contains("if_absent"); w && w->is_bool()) r.if_absent = w->as_bool();
  return r;
}

// The error answer for `s` (not ok).
inline boost::json::object error_answer(const Status& s) {
  boost::json::object o{{"error", s.message()}};
  if (s.code() != Code::kInvalidArgument) o["code"] = code_name(s.code());
  return o;
}

// The outcome of a request: the transport's status (timeout, no such
// module), else the answer's error if it carries one, else ok.
inline Status answer_status(const Status& transport, const MessagePtr& answer) {
  if (!transport) return transport;
  if (!answer || !answer->content.is_object()) return {};
  const auto& o = answer->content.as_object();
  auto* e = o.if_contains("error");
  if (!e) return {};
  std::string text = e->is_string() ? std::string(e->as_string()) : boost::json::serialize(*e);
  auto* c = o.if_contains("code");
  if (!c || !c->is_string()) return invalid_argument(std::move(text));
  for (Code k :
       {Code::kNotFound, Code::kFull, Code::kTimeout, Code::kUnavailable, Code::kFailedPrecondition,
        Code::kInternal, Code::kAlreadyExists, Code::kConflict, Code::kGone})
    if (c->as_string() == code_name(k)) return {k, std::move(text)};
  return invalid_argument(std::move(text));
}

}  // namespace kedge::mapper::contract
