#include "kedge/core/manifest.h"

#include "config_value.h"
#include "kedge/core/loader.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace kedge::core {

namespace fs = std::filesystem;

std::string SourceLoc::str() const {
  if (line == 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace {

const std::set<std::string, std::less<>> kLogLevels = {"trace", "debug",    "info", "warn",
                                                       "error", "critical", "off"};

// Reads the keys of one table, recording errors with their positions and
// remembering which keys were consumed so the rest can be reported as unknown.
class TableReader {
 public:
  TableReader(const toml::table& t, std::string where, const std::string& file,
              std::vector<std::string>& errors)
      : t_(t), where_(std::move(where)), file_(file), errors_(errors) {}

  SourceLoc loc(const toml::node& n) const {
    return {file_, n.source().begin.line, n.source().begin.column};
  }
  SourceLoc table_loc() const { return loc(t_); }
  void set_where(std::string where) { where_ = std::move(where); }

  void error(const SourceLoc& at, const std::string& what) {
    errors_.push_back(at.str() + ": " + what);
  }

  const toml::node* get(std::string_view key) {
    seen_.insert(std::string(key));
    return t_.get(key);
  }

  bool expect(const toml::node* n, std::string_view key, toml::node_type type,
              const char* expected) {
    if (n->type() == type) return true;
    error(loc(*n), where_ + "." + std::string(key) + ": expected " + expected + ", got " +
                       toml_type_name(n->type()));
    return false;
  }

  void read_string(std::string_view key, std::string& out, bool required = false) {
    const toml::node* n = get(key);
    if (!n) {
      if (required)
        error(table_loc(), where_ + ": missing required key '" + std::string(key) + "' (a string)");
      return;
    }
    if (expect(n, key, toml::node_type::string, "a string")) out = *n->value<std::string>();
  }
  void read_bool(std::string_view key, bool& out) {
    const toml::node* n = get(key);
    if (n && expect(n, key, toml::node_type::boolean, "a boolean")) out = *n->value<bool>();
  }
  template <class Int>
  void read_int(std::string_view key, Int& out, int64_t min, int64_t max) {
    const toml::node* n = get(key);
    if (!n || !expect(n, key, toml::node_type::integer, "an integer")) return;
    int64_t v = *n->value<int64_t>();
    if (v < min || v > max) {
      error(loc(*n), where_ + "." + std::string(key) + ": " + std::to_string(v) +
                         " is out of range [" + std::to_string(min) + ", " + std::to_string(max) +
                         "]");
      return;
    }
    out = static_cast<Int>(v);
  }
  void read_ms(std::string_view key, std::chrono::milliseconds& out, int64_t min, int64_t max) {
    int64_t v = out.count();
    read_int(key, v, min, max);
    out = std::chrono::milliseconds{v};
  }
  void read_log_level(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (!n || !expect(n, key, toml::node_type::string, "a string")) return;
    std::string v = *n->value<std::string>();
    if (!kLogLevels.count(v)) {
      error(loc(*n), where_ + "." + std::string(key) + ": unknown log level '" + v +
                         "' (expected trace, debug, info, warn, error, critical or off)");
      return;
    }
    out = v;
  }
  const toml::table* read_table(std::string_view key) {
    const toml::node* n = get(key);
    if (!n || !expect(n, key, toml::node_type::table, "a table")) return nullptr;
    return n->as_table();
  }

  void reject_unknown_keys() {
    for (auto&& [k, v] : t_) {
      if (seen_.count(k.str())) continue;
      std::string known;
      for (auto& s : seen_) known += (known.empty() ? "" : ", ") + s;
      error(
          {file_, k.source().begin.line, k.source().begin.column},
          where_ + ": unknown key '" + std::string(k.str()) + "' (expected one of: " + known + ")");
    }
  }

 private:
  const toml::table& t_;
  std::string where_;
  const std::string& file_;
  std::vector<std::string>& errors_;
  std::set<std::string, std::less<>> seen_;
};

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "kedge-node";
  return buf;
}

fs::path anchor(const fs::path& base, const fs::path& p) {
  return (p.is_absolute() ? p : base / p).lexically_normal();
}

void read_agent(TableReader& r, AgentSettings& a, const fs::path& base) {
  // Every key is read (and so known) even when absent.
  r.read_string("node_name", a.node_name);
  std::string data_dir;
  r.read_string("data_dir", data_dir);
  a.data_dir = anchor(base, data_dir.empty() ? "data" : data_dir);
  r.read_log_level("log_level", a.log_level);
  r.read_int("worker_threads", a.worker_threads, 1, 64);
  r.read_int("queue_capacity", a.queue_capacity, 1, 1 << 24);
  r.read_string("metrics_file", a.metrics_file);
  r.read_ms("metrics_interval_ms", a.metrics_interval, 100, 3600 * 1000);
  if (const toml::node* n = r.get("plugin_dirs")) {
    const toml::array* arr = n->as_array();
    if (!arr) {
      r.expect(n, "plugin_dirs", toml::node_type::array, "an array of strings");
    } else {
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = *arr->get(i);
        if (!e.is_string()) {
          r.error(r.loc(e), "agent.plugin_dirs[" + std::to_string(i) +
                                "]: expected a string, got " + toml_type_name(e.type()));
          continue;
        }
        a.plugin_dirs.push_back(anchor(base, *e.value<std::string>()));
      }
    }
  }
  r.reject_unknown_keys();
}

void read_restart(const toml::table& t, RestartPolicy& p, const std::string& where,
                  const std::string& file, std::vector<std::string>& errors) {
  TableReader r(t, where, file, errors);
  std::string policy;
  r.read_string("policy", policy);
  if (policy == "never")
    p.kind = RestartPolicy::Kind::kNever;
  else if (policy == "on-failure" || policy.empty())
    p.kind = RestartPolicy::Kind::kOnFailure;
  else
    r.error(r.loc(*t.get("policy")), where + ".policy: unknown restart policy '" + policy +
                                         "' (expected \"on-failure\" or \"never\")");
  r.read_ms("initial_backoff_ms", p.initial_backoff, 1, 3600 * 1000);
  r.read_ms("max_backoff_ms", p.max_backoff, 1, 24 * 3600 * 1000);
  r.read_int("max_restarts", p.max_restarts, 0, 1'000'000);
  if (p.max_backoff < p.initial_backoff)
    r.error(r.table_loc(), where + ": max_backoff_ms is smaller than initial_backoff_ms");
  r.reject_unknown_keys();
}

bool valid_module_name(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return s[0] != '-' && s[0] != '_';
}

ManifestResult check(std::shared_ptr<toml::table> root, const std::string& file,
                     const fs::path& base_dir) {
  ManifestResult res;
  auto& errors = res.errors;
  Manifest m;
  m.file = file;
  m.base_dir = base_dir;
  m.root = root;
  TableReader top(*root, "manifest", file, errors);
  if (const toml::table* agent = top.read_table("agent")) {
    TableReader r(*agent, "agent", file, errors);
    read_agent(r, m.agent, base_dir);
  } else {
    m.agent.data_dir = anchor(base_dir, "data");
  }
  if (m.agent.node_name.empty()) m.agent.node_name = host_name();
  if (m.agent.plugin_dirs.empty()) {
    if (auto dir = default_plugin_dir(); !dir.empty()) m.agent.plugin_dirs.push_back(dir);
  }

  std::set<std::string> names;
  if (const toml::node* pn = top.get("plugin")) {
    const toml::array* arr = pn->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      top.error(top.loc(*pn), "plugin: expected an array of tables ([[plugin]] entries), got " +
                                  std::string(toml_type_name(pn->type())));
    } else {
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& t = *arr->get(i)->as_table();
        std::string where = "plugin[" + std::to_string(i) + "]";
        TableReader r(t, where, file, errors);
        PluginEntry e;
        e.loc = r.table_loc();
        r.read_string("name", e.name, true);
        if (!e.name.empty()) {
          where = "plugin '" + e.name + "'";
          r.set_where(where);
          if (!valid_module_name(e.name))
            r.error(r.loc(*t.get("name")), where + ": invalid name (use a-z, 0-9, '-' and '_')");
          else if (!names.insert(e.name).second)
            r.error(r.loc(*t.get("name")),
                    "duplicate plugin name '" + e.name + "' (each [[plugin]] needs a unique name)");
        }
        r.read_string("library", e.library);
        r.read_bool("enabled", e.enabled);
        r.read_bool("required", e.required);
        r.read_log_level("log_level", e.log_level);
        r.read_int("queue_capacity", e.queue_capacity, 1, 1 << 24);
        if (const toml::table* rt = r.read_table("restart"))
          read_restart(*rt, e.restart, where + ".restart", file, errors);
        e.config = r.read_table("config");
        r.reject_unknown_keys();
        if (e.queue_capacity == 0) e.queue_capacity = m.agent.queue_capacity;
        if (e.log_level.empty()) e.log_level = m.agent.log_level;
        m.plugins.push_back(std::move(e));
      }
    }
  }
  top.reject_unknown_keys();
  if (errors.empty()) res.manifest = std::move(m);
  return res;
}

ManifestResult syntax_error(const toml::parse_error& err, const std::string& file) {
  ManifestResult res;
  SourceLoc at{file, err.source().begin.line, err.source().begin.column};
  res.errors.push_back(at.str() + ": TOML syntax error: " + std::string(err.description()));
  return res;
}

}  // namespace

ManifestResult parse_manifest_text(std::string_view text, const std::string& file,
                                   const fs::path& base_dir) {
  try {
    auto root = std::make_shared<toml::table>(toml::parse(text, file));
    return check(std::move(root), file, base_dir);
  } catch (const toml::parse_error& err) {
    return syntax_error(err, file);
  }
}

ManifestResult parse_manifest_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    ManifestResult res;
    res.errors.push_back(file.string() + ": cannot open manifest: " + std::strerror(errno));
    return res;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  fs::path base = fs::absolute(file).parent_path();
  return parse_manifest_text(ss.str(), file.string(), base);
}

}  // namespace kedge::core
