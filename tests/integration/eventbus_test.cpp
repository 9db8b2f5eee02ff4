// EventBus with a real mosquitto: a mapper written against KubeEdge 1.12's
// MQTT topics and documents (here an MQTT client in the test) reports and
// gets its desired values through kedge's edge and cloud; bad input is
// answered on the /result topic; the cloud publishes and subscribes through
// the channel; a restarted broker is outlived.
#include <sys/stat.h>

#include <condition_variable>
#include <mutex>

#include "../common/process.h"
#include "cloud_edge.h"
#include "kedge/common/mqtt.h"
#include "kedge/common/pki.h"

namespace kedge {
namespace {

using kedge::testing::Process;

class EventBus : public CloudEdge {
 protected:
  std::string edge_plugins() override {
    return "[[plugin]]\nname = \"eventbus\"\n[plugin.config]\nmax_payload = 4096\n" +
           (eventbus_config_.empty()
                ? "mqtt_server = \"tcp://127.0.0.1:" + std::to_string(mqtt_port_) + "\"\n"
                : eventbus_config_);
  }
  void SetUp() override {
    CloudEdge::SetUp();
    if (::access("/usr/sbin/mosquitto", X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed";
    mqtt_port_ = Harness::free_port();
    std::ofstream(root_ / "mosquitto.conf")
        << "listener " << mqtt_port_ << " 127.0.0.1\nallow_anonymous true\npersistence false\n";
    start_broker();
  }
  void TearDown() override {
    mapper_.reset();
    broker_.reset();
    CloudEdge::TearDown();
  }
  void start_broker() {
    broker_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/mosquitto", "-c", (root_ / "mosquitto.conf").string()},
        (root_ / "mosquitto.log").string());
  }

  // The 1.12-era mapper: subscribed to everything the edge publishes for it.
  void start_mapper(mqtt::Options o = {}) {
    o.port = mqtt_port_;
    o.client_id = "test-mapper";
    auto c = mqtt::Client::create(o, [this](std::string topic, std::string payload) {
      std::lock_guard lk(mu_);
      got_.push_back({std::move(topic), std::move(payload)});
      cv_.notify_all();
    });
    ASSERT_TRUE(c.ok()) << c.status.message();
    mapper_ = std::move(c.value);
    ASSERT_TRUE(mapper_->subscribe("$hw/events/#", 1));
    ASSERT_TRUE(Harness::eventually([&] { return mapper_->connected(); }, 10s));
    std::this_thread::sleep_for(200ms);  // its SUBACK
  }
  void pub(const std::string& topic, const std::string& payload) {
    ASSERT_TRUE(mapper_->publish(topic, payload, 1, false));
  }
  // The first message on `topic` (after `from` earlier ones) matching `pred`.
  json::value wait_on(const std::string& topic,
                      const std::function<bool(const json::value&)>& pred = {},
                      std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lk(mu_);
    json::value out;
    cv_.wait_for(lk, timeout, [&] {
      for (auto& [t, p] : got_) {
        if (t != topic) continue;
        json::error_code ec;
        auto v = json::parse(p, ec);
        if (ec) v = json::value(p);
        if (!pred || pred(v)) {
          out = v;
          return true;
        }
      }
      return false;
    });
    return out;
  }
  static std::function<bool(const json::value&)> event(const std::string& id) {
    return [id](const json::value& v) {
      return v.is_object() && v.as_object().contains("event_id") &&
             v.at("event_id") == json::value(id);
    };
  }
  int64_t metric(const std::string& name) {
    std::string text = edge_->metrics_text();
    auto p = text.find("\n" + name + " ");
    return p == std::string::npos ? -1 : std::atoll(text.c_str() + p + name.size() + 2);
  }

  std::string eventbus_config_;
  uint16_t mqtt_port_ = 0;
  std::unique_ptr<Process> broker_;
  std::unique_ptr<mqtt::Client> mapper_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, std::string>> got_;
};

const std::string kDev = "$hw/events/device/thermo-1/";

TEST_F(EventBus, AMapperOnMqttReportsAndGetsItsDesiredValues) {
  start_mapper();
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 1; }, 10s));
  create_device("25");
  // The device joins the node: membership/updated, then the desired value
  // as a delta.
  auto joined = wait_on("$hw/events/node/edge-1/membership/updated");
  ASSERT_TRUE(joined.is_object()) << "no membership/updated";
  EXPECT_EQ(joined.at("added_devices").at(0).at("id"), "thermo-1");
  auto delta = wait_on(kDev + "twin/update/delta");
  ASSERT_TRUE(delta.is_object()) << "no delta";
  EXPECT_EQ(delta.at("delta").at("setpoint"), "25");

  // A report: the result echoes the event id; the document has last and
  // current; the value reaches the Device's status in the cloud.
  pub(kDev + "twin/update",
      R"({"event_id":"ev-1","timestamp":1,"twin":{"temperature":{"actual":{"value":"21"},"metadata":{"type":"int"}}}})");
  auto result = wait_on(kDev + "twin/update/result", event("ev-1"));
  ASSERT_TRUE(result.is_object()) << "no result";
  EXPECT_EQ(result.at("twin").at("temperature").at("actual").at("value"), "21");
  auto doc = wait_on(kDev + "twin/update/document");
  ASSERT_TRUE(doc.is_object()) << "no document";
  // (last: the property as it was, with no reported value yet)
  auto& last = doc.at("twin").at("temperature").at("last");
  EXPECT_FALSE(last.is_object() && last.as_object().contains("actual")) << json::serialize(last);
  EXPECT_EQ(doc.at("twin").at("temperature").at("current").at("actual").at("value"), "21");
  EXPECT_TRUE(
      Harness::eventually([&] { return reported("thermo-1", "temperature") == "21"; }, 10s));

  // get, state, membership get.
  pub(kDev + "twin/get", R"({"event_id":"ev-2","timestamp":2})");
  auto got = wait_on(kDev + "twin/get/result", event("ev-2"));
  ASSERT_TRUE(got.is_object());
  EXPECT_EQ(got.at("twin").at("setpoint").at("expected").at("value"), "25");
  pub(kDev + "state/update", R"({"event_id":"ev-3","timestamp":3,"state":"online"})");
  auto st = wait_on(kDev + "state/update/result", event("ev-3"));
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st.at("device").at("state"), "online");
  pub("$hw/events/node/edge-1/membership/get", R"({"event_id":"ev-4","timestamp":4})");
  auto members = wait_on("$hw/events/node/edge-1/membership/get/result", event("ev-4"));
  ASSERT_TRUE(members.is_object());
  EXPECT_EQ(members.at("devices").at(0).at("id"), "thermo-1");

  // A new desired value in the cloud arrives as a delta.
  ASSERT_EQ(api("PATCH", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/thermo-1",
                json::parse(R"({"spec":{"properties":[{"name":"temperature"},
                                 {"name":"setpoint","desired":{"value":"30"}}]}})"),
                "application/merge-patch+json")
                .first,
            200);
  auto d30 = wait_on(kDev + "twin/update/delta", [](const json::value& v) {
    return v.is_object() && v.at("delta").as_object().contains("setpoint") &&
           v.at("delta").at("setpoint") == "30";
  });
  EXPECT_TRUE(d30.is_object()) << "no delta for 30";
}

TEST_F(EventBus, BadInputIsAnsweredOnTheResultTopicAndNothingElseHappens) {
  start_mapper();
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 1; }, 10s));
  create_device("25");
  ASSERT_TRUE(wait_on(kDev + "twin/update/delta").is_object());
  auto code = [&](const std::string& topic, const std::string& payload,
                  const std::string& ev) -> int64_t {
    pub(topic, payload);
    auto r = wait_on(topic + "/result",
                     ev.empty() ? std::function<bool(const json::value&)>{} : event(ev));
    return r.is_object() && r.as_object().contains("code") ? r.at("code").as_int64() : 0;
  };
  EXPECT_EQ(code(kDev + "twin/update", "{not json", ""), 400);
  EXPECT_EQ(code("$hw/events/device/nobody/twin/update",
                 R"({"event_id":"b2","twin":{"t":{"actual":{"value":"1"}}}})", "b2"),
            404);
  EXPECT_EQ(
      code(kDev + "twin/update",
           R"({"event_id":"b3","twin":{"temperature":{"actual":{"value":"not valid!"}}}})", "b3"),
      400);
  EXPECT_EQ(code("$hw/events/device/a..b/twin/update", R"({"event_id":"b4","twin":{}})", "b4"),
            400);
  EXPECT_EQ(code("$hw/events/node/other-node/membership/get", R"({"event_id":"b5"})", "b5"), 404);
  // Over max_payload (4096 here): dropped, counted, not answered.
  pub(kDev + "twin/update", std::string(5000, 'x'));
  EXPECT_TRUE(
      Harness::eventually([&] { return metric("kedge_eventbus_oversize_total") == 1; }, 10s));
  // Nothing of it reached the Device.
  EXPECT_EQ(reported("thermo-1", "temperature"), "");
}

TEST_F(EventBus, TheCloudPublishesAndSubscribesThroughTheChannel) {
  start_mapper();
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 1; }, 10s));
  ASSERT_TRUE(mapper_->subscribe("app/#", 1));
  // As 1.12's cloud router sends them (source router_eventbus, group user).
  auto to_edge = [&](const std::string& op, const std::string& topic, json::value content) {
    Message m =
        make_message("router_eventbus", "user", op, "node/edge-1/" + topic, std::move(content));
    ASSERT_TRUE(cloud_->send("cloudhub", m));
  };
  to_edge("publish", "app/commands", json::string("open the valve"));
  json::value cmd;
  ASSERT_TRUE(Harness::eventually(
      [&] {
        cmd = wait_on("app/commands", {}, 200ms);
        return !cmd.is_null();
      },
      10s));
  EXPECT_EQ(cmd, json::value("open the valve"));
  // A subscription the cloud asks for: what an app publishes there goes up.
  to_edge("subscribe", "app/readings", nullptr);
  ASSERT_TRUE(Harness::eventually(
      [&] {
        pub("app/readings", "42");
        return metric("kedge_eventbus_uploaded_total") >= 1;
      },
      10s));
  // It outlives an edge restart (KubeEdge's sub_topics table).
  edge_.reset();
  start_edge();
  ASSERT_TRUE(connected());
  int64_t before = metric("kedge_eventbus_uploaded_total");
  ASSERT_TRUE(Harness::eventually(
      [&] {
        pub("app/readings", "43");
        return metric("kedge_eventbus_uploaded_total") > before;
      },
      10s));
}

TEST_F(EventBus, ARestartedBrokerIsOutlived) {
  start_mapper();
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 1; }, 10s));
  create_device("25");
  ASSERT_TRUE(wait_on(kDev + "twin/update/delta").is_object());
  broker_->kill(SIGTERM);
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 0; }, 10s));
  start_broker();
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 1; }, 30s));
  // eventbus subscribed again: a report gets its result.
  int n = 0;
  ASSERT_TRUE(Harness::eventually(
      [&] {
        std::string ev = "again-" + std::to_string(++n);
        pub(kDev + "twin/update",
            R"({"event_id":")" + ev + R"(","twin":{"temperature":{"actual":{"value":"22"}}}})");
        return wait_on(kDev + "twin/update/result", event(ev), 500ms).is_object();
      },
      30s));
  EXPECT_TRUE(
      Harness::eventually([&] { return reported("thermo-1", "temperature") == "22"; }, 10s));
}

// KubeEdge's internal mode: eventbus runs the broker (a supervised
// mosquitto on loopback) and restarts it when it dies.
TEST_F(EventBus, TheInternalBrokerIsRunAndRestartedByEventbus) {
  broker_.reset();  // no external broker: eventbus brings its own
  eventbus_config_ =
      "mode = \"internal\"\ninternal_server = \"tcp://127.0.0.1:" + std::to_string(mqtt_port_) +
      "\"\n";
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 1; }, 15s));
  start_mapper();
  create_device("25");
  ASSERT_TRUE(wait_on(kDev + "twin/update/delta").is_object());
  auto report_answered = [&](const std::string& value) {
    static int n = 0;
    std::string ev = "int-" + std::to_string(++n);
    pub(kDev + "twin/update", R"({"event_id":")" + ev +
                                  R"(","twin":{"temperature":{"actual":{"value":")" + value +
                                  R"("}}}})");
    return wait_on(kDev + "twin/update/result", event(ev), 500ms).is_object();
  };
  ASSERT_TRUE(Harness::eventually([&] { return report_answered("20"); }, 10s));
  // The broker dies: eventbus starts it again, and reconnects.
  std::string conf = (root_ / "edge/data/eventbus-broker/mosquitto.conf").string();
  ASSERT_EQ(std::system(("pkill -KILL -x -f 'mosquitto -c " + conf + "'").c_str()), 0);
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 0; }, 10s));
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 1; }, 30s));
  ASSERT_TRUE(Harness::eventually([&] { return report_answered("23"); }, 30s));
  EXPECT_TRUE(
      Harness::eventually([&] { return reported("thermo-1", "temperature") == "23"; }, 10s));
  // Stopped with the edge.
  edge_.reset();
  EXPECT_NE(std::system(("pgrep -x -f 'mosquitto -c " + conf + "' >/dev/null").c_str()), 0);
}

// TLS to an external broker that asks for client certificates.
TEST_F(EventBus, ReachesABrokerOverTls) {
  broker_.reset();
  auto ca_key = pki::generate_key();
  auto ca = pki::make_ca(ca_key.get(), {"test-mqtt-ca", ""});
  ASSERT_TRUE(ca.ok());
  auto write_pair = [&](const std::string& name, unsigned usage) {
    auto k = pki::generate_key();
    pki::SignOptions so;
    so.usages = usage;
    so.ips = {"127.0.0.1"};
    auto c = pki::issue(ca.value.get(), ca_key.get(), k.get(), {name, ""}, so);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(
        pki::write_file((root_ / (name + ".crt")).string(), pki::cert_pem(c.value.get()), false));
    ASSERT_TRUE(pki::write_file((root_ / (name + ".key")).string(), pki::key_pem(k.get()), false));
  };
  ASSERT_TRUE(pki::write_file((root_ / "ca.crt").string(), pki::cert_pem(ca.value.get()), false));
  write_pair("127.0.0.1", pki::kServerAuth);
  write_pair("edge-client", pki::kClientAuth);
  auto file = [&](const std::string& n) { return (root_ / n).string(); };
  std::ofstream(root_ / "mosquitto.conf")
      << "listener " << mqtt_port_ << " 127.0.0.1\nallow_anonymous true\npersistence false\n"
      << "cafile " << file("ca.crt") << "\ncertfile " << file("127.0.0.1.crt") << "\nkeyfile "
      << file("127.0.0.1.key") << "\nrequire_certificate true\n";
  start_broker();
  eventbus_config_ = "mqtt_server = \"ssl://127.0.0.1:" + std::to_string(mqtt_port_) +
                     "\"\nca_file = \"" + file("ca.crt") + "\"\ncert_file = \"" +
                     file("edge-client.crt") + "\"\nkey_file = \"" + file("edge-client.key") +
                     "\"\n";
  start_cloud();
  start_edge();
  ASSERT_TRUE(connected());
  ASSERT_TRUE(Harness::eventually([&] { return metric("kedge_eventbus_connected") == 1; }, 15s));
  mqtt::Options o;
  o.ca_file = file("ca.crt");
  o.cert_file = file("edge-client.crt");
  o.key_file = file("edge-client.key");
  start_mapper(o);
  create_device("25");
  auto delta = wait_on(kDev + "twin/update/delta");
  ASSERT_TRUE(delta.is_object()) << "no delta over TLS";
  EXPECT_EQ(delta.at("delta").at("setpoint"), "25");
}

}  // namespace
}  // namespace kedge
