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
  std::string mqtt_server, client_id, username, password, ca_file, cert_file, key_file, db_path;
  int64_t qos = 0, max_payload = 0, offline_queue = 0, twin_timeout_ms = 0;
  bool retain = false;
  std::string twin, edgehub;
};
constexpr kedge::Setting<Settings> kSettings[] = {
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
    opts_.client_id =
        s_.client_id.empty() ? "hub-client-" + std::to_string(kedge::now_ms()) : s_.client_id;
    opts_.username = s_.username;
    opts_.password = s_.password;
    opts_.ca_file = s_.ca_file;
    opts_.cert_file = s_.cert_file;
    opts_.key_file = s_.key_file;
    opts_.offline_queue = static_cast<size_t>(s_.offline_queue);
    if (Status s = kedge::mqtt::parse_url(s_.mqtt_server, opts_); !s)
      return kedge::invalid_argument("mqtt_server: " + s.message());
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
    connected_ = &m.gauge("kedge_eventbus_connected", "1 while connected to the broker");
    return {};
  }

  Status start() override {
    auto ex = ctx_->executor();
    // The network thread's news, run on this plugin's strand while it runs.
    alive_ = std::make_shared<std::atomic<bool>>(true);
    auto c = kedge::mqtt::Client::create(
        opts_,
        [this, ex, alive = alive_](std::string topic, std::string payload) {
          boost::asio::post(ex,
                            [this, alive, t = std::move(topic), p = std::move(payload)]() mutable {
                              if (*alive) on_mqtt(t, std::move(p));
                            });
        },
        [this, ex, alive = alive_](bool up, const std::string& why) {
          boost::asio::post(ex, [this, alive, up, why] {
            if (!*alive) return;
            connected_->set(up ? 1 : 0);
            if (up)
              log_->info("connected to the MQTT broker {}:{}", opts_.host, opts_.port);
            else
              log_->warn("MQTT broker {}:{}: {}", opts_.host, opts_.port, why);
          });
        });
    if (!c.ok()) return c.status;
    client_ = std::move(c.value);
    for (auto t : eb::kSubscriptions) (void)client_->subscribe(std::string(t), 1);
    auto sel = db_->prepare("SELECT topic FROM sub_topics");
    if (!sel.status) return sel.status;
    while (sel.value.step().row) (void)client_->subscribe(sel.value.text(0), 1);
    return {};
  }
  Status stop() override {
    if (alive_) *alive_ = false;
    client_.reset();
    return {};
  }

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
    if (!client_) return {Code::kUnavailable, "not started"};
    Status s = client_->publish(topic, payload, static_cast<int>(s_.qos), s_.retain);
    if (s) published_->inc();
    return s;
  }
  Status subscribe(const std::string& topic) {
    if (topic.empty()) return kedge::invalid_argument("no topic to subscribe to");
    auto ins = db_->prepare("INSERT OR REPLACE INTO sub_topics(topic) VALUES(?)");
    if (!ins.status) return ins.status;
    ins.value.bind(1, topic);
    if (Status s = ins.value.run(); !s) return s;
    return client_ ? client_->subscribe(topic, 1) : Status{};
  }
  Status unsubscribe(const std::string& topic) {
    auto del = db_->prepare("DELETE FROM sub_topics WHERE topic = ?");
    if (!del.status) return del.status;
    del.value.bind(1, topic);
    if (Status s = del.value.run(); !s) return s;
    return client_ ? client_->unsubscribe(topic) : Status{};
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
  kedge::mqtt::Options opts_;
  std::unique_ptr<kedge::sqlite::Db> db_;
  std::unique_ptr<kedge::mqtt::Client> client_;
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
