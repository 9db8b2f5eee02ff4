// Device and DeviceModel between devices.kubeedge.io/v1beta1 and v1alpha2:
// the shapes KubeEdge 1.12's Go types decode (a typed field of the wrong
// JSON type fails the whole object there), and the way back.
#include "device_versions.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace json = boost::json;
using namespace kedge::devices;

namespace {

json::value parse(const char* s) { return json::parse(s); }

const char* kModbusDevice = R"({
  "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
  "metadata": {"name": "thermo", "namespace": "default", "resourceVersion": "7"},
  "spec": {
    "deviceModelRef": {"name": "thermo-model"},
    "nodeName": "edge-1",
    "protocol": {"protocolName": "modbus",
                 "configData": {"ip": "127.0.0.1", "port": "1502", "slaveID": 3,
                                "timeout_ms": 500, "baudRate": 9600}},
    "properties": [
      {"name": "setpoint", "desired": {"value": "21", "metadata": {"type": "int"}},
       "collectCycle": 1000000000, "reportCycle": 1000000000, "reportToCloud": true,
       "visitors": {"protocolName": "modbus",
                    "configData": {"register": "HoldingRegister", "offset": "1",
                                   "scale": 0.5, "isSwap": "yes", "extra": [1]}}},
      {"name": "temperature",
       "visitors": {"protocolName": "modbus", "configData": {"register": "InputRegister", "offset": 0}}}
    ]
  },
  "status": {"twins": [{"propertyName": "temperature", "reported": {"value": "19.5"}}]}
})";

}  // namespace

TEST(DeviceVersions, AModbusDeviceTakesKubeEdge112sShape) {
  json::value v = device_to_v1alpha2(parse(kModbusDevice));
  EXPECT_TRUE(is_v1alpha2(v));
  EXPECT_EQ(v.at("kind"), "Device");
  EXPECT_EQ(v.at("metadata").at("resourceVersion"), "7");
  auto& spec = v.at("spec");
  EXPECT_EQ(spec.at("deviceModelRef").at("name"), "thermo-model");
  EXPECT_EQ(spec.at("nodeSelector")
                .at("nodeSelectorTerms")
                .at(0)
                .at("matchExpressions")
                .at(0)
                .at("values"),
            json::array{"edge-1"});
  // the protocol block 1.12 derives the protocol name from
  auto& proto = spec.at("protocol").as_object();
  EXPECT_EQ(proto.at("modbus").at("slaveID"), 3);
  EXPECT_EQ(proto.at("common").at("tcp").at("ip"), "127.0.0.1");
  EXPECT_EQ(proto.at("common").at("tcp").at("port"), 1502);  // "1502" -> an int64
  EXPECT_EQ(proto.at("common").at("com").at("baudRate"), 9600);
  EXPECT_EQ(proto.at("common").at("customizedValues").at("timeout_ms"), 500);
  EXPECT_FALSE(proto.contains("customizedProtocol"));
  // visitors: typed fields coerced or dropped, others kept
  auto& pv = spec.at("propertyVisitors").as_array();
  ASSERT_EQ(pv.size(), 2u);
  EXPECT_EQ(pv[0].at("propertyName"), "setpoint");
  EXPECT_EQ(pv[0].at("collectCycle"), 1000000000);
  auto& mv = pv[0].at("modbus").as_object();
  EXPECT_EQ(mv.at("register"), "HoldingRegister");
  EXPECT_EQ(mv.at("offset"), 1);
  EXPECT_EQ(mv.at("scale"), 0.5);
  EXPECT_FALSE(mv.contains("isSwap"));  // "yes" is no bool
  EXPECT_EQ(mv.at("extra"), json::array{1});
  // desired and reported values in status.twins
  auto& twins = v.at("status").at("twins").as_array();
  ASSERT_EQ(twins.size(), 2u);
  EXPECT_EQ(twins[0].at("propertyName"), "setpoint");
  EXPECT_EQ(twins[0].at("desired").at("value"), "21");
  EXPECT_EQ(twins[1].at("propertyName"), "temperature");
  EXPECT_EQ(twins[1].at("reported").at("value"), "19.5");
}

TEST(DeviceVersions, ADeviceComesBackFromV1alpha2WithWhatTheEdgeActsOn) {
  json::value back = device_from_v1alpha2(device_to_v1alpha2(parse(kModbusDevice)));
  EXPECT_EQ(back.at("apiVersion"), kV1beta1);
  auto& spec = back.at("spec");
  EXPECT_EQ(spec.at("nodeName"), "edge-1");
  EXPECT_EQ(spec.at("protocol").at("protocolName"), "modbus");
  auto& cd = spec.at("protocol").at("configData");
  EXPECT_EQ(cd.at("ip"), "127.0.0.1");
  EXPECT_EQ(cd.at("port"), 1502);
  EXPECT_EQ(cd.at("slaveID"), 3);
  EXPECT_EQ(cd.at("timeout_ms"), 500);
  auto& props = spec.at("properties").as_array();
  ASSERT_EQ(props.size(), 2u);
  EXPECT_EQ(props[0].at("name"), "setpoint");
  EXPECT_EQ(props[0].at("desired").at("value"), "21");
  EXPECT_EQ(props[0].at("reportToCloud"), true);
  EXPECT_EQ(props[0].at("visitors").at("protocolName"), "modbus");
  EXPECT_EQ(props[0].at("visitors").at("configData").at("offset"), 1);
  EXPECT_EQ(back.at("status").at("twins").at(0).at("reported").at("value"), "19.5");
}

TEST(DeviceVersions, OtherProtocolsAreCustomizedProtocols) {
  json::value v = device_to_v1alpha2(parse(R"({
    "spec": {"protocol": {"protocolName": "virtual", "configData": {"seed": 4}},
             "properties": [{"name": "x", "visitors": {"configData": {"wave": "sine"}}}]}})"));
  auto& cp = v.at("spec").at("protocol").at("customizedProtocol");
  EXPECT_EQ(cp.at("protocolName"), "virtual");
  EXPECT_EQ(cp.at("configData").at("seed"), 4);
  auto& vis = v.at("spec").at("propertyVisitors").at(0).at("customizedProtocol");
  EXPECT_EQ(vis.at("protocolName"), "virtual");  // the device's protocol
  EXPECT_EQ(vis.at("configData").at("wave"), "sine");

  json::value back = device_from_v1alpha2(v);
  EXPECT_EQ(back.at("spec").at("protocol").at("protocolName"), "virtual");
  EXPECT_EQ(back.at("spec").at("protocol").at("configData").at("seed"), 4);
  EXPECT_EQ(back.at("spec").at("properties").at(0).at("visitors").at("configData").at("wave"),
            "sine");
}

TEST(DeviceVersions, AModelsPropertyTypesBecome112sTypeBlocks) {
  json::value v = model_to_v1alpha2(parse(R"({
    "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceModel",
    "metadata": {"name": "m", "namespace": "default"},
    "spec": {"protocol": "modbus", "properties": [
      {"name": "t", "type": "FLOAT", "accessMode": "ReadOnly", "minimum": "-40", "maximum": "x",
       "unit": "C", "description": "temp"},
      {"name": "s", "type": "INT", "accessMode": "ReadWrite", "minimum": "5"},
      {"name": "raw", "type": "STREAM"}]}})"));
  EXPECT_EQ(v.at("apiVersion"), kV1alpha2);
  EXPECT_EQ(v.at("spec").at("protocol"), "modbus");
  auto& props = v.at("spec").at("properties").as_array();
  ASSERT_EQ(props.size(), 3u);
  auto& t = props[0].at("type").at("float").as_object();
  EXPECT_EQ(t.at("accessMode"), "ReadOnly");
  EXPECT_EQ(t.at("minimum"), -40.0);
  EXPECT_FALSE(t.contains("maximum"));  // "x" is no number
  EXPECT_EQ(t.at("unit"), "C");
  EXPECT_EQ(props[0].at("description"), "temp");
  EXPECT_EQ(props[1].at("type").at("int").at("minimum"), 5);
  EXPECT_TRUE(props[2].at("type").as_object().contains("bytes"));

  json::value back = model_from_v1alpha2(v);
  auto& bp = back.at("spec").at("properties").as_array();
  EXPECT_EQ(bp[0].at("type"), "FLOAT");
  EXPECT_EQ(bp[0].at("accessMode"), "ReadOnly");
  EXPECT_EQ(bp[1].at("type"), "INT");
  EXPECT_EQ(bp[1].at("minimum"), "5");
}

TEST(DeviceVersions, WhatIsNotAnObjectIsLeftAsItIs) {
  EXPECT_EQ(device_to_v1alpha2(json::value("x")), json::value("x"));
  EXPECT_EQ(model_from_v1alpha2(json::value(nullptr)), json::value(nullptr));
  EXPECT_FALSE(is_v1alpha2(json::value(3)));
  // an empty object still gets a well-formed (empty) spec
  json::value v = device_to_v1alpha2(json::object{});
  EXPECT_TRUE(v.at("spec").at("propertyVisitors").as_array().empty());
}
