// hello: a minimal third-party kedge plugin. At start it greets a peer module
// `count` times with requests, and logs each answer.
#include <spdlog/logger.h>

#include <kedge/plugin.h>
#include <kedge/settings.h>

namespace {

// The config: each key declared once, beside its field (the type comes from
// the field). The kernel validates the manifest against it (types, ranges,
// with file:line:col) before init.
struct Settings {
  std::string peer;
  int64_t count = 0;
};
constexpr kedge::Setting<Settings> kSettings[] = {
    {"peer", &Settings::peer, "\"echo\"", "Module to greet."},
    {"count", &Settings::count, "3", "How many greetings to send.", false, 1, 1000},
};
constexpr auto kConfig = kedge::config_keys(kSettings);

class Hello final : public kedge::Plugin {
 public:
  kedge::Status init(kedge::Context& ctx, const kedge::Config& config) override {
    ctx_ = &ctx;
    auto s = kedge::read_settings(kSettings, config);
    peer_ = s.peer;
    count_ = s.count;  // within [1, 1000]: checked with the manifest
    return {};
  }

  kedge::Status start() override {
    for (int64_t i = 1; i <= count_; ++i) {
      auto msg = kedge::make_message(ctx_->name(), "", "query", "hello/greeting",
                                     boost::json::object{{"n", i}, {"text", "hello"}});
      ctx_->request(peer_, kedge::share(std::move(msg)), std::chrono::seconds(5),
                    [this](kedge::Status s, kedge::MessagePtr reply) { on_reply(s, reply); });
    }
    return {};
  }

  kedge::Status stop() override { return {}; }

 private:
  void on_reply(const kedge::Status& s, const kedge::MessagePtr& reply) {
    if (!s) {
      ctx_->logger()->error("no answer from {}: {}", peer_, s.message());
      return;
    }
    ++answered_;
    ctx_->logger()->info("{} answered greeting {}",
                         reply->route.source.empty() ? peer_ : reply->route.source,
                         reply->content.at("n").as_int64());
    if (answered_ == count_)
      ctx_->logger()->info("exchanged {} messages with {}", 2 * count_, peer_);
  }

  kedge::Context* ctx_ = nullptr;
  std::string peer_;
  int64_t count_ = 0;
  int64_t answered_ = 0;
};

// The module it greets, named by its config (never a literal).
constexpr kedge::PeerDecl kPeers[] = {
    {"peer", "query hello/greeting (requests)", false},
};

}  // namespace

KEDGE_PLUGIN(Hello, {.name = "hello",
                     .version = "1.0.0",
                     .description = "Greets a peer module at start.",
                     .config = kConfig,
                     .peers = kPeers})
