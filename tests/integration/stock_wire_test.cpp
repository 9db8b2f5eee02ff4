// The cloud as a stock KubeEdge 1.12 edge sees it: a WebSocket client that
// speaks as EdgeCore's metamanager and kubelet do (group meta, source
// edged, no kedge-acks header), against cloudhub, apiserver and
// edgecontroller in one kernel. It must get CloudCore's answers: no ACKs,
// replies routed as CloudCore's upstream controller routes them, objects
// with apiVersion and kind, errors as a Kubernetes StatusError, and the same
// answer again for a request it sends again with the same id.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json.hpp>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "kedge/json_codec.h"
#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Harness;
namespace fs = std::filesystem;
namespace net = kedge::net;
namespace pki = kedge::pki;
namespace bj = boost::json;

class StockWire : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("kedge-stockwire-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    uint16_t hub = Harness::free_port(), https = Harness::free_port(), api = Harness::free_port();
    port_ = hub;
    cloud_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"cloud\"\nlog_level = \"warn\"\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"cloudhub\"\n[plugin.config]\naddress = \"127.0.0.1\"\nport = " +
            std::to_string(hub) + "\nhttps_port = " + std::to_string(https) +
            "\n[[plugin]]\nname = \"apiserver\"\n[plugin.config]\naddress = \"127.0.0.1\"\nport "
            "= " +
            std::to_string(api) +
            "\n[[plugin]]\nname = \"edgecontroller\"\n[[plugin]]\nname = "
            "\"devicecontroller\"\n",
        root_);
    ASSERT_TRUE(cloud_->errors().empty()) << cloud_->errors()[0];
    ASSERT_TRUE(cloud_->start());
    thread_ = std::thread([this] { io_.run(); });
    connect("stock-9");
  }
  void TearDown() override {
    if (conn_) boost::asio::post(ex_, [c = conn_] { c->close({Code::kUnavailable, "done"}); });
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    conn_.reset();
    cloud_.reset();
    fs::remove_all(root_);
  }

  // As a stock edge: a certificate for system:node:<node> from the cloud's
  // CA (as its bootstrap gives), and KubeEdge's headers only.
  void connect(const std::string& node) {
    auto ca = pki::cert_from_pem(pki::read_file((root_ / "data/cloudhub/ca.crt").string()).value);
    auto ca_key =
        pki::key_from_pem(pki::read_file((root_ / "data/cloudhub/ca.key").string()).value);
    pki::Key k = pki::generate_key();
    auto cert =
        pki::issue(ca.value.get(), ca_key.value.get(), k.get(), {"system:node:" + node, ""}, {});
    net::TlsMaterial m{pki::cert_pem(ca.value.get()), pki::cert_pem(cert.value.get()),
                       pki::key_pem(k.get())};
    std::promise<std::pair<Status, net::WsPtr>> p;
    net::ws_connect(ex_, net::client_context(m).value, "127.0.0.1", port_,
                    "/e632aba927ea4ac2b575ec1603d56f10/" + node + "/events",
                    {{"node_id", node}, {"project_id", "e632aba927ea4ac2b575ec1603d56f10"}}, {},
                    [&](Status st, net::WsPtr c) {
                      p.set_value({st, c});
                    });
    auto [s, c] = p.get_future().get();
    ASSERT_TRUE(s) << s.message();
    conn_ = c;
    boost::asio::post(ex_, [this, c] {
      c->start(
          [this](std::string&& text) {
            auto d = codec::decode(text);
            if (!d.status) return;
            std::lock_guard lk(mu_);
            got_.push_back(d.value);
            cv_.notify_all();
          },
          [](const Status&) {});
    });
  }

  // What metamanager sends for the kubelet: group meta, source edged.
  Message send(const std::string& op, const std::string& resource, bj::value content = nullptr,
               const std::string& id = {}) {
    Message m = make_message("edged", "meta", op, resource, std::move(content));
    if (!id.empty()) m.header.id = id;
    std::string frame = codec::encode(m) + "\n";
    boost::asio::post(ex_, [c = conn_, frame] { (void)c->send(frame); });
    return m;
  }
  // Every frame the edge got with this parent id, within `wait`.
  std::vector<Message> answers(const std::string& parent, std::chrono::milliseconds wait = 5s,
                               size_t want = 1) {
    std::unique_lock lk(mu_);
    auto pick = [&] {
      std::vector<Message> out;
      for (auto& m : got_)
        if (m.header.parent_id == parent) out.push_back(m);
      return out;
    };
    cv_.wait_for(lk, wait, [&] { return pick().size() >= want; });
    return pick();
  }
  bj::value answer(const Message& req) {
    auto a = answers(req.header.id);
    if (a.empty()) return bj::value();
    EXPECT_EQ(a.size(), 1u) << "an ACK beside the answer?";
    EXPECT_EQ(a[0].route.source, "edgecontroller");
    EXPECT_EQ(a[0].route.group, "resource");
    EXPECT_EQ(a[0].route.operation, "response");
    EXPECT_EQ(a[0].route.resource, req.route.resource);
    return a[0].content;
  }

  fs::path root_;
  uint16_t port_ = 0;
  std::unique_ptr<Harness> cloud_;
  boost::asio::io_context io_;
  boost::asio::strand<boost::asio::io_context::executor_type> ex_ = boost::asio::make_strand(io_);
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
  net::WsPtr conn_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Message> got_;
};

TEST_F(StockWire, TheKubeletRegistersItsNodeKeepsItsLeaseAndQueries) {
  // Registration: the Node back with its kind, in {"Object","Err"}.
  bj::object node{
      {"metadata", bj::object{{"name", "stock-9"},
                              {"labels", bj::object{{"node-role.kubernetes.io/edge", ""}}}}},
      {"status",
       bj::object{{"nodeInfo", bj::object{{"kubeletVersion", "v1.22.17-kubeedge-v1.12.7"}}}}}};
  auto ins = send("insert", "default/node/stock-9", node);
  auto a = answer(ins);
  ASSERT_TRUE(a.is_object()) << bj::serialize(a);
  EXPECT_TRUE(a.at("Err").is_null()) << bj::serialize(a);
  EXPECT_EQ(a.at("Object").at("kind"), "Node");
  EXPECT_EQ(a.at("Object").at("apiVersion"), "v1");
  // Again: AlreadyExists, as a StatusError the kubelet decodes.
  auto again = answer(send("insert", "default/node/stock-9", node));
  EXPECT_EQ(again.at("Err").at("ErrStatus").at("reason"), "AlreadyExists") << bj::serialize(again);
  EXPECT_EQ(again.at("Err").at("ErrStatus").at("code"), 409);
  // A query: the object itself.
  auto q = answer(send("query", "default/node/stock-9"));
  EXPECT_EQ(q.at("kind"), "Node") << bj::serialize(q);
  EXPECT_EQ(q.at("metadata").at("name"), "stock-9");
  // The kubelet's status patch (a strategic merge patch, as a string).
  auto np = answer(send(
      "patch", "default/nodepatch/stock-9",
      bj::string(R"({"status":{"$setElementOrder/conditions":[{"type":"Ready"}],)"
                 R"("conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}})")));
  EXPECT_TRUE(np.at("Err").is_null()) << bj::serialize(np);
  EXPECT_EQ(np.at("Object").at("status").at("conditions").at(0).at("reason"), "KubeletReady");
  EXPECT_FALSE(np.at("Object").at("status").as_object().contains("$setElementOrder/conditions"));
  // Its lease: missing, created, renewed, read.
  auto l0 = answer(send("query", "kube-node-lease/lease/stock-9"));
  EXPECT_EQ(l0.at("Err").at("ErrStatus").at("code"), 404) << bj::serialize(l0);
  bj::object lease{
      {"metadata", bj::object{{"name", "stock-9"}, {"namespace", "kube-node-lease"}}},
      {"spec", bj::object{{"holderIdentity", "stock-9"}, {"leaseDurationSeconds", 40}}}};
  auto l1 = answer(send("insert", "kube-node-lease/lease/stock-9", lease));
  ASSERT_TRUE(l1.at("Err").is_null()) << bj::serialize(l1);
  EXPECT_EQ(l1.at("Object").at("kind"), "Lease");
  EXPECT_EQ(l1.at("Object").at("apiVersion"), "coordination.k8s.io/v1");
  bj::value renewed = l1.at("Object");
  renewed.as_object()["spec"].as_object()["renewTime"] = "2026-12-04T00:00:00.000000Z";
  auto l2 = answer(send("update", "kube-node-lease/lease/stock-9", renewed));
  ASSERT_TRUE(l2.at("Err").is_null()) << bj::serialize(l2);
  auto l3 = answer(send("query", "kube-node-lease/lease/stock-9"));
  EXPECT_EQ(l3.at("Object").at("spec").at("renewTime"), "2026-12-04T00:00:00.000000Z");
  // Another node's lease is not this node's to write.
  auto other = answer(send("insert", "kube-node-lease/lease/stock-8", lease));
  EXPECT_EQ(other.at("Err").at("ErrStatus").at("code"), 403) << bj::serialize(other);
  // A configmap no pod of the node uses: Forbidden, as a StatusError.
  auto cm = answer(send("query", "default/configmap/nope"));
  EXPECT_EQ(cm.at("ErrStatus").at("code"), 403) << bj::serialize(cm);
}

TEST_F(StockWire, ARequestSentAgainGetsTheSameAnswerAndNothingIsAcked) {
  auto first = send("query", "default/node/stock-9", nullptr, "req-1");
  auto a = answers("req-1");
  ASSERT_EQ(a.size(), 1u);
  // The edge's retry of a request it timed out on carries the same id.
  send("query", "default/node/stock-9", nullptr, "req-1");
  auto b = answers("req-1", 5s, 2);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1].header.id, b[0].header.id);
  EXPECT_EQ(b[1].content, b[0].content);
  // A plain report (legacy podstatus for a pod that is not there) is
  // answered by the controller, never ACKed by the channel.
  auto ps = send("update", "default/podstatus/nope", bj::object{{"Status", bj::object{}}});
  auto c = answers(ps.header.id, 3s);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_NE(c[0].content, bj::value("OK"));
  EXPECT_EQ(c[0].route.source, "edgecontroller");
}

TEST_F(StockWire, DevicesReachA112EdgeInV1alpha2) {
  auto api = [&](const std::string& target, bj::value body) {
    auto [s, r] = cloud_->request(
        "apiserver",
        make_message("test", "", "request", "",
                     bj::object{{"method", "POST"}, {"target", target}, {"body", std::move(body)}}),
        10s);
    return s && r ? r->content.at("code").as_int64() : 0;
  };
  ASSERT_EQ(api("/apis/devices.kubeedge.io/v1beta1/namespaces/default/devicemodels",
                bj::parse(R"({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceModel",
                  "metadata": {"name": "thermo", "namespace": "default"},
                  "spec": {"properties": [{"name": "setpoint", "type": "INT",
                                           "accessMode": "ReadWrite"}]}})")),
            201);
  ASSERT_EQ(api("/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices",
                bj::parse(R"({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
                  "metadata": {"name": "t1", "namespace": "default"},
                  "spec": {"deviceModelRef": {"name": "thermo"}, "nodeName": "stock-9",
                           "protocol": {"protocolName": "modbus",
                                        "configData": {"ip": "127.0.0.1", "port": 1502}},
                           "properties": [{"name": "setpoint", "desired": {"value": "21"},
                             "visitors": {"protocolName": "modbus",
                               "configData": {"register": "HoldingRegister", "offset": 1}}}]}})")),
            201);
  // The edge did not announce kedge's protocol: both objects in the shape
  // its v1alpha2 Go types decode.
  auto object = [&](const std::string& resource) -> bj::value {
    std::unique_lock lk(mu_);
    bj::value out;
    cv_.wait_for(lk, 10s, [&] {
      for (auto& m : got_)
        if (m.route.resource == resource && m.route.group == "resource") out = m.content;
      return !out.is_null();
    });
    return out;
  };
  auto model = object("default/devicemodel/thermo");
  ASSERT_TRUE(model.is_object());
  EXPECT_EQ(model.at("apiVersion"), "devices.kubeedge.io/v1alpha2");
  EXPECT_EQ(model.at("spec").at("properties").at(0).at("type").at("int").at("accessMode"),
            "ReadWrite");
  auto dev = object("default/device/t1");
  ASSERT_TRUE(dev.is_object());
  EXPECT_EQ(dev.at("apiVersion"), "devices.kubeedge.io/v1alpha2");
  EXPECT_EQ(dev.at("spec").at("protocol").at("modbus"), bj::object{});
  EXPECT_EQ(dev.at("spec").at("protocol").at("common").at("tcp").at("port"), 1502);
  EXPECT_EQ(dev.at("spec").at("propertyVisitors").at(0).at("modbus").at("offset"), 1);
  EXPECT_EQ(dev.at("status").at("twins").at(0).at("desired").at("value"), "21");
}

}  // namespace
}  // namespace kedge
