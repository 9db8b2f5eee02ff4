#include "kedge/core/router.h"

#include <atomic>
#include <boost/asio/post.hpp>
#include <condition_variable>

namespace kedge::core {

namespace asio = boost::asio;

namespace {
constexpr size_t kDrainBatch = 64;
}

// A module's mailbox: a ring buffer of MessagePtr guarded by a mutex. The
// buffer has kDrainBatch spare slots so a drain interrupted by a pause can
// put its unprocessed messages back at the front without overflowing.
struct Router::Module {
  Module(asio::io_context& io, std::string n, std::string g, size_t cap, Handler h,
         MetricsRegistry& reg)
      : name(std::move(n)),
        group(std::move(g)),
        strand(asio::make_strand(io)),
        handler(std::move(h)),
        capacity(cap),
        buf(cap + kDrainBatch),
        sent(reg.counter("kedge_router_sent_total", "Messages a module sent that were accepted",
                         {{"module", name}})),
        delivered(reg.counter("kedge_router_delivered_total",
                              "Messages and responses handed to a module", {{"module", name}})),
        rejected(reg.counter("kedge_router_rejected_total",
                             "Messages refused by a module's queue (full or closed)",
                             {{"module", name}})),
        timed_out(reg.counter("kedge_router_timed_out_total",
                              "Sends and requests by a module whose deadline passed",
                              {{"module", name}})),
        unroutable(reg.counter("kedge_router_unroutable_total",
                               "Messages a module sent to an unknown module or empty group",
                               {{"module", name}})) {}

  void push_back(MessagePtr m) {
    buf[(head + count) % buf.size()] = std::move(m);
    ++count;
  }
  void push_front(MessagePtr m) {
    head = (head + buf.size() - 1) % buf.size();
    buf[head] = std::move(m);
    ++count;
  }
  MessagePtr pop_front() {
    MessagePtr m = std::move(buf[head]);
    head = (head + 1) % buf.size();
    --count;
    return m;
  }

  const std::string name;
  const std::string group;
  asio::strand<asio::io_context::executor_type> strand;
  Handler handler;
  const size_t capacity;

  mutable std::mutex mu;
  std::condition_variable not_full;
  std::vector<MessagePtr> buf;
  size_t head = 0;
  size_t count = 0;
  size_t waiters = 0;
  bool scheduled = false;
  bool closed = false;
  std::atomic<bool> paused{true};
  std::atomic<uint64_t> generation{0};

  Counter& sent;
  Counter& delivered;
  Counter& rejected;
  Counter& timed_out;
  Counter& unroutable;
};

Router::Router(asio::io_context& io, MetricsRegistry& metrics)
    : io_(io),
      metrics_(metrics),
      external_(std::make_unique<Module>(io, "(external)", "", 0, nullptr, metrics)),
      unmatched_responses_(metrics.counter("kedge_router_unmatched_responses_total",
                                           "Responses for which no request was waiting")),
      handler_errors_(
          metrics.counter("kedge_router_handler_errors_total",
                          "Exceptions thrown by handlers of modules that are not plugins")),
      timer_strand_(asio::make_strand(io)),
      timer_(timer_strand_) {}

Router::~Router() = default;

Status Router::add_module(const std::string& name, const std::string& group, size_t capacity,
                          Handler handler) {
  if (capacity == 0) return invalid_argument("module '" + name + "': queue capacity must be > 0");
  std::unique_lock lock(modules_mu_);
  if (modules_.count(name)) return invalid_argument("module '" + name + "' is already registered");
  auto m = std::make_unique<Module>(io_, name, group, capacity, std::move(handler), metrics_);
  if (!group.empty()) groups_[group].push_back(m.get());
  modules_.emplace(name, std::move(m));
  return {};
}

Router::Module* Router::find(std::string_view name) const {
  std::shared_lock lock(modules_mu_);
  auto it = modules_.find(name);
  return it == modules_.end() ? nullptr : it->second.get();
}

Router::Module& Router::sender(std::string_view from) const {
  Module* m = find(from);
  return m ? *m : *external_;
}

bool Router::has_module(std::string_view name) const { return find(name) != nullptr; }

void Router::set_paused(std::string_view name, bool paused) {
  Module* m = find(name);
  if (!m) return;
  bool schedule = false;
  {
    std::lock_guard lock(m->mu);
    m->paused.store(paused);
    if (!paused && m->count > 0 && !m->scheduled) schedule = m->scheduled = true;
  }
  if (schedule) asio::post(m->strand, [this, m] { drain(*m); });
}

void Router::set_closed(std::string_view name, bool closed) {
  Module* m = find(name);
  if (!m) return;
  {
    std::lock_guard lock(m->mu);
    m->closed = closed;
  }
  m->not_full.notify_all();
}

void Router::retire_instance(std::string_view name) {
  Module* m = find(name);
  if (!m) return;
  m->generation.fetch_add(1);
  std::lock_guard lock(pending_mu_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.requester == name) {
      deadlines_.erase(it->second.deadline_it);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
}

asio::any_io_executor Router::executor(std::string_view name) {
  Module* m = find(name);
  if (m) return m->strand;
  return io_.get_executor();
}

Status Router::enqueue(Module& dst, Module& src, MessagePtr msg, std::chrono::milliseconds wait) {
  std::unique_lock lock(dst.mu);
  if (dst.closed) {
    dst.rejected.inc();
    return {Code::kUnavailable, "module '" + dst.name + "' is not running (it failed and gave up)"};
  }
  if (dst.count >= dst.capacity) {
    if (wait.count() <= 0) {
      dst.rejected.inc();
      return {Code::kFull, "queue of module '" + dst.name + "' is full (capacity " +
                               std::to_string(dst.capacity) + ")"};
    }
    ++dst.waiters;
    bool room =
        dst.not_full.wait_for(lock, wait, [&] { return dst.count < dst.capacity || dst.closed; });
    --dst.waiters;
    if (!room || dst.closed) {
      dst.rejected.inc();
      if (!room) {
        src.timed_out.inc();
        return {Code::kFull, "queue of module '" + dst.name + "' stayed full for " +
                                 std::to_string(wait.count()) + " ms (capacity " +
                                 std::to_string(dst.capacity) + ")"};
      }
      return {Code::kUnavailable, "module '" + dst.name + "' is not running"};
    }
  }
  dst.push_back(std::move(msg));
  bool schedule = !dst.scheduled && !dst.paused.load(std::memory_order_relaxed);
  if (schedule) dst.scheduled = true;
  lock.unlock();
  src.sent.inc();
  if (schedule) asio::post(dst.strand, [this, d = &dst] { drain(*d); });
  return {};
}

void Router::drain(Module& m) {
  MessagePtr batch[kDrainBatch];
  size_t n = 0;
  bool notify = false;
  {
    std::lock_guard lock(m.mu);
    if (m.paused.load()) {
      m.scheduled = false;
      return;
    }
    while (n < kDrainBatch && m.count > 0) batch[n++] = m.pop_front();
    notify = m.waiters > 0;
  }
  if (notify) m.not_full.notify_all();
  size_t i = 0;
  for (; i < n; ++i) {
    if (m.paused.load(std::memory_order_relaxed)) break;
    MessagePtr msg = std::move(batch[i]);
    m.delivered.inc();
    try {
      m.handler(msg);
    } catch (...) {
      // Plugins' handlers are guarded by the kernel; this catches the rest
      // (modules added directly, such as test captures), so the mailbox
      // keeps flowing.
      handler_errors_.inc();
    }
  }
  std::lock_guard lock(m.mu);
  // Paused mid-batch: the rest goes back to the front, in order.
  for (size_t k = n; k > i; --k) m.push_front(std::move(batch[k - 1]));
  if (m.count > 0 && !m.paused.load()) {
    asio::post(m.strand, [this, pm = &m] { drain(*pm); });
  } else {
    m.scheduled = false;
  }
}

Status Router::send(std::string_view from, std::string_view to, MessagePtr msg,
                    std::chrono::milliseconds wait) {
  Module& src = sender(from);
  Module* dst = find(to);
  if (!dst) {
    src.unroutable.inc();
    return not_found("no module named '" + std::string(to) + "'");
  }
  return enqueue(*dst, src, std::move(msg), wait);
}

Status Router::send_to_group(std::string_view from, std::string_view group, MessagePtr msg,
                             std::chrono::milliseconds wait) {
  Module& src = sender(from);
  std::vector<Module*> members;
  {
    std::shared_lock lock(modules_mu_);
    auto it = groups_.find(group);
    if (it != groups_.end()) members = it->second;
  }
  if (members.empty()) {
    src.unroutable.inc();
    return not_found("no module in group '" + std::string(group) + "'");
  }
  Status first_error;
  for (Module* m : members) {
    Status s = enqueue(*m, src, msg, wait);
    if (!s && first_error.is_ok()) first_error = s;
  }
  return first_error;
}

void Router::request(std::string_view from, std::string_view to, MessagePtr msg,
                     std::chrono::milliseconds timeout, ResponseHandler on_response) {
  Module& src = sender(from);
  std::string id = msg->header.id;
  auto deadline = Clock::now() + timeout;
  bool rearm = false;
  {
    std::unique_lock lock(pending_mu_);
    if (pending_.count(id)) {
      lock.unlock();
      complete(Pending{std::string(from), src.generation.load(), std::move(on_response), {}},
               invalid_argument("a request with msg_id '" + id + "' is already waiting"), nullptr);
      return;
    }
    auto dit = deadlines_.emplace(deadline, id);
    pending_.emplace(
        id, Pending{std::string(from), src.generation.load(), std::move(on_response), dit});
    if (deadline < armed_for_) {
      armed_for_ = deadline;
      rearm = true;
    }
  }
  if (rearm) asio::post(timer_strand_, [this] { arm_timer(); });
  Status s = send(from, to, std::move(msg), std::chrono::milliseconds{0});
  if (!s) {
    std::unique_lock lock(pending_mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // already answered or timed out
    Pending p = std::move(it->second);
    deadlines_.erase(p.deadline_it);
    pending_.erase(it);
    lock.unlock();
    complete(std::move(p), s, nullptr);
  }
}

Status Router::respond(std::string_view from, MessagePtr response) {
  Module& src = sender(from);
  std::unique_lock lock(pending_mu_);
  auto it = pending_.find(response->header.parent_id);
  if (it == pending_.end()) {
    lock.unlock();
    unmatched_responses_.inc();
    return not_found("no request with msg_id '" + response->header.parent_id +
                     "' is waiting (it timed out or was answered already)");
  }
  Pending p = std::move(it->second);
  deadlines_.erase(p.deadline_it);
  pending_.erase(it);
  lock.unlock();
  src.sent.inc();
  complete(std::move(p), {}, std::move(response));
  return {};
}

// Runs the handler on the requester's strand, unless the plugin instance that
// asked has been retired meanwhile.
void Router::complete(Pending p, Status s, MessagePtr msg) {
  Module* req = find(p.requester);
  if (!req) {
    asio::post(io_, [h = std::move(p.handler), s = std::move(s), msg = std::move(msg)]() mutable {
      h(std::move(s), std::move(msg));
    });
    return;
  }
  if (!s && s.code() == Code::kTimeout) req->timed_out.inc();
  asio::post(req->strand,
             [req, p = std::move(p), s = std::move(s), msg = std::move(msg)]() mutable {
               if (req->generation.load() != p.generation) return;
               if (msg) req->delivered.inc();
               p.handler(std::move(s), std::move(msg));
             });
}

void Router::arm_timer() {
  Clock::time_point next;
  {
    std::lock_guard lock(pending_mu_);
    if (deadlines_.empty()) {
      armed_for_ = Clock::time_point::max();
      return;
    }
    next = deadlines_.begin()->first;
    armed_for_ = next;
  }
  timer_.expires_at(next);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec != asio::error::operation_aborted) on_timer();
  });
}

void Router::on_timer() {
  std::vector<Pending> expired;
  {
    std::lock_guard lock(pending_mu_);
    auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      auto it = pending_.find(deadlines_.begin()->second);
      deadlines_.erase(deadlines_.begin());
      if (it != pending_.end()) {
        expired.push_back(std::move(it->second));
        pending_.erase(it);
      }
    }
  }
  for (auto& p : expired) {
    Status s{Code::kTimeout, "no response within the request's timeout"};
    if (!find(p.requester)) external_->timed_out.inc();
    complete(std::move(p), s, nullptr);
  }
  arm_timer();
}

ModuleStats Router::stats(std::string_view name) const {
  Module* m = find(name);
  if (!m) return {};
  ModuleStats s;
  s.sent = m->sent.value();
  s.delivered = m->delivered.value();
  s.rejected = m->rejected.value();
  s.timed_out = m->timed_out.value();
  s.unroutable = m->unroutable.value();
  std::lock_guard lock(m->mu);
  s.queued = m->count;
  return s;
}

std::vector<std::string> Router::group_members(std::string_view group) const {
  std::vector<std::string> out;
  std::shared_lock lock(modules_mu_);
  auto it = groups_.find(group);
  if (it != groups_.end())
    for (auto* m : it->second) out.push_back(m->name);
  return out;
}

size_t Router::total_queued() const {
  size_t n = 0;
  std::shared_lock lock(modules_mu_);
  for (auto& [_, m] : modules_) {
    std::lock_guard l(m->mu);
    n += m->count;
  }
  return n;
}

}  // namespace kedge::core
