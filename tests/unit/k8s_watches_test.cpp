// kedge::k8s::Watches: a watch that ends resumes from the last
// resourceVersion seen, starts over after 410 Gone, is retried while
// apiserver is not there, and stop() unwatches everything.
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>

#include "k8s.h"
#include "kedge/message.h"
#include "kedge/metrics.h"

namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// Records what the plugin sends; `refuse` makes send fail as when the
// apiserver plugin is not loaded.
class FakeContext final : public kedge::Context {
 public:
  const std::string& name() const override { return name_; }
  const std::string& group() const override { return name_; }
  const std::string& node_name() const override { return name_; }
  const std::filesystem::path& data_dir() const override { return dir_; }
  std::shared_ptr<spdlog::logger> logger() const override { return log_; }
  kedge::MetricsRegistry& metrics() override { return metrics_; }
  boost::asio::any_io_executor executor() override { return io.get_executor(); }
  kedge::Status send(std::string_view module, kedge::MessagePtr m,
                     std::chrono::milliseconds) override {
    if (refuse) return {kedge::Code::kNotFound, "no module " + std::string(module)};
    sent.push_back(m);
    return {};
  }
  kedge::Status send_to_group(std::string_view, kedge::MessagePtr,
                              std::chrono::milliseconds) override {
    return {};
  }
  void request(std::string_view, kedge::MessagePtr, std::chrono::milliseconds,
               kedge::ResponseHandler) override {}
  kedge::Status respond(kedge::MessagePtr) override { return {}; }
  void report_failure(kedge::Status) override {}

  boost::asio::io_context io;
  std::vector<kedge::MessagePtr> sent;
  bool refuse = false;

 private:
  std::string name_ = "ctl";
  std::filesystem::path dir_ = "/tmp";
  std::shared_ptr<spdlog::logger> log_ =
      std::make_shared<spdlog::logger>("ctl", std::make_shared<spdlog::sinks::null_sink_mt>());
  kedge::MetricsRegistry metrics_;
};

kedge::MessagePtr event(const kedge::MessagePtr& watch, const std::string& type, json::value obj) {
  auto m = kedge::make_message("apiserver", "resource", "watchevent", "",
                               json::object{{"type", type}, {"object", std::move(obj)}});
  m.header.parent_id = watch->header.id;
  return kedge::share(std::move(m));
}

json::value pod(const std::string& name, const std::string& rv) {
  return json::object{{"metadata", json::object{{"name", name}, {"resourceVersion", rv}}}};
}

struct Seen {
  std::string path, type, name;
};

class WatchesTest : public ::testing::Test {
 protected:
  FakeContext ctx;
  std::vector<Seen> seen;
  kedge::k8s::Watches w{
      ctx, "apiserver",
      [this](const std::string& p, const std::string& t, const json::value& o) {
        seen.push_back({p, t, std::string(o.at("metadata").at("name").as_string())});
      },
      50ms};
  std::string target(size_t i) { return ctx.sent.at(i)->route.resource; }
};

TEST_F(WatchesTest, EventsReachTheHandlerWithTheirPath) {
  w.watch("/api/v1/pods");
  w.watch("/api/v1/secrets");
  ASSERT_EQ(ctx.sent.size(), 2u);
  EXPECT_EQ(target(0), "/api/v1/pods?watch=1");
  EXPECT_EQ(ctx.sent[0]->route.operation, "watch");
  EXPECT_TRUE(w.on_message(event(ctx.sent[1], "ADDED", pod("s", "3"))));
  EXPECT_TRUE(w.on_message(event(ctx.sent[0], "MODIFIED", pod("p", "4"))));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].path, "/api/v1/secrets");
  EXPECT_EQ(seen[1].path, "/api/v1/pods");
  EXPECT_EQ(seen[1].type, "MODIFIED");
  EXPECT_EQ(seen[1].name, "p");
  // Not one of these watches.
  auto stranger = kedge::share(kedge::make_message("x", "resource", "watchevent", ""));
  EXPECT_FALSE(w.on_message(stranger));
}

TEST_F(WatchesTest, AnEndedWatchResumesFromTheLastVersionAndStartsOverAfterGone) {
  w.watch("/api/v1/pods");
  w.on_message(event(ctx.sent[0], "ADDED", pod("p", "7")));
  w.on_message(event(ctx.sent[0], "ERROR", json::object{{"code", 500}, {"message", "eof"}}));
  EXPECT_EQ(ctx.sent.size(), 1u);  // not at once: after the retry delay
  ctx.io.run_for(200ms);
  ASSERT_EQ(ctx.sent.size(), 2u);
  EXPECT_EQ(target(1), "/api/v1/pods?watch=1&resourceVersion=7");
  // The old watch's events are no longer taken.
  EXPECT_FALSE(w.on_message(event(ctx.sent[0], "ADDED", pod("q", "8"))));
  w.on_message(event(ctx.sent[1], "ERROR", json::object{{"code", 410}, {"message", "gone"}}));
  ctx.io.restart();
  ctx.io.run_for(200ms);
  ASSERT_EQ(ctx.sent.size(), 3u);
  EXPECT_EQ(target(2), "/api/v1/pods?watch=1");
}

TEST_F(WatchesTest, RetriedWhileApiserverIsAbsentAndStopUnwatches) {
  ctx.refuse = true;
  w.watch("/api/v1/pods");
  EXPECT_TRUE(ctx.sent.empty());
  ctx.refuse = false;
  ctx.io.run_for(200ms);
  ASSERT_EQ(ctx.sent.size(), 1u);
  w.stop();
  ASSERT_EQ(ctx.sent.size(), 2u);
  EXPECT_EQ(ctx.sent[1]->route.operation, "unwatch");
  EXPECT_EQ(ctx.sent[1]->header.parent_id, ctx.sent[0]->header.id);
  // A retry pending at stop() does not fire.
  ctx.refuse = true;
  w.watch("/api/v1/configmaps");
  w.stop();
  ctx.refuse = false;
  ctx.io.restart();
  ctx.io.run_for(200ms);
  EXPECT_EQ(ctx.sent.size(), 2u);
}

}  // namespace
