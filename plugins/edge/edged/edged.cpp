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
#include <future>

#include "edged.h"

#include "contracts/modules.h"

#include "contracts/wire.h"
#include "k8s.h"

namespace kedge::edged {

using namespace std::chrono_literals;

namespace {
constexpr kedge::Setting<Settings> kSettings[] = {
    {"runtime_endpoint", &Settings::runtime_endpoint, "\"unix:///run/containerd/containerd.sock\"",
     "The CRI runtime's socket."},
    {"runtime_request_timeout_ms", &Settings::runtime_request_timeout_ms, "30000",
     "Deadline of a CRI call (pulls and sandbox starts get their own).", false, 100, 3600000},
    {"runtime_retry_ms", &Settings::runtime_retry_ms, "2000",
     "How often an absent runtime is asked again.", false, 10, 3600000},
    {"image_pull_timeout_ms", &Settings::image_pull_timeout_ms, "300000",
     "Deadline of an image pull.", false, 1000, 86400000},
    {"sync_period_ms", &Settings::sync_period_ms, "1000",
     "Reconcile pass interval (changes from the cloud start one at once).", false, 10, 3600000},
    {"backoff_initial_ms", &Settings::backoff_initial_ms, "10000",
     "First crash-loop back-off (doubles per restart; the kubelet's is 10 s).", false, 1, 86400000},
    {"backoff_max_ms", &Settings::backoff_max_ms, "300000", "Longest crash-loop back-off.", false,
     1, 86400000},
    {"pod_status_heartbeat_s", &Settings::pod_status_heartbeat_s, "60",
     "An unchanged pod status is sent again after this.", false, 1, 86400},
    {"node_status_period_s", &Settings::node_status_period_s, "10",
     "Node status report interval (KubeEdge's nodeStatusUpdateFrequency).", false, 1, 86400},
    {"node_ip", &Settings::node_ip, "\"\"",
     "The node's InternalIP (default: the first non-loopback IPv4 address)."},
    {"max_pods", &Settings::max_pods, "110", "The node's pod capacity.", false, 1, 100000},
    {"reserved_memory_mb", &Settings::reserved_memory_mb, "0",
     "Memory kept from allocatable for the system.", false, 0, 16777216},
    kedge::contracts::peer_setting(kedge::contracts::kMetaManager, &Settings::metamanager,
                                   "The module pods, configmaps and secrets come from and "
                                   "statuses go to."),
};
constexpr auto kConfig = kedge::config_keys(kSettings);
constexpr kedge::PeerDecl kPeers[] = {
    {kedge::contracts::kMetaManager.key,
     "queries of <ns>/configmap|secret|pod/<name> (sync), the node's registration (insert of "
     "default/node/<name>, sync; then its labels), podpatch and nodepatch reports",
     false},
};
}  // namespace

Status Edged::init(kedge::Context& ctx, const kedge::Config& cfg) {
  ctx_ = &ctx;
  log_ = ctx.logger();
  s_ = kedge::read_settings(kSettings, cfg);
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

Status Edged::start() {
  stopping_ = false;
  // A relative socket path is under the agent's data directory.
  std::string ep = s_.runtime_endpoint;
  std::string path = ep.rfind("unix://", 0) == 0 ? ep.substr(7) : ep;
  if (!path.empty() && path[0] != '/') path = (ctx_->data_dir() / path).lexically_normal().string();
  endpoint_ = "unix://" + path;
  cri_ = std::make_unique<kedge::cri::Client>(
      endpoint_, std::chrono::milliseconds(s_.runtime_request_timeout_ms));
  worker_ = std::thread([this] { run(); });
  return {};
}

Status Edged::stop() {
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
void Edged::on_message(const MessagePtr& m) {
  if (m->is_response()) return;
  {
    std::lock_guard lock(mu_);
    inbox_.push_back(m);
  }
  cv_.notify_all();
}

void Edged::run() {
  load_desired();
  auto retry = std::chrono::milliseconds(s_.runtime_retry_ms);
  auto period = std::chrono::milliseconds(s_.sync_period_ms);
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

void Edged::wait(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return stopping_ || !inbox_.empty(); });
}

// metamanager's answer to a query: the stored values (JSON strings).
// `ok` (if given) is false when metamanager did not answer: not the same
// as an empty answer.
json::array Edged::query(const std::string& key, bool* ok) {
  if (ok) *ok = false;
  auto p = std::make_shared<std::promise<json::value>>();
  auto f = p->get_future();
  ctx_->request(
      s_.metamanager,
      kedge::share(kedge::make_message(
          ctx_->name(), std::string(kedge::contracts::wire::local_group::kMeta), "query", key)),
      10s, [p](Status s, MessagePtr r) {
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

std::vector<json::value> Edged::parsed(const json::array& a) {
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
void Edged::load_desired() {
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

void Edged::upsert(const json::value& obj) {
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

void Edged::drain_inbox() {
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

void Edged::sync_once() {
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

bool Edged::busy(const std::string& uid) {
  std::lock_guard lock(jobs_mu_);
  auto it = busy_.find(uid);
  return it != busy_.end() && it->second > 0;
}

// Runs `job` on a thread of its own while the pod is left alone (busy), so
// one slow stop holds no other pod.
void Edged::run_async(const std::string& uid, std::function<void()> job) {
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
void Edged::terminate_async(const std::string& uid, std::vector<pb::PodSandbox> sbs,
                            const Actual& a, int64_t grace) {
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

void Edged::join_jobs(bool all) {
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

int64_t Edged::grace_of(const Pod& p) {
  return std::max<int64_t>(0, num(p.obj, {"spec", "terminationGracePeriodSeconds"}, 30));
}

std::chrono::milliseconds Edged::initial_backoff() {
  return std::chrono::milliseconds(s_.backoff_initial_ms);
}

std::chrono::milliseconds Edged::max_backoff() {
  return std::chrono::milliseconds(s_.backoff_max_ms);
}

}  // namespace kedge::edged

KEDGE_PLUGIN(kedge::edged::Edged,
             {.name = "edged",
              .version = "0.1.0",
              .description = "The edge's kubelet: runs the node's pods on a CRI runtime "
                             "(containerd), reports pod and node status.",
              .config = kedge::edged::kConfig,
              .peers = kedge::edged::kPeers})
