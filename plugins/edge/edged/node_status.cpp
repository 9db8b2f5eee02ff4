// The node: registered as the kubelet of KubeEdge 1.12 does (an insert of
// default/node/<name> with the whole Node, answered {"Object","Err"}; a node
// that exists already gets its default labels by an update), and its status
// (capacity, allocatable, conditions, addresses, nodeInfo, images) sent as a
// nodepatch every node_status_period_s and when the runtime comes or goes.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>

#include "edged.h"

#include "contracts/wire.h"
#include "k8s.h"

namespace kedge::edged {

using namespace std::chrono_literals;

namespace {
std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string l;
  std::getline(f, l);
  return l;
}
}  // namespace

std::string Edged::node_ip() {
  if (!node_ip_.empty()) return node_ip_;
  node_ip_ = s_.node_ip;
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

// kubelet's initial labels (kubelet_node_status.go initialNode) and the two
// KubeEdge's edged adds.
static json::object default_labels(const std::string& node, const std::string& arch) {
  return json::object{{"kubernetes.io/arch", arch},         {"kubernetes.io/os", "linux"},
                      {"kubernetes.io/hostname", node},     {"beta.kubernetes.io/arch", arch},
                      {"beta.kubernetes.io/os", "linux"},   {"node-role.kubernetes.io/edge", ""},
                      {"node-role.kubernetes.io/agent", ""}};
}

// The reply's outcome: {"Object": Node, "Err": null} when created; an Err
// whose ErrStatus is AlreadyExists (409) when the node was there.
static int registration_outcome(const json::value& content, std::string& why) {
  if (!content.is_object()) {
    why = content.is_string() ? std::string(content.as_string()) : json::serialize(content);
    return NodeRegistration::kFailed;
  }
  auto* err = content.as_object().if_contains("Err");
  if (!err || err->is_null()) return NodeRegistration::kCreated;
  auto* st = find(*err, {"ErrStatus"});
  if (st && (str(*st, {"reason"}) == "AlreadyExists" ||
             kedge::json_path::integer_at(*st, {"code"}) == 409))
    return NodeRegistration::kExists;
  why = st ? str(*st, {"message"}) : json::serialize(*err);
  if (why.empty()) why = json::serialize(*err);
  return NodeRegistration::kFailed;
}

void Edged::register_node(const json::object& status, const std::string& arch) {
  NodeRegistration& r = *reg_;
  int state = r.state.load();
  if (state == NodeRegistration::kDone || state == NodeRegistration::kInFlight) return;
  const std::string key = "default/node/" + node_;
  const std::string group(kedge::contracts::wire::group::kResource);
  if (state == NodeRegistration::kCreated) {
    log_->info("node {} registered", node_);
    r.state = NodeRegistration::kDone;
    return;
  }
  if (state == NodeRegistration::kExists) {
    // kubelet's updateDefaultLabels: the node was there; its labels follow.
    json::object node{
        {"apiVersion", "v1"},
        {"kind", "Node"},
        {"metadata", json::object{{"name", node_}, {"labels", default_labels(node_, arch)}}}};
    auto m = kedge::make_message(ctx_->name(), group, "update", key, std::move(node));
    if (Status s = ctx_->send(s_.metamanager, kedge::share(std::move(m)), 1s); !s) {
      log_->warn("labels of node {} not sent: {}", node_, s.message());
      return;  // again next time
    }
    log_->info("node {} was registered already; its default labels are sent", node_);
    r.state = NodeRegistration::kDone;
    return;
  }
  if (state == NodeRegistration::kFailed) {
    std::lock_guard lock(r.mu);
    log_->warn("node {} not registered ({}); trying again", node_, r.why);
  }
  json::object node{
      {"apiVersion", "v1"},
      {"kind", "Node"},
      {"metadata", json::object{{"name", node_}, {"labels", default_labels(node_, arch)}}},
      {"spec", json::object{}},
      {"status", status}};
  auto m = kedge::make_message(ctx_->name(), group, std::string(kedge::op::kInsert), key,
                               std::move(node));
  m.header.sync = true;
  r.state = NodeRegistration::kInFlight;
  ctx_->request(s_.metamanager, kedge::share(std::move(m)), 30s,
                [reg = reg_](Status s, MessagePtr reply) {
                  std::string why;
                  int outcome = NodeRegistration::kFailed;
                  if (!s || !reply)
                    why = s ? "no answer" : s.message();
                  else if (reply->route.operation == kedge::op::kError)
                    why = reply->content.is_string() ? std::string(reply->content.as_string())
                                                     : json::serialize(reply->content);
                  else
                    outcome = registration_outcome(reply->content, why);
                  std::lock_guard lock(reg->mu);
                  reg->why = why;
                  reg->state = outcome;
                });
}

void Edged::maybe_node_status() {
  auto period = std::chrono::seconds(s_.node_status_period_s);
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
  std::string pods = std::to_string(s_.max_pods);
  json::object capacity{{"cpu", std::to_string(cpus)},
                        {"memory", std::to_string(mem_kb) + "Ki"},
                        {"pods", pods},
                        {"ephemeral-storage", std::to_string(disk / 1024) + "Ki"}};
  int64_t reserved_kb = s_.reserved_memory_mb * 1024;
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
    if (cri_->call("ListImages", cri_->images(), &pb::ImageService::Stub::ListImages, req, &res)) {
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
  register_node(status, arch);
  auto m = kedge::make_message(ctx_->name(), std::string(kedge::contracts::wire::group::kResource),
                               "patch", "default/nodepatch/" + node_,
                               json::string(json::serialize(json::object{{"status", status}})));
  Status s = ctx_->send(s_.metamanager, kedge::share(std::move(m)), 1s);
  if (!s) log_->warn("node status not sent: {}", s.message());
}

}  // namespace kedge::edged
