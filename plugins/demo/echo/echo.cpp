// echo: answers every request with a response carrying the same content.
// A demo plugin and a test peer.
#include <spdlog/logger.h>

#include "kedge/plugin.h"
#include "kedge/settings.h"

namespace {

struct Settings {
  int64_t log_every = 0;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    {"log_every", &Settings::log_every, "0",
     "Log a line every N answered requests (0: only at stop).", false, 0, 1e12},
};
constexpr auto kConfig = kedge::config_keys(kSettings);

class Echo final : public kedge::Plugin {
 public:
  kedge::Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_every_ = kedge::read_settings(kSettings, cfg).log_every;
    answered_ = &ctx.metrics().counter("kedge_echo_answered_total", "Requests echo answered");
    return {};
  }
  kedge::Status start() override { return {}; }
  kedge::Status stop() override {
    ctx_->logger()->info("answered {} request(s)", count_);
    return {};
  }

  void on_message(const kedge::MessagePtr& msg) override {
    if (msg->is_response()) return;
    kedge::Status s = ctx_->respond(kedge::share(kedge::new_response(*msg, msg->content)));
    if (!s) {
      // Nobody waits (a plain send, or the requester gave up): not an error.
      ctx_->logger()->debug("not answered: {}", s.message());
      return;
    }
    ++count_;
    answered_->inc();
    if (log_every_ > 0 && count_ % log_every_ == 0)
      ctx_->logger()->info("answered {} request(s)", count_);
  }

 private:
  kedge::Context* ctx_ = nullptr;
  kedge::Counter* answered_ = nullptr;
  int64_t log_every_ = 0;
  uint64_t count_ = 0;
};

}  // namespace

KEDGE_PLUGIN(Echo, {.name = "echo",
                    .version = "0.1.0",
                    .description = "Answers every request with its own content.",
                    .config = kConfig})
