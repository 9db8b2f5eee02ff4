// A child process for a test: started with its output in a log file,
// killed (SIGKILL unless stopped before) with the object.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace kedge::testing {

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
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> args;
      for (auto& a : argv_) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
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

 private:
  std::vector<std::string> argv_;
  std::string log_;
  pid_t pid_ = -1;
};

}  // namespace kedge::testing
