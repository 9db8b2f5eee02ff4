// edged's CRI side: whether the runtime is there, what it runs (sandboxes
// and containers by kedge's labels), stopping and removing, the pod sandbox
// and image pulls by policy.
#include "edged.h"
#include "k8s.h"

namespace kedge::edged {

using namespace std::chrono_literals;

void Edged::check_runtime() {
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
                 s_.runtime_retry_ms);
    node_dirty_ = true;
  }
  runtime_ready_ = ready;
  runtime_why_ = why;
  runtime_up_->set(ready ? 1 : 0);
}

// False if either list failed: a partial view would make running pods look
// missing (duplicate sandboxes) or containers look absent (second copies).
bool Edged::observe(Actual& a) {
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
const pb::ContainerStatus* Edged::status_of(const pb::Container& c) {
  auto it = cstatus_.find(c.id());
  if (it != cstatus_.end() && it->second.state() == c.state()) return &it->second;
  pb::ContainerStatusRequest req;
  req.set_container_id(c.id());
  pb::ContainerStatusResponse res;
  if (!rt("ContainerStatus", &pb::RuntimeService::Stub::ContainerStatus, req, &res)) return nullptr;
  return &(cstatus_[c.id()] = res.status());
}

std::string Edged::sandbox_ip(const std::string& id) {
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

void Edged::stop_container(const std::string& id, int64_t grace) {
  pb::StopContainerRequest req;
  req.set_container_id(id);
  req.set_timeout(grace);
  pb::StopContainerResponse res;
  (void)rt("StopContainer", &pb::RuntimeService::Stub::StopContainer, req, &res,
           std::chrono::seconds(grace + 30));
}

void Edged::remove_container(const std::string& id) {
  pb::RemoveContainerRequest req;
  req.set_container_id(id);
  pb::RemoveContainerResponse res;
  (void)rt("RemoveContainer", &pb::RuntimeService::Stub::RemoveContainer, req, &res);
}

void Edged::remove_sandbox(const std::string& id) {
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

pb::PodSandboxConfig Edged::sandbox_config(const Pod& p, uint32_t attempt) {
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
std::string Edged::ensure_sandbox(Pod& p, const Actual& a, uint32_t& attempt) {
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
bool Edged::ensure_image(const json::value& c, Track& t) {
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
    Status s =
        cri_->call("ImageStatus", cri_->images(), &pb::ImageService::Stub::ImageStatus, req, &res);
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
  Status s = cri_->call("PullImage", cri_->images(), &pb::ImageService::Stub::PullImage, req, &res,
                        std::chrono::milliseconds(s_.image_pull_timeout_ms));
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

}  // namespace kedge::edged
