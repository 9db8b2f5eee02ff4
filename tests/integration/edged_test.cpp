// edged against a real containerd (started by scripts/containerd.sh
// with a private root, state, socket and CNI bridge; images built locally
// from busybox-static). The kernel runs metamanager and edged; a capture
// stands in for edgehub, so the cloud's pod messages are injected into
// metamanager and edged's reports are read from the capture.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "cri.h"
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
namespace pb = runtime::v1;

std::string run(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  int rc = ::pclose(f);
  if (rc != 0) out = "ERROR(" + std::to_string(rc) + "): " + out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool can_run_containerd() {
  return ::geteuid() == 0 && ::access("/usr/bin/containerd", X_OK) == 0 &&
         ::access("/usr/sbin/runc", X_OK) == 0 && ::access("/bin/busybox", X_OK) == 0;
}

std::string containerd(const std::string& verb, const fs::path& dir) {
  return run("bash " KEDGE_SOURCE_DIR "/scripts/containerd.sh " + verb + " " + dir.string() +
             " 2>&1");
}

// One edge kernel: metamanager + edged, edgehub captured.
class Edge {
 public:
  Edge(const fs::path& base, const std::string& sock, const std::string& extra = "") {
    h_ = std::make_unique<Harness>(
        "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nworker_threads = 2\n"
        "plugin_dirs = [\"" KEDGE_PLUGIN_DIR
        "\"]\n[[plugin]]\nname = \"metamanager\"\n[[plugin]]\nname = \"edged\"\n"
        "[plugin.config]\nruntime_endpoint = \"unix://" +
            sock +
            "\"\nsync_period_ms = 300\nbackoff_initial_ms = 600\nbackoff_max_ms = 2400\n"
            "node_status_period_s = 1\nruntime_retry_ms = 300\n" +
            extra,
        base);
    EXPECT_TRUE(h_->errors().empty()) << h_->errors()[0];
    hub_ = &h_->capture("edgehub");
    EXPECT_TRUE(h_->start());
  }
  ~Edge() { h_->stop(); }

  // What the cloud would send: stored by metamanager, handed to edged.
  void apply(const std::string& op, const json::value& pod) {
    std::string ns = std::string(pod.at("metadata").at("namespace").as_string());
    std::string name = std::string(pod.at("metadata").at("name").as_string());
    Message m = make_message("edgecontroller", "resource", op, ns + "/pod/" + name, pod);
    m.header.resource_version = std::to_string(++rv_);
    ASSERT_TRUE(h_->send("metamanager", m));
  }
  void object(const std::string& type, const json::value& obj) {
    std::string ns = std::string(obj.at("metadata").at("namespace").as_string());
    std::string name = std::string(obj.at("metadata").at("name").as_string());
    Message m =
        make_message("edgecontroller", "resource", "insert", ns + "/" + type + "/" + name, obj);
    m.header.resource_version = std::to_string(++rv_);
    ASSERT_TRUE(h_->send("metamanager", m));
    ASSERT_TRUE(Harness::eventually([&] {
      return hub_->count() > 0;  // ACKed once stored
    }));
  }

  // The newest status edged reported for a pod that satisfies `pred`.
  json::value wait_status(const std::string& pod,
                          const std::function<bool(const json::value&)>& pred,
                          std::chrono::milliseconds timeout = 60s) {
    json::value found;
    Harness::eventually(
        [&] {
          auto msgs = hub_->messages();
          for (auto it = msgs.rbegin(); it != msgs.rend(); ++it) {
            auto& m = **it;
            if (m.route.resource != "default/podpatch/" + pod || !m.content.is_string()) continue;
            json::error_code ec;
            auto v = json::parse(m.content.as_string(), ec);
            if (ec) continue;
            if (pred(v.at("status"))) {
              found = v.at("status");
              return true;
            }
            return false;  // only the newest counts
          }
          return false;
        },
        timeout);
    return found;
  }
  json::value wait_node(const std::function<bool(const json::value&)>& pred,
                        std::chrono::milliseconds timeout = 30s) {
    json::value found;
    Harness::eventually(
        [&] {
          for (auto& m : hub_->messages()) {
            if (m->route.resource != "default/nodepatch/edge-1" || !m->content.is_string())
              continue;
            auto v = json::parse(m->content.as_string());
            if (pred(v.at("status"))) {
              found = v.at("status");
              return true;
            }
          }
          return false;
        },
        timeout);
    return found;
  }
  Harness& h() { return *h_; }

 private:
  std::unique_ptr<Harness> h_;
  Capture* hub_ = nullptr;
  int rv_ = 0;
};

json::value pod(const std::string& name, const std::string& uid, json::object spec) {
  spec["nodeName"] = "edge-1";
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 1;
  return json::object{
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", json::object{{"name", name}, {"namespace", "default"}, {"uid", uid}}},
      {"spec", spec}};
}
json::object busybox(const std::string& name, const std::string& script) {
  return json::object{{"name", name},
                      {"image", "localhost/busybox:local"},
                      {"imagePullPolicy", "IfNotPresent"},
                      {"command", json::array{"sh", "-c", script}}};
}
std::string phase(const json::value& st) { return std::string(st.at("phase").as_string()); }
const json::value& cstatus(const json::value& st, size_t i = 0) {
  return st.at("containerStatuses").as_array().at(i);
}

// ---- the runtime is not there at first ----

TEST(EdgedRuntime, WaitsForAnAbsentRuntimeAndRecovers) {
  if (!can_run_containerd()) GTEST_SKIP() << "needs root, containerd, runc and busybox-static";
  fs::path dir = fs::temp_directory_path() / ("kedge-edged-late-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "edge");
  std::string sock = (dir / "containerd" / "containerd.sock").string();
  {
    Edge e(dir / "edge", sock);
    e.apply("insert",
            pod("late", "uid-late", {{"containers", json::array{busybox("c", "sleep 3600")}}}));
    // Not ready: reported, nothing crashes.
    auto node = e.wait_node([](const json::value& st) {
      for (auto& c : st.at("conditions").as_array())
        if (c.at("type") == "Ready" && c.at("status") == "False") return true;
      return false;
    });
    ASSERT_FALSE(node.is_null()) << "no NotReady node status while the runtime is absent";
    std::this_thread::sleep_for(1s);
    // The runtime comes: the pod runs.
    ASSERT_EQ(containerd("start", dir / "containerd"), sock);
    auto st = e.wait_status("late", [](const json::value& s) { return phase(s) == "Running"; });
    EXPECT_FALSE(st.is_null()) << "the pod did not run once the runtime came";
    e.apply("delete", pod("late", "uid-late", {}));
    std::this_thread::sleep_for(3s);
  }
  containerd("stop", dir / "containerd");
  fs::remove_all(dir);
}

// ---- one containerd for the rest ----

class Edged : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!can_run_containerd()) return;
    dir_ = fs::temp_directory_path() / ("kedge-edged-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    sock_ = containerd("start", dir_ / "containerd");
  }
  static void TearDownTestSuite() {
    if (dir_.empty()) return;
    containerd("stop", dir_ / "containerd");
    // Clean teardown: no shim of this containerd is left.
    std::string shims = run("pgrep -f '[c]ontainerd-shim-runc-v2 .*" + sock_ + "' || true");
    if (!shims.empty()) ADD_FAILURE() << "shims left behind: " << shims;
    fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!can_run_containerd()) GTEST_SKIP() << "needs root, containerd, runc and busybox-static";
    ASSERT_EQ(sock_.rfind("ERROR", 0), std::string::npos) << sock_;
    base_ = dir_ / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(base_);
    cri_ = std::make_unique<cri::Client>(sock_, 20s);
  }

  // Pod sandboxes of a pod UID, any state.
  int sandboxes(const std::string& uid) {
    pb::ListPodSandboxRequest req;
    (*req.mutable_filter()->mutable_label_selector())["io.kubernetes.pod.uid"] = uid;
    pb::ListPodSandboxResponse res;
    if (!cri_->call("ListPodSandbox", cri_->runtime(), &pb::RuntimeService::Stub::ListPodSandbox,
                    req, &res))
      return -1;
    return res.items_size();
  }
  std::string exec(const std::string& container_id, const std::string& script) {
    pb::ExecSyncRequest req;
    req.set_container_id(container_id);
    req.add_cmd("sh");
    req.add_cmd("-c");
    req.add_cmd(script);
    req.set_timeout(10);
    pb::ExecSyncResponse res;
    Status s =
        cri_->call("ExecSync", cri_->runtime(), &pb::RuntimeService::Stub::ExecSync, req, &res);
    if (!s) return "ERROR: " + s.message();
    std::string out = res.stdout();
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  static std::string id_of(const json::value& container_status) {
    std::string id(container_status.at("containerID").as_string());
    return id.substr(id.find("://") + 3);
  }

  static inline fs::path dir_;
  static inline std::string sock_;
  fs::path base_;
  std::unique_ptr<cri::Client> cri_;
};

TEST_F(Edged, RunsAPodWithVolumesEnvAndLimitsThenDeletesIt) {
  Edge e(base_, sock_);
  e.object(
      "configmap",
      json::object{{"metadata", json::object{{"name", "web-config"}, {"namespace", "default"}}},
                   {"data", json::object{{"greeting", "hello from the cloud"}}}});
  e.object("secret", json::object{{"metadata",
                                   json::object{{"name", "web-secret"}, {"namespace", "default"}}},
                                  {"data", json::object{{"password", "czNjcjN0"}}}});  // s3cr3t
  json::object c = busybox("web", "sleep 3600");
  c["env"] = json::array{
      json::object{{"name", "MODE"}, {"value", "edge"}},
      json::object{
          {"name", "GREETING"},
          {"valueFrom", json::object{{"configMapKeyRef",
                                      json::object{{"name", "web-config"}, {"key", "greeting"}}}}}},
      json::object{
          {"name", "POD_NAME"},
          {"valueFrom", json::object{{"fieldRef", json::object{{"fieldPath", "metadata.name"}}}}}}};
  c["resources"] = json::object{{"limits", json::object{{"memory", "64Mi"}, {"cpu", "250m"}}}};
  c["volumeMounts"] = json::array{json::object{{"name", "config"}, {"mountPath", "/etc/config"}},
                                  json::object{{"name", "secret"}, {"mountPath", "/etc/secret"}},
                                  json::object{{"name", "scratch"}, {"mountPath", "/scratch"}}};
  e.apply("insert",
          pod("web", "uid-web",
              {{"containers", json::array{c}},
               {"volumes",
                json::array{json::object{{"name", "config"},
                                         {"configMap", json::object{{"name", "web-config"}}}},
                            json::object{{"name", "secret"},
                                         {"secret", json::object{{"secretName", "web-secret"}}}},
                            json::object{{"name", "scratch"}, {"emptyDir", json::object{}}}}}}));
  auto st = e.wait_status("web", [](const json::value& s) {
    return phase(s) == "Running" && s.as_object().contains("podIP") &&
           cstatus(s).at("ready") == true;
  });
  ASSERT_FALSE(st.is_null()) << "the pod did not reach Running with an IP";
  std::string ip(st.at("podIP").as_string());
  EXPECT_THAT(ip, ::testing::MatchesRegex("10\\.[0-9]+\\.[0-9]+\\.[0-9]+"));
  EXPECT_EQ(st.at("qosClass"), "Guaranteed");  // limits only: requests default to them
  std::string id = id_of(cstatus(st));
  EXPECT_EQ(exec(id, "cat /etc/config/greeting"), "hello from the cloud");
  EXPECT_EQ(exec(id, "cat /etc/secret/password"), "s3cr3t");
  EXPECT_EQ(exec(id, "echo $MODE/$GREETING/$POD_NAME"), "edge/hello from the cloud/web");
  EXPECT_EQ(exec(id,
                 "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "67108864");
  EXPECT_EQ(exec(id,
                 "if [ -f /sys/fs/cgroup/cpu.max ]; then cut -d' ' -f1 /sys/fs/cgroup/cpu.max; "
                 "else cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; fi"),
            "25000");
  EXPECT_EQ(exec(id, "echo ok > /scratch/f && cat /scratch/f"), "ok");
  // A changed configmap reaches the mounted file.
  e.object(
      "configmap",
      json::object{{"metadata", json::object{{"name", "web-config"}, {"namespace", "default"}}},
                   {"data", json::object{{"greeting", "changed"}}}});
  EXPECT_TRUE(
      Harness::eventually([&] { return exec(id, "cat /etc/config/greeting") == "changed"; }, 10s));
  // Deleted: the sandbox and containers go.
  ASSERT_EQ(sandboxes("uid-web"), 1);
  e.apply("delete", pod("web", "uid-web", {}));
  EXPECT_TRUE(Harness::eventually([&] { return sandboxes("uid-web") == 0; }, 30s))
      << "the deleted pod's sandbox is still there";
}

TEST_F(Edged, RestartsExitedContainersWithBackOffAndPolicy) {
  Edge e(base_, sock_);
  e.apply("insert", pod("crash", "uid-crash",
                        {{"containers", json::array{busybox("c", "sleep 0.2; exit 3")}}}));
  auto st = e.wait_status("crash", [](const json::value& s) {
    auto& c = cstatus(s);
    return c.at("restartCount").as_int64() >= 2 && c.at("state").as_object().contains("waiting") &&
           c.at("state").at("waiting").at("reason") == "CrashLoopBackOff";
  });
  ASSERT_FALSE(st.is_null()) << "no crash loop back-off after two restarts";
  EXPECT_EQ(cstatus(st).at("lastState").at("terminated").at("exitCode").as_int64(), 3);
  EXPECT_EQ(phase(st), "Running");  // restarting, as Kubernetes reports it
  // Never: the pod ends Succeeded (exit 0) or Failed.
  json::object once =
      pod("once", "uid-once",
          {{"containers", json::array{busybox("c", "exit 0")}}, {"restartPolicy", "Never"}})
          .as_object();
  e.apply("insert", once);
  auto done = e.wait_status("once", [](const json::value& s) { return phase(s) == "Succeeded"; });
  ASSERT_FALSE(done.is_null()) << "restartPolicy Never, exit 0: not Succeeded";
  EXPECT_EQ(cstatus(done).at("restartCount").as_int64(), 0);
  json::object fail =
      pod("fail", "uid-fail",
          {{"containers", json::array{busybox("c", "exit 1")}}, {"restartPolicy", "OnFailure"}})
          .as_object();
  e.apply("insert", fail);
  auto retried = e.wait_status(
      "fail", [](const json::value& s) { return cstatus(s).at("restartCount").as_int64() >= 1; });
  EXPECT_FALSE(retried.is_null()) << "OnFailure, exit 1: not restarted";
  for (auto n : {"crash", "once", "fail"}) e.apply("delete", pod(n, std::string("uid-") + n, {}));
  EXPECT_TRUE(Harness::eventually(
      [&] { return sandboxes("uid-crash") + sandboxes("uid-once") + sandboxes("uid-fail") == 0; },
      30s));
}

TEST_F(Edged, ProbesAndInitContainers) {
  Edge e(base_, sock_);
  // Readiness over HTTP (busybox httpd), liveness by exec on a file the
  // container removes after a while: it is restarted.
  json::object c = busybox("web",
                           "mkdir -p /www && echo ok > /www/index.html && touch /tmp/healthy && "
                           "httpd -p 8080 -h /www && sleep 2 && rm /tmp/healthy && sleep 3600");
  c["readinessProbe"] = json::object{
      {"httpGet", json::object{{"path", "/index.html"}, {"port", 8080}}}, {"periodSeconds", 1}};
  c["livenessProbe"] =
      json::object{{"exec", json::object{{"command", json::array{"test", "-f", "/tmp/healthy"}}}},
                   {"periodSeconds", 1},
                   {"failureThreshold", 2}};
  json::object tcp = busybox("tcp", "httpd -f -p 9090 -h /");
  tcp["livenessProbe"] =
      json::object{{"tcpSocket", json::object{{"port", 9090}}}, {"periodSeconds", 1}};
  json::object init = busybox("setup", "echo prepared > /work/state");
  init["volumeMounts"] = json::array{json::object{{"name", "work"}, {"mountPath", "/work"}}};
  c["volumeMounts"] = init["volumeMounts"];
  e.apply("insert", pod("probed", "uid-probed",
                        {{"initContainers", json::array{init}},
                         {"containers", json::array{c, tcp}},
                         {"volumes", json::array{json::object{{"name", "work"},
                                                              {"emptyDir", json::object{}}}}}}));
  auto ready = e.wait_status("probed", [](const json::value& s) {
    return phase(s) == "Running" && cstatus(s, 0).at("ready") == true;
  });
  ASSERT_FALSE(ready.is_null()) << "the readiness probe never passed";
  EXPECT_EQ(ready.at("initContainerStatuses")
                .at(0)
                .at("state")
                .at("terminated")
                .at("exitCode")
                .as_int64(),
            0);
  EXPECT_EQ(exec(id_of(cstatus(ready, 0)), "cat /work/state"), "prepared");
  auto restarted = e.wait_status("probed", [](const json::value& s) {
    return cstatus(s, 0).at("restartCount").as_int64() >= 1;
  });
  EXPECT_FALSE(restarted.is_null()) << "the failing liveness probe did not restart the container";
  if (!restarted.is_null()) {
    EXPECT_EQ(cstatus(restarted, 1).at("restartCount").as_int64(), 0)
        << "the container whose tcpSocket probe passes was restarted";
  }
  e.apply("delete", pod("probed", "uid-probed", {}));
  EXPECT_TRUE(Harness::eventually([&] { return sandboxes("uid-probed") == 0; }, 30s));
}

// httpGet over HTTPS to an IPv6 address and tcpSocket to one, as a pod
// whose probes name a host (here the node's ::1) gets them: the server's
// certificate is self-signed and not checked, as the kubelet does not.
TEST_F(Edged, ProbesOverHttpsAndIpv6) {
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::atomic<int> answer{503};
  std::atomic<int> asked{0};
  pki::Key key = pki::generate_key();
  auto self_signed = pki::make_ca(key.get(), {"probe-target", ""});
  ASSERT_TRUE(self_signed.ok());
  auto tls =
      net::server_context({"", pki::cert_pem(self_signed.value.get()), pki::key_pem(key.get())},
                          net::ClientCert::kNone);
  ASSERT_TRUE(tls.status) << tls.status.message();
  auto https = net::HttpServer::create(io.get_executor(), tls.ctx, {});
  ASSERT_TRUE(https->listen("::1", 0, [&](net::ExchangePtr x) {
    ++asked;
    bool right = x->request().target == "/healthz" && x->request().headers.count("x-probe");
    x->reply({right ? answer.load() : 404, "text/plain", "probe"});
  }));
  auto plain = net::HttpServer::create(io.get_executor(), nullptr, {});  // a TCP listener on ::1
  ASSERT_TRUE(plain->listen("::1", 0, [](net::ExchangePtr x) {
    x->reply({200, "text/plain", ""});
  }));
  std::thread t([&] { io.run(); });

  Edge e(base_, sock_);
  json::object c = busybox("app", "sleep 3600");
  c["readinessProbe"] = json::object{
      {"httpGet", json::object{{"scheme", "HTTPS"},
                               {"host", "::1"},
                               {"port", https->port()},
                               {"path", "/healthz"},
                               {"httpHeaders",
                                json::array{json::object{{"name", "X-Probe"}, {"value", "1"}}}}}},
      {"periodSeconds", 1}};
  c["livenessProbe"] = json::object{
      {"tcpSocket", json::object{{"host", "::1"}, {"port", plain->port()}}}, {"periodSeconds", 1}};
  e.apply("insert", pod("probed6", "uid-probed6", {{"containers", json::array{c}}}));
  auto running = e.wait_status("probed6", [](const json::value& s) {
    return phase(s) == "Running" && cstatus(s).at("state").as_object().contains("running");
  });
  ASSERT_FALSE(running.is_null());
  ASSERT_TRUE(Harness::eventually([&] { return asked >= 2; }, 20s)) << "HTTPS probe never came";
  EXPECT_EQ(cstatus(running).at("ready"), false) << "ready while the endpoint answers 503";
  answer = 200;
  auto ready =
      e.wait_status("probed6", [](const json::value& s) { return cstatus(s).at("ready") == true; });
  ASSERT_FALSE(ready.is_null()) << "the HTTPS readiness probe on ::1 never passed";
  // The tcpSocket liveness probe on ::1 passes: never restarted.
  EXPECT_EQ(cstatus(ready).at("restartCount").as_int64(), 0);
  e.apply("delete", pod("probed6", "uid-probed6", {}));
  EXPECT_TRUE(Harness::eventually([&] { return sandboxes("uid-probed6") == 0; }, 30s));
  https->stop();
  plain->stop();
  guard.reset();
  io.stop();
  t.join();
}

TEST_F(Edged, AdoptsAfterARestartRecreatesAfterARebootAndRemovesLeftovers) {
  std::string first_id;
  {
    Edge e(base_, sock_);
    e.apply("insert",
            pod("keep", "uid-keep", {{"containers", json::array{busybox("c", "sleep 3600")}}}));
    e.apply("insert",
            pod("gone", "uid-gone", {{"containers", json::array{busybox("c", "sleep 3600")}}}));
    auto st = e.wait_status("keep", [](const json::value& s) { return phase(s) == "Running"; });
    ASSERT_FALSE(st.is_null());
    first_id = id_of(cstatus(st));
    ASSERT_FALSE(e.wait_status("gone", [](const json::value& s) {
                    return phase(s) == "Running";
                  }).is_null());
  }
  // edged stopped; its pods keep running. "gone" is deleted from the cache
  // meanwhile (as if the cloud had deleted it while edged was down).
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((base_ / "data" / "edgecore.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DELETE FROM meta WHERE key = 'default/pod/gone'", nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  {
    Edge e(base_, sock_);  // no cloud: everything from the cache
    auto st = e.wait_status("keep", [](const json::value& s) { return phase(s) == "Running"; });
    ASSERT_FALSE(st.is_null());
    EXPECT_EQ(id_of(cstatus(st)), first_id) << "the running container was not adopted";
    EXPECT_EQ(cstatus(st).at("restartCount").as_int64(), 0);
    EXPECT_TRUE(Harness::eventually([&] { return sandboxes("uid-gone") == 0; }, 30s))
        << "the leftover pod was not removed";
  }
  // A reboot: every container and sandbox is gone; the cloud is still away.
  {
    pb::ListPodSandboxRequest req;
    pb::ListPodSandboxResponse res;
    ASSERT_TRUE(cri_->call("ListPodSandbox", cri_->runtime(),
                           &pb::RuntimeService::Stub::ListPodSandbox, req, &res));
    for (auto& sb : res.items()) {
      pb::StopPodSandboxRequest s;
      s.set_pod_sandbox_id(sb.id());
      pb::StopPodSandboxResponse sr;
      (void)cri_->call("StopPodSandbox", cri_->runtime(), &pb::RuntimeService::Stub::StopPodSandbox,
                       s, &sr);
      pb::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(sb.id());
      pb::RemovePodSandboxResponse rr;
      (void)cri_->call("RemovePodSandbox", cri_->runtime(),
                       &pb::RuntimeService::Stub::RemovePodSandbox, r, &rr);
    }
  }
  ASSERT_EQ(sandboxes("uid-keep"), 0);
  {
    Edge e(base_, sock_);
    auto st = e.wait_status("keep", [&](const json::value& s) {
      return phase(s) == "Running" && id_of(cstatus(s)) != first_id;
    });
    EXPECT_FALSE(st.is_null()) << "the pod was not started again from the cache";
    e.apply("delete", pod("keep", "uid-keep", {}));
    EXPECT_TRUE(Harness::eventually([&] { return sandboxes("uid-keep") == 0; }, 30s));
  }
}

TEST_F(Edged, ReplacesAContainerWhoseSpecChanged) {
  Edge e(base_, sock_);
  json::object c = busybox("c", "sleep 3600");
  c["env"] = json::array{json::object{{"name", "V"}, {"value", "1"}}};
  e.apply("insert", pod("upd", "uid-upd", {{"containers", json::array{c}}}));
  auto st = e.wait_status("upd", [](const json::value& s) { return phase(s) == "Running"; });
  ASSERT_FALSE(st.is_null());
  EXPECT_EQ(exec(id_of(cstatus(st)), "echo $V"), "1");
  c["env"] = json::array{json::object{{"name", "V"}, {"value", "2"}}};
  e.apply("update", pod("upd", "uid-upd", {{"containers", json::array{c}}}));
  auto next = e.wait_status("upd", [](const json::value& s) {
    return phase(s) == "Running" && cstatus(s).at("restartCount").as_int64() == 1 &&
           cstatus(s).at("state").as_object().contains("running");
  });
  ASSERT_FALSE(next.is_null()) << "the changed container was not replaced";
  EXPECT_EQ(exec(id_of(cstatus(next)), "echo $V"), "2");
  e.apply("delete", pod("upd", "uid-upd", {}));
  EXPECT_TRUE(Harness::eventually([&] { return sandboxes("uid-upd") == 0; }, 30s));
}

TEST_F(Edged, ReportsTheNode) {
  Edge e(base_, sock_);
  auto st = e.wait_node([](const json::value& s) {
    for (auto& c : s.at("conditions").as_array())
      if (c.at("type") == "Ready" && c.at("status") == "True") return true;
    return false;
  });
  ASSERT_FALSE(st.is_null());
  EXPECT_THAT(std::string(st.at("nodeInfo").at("containerRuntimeVersion").as_string()),
              ::testing::StartsWith("containerd://"));
  EXPECT_EQ(st.at("nodeInfo").at("kubeletVersion"), "v1.22.17-kedge-0.1.0");
  EXPECT_EQ(std::string(st.at("capacity").at("cpu").as_string()),
            std::to_string(std::thread::hardware_concurrency()));
  EXPECT_THAT(std::string(st.at("capacity").at("memory").as_string()), ::testing::EndsWith("Ki"));
  bool busybox_listed = false;
  for (auto& im : st.at("images").as_array())
    for (auto& n : im.at("names").as_array())
      if (n == "localhost/busybox:local") busybox_listed = true;
  EXPECT_TRUE(busybox_listed);
}

TEST_F(Edged, BadPodsAreReportedNotCrashed) {
  Edge e(base_, sock_);
  // A missing configmap, an absent image that may not be pulled, a bad
  // quantity, an unsupported volume type: each pod says why; edged goes on.
  e.apply("insert",
          pod("nocm", "uid-nocm",
              {{"containers", json::array{busybox("c", "sleep 3600")}},
               {"volumes", json::array{json::object{
                               {"name", "v"}, {"configMap", json::object{{"name", "absent"}}}}}}}));
  json::object never = busybox("c", "true");
  never["image"] = "localhost/nothing:here";
  never["imagePullPolicy"] = "Never";
  e.apply("insert", pod("noimage", "uid-noimage", {{"containers", json::array{never}}}));
  json::object bad = busybox("c", "sleep 3600");
  bad["resources"] = json::object{{"limits", json::object{{"memory", "lots"}}}};
  e.apply("insert", pod("badqty", "uid-badqty", {{"containers", json::array{bad}}}));
  // Paths and modes a pod could abuse on the host.
  e.apply("insert", pod("badvol", "uid-badvol",
                        {{"containers", json::array{busybox("c", "sleep 3600")}},
                         {"volumes", json::array{json::object{{"name", "../escape"},
                                                              {"emptyDir", json::object{}}}}}}));
  e.object("configmap",
           json::object{{"metadata", json::object{{"name", "bin"}, {"namespace", "default"}}},
                        {"data", json::object{{"k", "v"}}}});
  e.apply("insert",
          pod("setuid", "uid-setuid",
              {{"containers", json::array{busybox("c", "sleep 3600")}},
               {"volumes",
                json::array{json::object{
                    {"name", "v"},
                    {"configMap", json::object{{"name", "bin"}, {"defaultMode", 2541}}}}}}}));
  auto reason = [](const json::value& s) {
    auto* w = cstatus(s).at("state").as_object().if_contains("waiting");
    return w ? std::string(w->at("reason").as_string()) : std::string();
  };
  auto a = e.wait_status(
      "nocm", [&](const json::value& s) { return reason(s) == "CreateContainerConfigError"; });
  ASSERT_FALSE(a.is_null());
  EXPECT_THAT(std::string(cstatus(a).at("state").at("waiting").at("message").as_string()),
              ::testing::HasSubstr("configmap \"absent\" not found"));
  EXPECT_FALSE(e.wait_status("noimage", [&](const json::value& s) {
                  return reason(s) == "ErrImageNeverPull";
                }).is_null());
  auto q = e.wait_status(
      "badqty", [&](const json::value& s) { return reason(s) == "CreateContainerConfigError"; });
  ASSERT_FALSE(q.is_null());
  EXPECT_THAT(std::string(cstatus(q).at("state").at("waiting").at("message").as_string()),
              ::testing::HasSubstr("resources.limits.memory: \"lots\""));
  auto bv = e.wait_status(
      "badvol", [&](const json::value& s) { return reason(s) == "CreateContainerConfigError"; });
  ASSERT_FALSE(bv.is_null());
  EXPECT_THAT(std::string(cstatus(bv).at("state").at("waiting").at("message").as_string()),
              ::testing::HasSubstr("is not a DNS label"));
  auto su = e.wait_status(
      "setuid", [&](const json::value& s) { return reason(s) == "CreateContainerConfigError"; });
  ASSERT_FALSE(su.is_null());
  EXPECT_THAT(std::string(cstatus(su).at("state").at("waiting").at("message").as_string()),
              ::testing::HasSubstr("defaultMode 2541 is not between 0 and 0777"));
  EXPECT_FALSE(fs::exists(base_ / "data" / "edged" / "escape"));
  // The configmap arrives: the pod starts.
  e.object("configmap",
           json::object{{"metadata", json::object{{"name", "absent"}, {"namespace", "default"}}},
                        {"data", json::object{{"k", "v"}}}});
  EXPECT_FALSE(
      e.wait_status("nocm", [](const json::value& s) { return phase(s) == "Running"; }).is_null());
  for (auto n : {"nocm", "noimage", "badqty"})
    e.apply("delete", pod(n, std::string("uid-") + n, {}));
  EXPECT_TRUE(Harness::eventually(
      [&] {
        return sandboxes("uid-nocm") + sandboxes("uid-noimage") + sandboxes("uid-badqty") == 0;
      },
      30s));
}

}  // namespace
}  // namespace kedge
