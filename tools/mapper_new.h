#pragma once
#include <string>
#include <vector>

namespace kedge::cli {
// kedge mapper new NAME [--dir DIR]: writes a mapper project. Exit code.
int mapper_new(const std::vector<std::string>& args);
}  // namespace kedge::cli
