// edged's tests against a real containerd (started by scripts/containerd.sh
// with a private root, state, socket and CNI bridge; images built locally
// from busybox-static). The kernel runs metamanager and edged; a capture
// stands in for edgehub, so the cloud's pod messages are injected into
// metamanager and edged's reports are read from the capture. Shared by
// edged_test.cpp (pods) and edged_node_test.cpp (the node, bad input).
#pragma once

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

namespace kedge::edged_test {

using namespace std::chrono_literals;
using testing::Capture;
using testing::Harness;
namespace fs = std::filesystem;
namespace json = boost::json;
namespace pb = runtime::v1;

inline std::string run(const std::string& cmd) {
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

inline bool can_run_containerd() {
  return ::geteuid() == 0 && ::access("/usr/bin/containerd", X_OK) == 0 &&
         ::access("/usr/sbin/runc", X_OK) == 0 && ::access("/bin/busybox", X_OK) == 0;
}

inline std::string containerd(const std::string& verb, const fs::path& dir) {
  return run("bash " KEDGE_SOURCE_DIR "/scripts/containerd.sh " + verb + " " + dir.string() +
             " 2>&1");
}

// One edge kernel: metamanager + edged, edgehub captured.
class Edge {
 public:
  Edge(const fs::path& base, const std::string& sock, const std::string& extra = "",
       Capture::Responder cloud = {}) {
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
    if (cloud) hub_->set_responder(std::move(cloud));
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
  Capture& hub() { return *hub_; }

 private:
  std::unique_ptr<Harness> h_;
  Capture* hub_ = nullptr;
  int rv_ = 0;
};

inline json::value pod(const std::string& name, const std::string& uid, json::object spec) {
  spec["nodeName"] = "edge-1";
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 1;
  return json::object{
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", json::object{{"name", name}, {"namespace", "default"}, {"uid", uid}}},
      {"spec", spec}};
}
inline json::object busybox(const std::string& name, const std::string& script) {
  return json::object{{"name", name},
                      {"image", "localhost/busybox:local"},
                      {"imagePullPolicy", "IfNotPresent"},
                      {"command", json::array{"sh", "-c", script}}};
}
inline std::string phase(const json::value& st) { return std::string(st.at("phase").as_string()); }
inline const json::value& cstatus(const json::value& st, size_t i = 0) {
  return st.at("containerStatuses").as_array().at(i);
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

}  // namespace kedge::edged_test
