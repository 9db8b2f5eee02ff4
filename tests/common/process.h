// A child process for a test: started with its output in a log file,
// killed (SIGKILL unless stopped before) with the object.
//
// Children are started with posix_spawn, not fork+exec: the test process runs
// kernels, gRPC and loggers on many threads, and a forked child that touches
// a lock one of them held (malloc's, gRPC's fork handlers) can hang before
// it ever reaches exec. posix_spawn runs no atfork handlers and allocates
// nothing in the child.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace kedge::testing {

// Starts argv[0] (searched in PATH when `search_path`) with stdout and stderr
// appended to `log`. Returns the child's pid, or -1 with errno's text in
// `error`.
inline pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log,
                          bool search_path, std::string* error = nullptr) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The child starts with no signal blocked, whatever the test's threads do.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = search_path ? ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ)
                       : ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    if (error) *error = "cannot start " + argv[0] + ": " + std::strerror(rc);
    return -1;
  }
  return pid;
}

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
