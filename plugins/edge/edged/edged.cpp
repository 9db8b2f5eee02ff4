// edged: the edge's lightweight kubelet (docs/edged.md). It runs the pods
// the cloud bound to this node on a CRI runtime (containerd) and reports
// their status and the node's.
//
// * Desired state: the pods in metamanager's cache (queried at start, so an
//   edge restarted without the cloud brings its pods back) and the changes
//   metamanager hands over (insert, update, delete of <ns>/pod/<name>).
// * A worker thread reconciles desired with actual (ListPodSandbox and
//   ListContainers, by kedge's labels) every sync_period_ms and on every
//   change: sandbox, image pull by policy, init containers in order, then
//   the containers (env, command, args, ports, CPU and memory limits,
//   emptyDir/hostPath/configMap/secret volumes), restarts by policy with
//   crash-loop back-off, liveness and readiness probes (exec, httpGet,
//   tcpSocket), replacement when a container's spec changes, graceful
//   termination. Sandboxes and containers it finds and no desired pod
//   claims (a previous run's, a pod deleted while edged was down) are
//   removed; those of desired pods are adopted.
// * A runtime that is not there (yet) is polled; nothing crashes, and the
//   node reports Ready False meanwhile.
// * Status: a podpatch (op patch, the merge patch as a JSON string, as
//   KubeEdge 1.12's edged) when a pod's status changes and every
//   pod_status_heartbeat_s; a nodepatch every node_status_period_s; both
//   through metamanager and edgehub.
#include "cri.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/logger.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "k8s.h"
#include "kedge/common/json.h"
#include "kedge/common/pki.h"
#include "kedge/plugin.h"
#include "pod_util.h"

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
namespace pb = runtime::v1;
using namespace kedge::edged;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kManaged = "kedge.io/managed";
constexpr const char* kPodName = "io.kubernetes.pod.name";
constexpr const char* kPodNs = "io.kubernetes.pod.namespace";
constexpr const char* kPodUid = "io.kubernetes.pod.uid";
constexpr const char* kContainerName = "io.kubernetes.container.name";
constexpr const char* kHash = "kedge.io/container-hash";
constexpr const char* kGrace = "kedge.io/termination-grace-seconds";
constexpr const char* kKubeletVersion = "v1.22.17-kedge-0.1.0";

using kedge::json_path::find;
constexpr auto& str = kedge::json_path::scalar_text;
constexpr auto& num = kedge::json_path::integer_at;
constexpr auto& arr = kedge::json_path::array_at;
std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string l;
  std::getline(f, l);
  return l;
}

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

struct Actual {
  std::map<std::string, std::vector<pb::PodSandbox>> sandboxes;  // by pod UID
  std::map<std::string, std::vector<pb::Container>> containers;  // by sandbox id
};

class Edged final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    cfg_ = cfg;
    node_ = ctx.node_name();
    root_ = ctx.data_dir() / "edged";
    std::error_code ec;
    fs::create_directories(root_ / "pods", ec);
    // Secrets and configmaps are written below it: only root may look.
    fs::permissions(root_, fs::perms::owner_all, ec);
    if (ec) return kedge::invalid_argument("cannot create " + root_.string() + ": " + ec.message());
    auto& m = ctx.metrics();
    running_ = &m.gauge("kedge_edged_pods", "Pods edged runs (desired)");
    starts_ = &m.counter("kedge_edged_container_starts_total", "Containers started");
    restarts_ = &m.counter("kedge_edged_container_restarts_total", "Containers restarted");
    cri_errors_ = &m.counter("kedge_edged_cri_errors_total", "CRI calls that failed");
    runtime_up_ = &m.gauge("kedge_edged_runtime_ready", "1 while the CRI runtime answers");
    syncs_ = &m.counter("kedge_edged_syncs_total", "Reconcile passes");
    return {};
  }

  Status start() override {
    stopping_ = false;
    // A relative socket path is under the agent's data directory.
    std::string ep = cfg_.get_string("runtime_endpoint");
    std::string path = ep.rfind("unix://", 0) == 0 ? ep.substr(7) : ep;
    if (!path.empty() && path[0] != '/')
      path = (ctx_->data_dir() / path).lexically_normal().string();
    endpoint_ = "unix://" + path;
    cri_ = std::make_unique<kedge::cri::Client>(
        endpoint_, std::chrono::milliseconds(cfg_.get_int("runtime_request_timeout_ms")));
    worker_ = std::thread([this] { run(); });
    return {};
  }

  Status stop() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    join_jobs(true);
    return {};
  }

  // From metamanager: stored pods (and configmaps and secrets) as they change.
  void on_message(const MessagePtr& m) override {
    if (m->is_response()) return;
    {
      std::lock_guard lock(mu_);
      inbox_.push_back(m);
    }
    cv_.notify_all();
  }

 private:
  // ---- the worker ----
  void run() {
    load_desired();
    auto retry = std::chrono::milliseconds(cfg_.get_int("runtime_retry_ms"));
    auto period = std::chrono::milliseconds(cfg_.get_int("sync_period_ms"));
    while (!stopping_) {
      drain_inbox();
      if (!runtime_ready_) {
        check_runtime();
        if (!runtime_ready_) {
          maybe_node_status();
          wait(retry);
          continue;
        }
      }
      sync_once();
      maybe_node_status();
      join_jobs(false);
      wait(period);
    }
  }

  void wait(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [this] { return stopping_ || !inbox_.empty(); });
  }

  // metamanager's answer to a query: the stored values (JSON strings).
  // `ok` (if given) is false when metamanager did not answer: not the same
  // as an empty answer.
  json::array query(const std::string& key, bool* ok = nullptr) {
    if (ok) *ok = false;
    auto p = std::make_shared<std::promise<json::value>>();
    auto f = p->get_future();
    ctx_->request("metamanager",
                  kedge::share(kedge::make_message(ctx_->name(), "meta", "query", key)), 10s,
                  [p](Status s, MessagePtr r) {
                    p->set_value(s && r && r->content.is_array() ? r->content : json::value());
                  });
    auto until = Clock::now() + 11s;
    while (f.wait_for(100ms) != std::future_status::ready)
      if (stopping_ || Clock::now() > until) return {};
    json::value v = f.get();
    if (!v.is_array()) return {};
    if (ok) *ok = true;
    return v.as_array();
  }
  static std::vector<json::value> parsed(const json::array& a) {
    std::vector<json::value> out;
    for (auto& v : a) {
      if (!v.is_string()) continue;
      json::error_code ec;
      auto o = json::parse(v.as_string(), ec);
      if (!ec && o.is_object()) out.push_back(std::move(o));
    }
    return out;
  }

  // Until metamanager answers: with no answer every running pod would look
  // like a leftover and be removed.
  void load_desired() {
    json::array pods;
    for (bool ok = false; !ok && !stopping_;) {
      pods = query("*/pod", &ok);
      if (!ok) {
        log_->warn("metamanager did not answer the query for this node's pods; asking again");
        wait(1s);
      }
    }
    for (auto& p : parsed(pods)) upsert(p);
    log_->info("{} pod(s) for this node in the cache", pods_.size());
    running_->set(static_cast<int64_t>(pods_.size()));
  }

  void upsert(const json::value& obj) {
    std::string node = str(obj, {"spec", "nodeName"});
    std::string ns = str(obj, {"metadata", "namespace"}), name = str(obj, {"metadata", "name"});
    if (name.empty()) return;
    if (ns.empty()) ns = "default";
    std::string key = ns + "/" + name;
    if (!node.empty() && node != node_) {
      log_->debug("pod {} is bound to {}, not this node; ignored", key, node);
      return;
    }
    auto& p = pods_[key];
    std::string uid = str(obj, {"metadata", "uid"});
    if (!p.uid.empty() && p.uid != uid) {  // re-created under the same name
      p = Pod{};
    }
    const json::value* new_spec = find(obj, {"spec"});
    bool spec_changed =
        p.obj.is_null() || !new_spec || !new_spec->is_object() || new_spec->as_object() != p.spec();
    p.obj = obj;
    p.uid = uid.empty() ? key : uid;
    p.ns = ns;
    p.name = name;
    if (spec_changed) p.volumes_ready = false;
    if (p.start_time.empty()) p.start_time = kedge::k8s::now_rfc3339();
  }

  void drain_inbox() {
    std::vector<MessagePtr> in;
    {
      std::lock_guard lock(mu_);
      in.swap(inbox_);
    }
    for (auto& m : in) {
      const std::string& r = m->route.resource;
      size_t a = r.find('/'), b = a == std::string::npos ? a : r.find('/', a + 1);
      if (b == std::string::npos) continue;
      std::string ns = r.substr(0, a), type = r.substr(a + 1, b - a - 1), name = r.substr(b + 1);
      const std::string& op = m->route.operation;
      if (type == "pod") {
        if (op == kedge::op::kDelete) {
          auto it = pods_.find(ns + "/" + name);
          if (it != pods_.end()) {
            log_->info("pod {}/{} deleted: terminating it", ns, name);
            pods_.erase(it);  // its sandbox is now an orphan: terminated next pass
          }
        } else if (m->content.is_object()) {
          upsert(m->content);
        }
      } else if (type == "configmap" || type == "secret") {
        // Pods that mount it get their files written again.
        for (auto& [k, p] : pods_)
          if (p.ns == ns && p.uses.count(type + "/" + name)) p.volumes_ready = false;
      }
    }
    running_->set(static_cast<int64_t>(pods_.size()));
  }

  // ---- runtime ----
  void check_runtime() {
    pb::VersionRequest vreq;
    pb::VersionResponse v;
    Status s =
        cri_->call("Version", cri_->runtime(), &pb::RuntimeService::Stub::Version, vreq, &v, 2s);
    bool ready = false;
    std::string why = s ? "" : s.message();
    if (s) {
      pb::StatusRequest sreq;
      pb::StatusResponse st;
      Status s2 =
          cri_->call("Status", cri_->runtime(), &pb::RuntimeService::Stub::Status, sreq, &st, 2s);
      ready = s2.is_ok();
      if (!s2) why = s2.message();
      for (auto& c : st.status().conditions())
        if (c.type() == "RuntimeReady" && !c.status()) {
          ready = false;
          why = "RuntimeReady is false: " + c.reason() + " " + c.message();
        }
      runtime_version_ = v.runtime_name() + "://" + v.runtime_version();
    }
    if (ready != runtime_ready_ || (!ready && why != runtime_why_)) {
      if (ready)
        log_->info("container runtime {} ready at {}", runtime_version_, endpoint_);
      else
        log_->warn("container runtime at {} not ready ({}); retrying every {} ms", endpoint_, why,
                   cfg_.get_int("runtime_retry_ms"));
      node_dirty_ = true;
    }
    runtime_ready_ = ready;
    runtime_why_ = why;
    runtime_up_->set(ready ? 1 : 0);
  }

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
  bool observe(Actual& a) {
    pb::ListPodSandboxRequest sreq;
    (*sreq.mutable_filter()->mutable_label_selector())[kManaged] = "true";
    pb::ListPodSandboxResponse sres;
    if (!rt("ListPodSandbox", &pb::RuntimeService::Stub::ListPodSandbox, sreq, &sres)) return false;
    for (auto& s : sres.items()) {
      auto it = s.labels().find(kPodUid);
      if (it != s.labels().end()) a.sandboxes[it->second].push_back(s);
    }
    pb::ListContainersRequest creq;
    (*creq.mutable_filter()->mutable_label_selector())[kManaged] = "true";
    pb::ListContainersResponse cres;
    if (!rt("ListContainers", &pb::RuntimeService::Stub::ListContainers, creq, &cres)) return false;
    std::set<std::string> seen;
    for (auto& c : cres.containers()) {
      a.containers[c.pod_sandbox_id()].push_back(c);
      seen.insert(c.id());
    }
    for (auto it = cstatus_.begin(); it != cstatus_.end();)
      it = seen.count(it->first) ? std::next(it) : cstatus_.erase(it);
    return true;
  }

  // ContainerStatus, asked again only when the listed state changed.
  const pb::ContainerStatus* status_of(const pb::Container& c) {
    auto it = cstatus_.find(c.id());
    if (it != cstatus_.end() && it->second.state() == c.state()) return &it->second;
    pb::ContainerStatusRequest req;
    req.set_container_id(c.id());
    pb::ContainerStatusResponse res;
    if (!rt("ContainerStatus", &pb::RuntimeService::Stub::ContainerStatus, req, &res))
      return nullptr;
    return &(cstatus_[c.id()] = res.status());
  }

  std::string sandbox_ip(const std::string& id) {
    {
      std::lock_guard lock(jobs_mu_);  // remove_sandbox runs on job threads too
      if (auto it = sandbox_ip_.find(id); it != sandbox_ip_.end()) return it->second;
    }
    pb::PodSandboxStatusRequest req;
    req.set_pod_sandbox_id(id);
    pb::PodSandboxStatusResponse res;
    if (!rt("PodSandboxStatus", &pb::RuntimeService::Stub::PodSandboxStatus, req, &res)) return {};
    std::string ip = res.status().network().ip();
    if (ip.empty()) return ip;  // asked again next time
    std::lock_guard lock(jobs_mu_);
    return sandbox_ip_[id] = ip;
  }

  // ---- one reconcile pass ----
  void sync_once() {
    syncs_->inc();
    Actual a;
    if (!observe(a)) {
      log_->warn("cannot list the runtime's sandboxes and containers; pass skipped");
      return;
    }
    if (!runtime_ready_) return;
    std::set<std::string> wanted;
    for (auto& [key, p] : pods_) {
      wanted.insert(p.uid);
      if (busy(p.uid)) continue;
      sync_pod(p, a);
      report(p, a);
      if (stopping_) return;
    }
    // What no desired pod claims: a previous run's leftovers, deleted pods.
    for (auto& [uid, sbs] : a.sandboxes) {
      if (wanted.count(uid) || busy(uid)) continue;
      int64_t grace = 30;
      std::string name;
      for (auto& sb : sbs) {
        if (auto g = sb.annotations().find(kGrace); g != sb.annotations().end())
          grace = std::atoll(g->second.c_str());
        name = sb.metadata().namespace_() + "/" + sb.metadata().name();
      }
      log_->info("removing pod {} (UID {}): no longer assigned to this node", name, uid);
      terminate_async(uid, sbs, a, grace);
    }
  }

  bool busy(const std::string& uid) {
    std::lock_guard lock(jobs_mu_);
    auto it = busy_.find(uid);
    return it != busy_.end() && it->second > 0;
  }

  // Runs `job` on a thread of its own while the pod is left alone (busy), so
  // one slow stop holds no other pod.
  void run_async(const std::string& uid, std::function<void()> job) {
    {
      std::lock_guard lock(jobs_mu_);
      ++busy_[uid];
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread t([this, uid, job = std::move(job), done] {
      job();
      {
        std::lock_guard lock(jobs_mu_);
        if (--busy_[uid] <= 0) busy_.erase(uid);
      }
      *done = true;
      cv_.notify_all();
    });
    std::lock_guard lock(jobs_mu_);
    jobs_.push_back({std::move(t), done});
  }

  // Stops a pod's containers (in parallel, with the grace period), then
  // removes them, its sandboxes and its files.
  void terminate_async(const std::string& uid, std::vector<pb::PodSandbox> sbs, const Actual& a,
                       int64_t grace) {
    std::vector<pb::Container> cs;
    for (auto& sb : sbs)
      if (auto it = a.containers.find(sb.id()); it != a.containers.end())
        cs.insert(cs.end(), it->second.begin(), it->second.end());
    run_async(uid, [this, uid, sbs, cs, grace] {
      std::vector<std::thread> stops;
      for (auto& c : cs)
        if (c.state() == pb::CONTAINER_RUNNING || c.state() == pb::CONTAINER_CREATED)
          stops.emplace_back([this, id = c.id(), grace] { stop_container(id, grace); });
      for (auto& s : stops) s.join();
      for (auto& c : cs) remove_container(c.id());
      for (auto& sb : sbs) remove_sandbox(sb.id());
      std::error_code ec;
      fs::remove_all(root_ / "pods" / uid, ec);
    });
  }

  void join_jobs(bool all) {
    std::list<Job> finished;
    {
      std::lock_guard lock(jobs_mu_);
      for (auto it = jobs_.begin(); it != jobs_.end();) {
        if (all || *it->done) {
          finished.splice(finished.end(), jobs_, it++);
        } else {
          ++it;
        }
      }
    }
    for (auto& j : finished) j.thread.join();
  }

  void stop_container(const std::string& id, int64_t grace) {
    pb::StopContainerRequest req;
    req.set_container_id(id);
    req.set_timeout(grace);
    pb::StopContainerResponse res;
    (void)rt("StopContainer", &pb::RuntimeService::Stub::StopContainer, req, &res,
             std::chrono::seconds(grace + 30));
  }
  void remove_container(const std::string& id) {
    pb::RemoveContainerRequest req;
    req.set_container_id(id);
    pb::RemoveContainerResponse res;
    (void)rt("RemoveContainer", &pb::RuntimeService::Stub::RemoveContainer, req, &res);
  }
  void remove_sandbox(const std::string& id) {
    pb::StopPodSandboxRequest sreq;
    sreq.set_pod_sandbox_id(id);
    pb::StopPodSandboxResponse sres;
    (void)rt("StopPodSandbox", &pb::RuntimeService::Stub::StopPodSandbox, sreq, &sres, 60s);
    pb::RemovePodSandboxRequest rreq;
    rreq.set_pod_sandbox_id(id);
    pb::RemovePodSandboxResponse rres;
    (void)rt("RemovePodSandbox", &pb::RuntimeService::Stub::RemovePodSandbox, rreq, &rres, 60s);
    std::lock_guard lock(jobs_mu_);
    sandbox_ip_.erase(id);
  }

  int64_t grace_of(const Pod& p) {
    return std::max<int64_t>(0, num(p.obj, {"spec", "terminationGracePeriodSeconds"}, 30));
  }

  // ---- volumes ----
  fs::path pod_dir(const Pod& p) { return root_ / "pods" / p.uid; }

  // Writes configMap and secret volumes, makes emptyDir and hostPath
  // directories; an error (a missing configmap, say) is the pod's until fixed.
  bool prepare_volumes(Pod& p) {
    p.uses.clear();
    for (auto& v : arr(p.obj, {"spec", "volumes"})) {
      std::string name = str(v, {"name"});
      std::error_code ec;
      // Names become path components: DNS labels only (as Kubernetes checks).
      bool label = !name.empty() && name.size() <= 63 && name.front() != '-' && name.back() != '-';
      for (char ch : name)
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) label = false;
      if (!label)
        return fail_pod(p, "CreateContainerConfigError",
                        "volume name \"" + name + "\" is not a DNS label ([a-z0-9-], at most 63)");
      if (find(v, {"emptyDir"})) {
        fs::create_directories(pod_dir(p) / "volumes" / "empty-dir" / name, ec);
      } else if (auto* hp = find(v, {"hostPath"})) {
        std::string path = str(*hp, {"path"}), type = str(*hp, {"type"});
        if (type == "DirectoryOrCreate") fs::create_directories(path, ec);
        if ((type == "Directory" && !fs::is_directory(path)) ||
            (type == "File" && !fs::is_regular_file(path)))
          return fail_pod(p, "CreateContainerConfigError",
                          "hostPath volume \"" + name + "\": " + path + " is not a " +
                              (type == "File" ? "file" : "directory"));
      } else if (find(v, {"configMap"}) || find(v, {"secret"})) {
        bool secret = find(v, {"secret"}) != nullptr;
        const json::value& src = *find(v, {secret ? "secret" : "configMap"});
        std::string obj_name = str(src, {secret ? "secretName" : "name"});
        bool optional = find(src, {"optional"}) && find(src, {"optional"})->is_bool() &&
                        find(src, {"optional"})->as_bool();
        std::string kind = secret ? "secret" : "configmap";
        p.uses.insert(kind + "/" + obj_name);
        auto found = parsed(query(p.ns + "/" + kind + "/" + obj_name));
        if (found.empty() && !optional)
          return fail_pod(p, "CreateContainerConfigError",
                          kind + " \"" + obj_name + "\" not found (volume \"" + name + "\")");
        fs::path dir = pod_dir(p) / "volumes" / kind / name;
        fs::create_directories(dir, ec);
        std::map<std::string, std::string> files;
        if (!found.empty()) {
          for (const char* field : {"data", "binaryData"}) {
            auto* d = find(found[0], {field});
            if (!d || !d->is_object()) continue;
            for (auto& [k, val] : d->as_object()) {
              std::string text = val.is_string() ? std::string(val.as_string()) : "";
              if (secret || std::string(field) == "binaryData") {
                auto dec = kedge::pki::base64url_decode(std::string(text));
                // Standard base64 (secrets): map to base64url first.
                std::string t = text;
                for (auto& c : t) c = c == '+' ? '-' : c == '/' ? '_' : c;
                while (!t.empty() && t.back() == '=') t.pop_back();
                dec = kedge::pki::base64url_decode(t);
                if (!dec.ok())
                  return fail_pod(
                      p, "CreateContainerConfigError",
                      kind + " \"" + obj_name + "\": key " + std::string(k) + " is not base64");
                text = dec.value;
              }
              files[std::string(k)] = text;
            }
          }
        }
        auto& items = arr(src, {"items"});
        std::map<std::string, std::string> out;
        if (items.empty()) {
          out = files;
        } else {
          for (auto& it : items) {
            std::string key = str(it, {"key"}), path = str(it, {"path"});
            if (!files.count(key)) {
              if (optional) continue;
              return fail_pod(p, "CreateContainerConfigError",
                              kind + " \"" + obj_name + "\" has no key \"" + key + "\"");
            }
            out[path.empty() ? key : path] = files[key];
          }
        }
        int64_t mode = num(src, {"defaultMode"}, 0644);
        if (mode < 0 || mode > 0777)
          return fail_pod(p, "CreateContainerConfigError",
                          "volume \"" + name + "\": defaultMode " + std::to_string(mode) +
                              " is not between 0 and 0777");
        // Files not in the object any more go.
        for (auto& e : fs::directory_iterator(dir, ec))
          if (!out.count(e.path().filename().string())) fs::remove_all(e.path(), ec);
        for (auto& [rel, content] : out) {
          if (rel.find("..") != std::string::npos || (!rel.empty() && rel[0] == '/'))
            return fail_pod(p, "CreateContainerConfigError",
                            "volume \"" + name + "\": path \"" + rel + "\" escapes the volume");
          fs::path target = dir / rel;
          fs::create_directories(target.parent_path(), ec);
          fs::path tmp = target.string() + ".kedge-tmp";
          {
            std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
            f << content;
          }
          fs::permissions(tmp, static_cast<fs::perms>(mode), ec);
          fs::rename(tmp, target, ec);
        }
      } else {
        std::string type = "unknown";
        if (auto* o = v.if_object())
          for (auto& [k, x] : *o)
            if (k != "name") type = std::string(k);
        return fail_pod(p, "CreateContainerConfigError",
                        "volume \"" + name + "\": type " + type + " is not supported by edged");
      }
    }
    p.pod_error.clear();
    p.pod_error_reason.clear();
    p.volumes_ready = true;
    return true;
  }

  bool fail_pod(Pod& p, const std::string& reason, const std::string& message) {
    if (p.pod_error != message) log_->warn("pod {}/{}: {}", p.ns, p.name, message);
    p.pod_error = message;
    p.pod_error_reason = reason;
    return false;
  }

  // ---- sandbox and containers ----
  pb::PodSandboxConfig sandbox_config(const Pod& p, uint32_t attempt) {
    pb::PodSandboxConfig c;
    auto* md = c.mutable_metadata();
    md->set_name(p.name);
    md->set_namespace_(p.ns);
    md->set_uid(p.uid);
    md->set_attempt(attempt);
    std::string host = str(p.obj, {"spec", "hostname"});
    bool host_net = find(p.obj, {"spec", "hostNetwork"}) &&
                    find(p.obj, {"spec", "hostNetwork"})->is_bool() &&
                    find(p.obj, {"spec", "hostNetwork"})->as_bool();
    c.set_hostname(host_net ? "" : host.empty() ? p.name : host);
    c.set_log_directory((pod_dir(p) / "logs").string());
    auto& labels = *c.mutable_labels();
    for (auto& [k, v] : kedge::k8s::labels_of(p.obj)) labels[k] = v;
    labels[kManaged] = "true";
    labels[kPodName] = p.name;
    labels[kPodNs] = p.ns;
    labels[kPodUid] = p.uid;
    (*c.mutable_annotations())[kGrace] = std::to_string(grace_of(p));
    for (auto& ctr : arr(p.obj, {"spec", "containers"}))
      for (auto& port : arr(ctr, {"ports"})) {
        int64_t hp = num(port, {"hostPort"}, 0);
        if (hp <= 0) continue;
        auto* pm = c.add_port_mappings();
        pm->set_container_port(static_cast<int32_t>(num(port, {"containerPort"}, 0)));
        pm->set_host_port(static_cast<int32_t>(hp));
        std::string proto = str(port, {"protocol"});
        pm->set_protocol(proto == "UDP" ? pb::UDP : proto == "SCTP" ? pb::SCTP : pb::TCP);
        pm->set_host_ip(str(port, {"hostIP"}));
      }
    auto* ns = c.mutable_linux()->mutable_security_context()->mutable_namespace_options();
    ns->set_network(host_net ? pb::NODE : pb::POD);
    ns->set_pid(pb::CONTAINER);
    ns->set_ipc(pb::POD);
    return c;
  }

  // The ready sandbox of a pod (made if there is none); "" if it cannot be.
  std::string ensure_sandbox(Pod& p, const Actual& a, uint32_t& attempt) {
    const pb::PodSandbox* best = nullptr;
    uint32_t max_attempt = 0;
    bool any = false;
    if (auto it = a.sandboxes.find(p.uid); it != a.sandboxes.end())
      for (auto& sb : it->second) {
        any = true;
        max_attempt = std::max(max_attempt, sb.metadata().attempt());
        if (sb.state() == pb::SANDBOX_READY && (!best || sb.created_at() > best->created_at()))
          best = &sb;
      }
    if (best) {
      attempt = best->metadata().attempt();
      // Dead sandboxes of the same pod go.
      for (auto& sb : a.sandboxes.at(p.uid))
        if (sb.id() != best->id()) {
          if (auto c = a.containers.find(sb.id()); c != a.containers.end())
            for (auto& ctr : c->second) remove_container(ctr.id());
          remove_sandbox(sb.id());
        }
      return best->id();
    }
    if (any) {  // all dead (a reboot, the runtime restarted): start over
      for (auto& sb : a.sandboxes.at(p.uid)) {
        if (auto c = a.containers.find(sb.id()); c != a.containers.end())
          for (auto& ctr : c->second) remove_container(ctr.id());
        remove_sandbox(sb.id());
      }
    }
    attempt = any ? max_attempt + 1 : 0;
    pb::RunPodSandboxRequest req;
    *req.mutable_config() = sandbox_config(p, attempt);
    std::error_code ec;
    fs::create_directories(pod_dir(p) / "logs", ec);
    pb::RunPodSandboxResponse res;
    Status s = rt("RunPodSandbox", &pb::RuntimeService::Stub::RunPodSandbox, req, &res, 120s);
    if (!s) {
      fail_pod(p, "SandboxCreateError", s.message());
      return {};
    }
    log_->info("pod {}/{}: sandbox {} started (attempt {})", p.ns, p.name,
               res.pod_sandbox_id().substr(0, 12), attempt);
    p.pod_error.clear();
    return res.pod_sandbox_id();
  }

  // The image, pulled as the policy says; false with the track's waiting
  // reason set if it is not there.
  bool ensure_image(const json::value& c, Track& t) {
    std::string image = str(c, {"image"});
    std::string policy = str(c, {"imagePullPolicy"});
    if (policy.empty()) {
      size_t slash = image.rfind('/'), colon = image.rfind(':');
      bool tagged = colon != std::string::npos && (slash == std::string::npos || colon > slash);
      bool latest = !tagged || image.substr(colon + 1) == "latest";
      policy = latest && image.find('@') == std::string::npos ? "Always" : "IfNotPresent";
    }
    if (policy != "Always") {
      pb::ImageStatusRequest req;
      req.mutable_image()->set_image(image);
      pb::ImageStatusResponse res;
      Status s = cri_->call("ImageStatus", cri_->images(), &pb::ImageService::Stub::ImageStatus,
                            req, &res);
      if (s && res.has_image() && !res.image().id().empty()) return true;
      if (policy == "Never") {
        t.waiting_reason = "ErrImageNeverPull";
        t.waiting_message = "image \"" + image + "\" is not present and imagePullPolicy is Never";
        return false;
      }
    }
    pb::PullImageRequest req;
    req.mutable_image()->set_image(image);
    pb::PullImageResponse res;
    Status s = cri_->call("PullImage", cri_->images(), &pb::ImageService::Stub::PullImage, req,
                          &res, std::chrono::milliseconds(cfg_.get_int("image_pull_timeout_ms")));
    if (s) {
      t.pull_failures = 0;
      return true;
    }
    cri_errors_->inc();
    ++t.pull_failures;
    t.waiting_reason = t.pull_failures > 1 ? "ImagePullBackOff" : "ErrImagePull";
    t.waiting_message = s.message();
    t.not_before = Clock::now() + backoff(t.pull_failures, initial_backoff(), max_backoff());
    return false;
  }

  std::chrono::milliseconds initial_backoff() {
    return std::chrono::milliseconds(cfg_.get_int("backoff_initial_ms"));
  }
  std::chrono::milliseconds max_backoff() {
    return std::chrono::milliseconds(cfg_.get_int("backoff_max_ms"));
  }

  // Env: value, fieldRef, configMapKeyRef, secretKeyRef; envFrom.
  bool resolve_env(Pod& p, const json::value& c, const std::string& ip,
                   std::vector<std::pair<std::string, std::string>>& out, std::string& err) {
    auto lookup = [&](const std::string& kind, const std::string& name, const std::string& key,
                      bool& found) -> std::string {
      found = false;
      auto objs = parsed(query(p.ns + "/" + kind + "/" + name));
      if (objs.empty()) return {};
      auto* d = find(objs[0], {"data"});
      auto* v = d && d->is_object() ? d->as_object().if_contains(key) : nullptr;
      if (!v || !v->is_string()) return {};
      found = true;
      std::string text(v->as_string());
      if (kind == "secret") {
        for (auto& ch : text) ch = ch == '+' ? '-' : ch == '/' ? '_' : ch;
        while (!text.empty() && text.back() == '=') text.pop_back();
        auto dec = kedge::pki::base64url_decode(text);
        return dec.ok() ? dec.value : std::string();
      }
      return text;
    };
    for (auto& ef : arr(c, {"envFrom"})) {
      bool secret = find(ef, {"secretRef"}) != nullptr;
      std::string name = str(ef, {secret ? "secretRef" : "configMapRef", "name"});
      std::string kind = secret ? "secret" : "configmap";
      auto objs = parsed(query(p.ns + "/" + kind + "/" + name));
      if (objs.empty()) {
        err = kind + " \"" + name + "\" not found (envFrom)";
        return false;
      }
      if (auto* d = find(objs[0], {"data"}); d && d->is_object())
        for (auto& [k, v] : d->as_object()) {
          std::string val = v.is_string() ? std::string(v.as_string()) : "";
          if (secret) {
            for (auto& ch : val) ch = ch == '+' ? '-' : ch == '/' ? '_' : ch;
            while (!val.empty() && val.back() == '=') val.pop_back();
            auto dec = kedge::pki::base64url_decode(val);
            if (!dec.ok()) {
              err = "secret \"" + name + "\": key " + std::string(k) + " is not base64";
              return false;
            }
            val = dec.value;
          }
          out.push_back({str(ef, {"prefix"}) + std::string(k), val});
        }
    }
    for (auto& e : arr(c, {"env"})) {
      std::string name = str(e, {"name"});
      if (auto* vf = find(e, {"valueFrom"})) {
        if (auto* fr = find(*vf, {"fieldRef"})) {
          std::string path = str(*fr, {"fieldPath"});
          std::string val = path == "metadata.name"        ? p.name
                            : path == "metadata.namespace" ? p.ns
                            : path == "metadata.uid"       ? p.uid
                            : path == "spec.nodeName"      ? node_
                            : path == "status.podIP"       ? ip
                            : path == "status.hostIP"      ? node_ip()
                                                           : "";
          out.push_back({name, val});
        } else {
          bool secret = find(*vf, {"secretKeyRef"}) != nullptr;
          auto* ref = find(*vf, {secret ? "secretKeyRef" : "configMapKeyRef"});
          if (!ref) {
            err = "env " + name +
                  ": valueFrom is not supported (fieldRef, configMapKeyRef, "
                  "secretKeyRef are)";
            return false;
          }
          bool f = false;
          std::string val =
              lookup(secret ? "secret" : "configmap", str(*ref, {"name"}), str(*ref, {"key"}), f);
          bool optional = find(*ref, {"optional"}) && find(*ref, {"optional"})->is_bool() &&
                          find(*ref, {"optional"})->as_bool();
          if (!f && !optional) {
            err = "env " + name + ": " + (secret ? "secret" : "configmap") + " \"" +
                  str(*ref, {"name"}) + "\" has no key \"" + str(*ref, {"key"}) + "\"";
            return false;
          }
          if (f) out.push_back({name, val});
        }
      } else {
        out.push_back({name, str(e, {"value"})});
      }
    }
    return true;
  }

  // Creates and starts one container (attempt = its restart count).
  bool start_container(Pod& p, const json::value& c, const std::string& sandbox,
                       uint32_t sandbox_attempt, uint32_t attempt, Track& t,
                       const std::string& ip) {
    std::string name = str(c, {"name"});
    if (!ensure_image(c, t)) return false;
    pb::CreateContainerRequest req;
    req.set_pod_sandbox_id(sandbox);
    *req.mutable_sandbox_config() = sandbox_config(p, sandbox_attempt);
    auto* cc = req.mutable_config();
    cc->mutable_metadata()->set_name(name);
    cc->mutable_metadata()->set_attempt(attempt);
    cc->mutable_image()->set_image(str(c, {"image"}));
    for (auto& x : arr(c, {"command"}))
      if (x.is_string()) cc->add_command(std::string(x.as_string()));
    for (auto& x : arr(c, {"args"}))
      if (x.is_string()) cc->add_args(std::string(x.as_string()));
    cc->set_working_dir(str(c, {"workingDir"}));
    std::vector<std::pair<std::string, std::string>> env;
    std::string err;
    if (!resolve_env(p, c, ip, env, err)) {
      t.waiting_reason = "CreateContainerConfigError";
      t.waiting_message = err;
      return false;
    }
    for (auto& [k, v] : env) {
      auto* kv = cc->add_envs();
      kv->set_key(k);
      kv->set_value(v);
    }
    // Volume mounts.
    std::map<std::string, fs::path> vols;
    for (auto& v : arr(p.obj, {"spec", "volumes"})) {
      std::string vn = str(v, {"name"});
      if (find(v, {"emptyDir"})) vols[vn] = pod_dir(p) / "volumes" / "empty-dir" / vn;
      if (find(v, {"hostPath"})) vols[vn] = str(v, {"hostPath", "path"});
      if (find(v, {"configMap"})) vols[vn] = pod_dir(p) / "volumes" / "configmap" / vn;
      if (find(v, {"secret"})) vols[vn] = pod_dir(p) / "volumes" / "secret" / vn;
    }
    for (auto& vm : arr(c, {"volumeMounts"})) {
      std::string vn = str(vm, {"name"});
      auto it = vols.find(vn);
      if (it == vols.end()) {
        t.waiting_reason = "CreateContainerConfigError";
        t.waiting_message = "volumeMount \"" + vn + "\" names no volume of the pod";
        return false;
      }
      auto* m = cc->add_mounts();
      m->set_container_path(str(vm, {"mountPath"}));
      fs::path host = it->second;
      if (std::string sub = str(vm, {"subPath"}); !sub.empty()) {
        if (sub[0] == '/' || fs::path(sub).lexically_normal().string().rfind("..", 0) == 0 ||
            sub.find("/../") != std::string::npos) {
          t.waiting_reason = "CreateContainerConfigError";
          t.waiting_message = "volumeMount \"" + vn + "\": subPath \"" + sub +
                              "\" must be a relative path inside the volume";
          return false;
        }
        host /= sub;
      }
      m->set_host_path(host.string());
      auto* ro = find(vm, {"readOnly"});
      m->set_readonly(ro && ro->is_bool() && ro->as_bool());
    }
    auto& labels = *cc->mutable_labels();
    labels[kManaged] = "true";
    labels[kPodName] = p.name;
    labels[kPodNs] = p.ns;
    labels[kPodUid] = p.uid;
    labels[kContainerName] = name;
    (*cc->mutable_annotations())[kHash] = spec_hash(c);
    (*cc->mutable_annotations())["io.kubernetes.container.restartCount"] = std::to_string(attempt);
    cc->set_log_path(name + "/" + std::to_string(attempt) + ".log");
    auto* resources = find(c, {"resources"});
    auto r = cgroup_resources(resources ? *resources : json::value());
    if (!r.error.empty()) {
      t.waiting_reason = "CreateContainerConfigError";
      t.waiting_message = "container " + name + ": " + r.error;
      return false;
    }
    auto* lr = cc->mutable_linux()->mutable_resources();
    lr->set_cpu_period(r.r.cpu_period);
    lr->set_cpu_quota(r.r.cpu_quota);
    lr->set_cpu_shares(r.r.cpu_shares);
    lr->set_memory_limit_in_bytes(r.r.memory_limit);
    std::error_code ec;
    fs::create_directories(pod_dir(p) / "logs" / name, ec);
    pb::CreateContainerResponse res;
    Status s = rt("CreateContainer", &pb::RuntimeService::Stub::CreateContainer, req, &res, 60s);
    if (!s) {
      t.waiting_reason = "CreateContainerError";
      t.waiting_message = s.message();
      t.not_before = Clock::now() + initial_backoff();
      return false;
    }
    pb::StartContainerRequest sreq;
    sreq.set_container_id(res.container_id());
    pb::StartContainerResponse sres;
    s = rt("StartContainer", &pb::RuntimeService::Stub::StartContainer, sreq, &sres, 60s);
    if (!s) {
      t.waiting_reason = "RunContainerError";
      t.waiting_message = s.message();
      t.not_before = Clock::now() + initial_backoff();
      return false;
    }
    starts_->inc();
    if (attempt > 0) restarts_->inc();
    p.touched = true;
    t.next_attempt = attempt + 1;
    t.not_before = {};
    t.waiting_reason.clear();
    t.waiting_message.clear();
    log_->info("pod {}/{}: container {} started (restart {})", p.ns, p.name, name, attempt);
    return true;
  }

  // The newest instance of each container name in a sandbox; older exited
  // ones are removed (their last state was recorded when replaced).
  std::map<std::string, const pb::Container*> latest(const Actual& a, const std::string& sandbox) {
    std::map<std::string, const pb::Container*> out;
    auto it = a.containers.find(sandbox);
    if (it == a.containers.end()) return out;
    for (auto& c : it->second) {
      auto& cur = out[c.metadata().name()];
      if (!cur || c.metadata().attempt() > cur->metadata().attempt()) cur = &c;
    }
    for (auto& c : it->second) {
      if (out[c.metadata().name()] == &c) continue;
      if (c.state() == pb::CONTAINER_EXITED) {
        remove_container(c.id());
      } else {  // an older copy still running: not ours to keep
        log_->warn("container {} has an older instance still running; removing it",
                   c.metadata().name());
        run_async(c.labels().count(kPodUid) ? c.labels().at(kPodUid) : c.id(), [this, id = c.id()] {
          stop_container(id, 10);
          remove_container(id);
        });
      }
    }
    return out;
  }

  void record_terminated(Track& t, const pb::ContainerStatus& st) {
    t.last_terminated =
        json::object{{"exitCode", st.exit_code()},
                     {"reason", st.reason().empty() ? (st.exit_code() == 0 ? "Completed" : "Error")
                                                    : st.reason()},
                     {"startedAt", rfc3339_from_ns(st.started_at())},
                     {"finishedAt", rfc3339_from_ns(st.finished_at())},
                     {"containerID", "containerd://" + st.id()}};
  }

  // An exited container: started again (attempt + 1) when the policy and
  // the back-off allow; true if it now runs.
  bool restart(Pod& p, const json::value& spec, const pb::Container& old,
               const std::string& sandbox, uint32_t sandbox_attempt, Track& t,
               const std::string& ip) {
    const pb::ContainerStatus* st = status_of(old);
    std::string policy = str(p.obj, {"spec", "restartPolicy"});
    int code = st ? st->exit_code() : 0;
    if (!should_restart(policy, code)) return false;
    if (Clock::now() < t.not_before) return false;  // a failed pull or create backs off
    int restarts = static_cast<int>(old.metadata().attempt()) + 1;
    auto wait = backoff(restarts, initial_backoff(), max_backoff());
    auto finished = st ? std::chrono::nanoseconds(st->finished_at()) : std::chrono::nanoseconds(0);
    auto since = std::chrono::system_clock::now().time_since_epoch() - finished;
    // A container that ran for 10 minutes resets the back-off (as the kubelet).
    if (st && st->started_at() > 0 &&
        st->finished_at() - st->started_at() > int64_t{600} * 1000000000)
      wait = initial_backoff();
    if (since < wait) {
      t.waiting_reason = "CrashLoopBackOff";
      t.waiting_message = "back-off " + std::to_string(wait.count() / 1000) +
                          "s restarting failed container " + old.metadata().name();
      return false;
    }
    if (st) record_terminated(t, *st);
    if (!start_container(p, spec, sandbox, sandbox_attempt, old.metadata().attempt() + 1, t, ip))
      return false;
    remove_container(old.id());
    t.probed_id.clear();
    return true;
  }

  void sync_pod(Pod& p, const Actual& a) {
    p.sandbox.clear();
    p.touched = false;
    if (!p.volumes_ready && !prepare_volumes(p)) return;
    uint32_t sb_attempt = 0;
    std::string sandbox = ensure_sandbox(p, a, sb_attempt);
    if (sandbox.empty()) return;
    p.sandbox = sandbox;
    if (a.sandboxes.find(p.uid) == a.sandboxes.end()) p.touched = true;
    std::string ip = host_network(p) ? node_ip() : sandbox_ip(sandbox);
    auto have = latest(a, sandbox);
    auto now = Clock::now();
    // Init containers, one at a time, in order.
    for (auto& c : arr(p.obj, {"spec", "initContainers"})) {
      std::string name = str(c, {"name"});
      Track& t = p.tracks["init:" + name];
      auto it = have.find(name);
      if (it == have.end()) {
        if (now >= t.not_before) start_container(p, c, sandbox, sb_attempt, 0, t, ip);
        return;
      }
      const pb::Container& ctr = *it->second;
      if (ctr.state() != pb::CONTAINER_EXITED) return;
      const pb::ContainerStatus* st = status_of(ctr);
      if (st && st->exit_code() == 0) continue;
      std::string policy = str(p.obj, {"spec", "restartPolicy"});
      if (policy == "Never") return;  // the pod has failed
      restart(p, c, ctr, sandbox, sb_attempt, t, ip);
      return;
    }
    for (auto& c : arr(p.obj, {"spec", "containers"})) {
      std::string name = str(c, {"name"});
      Track& t = p.tracks[name];
      auto it = have.find(name);
      if (it == have.end()) {
        if (now >= t.not_before) start_container(p, c, sandbox, sb_attempt, t.next_attempt, t, ip);
        continue;
      }
      const pb::Container& ctr = *it->second;
      auto h = ctr.annotations().find(kHash);
      if (h != ctr.annotations().end() && h->second != spec_hash(c)) {
        log_->info("pod {}/{}: container {} changed; replacing it", p.ns, p.name, name);
        t.next_attempt = ctr.metadata().attempt() + 1;
        run_async(p.uid, [this, id = ctr.id(), grace = grace_of(p)] {
          stop_container(id, grace);
          remove_container(id);
        });
        p.touched = true;
        return;  // the new one starts once the old one is gone
      }
      switch (ctr.state()) {
        case pb::CONTAINER_CREATED: {
          if (Clock::now() < t.not_before) break;
          t.not_before = Clock::now() + initial_backoff();  // if it stays CREATED
          pb::StartContainerRequest sreq;
          sreq.set_container_id(ctr.id());
          pb::StartContainerResponse sres;
          (void)rt("StartContainer", &pb::RuntimeService::Stub::StartContainer, sreq, &sres);
          p.touched = true;
          break;
        }
        case pb::CONTAINER_RUNNING:
          if (!probe(p, c, ctr, t, ip)) return;  // a kill is under way: the pod is busy
          break;
        case pb::CONTAINER_EXITED: restart(p, c, ctr, sandbox, sb_attempt, t, ip); break;
        default: break;
      }
    }
  }

  static bool host_network(const Pod& p) {
    auto* h = find(p.obj, {"spec", "hostNetwork"});
    return h && h->is_bool() && h->as_bool();
  }

  // ---- probes ----
  bool run_probe(const json::value& pr, const json::value& c, const pb::Container& ctr,
                 const std::string& ip) {
    int64_t timeout = std::max<int64_t>(1, num(pr, {"timeoutSeconds"}, 1));
    if (auto* ex = find(pr, {"exec"})) {
      pb::ExecSyncRequest req;
      req.set_container_id(ctr.id());
      for (auto& x : arr(*ex, {"command"}))
        if (x.is_string()) req.add_cmd(std::string(x.as_string()));
      req.set_timeout(timeout);
      pb::ExecSyncResponse res;
      Status s = rt("ExecSync", &pb::RuntimeService::Stub::ExecSync, req, &res,
                    std::chrono::seconds(timeout + 5));
      return s && res.exit_code() == 0;
    }
    const json::value* hg = find(pr, {"httpGet"});
    const json::value* ts = find(pr, {"tcpSocket"});
    if (!hg && !ts) return false;
    const json::value& spec = hg ? *hg : *ts;
    int64_t port = num(spec, {"port"}, -1);
    if (port < 0) {  // a named port
      std::string pn = str(spec, {"port"});
      for (auto& cp : arr(c, {"ports"}))
        if (str(cp, {"name"}) == pn) port = num(cp, {"containerPort"}, -1);
    }
    std::string host = str(spec, {"host"});
    if (host.empty()) host = ip;
    if (port <= 0 || port > 65535 || host.empty()) return false;
    if (hg && str(*hg, {"scheme"}) == "HTTPS") return false;  // not supported: fails
    std::string path = hg ? str(*hg, {"path"}) : "";
    if (hg && path.empty()) path = "/";
    return net_probe(host, static_cast<uint16_t>(port), hg ? &path : nullptr,
                     std::chrono::seconds(timeout));
  }

  // tcpSocket (path null): a connection; httpGet: a 2xx/3xx answer.
  static bool net_probe(const std::string& host, uint16_t port, const std::string* path,
                        std::chrono::milliseconds timeout) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return false;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    auto deadline = Clock::now() + timeout;
    auto left = [&] {
      return static_cast<int>(std::max<int64_t>(
          0,
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
    };
    bool ok = false;
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    if (r == 0 || errno == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, left()) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        ok = err == 0;
      }
    }
    if (ok && path) {
      std::string req = "GET " + *path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                        "\r\nUser-Agent: kube-probe/1.22\r\nConnection: close\r\n\r\n";
      ok = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
      std::string head;
      while (ok && head.find("\r\n") == std::string::npos && head.size() < 1024) {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, left()) != 1) {
          ok = false;
          break;
        }
        char buf[512];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      int code = 0;
      if (ok && head.rfind("HTTP/", 0) == 0 && head.size() > 12) code = std::atoi(head.c_str() + 9);
      ok = code >= 200 && code < 400;
    }
    ::close(fd);
    return ok;
  }

  // False if a failed liveness probe started a kill.
  bool probe(Pod& p, const json::value& c, const pb::Container& ctr, Track& t,
             const std::string& ip) {
    auto now = Clock::now();
    if (t.probed_id != ctr.id()) {  // a new instance: probes start over
      t.probed_id = ctr.id();
      auto* st = status_of(ctr);
      auto started = Clock::now();
      if (st && st->started_at() > 0) {
        auto age = std::chrono::system_clock::now().time_since_epoch() -
                   std::chrono::nanoseconds(st->started_at());
        started -= std::chrono::duration_cast<Clock::duration>(std::max(age, Clock::duration(0)));
      }
      for (auto [pr, ps] :
           {std::pair{"livenessProbe", &t.liveness}, std::pair{"readinessProbe", &t.readiness}}) {
        *ps = ProbeState{};
        if (auto* spec = find(c, {pr}))
          ps->next = started + std::chrono::seconds(num(*spec, {"initialDelaySeconds"}, 0));
      }
    }
    if (auto* lp = find(c, {"livenessProbe"}); lp && now >= t.liveness.next) {
      t.liveness.next =
          now + std::chrono::seconds(std::max<int64_t>(1, num(*lp, {"periodSeconds"}, 10)));
      if (run_probe(*lp, c, ctr, ip)) {
        t.liveness.failures = 0;
      } else if (++t.liveness.failures >= std::max<int64_t>(1, num(*lp, {"failureThreshold"}, 3))) {
        log_->info("pod {}/{}: container {} failed its liveness probe {} times; restarting it",
                   p.ns, p.name, str(c, {"name"}), t.liveness.failures);
        t.liveness.failures = 0;
        int64_t grace = num(*lp, {"terminationGracePeriodSeconds"}, grace_of(p));
        cstatus_.erase(ctr.id());
        run_async(p.uid, [this, id = ctr.id(), grace] { stop_container(id, grace); });
        p.touched = true;
        return false;
      }
    }
    if (auto* rp = find(c, {"readinessProbe"}); rp && now >= t.readiness.next) {
      t.readiness.next =
          now + std::chrono::seconds(std::max<int64_t>(1, num(*rp, {"periodSeconds"}, 10)));
      if (run_probe(*rp, c, ctr, ip)) {
        t.readiness.failures = 0;
        if (++t.readiness.successes >= std::max<int64_t>(1, num(*rp, {"successThreshold"}, 1)))
          t.readiness.ok = true;
      } else {
        t.readiness.successes = 0;
        if (++t.readiness.failures >= std::max<int64_t>(1, num(*rp, {"failureThreshold"}, 3)))
          t.readiness.ok = false;
      }
    }
    return true;
  }

  // ---- status ----
  json::object container_status(Pod& p, const json::value& c, const pb::Container* ctr, Track& t,
                                bool init, bool& ready, ContainerView& view) {
    std::string name = str(c, {"name"});
    json::object s{{"name", name},   {"image", str(c, {"image"})},
                   {"imageID", ""},  {"restartCount", 0},
                   {"ready", false}, {"started", false}};
    ready = false;
    std::string policy = str(p.obj, {"spec", "restartPolicy"});
    if (!ctr) {
      std::string reason = !t.waiting_reason.empty() ? t.waiting_reason
                           : !p.pod_error_reason.empty()
                               ? p.pod_error_reason
                               : (init ? "PodInitializing" : "ContainerCreating");
      std::string msg = !t.waiting_message.empty() ? t.waiting_message : p.pod_error;
      json::object w{{"reason", reason}};
      if (!msg.empty()) w["message"] = msg;
      s["state"] = json::object{{"waiting", w}};
      if (!t.last_terminated.empty())
        s["lastState"] = json::object{{"terminated", t.last_terminated}};
      view.state = ContainerView::State::kWaiting;
      return s;
    }
    const pb::ContainerStatus* st = status_of(*ctr);
    s["containerID"] = "containerd://" + ctr->id();
    s["imageID"] = ctr->image_ref();
    s["restartCount"] = ctr->metadata().attempt();
    if (!t.last_terminated.empty())
      s["lastState"] = json::object{{"terminated", t.last_terminated}};
    if (ctr->state() == pb::CONTAINER_RUNNING) {
      s["state"] = json::object{
          {"running", json::object{{"startedAt", st ? rfc3339_from_ns(st->started_at()) : ""}}}};
      s["started"] = true;
      ready = find(c, {"readinessProbe"}) ? t.readiness.ok : true;
      view.state = ContainerView::State::kRunning;
    } else if (ctr->state() == pb::CONTAINER_EXITED && st) {
      int code = st->exit_code();
      bool again = !init && should_restart(policy, code);
      if (again && t.waiting_reason == "CrashLoopBackOff") {
        s["state"] = json::object{{"waiting", json::object{{"reason", t.waiting_reason},
                                                           {"message", t.waiting_message}}}};
        record_terminated(t, *st);
        s["lastState"] = json::object{{"terminated", t.last_terminated}};
      } else {
        s["state"] = json::object{
            {"terminated",
             json::object{{"exitCode", code},
                          {"reason", st->reason().empty() ? (code == 0 ? "Completed" : "Error")
                                                          : st->reason()},
                          {"startedAt", rfc3339_from_ns(st->started_at())},
                          {"finishedAt", rfc3339_from_ns(st->finished_at())},
                          {"containerID", "containerd://" + ctr->id()}}}};
      }
      view.state = ContainerView::State::kTerminated;
      view.exit_code = code;
      view.will_restart = again;
    } else {
      s["state"] = json::object{{"waiting", json::object{{"reason", "ContainerCreating"}}}};
      view.state = ContainerView::State::kWaiting;
    }
    s["ready"] = ready;
    return s;
  }

  void condition(Pod& p, json::array& out, const std::string& type, bool value,
                 const std::string& reason = "") {
    std::string v = value ? "True" : "False";
    auto& c = p.conds[type];
    if (c.first != v) c = {v, kedge::k8s::now_rfc3339()};
    json::object o{{"type", type},
                   {"status", v},
                   {"lastProbeTime", nullptr},
                   {"lastTransitionTime", c.second}};
    if (!reason.empty() && !value) o["reason"] = reason;
    out.push_back(std::move(o));
  }

  void report(Pod& p, const Actual& a) {
    std::string sandbox = p.sandbox, ip;  // made this pass, or found ready
    if (!sandbox.empty()) ip = host_network(p) ? node_ip() : sandbox_ip(sandbox);
    std::map<std::string, const pb::Container*> have;
    if (auto it = a.containers.find(sandbox); it != a.containers.end())
      for (auto& c : it->second) {
        auto& cur = have[c.metadata().name()];
        if (!cur || c.metadata().attempt() > cur->metadata().attempt()) cur = &c;
      }
    // The pass changed the pod's containers: the snapshot is stale, look again.
    if (!sandbox.empty() && p.touched) {
      pb::ListContainersRequest creq;
      creq.mutable_filter()->set_pod_sandbox_id(sandbox);
      pb::ListContainersResponse cres;
      if (rt("ListContainers", &pb::RuntimeService::Stub::ListContainers, creq, &cres)) {
        fresh_.assign(cres.containers().begin(), cres.containers().end());
        have.clear();
        for (auto& c : fresh_) {
          auto& cur = have[c.metadata().name()];
          if (!cur || c.metadata().attempt() > cur->metadata().attempt()) cur = &c;
        }
      }
    }
    bool initialized = true;
    json::array init_statuses, statuses;
    for (auto& c : arr(p.obj, {"spec", "initContainers"})) {
      std::string name = str(c, {"name"});
      auto it = have.find(name);
      bool ready = false;
      ContainerView v;
      init_statuses.push_back(container_status(p, c, it == have.end() ? nullptr : it->second,
                                               p.tracks["init:" + name], true, ready, v));
      if (!(v.state == ContainerView::State::kTerminated && v.exit_code == 0)) initialized = false;
    }
    bool all_ready = true;
    std::vector<ContainerView> views;
    for (auto& c : arr(p.obj, {"spec", "containers"})) {
      std::string name = str(c, {"name"});
      auto it = have.find(name);
      bool ready = false;
      ContainerView v;
      statuses.push_back(container_status(p, c,
                                          initialized && it != have.end() ? it->second : nullptr,
                                          p.tracks[name], false, ready, v));
      all_ready = all_ready && ready;
      views.push_back(v);
    }
    std::string phase = pod_phase(initialized, views);
    if (!initialized && str(p.obj, {"spec", "restartPolicy"}) == "Never")
      for (auto& s : init_statuses)
        if (auto* t = find(s, {"state", "terminated", "exitCode"});
            t && t->is_int64() && t->as_int64() != 0)
          phase = "Failed";
    json::array conds;
    condition(p, conds, "Initialized", initialized, "ContainersNotInitialized");
    condition(p, conds, "Ready", all_ready && initialized, "ContainersNotReady");
    condition(p, conds, "ContainersReady", all_ready && initialized, "ContainersNotReady");
    condition(p, conds, "PodScheduled", true);
    json::object status{{"phase", phase},
                        {"conditions", std::move(conds)},
                        {"hostIP", node_ip()},
                        {"startTime", p.start_time},
                        {"qosClass", qos_class(p.spec())},
                        {"containerStatuses", std::move(statuses)}};
    if (!init_statuses.empty()) status["initContainerStatuses"] = std::move(init_statuses);
    if (!ip.empty()) {
      status["podIP"] = ip;
      status["podIPs"] = json::array{json::object{{"ip", ip}}};
    }
    std::string text = json::serialize(json::object{{"status", std::move(status)}});
    auto heartbeat = std::chrono::seconds(cfg_.get_int("pod_status_heartbeat_s"));
    if (text == p.last_status && Clock::now() - p.last_sent < heartbeat) return;
    p.last_status = text;
    p.last_sent = Clock::now();
    auto m = kedge::make_message(ctx_->name(), "resource", "patch", p.ns + "/podpatch/" + p.name,
                                 json::string(text));
    Status s = ctx_->send("metamanager", kedge::share(std::move(m)), 1s);
    if (!s) log_->warn("pod {}/{} status not sent: {}", p.ns, p.name, s.message());
  }

  // ---- node status ----
  std::string node_ip() {
    if (!node_ip_.empty()) return node_ip_;
    node_ip_ = cfg_.get_string("node_ip");
    if (!node_ip_.empty()) return node_ip_;
    ifaddrs* ifs = nullptr;
    if (::getifaddrs(&ifs) == 0) {
      for (auto* i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK))
          continue;
        std::string n = i->ifa_name;
        if (n.rfind("kedge-cni", 0) == 0 || n.rfind("cni", 0) == 0 || n.rfind("veth", 0) == 0 ||
            n.rfind("docker", 0) == 0 || n.rfind("br-", 0) == 0)
          continue;
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
        node_ip_ = buf;
        break;
      }
      ::freeifaddrs(ifs);
    }
    if (node_ip_.empty()) node_ip_ = "127.0.0.1";
    return node_ip_;
  }

  void maybe_node_status() {
    auto period = std::chrono::seconds(cfg_.get_int("node_status_period_s"));
    if (!node_dirty_ && Clock::now() - node_sent_ < period) return;
    node_dirty_ = false;
    node_sent_ = Clock::now();
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    int64_t mem_kb = 0;
    {
      std::ifstream f("/proc/meminfo");
      std::string k;
      int64_t v = 0;
      std::string unit;
      while (f >> k >> v >> unit)
        if (k == "MemTotal:") {
          mem_kb = v;
          break;
        }
    }
    struct statvfs fsst {};
    int64_t disk = 0;
    if (::statvfs(root_.c_str(), &fsst) == 0)
      disk = static_cast<int64_t>(fsst.f_blocks) * static_cast<int64_t>(fsst.f_frsize);
    std::string pods = std::to_string(cfg_.get_int("max_pods"));
    json::object capacity{{"cpu", std::to_string(cpus)},
                          {"memory", std::to_string(mem_kb) + "Ki"},
                          {"pods", pods},
                          {"ephemeral-storage", std::to_string(disk / 1024) + "Ki"}};
    int64_t reserved_kb = cfg_.get_int("reserved_memory_mb") * 1024;
    json::object allocatable = capacity;
    allocatable["memory"] = std::to_string(std::max<int64_t>(0, mem_kb - reserved_kb)) + "Ki";
    utsname u{};
    ::uname(&u);
    std::string arch = u.machine;
    if (arch == "x86_64") arch = "amd64";
    if (arch == "aarch64") arch = "arm64";
    std::string os_image = "Linux";
    {
      std::ifstream f("/etc/os-release");
      for (std::string l; std::getline(f, l);)
        if (l.rfind("PRETTY_NAME=", 0) == 0) {
          os_image = l.substr(12);
          if (os_image.size() >= 2 && os_image.front() == '"')
            os_image = os_image.substr(1, os_image.size() - 2);
        }
    }
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    std::string now = kedge::k8s::now_rfc3339();
    bool ready = runtime_ready_;
    if (node_ready_ != ready || node_ready_since_.empty()) {
      node_ready_ = ready;
      node_ready_since_ = now;
    }
    if (node_since_.empty()) node_since_ = now;
    auto cond = [&](const char* type, bool status, const char* reason, const std::string& msg,
                    const std::string& since) {
      return json::object{{"type", type},
                          {"status", status ? "True" : "False"},
                          {"lastHeartbeatTime", now},
                          {"lastTransitionTime", since},
                          {"reason", reason},
                          {"message", msg}};
    };
    json::array images;
    if (ready) {
      pb::ListImagesRequest req;
      pb::ListImagesResponse res;
      if (cri_->call("ListImages", cri_->images(), &pb::ImageService::Stub::ListImages, req,
                     &res)) {
        for (auto& im : res.images()) {
          if (images.size() >= 50) break;
          json::array names;
          for (auto& d : im.repo_digests()) names.push_back(json::string(d));
          for (auto& t : im.repo_tags()) names.push_back(json::string(t));
          if (names.empty()) continue;
          images.push_back(json::object{{"names", names}, {"sizeBytes", im.size()}});
        }
      }
    }
    json::object status{
        {"capacity", capacity},
        {"allocatable", allocatable},
        {"conditions",
         json::array{cond("MemoryPressure", false, "KubeletHasSufficientMemory",
                          "kubelet has sufficient memory available", node_since_),
                     cond("DiskPressure", false, "KubeletHasNoDiskPressure",
                          "kubelet has no disk pressure", node_since_),
                     cond("PIDPressure", false, "KubeletHasSufficientPID",
                          "kubelet has sufficient PID available", node_since_),
                     cond("Ready", ready, ready ? "KubeletReady" : "ContainerRuntimeNotReady",
                          ready ? "edged is posting ready status"
                                : "container runtime not ready: " + runtime_why_,
                          node_ready_since_)}},
        {"addresses", json::array{json::object{{"type", "InternalIP"}, {"address", node_ip()}},
                                  json::object{{"type", "Hostname"}, {"address", host}}}},
        {"daemonEndpoints", json::object{{"kubeletEndpoint", json::object{{"Port", 10350}}}}},
        {"nodeInfo", json::object{{"machineID", read_first_line("/etc/machine-id")},
                                  {"systemUUID", read_first_line("/sys/class/dmi/id/product_uuid")},
                                  {"bootID", read_first_line("/proc/sys/kernel/random/boot_id")},
                                  {"kernelVersion", u.release},
                                  {"osImage", os_image},
                                  {"containerRuntimeVersion", runtime_version_},
                                  {"kubeletVersion", kKubeletVersion},
                                  {"kubeProxyVersion", ""},
                                  {"operatingSystem", "linux"},
                                  {"architecture", arch}}},
        {"images", images}};
    auto m = kedge::make_message(ctx_->name(), "resource", "patch", "default/nodepatch/" + node_,
                                 json::string(json::serialize(json::object{{"status", status}})));
    Status s = ctx_->send("metamanager", kedge::share(std::move(m)), 1s);
    if (!s) log_->warn("node status not sent: {}", s.message());
  }

  struct Job {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  kedge::Config cfg_;
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
  // termination jobs
  std::mutex jobs_mu_;
  std::map<std::string, int> busy_;  // pod UID -> jobs running on it
  std::list<Job> jobs_;
  kedge::Gauge *running_ = nullptr, *runtime_up_ = nullptr;
  kedge::Counter *starts_ = nullptr, *restarts_ = nullptr, *cri_errors_ = nullptr,
                 *syncs_ = nullptr;
};

constexpr kedge::ConfigKey kConfig[] = {
    {"runtime_endpoint", kedge::ConfigType::kString, "\"unix:///run/containerd/containerd.sock\"",
     "The CRI runtime's socket.", false},
    {"runtime_request_timeout_ms", kedge::ConfigType::kInteger, "30000",
     "Deadline of a CRI call (pulls and sandbox starts get their own).", false},
    {"runtime_retry_ms", kedge::ConfigType::kInteger, "2000",
     "How often an absent runtime is asked again.", false},
    {"image_pull_timeout_ms", kedge::ConfigType::kInteger, "300000", "Deadline of an image pull.",
     false},
    {"sync_period_ms", kedge::ConfigType::kInteger, "1000",
     "Reconcile pass interval (changes from the cloud start one at once).", false},
    {"backoff_initial_ms", kedge::ConfigType::kInteger, "10000",
     "First crash-loop back-off (doubles per restart; the kubelet's is 10 s).", false},
    {"backoff_max_ms", kedge::ConfigType::kInteger, "300000", "Longest crash-loop back-off.",
     false},
    {"pod_status_heartbeat_s", kedge::ConfigType::kInteger, "60",
     "An unchanged pod status is sent again after this.", false},
    {"node_status_period_s", kedge::ConfigType::kInteger, "10",
     "Node status report interval (KubeEdge's nodeStatusUpdateFrequency).", false},
    {"node_ip", kedge::ConfigType::kString, "\"\"",
     "The node's InternalIP (default: the first non-loopback IPv4 address).", false},
    {"max_pods", kedge::ConfigType::kInteger, "110", "The node's pod capacity.", false},
    {"reserved_memory_mb", kedge::ConfigType::kInteger, "0",
     "Memory kept from allocatable for the system.", false},
};

}  // namespace

KEDGE_PLUGIN(Edged, {.name = "edged",
                     .version = "0.1.0",
                     .description = "The edge's kubelet: runs the node's pods on a CRI runtime "
                                    "(containerd), reports pod and node status.",
                     .config = kConfig})
