// Pod volumes on the node: emptyDir and hostPath directories, configMap
// and secret files (written atomically, stale keys removed), under
// <data_dir>/edged/pods/<uid>/volumes.
#include <fstream>

#include "edged.h"
#include "env.h"

namespace kedge::edged {

// Writes configMap and secret volumes, makes emptyDir and hostPath
// directories; an error (a missing configmap, say) is the pod's until fixed.
bool Edged::prepare_volumes(Pod& p) {
  p.uses.clear();
  for (auto& v : arr(p.obj, {"spec", "volumes"})) {
    std::string name = str(v, {"name"});
    std::error_code ec;
    // Names become path components: DNS labels only (as Kubernetes checks).
    bool label = !name.empty() && name.size() <= 63 && name.front() != '-' && name.back() != '-';
    for (char ch : name)
      if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) label = false;
    if (!label)
      return fail_pod(p, "CreateContainerConfigError",
                      "volume name \"" + name + "\" is not a DNS label ([a-z0-9-], at most 63)");
    if (find(v, {"emptyDir"})) {
      fs::create_directories(pod_dir(p) / "volumes" / "empty-dir" / name, ec);
    } else if (auto* hp = find(v, {"hostPath"})) {
      std::string path = str(*hp, {"path"}), type = str(*hp, {"type"});
      if (type == "DirectoryOrCreate") fs::create_directories(path, ec);
      if ((type == "Directory" && !fs::is_directory(path)) ||
          (type == "File" && !fs::is_regular_file(path)))
        return fail_pod(p, "CreateContainerConfigError",
                        "hostPath volume \"" + name + "\": " + path + " is not a " +
                            (type == "File" ? "file" : "directory"));
    } else if (find(v, {"configMap"}) || find(v, {"secret"})) {
      bool secret = find(v, {"secret"}) != nullptr;
      const json::value& src = *find(v, {secret ? "secret" : "configMap"});
      std::string obj_name = str(src, {secret ? "secretName" : "name"});
      bool optional = find(src, {"optional"}) && find(src, {"optional"})->is_bool() &&
                      find(src, {"optional"})->as_bool();
      std::string kind = secret ? "secret" : "configmap";
      p.uses.insert(kind + "/" + obj_name);
      auto found = parsed(query(p.ns + "/" + kind + "/" + obj_name));
      if (found.empty() && !optional)
        return fail_pod(p, "CreateContainerConfigError",
                        kind + " \"" + obj_name + "\" not found (volume \"" + name + "\")");
      fs::path dir = pod_dir(p) / "volumes" / kind / name;
      fs::create_directories(dir, ec);
      std::map<std::string, std::string> files;
      if (!found.empty()) {
        auto data = object_data(kind, obj_name, found[0], true);
        if (!data.ok()) return fail_pod(p, "CreateContainerConfigError", data.status.message());
        files = std::move(data.value);
      }
      auto& items = arr(src, {"items"});
      std::map<std::string, std::string> out;
      if (items.empty()) {
        out = files;
      } else {
        for (auto& it : items) {
          std::string key = str(it, {"key"}), path = str(it, {"path"});
          if (!files.count(key)) {
            if (optional) continue;
            return fail_pod(p, "CreateContainerConfigError",
                            kind + " \"" + obj_name + "\" has no key \"" + key + "\"");
          }
          out[path.empty() ? key : path] = files[key];
        }
      }
      int64_t mode = num(src, {"defaultMode"}, 0644);
      if (mode < 0 || mode > 0777)
        return fail_pod(p, "CreateContainerConfigError",
                        "volume \"" + name + "\": defaultMode " + std::to_string(mode) +
                            " is not between 0 and 0777");
      // Files not in the object any more go.
      for (auto& e : fs::directory_iterator(dir, ec))
        if (!out.count(e.path().filename().string())) fs::remove_all(e.path(), ec);
      for (auto& [rel, content] : out) {
        if (rel.find("..") != std::string::npos || (!rel.empty() && rel[0] == '/'))
          return fail_pod(p, "CreateContainerConfigError",
                          "volume \"" + name + "\": path \"" + rel + "\" escapes the volume");
        fs::path target = dir / rel;
        fs::create_directories(target.parent_path(), ec);
        fs::path tmp = target.string() + ".kedge-tmp";
        {
          std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
          f << content;
        }
        fs::permissions(tmp, static_cast<fs::perms>(mode), ec);
        fs::rename(tmp, target, ec);
      }
    } else {
      std::string type = "unknown";
      if (auto* o = v.if_object())
        for (auto& [k, x] : *o)
          if (k != "name") type = std::string(k);
      return fail_pod(p, "CreateContainerConfigError",
                      "volume \"" + name + "\": type " + type + " is not supported by edged");
    }
  }
  p.pod_error.clear();
  p.pod_error_reason.clear();
  p.volumes_ready = true;
  return true;
}

bool Edged::fail_pod(Pod& p, const std::string& reason, const std::string& message) {
  if (p.pod_error != message) log_->warn("pod {}/{}: {}", p.ns, p.name, message);
  p.pod_error = message;
  p.pod_error_reason = reason;
  return false;
}

}  // namespace kedge::edged
