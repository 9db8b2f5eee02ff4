// edged runs pods on a real containerd: volumes, env and limits, restarts
// with back-off, probes (HTTP, HTTPS, IPv6, exec, TCP) and init containers,
// adoption after a restart, and a changed spec (edged_env.h has the setup).
#include "edged_env.h"

namespace kedge::edged_test {
namespace {
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
  auto https = net::HttpServer::create(io.get_executor(), tls.value, {});
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

}  // namespace
}  // namespace kedge::edged_test
