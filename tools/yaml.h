// YAML <-> JSON for the CLI (yaml-cpp, Boost.JSON).
#pragma once

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "kedge/status.h"

namespace kedge::cli {

struct Document {
  boost::json::value value;
  int line = 0;  // 1-based line where the document starts
};
// Every document of a YAML (or JSON) stream; empty documents are skipped.
// Errors carry "<name>:<line>:<column>: ...".
Status parse_yaml(const std::string& text, const std::string& name, std::vector<Document>& out);
std::string to_yaml(const boost::json::value& v);

}  // namespace kedge::cli
