// libkedge_tools.so: the kedge commands that need more than the kernel
// (certificates, the API client), loaded by the kedge executable only when
// one of them runs. Entry point: kedge_tools_main(argc, argv), argv[0] being
// the command.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "client.h"
#include "cloud_ca.h"
#include "kedge/common/pki.h"
#include "kedge/core/manifest.h"
#include "kedge/export.h"
#include "mapper_new.h"

namespace fs = std::filesystem;
using namespace kedge;
using namespace kedge::core;

namespace {

constexpr int kExitUsage = 2;

int cmd_token(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "create") {
    std::cerr
        << "error: usage: kedge token create (--manifest FILE | --ca-dir DIR) [--ttl-hours N]\n";
    return kExitUsage;
  }
  fs::path ca_dir;
  int64_t ttl_hours = 24;
  for (size_t i = 1; i < args.size(); ++i) {
    if (i + 1 >= args.size()) {
      std::cerr << "error: " << args[i] << " needs a value\n";
      return kExitUsage;
    }
    const std::string& v = args[++i];
    if (args[i - 1] == "--ca-dir") {
      ca_dir = v;
    } else if (args[i - 1] == "--manifest") {
      ManifestResult mr = parse_manifest_file(v);
      if (!mr.ok()) {
        for (const auto& e : mr.errors) std::cerr << "error: " << e << "\n";
        return kExitUsage;
      }
      ca_dir = kedge::cloud_ca::default_dir(mr.manifest->agent.data_dir);
    } else if (args[i - 1] == "--ttl-hours") {
      try {
        ttl_hours = std::stoll(v);
      } catch (...) {
        ttl_hours = 0;
      }
      if (ttl_hours <= 0) {
        std::cerr << "error: --ttl-hours: expected a positive number of hours, got '" << v << "'\n";
        return kExitUsage;
      }
    } else {
      std::cerr << "error: unknown argument '" << args[i - 1] << "'\n";
      return kExitUsage;
    }
  }
  if (ca_dir.empty()) {
    std::cerr << "error: kedge token create needs --manifest FILE or --ca-dir DIR\n";
    return kExitUsage;
  }
  auto ca = kedge::cloud_ca::load(ca_dir);
  if (!ca.ok()) {
    std::cerr << "error: " << ca.status.message() << "\n";
    return 1;
  }
  std::cout << kedge::cloud_ca::join_token(ca.value, std::chrono::hours(ttl_hours)) << "\n";
  return 0;
}

}  // namespace

extern "C" KEDGE_EXPORT int kedge_tools_main(int argc, const char* const* argv) {
  std::vector<std::string> args(argv, argv + argc);
  try {
    if (!args.empty() && args[0] == "token")
      return cmd_token(std::vector<std::string>(args.begin() + 1, args.end()));
    if (!args.empty() && args[0] == "mapper") {
      if (args.size() < 2 || args[1] != "new") {
        std::cerr << "usage: kedge mapper new NAME [--dir DIR]\n";
        return kExitUsage;
      }
      return kedge::cli::mapper_new(std::vector<std::string>(args.begin() + 2, args.end()));
    }
    if (!args.empty())
      return kedge::cli::client_main(args[0],
                                     std::vector<std::string>(args.begin() + 1, args.end()));
    std::cerr << "error: unknown command '" << (args.empty() ? "" : args[0]) << "'\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
