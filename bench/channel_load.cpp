// A load tool for cloudhub: simulates many edge nodes, each with its own
// certificate (minted with the cloud's CA from its data dir), connected over
// mutual TLS and idle. Reports the time to connect them all, the cloud
// process's resident memory per connected node, and, after the cloud is
// restarted by the caller, the time until every node is connected again.
// Every node ACKs each message it receives (as metamanager does); with
// --expect M the tool then waits for M distinct messages and reports the rate
// at which they arrived (a controller in the restarted cloud, the loadgen
// fixture plugin, sends them once all nodes are back).
//
//   kedge_channel_load --ca-dir DIR --port P --nodes N --pid CLOUD_PID [--reconnect]
//                      [--expect M]
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "kedge/json_codec.h"

#include "kedge/common/net.h"
#include "kedge/common/pki.h"

namespace {

namespace net = kedge::net;
namespace pki = kedge::pki;
using Clock = std::chrono::steady_clock;

long rss_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

struct Node {
  std::string name;
  net::SslContext tls;
  net::WsPtr conn;
  std::unique_ptr<boost::asio::steady_timer> retry;
  int connects = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string ca_dir;
  int port = 0, nodes = 100, pid = 0;
  long expect = 0;
  bool reconnect = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--ca-dir")
      ca_dir = next();
    else if (a == "--port")
      port = std::stoi(next());
    else if (a == "--nodes")
      nodes = std::stoi(next());
    else if (a == "--pid")
      pid = std::stoi(next());
    else if (a == "--expect")
      expect = std::stol(next());
    else if (a == "--reconnect")
      reconnect = true;
    else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  auto ca_pem = pki::read_file(ca_dir + "/ca.crt");
  auto key_pem = pki::read_file(ca_dir + "/ca.key");
  if (!ca_pem.ok() || !key_pem.ok() || !port || !pid) {
    std::cerr
        << "usage: kedge_channel_load --ca-dir DIR --port P --nodes N --pid PID [--reconnect]\n";
    return 2;
  }
  auto ca = pki::cert_from_pem(ca_pem.value);
  auto ca_key = pki::key_from_pem(key_pem.value);
  std::vector<Node> fleet(static_cast<size_t>(nodes));
  for (int i = 0; i < nodes; ++i) {
    Node& n = fleet[static_cast<size_t>(i)];
    n.name = "sim-" + std::to_string(i);
    pki::Key k = pki::generate_key();
    auto c =
        pki::issue(ca.value.get(), ca_key.value.get(), k.get(), {"system:node:" + n.name, ""}, {});
    n.tls = net::client_context({ca_pem.value, pki::cert_pem(c.value.get()), pki::key_pem(k.get())})
                .value;
  }
  boost::asio::io_context io;
  auto ex = boost::asio::make_strand(io);
  int up = 0;
  std::mt19937 rng(1);
  std::unordered_set<std::string> received;
  long deliveries = 0;
  Clock::time_point first_rx{}, last_rx{};
  auto on_text = [&](const net::WsPtr& c, std::string&& text) {
    auto d = kedge::codec::decode(text);
    if (!d.status || d.value.is_response() || d.value.route.operation == "keepalive") return;
    ++deliveries;
    auto now = Clock::now();
    if (received.empty()) first_rx = now;
    if (received.insert(d.value.header.id).second) last_rx = now;
    (void)c->send(kedge::codec::encode(kedge::new_response(d.value, boost::json::string("OK"))) +
                  "\n");
  };
  std::function<void(Node&)> dial = [&](Node& n) {
    net::WsClientOptions o;
    o.ws.idle_timeout = std::chrono::seconds(120);
    net::ws_connect(ex, n.tls, "127.0.0.1", static_cast<uint16_t>(port), "/p/" + n.name + "/events",
                    {{"node_id", n.name}, {"project_id", "p"}}, o,
                    [&](kedge::Status s, net::WsPtr c) {
                      if (!s) {  // retry with jittered back-off
                        n.retry = std::make_unique<boost::asio::steady_timer>(ex);
                        n.retry->expires_after(std::chrono::milliseconds(200 + rng() % 800));
                        n.retry->async_wait([&](boost::system::error_code) { dial(n); });
                        return;
                      }
                      n.conn = c;
                      ++n.connects;
                      ++up;
                      std::weak_ptr<net::WsConnection> weak = c;
                      c->start(
                          [&, weak](std::string&& text) {
                            if (auto conn = weak.lock()) on_text(conn, std::move(text));
                          },
                          [&](const kedge::Status&) {
                            --up;
                            n.conn = nullptr;
                            if (reconnect) dial(n);
                          });
                    });
  };
  std::thread t([&] {
    auto work = boost::asio::make_work_guard(io);
    io.run();
  });
  auto post_wait = [&](auto f) {
    std::promise<decltype(f())> p;
    boost::asio::post(ex, [&] { p.set_value(f()); });
    return p.get_future().get();
  };
  long before = rss_kb(pid);
  auto t0 = Clock::now();
  post_wait([&] {
    for (auto& n : fleet) dial(n);
    return 0;
  });
  while (post_wait([&] { return up; }) < nodes)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  double connect_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  long after = rss_kb(pid);
  std::printf("connected %d nodes in %.2f s; cloud RSS %ld kB -> %ld kB: %.1f KiB per idle node\n",
              nodes, connect_s, before, after, static_cast<double>(after - before) / nodes);
  std::fflush(stdout);
  if (reconnect) {
    // The caller restarts the cloud now; wait for everyone to drop and return.
    while (post_wait([&] { return up; }) == nodes)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto t1 = Clock::now();
    while (post_wait([&] {
             int again = 0;
             for (auto& n : fleet) again += n.connects >= 2 && n.conn;
             return again;
           }) < nodes)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::printf("all %d nodes connected again %.2f s after the first disconnect\n", nodes,
                std::chrono::duration<double>(Clock::now() - t1).count());
    std::fflush(stdout);
  }
  if (expect > 0) {
    auto deadline = Clock::now() + std::chrono::seconds(600);
    long got = 0;
    while ((got = post_wait([&] { return static_cast<long>(received.size()); })) < expect &&
           Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto [span, total] = post_wait([&] {
      return std::make_pair(std::chrono::duration<double>(last_rx - first_rx).count(), deliveries);
    });
    if (got < expect) {
      std::printf("only %ld of %ld messages arrived within 600 s\n", got, expect);
      std::fflush(stdout);
      std::_Exit(1);
    }
    std::printf(
        "%ld messages to %d nodes received and ACKed in %.2f s: %.0f msg/s (%ld deliveries "
        "incl. resends)\n",
        got, nodes, span, static_cast<double>(got) / span, total);
  }
  std::fflush(stdout);
  std::_Exit(0);  // skip orderly teardown of thousands of connections
}
