// edged against a real containerd (bench/edged_load.sh starts one):
//
// 1. Pod start latency, in the same run: the raw CRI calls a pod needs
//    (RunPodSandbox, CreateContainer, StartContainer, PodSandboxStatus for
//    its IP), made directly, against edged's whole path — the pod handed to
//    metamanager as the cloud sends it, stored, handed to edged, reconciled,
//    and its Running status reported. ROUNDS of each, alternating.
// 2. PODS pods on one node: time until all are reported Running, then
//    edged's CPU (this process: the edge kernel with metamanager and edged)
//    over STEADY_S seconds of steady state, and its resident memory.
//
// usage: kedge_edged_bench SOCKET [ROUNDS] [PODS] [STEADY_S]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <thread>

#include "cri.h"
#include "kedge/testing/harness.h"

namespace {

using namespace std::chrono_literals;
using kedge::testing::Harness;
using Clock = std::chrono::steady_clock;
namespace json = boost::json;
namespace pb = runtime::v1;
namespace fs = std::filesystem;

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int64_t status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string k;
  for (std::string line; std::getline(f, line);)
    if (line.rfind(field, 0) == 0) return std::atoll(line.c_str() + std::strlen(field));
  return 0;
}
double cpu_seconds() {
  rusage r{};
  ::getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

void summary(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  std::printf("%-34s mean %7.1f ms  median %7.1f ms  max %7.1f ms  (n=%zu)\n", what, mean,
              v[v.size() / 2], v.back(), v.size());
}

json::value pod(const std::string& name) {
  return json::object{
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", json::object{{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}}},
      {"spec", json::object{{"nodeName", "edge-1"},
                            {"terminationGracePeriodSeconds", 0},
                            {"containers", json::array{json::object{
                                               {"name", "c"},
                                               {"image", "localhost/busybox:local"},
                                               {"imagePullPolicy", "IfNotPresent"},
                                               {"command", json::array{"sleep", "3600"}}}}}}}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOCKET [ROUNDS] [PODS] [STEADY_S]\n", argv[0]);
    return 2;
  }
  std::string sock = argv[1];
  int rounds = argc > 2 ? std::atoi(argv[2]) : 10;
  int pods = argc > 3 ? std::atoi(argv[3]) : 50;
  int steady = argc > 4 ? std::atoi(argv[4]) : 30;
  fs::path base = fs::temp_directory_path() / ("kedge-edged-bench-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base);
  int64_t rss_before_kernel = status_kb("VmRSS:");

  kedge::cri::Client cri(sock, 60s);
  Harness h(
      "[agent]\nnode_name = \"edge-1\"\nlog_level = \"warn\"\nworker_threads = 1\n"
      "plugin_dirs = [\"" KEDGE_PLUGIN_DIR
      "\"]\n[[plugin]]\nname = \"metamanager\"\n[[plugin]]\nname = \"edged\"\n"
      "[plugin.config]\nruntime_endpoint = \"unix://" +
          sock + "\"\nnode_status_period_s = 10\n",
      base);
  if (!h.errors().empty()) {
    std::fprintf(stderr, "%s\n", h.errors()[0].c_str());
    return 1;
  }
  auto& hub = h.capture("edgehub");
  if (!h.start()) return 1;
  int rv = 0;
  auto apply = [&](const std::string& op, const std::string& name) {
    auto m =
        kedge::make_message("edgecontroller", "resource", op, "default/pod/" + name, pod(name));
    m.header.resource_version = std::to_string(++rv);
    (void)h.send("metamanager", m);
  };
  auto running = [&](const std::string& name) {
    return [name](const kedge::Message& m) {
      return m.route.resource == "default/podpatch/" + name && m.content.is_string() &&
             std::string(m.content.as_string()).find("\"phase\":\"Running\"") != std::string::npos;
    };
  };
  auto sandboxes = [&](const std::string& label, const std::string& value) {
    pb::ListPodSandboxRequest req;
    (*req.mutable_filter()->mutable_label_selector())[label] = value;
    pb::ListPodSandboxResponse res;
    (void)cri.call("ListPodSandbox", cri.runtime(), &pb::RuntimeService::Stub::ListPodSandbox, req,
                   &res);
    std::vector<std::string> ids;
    for (auto& sb : res.items()) ids.push_back(sb.id());
    return ids;
  };
  auto remove_raw = [&] {
    for (auto& id : sandboxes("kedge.bench", "raw")) {
      pb::StopPodSandboxRequest s;
      s.set_pod_sandbox_id(id);
      pb::StopPodSandboxResponse sr;
      (void)cri.call("StopPodSandbox", cri.runtime(), &pb::RuntimeService::Stub::StopPodSandbox, s,
                     &sr);
      pb::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(id);
      pb::RemovePodSandboxResponse rr;
      (void)cri.call("RemovePodSandbox", cri.runtime(), &pb::RuntimeService::Stub::RemovePodSandbox,
                     r, &rr);
    }
  };
  // Wait for the runtime to be seen ready (first node status).
  Harness::eventually(
      [&] { return h.metrics_text().find("kedge_edged_runtime_ready 1") != std::string::npos; },
      30s);

  std::printf("== 1. pod start: raw CRI calls vs edged (%d rounds each, alternating)\n", rounds);
  std::vector<double> raw, edged;
  for (int i = 0; i < rounds + 1; ++i) {  // round 0 warms both paths up
    // raw
    auto t0 = Clock::now();
    pb::RunPodSandboxRequest sreq;
    auto* sc = sreq.mutable_config();
    sc->mutable_metadata()->set_name("raw-" + std::to_string(i));
    sc->mutable_metadata()->set_namespace_("default");
    sc->mutable_metadata()->set_uid("raw-uid-" + std::to_string(i));
    sc->set_hostname("raw-" + std::to_string(i));
    sc->set_log_directory((base / ("raw-" + std::to_string(i))).string());
    (*sc->mutable_labels())["kedge.bench"] = "raw";
    sc->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        pb::CONTAINER);
    pb::RunPodSandboxResponse sres;
    if (auto s = cri.call("RunPodSandbox", cri.runtime(), &pb::RuntimeService::Stub::RunPodSandbox,
                          sreq, &sres, 120s);
        !s) {
      std::fprintf(stderr, "raw RunPodSandbox: %s\n", s.message().c_str());
      return 1;
    }
    pb::CreateContainerRequest creq;
    creq.set_pod_sandbox_id(sres.pod_sandbox_id());
    *creq.mutable_sandbox_config() = *sc;
    auto* cc = creq.mutable_config();
    cc->mutable_metadata()->set_name("c");
    cc->mutable_image()->set_image("localhost/busybox:local");
    cc->add_command("sleep");
    cc->add_command("3600");
    cc->set_log_path("c.log");
    pb::CreateContainerResponse cres;
    (void)cri.call("CreateContainer", cri.runtime(), &pb::RuntimeService::Stub::CreateContainer,
                   creq, &cres);
    pb::StartContainerRequest stq;
    stq.set_container_id(cres.container_id());
    pb::StartContainerResponse sts;
    (void)cri.call("StartContainer", cri.runtime(), &pb::RuntimeService::Stub::StartContainer, stq,
                   &sts);
    pb::PodSandboxStatusRequest psq;
    psq.set_pod_sandbox_id(sres.pod_sandbox_id());
    pb::PodSandboxStatusResponse pss;
    (void)cri.call("PodSandboxStatus", cri.runtime(), &pb::RuntimeService::Stub::PodSandboxStatus,
                   psq, &pss);
    auto t1 = Clock::now();
    if (i > 0) raw.push_back(ms(t1 - t0));
    remove_raw();
    // edged
    std::string name = "lat-" + std::to_string(i);
    t0 = Clock::now();
    apply("insert", name);
    if (!hub.wait_for(running(name), 60s)) {
      std::fprintf(stderr, "pod %s did not run\n", name.c_str());
      return 1;
    }
    t1 = Clock::now();
    if (i > 0) edged.push_back(ms(t1 - t0));
    apply("delete", name);
    Harness::eventually([&] { return sandboxes("io.kubernetes.pod.uid", "uid-" + name).empty(); },
                        60s);
  }
  summary("raw CRI (sandbox+create+start+IP)", raw);
  summary("edged (cache to Running reported)", edged);
  double rm = std::accumulate(raw.begin(), raw.end(), 0.0) / static_cast<double>(raw.size());
  double em = std::accumulate(edged.begin(), edged.end(), 0.0) / static_cast<double>(edged.size());
  std::printf("edged / raw (means): %.2f; edged's own share: %.1f ms per pod\n", em / rm, em - rm);

  std::printf("== 2. %d pods on one node\n", pods);
  int64_t rss_idle = status_kb("VmRSS:");
  auto t0 = Clock::now();
  for (int i = 0; i < pods; ++i) apply("insert", "p" + std::to_string(i));
  for (int i = 0; i < pods; ++i)
    if (!hub.wait_for(running("p" + std::to_string(i)), 300s)) {
      std::fprintf(stderr, "pod p%d did not run\n", i);
      return 1;
    }
  std::printf("all %d Running after %.1f s (%.0f ms per pod)\n", pods, ms(Clock::now() - t0) / 1000,
              ms(Clock::now() - t0) / pods);
  std::this_thread::sleep_for(3s);
  double c0 = cpu_seconds();
  auto w0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(steady));
  double cpu = (cpu_seconds() - c0) / std::chrono::duration<double>(Clock::now() - w0).count();
  std::printf(
      "steady state over %d s: CPU %.2f%% of one core; VmRSS %ld kB (before any pod %ld kB, "
      "process before the kernel %ld kB), VmHWM %ld kB\n",
      steady, cpu * 100, static_cast<long>(status_kb("VmRSS:")), static_cast<long>(rss_idle),
      static_cast<long>(rss_before_kernel), static_cast<long>(status_kb("VmHWM:")));
  t0 = Clock::now();
  for (int i = 0; i < pods; ++i) apply("delete", "p" + std::to_string(i));
  Harness::eventually([&] { return sandboxes("kedge.io/managed", "true").empty(); }, 300s);
  std::printf("all %d removed after %.1f s\n", pods, ms(Clock::now() - t0) / 1000);
  h.stop();
  fs::remove_all(base);
  return 0;
}
