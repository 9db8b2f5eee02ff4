// A pod's containers: init containers in order, then the others; creation
// (image, env, mounts, limits, labels), restarts by policy with crash-loop
// back-off, replacement when a container's spec changes.
#include "edged.h"
#include "env.h"

namespace kedge::edged {

using namespace std::chrono_literals;

// Creates and starts one container (attempt = its restart count).
bool Edged::start_container(Pod& p, const json::value& c, const std::string& sandbox,
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
  auto env =
      container_env(c, {p.name, p.ns, p.uid, node_, ip, node_ip()},
                    [&](const std::string& kind, const std::string& obj_name) {
                      auto found = parsed(query(p.ns + "/" + kind + "/" + obj_name));
                      return found.empty() ? std::nullopt : std::optional<json::value>(found[0]);
                    });
  if (!env.ok()) {
    t.waiting_reason = "CreateContainerConfigError";
    t.waiting_message = env.status.message();
    return false;
  }
  for (auto& [k, v] : env.value) {
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
  if (!r.ok()) {
    t.waiting_reason = "CreateContainerConfigError";
    t.waiting_message = "container " + name + ": " + r.status.message();
    return false;
  }
  auto* lr = cc->mutable_linux()->mutable_resources();
  lr->set_cpu_period(r.value.cpu_period);
  lr->set_cpu_quota(r.value.cpu_quota);
  lr->set_cpu_shares(r.value.cpu_shares);
  lr->set_memory_limit_in_bytes(r.value.memory_limit);
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
std::map<std::string, const pb::Container*> Edged::latest(const Actual& a,
                                                          const std::string& sandbox) {
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

void Edged::record_terminated(Track& t, const pb::ContainerStatus& st) {
  t.last_terminated = json::object{
      {"exitCode", st.exit_code()},
      {"reason", st.reason().empty() ? (st.exit_code() == 0 ? "Completed" : "Error") : st.reason()},
      {"startedAt", rfc3339_from_ns(st.started_at())},
      {"finishedAt", rfc3339_from_ns(st.finished_at())},
      {"containerID", "containerd://" + st.id()}};
}

// An exited container: started again (attempt + 1) when the policy and
// the back-off allow; true if it now runs.
bool Edged::restart(Pod& p, const json::value& spec, const pb::Container& old,
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

void Edged::sync_pod(Pod& p, const Actual& a) {
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

bool Edged::host_network(const Pod& p) {
  auto* h = find(p.obj, {"spec", "hostNetwork"});
  return h && h->is_bool() && h->as_bool();
}

}  // namespace kedge::edged
