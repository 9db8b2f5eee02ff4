#include "channel.h"
#include "contracts/wire.h"

#include <charconv>
#include <vector>

namespace kedge::channel {

namespace {
std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t slash = s.find('/', pos);
    if (slash == std::string_view::npos) slash = s.size();
    out.push_back(s.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}
}  // namespace

std::string node_of(std::string_view resource) {
  auto t = split(resource);
  for (size_t i = 0; i + 1 < t.size(); ++i)
    if (t[i] == "node" && !t[i + 1].empty()) return std::string(t[i + 1]);
  return {};
}

std::string trim_for_edge(std::string_view resource) {
  auto t = split(resource);
  if (t.size() >= 3 && t[0] == "node") {
    size_t second = resource.find('/', resource.find('/') + 1);
    return std::string(resource.substr(second + 1));
  }
  return std::string(resource);
}

std::string prefix_for_cloud(std::string_view node, std::string_view resource) {
  return "node/" + std::string(node) + "/" + std::string(resource);
}

std::string object_key(const Message& m) {
  if (m.content.is_object()) {
    const auto& o = m.content.get_object();
    if (auto* md = o.if_contains("metadata"); md && md->is_object())
      if (auto* uid = md->get_object().if_contains("uid");
          uid && uid->is_string() && !uid->get_string().empty())
        return "uid:" + std::string(uid->get_string());
  }
  return "res:" + m.route.resource;
}

uint64_t parse_rv(std::string_view rv) {
  uint64_t v = 0;
  auto r = std::from_chars(rv.data(), rv.data() + rv.size(), v);
  return r.ec == std::errc() ? v : 0;
}

std::string local_group(std::string_view g) {
  namespace wg = contracts::wire::group;
  namespace lg = contracts::wire::local_group;
  if (g == wg::kResource || g == wg::kFunc) return std::string(lg::kMeta);
  if (g == wg::kTwin) return std::string(lg::kTwin);
  if (g == wg::kUser) return std::string(lg::kBus);
  return {};
}

}  // namespace kedge::channel
