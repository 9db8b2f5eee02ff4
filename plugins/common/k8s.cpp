#include "k8s.h"

#include <boost/json/serialize.hpp>
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

}  // namespace kedge::k8s
