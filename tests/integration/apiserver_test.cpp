// The apiserver plugin in a kernel, over real HTTPS on loopback, against
// both stores (SQLite, and a real etcd started by the test): the same suite.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <mutex>
#include <thread>

#include "../common/etcd_process.h"
#include "kedge/common/pki.h"
#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
using ::testing::HasSubstr;
namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

struct Reply {
  int status = 0;
  json::value body;
  std::string text;
};

class ApiServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '-');
    root_ = fs::temp_directory_path() / ("kedge-api-" + std::to_string(::getpid()) + "-" + test);
    fs::remove_all(root_);
    fs::create_directories(root_);
    port_ = Harness::free_port();
    prefix_ = "/" + test;
    start();
  }
  void TearDown() override {
    cloud_.reset();
    fs::remove_all(root_);
  }

  void start(const std::string& extra = "") {
    std::string store = GetParam() == "etcd"
                            ? "store = \"etcd\"\netcd_endpoints = [\"" +
                                  kedge::testing::EtcdProcess::shared().endpoint() +
                                  "\"]\netcd_prefix = \"" + prefix_ + "\"\n"
                            : "store = \"sqlite\"\n";
    cloud_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"cloud\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"apiserver\"\n[plugin.config]\naddress = \"127.0.0.1\"\n"
        "port = " +
            std::to_string(port_) + "\n" + store + extra,
        root_);
    ASSERT_TRUE(cloud_->errors().empty()) << cloud_->errors()[0];
    ASSERT_TRUE(cloud_->start());
    auto tok = pki::read_file((root_ / "data/apiserver/admin.token").string());
    ASSERT_TRUE(tok.ok());
    token_ = tok.value.substr(0, tok.value.find('\n'));
    auto ca = pki::read_file((root_ / "data/apiserver/ca.crt").string());
    ASSERT_TRUE(ca.ok());
    ca_ = ca.value;
  }

  // One HTTPS request, blocking.
  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::string& content_type = "application/json",
             std::optional<std::string> token = std::nullopt) {
    asio::io_context io;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.add_certificate_authority(asio::buffer(ca_));
    ctx.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> s(io, ctx);
    beast::get_lowest_layer(s).connect({asio::ip::make_address("127.0.0.1"), port_});
    s.handshake(asio::ssl::stream_base::client);
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, "127.0.0.1");
    std::string t = token.value_or(token_);
    if (!t.empty()) req.set(http::field::authorization, "Bearer " + t);
    if (!body.empty()) req.set(http::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
    boost::system::error_code wec;
    http::write(s, req, wec);  // a refused body may be cut short: the answer still comes
    beast::flat_buffer buf;
    http::response_parser<http::string_body> p;
    p.body_limit(64 << 20);
    http::read(s, buf, p);
    Reply r;
    r.status = static_cast<int>(p.get().result_int());
    r.text = p.get().body();
    json::error_code ec;
    r.body = json::parse(r.text, ec);
    return r;
  }

  static std::string pod(const std::string& name, const std::string& node = "edge-1",
                         const std::string& labels = "{}") {
    return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name + R"(","labels":)" +
           labels + R"(},"spec":{"nodeName":")" + node +
           R"(","containers":[{"name":"c","image":"nginx"}]}})";
  }
  static std::string rv(const Reply& r) {
    return std::string(r.body.at("metadata").at("resourceVersion").as_string());
  }

  fs::path root_;
  uint16_t port_ = 0;
  std::string prefix_, token_, ca_;
  std::unique_ptr<Harness> cloud_;
};

// A watch stream read on a thread of its own.
class WatchReader {
 public:
  WatchReader(uint16_t port, const std::string& ca, const std::string& token,
              const std::string& target) {
    ctx_.add_certificate_authority(asio::buffer(ca));
    ctx_.set_verify_mode(asio::ssl::verify_peer);
    s_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io_, ctx_);
    beast::get_lowest_layer(*s_).connect({asio::ip::make_address("127.0.0.1"), port});
    s_->handshake(asio::ssl::stream_base::client);
    http::request<http::empty_body> req(http::verb::get, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + token);
    http::write(*s_, req);
    t_ = std::thread([this] { run(); });
  }
  ~WatchReader() {
    boost::system::error_code ec;
    beast::get_lowest_layer(*s_).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    t_.join();
  }
  // The events so far (type, object), waiting up to 10 s for n of them.
  std::vector<json::object> wait_for(size_t n) {
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(mu_);
        if (events_.size() >= n || done_) return events_;
      }
      std::this_thread::sleep_for(10ms);
    }
    std::lock_guard lock(mu_);
    return events_;
  }
  int status() {
    std::lock_guard lock(mu_);
    return status_;
  }
  bool done() {
    std::lock_guard lock(mu_);
    return done_;
  }

 private:
  void run() {
    beast::flat_buffer buf;
    http::response_parser<http::empty_body> p;
    boost::system::error_code ec;
    http::read_header(*s_, buf, p, ec);
    {
      std::lock_guard lock(mu_);
      status_ = ec ? -1 : static_cast<int>(p.get().result_int());
    }
    std::string pending;
    auto on_chunk = [&](std::uint64_t, beast::string_view body, boost::system::error_code&) {
      pending.append(body.data(), body.size());
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        auto v = json::parse(pending.substr(0, nl));
        pending.erase(0, nl + 1);
        std::lock_guard lock(mu_);
        events_.push_back(v.as_object());
      }
      return body.size();
    };
    p.on_chunk_body(on_chunk);
    while (!ec && !p.is_done()) http::read_some(*s_, buf, p, ec);
    std::lock_guard lock(mu_);
    done_ = true;
  }

  asio::io_context io_;
  asio::ssl::context ctx_{asio::ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> s_;
  std::thread t_;
  std::mutex mu_;
  std::vector<json::object> events_;
  int status_ = 0;
  bool done_ = false;
};

TEST_P(ApiServerTest, AuthenticationIsRequired) {
  EXPECT_EQ(call("GET", "/api/v1/namespaces/default/pods", "", "", "").status, 401);
  auto wrong = call("GET", "/api/v1/namespaces/default/pods", "", "", "not-the-token");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.body.at("kind").as_string(), "Status");
  EXPECT_EQ(wrong.body.at("reason").as_string(), "Unauthorized");
  EXPECT_EQ(call("GET", "/healthz", "", "", "").status, 200);
}

TEST_P(ApiServerTest, CreateGetListDelete) {
  auto c = call("POST", "/api/v1/namespaces/default/pods", pod("web"));
  ASSERT_EQ(c.status, 201) << c.text;
  auto& md = c.body.at("metadata").as_object();
  EXPECT_EQ(md.at("namespace").as_string(), "default");
  EXPECT_EQ(md.at("uid").as_string().size(), 36u);
  EXPECT_FALSE(md.at("creationTimestamp").as_string().empty());
  EXPECT_FALSE(rv(c).empty());
  auto g = call("GET", "/api/v1/namespaces/default/pods/web");
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(g.body, c.body);
  auto dup = call("POST", "/api/v1/namespaces/default/pods", pod("web"));
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.body.at("reason").as_string(), "AlreadyExists");
  EXPECT_EQ(dup.body.at("message").as_string(), "pods \"web\" already exists");
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("db")).status, 201);
  auto l = call("GET", "/api/v1/namespaces/default/pods");
  ASSERT_EQ(l.status, 200);
  EXPECT_EQ(l.body.at("kind").as_string(), "PodList");
  EXPECT_EQ(l.body.at("items").as_array().size(), 2u);
  EXPECT_EQ(call("GET", "/api/v1/pods").body.at("items").as_array().size(), 2u);
  auto d = call("DELETE", "/api/v1/namespaces/default/pods/web");
  EXPECT_EQ(d.status, 200);
  auto gone = call("GET", "/api/v1/namespaces/default/pods/web");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.body.at("reason").as_string(), "NotFound");
  EXPECT_EQ(gone.body.at("details").at("kind").as_string(), "pods");
  // Cluster-scoped and KubeEdge resources.
  EXPECT_EQ(call("POST", "/api/v1/nodes",
                 R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"edge-1"}})")
                .status,
            201);
  EXPECT_EQ(call("POST", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices",
                 R"({"metadata":{"name":"thermo-1"},"spec":{"deviceModelRef":{"name":"m"}}})")
                .status,
            201);
  auto dev = call("GET", "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/thermo-1");
  EXPECT_EQ(dev.body.at("apiVersion").as_string(), "devices.kubeedge.io/v1beta1");
  EXPECT_EQ(dev.body.at("kind").as_string(), "Device");
}

TEST_P(ApiServerTest, BadRequestsGetStatusErrorsThatNameTheProblem) {
  auto ns = call("POST", "/api/v1/namespaces/nope/pods", pod("x"));
  EXPECT_EQ(ns.status, 404);
  EXPECT_THAT(ns.body.at("message").as_string().c_str(),
              HasSubstr("namespaces \"nope\" not found"));
  auto name = call("POST", "/api/v1/namespaces/default/pods", pod("Bad_Name"));
  EXPECT_EQ(name.status, 422);
  EXPECT_EQ(name.body.at("reason").as_string(), "Invalid");
  EXPECT_EQ(name.body.at("details").at("causes").at(0).at("field").as_string(), "metadata.name");
  auto kind = call("POST", "/api/v1/namespaces/default/pods",
                   R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}})");
  EXPECT_EQ(kind.status, 422);
  EXPECT_EQ(kind.body.at("details").at("causes").at(0).at("field").as_string(), "kind");
  auto bad = call("POST", "/api/v1/namespaces/default/pods", "{not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body.at("message").as_string().c_str(), HasSubstr("not valid JSON"));
  EXPECT_EQ(call("GET", "/api/v1/namespaces/default/widgets").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/pods?labelSelector=a%20in%20b").status, 400);
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("p")).status, 201);
  EXPECT_EQ(call("PATCH", "/api/v1/namespaces/default/pods/p", "{}", "application/json").status,
            415);
  // Over the body limit (lowered here so the whole request fits in the
  // socket buffers before the server answers and closes).
  cloud_.reset();
  start("max_body_bytes = 65536\n");
  auto big =
      call("POST", "/api/v1/namespaces/default/configmaps",
           R"({"metadata":{"name":"big"},"data":{"x":")" + std::string(100000, 'x') + "\"}}");
  EXPECT_EQ(big.status, 413);
  EXPECT_THAT(big.text, HasSubstr("larger than 65536 bytes"));
}

TEST_P(ApiServerTest, UpdatesAreOptimisticAndPatchesMerge) {
  auto c = call("POST", "/api/v1/namespaces/default/pods", pod("web"));
  ASSERT_EQ(c.status, 201);
  json::value next = c.body;
  next.as_object()["spec"].as_object()["nodeName"] = "edge-2";
  auto u = call("PUT", "/api/v1/namespaces/default/pods/web", json::serialize(next));
  ASSERT_EQ(u.status, 200) << u.text;
  EXPECT_NE(rv(u), rv(c));
  EXPECT_EQ(u.body.at("metadata").at("generation").as_int64(), 2);
  // The same stale version again: 409.
  auto stale = call("PUT", "/api/v1/namespaces/default/pods/web", json::serialize(next));
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.body.at("reason").as_string(), "Conflict");
  // No resourceVersion: 422.
  next.as_object()["metadata"].as_object().erase("resourceVersion");
  auto none = call("PUT", "/api/v1/namespaces/default/pods/web", json::serialize(next));
  EXPECT_EQ(none.status, 422);
  EXPECT_EQ(none.body.at("details").at("causes").at(0).at("field").as_string(),
            "metadata.resourceVersion");
  // Merge patch: add a label, remove one with null.
  auto p1 = call("PATCH", "/api/v1/namespaces/default/pods/web",
                 R"({"metadata":{"labels":{"app":"web","tier":"front"}}})",
                 "application/merge-patch+json");
  ASSERT_EQ(p1.status, 200) << p1.text;
  auto p2 = call("PATCH", "/api/v1/namespaces/default/pods/web",
                 R"({"metadata":{"labels":{"tier":null}}})", "application/merge-patch+json");
  ASSERT_EQ(p2.status, 200);
  EXPECT_EQ(p2.body.at("metadata").at("labels").as_object().size(), 1u);
  EXPECT_EQ(p2.body.at("metadata").at("uid"), c.body.at("metadata").at("uid"));
  EXPECT_EQ(p2.body.at("spec").at("nodeName").as_string(), "edge-2");
}

TEST_P(ApiServerTest, SelectorsFilterLists) {
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("a", "edge-1", R"({"app":"web"})"))
                .status,
            201);
  ASSERT_EQ(
      call("POST", "/api/v1/namespaces/default/pods", pod("b", "edge-2", R"({"app":"db"})")).status,
      201);
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("c", "edge-1", "{}")).status, 201);
  auto names = [&](const std::string& q) {
    std::vector<std::string> out;
    Reply r = call("GET", "/api/v1/pods?" + q);
    EXPECT_EQ(r.status, 200) << q << ": " << r.text;
    if (r.status != 200) return out;
    for (auto& i : r.body.at("items").as_array())
      out.push_back(std::string(i.at("metadata").at("name").as_string()));
    return out;
  };
  EXPECT_THAT(names("labelSelector=app%3Dweb"), ::testing::ElementsAre("a"));
  EXPECT_THAT(names("labelSelector=app"), ::testing::ElementsAre("a", "b"));
  EXPECT_THAT(names("labelSelector=!app"), ::testing::ElementsAre("c"));
  EXPECT_THAT(names("labelSelector=app%20in%20(web,db)"), ::testing::ElementsAre("a", "b"));
  EXPECT_THAT(names("labelSelector=app!%3Dweb"), ::testing::ElementsAre("b", "c"));
  EXPECT_THAT(names("fieldSelector=spec.nodeName%3Dedge-1"), ::testing::ElementsAre("a", "c"));
  EXPECT_THAT(names("fieldSelector=metadata.name%3Db"), ::testing::ElementsAre("b"));
}

TEST_P(ApiServerTest, TheStatusSubresourceWritesOnlyStatus) {
  auto c = call("POST", "/api/v1/namespaces/default/pods", pod("web"));
  ASSERT_EQ(c.status, 201);
  json::value with_status = c.body;
  with_status.as_object()["status"] = json::object{{"phase", "Running"}};
  with_status.as_object()["spec"].as_object()["nodeName"] = "elsewhere";
  auto s = call("PUT", "/api/v1/namespaces/default/pods/web/status", json::serialize(with_status));
  ASSERT_EQ(s.status, 200) << s.text;
  EXPECT_EQ(s.body.at("status").at("phase").as_string(), "Running");
  EXPECT_EQ(s.body.at("spec").at("nodeName").as_string(), "edge-1");  // spec untouched
  // PUT on the object keeps the status.
  json::value obj = s.body;
  obj.as_object()["status"] = json::object{{"phase", "Failed"}};
  auto u = call("PUT", "/api/v1/namespaces/default/pods/web", json::serialize(obj));
  ASSERT_EQ(u.status, 200);
  EXPECT_EQ(u.body.at("status").at("phase").as_string(), "Running");
  auto p = call("PATCH", "/api/v1/namespaces/default/pods/web/status",
                R"({"status":{"phase":"Succeeded"}})", "application/merge-patch+json");
  EXPECT_EQ(p.body.at("status").at("phase").as_string(), "Succeeded");
}

TEST_P(ApiServerTest, WatchFromAVersionStreamsChangesInOrder) {
  auto c = call("POST", "/api/v1/namespaces/default/pods", pod("web"));
  ASSERT_EQ(c.status, 201);
  WatchReader w(port_, ca_, token_,
                "/api/v1/namespaces/default/pods?watch=1&resourceVersion=" + rv(c));
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("db")).status, 201);
  ASSERT_EQ(call("PATCH", "/api/v1/namespaces/default/pods/web",
                 R"({"metadata":{"labels":{"x":"1"}}})", "application/merge-patch+json")
                .status,
            200);
  ASSERT_EQ(call("DELETE", "/api/v1/namespaces/default/pods/db").status, 200);
  ASSERT_EQ(call("POST", "/api/v1/namespaces/kube-system/pods", pod("elsewhere")).status, 201);
  auto ev = w.wait_for(3);
  EXPECT_EQ(w.status(), 200);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].at("type").as_string(), "ADDED");
  EXPECT_EQ(ev[0].at("object").at("metadata").at("name").as_string(), "db");
  EXPECT_EQ(ev[1].at("type").as_string(), "MODIFIED");
  EXPECT_EQ(ev[2].at("type").as_string(), "DELETED");
  int64_t last = 0;
  for (auto& e : ev) {
    int64_t r =
        std::stoll(std::string(e.at("object").at("metadata").at("resourceVersion").as_string()));
    EXPECT_GT(r, last);
    last = r;
  }
}

TEST_P(ApiServerTest, WatchWithoutAVersionStartsWithTheCurrentObjects) {
  ASSERT_EQ(
      call("POST", "/api/v1/namespaces/default/pods", pod("a", "edge-1", R"({"app":"x"})")).status,
      201);
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("b")).status, 201);
  WatchReader w(port_, ca_, token_, "/api/v1/pods?watch=true&labelSelector=app%3Dx");
  ASSERT_EQ(
      call("POST", "/api/v1/namespaces/default/pods", pod("c", "edge-1", R"({"app":"x"})")).status,
      201);
  auto ev = w.wait_for(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].at("object").at("metadata").at("name").as_string(), "a");
  EXPECT_EQ(ev[1].at("object").at("metadata").at("name").as_string(), "c");
}

TEST_P(ApiServerTest, AWatchResumesAcrossARestartAndATooOldVersionIsExpired) {
  auto c = call("POST", "/api/v1/namespaces/default/pods", pod("web"));
  ASSERT_EQ(c.status, 201);
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("db")).status, 201);
  cloud_.reset();  // the cloud restarts
  start("history = 5\n");
  WatchReader w(port_, ca_, token_,
                "/api/v1/namespaces/default/pods?watch=1&resourceVersion=" + rv(c));
  auto ev = w.wait_for(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].at("object").at("metadata").at("name").as_string(), "db");
  for (int i = 0; i < 8; ++i)
    ASSERT_EQ(call("POST", "/api/v1/namespaces/default/configmaps",
                   R"({"metadata":{"name":"cm)" + std::to_string(i) + R"("}})")
                  .status,
              201);
  WatchReader old(port_, ca_, token_,
                  "/api/v1/namespaces/default/pods?watch=1&resourceVersion=" + rv(c));
  auto err = old.wait_for(1);
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].at("type").as_string(), "ERROR");
  EXPECT_EQ(err[0].at("object").at("code").as_int64(), 410);
  EXPECT_EQ(err[0].at("object").at("reason").as_string(), "Expired");
}

TEST_P(ApiServerTest, NodesMayWriteOnlyTheirOwnNodeAndPodStatus) {
  // A node certificate from the cloud CA (as cloudhub issues them).
  auto ca = pki::load_or_create_ca((root_ / "data/cloudhub").string());
  ASSERT_TRUE(ca.ok());
  ASSERT_EQ(call("POST", "/api/v1/nodes", R"({"metadata":{"name":"edge-1"}})").status, 201);
  ASSERT_EQ(call("POST", "/api/v1/nodes", R"({"metadata":{"name":"edge-2"}})").status, 201);
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("mine", "edge-1")).status, 201);
  ASSERT_EQ(call("POST", "/api/v1/namespaces/default/pods", pod("theirs", "edge-2")).status, 201);
  pki::Key k = pki::generate_key();
  pki::SignOptions o;
  o.usages = pki::kClientAuth;
  auto cert = pki::issue(ca.value.cert.get(), ca.value.key.get(), k.get(),
                         {"system:node:edge-1", "system:nodes"}, o);
  auto as_node = [&](const std::string& method, const std::string& target,
                     const std::string& body) {
    asio::io_context io;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.add_certificate_authority(asio::buffer(ca_));
    std::string cp = pki::cert_pem(cert.value.get()), kp = pki::key_pem(k.get());
    ctx.use_certificate_chain(asio::buffer(cp));
    ctx.use_private_key(asio::buffer(kp), asio::ssl::context::pem);
    beast::ssl_stream<beast::tcp_stream> s(io, ctx);
    beast::get_lowest_layer(s).connect({asio::ip::make_address("127.0.0.1"), port_});
    s.handshake(asio::ssl::stream_base::client);
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/merge-patch+json");
    req.body() = body;
    req.prepare_payload();
    http::write(s, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    return static_cast<int>(res.result_int());
  };
  EXPECT_EQ(as_node("GET", "/api/v1/namespaces/default/pods", ""), 200);
  EXPECT_EQ(as_node("PATCH", "/api/v1/nodes/edge-1/status", R"({"status":{"phase":"Running"}})"),
            200);
  EXPECT_EQ(as_node("PATCH", "/api/v1/nodes/edge-2/status", R"({"status":{"phase":"Running"}})"),
            403);
  EXPECT_EQ(as_node("PATCH", "/api/v1/namespaces/default/pods/mine/status",
                    R"({"status":{"phase":"Running"}})"),
            200);
  EXPECT_EQ(as_node("PATCH", "/api/v1/namespaces/default/pods/theirs/status",
                    R"({"status":{"phase":"Running"}})"),
            403);
  EXPECT_EQ(as_node("DELETE", "/api/v1/namespaces/default/pods/mine", ""), 403);
}

INSTANTIATE_TEST_SUITE_P(Stores, ApiServerTest, ::testing::Values("sqlite", "etcd"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace kedge
