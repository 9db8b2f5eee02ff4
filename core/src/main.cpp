// kedge: the agent executable. `kedge run MANIFEST` hosts the kernel.
#include <dlfcn.h>
#include <signal.h>

#include <spdlog/spdlog.h>
#include <cstring>
#include <iostream>

#include "kedge/core/kernel.h"
#include "kedge/core/loader.h"
#include "kedge/core/manifest.h"
#include "kedge/core/resolve.h"
#include "kedge/plugin.h"
#include "kedge/version.h"

namespace fs = std::filesystem;
using namespace kedge;
using namespace kedge::core;

namespace {

constexpr int kExitUsage = 2;

int usage(std::ostream& o, int code) {
  o << "usage: kedge <command> [args]\n\n"
       "commands:\n"
       "  run MANIFEST       run the agent until SIGINT/SIGTERM\n"
       "  check MANIFEST     validate the manifest and every plugin's config, start nothing\n"
       "  plugins [--plugin-dir DIR]... [--manifest FILE] [--describe NAME]\n"
       "                     list the plugins on the search path (name, version, ABI,\n"
       "                     config keys), or describe one: each key's type, default, meaning\n"
       "  token create (--manifest FILE | --ca-dir DIR) [--ttl-hours N]\n"
       "                     print a join token for edges, signed with the cloud CA\n"
       "                     (cloudhub keeps it in <data_dir>/cloudhub)\n"
       "\nAPI client (server, token and CA from ~/.kedge/config or --server, --token,\n"
       "--certificate-authority):\n"
       "  config init --manifest CLOUD.toml   write ~/.kedge/config for a local cloud\n"
       "  apply -f FILE|DIR [-n NS]           create or update the objects of YAML/JSON manifests\n"
       "  get KIND [NAME...] [-n NS|-A] [-l SELECTOR] [-o wide|json|yaml|name] [-w]\n"
       "  describe KIND NAME [-n NS]\n"
       "  delete KIND NAME... | -f FILE|DIR\n"
       "  create token SERVICEACCOUNT [-n NS] [--duration 1h]\n"
       "                                      a service-account token (for the edge's API)\n"
       "  watch KIND [NAME] [-n NS|-A] [-l SELECTOR]\n"
       "\nMappers:\n"
       "  mapper new NAME [--dir DIR]         a mapper project (driver skeleton, CMake, example\n"
       "                                      device) that builds against the installed SDK\n"
       "  version            print the version, the plugin ABI version and the build\n"
       "                     fingerprint plugins must match\n";
  return code;
}

void print_errors(const std::vector<std::string>& errors) {
  for (const auto& e : errors) std::cerr << "error: " << e << "\n";
}

// Parses and resolves a manifest, printing every error. Returns false on error.
bool load(const std::string& file, std::optional<Manifest>& m, Resolution& r) {
  ManifestResult mr = parse_manifest_file(file);
  if (!mr.ok()) {
    print_errors(mr.errors);
    return false;
  }
  m = std::move(mr.manifest);
  r = resolve(*m);
  if (!r.ok() || !r.peer_errors.empty()) {
    print_errors(r.errors);
    print_errors(r.peer_errors);
    return false;
  }
  return true;
}

int cmd_check(const std::string& file) {
  std::optional<Manifest> m;
  Resolution r;
  if (!load(file, m, r)) {
    std::cerr << file << ": manifest is invalid\n";
    return kExitUsage;
  }
  std::cout << file << ": OK, " << r.order.size() << " plugin(s) enabled; start order:";
  for (auto& p : r.order) std::cout << " " << p.entry->name;
  std::cout << "\n";
  if (!r.peers.empty()) std::cout << "messages (declared by the plugins):\n";
  for (auto& l : r.peers)
    std::cout << "  " << l.from << " -> " << (l.to.empty() ? "(none)" : l.to) << ": " << l.what
              << (l.present ? "" : "  [optional, not loaded]") << "\n";
  return 0;
}

int cmd_run(const std::string& file) {
  std::optional<Manifest> m;
  Resolution r;
  if (!load(file, m, r)) {
    std::cerr << file << ": manifest is invalid, not starting\n";
    return kExitUsage;
  }
  // Signals are taken synchronously by this thread; workers inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  Kernel kernel(*m, std::move(r.order));
  if (Status s = kernel.start(); !s) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  timespec tick{0, 200 * 1000 * 1000};
  while (!kernel.shutdown_requested()) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig > 0) kernel.request_shutdown(0, std::string("received ") + strsignal(sig));
  }
  int code = kernel.wait_for_shutdown();
  kernel.stop();
  return code;
}

int cmd_plugins(const std::vector<std::string>& args) {
  std::vector<fs::path> dirs;
  std::string describe, manifest;
  for (size_t i = 0; i < args.size(); ++i) {
    auto need = [&](const char* flag) -> const std::string* {
      if (i + 1 >= args.size()) {
        std::cerr << "error: " << flag << " needs a value\n";
        return nullptr;
      }
      return &args[++i];
    };
    if (args[i] == "--plugin-dir") {
      auto v = need("--plugin-dir");
      if (!v) return kExitUsage;
      dirs.emplace_back(*v);
    } else if (args[i] == "--describe") {
      auto v = need("--describe");
      if (!v) return kExitUsage;
      describe = *v;
    } else if (args[i] == "--manifest") {
      auto v = need("--manifest");
      if (!v) return kExitUsage;
      manifest = *v;
    } else {
      std::cerr << "error: unknown argument '" << args[i] << "'\n";
      return usage(std::cerr, kExitUsage);
    }
  }
  if (!manifest.empty()) {
    ManifestResult mr = parse_manifest_file(manifest);
    if (!mr.ok()) {
      print_errors(mr.errors);
      return kExitUsage;
    }
    for (auto& d : mr.manifest->agent.plugin_dirs) dirs.push_back(d);
  }
  if (const char* env = std::getenv("KEDGE_PLUGIN_PATH")) {
    std::string s(env);
    for (size_t pos = 0; pos <= s.size();) {
      size_t end = s.find(':', pos);
      if (end == std::string::npos) end = s.size();
      if (end > pos) dirs.emplace_back(s.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  if (dirs.empty()) dirs.push_back(default_plugin_dir());
  auto found = scan_plugins(dirs);
  if (!describe.empty()) {
    for (auto& lr : found)
      if (lr.status && describe == lr.value.descriptor->name) {
        std::cout << describe_plugin(lr.value);
        return 0;
      }
    std::cerr << "error: no plugin named '" << describe << "' on the search path\n";
    return 1;
  }
  std::printf("%-16s %-10s %-4s %-40s %s\n", "NAME", "VERSION", "ABI", "CONFIG KEYS", "LIBRARY");
  for (auto& lr : found) {
    if (!lr.status) {
      std::cerr << "warning: " << lr.status.message() << "\n";
      continue;
    }
    const auto* d = lr.value.descriptor;
    std::string keys;
    for (size_t i = 0; i < d->config_key_count; ++i)
      keys += (i ? "," : "") + std::string(d->config_keys[i].name);
    std::printf("%-16s %-10s %-4u %-40s %s\n", d->name, d->version, d->abi_version,
                keys.empty() ? "-" : keys.c_str(), lr.value.file.c_str());
  }
  return 0;
}

// Commands that need TLS, SQLite and the like live in libkedge_tools.so,
// loaded only when one of them runs: `kedge run` stays free of those
// libraries unless its plugins use them.
int cmd_tool(const std::vector<std::string>& args) {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  fs::path lib = (exe.parent_path() / ".." / KEDGE_INSTALL_LIBDIR / "kedge" / "libkedge_tools.so")
                     .lexically_normal();
  void* h = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::cerr << "error: cannot load " << lib.string() << ": " << ::dlerror() << "\n";
    return 1;
  }
  using Main = int (*)(int, const char* const*);
  auto entry = reinterpret_cast<Main>(::dlsym(h, "kedge_tools_main"));
  if (!entry) {
    std::cerr << "error: " << lib.string() << " has no kedge_tools_main\n";
    return 1;
  }
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  return entry(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage(std::cerr, kExitUsage);
  const std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (cmd == "version" || cmd == "--version") {
      std::cout << "kedge " << KEDGE_VERSION << " (plugin ABI " << kAbiVersion << ")\n"
                << "build: " << KEDGE_BUILD_FINGERPRINT << "\n";
      return 0;
    }
    if (cmd == "help" || cmd == "--help" || cmd == "-h") return usage(std::cout, 0);
    if (cmd == "run" || cmd == "check") {
      if (rest.size() != 1) {
        std::cerr << "error: kedge " << cmd << " takes exactly one MANIFEST\n";
        return usage(std::cerr, kExitUsage);
      }
      return cmd == "run" ? cmd_run(rest[0]) : cmd_check(rest[0]);
    }
    if (cmd == "plugins") return cmd_plugins(rest);
    if (cmd == "token" || cmd == "apply" || cmd == "get" || cmd == "describe" || cmd == "delete" ||
        cmd == "watch" || cmd == "config" || cmd == "create" || cmd == "mapper")
      return cmd_tool(args);
    std::cerr << "error: unknown command '" << cmd << "'\n";
    return usage(std::cerr, kExitUsage);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
