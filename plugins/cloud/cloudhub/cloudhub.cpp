// cloudhub: the cloud end of the cloud-edge channel.
//
// * Owns the cloud CA (created on first start) and the server certificate.
// * Serves the bootstrap HTTPS endpoint: /ca.crt and /edge.crt (CSR signing
//   for a join token or a valid node certificate).
// * Serves the WebSocket channel with mutual TLS; a connection is bound to the
//   node named in its certificate (CN system:node:<name>).
// * Downstream (controllers -> edge): every message is persisted in a per-node
//   queue keyed by object (a newer version replaces an older one still
//   queued), sent, and resent with back-off until the edge ACKs it.
// * Upstream (edge -> cloud): resources are prefixed with node/<id>/, routed to
//   a controller by wire group (or by source, as CloudCore, for a group it
//   does not route), de-duplicated by msg_id, and ACKed to edges that ask
//   for ACKs; an answer is sent again if its request comes again.
#include "cloudhub.h"

#include "channel.h"
#include "contracts/wire.h"
#include "kedge/json_codec.h"
#include "kedge/settings.h"

namespace kedge::cloudhub {

using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kSchema = {
    "CREATE TABLE downstream ("
    "  node TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, msg_id TEXT NOT NULL,"
    "  rv TEXT NOT NULL, is_delete INTEGER NOT NULL, body TEXT NOT NULL,"
    "  PRIMARY KEY (node, key));"
    "CREATE INDEX downstream_order ON downstream(node, seq);",
    // Nodes whose queue overflowed: they get a full resync once it drains.
    "CREATE TABLE resync (node TEXT PRIMARY KEY, since INTEGER NOT NULL);",
    // The per-node queues move to the channel's reliable queue; what was
    // queued is kept, in order.
    kedge::reliable::Queues::schema("queue") +
        "INSERT INTO queue(queue, seq, key, msg_id, rv, flags, body)"
        "  SELECT node, seq, key, msg_id, CAST(rv AS INTEGER), is_delete, body FROM downstream;"
        "DROP TABLE downstream;",
};

constexpr uint32_t kDeleteFlag = 1;

constexpr kedge::Setting<CloudHubSettings> kSettings[] = {
    {"address", &CloudHubSettings::address, "\"0.0.0.0\"", "Address both servers listen on.",
     false},
    {"port", &CloudHubSettings::port, "10000", "WebSocket (wss) channel port.", false},
    {"https_port", &CloudHubSettings::https_port, "10002",
     "Bootstrap HTTPS port (/ca.crt, /edge.crt).", false},
    {"advertise_addresses", &CloudHubSettings::advertise_addresses, "[\"127.0.0.1\"]",
     "IP addresses edges dial; they go into the server certificate.", false},
    {"dns_names", &CloudHubSettings::dns_names, "[\"localhost\"]",
     "DNS names edges dial; they go into the server certificate.", false},
    {"keepalive_interval_s", &CloudHubSettings::keepalive_interval_s, "15",
     "Edges' heartbeat interval; a node silent for 3 intervals is disconnected.", false},
    {"max_frame_bytes", &CloudHubSettings::max_frame_bytes, "8388608",
     "Largest frame accepted; a larger one closes the connection.", false},
    {"node_limit", &CloudHubSettings::node_limit, "1000", "Connections this instance accepts.",
     false},
    {"max_handshakes", &CloudHubSettings::max_handshakes, "64",
     "TLS handshakes run at once; more connecting nodes wait their turn.", false},
    {"token_ttl_s", &CloudHubSettings::token_ttl_s, "86400", "Lifetime of a join token.", false},
    {"edge_cert_validity_s", &CloudHubSettings::edge_cert_validity_s, "31536000",
     "Validity of edge certificates (365 days).", false},
    {"allow_legacy_cert_cn", &CloudHubSettings::allow_legacy_cert_cn, "false",
     "Accept certificates whose CN is not system:node:<node> (KubeEdge 1.12-1.16 edges).", false},
    {"ack_timeout_ms", &CloudHubSettings::ack_timeout_ms, "5000",
     "Resend a downstream message not ACKed within this time (then with back-off).", false},
    {"send_window", &CloudHubSettings::send_window, "1024",
     "Downstream messages in flight per node before waiting for ACKs.", false},
    {"max_pending_per_node", &CloudHubSettings::max_pending_per_node, "100000",
     "Queued downstream objects per node; past it the node is marked for a full resync.", false},
    {"ack_upstream", &CloudHubSettings::ack_upstream, "true",
     "ACK each upstream message (kedge edges keep an outbox until then).", false},
    {"notify", &CloudHubSettings::notify,
     "[\"edgecontroller\", \"nodecontroller\", \"devicecontroller\"]",
     "Modules told when a node connects or disconnects, or needs a full resync.", false},
    {"routes", &CloudHubSettings::routes,
     "{ resource = \"edgecontroller\", twin = \"devicecontroller\", user = \"router\", "
     "dynamiccontroller = \"apiserver\" }",
     "Controller module for each wire group of upstream messages.", false},
};
constexpr auto kConfig = kedge::config_keys(kSettings);

}  // namespace

kedge::Status CloudHub::init(kedge::Context& ctx, const kedge::Config& cfg) {
  ctx_ = &ctx;
  log_ = ctx.logger();
  s_ = kedge::read_settings(kSettings, cfg);
  dir_ = ctx.data_dir() / "cloudhub";
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return kedge::invalid_argument("cannot create " + dir_.string() + ": " + ec.message());
  if (Status s = load_or_create_pki(); !s) return s;
  auto db = kedge::sqlite::Db::open((dir_ / "cloudhub.db").string());
  if (!db.status) return db.status;
  db_ = std::move(db.value);
  if (Status s = db_->migrate("cloudhub", kSchema); !s) return s;
  auto mark = db_->prepare("INSERT OR IGNORE INTO resync(node, since) VALUES(?, ?)");
  auto unmark = db_->prepare("DELETE FROM resync WHERE node = ?");
  if (!mark.status) return mark.status;
  if (!unmark.status) return unmark.status;
  mark_resync_ = std::move(mark.value);
  unmark_resync_ = std::move(unmark.value);
  commit_ = std::make_unique<kedge::sqlite::GroupCommit>(*db_, ctx.executor());
  kedge::reliable::Options qo;
  qo.window = static_cast<size_t>(s_.send_window);
  qo.ack_timeout = std::chrono::milliseconds(s_.ack_timeout_ms);
  qo.capacity = static_cast<size_t>(s_.max_pending_per_node);
  queues_.emplace(qo, *db_, *commit_, "queue");
  if (Status s = load_pending(); !s) return s;
  for (auto& [group, module] : s_.routes)
    if (module.is_string()) routes_[std::string(group)] = std::string(module.get_string());
  auto& m = ctx.metrics();
  connected_ = &m.gauge("kedge_cloudhub_connected_nodes", "Nodes connected now");
  pending_gauge_ = &m.gauge("kedge_cloudhub_pending_messages", "Downstream messages not yet ACKed");
  acked_ = &m.counter("kedge_cloudhub_acked_total", "Downstream messages ACKed by edges");
  resent_ = &m.counter("kedge_cloudhub_resent_total", "Downstream messages sent again");
  replaced_ = &m.counter("kedge_cloudhub_replaced_total",
                         "Queued messages replaced by a newer version of their object");
  stale_ = &m.counter("kedge_cloudhub_stale_total",
                      "Downstream messages older than the queued version (dropped as stale)");
  upstream_ = &m.counter("kedge_cloudhub_upstream_total", "Messages received from edges");
  duplicates_ = &m.counter("kedge_cloudhub_upstream_duplicates_total",
                           "Upstream messages received again (suppressed)");
  bad_frames_ = &m.counter("kedge_cloudhub_bad_frames_total", "Frames that were not messages");
  overflow_ = &m.counter("kedge_cloudhub_overflow_total",
                         "Downstream messages not queued because a node's queue was full "
                         "(the node is marked for a full resync)");
  resyncs_ = &m.counter("kedge_cloudhub_resyncs_total",
                        "Full resyncs asked of the controllers after a queue overflow");
  resync_gauge_ = &m.gauge("kedge_cloudhub_nodes_awaiting_resync",
                           "Nodes whose queue overflowed and that await a full resync");
  resync_gauge_->set(static_cast<int64_t>(needs_resync_.size()));
  update_pending_gauge();
  return {};
}

kedge::Status CloudHub::start() {
  stopped_ = false;
  auto ex = ctx_->executor();
  net::TlsMaterial server{ca_.pem, server_cert_pem_, server_key_pem_};
  auto ws_ctx = net::server_context(server, net::ClientCert::kRequired);
  if (!ws_ctx.status) return ws_ctx.status;
  auto https_ctx = net::server_context(server, net::ClientCert::kOptional);
  if (!https_ctx.status) return https_ctx.status;

  net::WsServer::Options wo;
  wo.ws.idle_timeout = std::chrono::seconds(3 * s_.keepalive_interval_s);
  wo.ws.max_frame = static_cast<size_t>(s_.max_frame_bytes);
  wo.max_connections = static_cast<size_t>(s_.node_limit);
  wo.max_handshakes = static_cast<size_t>(s_.max_handshakes);
  ws_ = net::WsServer::create(ex, ws_ctx.value, wo);
  std::string addr = s_.address;
  if (Status s = ws_->listen(
          addr, static_cast<uint16_t>(s_.port), [this](const net::PeerInfo& p) { return admit(p); },
          [this](net::WsPtr c) { on_connection(std::move(c)); });
      !s)
    return s;
  net::HttpServer::Options ho;
  ho.max_body = 1 << 20;  // a CSR
  ho.idle_timeout = 30s;
  https_ = net::HttpServer::create(ex, https_ctx.value, ho);
  if (Status s = https_->listen(addr, static_cast<uint16_t>(s_.https_port),
                                [this](net::ExchangePtr x) { x->reply(bootstrap(x->request())); });
      !s) {
    ws_->stop();
    return s;
  }
  timer_.emplace(ex);
  schedule_resend();
  log_->info("listening on {}:{} (channel) and {}:{} (bootstrap); {} message(s) pending", addr,
             ws_->port(), addr, https_->port(), queues_->total());
  return {};
}

kedge::Status CloudHub::stop() {
  stopped_ = true;
  commit_->flush();
  if (timer_) timer_->cancel();
  if (ws_) ws_->stop();
  if (https_) https_->stop();
  for (auto& [node, s] : sessions_)
    if (s.conn) s.conn->close({Code::kUnavailable, "cloudhub is stopping"});
  sessions_.clear();
  connected_->set(0);
  return {};
}

// Downstream: a message from a controller for some node.
void CloudHub::on_message(const MessagePtr& msg) {
  std::string node = kedge::channel::node_of(msg->route.resource);
  if (node.empty()) {
    log_->warn("message {} ({} {}) names no node; not sent", msg->header.id, msg->route.operation,
               msg->route.resource);
    return;
  }
  Message out = *msg;
  out.route.resource = kedge::channel::trim_for_edge(msg->route.resource);
  out.header.sync = false;  // never true on the WebSocket wire
  if (msg->is_response()) {
    // Answers to the edge's requests are not queued: if the node is gone,
    // its request has timed out there.
    send_now(node, out);
    return;
  }
  enqueue(node, out);
}

net::Admission CloudHub::admit(const net::PeerInfo& p) {
  auto it = p.headers.find("node_id");
  if (it == p.headers.end() || it->second.empty())
    return net::Admission::refuse(400, "missing node_id header");
  if (p.cert_cn != "system:node:" + it->second && !s_.allow_legacy_cert_cn) {
    log_->warn("refused {} from {}: certificate is for '{}'", it->second, p.remote, p.cert_cn);
    return net::Admission::refuse(
        403,
        "node_id '" + it->second + "' does not match the client certificate ('" + p.cert_cn + "')");
  }
  return net::Admission::accept();
}

void CloudHub::on_connection(net::WsPtr c) {
  std::string node = c->peer().headers.at("node_id");
  auto it = sessions_.find(node);
  if (it != sessions_.end() && it->second.conn) {
    log_->info("node {} connected again from {}; closing its older connection", node,
               c->peer().remote);
    auto old = it->second.conn;
    it->second.conn = nullptr;
    old->close({Code::kUnavailable, "replaced by a newer connection"});
  }
  Session& s = sessions_[node];
  s.conn = c;
  auto acks = c->peer().headers.find("kedge-acks");
  s.acks = acks != c->peer().headers.end() && acks->second == "1";
  connected_->set(static_cast<int64_t>(sessions_.size()));
  std::weak_ptr<net::WsConnection> weak = c;
  c->start([this, node, weak](std::string&& text) { on_text(node, weak, std::move(text)); },
           [this, node, weak](const Status& why) { on_closed(node, weak, why); });
  log_->info("node {} connected from {}", node, c->peer().remote);
  notify_controllers(node, "connected");
  // Everything not ACKed goes again, in order.
  queues_->link_lost(node);
  maybe_resync(node);
  pump(node);
}

// A node marked after an overflow gets its full resync once its queue is
// at most half full: the controllers are asked (op "resync", resource
// node/<id>) to send the current version of every object the node should
// have, and the list of what exists (docs/channel.md). The mark is cleared
// only when the request is committed as handed over.
void CloudHub::maybe_resync(const std::string& node) {
  if (!needs_resync_.count(node)) return;
  if (queues_->size(node) * 2 > static_cast<size_t>(s_.max_pending_per_node)) return;
  boost::json::object content{{"node", node}, {"reason", "downstream queue overflow"}};
  auto m = kedge::share(
      kedge::make_message(ctx_->name(), "resource", "resync", "node/" + node, content));
  bool handed = false;
  for (auto& mod : controller_modules())
    if (ctx_->send(mod, m)) handed = true;
  if (!handed) {
    log_->warn("node {} awaits a full resync, but no controller took the request", node);
    return;
  }
  needs_resync_.erase(node);
  resync_gauge_->set(static_cast<int64_t>(needs_resync_.size()));
  resyncs_->inc();
  log_->info("node {}: asked the controllers for a full resync", node);
  commit_->add([&] {
    unmark_resync_.reset();
    unmark_resync_.bind(1, node);
    return unmark_resync_.run();
  });
}

// Told of connections, disconnections and resyncs: the `notify` modules
// and the controllers of `routes`.
std::set<std::string> CloudHub::controller_modules() const {
  std::set<std::string> modules;
  for (auto& [g, mod] : routes_) modules.insert(mod);
  for (auto& mod : s_.notify) modules.insert(mod);
  return modules;
}

void CloudHub::on_closed(const std::string& node, const std::weak_ptr<net::WsConnection>& weak,
                         const Status& why) {
  auto it = sessions_.find(node);
  if (it == sessions_.end() || it->second.conn != weak.lock()) return;  // an older connection
  sessions_.erase(it);
  connected_->set(static_cast<int64_t>(sessions_.size()));
  log_->info("node {} disconnected: {}", node, why.message());
  queues_->link_lost(node);
  if (!stopped_) notify_controllers(node, "disconnected");
}

void CloudHub::notify_controllers(const std::string& node, const char* event) {
  boost::json::object content{
      {"event_type", event}, {"timestamp", kedge::now_ms() / 1000}, {"client_id", node}};
  // whether the edge is kedge's (it announced kedge-acks at connect): the
  // controllers send it v1beta1 devices, a stock 1.12 edge v1alpha2 ones
  if (auto s = sessions_.find(node); s != sessions_.end()) content["kedge_edge"] = s->second.acks;
  auto m =
      kedge::share(kedge::make_message(ctx_->name(), "resource", event, "node/" + node, content));
  for (auto& mod : controller_modules()) (void)ctx_->send(mod, m);  // absent ones are fine
}

void CloudHub::on_text(const std::string& node, const std::weak_ptr<net::WsConnection>& weak,
                       std::string&& text) {
  auto conn = weak.lock();
  if (!conn) return;
  auto d = kedge::codec::decode(text);
  if (!d.status) {
    bad_frames_->inc();
    log_->warn("node {}: frame is not a message ({}); ignored", node, d.status.message());
    return;
  }
  Message& m = d.value;
  upstream_->inc();
  if (m.route.operation == kedge::op::kKeepalive) return;
  // An ACK ("OK") of a queued message; an answer to a queued request also
  // ends its resends but goes on to the controller that asked.
  if (m.is_response() && on_ack(node, m) && m.content == boost::json::value("OK")) return;
  Recent& s = recent_[node];
  if (!m.is_response()) {
    if (s.ids.count(m.header.id)) {
      duplicates_->inc();
      // Its answer was lost or is late: the same answer again (a stock edge
      // retries a timed-out request with the same id); its ACK was lost:
      // ACK again.
      auto& rp = replies_[node];
      if (auto r = rp.frames.find(m.header.id); r != rp.frames.end())
        (void)conn->send(r->second);
      else
        ack_upstream(node, conn, m);
      return;
    }
  }
  m.route.resource = kedge::channel::prefix_for_cloud(node, m.route.resource);
  auto shared = kedge::share(std::move(m));
  if (shared->is_response()) {  // an answer to a controller's request
    if (Status st = ctx_->respond(shared); !st)
      log_->debug("node {}: response {} ({} {} from {}) not delivered: {}", node, shared->header.id,
                  shared->route.operation, shared->route.resource, shared->route.source,
                  st.message());
    return;
  }
  std::string controller = controller_for(*shared);
  if (controller.empty()) {
    log_->warn("node {}: no controller for group '{}' from '{}' (op {} on {}); dropped", node,
               shared->route.group, shared->route.source, shared->route.operation,
               shared->route.resource);
    remember(s, shared->header.id);
    ack_upstream(node, conn, *shared);
    return;
  }
  Status st = ctx_->send(controller, shared);
  if (st.code() == Code::kFull) {
    // Not ACKed: the edge keeps it in its outbox and sends it again.
    log_->warn("node {}: {} is busy ({}); message {} will come again", node, controller,
               st.message(), shared->header.id);
    return;
  }
  if (!st)
    log_->warn("node {}: message {} for {} not delivered: {}", node, shared->header.id, controller,
               st.message());
  remember(s, shared->header.id);
  ack_upstream(node, conn, *shared);
}

std::string CloudHub::controller_for(const Message& m) const {
  namespace wire = kedge::contracts::wire;
  std::string group = m.route.group;
  // Device reports come in group resource from stock edges (KubeEdge twin
  // uploads): they are the device controller's, as twin messages are.
  if (group == wire::group::kResource) {
    std::string rest = kedge::channel::trim_for_edge(m.route.resource);
    if (rest.rfind("device/", 0) == 0 || rest.rfind("membership", 0) == 0)
      group = std::string(wire::group::kTwin);
  }
  if (auto r = routes_.find(group); r != routes_.end()) return r->second;
  // A group kedge does not route (a stock edge's `meta` requests): by
  // source, as CloudCore's ChannelMessageQueue.Publish.
  const std::string& src = m.route.source;
  std::string_view by = src == wire::source::kTwin         ? wire::group::kTwin
                        : src == wire::source::kMetaServer ? wire::group::kDynamicController
                                                           : wire::group::kResource;
  auto r = routes_.find(std::string(by));
  return r == routes_.end() ? std::string() : r->second;
}

void CloudHub::keep_reply(const std::string& node, const std::string& request_id,
                          std::string frame) {
  if (request_id.empty()) return;
  auto& rp = replies_[node];
  if (rp.frames.emplace(request_id, std::move(frame)).second) rp.order.push_back(request_id);
  while (rp.order.size() > 256) {
    rp.frames.erase(rp.order.front());
    rp.order.pop_front();
  }
}

void CloudHub::remember(Recent& s, const std::string& id) {
  s.ids.insert(id);
  s.order.push_back(id);
  if (s.order.size() > 4096) {
    s.ids.erase(s.order.front());
    s.order.pop_front();
  }
}

void CloudHub::ack_upstream(const std::string& node, const net::WsPtr& conn, const Message& m) {
  // A sync request is answered by its controller; that answer is its ACK.
  // Only edges that asked for ACKs get them (CloudCore never ACKs upstream).
  if (!s_.ack_upstream || m.header.sync) return;
  if (auto it = sessions_.find(node); it == sessions_.end() || !it->second.acks) return;
  Message ack = kedge::new_response(m, boost::json::string("OK"));
  ack.route.resource = kedge::channel::trim_for_edge(m.route.resource);
  (void)conn->send(kedge::codec::encode(ack) + "\n");
}

// An ACK from the edge for a downstream message: true if it was one.
bool CloudHub::on_ack(const std::string& node, const Message& m) {
  if (!queues_->ack(node, m.header.parent_id)) return false;
  acked_->inc();
  update_pending_gauge();
  maybe_resync(node);
  pump(node);
  return true;
}

Status CloudHub::load_pending() {
  if (Status s = queues_->load([](const std::string&, kedge::reliable::Entry&) { return true; });
      !s)
    return s;
  auto marks = db_->prepare("SELECT node FROM resync");
  if (!marks.status) return marks.status;
  for (;;) {
    auto r = marks.value.step();
    if (!r.status) return r.status;
    if (!r.row) break;
    needs_resync_.insert(marks.value.text(0));
  }
  return {};
}

void CloudHub::enqueue(const std::string& node, const Message& m) {
  bool is_delete = m.route.operation == kedge::op::kDelete;
  std::string body = kedge::codec::encode(m) + "\n";
  if (body.size() > static_cast<size_t>(s_.max_frame_bytes)) {
    // It could never be delivered: the edge closes the link on it, forever.
    overflow_->inc();
    log_->error("node {}: {} {} is {} bytes, over max_frame_bytes; refused", node,
                m.route.operation, m.route.resource, body.size());
    return;
  }
  kedge::reliable::Entry e{kedge::channel::object_key(m),
                           m.header.id,
                           kedge::channel::parse_rv(m.header.resource_version),
                           is_delete ? kDeleteFlag : 0u,
                           std::move(body),
                           true};
  // Sent once its batch is committed: a cloud restart never forgets what
  // an edge may have seen. A delete always replaces what is queued.
  auto added =
      queues_->add(node, std::move(e), !is_delete,
                   [this, node, what = m.route.operation + " " + m.route.resource](Status s) {
                     if (!s) log_->error("node {}: cannot persist {}: {}", node, what, s.message());
                     update_pending_gauge();
                     if (s) pump(node);
                   });
  switch (added) {
    case kedge::reliable::Added::kStale:
      stale_->inc();
      log_->debug("node {}: {} {} is not newer than the queued version; dropped as stale", node,
                  m.route.operation, m.route.resource);
      return;
    case kedge::reliable::Added::kReplaced: replaced_->inc(); break;
    case kedge::reliable::Added::kFull:
      // True overflow. Nothing queued is dropped, and this message is not
      // lost either: the node is marked, and once its queue has drained the
      // controllers send it the current state of everything it should have.
      overflow_->inc();
      if (needs_resync_.insert(node).second) {
        log_->error(
            "node {}: {} messages pending; {} {} not queued, the node is marked for a "
            "full resync",
            node, queues_->size(node), m.route.operation, m.route.resource);
        resync_gauge_->set(static_cast<int64_t>(needs_resync_.size()));
        commit_->add([&] {
          mark_resync_.reset();
          mark_resync_.bind(1, node).bind(2, kedge::now_ms());
          return mark_resync_.run();
        });
      }
      return;
    case kedge::reliable::Added::kDuplicate:
      log_->debug("node {}: message {} is already queued", node, m.header.id);
      return;
    case kedge::reliable::Added::kQueued: break;
  }
  update_pending_gauge();
}

// Sends what is due: overdue resends, then queued messages while the
// node's window has room.
void CloudHub::pump(const std::string& node) {
  auto s = sessions_.find(node);
  if (s == sessions_.end() || !s->second.conn) return;
  auto conn = s->second.conn;
  auto r = queues_->pump(node, [&](const kedge::reliable::Entry& e) {
    return conn->send(e.body).is_ok();  // false: closed or backed up
  });
  resent_->inc(r.resent);
}

void CloudHub::send_now(const std::string& node, const Message& m) {
  auto s = sessions_.find(node);
  if (s == sessions_.end() || !s->second.conn) {
    log_->debug("node {} is not connected; response {} not sent", node, m.header.id);
    return;
  }
  std::string frame = kedge::codec::encode(m) + "\n";
  keep_reply(node, m.header.parent_id, frame);
  (void)s->second.conn->send(frame);
}

std::chrono::milliseconds CloudHub::ack_timeout() const {
  return std::chrono::milliseconds(s_.ack_timeout_ms);
}

void CloudHub::schedule_resend() {
  timer_->expires_after(std::min(ack_timeout(), std::chrono::milliseconds(1000)));
  timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    resend_overdue();
    schedule_resend();
  });
}

void CloudHub::resend_overdue() {
  std::vector<std::string> nodes;
  for (auto& [node, s] : sessions_)
    if (s.conn) nodes.push_back(node);
  for (auto& node : nodes) pump(node);
}

void CloudHub::update_pending_gauge() {
  pending_gauge_->set(static_cast<int64_t>(queues_->total()));
}

}  // namespace kedge::cloudhub

KEDGE_PLUGIN(kedge::cloudhub::CloudHub,
             {.name = "cloudhub",
              .version = "0.1.0",
              .description = "Cloud end of the cloud-edge channel: CA, bootstrap, "
                             "mTLS WebSocket, reliable per-node queues.",
              .config = kedge::cloudhub::kConfig})
