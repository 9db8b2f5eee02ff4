// A kernel inside a test: load plugins from a manifest given as text, inject
// messages, and capture what the plugins send.
//
//   kedge::testing::Harness h(R"(
//     [agent]
//     plugin_dirs = ["/path/to/plugins"]
//     [[plugin]]
//     name = "echo"
//   )");
//   auto& out = h.capture("probe", "probe-group");
//   ASSERT_TRUE(h.start());
//   auto [st, resp] = h.request("echo", kedge::make_message("probe", "", "query", "x"), 1s);
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kedge/core/kernel.h"
#include "kedge/message.h"
#include "kedge/status.h"

namespace kedge::testing {

using namespace std::chrono_literals;

// A module that records every message it receives.
class Capture {
 public:
  using Predicate = std::function<bool(const Message&)>;
  using Responder = std::function<std::optional<Message>(const Message&)>;

  // Waits until a message matching `pred` (any message if empty) has been
  // received, and returns it; null after `timeout`. Each message is returned
  // at most once.
  MessagePtr wait_for(Predicate pred = {}, std::chrono::milliseconds timeout = 5s);
  // Waits until at least n messages have been received in total.
  bool wait_count(size_t n, std::chrono::milliseconds timeout = 5s);
  size_t count() const;
  std::vector<MessagePtr> messages() const;
  // Answers each request (message with a non-empty msg_id the sender waits
  // for) with what the responder returns; std::nullopt means no answer.
  void set_responder(Responder r);

  const std::string& name() const { return name_; }

 private:
  friend class Harness;
  void on_message(const MessagePtr& m);

  std::string name_;
  std::function<Status(MessagePtr)> respond_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<MessagePtr> all_;
  std::vector<bool> taken_;
  Responder responder_;
};

class Harness {
 public:
  // `manifest_toml` is a complete manifest. Relative paths resolve against
  // `base_dir` (default: a fresh temporary directory, also the default data_dir).
  explicit Harness(std::string manifest_toml, std::filesystem::path base_dir = {});
  ~Harness();

  // Parse and resolve errors (empty when the manifest is fine).
  const std::vector<std::string>& errors() const { return errors_; }

  // Adds a capture module; call before start().
  Capture& capture(const std::string& name, const std::string& group = {});

  Status start();
  void stop();

  // Inject messages as the module `from` (default: an external sender).
  Status send(const std::string& to, Message m, std::chrono::milliseconds wait = 0ms);
  Status send_to_group(const std::string& group, Message m);
  std::pair<Status, MessagePtr> request(const std::string& to, Message m,
                                        std::chrono::milliseconds timeout = 5s);

  core::Kernel& kernel();
  // The agent's metrics in Prometheus text format.
  std::string metrics_text() { return kernel().metrics().prometheus_text(); }
  const std::filesystem::path& base_dir() const { return base_dir_; }
  // A TCP port on 127.0.0.1 that was free a moment ago (for plugins under
  // test that listen).
  static uint16_t free_port();
  // Polls `cond` until it holds or `timeout` passes.
  static bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 5s);

 private:
  std::filesystem::path base_dir_;
  bool own_dir_ = false;
  std::vector<std::string> errors_;
  std::unique_ptr<core::Manifest> manifest_;
  std::unique_ptr<core::Kernel> kernel_;
  std::deque<Capture> captures_;
};

}  // namespace kedge::testing
