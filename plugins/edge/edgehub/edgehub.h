// edgehub's one class, declared for the files that implement it:
// edgehub.cpp (the plugin, the link, downstream and upstream) and
// certificates.cpp (joining with a token and certificate rotation). Not
// installed: the plugin's private interior.
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include "kedge/common/net.h"
#include "kedge/common/sqlite.h"
#include "kedge/plugin.h"
#include "reliable_queue.h"

namespace kedge::edgehub {

namespace fs = std::filesystem;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using Clock = std::chrono::steady_clock;

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// The config, read once in init (kedge/settings.h).
struct EdgeHubSettings {
  std::string server{};
  std::string http_server{};
  std::string project_id{};
  std::string token{};
  std::string token_file{};
  int64_t heartbeat_s{};
  int64_t message_qps{};
  int64_t message_burst{};
  int64_t connect_timeout_s{};
  int64_t reconnect_min_ms{};
  int64_t reconnect_max_ms{};
  int64_t ack_timeout_ms{};
  bool expect_acks{};
  int64_t max_frame_bytes{};
  bool rotate_certificates{};
};

class EdgeHub final : public kedge::Plugin {
 public:
  kedge::Status init(kedge::Context& ctx, const kedge::Config& cfg) override;
  kedge::Status start() override;
  kedge::Status stop() override;
  // A message from a local plugin, for the cloud.
  void on_message(const MessagePtr& msg) override;

 private:
  // ---- joining and certificate rotation (certificates.cpp) ----
  bool have_certificate() const;
  void join(std::function<void(Status)> done);
  // An expired certificate cannot renew itself: join again with the token.
  bool certificate_expired();
  // Renews the certificate at a random point between 70% and 90% of its
  // lifetime, with the current certificate as the credential, then
  // reconnects with the new one (the outbox and the cloud's queue carry what
  // is in flight across the reconnect).
  void schedule_rotation();
  void rotate(std::chrono::seconds retry);

  // ---- the link (edgehub.cpp) ----
  // Moves a renewed key and certificate into place (both .new files exist
  // only once both are complete).
  void finish_switch();
  void connect();
  std::map<std::string, std::string> connect_headers() const;
  void connect_failed(const std::string& why);
  // Exponential back-off with full jitter in [base/2, base].
  std::chrono::milliseconds next_backoff();
  void on_connected(net::WsPtr c);
  void on_disconnected(const Status& why);
  void notify_link(const char* state);
  void schedule_heartbeat();

  // ---- downstream ----
  void on_text(std::string&& text);
  void on_cloud_response(Message&& m);
  // A local plugin's response: an ACK of a cloud message (after it persisted
  // it) or an answer to a cloud request. Either goes up at once.
  void forward_response(const Message& m);
  void ack_cloud(const Message& m);
  uint64_t applied_rv(const std::string& key);

  // ---- upstream ----
  // The object a whole-status report is about; "" for anything else.
  static std::string status_key(const Message& m);
  Status load_outbox();
  // Sends outbox entries that are due, within the QPS/burst budget.
  void pump();

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  EdgeHubSettings s_;
  std::string node_;
  HostPort server_, http_server_;
  fs::path dir_;
  std::string ca_pem_;
  std::unique_ptr<kedge::sqlite::Db> db_;
  std::unique_ptr<kedge::sqlite::GroupCommit> commit_;
  kedge::sqlite::Stmt set_applied_, get_applied_;
  net::WsPtr conn_;
  std::optional<boost::asio::steady_timer> reconnect_timer_, heartbeat_timer_, pump_timer_,
      rotate_timer_;
  bool rotating_ = false;
  std::chrono::seconds heartbeat_{15};
  int64_t attempt_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
  bool stopped_ = true;
  struct Awaiting {
    std::string key, rv;
    Clock::time_point since;
  };
  std::unordered_map<std::string, Awaiting> awaiting_ack_;  // cloud msg_id -> object
  std::optional<kedge::reliable::Queues> outbox_;           // one queue, named ""
  kedge::Gauge *connected_ = nullptr, *outbox_gauge_ = nullptr;
  kedge::Counter *downstream_ = nullptr, *duplicates_ = nullptr, *upstream_ = nullptr,
                 *connects_ = nullptr, *failures_ = nullptr, *rotations_ = nullptr,
                 *superseded_ = nullptr;
};

}  // namespace kedge::edgehub
