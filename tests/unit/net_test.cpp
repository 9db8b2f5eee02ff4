// The TLS WebSocket and HTTPS building blocks, over real sockets on loopback.
#include "kedge/common/net.h"
#include "kedge/common/http_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <future>
#include <thread>

#include "kedge/common/pki.h"

namespace kedge::net {
namespace {

using ::testing::HasSubstr;
namespace asio = boost::asio;

// A CA with a server certificate for 127.0.0.1/localhost and node certificates.
struct Pki {
  pki::Key ca_key = pki::generate_key();
  pki::Cert ca = pki::make_ca(ca_key.get(), {"KubeEdge", ""}).value;
  std::string ca_pem = pki::cert_pem(ca.get());

  // (The server certificate's subject must differ from the CA's: KubeEdge's
  // is CN=KubeEdge, O=KubeEdge under a CA of CN=KubeEdge.)
  TlsMaterial leaf(const std::string& cn, unsigned usage, const std::string& org = "") {
    pki::Key k = pki::generate_key();
    pki::SignOptions o;
    o.usages = usage;
    o.ips = {"127.0.0.1"};
    o.dns_names = {"localhost"};
    auto c = pki::issue(ca.get(), ca_key.get(), k.get(), {cn, org}, o);
    return {ca_pem, pki::cert_pem(c.value.get()), pki::key_pem(k.get())};
  }
};

class NetTest : public ::testing::Test {
 protected:
  // Runs f on the test's strand and returns its result.
  template <class F>
  auto run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> t(std::move(f));
    auto fut = t.get_future();
    asio::post(ex_, [&t] { t(); });
    return fut.get();
  }
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    // The echo handler holds its connection: close it, or it is never freed.
    run([this] {
      if (server_conn_) server_conn_->close({Code::kUnavailable, "test over"});
      server_conn_.reset();
      return 0;
    });
    if (server_) run([this] { server_->stop(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // Starts a server requiring client certificates; admits a node whose
  // node_id header matches its certificate's CN.
  void start_server(WsServer::Options opts = {}, std::optional<TlsMaterial> identity = {}) {
    auto ctx =
        server_context(identity ? *identity : pki_.leaf("KubeEdge", pki::kServerAuth, "KubeEdge"),
                       ClientCert::kRequired);
    ASSERT_TRUE(ctx.status) << ctx.status.message();
    server_ = WsServer::create(ex_, ctx.value, opts);
    Status s = run([&] {
      return server_->listen(
          "127.0.0.1", 0,
          [](const PeerInfo& p) {
            auto it = p.headers.find("node_id");
            if (it == p.headers.end()) return Admission::refuse(400, "no node_id header");
            if (p.cert_cn != "system:node:" + it->second)
              return Admission::refuse(403, "node_id does not match the certificate");
            return Admission::accept();
          },
          [this](WsPtr c) {
            c->start(
                [this, c](std::string&& text) {
                  server_got_.push_back(text);
                  (void)c->send("echo:" + text);
                },
                [this](const Status& why) { server_closed_.set_value(why); });
            server_conn_ = c;
          });
    });
    ASSERT_TRUE(s) << s.message();
  }

  std::pair<Status, WsPtr> connect(const TlsMaterial& m, const std::string& node,
                                   WsClientOptions o = {}, const std::string& host = "127.0.0.1") {
    auto ctx = client_context(m);
    std::promise<std::pair<Status, WsPtr>> p;
    ws_connect(ex_, ctx.value, host, server_->port(),
               "/e632aba927ea4ac2b575ec1603d56f10/" + node + "/events",
               {{"node_id", node}, {"project_id", "e632aba927ea4ac2b575ec1603d56f10"}}, o,
               [&](Status s, WsPtr c) {
                 p.set_value({s, c});
               });
    return p.get_future().get();
  }

  asio::io_context io_;
  asio::any_io_executor ex_ = asio::make_strand(io_);
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
  Pki pki_;
  std::shared_ptr<WsServer> server_;
  WsPtr server_conn_;
  std::vector<std::string> server_got_;
  std::promise<Status> server_closed_;
};

TEST_F(NetTest, MutualTlsWebSocketCarriesTextFramesBothWays) {
  start_server();
  auto [s, c] = connect(pki_.leaf("system:node:edge-1", pki::kClientAuth), "edge-1");
  ASSERT_TRUE(s) << s.message();
  std::promise<std::string> got;
  EXPECT_TRUE(run([&] {
    c->start([&](std::string&& t) { got.set_value(t); }, [](const Status&) {});
    return c->send("{\"hello\":1}\n");
  }));
  EXPECT_EQ(got.get_future().get(), "echo:{\"hello\":1}\n");
  run([&] {
    EXPECT_EQ(server_conn_->peer().cert_cn, "system:node:edge-1");
    EXPECT_EQ(server_conn_->peer().headers.at("project_id"), "e632aba927ea4ac2b575ec1603d56f10");
    EXPECT_EQ(server_conn_->peer().target, "/e632aba927ea4ac2b575ec1603d56f10/edge-1/events");
    EXPECT_EQ(server_->connections(), 1u);
    return 0;
  });
  run([&] {
    c->close({Code::kUnavailable, "bye"});
    return 0;
  });
  auto fut = server_closed_.get_future();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(run([&] { return server_->connections(); }), 0u);
}

TEST_F(NetTest, MismatchedNodeIdIsRefusedWith403) {
  start_server();
  auto [s, c] = connect(pki_.leaf("system:node:edge-1", pki::kClientAuth), "edge-2");
  EXPECT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("WebSocket handshake failed"));
}

TEST_F(NetTest, ClientWithoutCertificateOrFromAnotherCaCannotConnect) {
  start_server();
  TlsMaterial none{pki_.ca_pem, "", ""};
  auto [s1, c1] = connect(none, "edge-1");
  EXPECT_FALSE(s1);
  Pki other;
  TlsMaterial foreign = other.leaf("system:node:edge-1", pki::kClientAuth);
  foreign.ca_pem = pki_.ca_pem;  // trusts our server, but its certificate is foreign
  auto [s2, c2] = connect(foreign, "edge-1");
  EXPECT_FALSE(s2);
}

TEST_F(NetTest, ClientRefusesAServerFromAnotherCa) {
  start_server();
  Pki other;
  TlsMaterial m = pki_.leaf("system:node:edge-1", pki::kClientAuth);
  m.ca_pem = other.ca_pem;
  auto [s, c] = connect(m, "edge-1");
  EXPECT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("TLS handshake"));
}

TEST_F(NetTest, ClientChecksTheServerNameAgainstTheCertificate) {
  // Signed by the right CA, but for other names.
  pki::Key k = pki::generate_key();
  pki::SignOptions o;
  o.usages = pki::kServerAuth;
  o.ips = {"10.9.9.9"};
  o.dns_names = {"cloud.example"};
  auto cert = pki::issue(pki_.ca.get(), pki_.ca_key.get(), k.get(), {"KubeEdge", "KubeEdge"}, o);
  start_server({},
               TlsMaterial{pki_.ca_pem, pki::cert_pem(cert.value.get()), pki::key_pem(k.get())});
  TlsMaterial m = pki_.leaf("system:node:edge-1", pki::kClientAuth);
  auto [s1, c1] = connect(m, "edge-1");  // by IP
  EXPECT_FALSE(s1);
  EXPECT_THAT(s1.message(), HasSubstr("TLS handshake"));
  auto [s2, c2] = connect(m, "edge-1", {}, "localhost");  // by name
  EXPECT_FALSE(s2);
  EXPECT_THAT(s2.message(), HasSubstr("TLS handshake"));
}

TEST_F(NetTest, ConnectsByDnsNameAndCarriesLargeFramesAndBursts) {
  start_server();
  auto [s, c] =
      connect(pki_.leaf("system:node:edge-1", pki::kClientAuth), "edge-1", {}, "localhost");
  ASSERT_TRUE(s) << s.message();
  // A 3 MiB frame spans many TLS records; 2,000 small frames go as a burst.
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  std::vector<std::string> got;
  std::promise<void> all;
  run([&] {
    c->start(
        [&](std::string&& t) {
          got.push_back(std::move(t));
          if (got.size() == 2001) all.set_value();
        },
        [](const Status&) {});
    EXPECT_TRUE(c->send(big));
    for (int i = 0; i < 2000; ++i) EXPECT_TRUE(c->send("m" + std::to_string(i)));
    return 0;
  });
  ASSERT_EQ(all.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  run([&] {
    EXPECT_EQ(got[0], "echo:" + big);
    for (int i = 0; i < 2000; ++i)
      EXPECT_EQ(got[static_cast<size_t>(i) + 1], "echo:m" + std::to_string(i));
    return 0;
  });
  run([&] {
    c->close({Code::kUnavailable, "done"});
    return 0;
  });
  EXPECT_EQ(server_closed_.get_future().wait_for(std::chrono::seconds(5)),
            std::future_status::ready);
}

TEST_F(NetTest, SilentPeerIsClosedWithinTheIdleTimeout) {
  WsServer::Options o;
  o.ws.idle_timeout = std::chrono::milliseconds(300);
  start_server(o);
  // The client never reads, so it never answers the server's pings: to the
  // server it is a dead (half-open) peer.
  auto [s, c] = connect(pki_.leaf("system:node:edge-1", pki::kClientAuth), "edge-1");
  ASSERT_TRUE(s);
  auto fut = server_closed_.get_future();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  Status why = fut.get();
  EXPECT_EQ(why.code(), Code::kTimeout);
  EXPECT_THAT(why.message(), HasSubstr("dead or half-open"));
}

TEST_F(NetTest, OversizedFrameClosesTheConnection) {
  WsServer::Options o;
  o.ws.max_frame = 1024;
  start_server(o);
  auto [s, c] = connect(pki_.leaf("system:node:edge-1", pki::kClientAuth), "edge-1");
  ASSERT_TRUE(s);
  EXPECT_TRUE(run([&] {
    c->start([](std::string&&) {}, [](const Status&) {});
    return c->send(std::string(4096, 'x'));
  }));
  Status why = server_closed_.get_future().get();
  EXPECT_THAT(why.message(), HasSubstr("larger than the limit of 1024 bytes"));
}

TEST_F(NetTest, ConnectionLimitRefusesWith503) {
  WsServer::Options o;
  o.max_connections = 1;
  start_server(o);
  auto [s1, c1] = connect(pki_.leaf("system:node:edge-1", pki::kClientAuth), "edge-1");
  ASSERT_TRUE(s1);
  auto [s2, c2] = connect(pki_.leaf("system:node:edge-2", pki::kClientAuth), "edge-2");
  EXPECT_FALSE(s2);
}

TEST_F(NetTest, HttpServerOverTlsAndClient) {
  auto sctx =
      server_context(pki_.leaf("KubeEdge", pki::kServerAuth, "KubeEdge"), ClientCert::kOptional);
  ASSERT_TRUE(sctx.status);
  HttpServer::Options opts;
  opts.max_body = 64;
  auto https = HttpServer::create(ex_, sctx.value, opts);
  auto answer = [](const HttpRequest& r) {
    if (r.target == "/ca.crt") return HttpResponse{200, "application/octet-stream", "DER"};
    if (r.target == "/echo")
      return HttpResponse{
          200, "text/plain",
          r.method + " " + r.body + " " + r.headers.at("nodename") + " " + r.peer_cert_cn};
    return HttpResponse{404, "text/plain", "not found"};
  };
  Status ls = run([&] {
    return https->listen("127.0.0.1", 0,
                         [answer](ExchangePtr x) { x->reply(answer(x->request())); });
  });
  ASSERT_TRUE(ls);
  auto call = [&](TlsMaterial m, bool verify, HttpRequest req) {
    std::promise<HttpResult> p;
    http_request(ex_, client_context(m, verify).value, "127.0.0.1", https->port(), std::move(req),
                 std::chrono::seconds(5), 1 << 20,
                 [&](HttpResult r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  };
  // No client certificate, no server verification (fetching the CA).
  auto r1 = call({}, false, {"GET", "/ca.crt", {}, "", ""});
  ASSERT_TRUE(r1.status) << r1.status.message();
  EXPECT_EQ(r1.http_status, 200);
  EXPECT_EQ(r1.body, "DER");
  // A GET with a body and a client certificate.
  auto r2 = call(pki_.leaf("system:node:e1", pki::kClientAuth), true,
                 {"GET", "/echo", {{"NodeName", "e1"}}, "csr-bytes", ""});
  ASSERT_TRUE(r2.status) << r2.status.message();
  EXPECT_EQ(r2.body, "GET csr-bytes e1 system:node:e1");
  auto r3 = call({pki_.ca_pem, "", ""}, true, {"GET", "/nope", {}, "", ""});
  EXPECT_EQ(r3.http_status, 404);
  auto r4 = call({pki_.ca_pem, "", ""}, true, {"POST", "/echo", {}, std::string(1000, 'x'), ""});
  EXPECT_EQ(r4.http_status, 413);
  run([&] {
    https->stop();
    return 0;
  });
}

// The one client: plain HTTP over IPv4 and IPv6, HTTPS to an IPv6 address
// without verification (as the kubelet's HTTPS probes), and bounded waits.
TEST_F(NetTest, HttpClientSpeaksPlainHttpAndHttpsOverIpv4AndIpv6) {
  auto plain = HttpServer::create(ex_, nullptr, {});
  auto echo = [](ExchangePtr x) {
    auto& r = x->request();
    x->reply(
        {200, "text/plain", r.method + " " + r.target + " " + r.headers.at("host") + " " + r.body});
  };
  ASSERT_TRUE(run([&] { return plain->listen("::1", 0, echo); }));
  auto r6 = http_request_sync(nullptr, "::1", plain->port(), {"POST", "/p", {}, "b6", ""}, 5s);
  ASSERT_TRUE(r6.status) << r6.status.message();
  EXPECT_EQ(r6.http_status, 200);
  EXPECT_EQ(r6.body, "POST /p [::1]:" + std::to_string(plain->port()) + " b6");
  auto rb = http_request_sync(nullptr, "[::1]", plain->port(), {"GET", "/b", {}, "", ""}, 5s);
  ASSERT_TRUE(rb.status) << rb.status.message();
  EXPECT_THAT(rb.body, HasSubstr("GET /b [::1]:"));
  auto plain4 = HttpServer::create(ex_, nullptr, {});
  ASSERT_TRUE(run([&] { return plain4->listen("127.0.0.1", 0, echo); }));
  auto r4 = http_request_sync(nullptr, "localhost", plain4->port(), {"GET", "/4", {}, "", ""}, 5s);
  ASSERT_TRUE(r4.status) << r4.status.message();
  EXPECT_THAT(r4.body, HasSubstr("GET /4 localhost:"));

  // HTTPS on ::1 with a certificate that does not name it: fails verified,
  // answers unverified.
  auto sctx =
      server_context(pki_.leaf("KubeEdge", pki::kServerAuth, "KubeEdge"), ClientCert::kNone);
  ASSERT_TRUE(sctx.status);
  auto tls = HttpServer::create(ex_, sctx.value, {});
  ASSERT_TRUE(run([&] { return tls->listen("::1", 0, echo); }));
  auto bad = http_request_sync(client_context({pki_.ca_pem, "", ""}).value, "::1", tls->port(),
                               {"GET", "/s", {}, "", ""}, 5s);
  EXPECT_FALSE(bad.status);
  EXPECT_THAT(bad.status.message(), HasSubstr("TLS handshake with [::1]:"));
  auto ok = http_request_sync(client_context({}, false).value, "::1", tls->port(),
                              {"GET", "/s", {}, "", ""}, 5s);
  ASSERT_TRUE(ok.status) << ok.status.message();
  EXPECT_THAT(ok.body, HasSubstr("GET /s [::1]:"));

  // Nothing listening: a transport error naming the peer; a peer that never
  // answers: a timeout within the bound.
  uint16_t closed = plain4->port();
  run([&] {
    plain4->stop();
    return 0;
  });
  auto refused = http_request_sync(nullptr, "127.0.0.1", closed, {"GET", "/", {}, "", ""}, 2s);
  EXPECT_FALSE(refused.status);
  EXPECT_THAT(refused.status.message(), HasSubstr("127.0.0.1:" + std::to_string(closed)));
  asio::ip::tcp::acceptor mute(io_, {asio::ip::make_address("127.0.0.1"), 0});
  auto t0 = std::chrono::steady_clock::now();
  auto silent = http_request_sync(nullptr, "127.0.0.1", mute.local_endpoint().port(),
                                  {"GET", "/", {}, "", ""}, 300ms);
  EXPECT_FALSE(silent.status);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  run([&] {
    plain->stop();
    tls->stop();
    return 0;
  });
}

}  // namespace
}  // namespace kedge::net
