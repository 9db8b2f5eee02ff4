// Small helpers for plugins that deal in Kubernetes objects.
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kedge/context.h"

namespace kedge::k8s {

// The current time as Kubernetes writes timestamps (RFC 3339, UTC, seconds).
std::string now_rfc3339();

// One call to the apiserver plugin's message API (docs/controllers.md):
// `done(code, body)` with the HTTP status and JSON body, or 503 and the
// reason when apiserver did not answer within 10 s. `body` null: no body;
// a string is sent as is, anything else serialized.
// `apiserver` is the module's name (contracts::kApiServer's config key).
void api_request(Context& ctx, const std::string& apiserver, const std::string& method,
                 const std::string& target, const boost::json::value& body,
                 const std::string& content_type,
                 std::function<void(int64_t, boost::json::value)> done);

// Label selectors: "a=b", "a==b", "a!=b", "a", "!a", "a in (x,y)",
// "a notin (x,y)", joined by commas.
struct Selector {
  struct Req {
    std::string key;
    enum class Op { kEq, kNe, kIn, kNotIn, kExists, kNotExists } op = Op::kEq;
    std::vector<std::string> values;
  };
  std::vector<Req> reqs;
  bool matches(const std::map<std::string, std::string>& labels) const;
};
using SelectorResult = Result<Selector>;
// The error names the offending requirement.
SelectorResult parse_label_selector(const std::string& s);
// metadata.labels of an object.
std::map<std::string, std::string> labels_of(const boost::json::value& obj);

// Watches on the apiserver plugin's message API, kept up: a watch that ends
// resumes from the last resourceVersion seen, or starts over (a fresh list
// and watch) after 410 Gone, as client-go's reflector does; while apiserver
// is not there, every second. Runs on the plugin's executor.
class Watches {
 public:
  // (path watched, event type ADDED/MODIFIED/DELETED, object)
  using Handler = std::function<void(const std::string& path, const std::string& type,
                                     const boost::json::value& object)>;
  Watches(Context& ctx, std::string apiserver, Handler on_event,
          std::chrono::milliseconds retry_after = std::chrono::seconds(1));
  ~Watches();
  Watches(const Watches&) = delete;
  Watches& operator=(const Watches&) = delete;

  // Starts watching a collection path, e.g. "/api/v1/pods".
  void watch(const std::string& path);
  // Takes a "watchevent" message; false when it is not for one of these.
  bool on_message(const MessagePtr& m);
  // Ends every watch (unwatch to apiserver); no retry fires afterwards.
  void stop();

 private:
  struct State {
    std::string path, rv;  // the last resourceVersion seen
  };
  void start(const std::string& path, const std::string& rv);
  void retry_later(const std::string& path, const std::string& rv);

  Context& ctx_;
  std::string apiserver_;
  Handler handler_;
  std::chrono::milliseconds retry_after_;
  std::map<std::string, State> watches_;  // watch message id -> state
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kedge::k8s
