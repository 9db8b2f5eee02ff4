// Small helpers for plugins that deal in Kubernetes objects.
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kedge/context.h"

namespace kedge::k8s {

// The current time as Kubernetes writes timestamps (RFC 3339, UTC, seconds).
std::string now_rfc3339();

// One call to the apiserver plugin's message API (docs/controllers.md):
// `done(code, body)` with the HTTP status and JSON body, or 503 and the
// reason when apiserver did not answer within 10 s. `body` null: no body;
// a string is sent as is, anything else serialized.
void api_request(Context& ctx, const std::string& method, const std::string& target,
                 const boost::json::value& body, const std::string& content_type,
                 std::function<void(int64_t, boost::json::value)> done);

// Label selectors: "a=b", "a==b", "a!=b", "a", "!a", "a in (x,y)",
// "a notin (x,y)", joined by commas.
struct Selector {
  struct Req {
    std::string key;
    enum class Op { kEq, kNe, kIn, kNotIn, kExists, kNotExists } op = Op::kEq;
    std::vector<std::string> values;
  };
  std::vector<Req> reqs;
  bool matches(const std::map<std::string, std::string>& labels) const;
};
struct SelectorResult {
  Status status;
  Selector value;
  bool ok() const { return status.is_ok(); }
};
// The error names the offending requirement.
SelectorResult parse_label_selector(const std::string& s);
// metadata.labels of an object.
std::map<std::string, std::string> labels_of(const boost::json::value& obj);

}  // namespace kedge::k8s
