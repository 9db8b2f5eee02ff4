#include "kedge/core/loader.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "config_value.h"

namespace kedge::core {

namespace fs = std::filesystem;

namespace {

Status refuse(const fs::path& file, const std::string& why) {
  return invalid_argument("cannot load plugin " + file.string() + ": " + why);
}

bool valid_plugin_name(const char* n) {
  if (!n || !*n) return false;
  std::string_view s(n);
  if (s.size() > 63 || s[0] == '-' || s[0] == '_') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

Status check_descriptor(const fs::path& file, const PluginDescriptor& d) {
  if (d.descriptor_size < sizeof(PluginDescriptor))
    return refuse(file, "descriptor is truncated (" + std::to_string(d.descriptor_size) +
                            " bytes, expected " + std::to_string(sizeof(PluginDescriptor)) + ")");
  if (!valid_plugin_name(d.name))
    return refuse(file, std::string("invalid plugin name '") + (d.name ? d.name : "(null)") +
                            "' (use a-z, 0-9, '-' and '_')");
  if (!d.version || !*d.version) return refuse(file, "descriptor has no version");
  if (!d.create || !d.destroy) return refuse(file, "descriptor has no factory (create/destroy)");
  if (d.config_key_count && !d.config_keys)
    return refuse(file, "descriptor lists config keys but gives none");
  if (d.dependency_count && !d.dependencies)
    return refuse(file, "descriptor lists dependencies but gives none");
  std::set<std::string> keys;
  for (size_t i = 0; i < d.config_key_count; ++i) {
    const ConfigKey& k = d.config_keys[i];
    if (!k.name || !*k.name)
      return refuse(file, "config key #" + std::to_string(i) + " has no name");
    if (!keys.insert(k.name).second)
      return refuse(file, std::string("config key '") + k.name + "' is declared twice");
    int t = static_cast<int>(k.type);
    if (t < static_cast<int>(ConfigType::kString) || t > static_cast<int>(ConfigType::kTable))
      return refuse(
          file, std::string("config key '") + k.name + "' has unknown type " + std::to_string(t));
    if (k.max > k.min && k.type != ConfigType::kInteger && k.type != ConfigType::kFloat)
      return refuse(file, std::string("config key '") + k.name +
                              "' has a range but is not an integer or float key");
    if (k.default_value) {
      std::string err;
      if (!parse_default(k, err))
        return refuse(file,
                      std::string("default of config key '") + k.name + "' is invalid: " + err);
    }
  }
  for (size_t i = 0; i < d.dependency_count; ++i)
    if (!valid_plugin_name(d.dependencies[i]))
      return refuse(file, "dependency #" + std::to_string(i) + " is not a valid plugin name");
  if (d.peer_count && !d.peers) return refuse(file, "descriptor lists peers but gives none");
  for (size_t i = 0; i < d.peer_count; ++i) {
    const PeerDecl& p = d.peers[i];
    const ConfigKey* key = nullptr;
    for (size_t j = 0; p.config_key && j < d.config_key_count; ++j)
      if (std::strcmp(d.config_keys[j].name, p.config_key) == 0) key = &d.config_keys[j];
    if (!key || key->type != ConfigType::kString)
      return refuse(file, "peer #" + std::to_string(i) + " names config key '" +
                              (p.config_key ? p.config_key : "(null)") +
                              "', which is not a string key of its config");
  }
  return {};
}

}  // namespace

std::filesystem::path default_plugin_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return (exe.parent_path() / ".." / KEDGE_INSTALL_LIBDIR / "kedge" / "plugins").lexically_normal();
}

std::string library_file_name(const std::string& name) { return "libkedge_" + name + ".so"; }

LoadResult load_plugin(const fs::path& file) {
  LoadResult res;
  res.value.file = file;
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    res.status = {Code::kNotFound, "cannot load plugin " + file.string() + ": file not found"};
    return res;
  }
  if (!fs::is_regular_file(file, ec)) {
    res.status = refuse(file, "not a regular file");
    return res;
  }
  {
    std::ifstream in(file, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() != 4 || magic[0] != 0x7f || magic[1] != 'E' || magic[2] != 'L' ||
        magic[3] != 'F') {
      res.status = refuse(file, "not a shared object (no ELF header)");
      return res;
    }
  }
  auto lib = std::make_shared<boost::dll::shared_library>();
  boost::dll::fs::error_code dec;
  lib->load(file.string(),
            static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE), dec);
  if (dec || !lib->is_loaded()) {
    const char* why = dlerror();
    res.status =
        refuse(file, "not a loadable shared object: " + (why ? std::string(why) : dec.message()));
    return res;
  }
  if (!lib->has(kEntryPointName)) {
    res.status = refuse(file, std::string("no entry point '") + kEntryPointName +
                                  "' (build the plugin with KEDGE_PLUGIN)");
    return res;
  }
  auto entry = lib->get<const PluginDescriptor*()>(kEntryPointName);
  const PluginDescriptor* d = entry();
  if (!d) {
    res.status = refuse(file, "entry point returned no descriptor");
    return res;
  }
  // The ABI version is read before anything else in the descriptor.
  if (d->abi_version != kAbiVersion) {
    res.status = {Code::kFailedPrecondition,
                  "cannot load plugin " + file.string() +
                      ": ABI version mismatch: the plugin was built for ABI " +
                      std::to_string(d->abi_version) + ", this kedge speaks ABI " +
                      std::to_string(kAbiVersion) + " (rebuild the plugin against this SDK)"};
    return res;
  }
  if (d->descriptor_size >= offsetof(PluginDescriptor, build_fingerprint) + sizeof(const char*) &&
      (!d->build_fingerprint || std::strcmp(d->build_fingerprint, KEDGE_BUILD_FINGERPRINT) != 0)) {
    res.status = {Code::kFailedPrecondition,
                  "cannot load plugin " + file.string() +
                      ": build mismatch: the plugin was built with [" +
                      (d->build_fingerprint ? d->build_fingerprint : "(none)") +
                      "], this kedge with [" KEDGE_BUILD_FINGERPRINT
                      "] (rebuild the plugin against this SDK with the same compiler and "
                      "libraries)"};
    return res;
  }
  if (Status s = check_descriptor(file, *d); !s) {
    res.status = s;
    return res;
  }
  res.value.library = std::move(lib);
  res.value.descriptor = d;
  return res;
}

std::vector<LoadResult> scan_plugins(const std::vector<fs::path>& dirs) {
  std::vector<LoadResult> out;
  for (const auto& dir : dirs) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".so") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) out.push_back(load_plugin(f));
  }
  return out;
}

std::string describe_plugin(const LoadedPlugin& p) {
  const PluginDescriptor& d = *p.descriptor;
  std::ostringstream o;
  o << "name:         " << d.name << "\n"
    << "version:      " << d.version << "\n"
    << "ABI version:  " << d.abi_version << "\n"
    << "build:        " << (d.build_fingerprint ? d.build_fingerprint : "") << "\n"
    << "group:        " << (d.group ? d.group : d.name) << "\n"
    << "library:      " << p.file.string() << "\n";
  if (d.description && *d.description) o << "description:  " << d.description << "\n";
  o << "dependencies: ";
  if (!d.dependency_count) o << "(none)";
  for (size_t i = 0; i < d.dependency_count; ++i) o << (i ? ", " : "") << d.dependencies[i];
  o << "\nsends to:     ";
  if (!d.peer_count) o << "(none declared)";
  for (size_t i = 0; i < d.peer_count; ++i)
    o << (i ? "\n              " : "") << "config." << d.peers[i].config_key << ": "
      << (d.peers[i].sends ? d.peers[i].sends : "") << (d.peers[i].optional ? " (optional)" : "");
  o << "\nconfig keys:";
  if (!d.config_key_count) o << " (none)";
  o << "\n";
  for (size_t i = 0; i < d.config_key_count; ++i) {
    const ConfigKey& k = d.config_keys[i];
    o << "  " << k.name << " (" << config_type_name(k.type) << ")";
    if (k.required)
      o << ", required";
    else if (k.default_value)
      o << ", default " << k.default_value;
    else
      o << ", no default";
    if (k.max > k.min) {
      auto num = [](double v) {
        return v == static_cast<double>(static_cast<int64_t>(v))
                   ? std::to_string(static_cast<int64_t>(v))
                   : std::to_string(v);
      };
      o << ", range [" << num(k.min) << ", " << num(k.max) << "]";
    }
    o << "\n      " << (k.description ? k.description : "") << "\n";
  }
  return o.str();
}

}  // namespace kedge::core
