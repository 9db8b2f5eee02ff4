// The kernel: worker threads, the router, and the supervisor that runs each
// plugin's lifecycle (init -> start -> stop) in dependency order and restarts
// failed optional plugins with exponential back-off.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kedge/core/manifest.h"
#include "kedge/core/resolve.h"
#include "kedge/core/router.h"
#include "kedge/metrics.h"

namespace spdlog {
class logger;
}

namespace kedge::core {

enum class PluginState {
  kLoaded,    // library loaded, no instance yet
  kStarting,  // init/start running
  kRunning,
  kBackingOff,  // failed; waiting to restart
  kFailed,      // failed and gave up (policy "never" or max_restarts reached)
  kStopped,
};
const char* state_name(PluginState s);

// Creates a logger writing to the agent's shared stderr sink.
std::shared_ptr<spdlog::logger> make_logger(const std::string& name, const std::string& level);

class Kernel {
 public:
  // `plugins` in start order (as resolve() returns them). The manifest must
  // outlive the kernel.
  Kernel(const Manifest& manifest, std::vector<ResolvedPlugin> plugins);
  ~Kernel();
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  // Registers a module that is not a plugin (the test harness uses this).
  // Call before start().
  Status add_module(const std::string& name, const std::string& group, Router::Handler handler);

  // Starts the worker threads, then inits and starts every plugin in
  // dependency order. A required plugin that fails stops everything started
  // so far and the error is returned; an optional one is restarted later.
  Status start();
  // Stops plugins in reverse order and joins the workers. Idempotent.
  void stop();

  // Blocks until request_shutdown() is called; returns its exit code.
  int wait_for_shutdown();
  void request_shutdown(int exit_code, const std::string& reason);
  bool shutdown_requested() const;

  Router& router() { return *router_; }
  MetricsRegistry& metrics() { return metrics_; }
  boost::asio::io_context& io() { return io_; }
  PluginState state(const std::string& plugin) const;
  const Manifest& manifest() const { return manifest_; }
  std::shared_ptr<spdlog::logger> logger() const { return log_; }

  class Slot;  // one plugin under supervision

 private:
  void write_metrics_file();
  void schedule_metrics();

  const Manifest& manifest_;
  MetricsRegistry metrics_;
  boost::asio::io_context io_;
  std::unique_ptr<Router> router_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::unique_ptr<Slot>> slots_;  // start order
  std::vector<std::thread> workers_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<boost::asio::steady_timer> metrics_timer_;
  bool started_ = false;
  bool stopped_ = false;

  mutable std::mutex shutdown_mu_;
  std::condition_variable shutdown_cv_;
  bool shutdown_ = false;
  int exit_code_ = 0;
};

}  // namespace kedge::core
