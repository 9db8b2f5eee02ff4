// EventBus's internal broker (KubeEdge's mqttMode 0 and 1): Debian's
// mosquitto run as a child process bound to loopback, restarted with
// back-off when it exits, stopped with the plugin. KubeEdge 1.12 embeds a Go
// broker instead; kedge runs the real one.
#pragma once

#include <spdlog/logger.h>
#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "kedge/status.h"

namespace kedge::eventbus {

struct BrokerSettings {
  std::string binary;  // "mosquitto", searched in PATH
  std::string host;    // a loopback address
  int port = 1884;
  int64_t session_queue = 100;  // mqttSessionQueueSize -> max_queued_messages
  std::filesystem::path dir;    // its config and log
};

class BrokerProcess {
 public:
  BrokerProcess(boost::asio::any_io_executor ex, std::shared_ptr<spdlog::logger> log,
                BrokerSettings s);
  ~BrokerProcess();  // stops it
  // Writes its config and starts it; then watches it (on `ex`).
  Status start();
  void stop();
  int restarts() const { return restarts_; }
  pid_t pid() const { return pid_; }

 private:
  Status spawn();
  void watch();

  boost::asio::steady_timer timer_;
  std::shared_ptr<spdlog::logger> log_;
  BrokerSettings s_;
  pid_t pid_ = -1;
  int restarts_ = 0, backoff_s_ = 1;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace kedge::eventbus
