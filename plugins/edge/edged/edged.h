// edged's one class, declared for the files that implement it, one seam
// each: edged.cpp (plugin, worker, desired state, jobs), runtime.cpp (CRI
// calls, sandboxes, images), volumes.cpp, env.cpp, containers.cpp (start,
// restart, replace), probes.cpp, pod_status.cpp and node_status.cpp. The
// pure parts (quantities, QoS, back-off, phase) are in pod_util.h. Not
// installed: the plugin's private interior.
#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cri.h"
#include "kedge/common/json.h"
#include "kedge/common/net.h"
#include "kedge/plugin.h"
#include "pod_util.h"

namespace kedge::edged {

namespace json = boost::json;
namespace fs = std::filesystem;
namespace pb = runtime::v1;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;

// edged's config (kSettings in edged.cpp declares each key).
struct Settings {
  std::string runtime_endpoint;
  int64_t runtime_request_timeout_ms = 0, runtime_retry_ms = 0, image_pull_timeout_ms = 0;
  int64_t sync_period_ms = 0, backoff_initial_ms = 0, backoff_max_ms = 0;
  int64_t pod_status_heartbeat_s = 0, node_status_period_s = 0;
  std::string node_ip;
  int64_t max_pods = 0, reserved_memory_mb = 0;
  std::string metamanager;
};
using Clock = std::chrono::steady_clock;

inline constexpr const char* kManaged = "kedge.io/managed";
inline constexpr const char* kPodName = "io.kubernetes.pod.name";
inline constexpr const char* kPodNs = "io.kubernetes.pod.namespace";
inline constexpr const char* kPodUid = "io.kubernetes.pod.uid";
inline constexpr const char* kContainerName = "io.kubernetes.container.name";
inline constexpr const char* kHash = "kedge.io/container-hash";
inline constexpr const char* kGrace = "kedge.io/termination-grace-seconds";
inline constexpr const char* kKubeletVersion = "v1.22.17-kedge-0.1.0";

using kedge::json_path::find;
inline constexpr auto& str = kedge::json_path::scalar_text;
inline constexpr auto& num = kedge::json_path::integer_at;
inline constexpr auto& arr = kedge::json_path::array_at;

struct ProbeState {
  Clock::time_point next{};
  int successes = 0, failures = 0;
  bool ok = false;
};

struct Track {                     // one container of a pod, across its restarts
  Clock::time_point not_before{};  // back-off
  int pull_failures = 0;
  json::object last_terminated;
  std::string waiting_reason, waiting_message;
  std::string probed_id;
  ProbeState liveness, readiness;
  uint32_t next_attempt = 0;  // a replaced container's successor keeps counting
};

struct Pod {
  json::value obj;  // as the cloud sent it
  std::string uid, ns, name;
  std::map<std::string, Track> tracks;  // by container name
  std::string start_time;
  std::string last_status;
  Clock::time_point last_sent{};
  std::map<std::string, std::pair<std::string, std::string>> conds;  // type -> status, since
  bool volumes_ready = false;
  std::string pod_error;  // sandbox or volume trouble, shown as the containers' waiting reason
  std::string pod_error_reason;
  std::set<std::string> uses;  // "configmap/<name>", "secret/<name>"
  std::string sandbox;         // the ready sandbox this pass found or made
  bool touched = false;        // this pass started or stopped something
  const json::object& spec() const {
    static const json::object kEmpty;
    auto* s = find(obj, {"spec"});
    return s && s->is_object() ? s->as_object() : kEmpty;
  }
};

// The node's registration (kubelet's registerWithAPIServer): the worker
// sends it and acts on the outcome; the reply, on the router's thread, only
// records it here.
struct NodeRegistration {
  enum State : int { kIdle, kInFlight, kCreated, kExists, kFailed, kDone };
  std::atomic<int> state{kIdle};
  std::mutex mu;
  std::string why;  // kFailed: what the cloud or metamanager said
};

struct Actual {
  std::map<std::string, std::vector<pb::PodSandbox>> sandboxes;  // by pod UID
  std::map<std::string, std::vector<pb::Container>> containers;  // by sandbox id
};

class Edged final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override;
  Status start() override;
  Status stop() override;
  // From metamanager: stored pods (and configmaps and secrets) as they change.
  void on_message(const MessagePtr& m) override;

 private:
  // ---- the worker and the desired state (edged.cpp) ----
  void run();
  void wait(std::chrono::milliseconds d);
  // metamanager's answer to a query: the stored values (JSON strings).
  // `ok` (if given) is false when metamanager did not answer: not the same
  // as an empty answer.
  json::array query(const std::string& key, bool* ok = nullptr);
  static std::vector<json::value> parsed(const json::array& a);
  // Until metamanager answers: with no answer every running pod would look
  // like a leftover and be removed.
  void load_desired();
  void upsert(const json::value& obj);
  void drain_inbox();

  // ---- the CRI runtime (runtime.cpp) ----
  void check_runtime();
  template <typename Req, typename Resp>
  Status rt(const char* what,
            grpc::Status (pb::RuntimeService::Stub::*method)(grpc::ClientContext*, const Req&,
                                                             Resp*),
            const Req& req, Resp* resp, std::chrono::milliseconds timeout = {}) {
    Status s = cri_->call(what, cri_->runtime(), method, req, resp, timeout);
    if (!s) {
      cri_errors_->inc();
      if (s.code() == Code::kUnavailable) runtime_ready_ = false;
    }
    return s;
  }
  // False if either list failed: a partial view would make running pods look
  // missing (duplicate sandboxes) or containers look absent (second copies).
  bool observe(Actual& a);
  // ContainerStatus, asked again only when the listed state changed.
  const pb::ContainerStatus* status_of(const pb::Container& c);
  std::string sandbox_ip(const std::string& id);

  // ---- reconcile passes and the jobs that stop pods (edged.cpp) ----
  void sync_once();
  bool busy(const std::string& uid);
  // Runs `job` on a thread of its own while the pod is left alone (busy), so
  // one slow stop holds no other pod.
  void run_async(const std::string& uid, std::function<void()> job);
  // Stops a pod's containers (in parallel, with the grace period), then
  // removes them, its sandboxes and its files.
  void terminate_async(const std::string& uid, std::vector<pb::PodSandbox> sbs, const Actual& a,
                       int64_t grace);
  void join_jobs(bool all);

  // ---- CRI calls (runtime.cpp) ----
  void stop_container(const std::string& id, int64_t grace);
  void remove_container(const std::string& id);
  void remove_sandbox(const std::string& id);
  int64_t grace_of(const Pod& p);

  // ---- volumes (volumes.cpp) ----
  fs::path pod_dir(const Pod& p) { return root_ / "pods" / p.uid; }
  // Writes configMap and secret volumes, makes emptyDir and hostPath
  // directories; an error (a missing configmap, say) is the pod's until fixed.
  bool prepare_volumes(Pod& p);
  bool fail_pod(Pod& p, const std::string& reason, const std::string& message);

  // ---- sandboxes and images (runtime.cpp) ----
  pb::PodSandboxConfig sandbox_config(const Pod& p, uint32_t attempt);
  // The ready sandbox of a pod (made if there is none); "" if it cannot be.
  std::string ensure_sandbox(Pod& p, const Actual& a, uint32_t& attempt);
  // The image, pulled as the policy says; false with the track's waiting
  // reason set if it is not there.
  bool ensure_image(const json::value& c, Track& t);
  std::chrono::milliseconds initial_backoff();
  std::chrono::milliseconds max_backoff();

  // ---- containers (containers.cpp) ----
  // Creates and starts one container (attempt = its restart count).
  bool start_container(Pod& p, const json::value& c, const std::string& sandbox,
                       uint32_t sandbox_attempt, uint32_t attempt, Track& t, const std::string& ip);
  // The newest instance of each container name in a sandbox; older exited
  // ones are removed (their last state was recorded when replaced).
  std::map<std::string, const pb::Container*> latest(const Actual& a, const std::string& sandbox);
  void record_terminated(Track& t, const pb::ContainerStatus& st);
  // An exited container: started again (attempt + 1) when the policy and
  // the back-off allow; true if it now runs.
  bool restart(Pod& p, const json::value& spec, const pb::Container& old,
               const std::string& sandbox, uint32_t sandbox_attempt, Track& t,
               const std::string& ip);
  void sync_pod(Pod& p, const Actual& a);
  static bool host_network(const Pod& p);

  // ---- probes (probes.cpp) ----
  bool run_probe(const json::value& pr, const json::value& c, const pb::Container& ctr,
                 const std::string& ip);
  // False if a failed liveness probe started a kill.
  bool probe(Pod& p, const json::value& c, const pb::Container& ctr, Track& t,
             const std::string& ip);

  // ---- pod status (pod_status.cpp) ----
  json::object container_status(Pod& p, const json::value& c, const pb::Container* ctr, Track& t,
                                bool init, bool& ready, ContainerView& view);
  void condition(Pod& p, json::array& out, const std::string& type, bool value,
                 const std::string& reason = "");
  void report(Pod& p, const Actual& a);

  // ---- node status (node_status.cpp) ----
  std::string node_ip();
  void maybe_node_status();
  void register_node(const json::object& status, const std::string& arch);

  struct Job {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  Settings s_;
  std::string node_;
  fs::path root_;
  std::unique_ptr<kedge::cri::Client> cri_;
  std::string endpoint_;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<MessagePtr> inbox_;
  std::atomic<bool> stopping_{false};
  // worker-owned
  std::map<std::string, Pod> pods_;  // ns/name -> pod
  std::map<std::string, pb::ContainerStatus> cstatus_;
  std::map<std::string, std::string> sandbox_ip_;
  std::vector<pb::Container> fresh_;
  std::atomic<bool> runtime_ready_{false};  // rt() clears it from job threads too
  std::string runtime_why_ = "not checked yet", runtime_version_;
  bool node_dirty_ = true;
  Clock::time_point node_sent_{};
  bool node_ready_ = false;
  std::string node_ready_since_, node_since_, node_ip_;
  std::shared_ptr<NodeRegistration> reg_ = std::make_shared<NodeRegistration>();
  // termination jobs
  std::mutex jobs_mu_;
  std::map<std::string, int> busy_;  // pod UID -> jobs running on it
  std::list<Job> jobs_;
  kedge::Gauge *running_ = nullptr, *runtime_up_ = nullptr;
  kedge::Counter *starts_ = nullptr, *restarts_ = nullptr, *cri_errors_ = nullptr,
                 *syncs_ = nullptr;
};

}  // namespace kedge::edged
