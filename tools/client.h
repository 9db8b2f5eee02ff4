// The kedge API client commands (apply, get, describe, delete, watch,
// config init); see docs/cli.md.
#pragma once

#include <string>
#include <vector>

namespace kedge::cli {
int client_main(const std::string& cmd, const std::vector<std::string>& args);
}
