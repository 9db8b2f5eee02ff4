// Liveness and readiness probes (exec, httpGet over HTTP or HTTPS, tcpSocket;
// IPv4 and IPv6 pods), with the kubelet's thresholds and periods.
#include <algorithm>

#include "edged.h"
#include "kedge/common/http_client.h"

namespace kedge::edged {

namespace {
// The kubelet does not verify an HTTPS probe's certificate.
net::SslContext insecure_tls() {
  static const net::SslContext ctx = net::client_context({}, false).value;
  return ctx;
}
}  // namespace

bool Edged::run_probe(const json::value& pr, const json::value& c, const pb::Container& ctr,
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
  auto deadline = std::chrono::seconds(timeout);
  if (!hg) return net::tcp_check(host, static_cast<uint16_t>(port), deadline).is_ok();
  // httpGet as the kubelet: a 2xx or 3xx answer; HTTPS without verifying
  // the certificate; the pod's httpHeaders (Host among them) sent as given.
  std::string path = str(*hg, {"path"});
  if (path.empty() || path[0] != '/') path = "/" + path;
  net::HttpRequest req{"GET", path, {{"User-Agent", "kube-probe/1.22"}, {"Accept", "*/*"}}, "", ""};
  for (auto& h : arr(*hg, {"httpHeaders"}))
    if (std::string name = str(h, {"name"}); !name.empty()) req.headers[name] = str(h, {"value"});
  bool https = str(*hg, {"scheme"}) == "HTTPS";
  auto r = net::http_request_sync(https ? insecure_tls() : nullptr, host,
                                  static_cast<uint16_t>(port), std::move(req), deadline);
  return r.status && r.http_status >= 200 && r.http_status < 400;
}

// False if a failed liveness probe started a kill.
bool Edged::probe(Pod& p, const json::value& c, const pb::Container& ctr, Track& t,
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
      log_->info("pod {}/{}: container {} failed its liveness probe {} times; restarting it", p.ns,
                 p.name, str(c, {"name"}), t.liveness.failures);
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

}  // namespace kedge::edged
