// A pod's status as the kubelet reports it (phase, conditions, container
// states, IPs), sent as a podpatch when it changes and every
// pod_status_heartbeat_s.
#include "edged.h"

#include "contracts/wire.h"
#include "k8s.h"

namespace kedge::edged {

using namespace std::chrono_literals;

json::object Edged::container_status(Pod& p, const json::value& c, const pb::Container* ctr,
                                     Track& t, bool init, bool& ready, ContainerView& view) {
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
  if (!t.last_terminated.empty()) s["lastState"] = json::object{{"terminated", t.last_terminated}};
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
      s["state"] = json::object{
          {"waiting", json::object{{"reason", t.waiting_reason}, {"message", t.waiting_message}}}};
      record_terminated(t, *st);
      s["lastState"] = json::object{{"terminated", t.last_terminated}};
    } else {
      s["state"] = json::object{
          {"terminated",
           json::object{{"exitCode", code},
                        {"reason",
                         st->reason().empty() ? (code == 0 ? "Completed" : "Error") : st->reason()},
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

void Edged::condition(Pod& p, json::array& out, const std::string& type, bool value,
                      const std::string& reason) {
  std::string v = value ? "True" : "False";
  auto& c = p.conds[type];
  if (c.first != v) c = {v, kedge::k8s::now_rfc3339()};
  json::object o{
      {"type", type}, {"status", v}, {"lastProbeTime", nullptr}, {"lastTransitionTime", c.second}};
  if (!reason.empty() && !value) o["reason"] = reason;
  out.push_back(std::move(o));
}

void Edged::report(Pod& p, const Actual& a) {
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
  auto heartbeat = std::chrono::seconds(s_.pod_status_heartbeat_s);
  if (text == p.last_status && Clock::now() - p.last_sent < heartbeat) return;
  p.last_status = text;
  p.last_sent = Clock::now();
  auto m = kedge::make_message(ctx_->name(), std::string(kedge::contracts::wire::group::kResource),
                               "patch", p.ns + "/podpatch/" + p.name, json::string(text));
  Status s = ctx_->send(s_.metamanager, kedge::share(std::move(m)), 1s);
  if (!s) log_->warn("pod {}/{} status not sent: {}", p.ns, p.name, s.message());
}

}  // namespace kedge::edged
