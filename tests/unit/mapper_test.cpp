// The Mapper SDK without an agent: device parsing and its errors, values,
// DMI conversions, the Modbus register codec, and the engine with a fake
// driver (cycles, desired writes, health, back-off, Device-as-a-Service,
// HTTP push).
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <thread>

#include "dmi_convert.h"
#include "kedge/common/net.h"
#include "kedge/mapper/engine.h"
#include "kedge/mapper/service.h"
#include "kedge/testing/harness.h"
#include "modbus_codec.h"

namespace kedge::mapper {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using kedge::testing::Harness;

json::value model_json() {
  return json::parse(R"({"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel",
    "metadata":{"name":"thermo","namespace":"default"},
    "spec":{"properties":[{"name":"temperature","type":"FLOAT","accessMode":"ReadOnly","unit":"C"},
                         {"name":"setpoint","type":"INT","accessMode":"ReadWrite"}]}})");
}

json::value device_json(const std::string& desired = "5", int64_t collect_ns = 20'000'000) {
  return json::parse(R"({"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device",
    "metadata":{"name":"d1","namespace":"default"},
    "spec":{"deviceModelRef":{"name":"thermo"},"nodeName":"n",
      "protocol":{"protocolName":"fake","configData":{"ip":"127.0.0.1","port":1502,"ratio":0.1,"on":true}},
      "properties":[
        {"name":"temperature","collectCycle":)" +
                     std::to_string(collect_ns) + R"(,"reportCycle":40000000,"reportToCloud":true,
         "visitors":{"protocolName":"fake","configData":{"register":"InputRegister","offset":3}},
         "pushMethod":{"mqtt":{"address":"tcp://127.0.0.1:1883","topic":"t/temp","qos":1}}},
        {"name":"setpoint","desired":{"value":")" +
                     desired + R"("},"collectCycle":20000000,
         "visitors":{"protocolName":"fake","configData":{"register":"HoldingRegister","offset":0}}}]}})");
}

std::string error_of(const json::value& dev, const json::value* model = nullptr) {
  Device d;
  Status s = parse_device(dev, model, d);
  return s ? "" : s.message();
}

TEST(MapperDevice, ParsesAV1beta1DeviceWithItsModel) {
  auto m = model_json();
  Device d;
  ASSERT_TRUE(parse_device(device_json(), &m, d));
  EXPECT_EQ(d.id(), "default/d1");
  EXPECT_EQ(d.protocol, "fake");
  EXPECT_EQ(d.protocol_config.at("port").as_int64(), 1502);
  ASSERT_EQ(d.properties.size(), 2u);
  const Property& t = d.properties[0];
  EXPECT_EQ(t.type, "float");
  EXPECT_FALSE(t.writable);
  EXPECT_EQ(t.unit, "C");
  EXPECT_EQ(t.collect_cycle, 20ms);
  EXPECT_EQ(t.report_cycle, 40ms);
  EXPECT_TRUE(t.report_to_cloud);
  ASSERT_TRUE(t.mqtt);
  EXPECT_EQ(t.mqtt->host, "127.0.0.1");
  EXPECT_EQ(t.mqtt->port, 1883);
  EXPECT_EQ(t.mqtt->qos, 1);
  EXPECT_EQ(t.visitor.at("offset").as_int64(), 3);
  const Property& s = d.properties[1];
  EXPECT_TRUE(s.writable);
  EXPECT_EQ(s.type, "int");
  EXPECT_EQ(s.desired.value_or(""), "5");
  EXPECT_EQ(s.report_cycle, 1000ms);  // default
}

TEST(MapperDevice, ErrorsNameTheField) {
  auto m = model_json();
  auto with = [](const char* patch) {
    auto d = device_json();
    auto p = json::parse(patch);
    auto& props = d.at("spec").at("properties").as_array();
    for (auto& [k, v] : p.as_object()) props[0].as_object()[k] = v;
    return d;
  };
  EXPECT_EQ(error_of(with(R"({"collectCycle":1000})")),
            "spec.properties[0].collectCycle: 1000 ns is below 1 ms (cycles are nanoseconds: 1 s "
            "= 1000000000)");
  EXPECT_EQ(error_of(with(R"({"reportCycle":"soon"})")),
            "spec.properties[0].reportCycle: expected an integer, got \"soon\"");
  EXPECT_EQ(error_of(with(R"({"pushMethod":{"mqtt":{"address":"tcp://h:1883"}}})")),
            "spec.properties[0].pushMethod.mqtt.topic: required");
  EXPECT_EQ(error_of(with(R"({"pushMethod":{"mqtt":{"address":"ws://h","topic":"t"}}})")),
            "spec.properties[0].pushMethod.mqtt.address: 'ws://h': only tcp:// and mqtt:// "
            "brokers are supported");
  EXPECT_EQ(error_of(with(R"({"pushMethod":{"mqtt":{"address":"h:99999","topic":"t"}}})")),
            "spec.properties[0].pushMethod.mqtt.address: 'h:99999': bad port");
  EXPECT_EQ(error_of(with(R"({"pushMethod":{"mqtt":{"address":"h","topic":"a/#"}}})")),
            "spec.properties[0].pushMethod.mqtt.topic: 'a/#': wildcards cannot be published to");
  EXPECT_EQ(error_of(with(R"({"pushMethod":{"mqtt":{"address":"h","topic":"t","qos":3}}})")),
            "spec.properties[0].pushMethod.mqtt.qos: must be 0, 1 or 2");
  EXPECT_EQ(error_of(with(R"({"pushMethod":{"http":{"hostName":"h","port":0}}})")),
            "spec.properties[0].pushMethod.http.port: must be 1-65535");
  EXPECT_EQ(error_of(with(R"({"reportToCloud":"yes"})")),
            "spec.properties[0].reportToCloud: expected true or false");
  EXPECT_EQ(error_of(with(R"({"name":"setpoint"})")),
            "spec.properties[1].name: 'setpoint' is listed twice");
  EXPECT_EQ(error_of(with(R"({"name":"humidity"})"), &m),
            "spec.properties[0].name: 'humidity' is not a property of model 'thermo'");
  EXPECT_EQ(error_of(json::parse(R"({"spec":{}})")), "metadata.name: required");
  EXPECT_EQ(error_of(json::parse(R"({"metadata":{"name":"x"},"spec":{"properties":{}}})")),
            "spec.properties: expected a list");
}

TEST(MapperDevice, ModelsAreChecked) {
  EXPECT_TRUE(validate_model(model_json()));
  auto bad = json::parse(R"({"spec":{"properties":[{"name":"a","type":"DECIMAL"}]}})");
  EXPECT_EQ(validate_model(bad).message(),
            "spec.properties[0].type: 'decimal' is not one of INT, FLOAT, DOUBLE, STRING, BOOLEAN, "
            "BYTES, STREAM");
  bad = json::parse(R"({"spec":{"properties":[{"name":"a","type":"INT","accessMode":"rw"}]}})");
  EXPECT_EQ(validate_model(bad).message(),
            "spec.properties[0].accessMode: 'rw' is not ReadOnly or ReadWrite");
  // v1alpha2's type blocks.
  EXPECT_TRUE(validate_model(json::parse(
      R"({"spec":{"properties":[{"name":"a","type":{"int":{"accessMode":"ReadOnly"}}}]}})")));
}

TEST(MapperDevice, AV1alpha2DeviceIsReadToo) {
  auto d = json::parse(R"({"metadata":{"name":"old"},"spec":{"deviceModelRef":{"name":"m"},
    "protocol":{"modbus":{"slaveID":1}},
    "propertyVisitors":[{"propertyName":"t","collectCycle":500000000,"modbus":{"register":"CoilRegister","offset":2}}]}})");
  Device out;
  ASSERT_TRUE(parse_device(d, nullptr, out));
  EXPECT_EQ(out.protocol, "modbus");
  EXPECT_EQ(out.protocol_config.at("slaveID").as_int64(), 1);
  ASSERT_EQ(out.properties.size(), 1u);
  EXPECT_EQ(out.properties[0].visitor.at("register").as_string(), "CoilRegister");
  EXPECT_EQ(out.properties[0].collect_cycle, 500ms);
}

TEST(MapperValues, FormatAndParse) {
  EXPECT_EQ(format_number(21.5, "double"), "21.5");
  EXPECT_EQ(format_number(21.0, "float"), "21");
  EXPECT_EQ(format_number(-0.0000001, "float"), "0");
  EXPECT_EQ(format_number(21.6, "int"), "22");
  EXPECT_EQ(format_number(1, "boolean"), "true");
  EXPECT_EQ(format_number(1234567.25, "double"), "1234567.25");
  double v = 0;
  EXPECT_TRUE(parse_number("-3.5", "float", v));
  EXPECT_EQ(v, -3.5);
  EXPECT_EQ(parse_number("3.5", "int", v).message(), "'3.5' is not an integer");
  EXPECT_EQ(parse_number("hot", "double", v).message(), "'hot' is not a number");
  EXPECT_EQ(parse_number("yes", "boolean", v).message(), "'yes' is not a boolean (true or false)");
  json::object cfg{{"port", 70000}, {"name", json::array{}}};
  Fields f(cfg, "spec.protocol.configData");
  f.integer("port", 502, 1, 65535);
  EXPECT_EQ(f.status().message(), "spec.protocol.configData: port: 70000 is out of range 1-65535");
  Fields g(cfg, "x");
  g.str("ip", "", true);
  EXPECT_EQ(g.status().message(), "x: ip: required");
  Fields h(cfg, "x");
  h.one_of("kind", "sine", {"sine", "random"});
  EXPECT_TRUE(h.ok());
}

TEST(DmiConvert, DevicesSurviveTheTripThroughProtobuf) {
  auto m = model_json();
  auto proto = dmi::device_to_proto(device_json());
  EXPECT_EQ(proto.name(), "d1");
  EXPECT_EQ(proto.namespace_(), "default");
  EXPECT_EQ(proto.spec().devicemodelreference(), "thermo");
  EXPECT_EQ(proto.spec().protocol().protocolname(), "fake");
  auto& data = proto.spec().protocol().configdata().data();
  // The wrappers KubeEdge's mapper framework decodes.
  EXPECT_EQ(data.at("ip").type_url(), "type.googleapis.com/google.protobuf.StringValue");
  EXPECT_EQ(data.at("port").type_url(), "type.googleapis.com/google.protobuf.Int32Value");
  EXPECT_EQ(data.at("ratio").type_url(), "type.googleapis.com/google.protobuf.FloatValue");
  EXPECT_EQ(data.at("on").type_url(), "type.googleapis.com/google.protobuf.BoolValue");
  EXPECT_EQ(proto.spec().properties(0).collectcycle(), 20'000'000);
  EXPECT_EQ(proto.spec().properties(0).pushmethod().mqtt().topic(), "t/temp");
  EXPECT_EQ(proto.spec().properties(1).desired().value(), "5");
  // Back to an object: the same device for a mapper.
  json::value back = dmi::device_from_proto(proto);
  EXPECT_DOUBLE_EQ(back.at("spec").at("protocol").at("configData").at("ratio").as_double(), 0.1);
  Device a, b;
  ASSERT_TRUE(parse_device(device_json(), &m, a));
  ASSERT_TRUE(parse_device(back, &m, b));
  EXPECT_EQ(json::value(a.protocol_config), json::value(b.protocol_config));
  ASSERT_EQ(a.properties.size(), b.properties.size());
  for (size_t i = 0; i < a.properties.size(); ++i) {
    EXPECT_EQ(a.properties[i].name, b.properties[i].name);
    EXPECT_EQ(a.properties[i].collect_cycle, b.properties[i].collect_cycle);
    EXPECT_EQ(a.properties[i].report_cycle, b.properties[i].report_cycle);
    EXPECT_EQ(a.properties[i].report_to_cloud, b.properties[i].report_to_cloud);
    EXPECT_EQ(a.properties[i].desired, b.properties[i].desired);
    EXPECT_EQ(json::value(a.properties[i].visitor), json::value(b.properties[i].visitor));
    EXPECT_EQ(a.properties[i].mqtt.has_value(), b.properties[i].mqtt.has_value());
  }
  // Models, including v1alpha2 type blocks.
  auto pm = dmi::model_to_proto(json::parse(
      R"({"metadata":{"name":"m"},"spec":{"properties":[{"name":"a","type":{"int":{"accessMode":"ReadWrite","maximum":9}}}]}})"));
  EXPECT_EQ(pm.spec().properties(0).type(), "INT");
  EXPECT_EQ(pm.spec().properties(0).accessmode(), "ReadWrite");
  EXPECT_EQ(pm.spec().properties(0).maximum(), "9");
  EXPECT_EQ(dmi::model_from_proto(pm).at("spec").at("properties").at(0).at("type"), "INT");
}

TEST(ModbusCodec, RegistersToValuesAndBack) {
  using modbus::Format;
  using modbus::Visitor;
  double v = 0;
  Visitor one;
  one.scale = 0.1;
  ASSERT_TRUE(modbus::decode(one, {215}, v));
  EXPECT_DOUBLE_EQ(v, 21.5);
  std::vector<uint16_t> regs;
  ASSERT_TRUE(modbus::encode(one, 21.5, regs));
  EXPECT_EQ(regs, std::vector<uint16_t>{215});
  Visitor sgn;
  sgn.format = Format::kInt;
  ASSERT_TRUE(modbus::decode(sgn, {0xFFFE}, v));
  EXPECT_EQ(v, -2);
  ASSERT_TRUE(modbus::encode(sgn, -2, regs));
  EXPECT_EQ(regs, std::vector<uint16_t>{0xFFFE});
  Visitor two;
  two.limit = 2;
  ASSERT_TRUE(modbus::decode(two, {0x0001, 0x0002}, v));
  EXPECT_EQ(v, 65538);
  two.swap_registers = true;
  ASSERT_TRUE(modbus::decode(two, {0x0002, 0x0001}, v));
  EXPECT_EQ(v, 65538);
  two.swap_bytes = true;
  ASSERT_TRUE(modbus::encode(two, 65538, regs));
  EXPECT_EQ(regs, (std::vector<uint16_t>{0x0200, 0x0100}));
  ASSERT_TRUE(modbus::decode(two, regs, v));
  EXPECT_EQ(v, 65538);
  Visitor f;
  f.limit = 2;
  f.format = Format::kFloat32;
  ASSERT_TRUE(modbus::encode(f, 21.25, regs));
  EXPECT_EQ(regs, (std::vector<uint16_t>{0x41AA, 0x0000}));
  ASSERT_TRUE(modbus::decode(f, regs, v));
  EXPECT_EQ(v, 21.25);
  Visitor small;
  EXPECT_EQ(modbus::encode(small, 70000, regs).code(), Code::kInvalidArgument);
  EXPECT_EQ(modbus::encode(small, -1, regs).code(), Code::kInvalidArgument);
}

// ---- the engine with a fake driver ----

struct Fake {
  std::mutex mu;
  int connects = 0, fail_connects = 0, fail_reads = 0;
  double value = 20;
  std::vector<std::string> writes;
};

class FakeDriver final : public Driver {
 public:
  explicit FakeDriver(std::shared_ptr<Fake> f) : f_(std::move(f)) {}
  Status connect() override {
    std::lock_guard lk(f_->mu);
    ++f_->connects;
    if (f_->fail_connects > 0) {
      --f_->fail_connects;
      return {Code::kUnavailable, "no route to the fake"};
    }
    return {};
  }
  Status read(const Property& p, std::string& out) override {
    std::lock_guard lk(f_->mu);
    if (f_->fail_reads > 0) {
      --f_->fail_reads;
      return {Code::kUnavailable, "read timed out"};
    }
    out = p.name == "setpoint" && !f_->writes.empty() ? f_->writes.back()
                                                      : format_number(f_->value, p.type);
    return {};
  }
  Status write(const Property&, const std::string& v) override {
    std::lock_guard lk(f_->mu);
    f_->writes.push_back(v);
    return {};
  }

 private:
  std::shared_ptr<Fake> f_;
};

struct Recorder : Uplink {
  std::mutex mu;
  std::vector<std::pair<std::string, std::vector<Reading>>> reports;
  std::vector<std::string> states;
  Status report_status(const Device& d, const std::vector<Reading>& twins) override {
    std::lock_guard lk(mu);
    reports.emplace_back(d.id(), twins);
    return {};
  }
  Status report_state(const Device&, const std::string& s) override {
    std::lock_guard lk(mu);
    states.push_back(s);
    return {};
  }
  std::string last_state() {
    std::lock_guard lk(mu);
    return states.empty() ? "" : states.back();
  }
  std::string last_reported(const std::string& prop) {
    std::lock_guard lk(mu);
    for (auto it = reports.rbegin(); it != reports.rend(); ++it)
      for (auto& r : it->second)
        if (r.property == prop) return r.value;
    return {};
  }
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = std::make_shared<spdlog::logger>("mapper-test",
                                            std::make_shared<spdlog::sinks::null_sink_mt>());
    info_.name = "fake-mapper";
    info_.protocol = "fake";
    info_.factory = [f = fake_](const Device& d, std::unique_ptr<Driver>& out) {
      Fields pf(d.protocol_config, "spec.protocol.configData");
      pf.str("ip", "", true);
      if (!pf.ok()) return pf.status();
      out = std::make_unique<FakeDriver>(f);
      return Status{};
    };
    EngineOptions o;
    o.initial_backoff = 10ms;
    o.max_backoff = 40ms;
    o.health_cycle = 50ms;
    engine_ = std::make_unique<Engine>(info_, up_, log_, metrics_, o);
    ASSERT_TRUE(engine_->upsert_model(model_json()));
  }
  int connects() {
    std::lock_guard lk(fake_->mu);
    return fake_->connects;
  }
  std::vector<std::string> writes() {
    std::lock_guard lk(fake_->mu);
    return fake_->writes;
  }

  std::shared_ptr<Fake> fake_ = std::make_shared<Fake>();
  Recorder up_;
  MetricsRegistry metrics_;
  MapperInfo info_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, CollectsReportsWritesAndRecovers) {
  fake_->fail_connects = 2;
  ASSERT_TRUE(engine_->upsert_device(device_json("5")));
  // Unreachable at first: unhealthy, then online after the back-off.
  ASSERT_TRUE(Harness::eventually([&] { return up_.last_state() == "online"; }, 5s));
  {
    std::lock_guard lk(up_.mu);
    EXPECT_EQ(up_.states.front(), "unhealthy");
  }
  EXPECT_EQ(connects(), 3);
  // The desired value is written once connected, and reports carry the
  // reportToCloud property only.
  ASSERT_TRUE(Harness::eventually([&] { return writes() == std::vector<std::string>{"5"}; }, 5s));
  ASSERT_TRUE(Harness::eventually([&] { return up_.last_reported("temperature") == "20"; }, 5s));
  EXPECT_EQ(up_.last_reported("setpoint"), "");
  {
    std::lock_guard lk(fake_->mu);
    fake_->value = 21.5;
  }
  ASSERT_TRUE(Harness::eventually([&] { return up_.last_reported("temperature") == "21.5"; }, 5s));
  // A new desired value alone is written without reconnecting.
  ASSERT_TRUE(engine_->upsert_device(device_json("7")));
  ASSERT_TRUE(Harness::eventually([&] { return writes().size() == 2 && writes()[1] == "7"; }, 5s));
  EXPECT_EQ(connects(), 3);
  // A changed access setting starts the device over (and writes again).
  ASSERT_TRUE(engine_->upsert_device(device_json("7", 30'000'000)));
  ASSERT_TRUE(Harness::eventually([&] { return connects() == 4; }, 5s));
  ASSERT_TRUE(Harness::eventually([&] { return writes().size() == 3; }, 5s));
  // Reads failing in a row: unhealthy, reconnect, online again.
  {
    std::lock_guard lk(fake_->mu);
    fake_->fail_reads = 6;
  }
  ASSERT_TRUE(Harness::eventually([&] { return connects() >= 5; }, 5s));
  ASSERT_TRUE(Harness::eventually([&] { return up_.last_state() == "online"; }, 5s));
  {
    std::lock_guard lk(up_.mu);
    EXPECT_NE(std::find(up_.states.begin() + 2, up_.states.end(), "unhealthy"), up_.states.end());
  }
  EXPECT_GT(
      metrics_.counter("kedge_mapper_read_errors_total", "", {{"mapper", "fake-mapper"}}).value(),
      0u);
  // Removed: its thread ends, nothing more is read.
  engine_->remove_device("default", "d1");
  EXPECT_TRUE(engine_->devices().empty());
}

TEST_F(EngineTest, ABadDeviceIsRefusedAndReportedUnhealthy) {
  auto d = device_json();
  d.at("spec").at("protocol").at("configData").as_object().erase("ip");
  Status s = engine_->upsert_device(d);
  EXPECT_EQ(s.message(), "spec.protocol.configData: ip: required");
  ASSERT_TRUE(Harness::eventually([&] { return up_.last_state() == "unhealthy"; }, 5s));
  auto snap = engine_->snapshot("default", "d1");
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->at("reason"), "spec.protocol.configData: ip: required");
  // Another protocol is not this mapper's.
  auto other = device_json();
  other.at("spec").at("protocol").at("protocolName") = "zigbee";
  other.at("metadata").at("name") = "z";
  EXPECT_EQ(engine_->upsert_device(other).message(),
            "device default/z uses protocol 'zigbee', this mapper 'fake'");
  EXPECT_EQ(connects(), 0);
}

std::pair<int, std::string> http_get(
    uint16_t port, const std::string& target,
    boost::beast::http::verb verb = boost::beast::http::verb::get) {
  namespace beast = boost::beast;
  boost::asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  beast::http::request<beast::http::string_body> req{verb, target, 11};
  req.set(beast::http::field::host, "127.0.0.1");
  beast::http::write(s, req);
  beast::flat_buffer buf;
  beast::http::response<beast::http::string_body> res;
  beast::http::read(s, buf, res);
  return {static_cast<int>(res.result_int()), res.body()};
}

TEST_F(EngineTest, DeviceAsAService) {
  ASSERT_TRUE(engine_->upsert_device(device_json()));
  ASSERT_TRUE(Harness::eventually([&] { return up_.last_reported("temperature") == "20"; }, 5s));
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  {
    DeviceService svc(*engine_, io.get_executor(), &metrics_);
    ASSERT_TRUE(svc.listen("127.0.0.1:0"));
    auto [c1, b1] = http_get(svc.port(), "/api/v1/device/default/d1");
    EXPECT_EQ(c1, 200);
    auto snap = json::parse(b1);
    EXPECT_EQ(snap.at("state"), "online");
    EXPECT_EQ(snap.at("properties").at(0).at("value"), "20");
    {
      std::lock_guard lk(fake_->mu);
      fake_->value = 30;
    }
    auto [c2, b2] = http_get(svc.port(), "/api/v1/device/default/d1/temperature");
    EXPECT_EQ(c2, 200);
    EXPECT_EQ(json::parse(b2).at("value"), "30");  // read now, not the cached 20
    EXPECT_EQ(http_get(svc.port(), "/api/v1/device/default/nope").first, 404);
    EXPECT_EQ(http_get(svc.port(), "/api/v1/device/default/d1/humidity").first, 404);
    EXPECT_EQ(
        http_get(svc.port(), "/api/v1/device/default/d1", boost::beast::http::verb::post).first,
        405);
    auto [c3, b3] = http_get(svc.port(), "/api/v1/ping");
    EXPECT_EQ(json::parse(b3).at("protocol"), "fake");
    auto [c4, b4] = http_get(svc.port(), "/metrics");
    EXPECT_NE(b4.find("kedge_mapper_reads_total{mapper=\"fake-mapper\"}"), std::string::npos);
    svc.stop();
  }
  guard.reset();
  io.stop();
  t.join();
}

TEST_F(EngineTest, ReadingsArePostedOverHttp) {
  // A plain HTTP receiver on loopback.
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::mutex mu;
  std::vector<std::string> bodies;
  auto server = net::HttpServer::create(io.get_executor(), nullptr, {});
  ASSERT_TRUE(server->listen("127.0.0.1", 0, [&](net::ExchangePtr x) {
    {
      std::lock_guard lk(mu);
      bodies.push_back(x->request().target + " " + x->request().body);
    }
    x->reply({200, "text/plain", "ok"});
  }));
  std::thread t([&] { io.run(); });
  auto d = device_json();
  d.at("spec").at("properties").at(0).as_object()["pushMethod"] = json::parse(
      R"({"http":{"hostName":"http://127.0.0.1","port":)" + std::to_string(server->port()) +
      R"(,"requestPath":"/readings","timeout":2000}})");
  ASSERT_TRUE(engine_->upsert_device(d));
  ASSERT_TRUE(Harness::eventually(
      [&] {
        std::lock_guard lk(mu);
        return !bodies.empty();
      },
      5s));
  {
    std::lock_guard lk(mu);
    EXPECT_EQ(bodies[0].substr(0, 10), "/readings ");
    auto v = json::parse(bodies[0].substr(10));
    EXPECT_EQ(v.at("deviceName"), "d1");
    EXPECT_EQ(v.at("propertyName"), "temperature");
    EXPECT_EQ(v.at("value"), "20");
    EXPECT_EQ(v.at("type"), "float");
  }
  engine_->stop();
  server->stop();
  guard.reset();
  io.stop();
  t.join();
}

}  // namespace
}  // namespace kedge::mapper
