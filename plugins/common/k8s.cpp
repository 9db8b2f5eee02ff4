#include "k8s.h"

#include <boost/json/serialize.hpp>
#include <chrono>
#include <algorithm>
#include <cctype>
#include <ctime>

namespace kedge::k8s {

std::string now_rfc3339() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void api_request(Context& ctx, const std::string& method, const std::string& target,
                 const boost::json::value& body, const std::string& content_type,
                 std::function<void(int64_t, boost::json::value)> done) {
  boost::json::object c{{"method", method}, {"target", target}, {"contentType", content_type}};
  if (!body.is_null())
    c["body"] = body.is_string() ? body : boost::json::value(boost::json::serialize(body));
  ctx.request(
      "apiserver", share(make_message(ctx.name(), "resource", "request", target, std::move(c))),
      std::chrono::seconds(10), [done](Status s, MessagePtr r) {
        if (!s || !r || !r->content.is_object())
          return done(503, boost::json::value(s ? "no answer" : s.message()));
        auto& o = r->content.as_object();
        auto* code = o.if_contains("code");
        auto* b = o.if_contains("body");
        done(code && code->is_int64() ? code->as_int64() : 500, b ? *b : boost::json::value());
      });
}

namespace json = boost::json;

std::map<std::string, std::string> labels_of(const boost::json::value& obj) {
  std::map<std::string, std::string> out;
  auto* o = obj.if_object();
  if (!o) return out;
  auto m = o->find("metadata");
  if (m == o->end() || !m->value().is_object()) return out;
  auto l = m->value().as_object().find("labels");
  if (l == m->value().as_object().end() || !l->value().is_object()) return out;
  for (auto& [k, v] : l->value().as_object())
    if (v.is_string()) out[std::string(k)] = std::string(v.as_string());
  return out;
}

bool Selector::matches(const std::map<std::string, std::string>& labels) const {
  for (auto& r : reqs) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    auto in = [&] {
      return has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    };
    switch (r.op) {
      case Req::Op::kEq:
      case Req::Op::kIn:
        if (!in()) return false;
        break;
      case Req::Op::kNe:
      case Req::Op::kNotIn:
        if (in()) return false;
        break;
      case Req::Op::kExists:
        if (!has) return false;
        break;
      case Req::Op::kNotExists:
        if (has) return false;
        break;
    }
  }
  return true;
}

SelectorResult parse_label_selector(const std::string& s) {
  Selector sel;
  std::vector<std::string> parts;
  int depth = 0;
  std::string cur;
  for (char c : s) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty() || !parts.empty()) parts.push_back(cur);
  auto trim = [](std::string x) {
    while (!x.empty() && x.front() == ' ') x.erase(x.begin());
    while (!x.empty() && x.back() == ' ') x.pop_back();
    return x;
  };
  auto valid = [](const std::string& x) {
    if (x.empty()) return false;
    for (char c : x)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
          c != '/')
        return false;
    return true;
  };
  for (auto& raw : parts) {
    std::string p = trim(raw);
    auto fail = [&](const std::string& why) {
      return SelectorResult{invalid_argument(
          "unable to parse requirement \"" + p + "\" of label selector \"" + s + "\": " + why), {}};
    };
    Selector::Req r;
    size_t pos;
    if (p.empty()) return fail("empty requirement");
    if (p[0] == '!') {
      r.key = trim(p.substr(1));
      r.op = Selector::Req::Op::kNotExists;
    } else if ((pos = p.find(" notin ")) != std::string::npos ||
               (pos = p.find(" in ")) != std::string::npos) {
      bool notin = p.compare(pos, 7, " notin ") == 0;
      r.key = trim(p.substr(0, pos));
      std::string set = trim(p.substr(pos + (notin ? 7 : 4)));
      if (set.size() < 2 || set.front() != '(' || set.back() != ')')
        return fail("expected a parenthesised set of values");
      std::string inner = set.substr(1, set.size() - 2);
      size_t st = 0;
      while (st <= inner.size()) {
        size_t c = inner.find(',', st);
        std::string v = trim(inner.substr(st, c == std::string::npos ? std::string::npos : c - st));
        if (!valid(v)) return fail("invalid value \"" + v + "\"");
        r.values.push_back(v);
        if (c == std::string::npos) break;
        st = c + 1;
      }
      r.op = notin ? Selector::Req::Op::kNotIn : Selector::Req::Op::kIn;
    } else if ((pos = p.find("!=")) != std::string::npos) {
      r.key = trim(p.substr(0, pos));
      r.values = {trim(p.substr(pos + 2))};
      r.op = Selector::Req::Op::kNe;
    } else if ((pos = p.find("==")) != std::string::npos) {
      r.key = trim(p.substr(0, pos));
      r.values = {trim(p.substr(pos + 2))};
    } else if ((pos = p.find('=')) != std::string::npos) {
      r.key = trim(p.substr(0, pos));
      r.values = {trim(p.substr(pos + 1))};
    } else {
      r.key = p;
      r.op = Selector::Req::Op::kExists;
    }
    if (!valid(r.key)) return fail("invalid label key \"" + r.key + "\"");
    for (auto& v : r.values)
      if (!v.empty() && !valid(v)) return fail("invalid value \"" + v + "\"");
    sel.reqs.push_back(std::move(r));
  }
  return {{}, std::move(sel)};
}

}  // namespace kedge::k8s
