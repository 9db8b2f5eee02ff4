#include "broker_process.h"

#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <vector>

namespace kedge::eventbus {

using namespace std::chrono_literals;

BrokerProcess::BrokerProcess(boost::asio::any_io_executor ex, std::shared_ptr<spdlog::logger> log,
                             BrokerSettings s)
    : timer_(std::move(ex)), log_(std::move(log)), s_(std::move(s)) {}

BrokerProcess::~BrokerProcess() { stop(); }

Status BrokerProcess::start() {
  std::error_code ec;
  std::filesystem::create_directories(s_.dir, ec);
  if (ec) return {Code::kInternal, "cannot create " + s_.dir.string() + ": " + ec.message()};
  std::ofstream conf(s_.dir / "mosquitto.conf");
  // Loopback only, as KubeEdge's internal broker; no persistence (the
  // twin's state is in its tables, not in the broker).
  conf << "listener " << s_.port << " " << s_.host << "\nallow_anonymous true\n"
       << "persistence false\nmax_queued_messages " << s_.session_queue << "\n"
       << "log_dest stdout\n";
  if (!conf) return {Code::kInternal, "cannot write " + (s_.dir / "mosquitto.conf").string()};
  conf.close();
  if (Status st = spawn(); !st) return st;
  watch();
  return {};
}

Status BrokerProcess::spawn() {
  std::string conf = (s_.dir / "mosquitto.conf").string(),
              log = (s_.dir / "mosquitto.log").string();
  std::string error;
  pid_ = spawn_logged({s_.binary, "-c", conf}, log, true, &error);
  if (pid_ <= 0) return {Code::kUnavailable, "internal MQTT broker: " + error};
  started_ = std::chrono::steady_clock::now();
  log_->info("internal MQTT broker {} started on {}:{} (pid {}, log {})", s_.binary, s_.host,
             s_.port, pid_, log);
  return {};
}

// Every second: has it exited? Then again after a back-off (1 s doubling to
// 30 s, back to 1 s once it has run for a minute).
void BrokerProcess::watch() {
  timer_.expires_after(1s);
  timer_.async_wait([this](boost::system::error_code e) {
    if (e || stopped_) return;
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      log_->warn("internal MQTT broker (pid {}) exited ({}); restarting in {} s", pid_,
                 WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                                   : "signal " + std::to_string(WTERMSIG(status)),
                 backoff_s_);
      pid_ = -1;
      timer_.expires_after(std::chrono::seconds(backoff_s_));
      backoff_s_ = std::min(backoff_s_ * 2, 30);
      timer_.async_wait([this](boost::system::error_code e2) {
        if (e2 || stopped_) return;
        ++restarts_;
        if (Status st = spawn(); !st) log_->error("{}", st.message());
        watch();
      });
      return;
    }
    if (std::chrono::steady_clock::now() - started_ > 60s) backoff_s_ = 1;
    watch();
  });
}

void BrokerProcess::stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 50; ++i) {  // up to 5 s, then SIGKILL
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    ::usleep(100000);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace kedge::eventbus
