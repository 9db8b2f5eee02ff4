// Device-as-a-Service: a mapper's HTTP API for local applications, so device
// data can be pulled as a service besides being pushed.
//
//   GET /api/v1/ping                              who the mapper is
//   GET /api/v1/devices                           every device: state and last readings
//   GET /api/v1/device/{namespace}/{name}         one device: state and last readings
//   GET /api/v1/device/{namespace}/{name}/{prop}  reads the property from the device now
//   GET /metrics                                  Prometheus text (if given a registry)
//
// Answers are JSON; errors are {"error": "..."} with 404 (unknown device or
// property), 503 (the device is not connected), 504 (the read timed out) or
// 405 (not GET).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <string>

#include "kedge/export.h"
#include "kedge/mapper/engine.h"
#include "kedge/status.h"

namespace kedge::mapper {

class KEDGE_EXPORT DeviceService {
 public:
  // Handlers run on `ex`. `metrics` may be null (no /metrics).
  DeviceService(Engine& engine, boost::asio::any_io_executor ex, MetricsRegistry* metrics);
  ~DeviceService();
  // "host:port" (port 0 picks one).
  Status listen(const std::string& address);
  uint16_t port() const;
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace kedge::mapper
