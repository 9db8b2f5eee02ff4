#include "kedge/core/resolve.h"

#include <algorithm>
#include <map>
#include <set>

#include "config_value.h"

namespace kedge::core {

namespace fs = std::filesystem;

Config validate_config(const PluginDescriptor& d, const toml::table* table, const SourceLoc& entry,
                       const std::string& plugin_name, std::vector<std::string>& errors) {
  boost::json::object values;
  std::map<std::string, const ConfigKey*, std::less<>> schema;
  for (size_t i = 0; i < d.config_key_count; ++i) schema[d.config_keys[i].name] = &d.config_keys[i];
  const std::string where = "plugin '" + plugin_name + "': config";
  auto loc = [&](const toml::source_region& r) {
    return SourceLoc{entry.file, r.begin.line, r.begin.column}.str();
  };
  if (table) {
    for (auto&& [k, v] : *table) {
      auto it = schema.find(k.str());
      if (it == schema.end()) {
        std::string known;
        for (auto& [name, _] : schema) known += (known.empty() ? "" : ", ") + name;
        errors.push_back(
            loc(k.source()) + ": " + where + ": unknown key '" + std::string(k.str()) + "' (" +
            (known.empty() ? "the plugin takes no config" : "known keys: " + known) + ")");
        continue;
      }
      std::string err;
      auto value = convert_config_value(*it->second, v, err);
      if (!value) {
        errors.push_back(loc(v.source()) + ": " + where + "." + std::string(k.str()) + ": " + err);
        continue;
      }
      values[k.str()] = std::move(*value);
    }
  }
  for (auto& [name, key] : schema) {
    if (values.contains(name)) continue;
    if (key->required) {
      std::string at = table ? loc(table->source()) : entry.str();
      errors.push_back(at + ": " + where + ": missing required key '" + name + "' (" +
                       config_type_name(key->type) + ": " +
                       (key->description ? key->description : "") + ")");
    } else if (key->default_value) {
      std::string err;
      if (auto v = parse_default(*key, err)) values[name] = std::move(*v);
    }
  }
  return Config(std::move(values));
}

Resolution resolve(const Manifest& m) {
  Resolution res;
  auto& errors = res.errors;
  std::vector<ResolvedPlugin> enabled;
  std::map<std::string, const PluginEntry*> disabled;

  for (const PluginEntry& e : m.plugins) {
    if (!e.enabled) {
      disabled[e.name] = &e;
      continue;
    }
    fs::path file;
    if (!e.library.empty()) {
      fs::path lib(e.library);
      if (lib.has_parent_path()) {
        file = lib.is_absolute() ? lib : m.base_dir / lib;
      } else {
        for (const auto& dir : m.agent.plugin_dirs)
          if (fs::exists(dir / lib)) {
            file = dir / lib;
            break;
          }
        if (file.empty()) file = m.agent.plugin_dirs.empty() ? lib : m.agent.plugin_dirs[0] / lib;
      }
    } else {
      std::string want = library_file_name(e.name);
      for (const auto& dir : m.agent.plugin_dirs)
        if (fs::exists(dir / want)) {
          file = dir / want;
          break;
        }
      if (file.empty()) {
        std::string dirs;
        for (const auto& d : m.agent.plugin_dirs) dirs += (dirs.empty() ? "" : ", ") + d.string();
        errors.push_back(e.loc.str() + ": unknown plugin '" + e.name + "': no " + want + " in " +
                         (dirs.empty() ? "(no plugin_dirs)" : dirs) +
                         " (set agent.plugin_dirs or the plugin's library)");
        continue;
      }
    }
    LoadResult lr = load_plugin(file.lexically_normal());
    if (!lr.status) {
      errors.push_back(e.loc.str() + ": plugin '" + e.name + "': " + lr.status.message());
      continue;
    }
    const PluginDescriptor& d = *lr.value.descriptor;
    if (e.name != d.name) {
      errors.push_back(e.loc.str() + ": plugin '" + e.name + "': library " +
                       lr.value.file.string() + " provides plugin '" + d.name + "', not '" +
                       e.name + "'");
      continue;
    }
    ResolvedPlugin rp;
    rp.entry = &e;
    rp.plugin = std::move(lr.value);
    rp.config = validate_config(d, e.config, e.loc, e.name, errors);
    for (size_t i = 0; i < d.dependency_count; ++i) rp.dependencies.emplace_back(d.dependencies[i]);
    enabled.push_back(std::move(rp));
  }

  std::map<std::string, size_t> index;
  for (size_t i = 0; i < enabled.size(); ++i) index[enabled[i].entry->name] = i;
  bool deps_ok = true;
  for (const auto& rp : enabled) {
    for (const auto& dep : rp.dependencies) {
      if (index.count(dep)) continue;
      deps_ok = false;
      if (disabled.count(dep))
        errors.push_back(rp.entry->loc.str() + ": plugin '" + rp.entry->name + "' depends on '" +
                         dep + "', which is disabled (at " + disabled[dep]->loc.str() + ")");
      else
        errors.push_back(rp.entry->loc.str() + ": plugin '" + rp.entry->name + "' depends on '" +
                         dep + "', which is not in the manifest (missing dependency)");
    }
  }
  if (!deps_ok || !errors.empty()) return res;

  // Who sends what to whom: each declared peer resolves to a loaded module.
  for (const auto& rp : enabled) {
    const PluginDescriptor& d = *rp.plugin.descriptor;
    for (size_t i = 0; i < d.peer_count; ++i) {
      const PeerDecl& p = d.peers[i];
      std::string module = rp.config.get_string(p.config_key);
      std::string sends = p.sends ? p.sends : "";
      SourceLoc at = rp.entry->loc;
      if (rp.entry->config)
        if (const toml::node* n = rp.entry->config->get(p.config_key))
          at = SourceLoc{rp.entry->loc.file, n->source().begin.line, n->source().begin.column};
      if (!module.empty() && index.count(module)) {
        res.peers.push_back({rp.entry->name, module, sends, true});
      } else if (p.optional) {
        res.peers.push_back({rp.entry->name, module, sends, false});
      } else {
        res.peer_errors.push_back(at.str() + ": plugin '" + rp.entry->name + "': config." +
                                  p.config_key + " names module '" + module +
                                  "', which is not in the manifest (" + rp.entry->name +
                                  " sends it " + sends + ")");
      }
    }
  }

  // Kahn's algorithm; among ready plugins the earliest in the manifest goes first.
  std::vector<size_t> indegree(enabled.size(), 0);
  std::vector<std::vector<size_t>> dependents(enabled.size());
  for (size_t i = 0; i < enabled.size(); ++i)
    for (const auto& dep : enabled[i].dependencies) {
      ++indegree[i];
      dependents[index[dep]].push_back(i);
    }
  std::set<size_t> ready;
  for (size_t i = 0; i < enabled.size(); ++i)
    if (!indegree[i]) ready.insert(i);
  std::vector<size_t> order;
  while (!ready.empty()) {
    size_t i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (size_t j : dependents[i])
      if (--indegree[j] == 0) ready.insert(j);
  }
  if (order.size() != enabled.size()) {
    // Find and print one cycle: walk dependencies among the unordered plugins.
    std::set<size_t> left;
    for (size_t i = 0; i < enabled.size(); ++i)
      if (indegree[i]) left.insert(i);
    size_t cur = *left.begin();
    std::vector<size_t> path;
    std::map<size_t, size_t> pos;
    while (!pos.count(cur)) {
      pos[cur] = path.size();
      path.push_back(cur);
      for (const auto& dep : enabled[cur].dependencies)
        if (left.count(index[dep])) {
          cur = index[dep];
          break;
        }
    }
    std::string cycle;
    for (size_t k = pos[cur]; k < path.size(); ++k) cycle += enabled[path[k]].entry->name + " -> ";
    cycle += enabled[cur].entry->name;
    errors.push_back(enabled[cur].entry->loc.str() + ": dependency cycle: " + cycle +
                     " (each depends on the next)");
    return res;
  }
  for (size_t i : order) res.order.push_back(std::move(enabled[i]));
  return res;
}

}  // namespace kedge::core
