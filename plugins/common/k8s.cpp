#include "k8s.h"

#include "kedge/common/json.h"

#include <spdlog/logger.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <chrono>
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

void api_request(Context& ctx, const std::string& apiserver, const std::string& method,
                 const std::string& target, const boost::json::value& body,
                 const std::string& content_type,
                 std::function<void(int64_t, boost::json::value)> done) {
  boost::json::object c{{"method", method}, {"target", target}, {"contentType", content_type}};
  if (!body.is_null())
    c["body"] = body.is_string() ? body : boost::json::value(boost::json::serialize(body));
  ctx.request(
      apiserver, share(make_message(ctx.name(), "resource", "request", target, std::move(c))),
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
      return SelectorResult{invalid_argument("unable to parse requirement \"" + p +
                                             "\" of label selector \"" + s + "\": " + why),
                            {}};
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

// ---- Watches ----

Watches::Watches(Context& ctx, std::string apiserver, Handler on_event,
                 std::chrono::milliseconds retry_after)
    : ctx_(ctx),
      apiserver_(std::move(apiserver)),
      handler_(std::move(on_event)),
      retry_after_(retry_after) {}
Watches::~Watches() { *alive_ = false; }

void Watches::watch(const std::string& path) { start(path, ""); }

void Watches::start(const std::string& path, const std::string& rv) {
  std::string target = path + "?watch=1" + (rv.empty() ? "" : "&resourceVersion=" + rv);
  auto m = make_message(ctx_.name(), "resource", "watch", target, json::object{{"target", target}});
  std::string id = m.header.id;
  if (Status s = ctx_.send(apiserver_, share(std::move(m))); !s) {
    ctx_.logger()->warn("cannot watch {}: {}; retrying", path, s.message());
    return retry_later(path, rv);
  }
  watches_[id] = {path, rv};
}

void Watches::retry_later(const std::string& path, const std::string& rv) {
  auto t = std::make_shared<boost::asio::steady_timer>(ctx_.executor(), retry_after_);
  t->async_wait(
      [this, t, path, rv, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
        auto a = alive.lock();
        if (!ec && a && *a) start(path, rv);
      });
}

bool Watches::on_message(const MessagePtr& m) {
  auto it = watches_.find(m->header.parent_id);
  if (it == watches_.end()) return false;
  std::string type = json_path::string_at(m->content, {"type"});
  auto* obj = json_path::find(m->content, {"object"});
  if (!obj || !obj->is_object()) return true;
  if (type == "ERROR") {
    // 410 Gone: start over from the current state; otherwise resume.
    bool expired = json_path::integer_at(*obj, {"code"}) == 410;
    State w = it->second;
    watches_.erase(it);
    ctx_.logger()->info("watch on {} ended ({}); watching again", w.path,
                        json_path::string_at(*obj, {"message"}));
    retry_later(w.path, expired ? "" : w.rv);
    return true;
  }
  it->second.rv = json_path::string_at(*obj, {"metadata", "resourceVersion"});
  std::string path = it->second.path;  // the handler may add watches
  handler_(path, type, *obj);
  return true;
}

void Watches::stop() {
  *alive_ = false;
  for (auto& [id, w] : watches_) {
    auto m = make_message(ctx_.name(), "resource", "unwatch", "");
    m.header.parent_id = id;
    (void)ctx_.send(apiserver_, share(std::move(m)));
  }
  watches_.clear();
}

}  // namespace kedge::k8s
