// Context: what the kernel gives a plugin. Every call is safe from any thread.
// A plugin talks to other plugins only through messages sent here.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "kedge/message.h"
#include "kedge/metrics.h"
#include "kedge/status.h"

namespace spdlog {
class logger;
}

namespace kedge {

using namespace std::chrono_literals;

// Called with the response, or with an error status (kTimeout, kNotFound,
// kFull, ...) and a null message. Runs on the requesting plugin's executor,
// so it is serialized with that plugin's on_message.
using ResponseHandler = std::function<void(Status, MessagePtr)>;

class Context {
 public:
  virtual ~Context() = default;

  // This plugin's module name and group, as messages address it.
  virtual const std::string& name() const = 0;
  virtual const std::string& group() const = 0;
  virtual const std::string& node_name() const = 0;
  // The agent's data directory; a plugin keeps its files under it.
  virtual const std::filesystem::path& data_dir() const = 0;

  // This plugin's named logger (level from the manifest).
  virtual std::shared_ptr<spdlog::logger> logger() const = 0;
  // The agent's metrics registry.
  virtual MetricsRegistry& metrics() = 0;
  // This plugin's strand: handlers posted here run one at a time, never
  // concurrently with on_message. Use it for timers and async I/O.
  virtual boost::asio::any_io_executor executor() = 0;

  // Sends to one module. If its queue is full, waits up to `wait` for room
  // (0: fail at once) and then returns kFull; an unknown module is kNotFound.
  // Never block with a wait from a handler when the agent has one worker
  // thread: the receiver cannot run until the handler returns.
  virtual Status send(std::string_view module, MessagePtr msg,
                      std::chrono::milliseconds wait = 0ms) = 0;
  // Sends one shared message to every module of a group. Returns the first
  // error; members that accepted it keep it.
  virtual Status send_to_group(std::string_view group, MessagePtr msg,
                               std::chrono::milliseconds wait = 0ms) = 0;
  // Sends a request and calls `on_response` exactly once: with the message
  // whose parent_id equals msg->header.id, or with kTimeout after `timeout`.
  virtual void request(std::string_view module, MessagePtr msg, std::chrono::milliseconds timeout,
                       ResponseHandler on_response) = 0;
  // Delivers a response (parent_id set) to whoever is waiting for it. Returns
  // kNotFound if nobody waits (it timed out or was answered already).
  virtual Status respond(MessagePtr response) = 0;

  // Tells the supervisor this plugin has failed at run time; it is stopped and
  // restarted according to its restart policy.
  virtual void report_failure(Status why) = 0;
};

}  // namespace kedge
