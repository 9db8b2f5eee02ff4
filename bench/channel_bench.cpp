// ACKed cloud-to-edge messages per second through the whole channel: a
// controller's message into cloudhub (persisted), over mutual TLS to edgehub,
// delivered to the meta group, ACKed back, removed from the cloud's queue.
// Baseline in the same run: the same frames echoed over a bare TLS WebSocket.
//
//   build/bin/kedge_channel_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <filesystem>
#include <future>
#include <thread>

#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "kedge/json_codec.h"
#include "kedge/testing/harness.h"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using kedge::testing::Harness;

kedge::Message pod(int64_t n) {
  std::string uid = "uid-" + std::to_string(n);
  boost::json::object body{{"metadata", boost::json::object{{"name", "pod-" + std::to_string(n)},
                                                            {"namespace", "default"},
                                                            {"uid", uid},
                                                            {"resourceVersion", "1"}}},
                           {"spec", boost::json::object{{"nodeName", "edge-1"}}}};
  auto m = kedge::make_message("edgecontroller", "resource", "insert",
                               "node/edge-1/default/pod/pod-" + std::to_string(n), body);
  m.header.resource_version = "1";
  return m;
}

constexpr int64_t kBatch = 2000;

void BM_Channel_AckedDownstream(benchmark::State& state) {
  fs::path root = fs::temp_directory_path() / ("kedge-chbench-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "cloud");
  fs::create_directories(root / "edge");
  uint16_t port = Harness::free_port(), https = Harness::free_port();
  {
    Harness cloud(
        "[agent]\nnode_name = \"cloud\"\nlog_level = \"warn\"\nworker_threads = " +
            std::to_string(state.range(0)) +
            "\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
            "\"]\nqueue_capacity = 4096\n[[plugin]]\nname = \"cloudhub\"\n[plugin.config]\n"
            "address = \"127.0.0.1\"\nsend_window = " +
            std::to_string(state.range(1)) + "\nport = " + std::to_string(port) +
            "\nhttps_port = " + std::to_string(https) + "\n",
        root / "cloud");
    if (!cloud.start()) return state.SkipWithError("cloud did not start");
    Harness edge(
        "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\", \"" KEDGE_BENCH_PLUGIN_DIR
        "\"]\nqueue_capacity = 4096\n[[plugin]]\nname = \"edgehub\"\n"
        "[plugin.config]\nserver = \"127.0.0.1:" +
            std::to_string(port) + "\"\nhttp_server = \"127.0.0.1:" + std::to_string(https) +
            "\"\ntoken_file = \"" + (root / "cloud/data/cloudhub/token").string() +
            "\"\n[[plugin]]\nname = \"meta-acker\"\n",
        root / "edge");
    if (!edge.start()) return state.SkipWithError("edge did not start");
    auto& acked = cloud.kernel().metrics().counter("kedge_cloudhub_acked_total", "");
    auto& up = edge.kernel().metrics().gauge("kedge_edgehub_connected", "");
    if (!Harness::eventually([&] { return up.value() == 1; }, 20s))
      return state.SkipWithError("edge did not connect");
    int64_t n = 0;
    for (auto _ : state) {
      for (int64_t i = 0; i < kBatch; ++i)
        if (!cloud.send("cloudhub", pod(n + i), 10s)) state.SkipWithError("send failed");
      n += kBatch;
      while (static_cast<int64_t>(acked.value()) < n) std::this_thread::sleep_for(100us);
    }
    state.SetItemsProcessed(n);
  }
  fs::remove_all(root);
}

// The same frames over a bare mutual-TLS WebSocket: the client sends a
// window of 128 frames, the server answers each with an ACK-sized frame.
void BM_Baseline_TlsWebSocketEcho(benchmark::State& state) {
  namespace net = kedge::net;
  namespace pki = kedge::pki;
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  auto ex = boost::asio::make_strand(io);
  pki::Key ca_key = pki::generate_key();
  pki::Cert ca = pki::make_ca(ca_key.get(), {"KubeEdge", ""}).value;
  auto leaf = [&](const std::string& cn, unsigned usage, const std::string& org) {
    pki::Key k = pki::generate_key();
    pki::SignOptions o;
    o.usages = usage;
    o.ips = {"127.0.0.1"};
    auto c = pki::issue(ca.get(), ca_key.get(), k.get(), {cn, org}, o);
    return net::TlsMaterial{pki::cert_pem(ca.get()), pki::cert_pem(c.value.get()),
                            pki::key_pem(k.get())};
  };
  auto server =
      net::WsServer::create(ex,
                            net::server_context(leaf("KubeEdge", pki::kServerAuth, "KubeEdge"),
                                                net::ClientCert::kRequired)
                                .value,
                            {});
  std::string ack =
      kedge::codec::encode(kedge::new_response(pod(0), boost::json::string("OK"))) + "\n";
  std::promise<void> listening;
  boost::asio::post(ex, [&] {
    (void)server->listen(
        "127.0.0.1", 0, [](const net::PeerInfo&) { return net::Admission::accept(); },
        [&](net::WsPtr c) {
          c->start([c, &ack](std::string&&) { (void)c->send(ack); }, [](const kedge::Status&) {});
        });
    listening.set_value();
  });
  listening.get_future().wait();
  std::promise<net::WsPtr> pc;
  net::ws_connect(ex, net::client_context(leaf("system:node:edge-1", pki::kClientAuth, "")).value,
                  "127.0.0.1", server->port(), "/", {{"node_id", "edge-1"}}, {},
                  [&](kedge::Status, net::WsPtr c) { pc.set_value(c); });
  net::WsPtr client = pc.get_future().get();
  std::string frame = kedge::codec::encode(pod(1)) + "\n";
  std::atomic<int64_t> answered{0};
  int64_t target = 0, sent = 0;
  std::promise<void>* done = nullptr;
  std::function<void()> fill = [&] {
    while (sent < target && sent - answered.load() < 128) {
      (void)client->send(frame);
      ++sent;
    }
  };
  boost::asio::post(ex, [&] {
    client->start(
        [&](std::string&&) {
          if (++answered == target) done->set_value();
          fill();
        },
        [](const kedge::Status&) {});
  });
  for (auto _ : state) {
    std::promise<void> p;
    boost::asio::post(ex, [&] {
      done = &p;
      target += kBatch;
      fill();
    });
    p.get_future().wait();
  }
  state.SetItemsProcessed(target);
  boost::asio::post(ex, [&] {
    client->close({});
    server->stop();
  });
  work.reset();
  std::this_thread::sleep_for(50ms);
  io.stop();
  t.join();
}

}  // namespace

BENCHMARK(BM_Baseline_TlsWebSocketEcho)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Channel_AckedDownstream)
    ->ArgsProduct({{1, 2}, {128, 1024}})
    ->ArgNames({"cloud_workers", "window"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
