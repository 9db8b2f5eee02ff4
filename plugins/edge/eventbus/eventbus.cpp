// eventbus: KubeEdge 1.12's EventBus (edge/pkg/eventbus; docs/eventbus.md),
// the MQTT device path of 1.12-era mappers and edge applications.
//
// * A client of the MQTT broker (external mode, as 1.12's default
//   `mqttMode: 2`, tcp://127.0.0.1:1883) on libmosquitto: it reconnects with
//   back-off and subscribes again to KubeEdge's topics and to every topic
//   the cloud asked for (kept in KubeEdge's `sub_topics` table).
// * $hw/events/device/<id>/twin/update, .../twin/get, .../state/update and
//   $hw/events/node/<node>/membership/get go to the twin; its answer is
//   published on the same topic + "/result" with the request's event_id.
//   A payload that is no JSON document, or a device id that is not one
//   ("..", wildcards), is answered there with KubeEdge's error document
//   (code 400) and goes no further.
// * Any other topic is uploaded to the cloud as 1.12 does (source bus,
//   group user, op upload, resource the topic, content the payload text)
//   through edgehub, whose outbox keeps it while the cloud is away.
// * Messages to this module (from the cloud's router, or from the twin):
//   publish (resource = topic), subscribe, unsubscribe, message
//   ({"message": {"topic", ...}}) and get_result of auth_info, as 1.12's
//   pubCloudMsgToEdge. The cloud's are ACKed once done.
// * Payloads over max_payload bytes are dropped, counted and logged with
//   their topic.
#include <spdlog/logger.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <regex>

#include "broker_process.h"
#include "contracts/eventbus.h"
#include "contracts/modules.h"
#include "contracts/wire.h"
#include "kedge/common/json.h"
#include "kedge/common/mqtt.h"
#include "kedge/common/sqlite.h"
#include "kedge/plugin.h"

namespace {

namespace json = boost::json;
namespace eb = kedge::contracts::eventbus;
namespace wire = kedge::contracts::wire;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

// KubeEdge 1.12's table (edge/pkg/eventbus/dao).
const std::vector<std::string> kSchema = {
    "CREATE TABLE IF NOT EXISTS `sub_topics` (`topic` text NOT NULL PRIMARY KEY);",
};

// A device id as a topic level: what the twin accepts as a key, no "..".
const std::regex kDeviceId("^[a-zA-Z0-9-_.,:@]{1,128}$");

struct Settings {
  std::string mode, internal_server, broker_binary;
  int64_t session_queue = 0;
  std::string mqtt_server, client_id, username, password, ca_file, cert_file, key_file, db_path;
  int64_t qos = 0, max_payload = 0, offline_queue = 0, twin_timeout_ms = 0;
  bool retain = false;
  std::string twin, edgehub;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    {"mode", &Settings::mode, "\"external\"",
     "Which broker (KubeEdge's mqttMode): external (2, mqtt_server), internal (0, a mosquitto "
     "run by eventbus at internal_server) or both (1)."},
    {"internal_server", &Settings::internal_server, "\"tcp://127.0.0.1:1884\"",
     "Where the internal broker listens (mqttServerInternal); a loopback address."},
    {"broker_binary", &Settings::broker_binary, "\"mosquitto\"",
     "The internal broker's program (searched in PATH)."},
    {"session_queue", &Settings::session_queue, "100",
     "The internal broker's per-client queue (mqttSessionQueueSize).", false, 1, 1000000},
    {"mqtt_server", &Settings::mqtt_server, "\"tcp://127.0.0.1:1883\"",
     "The MQTT broker (KubeEdge's mqttServerExternal): tcp:// or ssl://host:port."},
    {"client_id", &Settings::client_id, "\"\"",
     "MQTT client id; \"\" = hub-client-<time>, as KubeEdge's."},
    {"username", &Settings::username, "\"\"", "MQTT user name (mqttUsername)."},
    {"password", &Settings::password, "\"\"", "MQTT password (mqttPassword)."},
    {"ca_file", &Settings::ca_file, "\"\"", "TLS to the broker: its CA (tlsMqttCAFile)."},
    {"cert_file", &Settings::cert_file, "\"\"", "TLS client certificate (tlsMqttCertFile)."},
    {"key_file", &Settings::key_file, "\"\"", "TLS client key (tlsMqttPrivateKeyFile)."},
    {"qos", &Settings::qos, "0", "QoS of what eventbus publishes (mqttQOS).", false, 0, 2},
    {"retain", &Settings::retain, "false", "Retain flag of what eventbus publishes (mqttRetain)."},
    {"max_payload", &Settings::max_payload, "1048576",
     "Largest MQTT payload taken, in bytes; larger ones are dropped and counted.", false, 1,
     268435455},
    {"offline_queue", &Settings::offline_queue, "1000",
     "Messages to publish kept while the broker is away (the oldest dropped past it).", false, 0,
     1000000},
    {"twin_timeout_ms", &Settings::twin_timeout_ms, "5000",
     "How long a twin request may take before an error result is published.", false, 100, 600000},
    {"db_path", &Settings::db_path, "\"\"",
     "SQLite database of the sub_topics table (default <data_dir>/eventbus.db)."},
    kedge::contracts::peer_setting(kedge::contracts::kTwin, &Settings::twin,
                                   "The device twin MQTT twin requests go to."),
    kedge::contracts::peer_setting(kedge::contracts::kEdgeHub, &Settings::edgehub,
                                   "The module uploads go to the cloud through."),
};
constexpr auto kConfig = kedge::config_keys(kSettings);

json::object error_doc(const std::string& event_id, int code, const std::string& reason) {
  return {
      {"event_id", event_id}, {"timestamp", kedge::now_ms()}, {"code", code}, {"reason", reason}};
}

class EventBus final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    s_ = kedge::read_settings(kSettings, cfg);
    if (s_.mode != "external" && s_.mode != "internal" && s_.mode != "both")
      return kedge::invalid_argument("mode: '" + s_.mode +
                                     "' is not one of external, internal, both");
    std::string id =
        s_.client_id.empty() ? "hub-client-" + std::to_string(kedge::now_ms()) : s_.client_id;
    if (s_.mode != "internal") {
      Broker& b = brokers_.emplace_back();
      b.label = "external";
      b.opts.client_id = id;
      b.opts.username = s_.username;
      b.opts.password = s_.password;
      b.opts.ca_file = s_.ca_file;
      b.opts.cert_file = s_.cert_file;
      b.opts.key_file = s_.key_file;
      if (Status s = kedge::mqtt::parse_url(s_.mqtt_server, b.opts); !s)
        return kedge::invalid_argument("mqtt_server: " + s.message());
    }
    if (s_.mode != "external") {
      Broker& b = brokers_.emplace_back();
      b.label = "internal";
      b.opts.client_id = id + "-internal";
      if (Status s = kedge::mqtt::parse_url(s_.internal_server, b.opts); !s)
        return kedge::invalid_argument("internal_server: " + s.message());
      if (b.opts.host.rfind("127.", 0) != 0 && b.opts.host != "::1" && b.opts.host != "localhost")
        return kedge::invalid_argument("internal_server: '" + b.opts.host +
                                       "' is not a loopback address");
      internal_ = {s_.broker_binary, b.opts.host, b.opts.port, s_.session_queue,
                   ctx.data_dir() / "eventbus-broker"};
    }
    for (auto& b : brokers_) b.opts.offline_queue = static_cast<size_t>(s_.offline_queue);
    std::string path = s_.db_path.empty() ? (ctx.data_dir() / "eventbus.db").string() : s_.db_path;
    auto db = kedge::sqlite::Db::open(path);
    if (!db.status) return db.status;
    db_ = std::move(db.value);
    if (Status s = db_->migrate("eventbus", kSchema); !s) return s;
    auto& m = ctx.metrics();
    received_ = &m.counter("kedge_eventbus_received_total", "MQTT messages received");
    published_ = &m.counter("kedge_eventbus_published_total", "MQTT messages published");
    uploaded_ = &m.counter("kedge_eventbus_uploaded_total", "MQTT messages uploaded to the cloud");
    refused_ = &m.counter("kedge_eventbus_refused_total",
                          "MQTT twin requests refused (bad JSON, bad device id)");
    oversize_ = &m.counter("kedge_eventbus_oversize_total",
                           "MQTT payloads dropped for being over max_payload");
    connected_ =
        &m.gauge("kedge_eventbus_connected", "Brokers connected now (1, or 2 in mode both)");
    return {};
  }

  Status start() override {
    if (s_.mode != "external") {
      broker_process_ =
          std::make_unique<kedge::eventbus::BrokerProcess>(ctx_->executor(), log_, internal_);
      if (Status s = broker_process_->start(); !s) return s;
    }
    // The network threads' news, run on this plugin's strand while it runs.
    alive_ = std::make_shared<std::atomic<bool>>(true);
    std::vector<std::string> topics(eb::kSubscriptions.begin(), eb::kSubscriptions.end());
    auto sel = db_->prepare("SELECT topic FROM sub_topics");
    if (!sel.status) return sel.status;
    while (sel.value.step().row) topics.push_back(sel.value.text(0));
    for (auto& b : brokers_) {
      if (Status s = connect(b); !s) return s;
      for (auto& t : topics) (void)b.client->subscribe(t, 1);
    }
    return {};
  }
  Status stop() override {
    if (alive_) *alive_ = false;
    for (auto& b : brokers_) b.client.reset();
    broker_process_.reset();
    return {};
  }

 private:
  struct Broker {
    std::string label;
    kedge::mqtt::Options opts;
    std::unique_ptr<kedge::mqtt::Client> client;
    bool up = false;
  };

  Status connect(Broker& b) {
    auto ex = ctx_->executor();
    auto c = kedge::mqtt::Client::create(
        b.opts,
        [this, ex, alive = alive_](std::string topic, std::string payload) {
          boost::asio::post(ex,
                            [this, alive, t = std::move(topic), p = std::move(payload)]() mutable {
                              if (*alive) on_mqtt(t, std::move(p));
                            });
        },
        [this, ex, alive = alive_, b = &b](bool up, const std::string& why) {
          boost::asio::post(ex, [this, alive, b, up, why] {
            if (!*alive) return;
            b->up = up;
            int64_t n = 0;
            for (auto& x : brokers_) n += x.up ? 1 : 0;
            connected_->set(n);
            if (up)
              log_->info("connected to the {} MQTT broker {}:{}", b->label, b->opts.host,
                         b->opts.port);
            else
              log_->warn("{} MQTT broker {}:{}: {}", b->label, b->opts.host, b->opts.port, why);
          });
        });
    if (!c.ok()) return c.status;
    b.client = std::move(c.value);
    return {};
  }

 public:
  // From the cloud's router (through edgehub) and from the twin.
  void on_message(const MessagePtr& m) override {
    if (m->is_response() || m->route.operation == kedge::op::kConnect) return;
    const std::string& op = m->route.operation;
    const std::string& r = m->route.resource;
    Status s;
    if (op == eb::kPublish) {
      s = publish(r, payload_of(m->content));
    } else if (op == eb::kSubscribe) {
      s = subscribe(r);
    } else if (op == eb::kUnsubscribe) {
      s = unsubscribe(r);
    } else if (op == eb::kMessage) {
      auto* msg = kedge::json_path::find(m->content, {"message"});
      std::string topic = msg ? kedge::json_path::string_at(*msg, {"topic"}) : "";
      s = topic.empty() ? kedge::invalid_argument("message has no message.topic")
                        : publish(topic, json::serialize(*msg));
    } else if (op == eb::kGetResult) {
      if (r == "auth_info")
        s = publish(eb::node_topic(ctx_->node_name(), "authInfo/get/result"),
                    json::serialize(m->content));
    } else {
      s = kedge::invalid_argument("operation '" + op + "' is not one of eventbus's");
    }
    if (!s) log_->warn("{} {} from {}: {}", op, r, m->route.source, s.message());
    // The cloud's message is done (or cannot be): ACKed so it is not resent.
    if (m->route.source != ctx_->name() && (m->route.source == wire::source::kRouterEventBus ||
                                            wire::is_cloud_source(m->route.source)))
      (void)ctx_->send(s_.edgehub, kedge::share(kedge::new_response(*m, json::string("OK"))), 1s);
  }

 private:
  static std::string payload_of(const json::value& c) {
    return c.is_string() ? std::string(c.as_string()) : json::serialize(c);
  }

  Status publish(const std::string& topic, const std::string& payload) {
    if (topic.empty() || topic.find_first_of("+#") != std::string::npos)
      return kedge::invalid_argument("topic '" + topic + "' is not one to publish to");
    // To every broker (KubeEdge's mode "both" publishes to both).
    Status out;
    for (auto& b : brokers_) {
      if (!b.client) return {Code::kUnavailable, "not started"};
      Status s = b.client->publish(topic, payload, static_cast<int>(s_.qos), s_.retain);
      if (s)
        published_->inc();
      else
        out = s;
    }
    return out;
  }
  Status subscribe(const std::string& topic) {
    if (topic.empty()) return kedge::invalid_argument("no topic to subscribe to");
    auto ins = db_->prepare("INSERT OR REPLACE INTO sub_topics(topic) VALUES(?)");
    if (!ins.status) return ins.status;
    ins.value.bind(1, topic);
    if (Status s = ins.value.run(); !s) return s;
    for (auto& b : brokers_)
      if (b.client)
        if (Status s = b.client->subscribe(topic, 1); !s) return s;
    return {};
  }
  Status unsubscribe(const std::string& topic) {
    auto del = db_->prepare("DELETE FROM sub_topics WHERE topic = ?");
    if (!del.status) return del.status;
    del.value.bind(1, topic);
    if (Status s = del.value.run(); !s) return s;
    for (auto& b : brokers_)
      if (b.client)
        if (Status s = b.client->unsubscribe(topic); !s) return s;
    return {};
  }

  void on_mqtt(const std::string& topic, std::string payload) {
    received_->inc();
    if (payload.size() > static_cast<size_t>(s_.max_payload)) {
      oversize_->inc();
      log_->warn("MQTT message on {} dropped: {} bytes, over max_payload {}", topic, payload.size(),
                 s_.max_payload);
      return;
    }
    if (topic.rfind(eb::kDevicePrefix, 0) == 0 || topic.rfind(eb::kNodePrefix, 0) == 0)
      return to_twin(topic, std::move(payload));
    upload(topic, std::move(payload));
  }

  // The cloud's router gets anything that is not for the twin.
  void upload(const std::string& topic, std::string payload) {
    auto m = kedge::make_message(std::string(wire::source::kBus), std::string(wire::group::kUser),
                                 "upload", topic, json::string(payload));
    Status s = ctx_->send(s_.edgehub, kedge::share(std::move(m)), 1s);
    if (s)
      uploaded_->inc();
    else if (s.code() != Code::kNotFound)
      log_->warn("upload of {} not handed to {}: {}", topic, s_.edgehub, s.message());
  }

  void to_twin(const std::string& topic, std::string payload) {
    // $hw/events/device/<id>/<what...> or $hw/events/node/<node>/membership/get
    bool device = topic.rfind(eb::kDevicePrefix, 0) == 0;
    std::string rest = topic.substr(device ? eb::kDevicePrefix.size() : eb::kNodePrefix.size());
    size_t slash = rest.find('/');
    std::string id = rest.substr(0, slash),
                what = slash == std::string::npos ? "" : rest.substr(slash + 1);
    std::string op, resource;
    if (device && what == "twin/update") {
      op = "update", resource = "device/" + id + "/twin/update";
    } else if (device && what == "twin/get") {
      op = "get", resource = "device/" + id + "/twin/get";
    } else if (device && what == "state/update") {
      op = "update", resource = "device/" + id + "/state/update";
    } else if (!device && what == "membership/get") {
      op = "get", resource = "membership";
    } else {
      log_->debug("MQTT topic {} is not a twin request; ignored", topic);
      return;
    }
    const std::string result = topic + "/result";
    json::error_code ec;
    json::value doc = payload.empty() ? json::value(json::object{}) : json::parse(payload, ec);
    std::string event_id = kedge::json_path::string_at(doc, {"event_id"});
    if (ec || !doc.is_object()) {
      refused_->inc();
      (void)publish(result, json::serialize(error_doc(
                                "", 400, "the payload on " + topic + " is not a JSON object")));
      return;
    }
    if (!std::regex_match(id, kDeviceId) || id.find("..") != std::string::npos) {
      refused_->inc();
      (void)publish(result, json::serialize(error_doc(event_id, 400,
                                                      "'" + id + "' is not a valid " +
                                                          (device ? "device id" : "node name"))));
      return;
    }
    if (!device && id != ctx_->node_name()) {
      refused_->inc();
      (void)publish(
          result, json::serialize(error_doc(event_id, 404, "node '" + id + "' is not this node")));
      return;
    }
    auto msg = kedge::make_message(ctx_->name(), std::string(wire::local_group::kTwin), op,
                                   resource, std::move(doc));
    ctx_->request(
        s_.twin, kedge::share(std::move(msg)), std::chrono::milliseconds(s_.twin_timeout_ms),
        [this, result, event_id](Status s, MessagePtr r) {
          json::value out = s && r ? r->content
                                   : json::value(error_doc(
                                         event_id, 500, "the twin did not answer: " + s.message()));
          // The answer carries the request's event id (KubeEdge's
          // results do).
          if (out.is_object() && !event_id.empty()) out.as_object()["event_id"] = event_id;
          (void)publish(result, json::serialize(out));
        });
  }

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  Settings s_;
  std::vector<Broker> brokers_;  // not resized after init: callbacks hold pointers
  kedge::eventbus::BrokerSettings internal_;
  std::unique_ptr<kedge::eventbus::BrokerProcess> broker_process_;
  std::unique_ptr<kedge::sqlite::Db> db_;
  std::shared_ptr<std::atomic<bool>> alive_;
  kedge::Counter *received_ = nullptr, *published_ = nullptr, *uploaded_ = nullptr,
                 *refused_ = nullptr, *oversize_ = nullptr;
  kedge::Gauge* connected_ = nullptr;
};

constexpr kedge::PeerDecl kPeers[] = {
    {kedge::contracts::kTwin.key, "MQTT twin, state and membership requests", true},
    {kedge::contracts::kEdgeHub.key, "uploads to the cloud, ACKs of the cloud's messages", true},
};

}  // namespace

KEDGE_PLUGIN(EventBus, {.name = "eventbus",
                        .version = "0.1.0",
                        .group = "bus",
                        .description = "EventBus: KubeEdge 1.12's MQTT topics between mappers, "
                                       "apps, the twin and the cloud.",
                        .config = kConfig,
                        .peers = kPeers})
