// Starting a child process with its output in a log file, with posix_spawn
// (header-only; eventbus's internal broker and the tests' helpers use it).
//
// posix_spawn, not fork+exec: an agent or a test runs kernels, gRPC and
// loggers on many threads, and a forked child that touches a lock one of
// them held (malloc's, gRPC's fork handlers) can hang before it ever
// reaches exec. posix_spawn runs no atfork handlers and allocates nothing in
// the child.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace kedge {

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

}  // namespace kedge
