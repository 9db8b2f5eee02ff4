// A real etcd (Debian's etcd-server) for tests: free loopback ports, a
// temporary data dir, its log in <dir>/etcd.log; killed with the object.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "kedge/testing/harness.h"
#include "process.h"

namespace kedge::testing {

class EtcdProcess {
 public:
  // One per test program, started on first use.
  static EtcdProcess& shared() {
    static EtcdProcess p;
    return p;
  }
  EtcdProcess() {
    dir_ = std::filesystem::temp_directory_path() / ("kedge-etcd-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    client_ = Harness::free_port();
    peer_ = Harness::free_port();
    endpoint_ = "127.0.0.1:" + std::to_string(client_);
    launch();
  }
  ~EtcdProcess() {
    kill_and_restart(false);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  EtcdProcess(const EtcdProcess&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  // Empty when etcd answers on its client port.
  const std::string& error() const { return error_; }

  // Stops etcd with SIGKILL (a crash) and, if `again`, starts it on the same
  // ports and data.
  void kill_and_restart(bool again = true) {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (again) launch();
  }

 private:
  void launch() {
    error_.clear();
    std::string curl = "http://" + endpoint_, purl = "http://127.0.0.1:" + std::to_string(peer_);
    std::vector<std::string> args = {"etcd",
                                     "--name=kedge-test",
                                     "--data-dir=" + (dir_ / "data").string(),
                                     "--listen-client-urls=" + curl,
                                     "--advertise-client-urls=" + curl,
                                     "--listen-peer-urls=" + purl,
                                     "--initial-advertise-peer-urls=" + purl,
                                     "--initial-cluster=kedge-test=" + purl};
    pid_ = spawn_logged(args, (dir_ / "etcd.log").string(), true, &error_);
    if (pid_ < 0) return;
    for (int i = 0; i < 200; ++i) {  // up to 10 s for the client port
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = "etcd exited at start (is etcd-server installed?), status " +
                 std::to_string(status) + "; see " + (dir_ / "etcd.log").string();
        return;
      }
      boost::asio::io_context io;
      boost::asio::ip::tcp::socket s(io);
      boost::system::error_code ec;
      s.connect({boost::asio::ip::make_address("127.0.0.1"), client_}, ec);
      if (!ec) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // leader election
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    error_ = "etcd did not answer at " + endpoint_ + " within 10 s";
  }

  std::filesystem::path dir_;
  std::string endpoint_, error_;
  uint16_t client_ = 0, peer_ = 0;
  pid_t pid_ = -1;
};

}  // namespace kedge::testing
