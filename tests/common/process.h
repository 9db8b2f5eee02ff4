// A child process for a test: started with its output in a log file,
// killed (SIGKILL unless stopped before) with the object.
//
// Children are started with posix_spawn, not fork+exec: the test process runs
// kernels, gRPC and loggers on many threads, and a forked child that touches
// a lock one of them held (malloc's, gRPC's fork handlers) can hang before
// it ever reaches exec. posix_spawn runs no atfork handlers and allocates
// nothing in the child.
#pragma once

#include "../../plugins/common/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace kedge::testing {

using kedge::spawn_logged;

class Process {
 public:
  Process(std::vector<std::string> argv, std::string log)
      : argv_(std::move(argv)), log_(std::move(log)) {
    start();
  }
  ~Process() { kill(SIGKILL); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void start() {
    if (pid_ > 0) return;
    pid_ = spawn_logged(argv_, log_, false, &error_);
  }
  // Sends `sig` and reaps the process; returns its wait status (-1 if none).
  int kill(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  const std::string& log() const { return log_; }
  // Why the process could not be started (empty if it was).
  const std::string& error() const { return error_; }

 private:
  std::vector<std::string> argv_;
  std::string log_;
  std::string error_;
  pid_t pid_ = -1;
};

}  // namespace kedge::testing
