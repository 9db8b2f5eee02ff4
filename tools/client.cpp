// The kedge API client: apply, get, describe, delete, watch, config init.
// Server, token and CA come from ~/.kedge/config (TOML) or from flags.
#include "client.h"

#include <unistd.h>

#include <toml++/toml.h>
#include <boost/json.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "api_client.h"
#include "columns.h"
#include "contracts/apiserver.h"
#include "contracts/modules.h"
#include "kedge/common/json.h"
#include "kedge/common/pki.h"
#include "kedge/core/manifest.h"
#include "resources.h"
#include "yaml.h"

namespace kedge::cli {

namespace fs = std::filesystem;
namespace json = boost::json;
using api::age;
using api::Resource;
constexpr auto& at_value = kedge::json_path::find;
constexpr auto& at = kedge::json_path::scalar_text;

namespace {

// Options common to the client commands, and the positional arguments left.
struct Args {
  Config cfg;
  std::vector<std::string> pos;
  std::vector<std::string> files;  // -f
  std::string output;              // -o
  std::string selector;            // -l
  bool all_namespaces = false;
  bool watch = false;
  bool ns_given = false;
};

Args parse_args(const std::vector<std::string>& in) {
  Args a;
  std::string config_file = config_path().string();
  std::string server, token, ca, ns;
  bool insecure = false;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string& s = in[i];
    auto value = [&](const std::string& flag) -> std::string {
      auto eq = s.find('=');
      if (s.rfind("--", 0) == 0 && eq != std::string::npos) return s.substr(eq + 1);
      if (i + 1 >= in.size()) throw Failure{flag + " needs a value", kUsage};
      return in[++i];
    };
    auto is = [&](const char* flag) {
      return s == flag || s.rfind(std::string(flag) + "=", 0) == 0;
    };
    if (is("--server"))
      server = value("--server");
    else if (is("--token"))
      token = value("--token");
    else if (is("--certificate-authority"))
      ca = value("--certificate-authority");
    else if (is("--config"))
      config_file = value("--config");
    else if (s == "--insecure-skip-tls-verify")
      insecure = true;
    else if (s == "-n" || is("--namespace")) {
      ns = value("--namespace");
      a.ns_given = true;
    } else if (s == "-A" || s == "--all-namespaces")
      a.all_namespaces = true;
    else if (s == "-f" || is("--filename"))
      a.files.push_back(value("-f"));
    else if (s == "-o" || is("--output"))
      a.output = value("-o");
    else if (s == "-l" || is("--selector"))
      a.selector = value("-l");
    else if (s == "-w" || s == "--watch")
      a.watch = true;
    else if (s.size() > 1 && s[0] == '-')
      throw Failure{"unknown flag " + s, kUsage};
    else
      a.pos.push_back(s);
  }
  // The file, then the flags over it.
  std::error_code ec;
  if (fs::exists(config_file, ec)) {
    try {
      auto t = toml::parse_file(config_file);
      a.cfg.server = t["server"].value_or(std::string());
      a.cfg.token = t["token"].value_or(std::string());
      a.cfg.ca_file = t["certificate_authority"].value_or(std::string());
      a.cfg.ns = t["namespace"].value_or(std::string("default"));
      a.cfg.insecure = t["insecure_skip_tls_verify"].value_or(false);
    } catch (const toml::parse_error& e) {
      throw Failure{config_file + ":" + std::to_string(e.source().begin.line) + ":" +
                    std::to_string(e.source().begin.column) + ": " + std::string(e.description())};
    }
  }
  if (!server.empty()) a.cfg.server = server;
  if (!token.empty()) a.cfg.token = token;
  if (!ca.empty()) a.cfg.ca_file = ca;
  if (!ns.empty()) a.cfg.ns = ns;
  if (insecure) a.cfg.insecure = true;
  return a;
}

// Aligned columns, three spaces apart, as kubectl's tabwriter.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<size_t> w(rows[0].size(), 0);
  for (auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  for (auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 3, ' ');
    }
    out << line << "\n";
  }
}

void print_objects(const Resource& r, const std::vector<json::value>& items,
                   const std::string& output, bool all_namespaces, bool is_list) {
  if (output == "json" || output == "yaml") {
    json::value doc;
    if (is_list) {
      json::array a(items.begin(), items.end());
      doc = json::object{{"apiVersion", "v1"}, {"kind", "List"}, {"items", std::move(a)}};
    } else {
      doc = items.at(0);
    }
    if (output == "json")
      std::cout << json::serialize(doc) << "\n";
    else
      std::cout << to_yaml(doc);
    return;
  }
  if (output == "name") {
    for (auto& o : items) {
      std::string kind = r.kind;
      std::transform(kind.begin(), kind.end(), kind.begin(), ::tolower);
      std::cout << kind << "/" << at(o, {"metadata", "name"}) << "\n";
    }
    return;
  }
  if (!output.empty() && output != "wide")
    throw Failure{"unknown output format \"" + output + "\" (use json, yaml, wide or name)",
                  kUsage};
  if (items.empty()) {
    std::cerr << "No resources found\n";
    return;
  }
  bool wide = output == "wide";
  std::vector<std::vector<std::string>> rows;
  auto h = api::columns(r, wide);
  if (all_namespaces && r.namespaced) h.insert(h.begin(), "NAMESPACE");
  rows.push_back(h);
  for (auto& o : items) {
    auto row = api::row(r, o, wide);
    if (all_namespaces && r.namespaced) row.insert(row.begin(), at(o, {"metadata", "namespace"}));
    rows.push_back(std::move(row));
  }
  print_table(std::cout, rows);
}

const Resource& resource_arg(const std::string& s) {
  const Resource* r = api::find_resource(s);
  if (!r) {
    std::string known;
    for (auto& x : api::resources()) known += (known.empty() ? "" : ", ") + x.plural;
    throw Failure{"the server doesn't have a resource type \"" + s + "\" (known: " + known + ")"};
  }
  return *r;
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

// ---- reading manifests ----

struct Manifest {
  std::string where;  // file:line
  json::value obj;
};

std::vector<Manifest> read_manifests(const std::vector<std::string>& files) {
  if (files.empty()) throw Failure{"no manifest: pass -f FILE or -f DIR", kUsage};
  std::vector<fs::path> paths;
  for (auto& f : files) {
    std::error_code ec;
    if (f == "-") {
      paths.push_back("-");
    } else if (fs::is_directory(f, ec)) {
      std::vector<fs::path> in_dir;
      for (auto& e : fs::directory_iterator(f)) {
        auto ext = e.path().extension().string();
        if (ext == ".yaml" || ext == ".yml" || ext == ".json") in_dir.push_back(e.path());
      }
      std::sort(in_dir.begin(), in_dir.end());
      paths.insert(paths.end(), in_dir.begin(), in_dir.end());
    } else if (fs::exists(f, ec)) {
      paths.push_back(f);
    } else {
      throw Failure{"the path \"" + f + "\" does not exist"};
    }
  }
  std::vector<Manifest> out;
  for (auto& p : paths) {
    std::string text;
    if (p == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      text = ss.str();
    } else {
      auto t = pki::read_file(p.string());
      if (!t.ok()) throw Failure{t.status.message()};
      text = t.value;
    }
    std::vector<Document> docs;
    if (Status s = parse_yaml(text, p.string(), docs); !s) throw Failure{s.message()};
    for (auto& d : docs) {
      std::string where = p.string() + ":" + std::to_string(d.line);
      if (!d.value.is_object())
        throw Failure{where + ": a manifest must be an object with apiVersion and kind"};
      // A List holds objects.
      if (at(d.value, {"kind"}) == "List") {
        if (auto* items = d.value.as_object().if_contains("items"); items && items->is_array())
          for (auto& i : items->as_array()) out.push_back({where, i});
        continue;
      }
      out.push_back({where, d.value});
    }
  }
  return out;
}

const Resource& resource_of(const Manifest& m) {
  std::string av = at(m.obj, {"apiVersion"}), kind = at(m.obj, {"kind"});
  if (av.empty() || kind.empty()) throw Failure{m.where + ": apiVersion and kind are required"};
  const Resource* r = api::find_resource(av, kind);
  if (!r) throw Failure{m.where + ": no resource of kind \"" + kind + "\" in \"" + av + "\""};
  if (at(m.obj, {"metadata", "name"}).empty())
    throw Failure{m.where + ": metadata.name is required"};
  return *r;
}

// The JSON merge patch that turns `from` into `to` (RFC 7386).
json::value diff(const json::value& from, const json::value& to) {
  if (!from.is_object() || !to.is_object()) return to;
  json::object patch;
  for (auto& [k, v] : from.as_object())
    if (!to.as_object().contains(k)) patch[k] = nullptr;
  for (auto& [k, v] : to.as_object()) {
    auto* old = from.as_object().if_contains(k);
    if (!old) {
      patch[k] = v;
    } else if (*old != v) {
      patch[k] = old->is_object() && v.is_object() ? diff(*old, v) : v;
    }
  }
  return patch;
}

constexpr const char* kLastApplied = "kubectl.kubernetes.io/last-applied-configuration";

std::string lower_kind(const Resource& r) {
  std::string k = r.kind;
  std::transform(k.begin(), k.end(), k.begin(), ::tolower);
  return k;
}

// ---- commands ----

int cmd_apply(const Args& a) {
  auto manifests = read_manifests(a.files);
  Client c(a.cfg);
  int failures = 0;
  for (auto& m : manifests) {
    const Resource& r = resource_of(m);
    json::value obj = m.obj;
    std::string name = at(obj, {"metadata", "name"});
    std::string ns = at(obj, {"metadata", "namespace"});
    if (ns.empty()) ns = a.cfg.ns;
    if (!r.namespaced) ns.clear();
    obj.as_object()["metadata"].as_object().erase("resourceVersion");
    obj.as_object().erase("status");
    // Remember what was applied, for the next apply's deletions.
    json::value applied = obj;
    auto& md = obj.as_object()["metadata"].as_object();
    if (!md.contains("annotations") || !md["annotations"].is_object())
      md["annotations"] = json::object{};
    md["annotations"].as_object()[kLastApplied] = json::serialize(applied);
    std::string base = r.collection_path(ns);
    std::string label = lower_kind(r) + "/" + name;
    Reply cur = c.call("GET", base + "/" + url_encode(name));
    Reply res;
    std::string verb;
    if (cur.status == 404) {
      res = c.call("POST", base, json::serialize(obj));
      verb = "created";
    } else if (cur.status == 200) {
      json::value last = json::object{};
      std::string prev = at(cur.json, {"metadata", "annotations", kLastApplied});
      json::error_code ec;
      if (!prev.empty()) last = json::parse(prev, ec);
      if (ec) last = json::object{};
      // Fields dropped from the manifest since the last apply are removed;
      // fields others set (status, labels added by controllers) are kept.
      json::value patch = diff(last, applied);
      if (auto* p = patch.if_object()) {
        auto& pm = (*p)["metadata"];
        if (!pm.is_object()) pm = json::object{};
        auto& pa = pm.as_object()["annotations"];
        if (!pa.is_object()) pa = json::object{};
        pa.as_object()[kLastApplied] = json::serialize(applied);
      }
      res = c.call("PATCH", base + "/" + url_encode(name), json::serialize(patch),
                   "application/merge-patch+json");
      verb = at(res.json, {"metadata", "resourceVersion"}) ==
                     at(cur.json, {"metadata", "resourceVersion"})
                 ? "unchanged"
                 : "configured";
    } else {
      res = cur;
    }
    if (res.status >= 300) {
      std::cerr << "error: " << m.where << ": " << label << ": "
                << Client::error_text(res.status, res.body) << "\n";
      ++failures;
      continue;
    }
    std::cout << label << " " << verb << "\n";
  }
  return failures ? 1 : 0;
}

int cmd_get(const Args& a) {
  if (a.pos.empty())
    throw Failure{
        "usage: kedge get KIND [NAME] [-n NS | -A] [-l SELECTOR] [-o json|yaml|wide|name] "
        "[-w]",
        kUsage};
  const Resource& r = resource_arg(a.pos[0]);
  Client c(a.cfg);
  std::string ns = a.all_namespaces ? "" : a.cfg.ns;
  std::string base = r.collection_path(ns);
  if (a.watch) {
    std::string q = "?watch=1";
    if (!a.selector.empty()) q += "&labelSelector=" + url_encode(a.selector);
    if (a.pos.size() > 1) q += "&fieldSelector=" + url_encode("metadata.name=" + a.pos[1]);
    bool first = true;
    c.stream(base + q, [&](const json::value& ev) {
      std::string type = at(ev, {"type"});
      if (type == "ERROR") throw Failure{at(ev, {"object", "message"})};
      auto* obj = ev.as_object().if_contains("object");
      if (!obj) return;
      std::vector<std::vector<std::string>> rows;
      if (first) {
        auto h = api::columns(r, a.output == "wide");
        h.insert(h.begin(), "EVENT");
        rows.push_back(h);
        first = false;
      }
      auto row = api::row(r, *obj, a.output == "wide");
      row.insert(row.begin(), type);
      rows.push_back(row);
      print_table(std::cout, rows);
      std::cout.flush();
    });
    return 0;
  }
  if (a.pos.size() > 1) {
    std::vector<json::value> items;
    for (size_t i = 1; i < a.pos.size(); ++i) {
      Reply g = c.call("GET", base + "/" + url_encode(a.pos[i]));
      if (g.status != 200) throw Failure{Client::error_text(g.status, g.body)};
      items.push_back(g.json);
    }
    print_objects(r, items, a.output, false, items.size() > 1);
    return 0;
  }
  std::string q = a.selector.empty() ? "" : "?labelSelector=" + url_encode(a.selector);
  Reply l = c.call("GET", base + q);
  if (l.status != 200) throw Failure{Client::error_text(l.status, l.body)};
  std::vector<json::value> items(l.json.at("items").as_array().begin(),
                                 l.json.at("items").as_array().end());
  print_objects(r, items, a.output, a.all_namespaces, true);
  return 0;
}

int cmd_describe(const Args& a) {
  if (a.pos.size() != 2) throw Failure{"usage: kedge describe KIND NAME [-n NS]", kUsage};
  const Resource& r = resource_arg(a.pos[0]);
  Client c(a.cfg);
  Reply g = c.call("GET", r.collection_path(a.cfg.ns) + "/" + url_encode(a.pos[1]));
  if (g.status != 200) throw Failure{Client::error_text(g.status, g.body)};
  auto& o = g.json.as_object();
  auto line = [](const std::string& k, const std::string& v) {
    std::cout << k << ":" << std::string(k.size() < 18 ? 18 - k.size() : 1, ' ') << v << "\n";
  };
  line("Name", at(g.json, {"metadata", "name"}));
  if (r.namespaced) line("Namespace", at(g.json, {"metadata", "namespace"}));
  line("Kind", r.kind);
  line("API Version", r.api_version());
  auto map_of = [&](const char* field) {
    std::string out;
    if (auto* md = o.if_contains("metadata"))
      if (auto* m = md->as_object().if_contains(field); m && m->is_object())
        for (auto& [k, v] : m->as_object()) {
          if (std::string(k) == kLastApplied) continue;
          out += (out.empty() ? "" : "\n" + std::string(20, ' ')) + std::string(k) + "=" +
                 (v.is_string() ? std::string(v.as_string()) : json::serialize(v));
        }
    return out.empty() ? std::string("<none>") : out;
  };
  line("Labels", map_of("labels"));
  line("Annotations", map_of("annotations"));
  line("UID", at(g.json, {"metadata", "uid"}));
  line("Resource Version", at(g.json, {"metadata", "resourceVersion"}));
  line("Created", at(g.json, {"metadata", "creationTimestamp"}) + " (" + age(g.json) + " ago)");
  for (const char* part : {"spec", "data", "status"}) {
    auto* v = o.if_contains(part);
    if (!v) continue;
    std::string title = part;
    title[0] = static_cast<char>(std::toupper(title[0]));
    std::cout << title << ":\n";
    std::istringstream y(to_yaml(*v));
    for (std::string l; std::getline(y, l);) std::cout << "  " << l << "\n";
  }
  return 0;
}

int cmd_delete(const Args& a) {
  Client c(a.cfg);
  std::vector<std::pair<const Resource*, std::pair<std::string, std::string>>> targets;
  if (!a.files.empty()) {
    for (auto& m : read_manifests(a.files)) {
      const Resource& r = resource_of(m);
      std::string ns = at(m.obj, {"metadata", "namespace"});
      targets.push_back({&r, {ns.empty() ? a.cfg.ns : ns, at(m.obj, {"metadata", "name"})}});
    }
  } else {
    if (a.pos.size() < 2) throw Failure{"usage: kedge delete KIND NAME... | -f FILE", kUsage};
    const Resource& r = resource_arg(a.pos[0]);
    for (size_t i = 1; i < a.pos.size(); ++i) targets.push_back({&r, {a.cfg.ns, a.pos[i]}});
  }
  int failures = 0;
  for (auto& [r, where] : targets) {
    Reply d = c.call("DELETE", r->collection_path(where.first) + "/" + url_encode(where.second));
    if (d.status != 200) {
      std::cerr << "error: " << Client::error_text(d.status, d.body) << "\n";
      ++failures;
      continue;
    }
    std::cout << lower_kind(*r) << " \"" << where.second << "\" deleted\n";
  }
  return failures ? 1 : 0;
}

// kedge create token SA [-n NS] [--duration D]: a TokenRequest, as kubectl
// create token. D is seconds, or a number with s, m or h.
int cmd_create(const std::vector<std::string>& args) {
  const std::string usage = "usage: kedge create token SERVICEACCOUNT [-n NS] [--duration 1h]";
  if (args.empty() || args[0] != "token") throw Failure{usage, kUsage};
  int64_t seconds = 3600;
  std::vector<std::string> rest;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string v;
    if (args[i] == "--duration") {
      if (i + 1 >= args.size()) throw Failure{"--duration needs a value", kUsage};
      v = args[++i];
    } else if (args[i].rfind("--duration=", 0) == 0) {
      v = args[i].substr(11);
    } else {
      rest.push_back(args[i]);
      continue;
    }
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    std::string unit = end ? std::string(end) : "";
    int64_t mult = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
    if (end == v.c_str() || mult == 0 || n <= 0)
      throw Failure{"--duration \"" + v + "\" is not a duration (e.g. 600, 10m, 2h)", kUsage};
    seconds = n * mult;
  }
  Args a = parse_args(rest);
  if (a.pos.size() != 1) throw Failure{usage, kUsage};
  Client c(a.cfg);
  json::object body{{"apiVersion", "authentication.k8s.io/v1"},
                    {"kind", "TokenRequest"},
                    {"spec", json::object{{"expirationSeconds", seconds}}}};
  Reply r = c.call("POST",
                   "/api/v1/namespaces/" + url_encode(a.cfg.ns) + "/serviceaccounts/" +
                       url_encode(a.pos[0]) + "/token",
                   json::serialize(body));
  if (r.status != 201) throw Failure{Client::error_text(r.status, r.body)};
  std::cout << at(r.json, {"status", "token"}) << "\n";
  return 0;
}

// Writes ~/.kedge/config for the cloud of a manifest on this machine.
int cmd_config(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "init")
    throw Failure{"usage: kedge config init --manifest CLOUD.toml [--server URL] [--config PATH]",
                  kUsage};
  std::string manifest, server, out = config_path().string();
  for (size_t i = 1; i < args.size(); ++i) {
    if (i + 1 >= args.size()) throw Failure{args[i] + " needs a value", kUsage};
    if (args[i] == "--manifest")
      manifest = args[++i];
    else if (args[i] == "--server")
      server = args[++i];
    else if (args[i] == "--config")
      out = args[++i];
    else
      throw Failure{"unknown argument " + args[i], kUsage};
  }
  if (manifest.empty()) throw Failure{"kedge config init needs --manifest CLOUD.toml", kUsage};
  auto mr = core::parse_manifest_file(manifest);
  if (!mr.ok()) {
    std::string all;
    for (auto& e : mr.errors) all += (all.empty() ? "" : "\n") + e;
    throw Failure{all, kUsage};
  }
  int64_t port = kedge::contracts::apiserver::kDefaultPort;
  bool found = false;
  for (auto& p : mr.manifest->plugins)
    if (p.name == kedge::contracts::kApiServer.default_name && p.enabled) {
      found = true;
      if (p.config)
        if (auto v = (*p.config)["port"].value<int64_t>()) port = *v;
    }
  if (!found) throw Failure{manifest + ": no enabled apiserver plugin"};
  const fs::path& data_dir = mr.manifest->agent.data_dir;
  auto token = pki::read_file(kedge::contracts::apiserver::admin_token_file(data_dir).string());
  if (!token.ok())
    throw Failure{token.status.message() + " (has the cloud run once to create it?)"};
  std::string tok = token.value.substr(0, token.value.find('\n'));
  if (server.empty()) server = "https://127.0.0.1:" + std::to_string(port);
  std::error_code ec;
  fs::create_directories(fs::path(out).parent_path(), ec);
  std::string text = "# written by kedge config init from " + manifest + "\n" + "server = \"" +
                     server + "\"\n" + "token = \"" + tok + "\"\n" + "certificate_authority = \"" +
                     fs::absolute(kedge::contracts::apiserver::ca_file(data_dir)).string() +
                     "\"\n" + "namespace = \"default\"\n";
  if (Status s = pki::write_file(out, text, true); !s) throw Failure{s.message()};
  std::cout << "wrote " << out << " (server " << server << ")\n";
  return 0;
}

}  // namespace

int client_main(const std::string& cmd, const std::vector<std::string>& args) {
  try {
    if (cmd == "config") return cmd_config(args);
    if (cmd == "create") return cmd_create(args);
    Args a = parse_args(args);
    if (cmd == "apply") return cmd_apply(a);
    if (cmd == "get") return cmd_get(a);
    if (cmd == "describe") return cmd_describe(a);
    if (cmd == "delete") return cmd_delete(a);
    if (cmd == "watch") {
      a.watch = true;
      return cmd_get(a);
    }
    std::cerr << "error: unknown command '" << cmd << "'\n";
    return kUsage;
  } catch (const Failure& f) {
    std::cerr << "error: " << f.message << "\n";
    return f.code;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace kedge::cli
