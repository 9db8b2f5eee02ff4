// requireAuthorization end to end: a cloud (cloudhub + apiserver on SQLite,
// gate on) and an edge (edgehub + metamanager + metaserver, gate on), each a
// kernel of its own, over the real mTLS channel; clients call metaserver
// over real HTTPS with service-account tokens the cloud's apiserver issued.
// The matrix: no token, a bad token, an expired token, a token without the
// permission, allowed online, refused offline, and allowed offline from the
// cache under allow_cached_offline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <thread>

#include "kedge/common/http_client.h"
#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Capture;
using testing::Harness;
namespace fs = std::filesystem;
namespace json = boost::json;

class MetaServerAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("kedge-msauth-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "cloud");
    fs::create_directories(root_ / "edge");
    hub_port_ = Harness::free_port();
    boot_port_ = Harness::free_port();
    api_port_ = Harness::free_port();
    ms_port_ = Harness::free_port();
  }
  void TearDown() override {
    edge_.reset();
    cloud_.reset();
    fs::remove_all(root_);
  }

  void start_cloud(bool gate = true) {
    cloud_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"cloud\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"cloudhub\"\n[plugin.config]\naddress = \"127.0.0.1\"\n"
        "port = " +
            std::to_string(hub_port_) + "\nhttps_port = " + std::to_string(boot_port_) +
            "\nkeepalive_interval_s = 1\n[[plugin]]\nname = \"apiserver\"\n[plugin.config]\n"
            "address = \"127.0.0.1\"\nport = " +
            std::to_string(api_port_) + "\nrequire_authorization = " + (gate ? "true" : "false") +
            "\ntoken_min_seconds = 1\n",
        root_ / "cloud");
    ASSERT_TRUE(cloud_->errors().empty()) << cloud_->errors()[0];
    ASSERT_TRUE(cloud_->start());
  }

  void start_edge(bool gate = true, bool offline_cache = false) {
    edge_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"edgehub\"\n[plugin.config]\nserver = \"127.0.0.1:" +
            std::to_string(hub_port_) +
            "\"\nhttp_server = \"127.0.0.1:" + std::to_string(boot_port_) + "\"\ntoken_file = \"" +
            (root_ / "cloud/data/cloudhub/token").string() +
            "\"\nheartbeat_s = 1\nreconnect_min_ms = 50\nreconnect_max_ms = 400\n"
            "[[plugin]]\nname = \"metamanager\"\n[[plugin]]\nname = \"metaserver\"\n"
            "[plugin.config]\nport = " +
            std::to_string(ms_port_) + "\nrequire_authorization = " + (gate ? "true" : "false") +
            "\nauth_cache_ttl_s = 1\nauth_timeout_ms = 2000\nallow_cached_offline = " +
            (offline_cache ? "true" : "false") + "\n",
        root_ / "edge");
    ASSERT_TRUE(edge_->errors().empty()) << edge_->errors()[0];
    ASSERT_TRUE(edge_->start());
    ASSERT_TRUE(Harness::eventually(
        [&] {
          return edge_->metrics_text().find("kedge_edgehub_connected 1\n") != std::string::npos;
        },
        15s));
  }

  // The cloud's API as an administrator (through the apiserver's message API).
  std::pair<int, json::value> api(const std::string& method, const std::string& target,
                                  json::value body = nullptr) {
    auto [s, r] = cloud_->request(
        "apiserver",
        make_message("test", "", "request", "",
                     json::object{{"method", method}, {"target", target}, {"body", body}}),
        10s);
    if (!s || !r) return {0, nullptr};
    auto& o = r->content.as_object();
    return {static_cast<int>(o.at("code").as_int64()), o.at("body")};
  }

  std::string token_for(const std::string& sa, int64_t seconds = 3600) {
    auto [code, body] = api("POST", "/api/v1/namespaces/default/serviceaccounts/" + sa + "/token",
                            json::object{{"apiVersion", "authentication.k8s.io/v1"},
                                         {"kind", "TokenRequest"},
                                         {"spec", json::object{{"expirationSeconds", seconds}}}});
    EXPECT_EQ(code, 201) << json::serialize(body);
    if (code != 201) return {};
    return std::string(body.at("status").at("token").as_string());
  }

  // Accounts: "reader" may get/list/watch pods in default; "nobody" may not.
  void setup_rbac() {
    for (const char* sa : {"reader", "nobody"})
      ASSERT_EQ(api("POST", "/api/v1/namespaces/default/serviceaccounts",
                    json::object{{"apiVersion", "v1"},
                                 {"kind", "ServiceAccount"},
                                 {"metadata", json::object{{"name", sa}}}})
                    .first,
                201);
    ASSERT_EQ(api("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
                  json::parse(R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role",
              "metadata":{"name":"pod-reader"},
              "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get","list","watch"]}]})"))
                  .first,
              201);
    ASSERT_EQ(api("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
                  json::parse(R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding",
              "metadata":{"name":"reader-reads-pods"},
              "subjects":[{"kind":"ServiceAccount","name":"reader","namespace":"default"}],
              "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"pod-reader"}})"))
                  .first,
              201);
  }

  // A pod in the edge's cache, as the cloud would have sent it.
  void cache_pod(const std::string& name) {
    Message m = make_message("edgecontroller", "resource", "insert", "default/pod/" + name,
                             json::object{{"apiVersion", "v1"},
                                          {"kind", "Pod"},
                                          {"metadata", json::object{{"name", name},
                                                                    {"namespace", "default"},
                                                                    {"uid", "uid-" + name},
                                                                    {"resourceVersion", "7"}}}});
    ASSERT_TRUE(edge_->send("metamanager", m));
    ASSERT_TRUE(Harness::eventually([&] {
      return edge_->metrics_text().find("kedge_metamanager_objects 0\n") == std::string::npos;
    }));
  }

  // GET on metaserver over HTTPS, trusting the edge's metaserver CA.
  net::HttpResult get(const std::string& target, const std::string& token) {
    auto ca = pki::read_file((root_ / "edge/data/metaserver/ca.crt").string());
    EXPECT_TRUE(ca.ok());
    auto ctx = net::client_context({ca.value, "", ""}, true);
    EXPECT_TRUE(ctx.status);
    boost::asio::io_context io;
    net::HttpRequest req;
    req.method = "GET";
    req.target = target;
    if (!token.empty()) req.headers["authorization"] = "Bearer " + token;
    net::HttpResult out;
    net::http_request(io.get_executor(), ctx.value, "127.0.0.1", ms_port_, req, 10s, 1 << 20,
                      [&](net::HttpResult r) { out = std::move(r); });
    io.run();
    return out;
  }
  static std::string message_of(const net::HttpResult& r) {
    json::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("message")) return r.body;
    return std::string(v.at("message").as_string());
  }

  fs::path root_;
  uint16_t hub_port_ = 0, boot_port_ = 0, api_port_ = 0, ms_port_ = 0;
  std::unique_ptr<Harness> cloud_, edge_;
};

TEST_F(MetaServerAuth, TokensAreAuthenticatedAndAuthorizedByTheCloud) {
  start_cloud();
  setup_rbac();
  start_edge();
  cache_pod("web");
  std::string reader = token_for("reader"), nobody = token_for("nobody");
  ASSERT_FALSE(reader.empty());

  // No token: 401 without asking anyone; health stays open.
  auto none = get("/api/v1/namespaces/default/pods", "");
  ASSERT_TRUE(none.status) << none.status.message();
  EXPECT_EQ(none.http_status, 401);
  EXPECT_THAT(message_of(none), ::testing::HasSubstr("bearer token is required"));
  EXPECT_EQ(get("/healthz", "").http_status, 200);

  // A bad token and a forged one (valid shape, wrong key): 401.
  auto bad = get("/api/v1/namespaces/default/pods", "not-a-token");
  EXPECT_EQ(bad.http_status, 401);
  EXPECT_THAT(message_of(bad), ::testing::HasSubstr("not a JWT"));
  std::string forged = pki::jwt_hs256_sign("someone-elses-key-someone-elses-key",
                                           R"({"exp":99999999999,"kubernetes.io":{}})");
  EXPECT_EQ(get("/api/v1/namespaces/default/pods", forged).http_status, 401);

  // Allowed: list, get and discovery.
  auto list = get("/api/v1/namespaces/default/pods", reader);
  ASSERT_EQ(list.http_status, 200) << list.body;
  EXPECT_THAT(list.body, ::testing::HasSubstr("\"web\""));
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/web", reader).http_status, 200);
  EXPECT_EQ(get("/api/v1", reader).http_status, 200);

  // Without the permission: 403, with Kubernetes' wording.
  auto denied = get("/api/v1/namespaces/default/pods", nobody);
  EXPECT_EQ(denied.http_status, 403);
  EXPECT_THAT(message_of(denied),
              ::testing::HasSubstr("User \"system:serviceaccount:default:nobody\" cannot list"));
  // The reader's role covers pods only.
  EXPECT_EQ(get("/api/v1/namespaces/default/configmaps", reader).http_status, 403);
  EXPECT_EQ(get("/api/v1/namespaces/other/pods", reader).http_status, 403);

  // A wildcard Role in a namespace grants nothing cluster-scoped, whichever
  // path names the namespace.
  ASSERT_EQ(api("POST", "/api/v1/namespaces/default/serviceaccounts",
                json::object{{"metadata", json::object{{"name", "wild"}}}})
                .first,
            201);
  ASSERT_EQ(api("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
                json::parse(R"({"metadata":{"name":"all"},
                  "rules":[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}]})"))
                .first,
            201);
  ASSERT_EQ(api("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
                json::parse(R"({"metadata":{"name":"wild"},
                  "subjects":[{"kind":"ServiceAccount","name":"wild"}],
                  "roleRef":{"kind":"Role","name":"all"}})"))
                .first,
            201);
  std::string wild = token_for("wild");
  EXPECT_EQ(get("/api/v1/namespaces/default/pods", wild).http_status, 200);
  EXPECT_EQ(get("/api/v1/nodes", wild).http_status, 403);
  EXPECT_EQ(get("/api/v1/namespaces/default/nodes", wild).http_status, 404);
  // Discovery with another method still needs a token.
  EXPECT_EQ(get("/api/v1", "").http_status, 401);

  // A watch of one object allowed by resourceNames sees that object only.
  ASSERT_EQ(api("POST", "/api/v1/namespaces/default/serviceaccounts",
                json::object{{"metadata", json::object{{"name", "one"}}}})
                .first,
            201);
  ASSERT_EQ(api("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
                json::parse(R"({"metadata":{"name":"web-only"},
                  "rules":[{"apiGroups":[""],"resources":["pods"],"resourceNames":["web"],
                            "verbs":["get","watch"]}]})"))
                .first,
            201);
  ASSERT_EQ(api("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
                json::parse(R"({"metadata":{"name":"one"},
                  "subjects":[{"kind":"ServiceAccount","name":"one"}],
                  "roleRef":{"kind":"Role","name":"web-only"}})"))
                .first,
            201);
  std::string one = token_for("one");
  EXPECT_EQ(get("/api/v1/namespaces/default/pods", one).http_status, 403);
  std::thread other([&] {
    std::this_thread::sleep_for(400ms);
    cache_pod("secret-neighbour");
  });
  auto named = get("/api/v1/namespaces/default/pods/web?watch=1&timeoutSeconds=2", one);
  other.join();
  EXPECT_EQ(named.http_status, 200);
  EXPECT_THAT(named.body, ::testing::HasSubstr("\"web\""));
  EXPECT_THAT(named.body, ::testing::Not(::testing::HasSubstr("secret-neighbour")));

  // Expired: a 1 s token, used after it ran out.
  std::string short_lived = token_for("reader", 1);
  EXPECT_EQ(get("/api/v1/namespaces/default/pods", short_lived).http_status, 200);
  std::this_thread::sleep_for(2100ms);
  auto expired = get("/api/v1/namespaces/default/pods", short_lived);
  EXPECT_EQ(expired.http_status, 401);
  EXPECT_THAT(message_of(expired), ::testing::HasSubstr("expired"));

  // A deleted account's token stops working once the cached decision ages out.
  ASSERT_EQ(api("DELETE", "/api/v1/namespaces/default/serviceaccounts/reader").first, 200);
  std::this_thread::sleep_for(1100ms);
  auto gone = get("/api/v1/namespaces/default/pods", reader);
  EXPECT_EQ(gone.http_status, 401);
  EXPECT_THAT(message_of(gone), ::testing::HasSubstr("deleted"));
}

TEST_F(MetaServerAuth, OfflineRequestsAreRefusedByDefault) {
  start_cloud();
  setup_rbac();
  start_edge(true, false);
  cache_pod("web");
  std::string reader = token_for("reader");
  ASSERT_EQ(get("/api/v1/namespaces/default/pods", reader).http_status, 200);
  cloud_.reset();                       // the cloud goes away
  std::this_thread::sleep_for(1100ms);  // the cached decision ages out
  auto off = get("/api/v1/namespaces/default/pods", reader);
  EXPECT_EQ(off.http_status, 403);
  EXPECT_THAT(message_of(off), ::testing::HasSubstr("cloud is unreachable"));
  EXPECT_THAT(message_of(off), ::testing::HasSubstr("allow_cached_offline"));
  EXPECT_EQ(get("/api/v1/namespaces/default/pods", "").http_status, 401);
}

TEST_F(MetaServerAuth, OfflineCachedDecisionsUnderTheOptIn) {
  start_cloud();
  setup_rbac();
  start_edge(true, true);
  cache_pod("web");
  std::string reader = token_for("reader"), nobody = token_for("nobody");
  ASSERT_EQ(get("/api/v1/namespaces/default/pods", reader).http_status, 200);
  ASSERT_EQ(get("/api/v1/namespaces/default/pods", nobody).http_status, 403);
  cloud_.reset();
  std::this_thread::sleep_for(1100ms);
  // What was decided stands: allowed stays allowed, denied stays denied.
  auto cached = get("/api/v1/namespaces/default/pods", reader);
  EXPECT_EQ(cached.http_status, 200) << cached.body;
  EXPECT_THAT(cached.body, ::testing::HasSubstr("\"web\""));
  EXPECT_EQ(get("/api/v1/namespaces/default/pods", nobody).http_status, 403);
  // A request never decided is refused.
  auto fresh = get("/api/v1/namespaces/default/pods/web", reader);
  EXPECT_EQ(fresh.http_status, 403);
  EXPECT_THAT(message_of(fresh), ::testing::HasSubstr("no usable cached decision"));
}

TEST_F(MetaServerAuth, WithTheCloudGateOffAnyBearerTokenIsApproved) {
  start_cloud(false);
  setup_rbac();
  start_edge(true, false);
  cache_pod("web");
  // The cloud does not check: any well-formed bearer token is approved (as
  // KubeEdge's cloud with the gate off). A missing token is still refused
  // by the edge.
  EXPECT_EQ(get("/api/v1/namespaces/default/pods", "anything").http_status, 200);
  EXPECT_EQ(get("/api/v1/namespaces/default/pods", "").http_status, 401);
}

TEST_F(MetaServerAuth, ServiceAccountTokensWorkOnTheCloudApiWithRbac) {
  start_cloud();
  setup_rbac();
  std::string reader = token_for("reader"), nobody = token_for("nobody");
  auto ca = pki::read_file((root_ / "cloud/data/apiserver/ca.crt").string());
  ASSERT_TRUE(ca.ok());
  auto ctx = net::client_context({ca.value, "", ""}, true);
  auto call = [&](const std::string& target, const std::string& token) {
    boost::asio::io_context io;
    net::HttpRequest req;
    req.method = "GET";
    req.target = target;
    req.headers["authorization"] = "Bearer " + token;
    net::HttpResult out;
    net::http_request(io.get_executor(), ctx.value, "127.0.0.1", api_port_, req, 10s, 1 << 20,
                      [&](net::HttpResult r) { out = std::move(r); });
    io.run();
    return out;
  };
  EXPECT_EQ(call("/api/v1/namespaces/default/pods", reader).http_status, 200);
  EXPECT_EQ(call("/api/v1/namespaces/default/pods", nobody).http_status, 403);
  EXPECT_EQ(call("/api/v1/namespaces/default/secrets", reader).http_status, 403);
  EXPECT_EQ(call("/api/v1/namespaces/default/pods", "garbage").http_status, 401);
  // Token requests are bounded, and only for accounts that exist.
  EXPECT_EQ(api("POST", "/api/v1/namespaces/default/serviceaccounts/none/token",
                json::object{{"spec", json::object{}}})
                .first,
            404);
  EXPECT_EQ(api("POST", "/api/v1/namespaces/default/serviceaccounts/reader/token",
                json::object{{"spec", json::object{{"expirationSeconds", 999999999}}}})
                .first,
            422);
}

}  // namespace
}  // namespace kedge
