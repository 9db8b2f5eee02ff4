// The one interface a mapper author implements.
//
// The SDK creates one Driver per device (through the mapper's factory, which
// also validates the device's protocol and visitor settings) and calls it
// one call at a time, from one of the engine's few threads (not always the
// same one): a driver needs no locks, and a slow or unreachable device holds
// one thread, not the others. Calls may block (libmodbus, serial I/O); keep
// them bounded with the protocol's own timeouts.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "kedge/mapper/device.h"
#include "kedge/status.h"

namespace kedge::mapper {

class Driver {
 public:
  virtual ~Driver() = default;
  // Opens the device. An error marks it "unhealthy"; the SDK retries with
  // back-off (0.5 s doubling to 30 s).
  virtual Status connect() = 0;
  // Reads one property as text in the property's type (format_number helps).
  virtual Status read(const Property& p, std::string& value) = 0;
  // Writes a desired value (already checked against the property's type).
  virtual Status write(const Property& p, const std::string& value) = 0;
  // Called every health cycle and after failed reads; an error marks the
  // device "unhealthy" and makes the SDK reconnect.
  virtual Status health() { return {}; }
  virtual void disconnect() {}
};

// Creates the driver for a device, or refuses it with an error that names
// the bad setting (the device is then reported "unhealthy" with that reason).
using DriverFactory = std::function<Status(const Device&, std::unique_ptr<Driver>&)>;

// Who a mapper is.
struct MapperInfo {
  std::string name;      // e.g. "modbus-mapper"
  std::string protocol;  // the devices it takes: spec.protocol.protocolName
  std::string version = "0.1.0";
  DriverFactory factory;
};

}  // namespace kedge::mapper
