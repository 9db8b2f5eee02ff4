// journal: a demo stand-in for the edge's metadata store until metamanager
// exists. It takes what the cloud sends to the edge's `meta` group, appends
// each message (operation, resource, resourceVersion, content) to
// <data_dir>/journal.jsonl and flushes it, then ACKs it through edgehub, so
// the cloud's queue drains. It runs nothing: pods stay Pending.
#include <spdlog/logger.h>

#include <boost/json/serialize.hpp>
#include <fstream>

#include "kedge/plugin.h"

namespace {

class Journal final : public kedge::Plugin {
 public:
  kedge::Status init(kedge::Context& ctx, const kedge::Config&) override {
    ctx_ = &ctx;
    path_ = (ctx.data_dir() / "journal.jsonl").string();
    out_.open(path_, std::ios::app);
    if (!out_) return kedge::invalid_argument("cannot open " + path_ + " for appending");
    return {};
  }
  kedge::Status start() override { return {}; }
  kedge::Status stop() override {
    out_.flush();
    return {};
  }
  void on_message(const kedge::MessagePtr& m) override {
    if (m->route.operation == "connect" || m->is_response()) return;
    boost::json::object line{{"operation", m->route.operation},
                             {"resource", m->route.resource},
                             {"resourceVersion", m->header.resource_version},
                             {"content", m->content}};
    out_ << boost::json::serialize(line) << "\n";
    out_.flush();
    if (!out_) {
      ctx_->logger()->error("cannot write {}; {} not acknowledged", path_, m->route.resource);
      return;
    }
    ctx_->logger()->info("stored {} {} (resourceVersion {})", m->route.operation,
                         m->route.resource, m->header.resource_version);
    (void)ctx_->send("edgehub",
                     kedge::share(kedge::new_response(*m, boost::json::string("OK"))));
  }

 private:
  kedge::Context* ctx_ = nullptr;
  std::string path_;
  std::ofstream out_;
};

}  // namespace

KEDGE_PLUGIN(Journal, {.name = "journal",
                       .version = "0.1.0",
                       .group = "meta",
                       .description = "Demo: stores what the cloud sends to the edge in a "
                                      "journal file and acknowledges it."})
