// The twin documents the cloud's devicecontroller and the edge's twin
// exchange (KubeEdge devicetwin dttype): what both derive from a
// DeviceModel in the same way.
#pragma once

#include <boost/json.hpp>
#include <cctype>
#include <string>
#include <string_view>

#include "kedge/common/json.h"

namespace kedge::contracts::twin {

// A property's value type in twin metadata ("int", "float", "string", ...):
// the model's spec.properties[].type lower-cased (v1beta1: "INT"; v1alpha2:
// the one key of {int: {...}}), "string" when the model or the property is
// unknown, as KubeEdge's devicecontroller defaults it.
inline std::string value_type(const boost::json::value* model, std::string_view prop) {
  if (!model) return "string";
  auto* ps = json_path::find(*model, {"spec", "properties"});
  if (!ps || !ps->is_array()) return "string";
  for (auto& p : ps->as_array()) {
    if (json_path::scalar_text(p, {"name"}) != prop) continue;
    std::string t = json_path::scalar_text(p, {"type"});
    if (auto* to = json_path::find(p, {"type"}); to && to->is_object() && !to->as_object().empty())
      t = std::string(to->as_object().begin()->key());
    for (auto& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return t.empty() ? "string" : t;
  }
  return "string";
}

}  // namespace kedge::contracts::twin
