// edgehub: the edge end of the cloud-edge channel.
//
// * Joins with a token: fetches the cloud CA, checks it against the token's
//   hash, sends a CSR (CN system:node:<node>) and keeps key and certificate in
//   its data dir.
// * Keeps one mutual-TLS WebSocket to cloudhub: heartbeat, dead-link detection
//   within 3 intervals, reconnect with exponential back-off and jitter, and
//   tells local groups when the link goes up or down.
// * Downstream: maps wire groups to local groups, suppresses duplicates by
//   resourceVersion, and forwards the local ACKs (responses) to the cloud.
// * Upstream: every message from a local plugin goes through an outbox in
//   SQLite; it leaves the outbox when the cloud ACKs it (or answers it, for
//   requests marked sync), so nothing reported while offline is lost.
//   A status report (op patch or update of a podpatch, nodepatch, podstatus
//   or nodestatus, a device's reported twins or state) replaces the older
//   report of the same object still in the outbox: each is a whole status,
//   so after a long time offline, or past the QPS budget, the cloud gets the
//   latest, not a growing backlog of history.
//   Except sync requests to group dynamiccontroller (metaserver's
//   authorization checks): sent at once while connected, refused at once
//   (an error response) while not.
#include "edgehub.h"

#include <cstdlib>
#include <cstring>

#include "channel.h"
#include "contracts/wire.h"
#include "kedge/common/http_client.h"
#include "kedge/common/pki.h"
#include "kedge/json_codec.h"
#include "kedge/settings.h"

namespace kedge::edgehub {

using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kSchema = {
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL UNIQUE,"
    "  sync INTEGER NOT NULL, body TEXT NOT NULL);"
    "CREATE TABLE applied (key TEXT PRIMARY KEY, rv TEXT NOT NULL);",
    // The outbox moves to the channel's reliable queue (one queue, named "");
    // what was in it is kept, in order (keys are derived again on load).
    kedge::reliable::Queues::schema("upstream") +
        "INSERT INTO upstream(queue, seq, key, msg_id, rv, flags, body)"
        "  SELECT '', seq, '', msg_id, 0, sync, body FROM outbox;"
        "DROP TABLE outbox;",
};

constexpr uint32_t kSyncFlag = 1;  // an upstream request answered by the cloud

bool parse_host_port(const std::string& s, HostPort& out) {
  std::string v = s;
  for (const char* scheme : {"wss://", "https://"})
    if (v.rfind(scheme, 0) == 0) v = v.substr(std::strlen(scheme));
  if (auto slash = v.find('/'); slash != std::string::npos) v = v.substr(0, slash);
  auto colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int port = std::atoi(v.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  out = {v.substr(0, colon), static_cast<uint16_t>(port)};
  return true;
}

constexpr kedge::Setting<EdgeHubSettings> kSettings[] = {
    {"server", &EdgeHubSettings::server, "\"127.0.0.1:10000\"", "cloudhub's channel, host:port.",
     false},
    {"http_server", &EdgeHubSettings::http_server, "\"127.0.0.1:10002\"",
     "cloudhub's bootstrap endpoint, host:port.", false},
    {"project_id", &EdgeHubSettings::project_id, "\"e632aba927ea4ac2b575ec1603d56f10\"",
     "Sent in the project_id header.", false},
    {"token", &EdgeHubSettings::token, "\"\"",
     "Join token (kedge token create), used once when there is no certificate yet.", false},
    {"token_file", &EdgeHubSettings::token_file, "\"\"",
     "A file holding the join token (a relative path is relative to the agent's data_dir).", false},
    {"heartbeat_s", &EdgeHubSettings::heartbeat_s, "15",
     "Keepalive interval; a cloud silent for 3 intervals is a dead link.", false, 1, 3600},
    {"message_qps", &EdgeHubSettings::message_qps, "30", "Upstream messages per second.", false, 1,
     100000},
    {"message_burst", &EdgeHubSettings::message_burst, "60", "Upstream burst.", false, 1, 1000000},
    {"connect_timeout_s", &EdgeHubSettings::connect_timeout_s, "30",
     "Connect and handshake timeout.", false, 1, 600},
    {"reconnect_min_ms", &EdgeHubSettings::reconnect_min_ms, "1000", "First reconnect delay.",
     false, 10, 600000},
    {"reconnect_max_ms", &EdgeHubSettings::reconnect_max_ms, "30000", "Longest reconnect delay.",
     false, 10, 3600000},
    {"ack_timeout_ms", &EdgeHubSettings::ack_timeout_ms, "5000",
     "Resend an upstream message not ACKed within this time (then with back-off).", false, 100,
     600000},
    {"expect_acks", &EdgeHubSettings::expect_acks, "true",
     "The cloud ACKs upstream messages (kedge's cloudhub does; a stock CloudCore does not).",
     false},
    {"max_frame_bytes", &EdgeHubSettings::max_frame_bytes, "8388608", "Largest frame accepted.",
     false, 1024, 1073741824},
    {"rotate_certificates", &EdgeHubSettings::rotate_certificates, "true",
     "Renew the certificate at 70-90% of its lifetime, then reconnect with it.", false},
};
constexpr auto kConfig = kedge::config_keys(kSettings);

}  // namespace

kedge::Status EdgeHub::init(kedge::Context& ctx, const kedge::Config& cfg) {
  ctx_ = &ctx;
  log_ = ctx.logger();
  s_ = kedge::read_settings(kSettings, cfg);
  node_ = ctx.node_name();
  if (!parse_host_port(s_.server, server_))
    return kedge::invalid_argument("server: expected host:port, got '" + s_.server + "'");
  if (!parse_host_port(s_.http_server, http_server_))
    return kedge::invalid_argument("http_server: expected host:port, got '" + s_.http_server + "'");
  dir_ = ctx.data_dir() / "edgehub";
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return kedge::invalid_argument("cannot create " + dir_.string() + ": " + ec.message());
  auto db = kedge::sqlite::Db::open((dir_ / "edgehub.db").string());
  if (!db.status) return db.status;
  db_ = std::move(db.value);
  if (Status s = db_->migrate("edgehub", kSchema); !s) return s;
  // The applied version only moves forward, whatever order ACKs come in.
  auto app = db_->prepare(
      "INSERT INTO applied(key, rv) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET rv = excluded.rv "
      "WHERE CAST(excluded.rv AS INTEGER) > CAST(applied.rv AS INTEGER)");
  auto get = db_->prepare("SELECT rv FROM applied WHERE key = ?");
  for (auto* r : {&app, &get})
    if (!r->status) return r->status;
  set_applied_ = std::move(app.value);
  get_applied_ = std::move(get.value);
  commit_ = std::make_unique<kedge::sqlite::GroupCommit>(*db_, ctx.executor());
  heartbeat_ = std::chrono::seconds(s_.heartbeat_s);
  kedge::reliable::Options qo;
  qo.qps = static_cast<double>(s_.message_qps);
  qo.burst = static_cast<double>(s_.message_burst);
  qo.ack_timeout = std::chrono::milliseconds(s_.ack_timeout_ms);
  outbox_.emplace(qo, *db_, *commit_, "upstream");
  auto& m = ctx.metrics();
  connected_ = &m.gauge("kedge_edgehub_connected", "1 while the cloud link is up");
  outbox_gauge_ = &m.gauge("kedge_edgehub_outbox", "Upstream messages not yet ACKed by the cloud");
  downstream_ = &m.counter("kedge_edgehub_downstream_total", "Messages received from the cloud");
  superseded_ = &m.counter("kedge_edgehub_reports_superseded_total",
                           "Queued status reports replaced by a newer one of the same object");
  duplicates_ = &m.counter("kedge_edgehub_duplicates_total",
                           "Cloud messages already applied (ACKed again, not delivered)");
  upstream_ = &m.counter("kedge_edgehub_upstream_total", "Messages sent to the cloud");
  connects_ = &m.counter("kedge_edgehub_connects_total", "Successful connections to the cloud");
  rotations_ = &m.counter("kedge_edgehub_cert_rotations_total", "Certificates renewed");
  failures_ =
      &m.counter("kedge_edgehub_connect_failures_total", "Failed attempts to join or connect");
  return load_outbox();
}

kedge::Status EdgeHub::start() {
  stopped_ = false;
  auto ex = ctx_->executor();
  reconnect_timer_.emplace(ex);
  rotate_timer_.emplace(ex);
  heartbeat_timer_.emplace(ex);
  pump_timer_.emplace(ex);
  boost::asio::post(ex, [this] { connect(); });
  return {};
}

kedge::Status EdgeHub::stop() {
  stopped_ = true;
  commit_->flush();
  for (auto* t : {&*reconnect_timer_, &*heartbeat_timer_, &*pump_timer_, &*rotate_timer_})
    t->cancel();
  if (conn_) conn_->close({Code::kUnavailable, "edgehub is stopping"});
  conn_ = nullptr;
  connected_->set(0);
  return {};
}

// A message from a local plugin, for the cloud.
void EdgeHub::on_message(const MessagePtr& msg) {
  if (msg->is_response()) {
    forward_response(*msg);
    return;
  }
  if (msg->header.sync && msg->route.group == "dynamiccontroller") {
    // A question that only the cloud, now, can answer (metaserver's
    // authorization checks): not kept for later; refused at once offline.
    if (!conn_ || !conn_->send(kedge::codec::encode(*msg) + "\n")) {
      Message err = kedge::new_response(*msg, boost::json::string("the cloud is not connected"));
      err.route.operation = std::string(kedge::op::kError);
      (void)ctx_->respond(kedge::share(std::move(err)));
      return;
    }
    upstream_->inc();
    return;
  }
  bool sync = msg->header.sync;
  kedge::reliable::Entry entry{status_key(*msg),
                               msg->header.id,
                               0,
                               sync ? kSyncFlag : 0u,
                               kedge::codec::encode(*msg) + "\n",
                               sync || s_.expect_acks};
  if (entry.body.size() > static_cast<size_t>(s_.max_frame_bytes)) {
    log_->error("{} {} is {} bytes, over max_frame_bytes; not sent", msg->route.operation,
                msg->route.resource, entry.body.size());
    return;
  }
  // Sent only once it is on disk.
  auto added =
      outbox_->add("", std::move(entry), false,
                   [this, what = msg->route.operation + " " + msg->route.resource](Status s) {
                     if (!s) log_->error("cannot keep {} in the outbox: {}", what, s.message());
                     outbox_gauge_->set(static_cast<int64_t>(outbox_->total()));
                     pump();
                   });
  if (added == kedge::reliable::Added::kReplaced) superseded_->inc();
  outbox_gauge_->set(static_cast<int64_t>(outbox_->total()));
}

// Moves a renewed key and certificate into place (both .new files exist
// only once both are complete).
void EdgeHub::finish_switch() {
  if (!fs::exists(dir_ / "edge.key.new") || !fs::exists(dir_ / "edge.crt.new")) return;
  std::error_code ec;
  fs::rename(dir_ / "edge.key.new", dir_ / "edge.key", ec);
  fs::rename(dir_ / "edge.crt.new", dir_ / "edge.crt", ec);
}

// KubeEdge's headers, and kedge-acks when this edge keeps an outbox and
// wants each upstream message ACKed (a cloud that does not know the header
// ignores it; cloudhub ACKs only the edges that send it).
std::map<std::string, std::string> EdgeHub::connect_headers() const {
  std::map<std::string, std::string> h{
      {"node_id", node_}, {"project_id", s_.project_id}, {"ConnectionUse", "msg"}};
  if (s_.expect_acks) h["kedge-acks"] = "1";
  return h;
}

void EdgeHub::connect() {
  if (stopped_) return;
  finish_switch();
  if (have_certificate() && certificate_expired() &&
      (!s_.token.empty() || !s_.token_file.empty())) {
    log_->warn("the certificate has expired; joining again with the token");
    std::error_code ec;
    fs::remove(dir_ / "edge.crt", ec);
  }
  if (!have_certificate()) {
    join([this](Status s) {
      if (stopped_) return;
      if (!s) return connect_failed("cannot join: " + s.message());
      connect();
    });
    return;
  }
  auto ca = pki::read_file((dir_ / "ca.crt").string());
  auto cert = pki::read_file((dir_ / "edge.crt").string());
  auto key = pki::read_file((dir_ / "edge.key").string());
  if (!ca.ok() || !cert.ok() || !key.ok()) return connect_failed("cannot read the certificates");
  auto tls = net::client_context({ca.value, cert.value, key.value}, true);
  if (!tls.status) return connect_failed(tls.status.message());
  net::WsClientOptions o;
  o.connect_timeout = std::chrono::seconds(s_.connect_timeout_s);
  o.ws.idle_timeout = 3 * heartbeat_;
  o.ws.max_frame = static_cast<size_t>(s_.max_frame_bytes);
  std::string project = s_.project_id;
  net::ws_connect(ctx_->executor(), tls.value, server_.host, server_.port,
                  "/" + project + "/" + node_ + "/events", connect_headers(), o,
                  [this](Status s, net::WsPtr c) {
                    if (stopped_) {
                      if (c) c->close({Code::kUnavailable, "stopping"});
                      return;
                    }
                    if (!s) return connect_failed(s.message());
                    on_connected(std::move(c));
                  });
}

void EdgeHub::connect_failed(const std::string& why) {
  failures_->inc();
  auto delay = next_backoff();
  log_->warn("cloud unreachable: {}; retrying in {} ms", why, delay.count());
  reconnect_timer_->expires_after(delay);
  reconnect_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) connect();
  });
}

// Exponential back-off with full jitter in [base/2, base].
std::chrono::milliseconds EdgeHub::next_backoff() {
  auto lo = s_.reconnect_min_ms, hi = s_.reconnect_max_ms;
  int64_t base = std::min(hi, lo << std::min<int64_t>(attempt_++, 20));
  std::uniform_int_distribution<int64_t> d(base / 2, base);
  return std::chrono::milliseconds(d(rng_));
}

void EdgeHub::on_connected(net::WsPtr c) {
  conn_ = c;
  attempt_ = 0;
  connects_->inc();
  connected_->set(1);
  std::weak_ptr<net::WsConnection> weak = c;
  c->start(
      [this, weak](std::string&& t) {
        if (weak.lock() == conn_) on_text(std::move(t));
      },
      [this, weak](const Status& why) {
        if (weak.lock() == conn_ || !conn_) on_disconnected(why);
      });
  log_->info("connected to the cloud at {}:{}", server_.host, server_.port);
  notify_link("cloud_connected");
  schedule_rotation();
  outbox_->link_lost("");  // all unACKed go again
  schedule_heartbeat();
  pump();
}

void EdgeHub::on_disconnected(const Status& why) {
  if (!conn_) return;
  conn_ = nullptr;
  connected_->set(0);
  heartbeat_timer_->cancel();
  if (stopped_) return;
  log_->warn("cloud link lost: {}", why.message());
  notify_link("cloud_disconnected");
  connect_failed("link lost");
}

void EdgeHub::notify_link(const char* state) {
  namespace lg = kedge::contracts::wire::local_group;
  for (std::string_view g : {lg::kMeta, lg::kTwin, lg::kBus}) {
    std::string group(g);
    auto m = kedge::make_message(ctx_->name(), group, std::string(kedge::op::kConnect),
                                 "node/connection", boost::json::string(state));
    (void)ctx_->send_to_group(group, kedge::share(std::move(m)));  // absent groups are fine
  }
}

void EdgeHub::schedule_heartbeat() {
  heartbeat_timer_->expires_after(heartbeat_);
  heartbeat_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || !conn_) return;
    auto ka = kedge::make_message(std::string(kedge::contracts::wire::source::kEdgeHub),
                                  std::string(kedge::contracts::wire::group::kResource),
                                  std::string(kedge::op::kKeepalive), "node",
                                  boost::json::string("ping"));
    (void)conn_->send(kedge::codec::encode(ka) + "\n");
    schedule_heartbeat();
  });
}

void EdgeHub::on_text(std::string&& text) {
  auto d = kedge::codec::decode(text);
  if (!d.status) {
    log_->warn("frame from the cloud is not a message ({}); ignored", d.status.message());
    return;
  }
  downstream_->inc();
  Message& m = d.value;
  if (m.is_response()) {
    on_cloud_response(std::move(m));
    return;
  }
  std::string key = kedge::channel::object_key(m);
  uint64_t rv = kedge::channel::parse_rv(m.header.resource_version);
  if (rv != 0 && m.route.operation != kedge::op::kDelete) {
    auto a = applied_rv(key);
    if (a >= rv) {
      duplicates_->inc();
      ack_cloud(m);
      return;
    }
  }
  if (auto w = awaiting_ack_.find(m.header.id);
      w != awaiting_ack_.end() && Clock::now() - w->second.since < 10s) {
    // A resend of a message delivered moments ago whose local ACK has not
    // come yet: that ACK will answer both.
    duplicates_->inc();
    return;
  }
  std::string group = kedge::channel::local_group(m.route.group);
  // KubeEdge's EdgeHub: user-group messages of the cloud router go to the
  // eventbus module by name.
  if (m.route.group == kedge::contracts::wire::group::kUser &&
      m.route.source == kedge::contracts::wire::source::kRouterEventBus)
    group = "eventbus";
  if (group.empty()) {
    log_->warn("message {} has unknown group '{}'; acknowledged and dropped", m.header.id,
               m.route.group);
    ack_cloud(m);
    return;
  }
  awaiting_ack_[m.header.id] = {key, m.header.resource_version, Clock::now()};
  auto shared = kedge::share(std::move(m));
  Status s = group == "eventbus" ? ctx_->send(group, shared) : ctx_->send_to_group(group, shared);
  if (s.code() == Code::kNotFound) {
    // Nobody on this agent takes this group: nothing to persist; do not
    // make the cloud resend it forever.
    log_->debug("no local module for group {}; {} acknowledged", group, shared->header.id);
    awaiting_ack_.erase(shared->header.id);
    ack_cloud(*shared);
  } else if (!s) {
    awaiting_ack_.erase(shared->header.id);  // not ACKed: the cloud sends it again
    log_->warn("{} not delivered to {}: {}", shared->header.id, group, s.message());
  }
}

void EdgeHub::on_cloud_response(Message&& m) {
  // Our outbox entry: an ACK, or (for sync requests) the answer itself.
  if (auto e = outbox_->ack("", m.header.parent_id)) {
    outbox_gauge_->set(static_cast<int64_t>(outbox_->total()));
    pump();
    if (!(e->flags & kSyncFlag)) return;  // a plain ACK
  }
  Status s = ctx_->respond(kedge::share(std::move(m)));
  if (!s) log_->debug("cloud response not delivered: {}", s.message());
}

// A local plugin's response: an ACK of a cloud message (after it persisted
// it) or an answer to a cloud request. Either goes up at once.
void EdgeHub::forward_response(const Message& m) {
  std::string frame = kedge::codec::encode(m) + "\n";
  auto it = awaiting_ack_.find(m.header.parent_id);
  if (it == awaiting_ack_.end() || it->second.rv.empty()) {
    if (it != awaiting_ack_.end()) awaiting_ack_.erase(it);
    if (conn_) (void)conn_->send(std::move(frame));
    return;
  }
  Awaiting a = std::move(it->second);
  awaiting_ack_.erase(it);
  // The applied version is on disk before the ACK leaves.
  commit_->add(
      [&] {
        set_applied_.reset();
        set_applied_.bind(1, a.key).bind(2, a.rv);
        return set_applied_.run();
      },
      [this, frame = std::move(frame)](Status s) {
        if (!s) {  // no ACK without the record: the cloud sends it again
          log_->error("cannot record an applied version: {}; not acknowledged", s.message());
          return;
        }
        if (conn_) (void)conn_->send(frame);
      });
}

void EdgeHub::ack_cloud(const Message& m) {
  if (conn_)
    (void)conn_->send(kedge::codec::encode(kedge::new_response(m, boost::json::string("OK"))) +
                      "\n");
}

uint64_t EdgeHub::applied_rv(const std::string& key) {
  get_applied_.reset();
  get_applied_.bind(1, key);
  uint64_t rv = get_applied_.step().row ? kedge::channel::parse_rv(get_applied_.text(0)) : 0;
  get_applied_.reset();
  return rv;
}

// The object a whole-status report is about; "" for anything else.
std::string EdgeHub::status_key(const Message& m) {
  if (m.header.sync) return {};
  const std::string& op = m.route.operation;
  if (op != kedge::op::kPatch && op != kedge::op::kUpdate) return {};
  const std::string& r = m.route.resource;
  // A device's reported values (each report carries all of them) and state.
  auto ends_with = [&](std::string_view suffix) {
    return r.size() > suffix.size() &&
           r.compare(r.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (r.rfind("device/", 0) == 0 && (ends_with("/twin/edge_updated") || ends_with("/state/update")))
    return r;
  size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
  if (b == std::string::npos) return {};
  std::string type = r.substr(a + 1, b - a - 1);
  if (type == "podpatch" || type == "nodepatch" || type == "podstatus" || type == "nodestatus")
    return r;
  return {};
}

Status EdgeHub::load_outbox() {
  bool acks = s_.expect_acks;
  Status s = outbox_->load([&](const std::string&, kedge::reliable::Entry& e) {
    auto d = kedge::codec::decode(e.body);
    e.key = d.status ? status_key(d.value) : "";
    e.await_ack = acks || (e.flags & kSyncFlag);
    return true;
  });
  if (!s) return s;
  outbox_gauge_->set(static_cast<int64_t>(outbox_->total()));
  if (outbox_->total() > 0) log_->info("{} message(s) in the outbox from before", outbox_->total());
  return {};
}

// Sends outbox entries that are due, within the QPS/burst budget.
void EdgeHub::pump() {
  if (!conn_ || stopped_) return;
  auto r = outbox_->pump(
      "", [this](const kedge::reliable::Entry& e) { return conn_->send(e.body).is_ok(); });
  upstream_->inc(r.sent + r.resent);
  outbox_gauge_->set(static_cast<int64_t>(outbox_->total()));
  if (r.waiting) {
    double qps = outbox_->options().qps;
    pump_timer_->expires_after(std::chrono::milliseconds(
        std::max<int64_t>(10, static_cast<int64_t>(1000 / std::max(1.0, qps)))));
    pump_timer_->async_wait([this](boost::system::error_code ec) {
      if (!ec) pump();
    });
  }
}

}  // namespace kedge::edgehub

KEDGE_PLUGIN(kedge::edgehub::EdgeHub,
             {.name = "edgehub",
              .version = "0.1.0",
              .group = "hub",
              .description = "Edge end of the cloud-edge channel: join, mTLS WebSocket, "
                             "outbox, de-duplication, link events.",
              .config = kedge::edgehub::kConfig})
