// metamanager in a kernel, with captures standing in for edgehub and edged:
// persisted before the ACK (in KubeEdge's meta table), queries from the
// cache, pod deletes guarded by UID, remote queries while connected, and
// the cache after a restart with no cloud.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json.hpp>
#include <filesystem>

#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Capture;
using testing::Harness;
namespace fs = std::filesystem;
namespace json = boost::json;

class MetaManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("kedge-meta-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    start();
  }
  void TearDown() override {
    h_.reset();
    fs::remove_all(root_);
  }
  void start() {
    h_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"metamanager\"\n",
        root_);
    ASSERT_TRUE(h_->errors().empty()) << h_->errors()[0];
    hub_ = &h_->capture("edgehub");
    edged_ = &h_->capture("edged");
    ASSERT_TRUE(h_->start());
  }

  static Message from_cloud(const std::string& op, const std::string& resource, json::value content,
                            const std::string& rv = "1") {
    Message m = make_message("edgecontroller", "resource", op, resource, std::move(content));
    m.header.resource_version = rv;
    return m;
  }
  static json::object pod(const std::string& uid, const std::string& phase = "") {
    json::object p{
        {"metadata", json::object{{"name", "web"}, {"namespace", "default"}, {"uid", uid}}}};
    if (!phase.empty()) p["status"] = json::object{{"phase", phase}};
    return p;
  }
  // Rows of the meta table, read with sqlite3 directly.
  std::vector<std::string> rows(const std::string& where = "1") {
    sqlite3* db = nullptr;
    std::vector<std::string> out;
    if (sqlite3_open_v2((root_ / "data/edgecore.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) !=
        SQLITE_OK)
      return out;
    sqlite3_stmt* st = nullptr;
    std::string sql = "SELECT key, type FROM meta WHERE " + where + " ORDER BY key";
    sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
    while (st && sqlite3_step(st) == SQLITE_ROW)
      out.push_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) + " " +
                    reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }
  json::array ask(const std::string& resource) {
    auto [s, r] = h_->request("metamanager", make_message("edged", "meta", "query", resource), 5s);
    EXPECT_TRUE(s) << s.message();
    if (!r || !r->content.is_array()) return {};
    return r->content.as_array();
  }

  fs::path root_;
  std::unique_ptr<Harness> h_;
  Capture* hub_ = nullptr;
  Capture* edged_ = nullptr;
};

TEST_F(MetaManagerTest, StoresInKubeEdgesMetaTableBeforeTheAck) {
  Message m = from_cloud("insert", "default/pod/web", pod("u1"));
  ASSERT_TRUE(h_->send("metamanager", m));
  auto ack = hub_->wait_for([](const Message& x) { return x.is_response(); });
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->header.parent_id, m.header.id);
  EXPECT_EQ(ack->content, json::value("OK"));
  // When the ACK is out, the row is committed (read by another connection).
  EXPECT_THAT(rows(), ::testing::ElementsAre("default/pod/web pod"));
  // The table is KubeEdge 1.12's.
  sqlite3* db = nullptr;
  sqlite3_open((root_ / "data/edgecore.db").c_str(), &db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE name = 'meta'", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_THAT(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
              ::testing::HasSubstr("`key` varchar(256) NOT NULL PRIMARY KEY, `type` varchar(32) "
                                   "NOT NULL DEFAULT '', `value` text"));
  sqlite3_finalize(st);
  sqlite3_close(db);
  // And edged got it.
  auto handed = edged_->wait_for([](const Message& x) { return x.route.operation == "insert"; });
  ASSERT_TRUE(handed);
  EXPECT_EQ(handed->route.resource, "default/pod/web");
}

TEST_F(MetaManagerTest, AKubeEdge112CloudsV1alpha2DeviceIsStoredAndHandedOnAsV1beta1) {
  // As a 1.12 CloudCore's devicecontroller sends it.
  Message m = from_cloud("insert", "default/device/thermo", json::parse(R"({
    "apiVersion": "devices.kubeedge.io/v1alpha2", "kind": "Device",
    "metadata": {"name": "thermo", "namespace": "default"},
    "spec": {"deviceModelRef": {"name": "thermo-model"},
             "nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
                 {"key": "", "operator": "In", "values": ["edge-1"]}]}]},
             "protocol": {"modbus": {"slaveID": 1},
                          "common": {"tcp": {"ip": "127.0.0.1", "port": 1502}}},
             "propertyVisitors": [{"propertyName": "setpoint", "collectCycle": 1000,
                                   "modbus": {"register": "HoldingRegister", "offset": 1}}]},
    "status": {"twins": [{"propertyName": "setpoint", "desired": {"value": "21"}}]}})"));
  m.route.source = "devicecontroller";
  auto& twin = h_->capture("twin");
  ASSERT_TRUE(h_->send("metamanager", m));
  auto handed = twin.wait_for([](const Message& x) { return x.route.operation == "insert"; });
  ASSERT_TRUE(handed);
  EXPECT_EQ(handed->content.at("apiVersion"), "devices.kubeedge.io/v1beta1");
  EXPECT_EQ(handed->content.at("spec").at("nodeName"), "edge-1");
  EXPECT_EQ(handed->content.at("spec").at("protocol").at("configData").at("port"), 1502);
  auto& prop = handed->content.at("spec").at("properties").at(0);
  EXPECT_EQ(prop.at("desired").at("value"), "21");
  EXPECT_EQ(prop.at("visitors").at("configData").at("register"), "HoldingRegister");
  // stored (and so served by metaserver) in the same shape
  auto stored = ask("default/device/thermo");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(json::parse(stored[0].as_string()).at("apiVersion"), "devices.kubeedge.io/v1beta1");
}

TEST_F(MetaManagerTest, QueriesAnswerFromTheCacheByKeyAndByType) {
  ASSERT_TRUE(h_->send("metamanager", from_cloud("insert", "default/pod/web", pod("u1"))));
  ASSERT_TRUE(h_->send("metamanager", from_cloud("insert", "default/pod/db", pod("u2"))));
  ASSERT_TRUE(h_->send("metamanager", from_cloud("insert", "other/pod/x", pod("u3"))));
  ASSERT_TRUE(hub_->wait_count(3));
  auto one = ask("default/pod/web");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(json::parse(one[0].as_string()).at("metadata").at("uid").as_string(), "u1");
  EXPECT_EQ(ask("default/pod").size(), 2u);  // by type, in the namespace
  EXPECT_TRUE(ask("default/pod/none").empty());
}

TEST_F(MetaManagerTest, APodDeleteNeedsTheStoredUidAndTakesItsStatusAlong) {
  ASSERT_TRUE(h_->send("metamanager", from_cloud("insert", "default/pod/web", pod("u1"))));
  ASSERT_TRUE(h_->send("metamanager", make_message("edged", "meta", "update",
                                                   "default/podstatus/web", json::object{})));
  ASSERT_TRUE(Harness::eventually([&] { return rows().size() == 2; }));
  ASSERT_TRUE(h_->send("metamanager", from_cloud("delete", "default/pod/web", pod("u-other"))));
  ASSERT_TRUE(hub_->wait_for([](const Message& x) {
    return x.is_response() && x.route.operation == "response" &&
           x.route.resource == "default/pod/web";
  }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(rows("type = 'pod'").size(), 1u);  // another pod's UID: kept
  ASSERT_TRUE(h_->send("metamanager", from_cloud("delete", "default/pod/web", pod("u1"))));
  EXPECT_TRUE(Harness::eventually([&] { return rows().empty(); }));
}

TEST_F(MetaManagerTest, WhileConnectedConfigmapQueriesGoToTheCloudAndAreCached) {
  hub_->set_responder([](const Message& q) -> std::optional<Message> {
    if (q.route.operation != "query") return std::nullopt;
    return new_response(q, json::object{{"metadata", json::object{{"name", "cm"}}},
                                        {"data", json::object{{"k", "from-cloud"}}}});
  });
  ASSERT_TRUE(h_->send("metamanager", make_message("edgehub", "meta", "connect", "node/connection",
                                                   json::string("cloud_connected"))));
  std::this_thread::sleep_for(50ms);
  auto got = ask("default/configmap/cm");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].as_string()).at("data").at("k").as_string(), "from-cloud");
  EXPECT_TRUE(Harness::eventually([&] { return rows().size() == 1; }));
  // Offline: the cached copy answers.
  ASSERT_TRUE(h_->send("metamanager", make_message("edgehub", "meta", "connect", "node/connection",
                                                   json::string("cloud_disconnected"))));
  hub_->set_responder([](const Message&) -> std::optional<Message> { return std::nullopt; });
  std::this_thread::sleep_for(50ms);
  auto cached = ask("default/configmap/cm");
  ASSERT_EQ(cached.size(), 1u);
  EXPECT_EQ(json::parse(cached[0].as_string()).at("data").at("k").as_string(), "from-cloud");
}

TEST_F(MetaManagerTest, AfterARestartWithNoCloudEverythingIsStillThere) {
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(h_->send("metamanager",
                         from_cloud("update", "default/pod/p" + std::to_string(i), pod("u"))));
  ASSERT_TRUE(hub_->wait_count(20));
  h_.reset();  // the edge restarts; nobody is connected
  start();
  EXPECT_EQ(ask("default/pod").size(), 20u);
  EXPECT_TRUE(Harness::eventually([&] {
    return h_->metrics_text().find("kedge_metamanager_objects 20\n") != std::string::npos;
  }));
}

}  // namespace
}  // namespace kedge
