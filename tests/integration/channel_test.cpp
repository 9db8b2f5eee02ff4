// cloudhub and edgehub, each in a kernel of its own (two harnesses in one
// process), over real mutual TLS on loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "kedge/common/http_client.h"
#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "kedge/common/sqlite.h"
#include "kedge/json_codec.h"
#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Capture;
using testing::Harness;
namespace fs = std::filesystem;
namespace net = kedge::net;
namespace pki = kedge::pki;

class Channel : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("kedge-channel-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "cloud");
    fs::create_directories(root_ / "edge");
    port_ = Harness::free_port();
    https_port_ = Harness::free_port();
  }
  void TearDown() override {
    edge_.reset();
    cloud_.reset();
    fs::remove_all(root_);
  }

  void start_cloud(const std::string& extra = "") {
    cloud_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"cloud\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"cloudhub\"\n[plugin.config]\naddress = \"127.0.0.1\"\n"
        "port = " +
            std::to_string(port_) + "\nhttps_port = " + std::to_string(https_port_) +
            "\nack_timeout_ms = 300\nkeepalive_interval_s = 2\n" + extra,
        root_ / "cloud");
    ASSERT_TRUE(cloud_->errors().empty()) << cloud_->errors()[0];
    controller_ = &cloud_->capture("edgecontroller");
    ASSERT_TRUE(cloud_->start());
  }

  void start_edge(const std::string& token_line = "") {
    std::string token =
        token_line.empty()
            ? "token_file = \"" + (root_ / "cloud/data/cloudhub/token").string() + "\"\n"
            : token_line;
    edge_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"edgehub\"\n[plugin.config]\nserver = \"127.0.0.1:" +
            std::to_string(port_) + "\"\nhttp_server = \"127.0.0.1:" + std::to_string(https_port_) +
            "\"\n" + token +
            "heartbeat_s = 1\nreconnect_min_ms = 50\nreconnect_max_ms = 400\n"
            "ack_timeout_ms = 300\nmessage_qps = 1000\nmessage_burst = 1000\n",
        root_ / "edge");
    ASSERT_TRUE(edge_->errors().empty()) << edge_->errors()[0];
    meta_ = &edge_->capture("metamanager", "meta");
    ASSERT_TRUE(edge_->start());
  }

  bool edge_connected() {
    return meta_->wait_for(
               [](const Message& m) {
                 return m.route.operation == "connect" &&
                        m.content == boost::json::value("cloud_connected");
               },
               10s) != nullptr;
  }

  // A pod as edgecontroller sends it to cloudhub.
  static Message pod(const std::string& op, const std::string& rv,
                     const std::string& uid = "uid-1") {
    boost::json::object body{
        {"metadata",
         boost::json::object{
             {"name", "nginx"}, {"namespace", "default"}, {"uid", uid}, {"resourceVersion", rv}}}};
    Message m =
        make_message("edgecontroller", "resource", op, "node/edge-1/default/pod/nginx", body);
    m.header.resource_version = rv;
    return m;
  }

  // What metamanager does: persist (here: nothing), then ACK through edgehub.
  void ack(const MessagePtr& m) { ASSERT_TRUE(edge_->send("edgehub", new_response(*m, "OK"))); }

  static bool metric(Harness& h, const std::string& line) {
    return Harness::eventually(
        [&] { return h.metrics_text().find(line + "\n") != std::string::npos; }, 10s);
  }

  fs::path root_;
  uint16_t port_ = 0, https_port_ = 0;
  std::unique_ptr<Harness> cloud_, edge_;
  Capture* controller_ = nullptr;
  Capture* meta_ = nullptr;
};

TEST_F(Channel, JoinsWithATokenConnectsWithMutualTlsAndExchangesMessages) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(edge_connected());
  EXPECT_TRUE(fs::exists(root_ / "edge/data/edgehub/edge.crt"));
  auto connected =
      controller_->wait_for([](const Message& m) { return m.route.operation == "connected"; });
  ASSERT_TRUE(connected);
  EXPECT_EQ(connected->route.resource, "node/edge-1");
  EXPECT_EQ(connected->content.at("client_id").as_string(), "edge-1");

  // Cloud -> edge: trimmed resource, ACKed after "persisting".
  ASSERT_TRUE(cloud_->send("cloudhub", pod("insert", "5")));
  auto got = meta_->wait_for([](const Message& m) { return m.route.operation == "insert"; });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->route.resource, "default/pod/nginx");
  EXPECT_EQ(got->route.group, "resource");
  EXPECT_EQ(got->header.resource_version, "5");
  ack(got);
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_acked_total 1"));
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_pending_messages 0"));

  // Edge -> cloud: prefixed with the node, ACKed, gone from the outbox.
  Message patch = make_message("edged", "resource", "patch", "default/podpatch/nginx",
                               boost::json::string(R"({"status":{"phase":"Running"}})"));
  ASSERT_TRUE(edge_->send("edgehub", patch));
  auto up = controller_->wait_for([](const Message& m) { return m.route.operation == "patch"; });
  ASSERT_TRUE(up);
  EXPECT_EQ(up->route.resource, "node/edge-1/default/podpatch/nginx");
  EXPECT_EQ(up->header.id, patch.header.id);
  EXPECT_TRUE(metric(*edge_, "kedge_edgehub_outbox 0"));
}

TEST_F(Channel, ARedeliveredVersionIsAckedButNotAppliedTwice) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(edge_connected());
  ASSERT_TRUE(cloud_->send("cloudhub", pod("update", "7")));
  auto first = meta_->wait_for([](const Message& m) { return m.route.operation == "update"; });
  ASSERT_TRUE(first);
  ack(first);
  ASSERT_TRUE(metric(*cloud_, "kedge_cloudhub_acked_total 1"));
  ASSERT_TRUE(cloud_->send("cloudhub", pod("update", "7")));  // the same version again
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_acked_total 2"));
  EXPECT_TRUE(metric(*edge_, "kedge_edgehub_duplicates_total 1"));
  EXPECT_EQ(meta_->wait_for([](const Message& m) { return m.route.operation == "update"; }, 300ms),
            nullptr);
}

TEST_F(Channel, UnackedMessagesAreResent) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(edge_connected());
  ASSERT_TRUE(cloud_->send("cloudhub", pod("insert", "3")));
  auto first = meta_->wait_for([](const Message& m) { return m.route.operation == "insert"; });
  ASSERT_TRUE(first);
  // Not ACKed yet: the cloud sends it again (ack_timeout_ms 300); edgehub
  // sees the delivery still waiting for its local ACK and does not deliver
  // it twice.
  EXPECT_TRUE(Harness::eventually(
      [&] {
        return cloud_->metrics_text().find("kedge_cloudhub_resent_total 0\n") == std::string::npos;
      },
      10s));
  EXPECT_TRUE(Harness::eventually(
      [&] {
        return edge_->metrics_text().find("kedge_edgehub_duplicates_total 0\n") ==
               std::string::npos;
      },
      10s));
  EXPECT_EQ(meta_->wait_for([](const Message& m) { return m.route.operation == "insert"; }, 200ms),
            nullptr);
  ack(first);  // the one ACK answers them all
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_pending_messages 0"));
}

TEST_F(Channel, QueuedOlderVersionsAreReplacedAndSurviveACloudRestart) {
  start_cloud();
  // The node has never connected: three versions of one pod queue up.
  for (auto rv : {"1", "2", "3"}) ASSERT_TRUE(cloud_->send("cloudhub", pod("update", rv)));
  ASSERT_TRUE(cloud_->send("cloudhub", pod("update", "2")));  // late and stale
  ASSERT_TRUE(metric(*cloud_, "kedge_cloudhub_pending_messages 1"));
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_replaced_total 2"));
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_stale_total 1"));
  cloud_.reset();  // the cloud restarts; the queue is on disk
  start_cloud();
  ASSERT_TRUE(metric(*cloud_, "kedge_cloudhub_pending_messages 1"));
  start_edge();
  auto got = meta_->wait_for([](const Message& m) { return m.route.operation == "update"; });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->header.resource_version, "3");
  ack(got);
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_pending_messages 0"));
}

// Upgrading from a release whose queues had tables of their own
// (cloudhub's `downstream`, edgehub's `outbox`): what they held when the old
// binaries stopped is migrated and delivered, not silently dropped.
TEST_F(Channel, AnUpgradeDeliversWhatTheOldQueuesHeld) {
  auto old_db = [](const fs::path& file, const char* component,
                   const std::vector<std::string>& steps) {
    fs::create_directories(file.parent_path());
    auto db = sqlite::Db::open(file.string());
    EXPECT_TRUE(db.status) << db.status.message();
    EXPECT_TRUE(db.value->migrate(component, steps));
    return std::move(db.value);
  };
  Message down = pod("update", "7");
  {
    auto db = old_db(root_ / "cloud/data/cloudhub/cloudhub.db", "cloudhub",
                     {"CREATE TABLE downstream ("
                      "  node TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, msg_id TEXT "
                      "NOT NULL, rv TEXT NOT NULL, is_delete INTEGER NOT NULL, body TEXT NOT NULL,"
                      "  PRIMARY KEY (node, key));"
                      "CREATE INDEX downstream_order ON downstream(node, seq);",
                      "CREATE TABLE resync (node TEXT PRIMARY KEY, since INTEGER NOT NULL);"});
    auto st = db->prepare("INSERT INTO downstream VALUES('edge-1', 'uid:uid-1', 3, ?, '7', 0, ?)");
    ASSERT_TRUE(st.status);
    st.value.bind(1, down.header.id).bind(2, codec::encode(down) + "\n");
    ASSERT_TRUE(st.value.run());
  }
  Message up =
      make_message("edged", "resource", "patch", "default/podpatch/old", boost::json::string("{}"));
  {
    auto db = old_db(root_ / "edge/data/edgehub/edgehub.db", "edgehub",
                     {"CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT "
                      "NULL UNIQUE,  sync INTEGER NOT NULL, body TEXT NOT NULL);"
                      "CREATE TABLE applied (key TEXT PRIMARY KEY, rv TEXT NOT NULL);"});
    auto st = db->prepare("INSERT INTO outbox(msg_id, sync, body) VALUES(?, 0, ?)");
    ASSERT_TRUE(st.status);
    st.value.bind(1, up.header.id).bind(2, codec::encode(up) + "\n");
    ASSERT_TRUE(st.value.run());
  }
  start_cloud();
  ASSERT_TRUE(metric(*cloud_, "kedge_cloudhub_pending_messages 1"));
  start_edge();
  auto got = meta_->wait_for([](const Message& m) { return m.route.operation == "update"; });
  ASSERT_TRUE(got) << "the queued pod update did not survive the upgrade";
  EXPECT_EQ(got->header.id, down.header.id);
  EXPECT_EQ(got->header.resource_version, "7");
  ack(got);
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_pending_messages 0"));
  auto patch = controller_->wait_for([](const Message& m) { return m.route.operation == "patch"; });
  ASSERT_TRUE(patch) << "the outbox's report did not survive the upgrade";
  EXPECT_EQ(patch->header.id, up.header.id);
  EXPECT_EQ(patch->route.resource, "node/edge-1/default/podpatch/old");
  EXPECT_TRUE(metric(*edge_, "kedge_edgehub_outbox 0"));
}

TEST_F(Channel, AnOverflowingQueueMarksTheNodeForAFullResyncThatSurvivesARestart) {
  start_cloud("max_pending_per_node = 4\n");
  auto named = [](int i) {
    Message m = pod("insert", std::to_string(10 + i), "uid-" + std::to_string(i));
    m.route.resource = "node/edge-1/default/pod/p" + std::to_string(i);
    return m;
  };
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(cloud_->send("cloudhub", named(i)));
  ASSERT_TRUE(metric(*cloud_, "kedge_cloudhub_overflow_total 2"));
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_pending_messages 4"));
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_nodes_awaiting_resync 1"));
  // A newer version of a queued object still replaces it: no overflow.
  ASSERT_TRUE(cloud_->send("cloudhub", [&] {
    Message m = named(0);
    m.header.resource_version = "99";
    return m;
  }()));
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_replaced_total 1"));
  cloud_.reset();  // the mark is on disk with the queue
  start_cloud("max_pending_per_node = 4\n");
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_nodes_awaiting_resync 1"));
  start_edge();
  ASSERT_TRUE(edge_connected());
  // The queue drains as the edge ACKs; at half full the controllers are asked.
  for (int got = 0; got < 4; ++got) {
    auto m = meta_->wait_for([](const Message& x) { return x.route.operation == "insert"; });
    ASSERT_TRUE(m) << "delivery " << got;
    ack(m);
  }
  auto resync =
      controller_->wait_for([](const Message& m) { return m.route.operation == "resync"; });
  ASSERT_TRUE(resync);
  EXPECT_EQ(resync->route.resource, "node/edge-1");
  EXPECT_EQ(resync->content.at("node").as_string(), "edge-1");
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_nodes_awaiting_resync 0"));
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_resyncs_total 1"));
  // Asked once only, also after another restart.
  cloud_.reset();
  start_cloud("max_pending_per_node = 4\n");
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_nodes_awaiting_resync 0"));
  EXPECT_EQ(
      controller_->wait_for([](const Message& m) { return m.route.operation == "resync"; }, 1s),
      nullptr);
}

TEST_F(Channel, ReportsMadeWhileTheCloudIsDownArriveLater) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(edge_connected());
  cloud_.reset();
  ASSERT_TRUE(meta_->wait_for(
      [](const Message& m) {
        return m.route.operation == "connect" &&
               m.content == boost::json::value("cloud_disconnected");
      },
      10s));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(edge_->send("edgehub", make_message("edged", "resource", "patch",
                                                    "default/podpatch/p" + std::to_string(i),
                                                    boost::json::string("{}"))));
  ASSERT_TRUE(metric(*edge_, "kedge_edgehub_outbox 3"));
  start_cloud();
  ASSERT_TRUE(controller_->wait_count(4, 15s));  // connected + 3 patches
  std::vector<std::string> resources;
  for (auto& m : controller_->messages())
    if (m->route.operation == "patch") resources.push_back(m->route.resource);
  EXPECT_EQ(resources, (std::vector<std::string>{"node/edge-1/default/podpatch/p0",
                                                 "node/edge-1/default/podpatch/p1",
                                                 "node/edge-1/default/podpatch/p2"}));
  EXPECT_TRUE(metric(*edge_, "kedge_edgehub_outbox 0"));
}

TEST_F(Channel, OfflineStatusReportsKeepOnlyTheNewestPerObject) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(edge_connected());
  cloud_.reset();
  ASSERT_TRUE(meta_->wait_for(
      [](const Message& m) {
        return m.route.operation == "connect" &&
               m.content == boost::json::value("cloud_disconnected");
      },
      10s));
  // 50 node statuses and 50 statuses of each of two pods, and one other
  // report: the outbox keeps the newest status of each object, and the rest.
  for (int i = 0; i < 50; ++i) {
    std::string n = std::to_string(i);
    ASSERT_TRUE(edge_->send("edgehub",
                            make_message("edged", "resource", "patch", "default/nodepatch/edge-1",
                                         boost::json::string("{\"n\":" + n + "}")),
                            1s));
    for (const char* pod : {"a", "b"})
      ASSERT_TRUE(edge_->send(
          "edgehub",
          make_message("edged", "resource", "patch", std::string("default/podpatch/") + pod,
                       boost::json::string("{\"n\":" + n + "}")),
          1s));
  }
  ASSERT_TRUE(edge_->send("edgehub", make_message("edged", "resource", "delete", "default/pod/gone",
                                                  boost::json::string("{}"))));
  ASSERT_TRUE(metric(*edge_, "kedge_edgehub_outbox 4"));
  // A restart of the edge keeps it so.
  edge_.reset();
  start_edge();
  start_cloud();
  ASSERT_TRUE(controller_->wait_count(5, 15s));  // connected + 4
  std::this_thread::sleep_for(300ms);
  std::map<std::string, std::string> last;
  int patches = 0;
  for (auto& m : controller_->messages())
    if (m->route.operation == "patch") {
      ++patches;
      last[m->route.resource] = std::string(m->content.as_string());
    }
  EXPECT_EQ(patches, 3);
  EXPECT_EQ(last["node/edge-1/default/nodepatch/edge-1"], "{\"n\":49}");
  EXPECT_EQ(last["node/edge-1/default/podpatch/a"], "{\"n\":49}");
  EXPECT_EQ(last["node/edge-1/default/podpatch/b"], "{\"n\":49}");
  EXPECT_TRUE(metric(*edge_, "kedge_edgehub_outbox 0"));
}

TEST_F(Channel, AWrongJoinTokenIsRefused) {
  start_cloud();
  start_edge("token = \"" + std::string(64, 'a') + ".eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln\"\n");
  ASSERT_TRUE(Harness::eventually(
      [&] {
        return edge_->metrics_text().find("kedge_edgehub_connect_failures_total 0") ==
               std::string::npos;
      },
      10s));
  EXPECT_FALSE(fs::exists(root_ / "edge/data/edgehub/edge.crt"));
  EXPECT_THAT(edge_->metrics_text(), ::testing::HasSubstr("kedge_edgehub_connected 0"));
}

// KubeEdge 1.12-1.16 edges send CSRs for CN kubeedge.io and name the node in
// the NodeName header: the token vouches for that node, and the certificate
// issued names it, so the channel is bound to it. Any other foreign CN is
// refused, saying what was expected.
TEST_F(Channel, AStockEdgesKubeedgeIoCsrGetsACertificateForItsNode) {
  start_cloud();
  std::ifstream in(root_ / "cloud/data/cloudhub/token");
  std::string token;
  std::getline(in, token);
  ASSERT_GT(token.size(), 65u);
  auto ctx = net::client_context({}, /*verify=*/false);
  ASSERT_TRUE(ctx.status) << ctx.status.message();
  auto key = pki::generate_key();
  auto ask = [&](const std::string& cn) {
    auto csr = pki::make_csr(key.get(), {cn, ""});
    EXPECT_TRUE(csr.status);
    net::HttpRequest r;
    r.method = "GET";
    r.target = "/edge.crt";
    r.headers = {{"NodeName", "stock-7"}, {"Authorization", "Bearer " + token.substr(65)}};
    r.body = pki::csr_der(csr.value.get());
    return net::http_request_sync(ctx.value, "127.0.0.1", https_port_, r, 5s);
  };
  auto ok = ask("kubeedge.io");
  ASSERT_TRUE(ok.status) << ok.status.message();
  ASSERT_EQ(ok.http_status, 200) << ok.body;
  auto cert = pki::cert_from_der(ok.body);
  ASSERT_TRUE(cert.status) << cert.status.message();
  EXPECT_EQ(pki::common_name(cert.value.get()), "system:node:stock-7");
  auto refused = ask("someone-else");
  ASSERT_TRUE(refused.status) << refused.status.message();
  EXPECT_EQ(refused.http_status, 403);
  EXPECT_THAT(refused.body, ::testing::HasSubstr("CSR is for 'someone-else', expected "
                                                 "'system:node:stock-7' (or 'kubeedge.io'"));
}

TEST_F(Channel, AnExpiredOrForgedJwtIsRefusedByTheCloud) {
  start_cloud();
  // The right CA hash with a JWT signed by someone else.
  std::ifstream in(root_ / "cloud/data/cloudhub/token");
  std::string token;
  std::getline(in, token);
  std::string forged =
      token.substr(0, 65) + "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjk5OTk5OTk5OTl9.bm9wZQ";
  start_edge("token = \"" + forged + "\"\n");
  ASSERT_TRUE(Harness::eventually(
      [&] {
        return edge_->metrics_text().find("kedge_edgehub_connect_failures_total 0") ==
               std::string::npos;
      },
      10s));
  EXPECT_FALSE(fs::exists(root_ / "edge/data/edgehub/edge.crt"));
}

// A sync request from the edge is answered by the controller, not by the
// channel's ACK; and the edge's answer to a cloud request reaches the cloud.
TEST_F(Channel, SyncRequestsGetTheControllersAnswer) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(edge_connected());
  std::thread controller([&] {
    auto q =
        controller_->wait_for([](const Message& m) { return m.route.operation == "query"; }, 10s);
    if (q) (void)cloud_->send("cloudhub", new_response(*q, "the-answer"));
  });
  Message req = make_message("metamanager", "resource", "query", "default/configmap/c");
  req.header.sync = true;
  auto [s, resp] = edge_->request("edgehub", std::move(req), 10s);
  controller.join();
  ASSERT_TRUE(s) << s.to_string();
  EXPECT_EQ(resp->content.as_string(), "the-answer");
  EXPECT_TRUE(metric(*edge_, "kedge_edgehub_outbox 0"));
}

// A node that misbehaves gets a clear refusal or is disconnected, and the
// cloud keeps serving the others.
TEST_F(Channel, BadInputFromOneNodeDoesNotDisturbTheOthers) {
  start_cloud();
  start_edge();
  ASSERT_TRUE(edge_connected());
  // A certificate for node "rogue", signed by the cloud's CA.
  auto ca =
      pki::cert_from_pem(pki::read_file((root_ / "cloud/data/cloudhub/ca.crt").string()).value);
  auto ca_key =
      pki::key_from_pem(pki::read_file((root_ / "cloud/data/cloudhub/ca.key").string()).value);
  pki::Key k = pki::generate_key();
  pki::SignOptions o;
  auto cert = pki::issue(ca.value.get(), ca_key.value.get(), k.get(), {"system:node:rogue", ""}, o);
  net::TlsMaterial m{pki::cert_pem(ca.value.get()), pki::cert_pem(cert.value.get()),
                     pki::key_pem(k.get())};
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  auto ex = boost::asio::make_strand(io);
  auto dial = [&](const std::string& node) {
    std::promise<std::pair<Status, net::WsPtr>> p;
    net::ws_connect(ex, net::client_context(m).value, "127.0.0.1", port_, "/p/" + node + "/events",
                    {{"node_id", node}}, {}, [&](Status st, net::WsPtr c) {
                      p.set_value({st, c});
                    });
    return p.get_future().get();
  };
  // Claiming another node's identity: refused at the upgrade.
  auto [s1, c1] = dial("edge-1");
  EXPECT_FALSE(s1);
  // As itself: garbage, an unknown group, then an oversized frame.
  auto [s2, c2] = dial("rogue");
  ASSERT_TRUE(s2) << s2.message();
  std::promise<Status> closed;
  boost::asio::post(ex, [&, c = c2] {
    c->start([](std::string&&) {}, [&](const Status& why) { closed.set_value(why); });
    (void)c->send("this is not json");
    (void)c->send(codec::encode(make_message("x", "nosuchgroup", "frobnicate", "a/b")) + "\n");
    (void)c->send(std::string(9 << 20, 'x'));
  });
  auto fut = closed.get_future();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_bad_frames_total 1"));
  // edge-1 was never disturbed.
  ASSERT_TRUE(cloud_->send("cloudhub", pod("insert", "9")));
  auto got = meta_->wait_for([](const Message& msg) { return msg.route.operation == "insert"; });
  ASSERT_TRUE(got);
  ack(got);
  EXPECT_TRUE(metric(*cloud_, "kedge_cloudhub_acked_total 1"));
  EXPECT_THAT(edge_->metrics_text(), ::testing::HasSubstr("kedge_edgehub_connects_total 1\n"));
  work.reset();
  io.stop();
  t.join();
}

}  // namespace
}  // namespace kedge
