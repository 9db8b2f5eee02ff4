// ticker: every interval, sends a request to a target module and a
// notification to a group, and counts the answers. A demo plugin.
#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>

#include "kedge/plugin.h"
#include "kedge/settings.h"

namespace {

using namespace std::chrono;

struct Settings {
  std::string target;
  int64_t interval_ms = 0, count = 0;
  std::string notify_group;
  int64_t report_every = 0;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    {"target", &Settings::target, "\"echo\"", "Module that receives the requests."},
    {"interval_ms", &Settings::interval_ms, "1000", "Time between ticks."},
    {"count", &Settings::count, "0", "Stop after this many ticks (0: never)."},
    {"notify_group", &Settings::notify_group, "\"\"",
     "Group that also gets each tick as an update (empty: none)."},
    {"report_every", &Settings::report_every, "10",
     "Log a summary every N answered ticks (0: never)."},
};
constexpr auto kConfig = kedge::config_keys(kSettings);

class Ticker final : public kedge::Plugin {
 public:
  kedge::Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    auto set = kedge::read_settings(kSettings, cfg);
    target_ = set.target;
    notify_group_ = set.notify_group;
    interval_ = milliseconds(set.interval_ms);
    limit_ = set.count;
    report_every_ = set.report_every;
    if (interval_.count() <= 0) return kedge::invalid_argument("interval_ms must be > 0");
    if (target_.empty()) return kedge::invalid_argument("target must not be empty");
    auto& m = ctx.metrics();
    replies_ = &m.counter("kedge_ticker_replies_total", "Answered ticker requests");
    failures_ = &m.counter("kedge_ticker_failures_total", "Ticker requests that failed");
    timer_.emplace(ctx.executor());
    return {};
  }

  kedge::Status start() override {
    stopped_ = false;
    schedule();
    return {};
  }

  kedge::Status stop() override {
    stopped_ = true;
    timer_->cancel();
    ctx_->logger()->info("stopped after {} tick(s), {} answered", seq_, answered_);
    return {};
  }

 private:
  void schedule() {
    if (stopped_ || (limit_ > 0 && seq_ >= static_cast<uint64_t>(limit_))) return;
    timer_->expires_after(interval_);
    timer_->async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      tick();
      schedule();
    });
  }

  void tick() {
    uint64_t n = ++seq_;
    boost::json::object content{{"seq", static_cast<int64_t>(n)}, {"node", ctx_->node_name()}};
    auto req =
        kedge::make_message(ctx_->name(), "", "query", "demo/tick/" + std::to_string(n), content);
    auto sent_at = steady_clock::now();
    ctx_->request(
        target_, kedge::share(std::move(req)), seconds(5),
        [this, n, sent_at](kedge::Status s, kedge::MessagePtr resp) {
          if (!s) {
            failures_->inc();
            ctx_->logger()->warn("tick {} not answered: {}", n, s.message());
            return;
          }
          ++answered_;
          replies_->inc();
          auto us = duration_cast<microseconds>(steady_clock::now() - sent_at).count();
          ctx_->logger()->debug("tick {} answered by {} in {} us", n, resp->route.source, us);
          if (report_every_ > 0 && answered_ % report_every_ == 0)
            ctx_->logger()->info("exchanged {} round trip(s) with {}", answered_, target_);
        });
    if (!notify_group_.empty()) {
      auto note = kedge::make_message(ctx_->name(), notify_group_, "update",
                                      "demo/tick/" + std::to_string(n), content);
      if (kedge::Status s = ctx_->send_to_group(notify_group_, kedge::share(std::move(note))); !s)
        ctx_->logger()->debug("group notification not sent: {}", s.message());
    }
  }

  kedge::Context* ctx_ = nullptr;
  std::optional<boost::asio::steady_timer> timer_;
  std::string target_, notify_group_;
  milliseconds interval_{1000};
  int64_t limit_ = 0, report_every_ = 0;
  uint64_t seq_ = 0, answered_ = 0;
  bool stopped_ = true;
  kedge::Counter* replies_ = nullptr;
  kedge::Counter* failures_ = nullptr;
};

constexpr const char* kDeps[] = {"echo"};

}  // namespace

KEDGE_PLUGIN(Ticker, {.name = "ticker",
                      .version = "0.1.0",
                      .description = "Sends a request to a target module every interval.",
                      .config = kConfig,
                      .dependencies = kDeps})
