#include "kedge/core/kernel.h"

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <fstream>
#include <future>

#include "kedge/plugin.h"

namespace kedge::core {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

const char* state_name(PluginState s) {
  switch (s) {
    case PluginState::kLoaded: return "loaded";
    case PluginState::kStarting: return "starting";
    case PluginState::kRunning: return "running";
    case PluginState::kBackingOff: return "backing_off";
    case PluginState::kFailed: return "failed";
    case PluginState::kStopped: return "stopped";
  }
  return "unknown";
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& name, const std::string& level) {
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto log = std::make_shared<spdlog::logger>(name, sink);
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  log->set_level(spdlog::level::from_str(level));
  log->flush_on(spdlog::level::warn);
  return log;
}

namespace {

template <class F>
auto run_on(asio::any_io_executor ex, F&& f) {
  using R = decltype(f());
  std::packaged_task<R()> task(std::forward<F>(f));
  auto fut = task.get_future();
  asio::post(ex, [&task] { task(); });
  return fut.get();
}

Status guarded(const char* what, const std::function<Status()>& f) {
  try {
    Status s = f();
    if (!s) return {s.code(), std::string(what) + " failed: " + s.message()};
    return s;
  } catch (const std::exception& e) {
    return internal_error(std::string(what) + " threw: " + e.what());
  } catch (...) {
    return internal_error(std::string(what) + " threw a non-standard exception");
  }
}

constexpr PluginState kAllStates[] = {PluginState::kLoaded,  PluginState::kStarting,
                                      PluginState::kRunning, PluginState::kBackingOff,
                                      PluginState::kFailed,  PluginState::kStopped};

}  // namespace

// One plugin under supervision. Everything except the constructor runs on the
// plugin's strand, so the lifecycle never races with on_message.
class Kernel::Slot final : public Context {
 public:
  Slot(Kernel& k, ResolvedPlugin rp)
      : k_(k),
        rp_(std::move(rp)),
        d_(*rp_.plugin.descriptor),
        name_(rp_.entry->name),
        group_(d_.group ? d_.group : d_.name),
        log_(make_logger(name_, rp_.entry->log_level)),
        restarts_(k.metrics_.counter("kedge_plugin_restarts_total", "Plugin restarts",
                                     {{"plugin", name_}})),
        failures_(k.metrics_.counter("kedge_plugin_failures_total",
                                     "Plugin failures (init, start or run time)",
                                     {{"plugin", name_}})),
        backoff_(rp_.entry->restart.initial_backoff) {
    for (PluginState s : kAllStates)
      state_gauges_.push_back(&k.metrics_.gauge("kedge_plugin_state",
                                                "1 for the state each plugin is in, else 0",
                                                {{"plugin", name_}, {"state", state_name(s)}}));
    set_state(PluginState::kLoaded);
  }

  // Context
  const std::string& name() const override { return name_; }
  const std::string& group() const override { return group_; }
  const std::string& node_name() const override { return k_.manifest_.agent.node_name; }
  const std::filesystem::path& data_dir() const override { return k_.manifest_.agent.data_dir; }
  std::shared_ptr<spdlog::logger> logger() const override { return log_; }
  MetricsRegistry& metrics() override { return k_.metrics_; }
  asio::any_io_executor executor() override { return k_.router_->executor(name_); }
  Status send(std::string_view module, MessagePtr msg, std::chrono::milliseconds wait) override {
    return k_.router_->send(name_, module, std::move(msg), wait);
  }
  Status send_to_group(std::string_view group, MessagePtr msg,
                       std::chrono::milliseconds wait) override {
    return k_.router_->send_to_group(name_, group, std::move(msg), wait);
  }
  void request(std::string_view module, MessagePtr msg, std::chrono::milliseconds timeout,
               ResponseHandler h) override {
    // The handler runs on this strand; an exception in it is this plugin's failure.
    k_.router_->request(
        name_, module, std::move(msg), timeout, [this, h = std::move(h)](Status s, MessagePtr m) {
          try {
            h(std::move(s), std::move(m));
          } catch (const std::exception& e) {
            fail_running(generation_,
                         internal_error(std::string("response handler threw: ") + e.what()));
          } catch (...) {
            fail_running(generation_,
                         internal_error("response handler threw a non-standard exception"));
          }
        });
  }
  Status respond(MessagePtr response) override {
    return k_.router_->respond(name_, std::move(response));
  }
  void report_failure(Status why) override {
    // Tagged with the instance that reported: a second report, or one from
    // an instance already replaced, is ignored.
    asio::post(executor(),
               [this, gen = generation_.load(), why = std::move(why)] { fail_running(gen, why); });
  }

  const std::string& plugin_name() const { return name_; }
  bool required() const { return rp_.entry->required; }
  PluginState state() const { return state_.load(); }

  // Creates, inits and starts an instance (on the strand).
  Status start_instance() {
    set_state(PluginState::kStarting);
    ++generation_;
    Status s = guarded("create", [&] {
      instance_ = d_.create();
      return instance_ ? Status{} : internal_error("the factory returned no instance");
    });
    if (!s) {
      failures_.inc();
      return s;
    }
    s = guarded("init", [&] { return instance_->init(*this, rp_.config); });
    if (s) s = guarded("start", [&] { return instance_->start(); });
    if (!s) {
      failures_.inc();
      discard_instance();
      return s;
    }
    started_at_ = Clock::now();
    set_state(PluginState::kRunning);
    log_->info("plugin {} {} is running", name_, d_.version);
    k_.router_->set_paused(name_, false);
    return {};
  }

  void deliver(const MessagePtr& msg) {
    if (!instance_ || state_ != PluginState::kRunning) {
      // Unreachable: the mailbox is paused whenever the plugin is not running.
      log_->error("message {} reached plugin {} while it is {}; not delivered", msg->header.id,
                  name_, state_name(state_));
      return;
    }
    try {
      instance_->on_message(msg);
    } catch (const std::exception& e) {
      fail_running(generation_, internal_error(std::string("on_message threw: ") + e.what()));
    } catch (...) {
      fail_running(generation_, internal_error("on_message threw a non-standard exception"));
    }
  }

  // A run-time failure of instance `gen`: stop it and restart per the policy.
  void fail_running(uint64_t gen, const Status& why) {
    if (state_ != PluginState::kRunning || gen != generation_) return;
    failures_.inc();
    k_.router_->set_paused(name_, true);
    log_->error("plugin {} failed: {}", name_, why.message());
    stop_instance();
    // A plugin that ran for a while before failing starts a fresh back-off.
    if (Clock::now() - started_at_ > 10 * rp_.entry->restart.initial_backoff) {
      backoff_ = rp_.entry->restart.initial_backoff;
      attempts_ = 0;
    }
    restart_later(why);
  }

  // After a failure (at start or at run time): a restart after the back-off,
  // or giving up.
  void restart_later(const Status& why) {
    const RestartPolicy& p = rp_.entry->restart;
    if (p.kind == RestartPolicy::Kind::kNever ||
        (p.max_restarts > 0 && attempts_ >= p.max_restarts)) {
      give_up(why);
      return;
    }
    ++attempts_;
    auto delay = backoff_;
    backoff_ = std::min(backoff_ * 2, p.max_backoff);
    set_state(PluginState::kBackingOff);
    log_->warn("plugin {} will restart in {} ms (restart {}{}): {}", name_, delay.count(),
               attempts_, p.max_restarts ? " of " + std::to_string(p.max_restarts) : std::string(),
               why.message());
    if (!timer_) timer_ = std::make_unique<asio::steady_timer>(executor());
    timer_->expires_after(delay);
    timer_->async_wait([this](boost::system::error_code ec) {
      if (ec || state_ != PluginState::kBackingOff) return;
      free_retired(kRetiredGrace);
      restarts_.inc();
      Status s = start_instance();
      if (!s) {
        log_->error("plugin {} failed to restart: {}", name_, s.message());
        restart_later(s);
      }
    });
  }

  void give_up(const Status& why) {
    set_state(PluginState::kFailed);
    k_.router_->set_closed(name_, true);
    if (required()) {
      log_->critical("required plugin {} failed and will not be restarted: {}", name_,
                     why.message());
      k_.request_shutdown(1, "required plugin '" + name_ + "' failed: " + why.message());
    } else {
      log_->error("plugin {} failed and will not be restarted: {}", name_, why.message());
    }
  }

  // Orderly stop at shutdown (on the strand).
  void shutdown() {
    if (timer_) timer_->cancel();
    if (state_ == PluginState::kRunning) {
      k_.router_->set_paused(name_, true);
      stop_instance();
    }
    set_state(PluginState::kStopped);
  }

  // After the workers are joined: nothing can run any more.
  void destroy_retired() {
    free_retired(std::chrono::seconds{0});
    if (instance_) {
      d_.destroy(instance_);
      instance_ = nullptr;
    }
  }

 private:
  void stop_instance() {
    Status s = guarded("stop", [&] { return instance_->stop(); });
    if (!s) log_->error("plugin {}: {}", name_, s.message());
    discard_instance();
  }

  // Destroys instances retired at least `grace` ago.
  void free_retired(std::chrono::seconds grace) {
    auto now = Clock::now();
    std::erase_if(retired_, [&](const Retired& r) {
      if (now - r.at < grace) return false;
      d_.destroy(r.instance);
      return true;
    });
  }

  // A stopped instance is kept for a grace period: completions of what its
  // stop() cancelled (a timer, a resolve) may still be queued and must find it
  // alive. At shutdown all are destroyed after the workers are joined.
  void discard_instance() {
    k_.router_->retire_instance(name_);
    if (instance_) retired_.push_back({instance_, Clock::now()});
    instance_ = nullptr;
  }

  void set_state(PluginState s) {
    state_ = s;
    for (size_t i = 0; i < std::size(kAllStates); ++i) state_gauges_[i]->set(kAllStates[i] == s);
  }

  Kernel& k_;
  ResolvedPlugin rp_;
  const PluginDescriptor& d_;
  const std::string name_;
  const std::string group_;
  std::shared_ptr<spdlog::logger> log_;
  Counter& restarts_;
  Counter& failures_;
  std::vector<Gauge*> state_gauges_;
  std::atomic<PluginState> state_{PluginState::kLoaded};
  struct Retired {
    Plugin* instance;
    Clock::time_point at;
  };
  static constexpr std::chrono::seconds kRetiredGrace{60};
  Plugin* instance_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::vector<Retired> retired_;
  std::unique_ptr<asio::steady_timer> timer_;
  std::chrono::milliseconds backoff_;
  int64_t attempts_ = 0;
  Clock::time_point started_at_;
};

Kernel::Kernel(const Manifest& manifest, std::vector<ResolvedPlugin> plugins)
    : manifest_(manifest),
      router_(std::make_unique<Router>(io_, metrics_)),
      log_(make_logger("kedge", manifest.agent.log_level)) {
  for (auto& rp : plugins) slots_.push_back(std::make_unique<Slot>(*this, std::move(rp)));
}

Kernel::~Kernel() { stop(); }

Status Kernel::add_module(const std::string& name, const std::string& group,
                          Router::Handler handler) {
  Status s = router_->add_module(name, group, manifest_.agent.queue_capacity, std::move(handler));
  if (s) router_->set_paused(name, false);
  return s;
}

Status Kernel::start() {
  if (started_) return {Code::kFailedPrecondition, "kernel already started"};
  started_ = true;
  std::error_code ec;
  std::filesystem::create_directories(manifest_.agent.data_dir, ec);
  if (ec)
    return invalid_argument("cannot create data_dir " + manifest_.agent.data_dir.string() + ": " +
                            ec.message());
  for (auto& slot : slots_) {
    Slot* sp = slot.get();
    const PluginEntry& e =
        *std::find_if(manifest_.plugins.begin(), manifest_.plugins.end(),
                      [&](const PluginEntry& pe) { return pe.name == sp->plugin_name(); });
    Status s = router_->add_module(sp->plugin_name(), sp->group(), e.queue_capacity,
                                   [sp](const MessagePtr& m) { sp->deliver(m); });
    if (!s) return s;
  }
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      io_.get_executor());
  for (int64_t i = 0; i < manifest_.agent.worker_threads; ++i)
    workers_.emplace_back([this] {
      // A plugin's own handler (a timer, say) that throws must not take the
      // agent down; the kernel wraps what it can attribute to a plugin.
      for (;;) {
        try {
          io_.run();
          return;
        } catch (const std::exception& e) {
          log_->error("a handler threw and was abandoned: {}", e.what());
        } catch (...) {
          log_->error("a handler threw a non-standard exception and was abandoned");
        }
      }
    });
  log_->info("agent {} starting {} plugin(s) on {} worker thread(s)", manifest_.agent.node_name,
             slots_.size(), manifest_.agent.worker_threads);

  for (auto& slot : slots_) {
    Slot* sp = slot.get();
    Status s = run_on(sp->executor(), [sp] { return sp->start_instance(); });
    if (s) continue;
    if (sp->required()) {
      Status err{s.code(),
                 "required plugin '" + sp->plugin_name() + "' failed to start: " + s.message()};
      log_->critical("{}", err.message());
      stop();
      return err;
    }
    log_->error("optional plugin {} failed to start: {}", sp->plugin_name(), s.message());
    asio::post(sp->executor(), [sp, s] { sp->restart_later(s); });
  }
  schedule_metrics();
  return {};
}

void Kernel::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  if (workers_.empty()) {  // start() failed before the workers ran: nothing to stop
    for (auto& slot : slots_) slot->destroy_retired();
    return;
  }
  if (metrics_timer_) run_on(metrics_timer_->get_executor(), [this] { metrics_timer_->cancel(); });
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    Slot* sp = it->get();
    run_on(sp->executor(), [sp] { sp->shutdown(); });
    size_t left = router_->stats(sp->plugin_name()).queued;
    if (left)
      log_->warn("plugin {} stopped with {} undelivered message(s) in its queue", sp->plugin_name(),
                 left);
    log_->info("plugin {} stopped", sp->plugin_name());
  }
  work_.reset();
  io_.stop();
  for (auto& t : workers_) t.join();
  workers_.clear();
  for (auto& slot : slots_) slot->destroy_retired();
  write_metrics_file();
  log_->flush();
}

int Kernel::wait_for_shutdown() {
  std::unique_lock lock(shutdown_mu_);
  shutdown_cv_.wait(lock, [&] { return shutdown_; });
  return exit_code_;
}

void Kernel::request_shutdown(int exit_code, const std::string& reason) {
  {
    std::lock_guard lock(shutdown_mu_);
    if (shutdown_) return;
    shutdown_ = true;
    exit_code_ = exit_code;
  }
  if (exit_code)
    log_->error("shutting down: {}", reason);
  else
    log_->info("shutting down: {}", reason);
  shutdown_cv_.notify_all();
}

bool Kernel::shutdown_requested() const {
  std::lock_guard lock(shutdown_mu_);
  return shutdown_;
}

PluginState Kernel::state(const std::string& plugin) const {
  for (auto& s : slots_)
    if (s->plugin_name() == plugin) return s->state();
  return PluginState::kStopped;
}

void Kernel::write_metrics_file() {
  if (manifest_.agent.metrics_file.empty()) return;
  auto path = manifest_.agent.data_dir / manifest_.agent.metrics_file;
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return;
    out << metrics_.prometheus_text();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
}

void Kernel::schedule_metrics() {
  if (manifest_.agent.metrics_file.empty()) return;
  if (!metrics_timer_)
    metrics_timer_ = std::make_unique<asio::steady_timer>(asio::make_strand(io_));
  write_metrics_file();
  metrics_timer_->expires_after(manifest_.agent.metrics_interval);
  metrics_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) schedule_metrics();
  });
}

}  // namespace kedge::core
