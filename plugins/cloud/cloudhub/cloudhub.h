// cloudhub's one class, declared for the files that implement it:
// cloudhub.cpp (the plugin, sessions, upstream and downstream) and
// bootstrap.cpp (the CA, the join token and the bootstrap HTTPS endpoint).
// Not installed: the plugin's private interior.
#pragma once

#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "kedge/common/sqlite.h"
#include "kedge/plugin.h"
#include "reliable_queue.h"

namespace kedge::cloudhub {

namespace fs = std::filesystem;
namespace net = kedge::net;
namespace pki = kedge::pki;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using Clock = std::chrono::steady_clock;

// The config, read once in init (kedge/settings.h).
struct CloudHubSettings {
  std::string address{};
  int64_t port{};
  int64_t https_port{};
  std::vector<std::string> advertise_addresses{};
  std::vector<std::string> dns_names{};
  int64_t keepalive_interval_s{};
  int64_t max_frame_bytes{};
  int64_t node_limit{};
  int64_t max_handshakes{};
  int64_t token_ttl_s{};
  int64_t edge_cert_validity_s{};
  bool allow_legacy_cert_cn{};
  int64_t ack_timeout_ms{};
  int64_t send_window{};
  int64_t max_pending_per_node{};
  bool ack_upstream{};
  std::vector<std::string> notify{};
  boost::json::object routes{};
};

class CloudHub final : public kedge::Plugin {
 public:
  kedge::Status init(kedge::Context& ctx, const kedge::Config& cfg) override;
  kedge::Status start() override;
  kedge::Status stop() override;
  // Downstream: a message from a controller for some node.
  void on_message(const MessagePtr& msg) override;

 private:
  // Upstream msg_ids seen lately from a node (across reconnects), for
  // de-duplication.
  struct Recent {
    std::deque<std::string> order;
    std::unordered_set<std::string> ids;
  };
  struct Session {
    net::WsPtr conn;
    // The edge said at connect (header kedge-acks) that it keeps an outbox
    // and wants each upstream message ACKed; a stock KubeEdge edge does not,
    // and would take an ACK for the answer to its request.
    bool acks = false;
  };
  // Answers sent lately to a node's requests, by request id: a stock edge
  // sends a timed-out request again with the same id and must get the same
  // answer again.
  struct Replies {
    std::deque<std::string> order;
    std::unordered_map<std::string, std::string> frames;
  };

  // ---- the CA and the bootstrap endpoint (bootstrap.cpp) ----
  Status load_or_create_pki();
  std::string make_token() const;
  net::HttpResponse bootstrap(const net::HttpRequest& r);

  // ---- sessions ----
  net::Admission admit(const net::PeerInfo& p);
  void on_connection(net::WsPtr c);
  // A node marked after an overflow gets its full resync once its queue is
  // at most half full: the controllers are asked (op "resync", resource
  // node/<id>) to send the current version of every object the node should
  // have, and the list of what exists (docs/channel.md). The mark is cleared
  // only when the request is committed as handed over.
  void maybe_resync(const std::string& node);
  // Told of connections, disconnections and resyncs: the `notify` modules
  // and the controllers of `routes`.
  std::set<std::string> controller_modules() const;
  void on_closed(const std::string& node, const std::weak_ptr<net::WsConnection>& weak,
                 const Status& why);
  void notify_controllers(const std::string& node, const char* event);

  // ---- upstream ----
  void on_text(const std::string& node, const std::weak_ptr<net::WsConnection>& weak,
               std::string&& text);
  void remember(Recent& s, const std::string& id);
  void ack_upstream(const std::string& node, const net::WsPtr& conn, const Message& m);
  // The controller for an upstream message: by wire group (kedge's edges,
  // `routes`), else by source as CloudCore 1.12 routes (twin -> the device
  // controller, metaServer -> dynamiccontroller, anything else -> the edge
  // controller); empty if none is configured.
  std::string controller_for(const Message& m) const;
  void keep_reply(const std::string& node, const std::string& request_id, std::string frame);
  // An ACK from the edge for a downstream message: true if it was one.
  bool on_ack(const std::string& node, const Message& m);

  // ---- downstream ----
  Status load_pending();
  void enqueue(const std::string& node, const Message& m);
  // Sends what is due: overdue resends, then queued messages while the
  // node's window has room.
  void pump(const std::string& node);
  void send_now(const std::string& node, const Message& m);
  std::chrono::milliseconds ack_timeout() const;
  void schedule_resend();
  void resend_overdue();
  void update_pending_gauge();

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  CloudHubSettings s_;
  fs::path dir_;
  pki::Ca ca_;
  std::string ca_der_, jwt_secret_, server_cert_pem_, server_key_pem_;
  std::unique_ptr<kedge::sqlite::Db> db_;
  std::unique_ptr<kedge::sqlite::GroupCommit> commit_;
  kedge::sqlite::Stmt mark_resync_, unmark_resync_;
  std::set<std::string> needs_resync_;
  std::map<std::string, std::string> routes_;  // wire group -> controller module
  std::shared_ptr<net::WsServer> ws_;
  std::shared_ptr<net::HttpServer> https_;
  std::optional<boost::asio::steady_timer> timer_;
  std::map<std::string, Session> sessions_;
  std::optional<kedge::reliable::Queues> queues_;  // one per node
  std::map<std::string, Recent> recent_;
  std::map<std::string, Replies> replies_;
  bool stopped_ = true;
  kedge::Gauge *connected_ = nullptr, *pending_gauge_ = nullptr, *resync_gauge_ = nullptr;
  kedge::Counter *acked_ = nullptr, *resent_ = nullptr, *replaced_ = nullptr, *stale_ = nullptr,
                 *upstream_ = nullptr, *duplicates_ = nullptr, *bad_frames_ = nullptr,
                 *overflow_ = nullptr, *resyncs_ = nullptr;
};

}  // namespace kedge::cloudhub
