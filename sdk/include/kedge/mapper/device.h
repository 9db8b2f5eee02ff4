// The Mapper SDK's view of a device: what a driver needs to reach it and what
// the SDK needs to collect, report, push and write its properties. Built from
// the cloud's Device and DeviceModel objects (devices.kubeedge.io/v1beta1),
// whether they arrived over DMI or as messages inside the agent.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kedge/export.h"
#include "kedge/status.h"

namespace kedge::mapper {

// pushMethod.mqtt: each reading is published to a broker.
struct PushMqtt {
  std::string host = "127.0.0.1";  // from address: tcp://host:port (or mqtt://)
  int port = 1883;
  std::string topic;
  int qos = 0;
  bool retained = false;
};

// pushMethod.http: each reading is POSTed as JSON.
struct PushHttp {
  std::string host;
  int port = 80;
  std::string path = "/";
  std::chrono::milliseconds timeout{5000};
};

struct Property {
  std::string name;
  // From the model: int, float, double, string, boolean or bytes (lower case).
  std::string type = "string";
  bool writable = false;  // accessMode ReadWrite
  std::string unit, minimum, maximum;
  // The property's visitor: how to reach it on the device (protocol-specific).
  boost::json::object visitor;
  std::chrono::milliseconds collect_cycle{1000};
  std::chrono::milliseconds report_cycle{1000};
  bool report_to_cloud = false;
  std::optional<std::string> desired;  // desired value from the cloud
  std::optional<PushMqtt> mqtt;
  std::optional<PushHttp> http;
};

struct Device {
  std::string ns = "default";
  std::string name;
  std::string model;
  std::string protocol;                 // spec.protocol.protocolName
  boost::json::object protocol_config;  // spec.protocol.configData
  std::vector<Property> properties;

  std::string id() const { return ns + "/" + name; }
  KEDGE_EXPORT const Property* property(std::string_view name) const;
};

// Builds a Device from a Device object and its DeviceModel (may be null: no
// types or access modes then). Errors name the field:
//   "spec.properties[1].pushMethod.mqtt.topic: required".
// Cycles are nanoseconds as in KubeEdge (0 or absent: 1 s).
KEDGE_EXPORT Status parse_device(const boost::json::value& device, const boost::json::value* model,
                                 Device& out);

// Checks a DeviceModel object: property names present and unique, types
// (INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES, STREAM, or a v1alpha2 type
// block) and access modes (ReadOnly, ReadWrite) known. Errors name the field.
KEDGE_EXPORT Status validate_model(const boost::json::value& model);

// The protocol a Device object uses: spec.protocol.protocolName, or for
// v1alpha2-style objects the name of the protocol block (modbus, opcua,
// bluetooth, customizedProtocol.protocolName).
KEDGE_EXPORT std::string protocol_of(const boost::json::value& device);

// Typed reads of a free-form config object (protocol or visitor configData)
// for drivers. The first problem is kept, naming the field:
//   Fields f(p.visitor, "visitor of 'temperature'");
//   auto reg = f.str("register", "HoldingRegister");
//   auto offset = f.integer("offset", 0, 0, 65535);
//   if (!f.ok()) return f.status();
class KEDGE_EXPORT Fields {
 public:
  Fields(const boost::json::object& obj, std::string where) : obj_(obj), where_(std::move(where)) {}
  std::string str(std::string_view key, std::string_view fallback, bool required = false);
  int64_t integer(std::string_view key, int64_t fallback, int64_t min, int64_t max,
                  bool required = false);
  double number(std::string_view key, double fallback, bool required = false);
  bool boolean(std::string_view key, bool fallback);
  // Fails unless the string value is one of `allowed`.
  std::string one_of(std::string_view key, std::string_view fallback,
                     std::initializer_list<std::string_view> allowed);
  bool ok() const { return status_.is_ok(); }
  const Status& status() const { return status_; }

 private:
  const boost::json::value* get(std::string_view key, bool required);
  void fail(std::string_view key, const std::string& what);
  const boost::json::object& obj_;
  std::string where_;
  Status status_;
};

// A reading as text for a property's type: integers without a fraction,
// float/double with up to 6 significant decimals (no trailing zeros),
// booleans as true/false.
KEDGE_EXPORT std::string format_number(double v, std::string_view type);
// Parses a value written to a property of `type` ("int", "float", "double",
// "boolean"); kInvalidArgument names the value and type.
KEDGE_EXPORT Status parse_number(std::string_view text, std::string_view type, double& out);

}  // namespace kedge::mapper
