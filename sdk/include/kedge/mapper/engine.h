// The Mapper SDK's engine: it runs a mapper's devices. Per device, as a job
// of a small pool of threads (EngineOptions::max_threads; one device's driver
// calls never overlap): connect (with back-off), collect each property every
// collectCycle, push each reading per pushMethod (MQTT, HTTP), report the
// properties with reportToCloud every reportCycle to the edge, write desired
// values, watch health and report the device's state on change.
//
// The engine does not know how it is hosted: reports leave through an Uplink
// (DMI over gRPC for a standalone mapper, messages for a mapper plugin), and
// devices arrive as Device/DeviceModel objects (JSON).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kedge/export.h"
#include "kedge/mapper/device.h"
#include "kedge/mapper/driver.h"
#include "kedge/metrics.h"

namespace spdlog {
class logger;
}

namespace kedge::mapper {

class DevicePool;

struct Reading {
  std::string property;
  std::string value;
  std::string type;
  int64_t timestamp_ms = 0;
  std::string observed_desired;  // the desired value last written, if any
};

// Where reports go. Called from the engine's threads, concurrently.
class Uplink {
 public:
  virtual ~Uplink() = default;
  virtual Status report_status(const Device& d, const std::vector<Reading>& twins) = 0;
  virtual Status report_state(const Device& d, const std::string& state) = 0;
};

struct EngineOptions {
  std::chrono::milliseconds health_cycle{5000};
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  // Consecutive failed reads of a device before it is marked unhealthy and
  // reconnected.
  int max_read_failures = 3;
  // Threads that run the devices' driver calls (started as needed). A
  // blocking call holds one of them; the others go on.
  size_t max_threads = 4;
};

class KEDGE_EXPORT Engine {
 public:
  Engine(MapperInfo info, Uplink& uplink, std::shared_ptr<spdlog::logger> log,
         MetricsRegistry& metrics, EngineOptions opts = {});
  ~Engine();  // stops every device
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const MapperInfo& info() const { return info_; }

  // Models and devices as the edge sends them (devices.kubeedge.io objects).
  // A device of another protocol, or one that does not parse, is refused
  // with an error naming the problem. Updating a device restarts it
  // only if how to reach it changed; a new desired value alone is written.
  Status upsert_model(const boost::json::value& model);
  void remove_model(const std::string& ns, const std::string& name);
  Status upsert_device(const boost::json::value& device);
  void remove_device(const std::string& ns, const std::string& name);
  // Replaces everything (a registration's answer).
  void reset(const std::vector<boost::json::value>& models,
             const std::vector<boost::json::value>& devices);

  std::vector<std::string> devices() const;  // "ns/name"
  // The device object as last given, or null.
  boost::json::value device_object(const std::string& ns, const std::string& name) const;

  // Device-as-a-Service. The last readings and state of a device, or nullopt.
  std::optional<boost::json::object> snapshot(const std::string& ns, const std::string& name) const;
  // Reads a property now, in the device's next step; `done` is called there (or
  // at once with kNotFound / kUnavailable).
  void read_now(const std::string& ns, const std::string& name, const std::string& property,
                std::function<void(Status, Reading)> done);

  void stop();

 private:
  class Worker;
  class Publisher;
  struct Entry {
    boost::json::value object;
    uint64_t access_key = 0;  // hash of the object without desired values: what needs a restart
    std::unique_ptr<Worker> worker;
  };
  Status start_device(const std::string& key, Entry& e, const boost::json::value* model);
  const boost::json::value* model_for(const boost::json::value& device) const;

  MapperInfo info_;
  Uplink& uplink_;
  std::shared_ptr<spdlog::logger> log_;
  EngineOptions opts_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<DevicePool> pool_;  // outlives every Worker (devices_ is emptied first)
  struct Counters {
    Counter *reads, *read_errors, *writes, *write_errors, *reports, *report_errors, *pushes,
        *push_errors;
    Gauge* devices;
  } c_;
  mutable std::mutex mu_;  // models_ and devices_
  std::map<std::string, boost::json::value> models_;
  std::map<std::string, Entry> devices_;
};

}  // namespace kedge::mapper
