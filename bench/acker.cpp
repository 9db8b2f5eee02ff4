// meta-acker: stands in for metamanager in the channel benchmark. It takes
// every message of group "meta" and ACKs it through edgehub at once.
#include "kedge/plugin.h"

namespace {
class Acker final : public kedge::Plugin {
 public:
  kedge::Status init(kedge::Context& ctx, const kedge::Config&) override {
    ctx_ = &ctx;
    return {};
  }
  kedge::Status start() override { return {}; }
  kedge::Status stop() override { return {}; }
  void on_message(const kedge::MessagePtr& m) override {
    if (m->route.operation == "connect" || m->is_response()) return;
    (void)ctx_->send("edgehub", kedge::share(kedge::new_response(*m, boost::json::string("OK"))),
                     std::chrono::seconds(10));
  }

 private:
  kedge::Context* ctx_ = nullptr;
};
}  // namespace

KEDGE_PLUGIN(Acker, {.name = "meta-acker", .version = "0.1.0", .group = "meta"})
