// edged's node and its robustness on a real containerd: a runtime that is
// absent at first, the node's registration and status, and pods edged must
// refuse with a reason rather than crash on (edged_env.h has the setup).
#include "edged_env.h"

namespace kedge::edged_test {
namespace {
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

// The cloud as CloudCore answers a node registration: AlreadyExists here,
// as for a node kedge's cloud created when the edge connected.
std::optional<Message> node_exists(const Message& m) {
  if (m.route.operation != "insert" || m.route.resource != "default/node/edge-1")
    return std::nullopt;
  json::object st{{"kind", "Status"},    {"apiVersion", "v1"},
                  {"status", "Failure"}, {"reason", "AlreadyExists"},
                  {"code", 409},         {"message", "nodes \"edge-1\" already exists"}};
  return new_response(m, json::object{{"Object", nullptr}, {"Err", {{"ErrStatus", st}}}});
}

TEST_F(Edged, ReportsTheNode) {
  Edge e(base_, sock_, "", node_exists);
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
  // Registered as KubeEdge 1.12's kubelet does: an insert of the whole Node
  // with its default labels (a sync request, answered); the node existed, so
  // the labels follow in an update.
  MessagePtr insert, update;
  ASSERT_TRUE(Harness::eventually(
      [&] {
        for (auto& m : e.hub().messages()) {
          if (m->route.resource != "default/node/edge-1") continue;
          if (m->route.operation == "insert") insert = m;
          if (m->route.operation == "update") update = m;
        }
        return insert && update;
      },
      30s));
  EXPECT_TRUE(insert->header.sync);
  EXPECT_EQ(insert->route.group, "resource");
  EXPECT_EQ(insert->content.at("kind"), "Node");
  EXPECT_EQ(insert->content.at("metadata").at("name"), "edge-1");
  EXPECT_EQ(insert->content.at("status").at("nodeInfo").at("kubeletVersion"),
            "v1.22.17-kedge-0.1.0");
  for (const auto& m : {insert, update}) {
    auto& labels = m->content.at("metadata").at("labels");
    EXPECT_EQ(labels.at("kubernetes.io/os"), "linux");
    EXPECT_EQ(labels.at("kubernetes.io/hostname"), "edge-1");
    EXPECT_EQ(labels.at("node-role.kubernetes.io/edge"), "");
    EXPECT_EQ(labels.at("kubernetes.io/arch"), labels.at("beta.kubernetes.io/arch"));
  }
  // Registered once: no second insert while the node's status goes on.
  std::this_thread::sleep_for(2500ms);
  int inserts = 0;
  for (auto& m : e.hub().messages())
    if (m->route.resource == "default/node/edge-1" && m->route.operation == "insert") ++inserts;
  EXPECT_EQ(inserts, 1);
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
}  // namespace kedge::edged_test
