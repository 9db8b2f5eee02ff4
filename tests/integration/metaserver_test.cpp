// metaserver over metamanager in one kernel (captures stand in for edgehub):
// discovery, get and list with selectors, watches fed by what metamanager
// stores, and Status errors — over real plain HTTP on loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <thread>

#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Capture;
using testing::Harness;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

class MetaServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = Harness::free_port();
    h_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"metamanager\"\n[[plugin]]\nname = \"metaserver\"\n"
        "[plugin.config]\nidle_timeout_ms = 800\nport = " +
        std::to_string(port_) + "\n");
    ASSERT_TRUE(h_->errors().empty()) << h_->errors()[0];
    hub_ = &h_->capture("edgehub");
    ASSERT_TRUE(h_->start());
  }
  void cloud(const std::string& op, const std::string& resource, const std::string& rv,
             json::object labels = {}) {
    size_t a = resource.find('/'), b = resource.rfind('/');
    json::object obj{{"metadata", json::object{{"name", resource.substr(b + 1)},
                                               {"namespace", resource.substr(0, a)},
                                               {"resourceVersion", rv},
                                               {"labels", labels}}}};
    Message m = make_message("edgecontroller", "resource", op, resource, obj);
    m.header.resource_version = rv;
    size_t before = hub_->count();
    ASSERT_TRUE(h_->send("metamanager", m));
    ASSERT_TRUE(hub_->wait_count(before + 1));  // ACKed: stored
  }
  std::pair<int, json::value> get(const std::string& target, http::verb verb = http::verb::get) {
    asio::io_context io;
    beast::tcp_stream s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), port_});
    http::request<http::empty_body> req(verb, target, 11);
    req.set(http::field::host, "127.0.0.1");
    http::write(s, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    json::error_code ec;
    auto v = json::parse(res.body(), ec);
    return {static_cast<int>(res.result_int()), v};
  }
  std::vector<std::string> names(const json::value& list) {
    std::vector<std::string> out;
    for (auto& i : list.at("items").as_array())
      out.push_back(std::string(i.at("metadata").at("name").as_string()));
    return out;
  }

  uint16_t port_ = 0;
  std::unique_ptr<Harness> h_;
  Capture* hub_ = nullptr;
};

TEST_F(MetaServerTest, ServesDiscoveryGetAndListFromTheCache) {
  cloud("insert", "default/pod/web", "5", {{"app", "web"}});
  cloud("insert", "default/pod/db", "6", {{"app", "db"}});
  cloud("insert", "other/pod/x", "7");
  auto [c1, api] = get("/api/v1");
  ASSERT_EQ(c1, 200);
  EXPECT_EQ(api.at("kind").as_string(), "APIResourceList");
  auto [c2, all] = get("/api/v1/pods");
  ASSERT_EQ(c2, 200);
  EXPECT_EQ(all.at("kind").as_string(), "PodList");
  EXPECT_THAT(names(all), ::testing::UnorderedElementsAre("web", "db", "x"));
  EXPECT_EQ(all.at("metadata").at("resourceVersion").as_string(), "7");
  auto [c3, ns] = get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
  EXPECT_THAT(names(ns), ::testing::ElementsAre("web"));
  auto [c4, one] = get("/api/v1/namespaces/default/pods/db");
  ASSERT_EQ(c4, 200);
  EXPECT_EQ(one.at("metadata").at("resourceVersion").as_string(), "6");
}

TEST_F(MetaServerTest, ErrorsAreKubernetesStatus) {
  auto [c1, nf] = get("/api/v1/namespaces/default/pods/none");
  EXPECT_EQ(c1, 404);
  EXPECT_EQ(nf.at("kind").as_string(), "Status");
  EXPECT_EQ(nf.at("reason").as_string(), "NotFound");
  EXPECT_EQ(get("/api/v1/widgets").first, 404);
  EXPECT_EQ(get("/api/v1/pods?labelSelector=a%20in%20b").first, 400);
  EXPECT_EQ(get("/api/v1/pods?resourceVersion=abc").first, 400);
  auto [c2, ro] = get("/api/v1/namespaces/default/pods/web", http::verb::delete_);
  EXPECT_EQ(c2, 405);
  EXPECT_THAT(std::string(ro.at("message").as_string()), ::testing::HasSubstr("read-only"));
  EXPECT_EQ(get("/nowhere").first, 404);
}

// Raw bytes to the server; what it answers until it closes (or 5 s).
std::string raw_exchange(uint16_t port, const std::string& bytes, bool close_write = false) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(s, asio::buffer(bytes));
  boost::system::error_code ec;
  if (close_write) s.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  std::string out;
  char buf[4096];
  auto until = std::chrono::steady_clock::now() + 5s;
  timeval tv{0, 200000};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (std::chrono::steady_clock::now() < until) {
    ssize_t n = ::recv(s.native_handle(), buf, sizeof buf, 0);
    if (n == 0) break;
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST_F(MetaServerTest, BadInputIsRefusedWithoutHurtingOtherClients) {
  cloud("insert", "default/pod/web", "5");
  // A slow client that never finishes its request head holds one
  // connection, not the server...
  asio::io_context io;
  asio::ip::tcp::socket slow(io);
  slow.connect({asio::ip::make_address("127.0.0.1"), port_});
  asio::write(slow, asio::buffer(std::string("GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n")));
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/web").first, 200);
  // A URL over the 64 KiB head limit: 431.
  std::string huge =
      "GET /api/v1/pods?labelSelector=" + std::string(100000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_THAT(raw_exchange(port_, huge), ::testing::StartsWith("HTTP/1.1 431"));
  // Not HTTP: 400.
  EXPECT_THAT(raw_exchange(port_, "HELLO THERE\r\n\r\n"), ::testing::StartsWith("HTTP/1.1 400"));
  // A path that is not a valid URL, and invalid parameters: 400 as Status.
  auto [c1, bad_path] = get("/api/v1/namespaces/%ZZ/pods");
  EXPECT_EQ(c1, 400);
  EXPECT_EQ(bad_path.at("kind").as_string(), "Status");
  EXPECT_EQ(get("/api/v1/pods?watch=1&timeoutSeconds=soon").first, 400);
  EXPECT_EQ(get("/api/v1/pods?labelSelector=" + std::string(5000, '!')).first, 400);
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/web/log").first, 404);
  for (auto verb : {http::verb::post, http::verb::put, http::verb::patch})
    EXPECT_EQ(get("/api/v1/namespaces/default/pods", verb).first, 405);
  // A watch with timeoutSeconds ends by itself.
  auto started = std::chrono::steady_clock::now();
  std::string w =
      raw_exchange(port_, "GET /api/v1/pods?watch=1&timeoutSeconds=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(w, ::testing::HasSubstr("\"ADDED\""));
  EXPECT_THAT(w, ::testing::HasSubstr("\r\n0\r\n\r\n"));  // the last chunk
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
  // ...and is cut off after the idle timeout (800 ms here).
  char b;
  boost::system::error_code ec;
  timeval tv{3, 0};
  ::setsockopt(slow.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = ::recv(slow.native_handle(), &b, 1, 0);
  EXPECT_EQ(n, 0) << "the slow connection is still open";
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/web").first, 200);
}

TEST_F(MetaServerTest, WatchesSeeWhatMetamanagerStores) {
  cloud("insert", "default/pod/web", "5");
  asio::io_context io;
  beast::tcp_stream s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port_});
  http::request<http::empty_body> req(http::verb::get, "/api/v1/namespaces/default/pods?watch=1",
                                      11);
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req);
  std::vector<json::object> events;
  std::mutex mu;
  std::thread reader([&] {
    beast::flat_buffer buf;
    http::response_parser<http::empty_body> p;
    boost::system::error_code ec;
    http::read_header(s, buf, p, ec);
    std::string pending;
    auto on_chunk = [&](std::uint64_t, beast::string_view d, boost::system::error_code&) {
      pending.append(d.data(), d.size());
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::lock_guard lock(mu);
        events.push_back(json::parse(pending.substr(0, nl)).as_object());
        pending.erase(0, nl + 1);
      }
      return d.size();
    };
    p.on_chunk_body(on_chunk);
    while (!ec && !p.is_done()) http::read_some(s, buf, p, ec);
  });
  auto count = [&] {
    std::lock_guard lock(mu);
    return events.size();
  };
  ASSERT_TRUE(Harness::eventually([&] { return count() == 1; }));  // the current pod
  cloud("update", "default/pod/web", "8");
  cloud("insert", "other/pod/elsewhere", "9");  // another namespace: not this watch
  cloud("delete", "default/pod/web", "10");
  ASSERT_TRUE(Harness::eventually([&] { return count() == 3; }));
  std::this_thread::sleep_for(100ms);
  boost::system::error_code ec;
  s.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  reader.join();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].at("type").as_string(), "ADDED");
  EXPECT_EQ(events[1].at("type").as_string(), "MODIFIED");
  EXPECT_EQ(events[1].at("object").at("metadata").at("resourceVersion").as_string(), "8");
  EXPECT_EQ(events[2].at("type").as_string(), "DELETED");
}

}  // namespace
}  // namespace kedge
