// The demo plugins, tested the way a plugin author would: a harness, injected
// messages, captured output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using testing::Harness;

std::string manifest(const std::string& plugins) {
  return "[agent]\nplugin_dirs = [\"" KEDGE_PLUGIN_DIR "\"]\nlog_level = \"warn\"\n" + plugins;
}

TEST(Echo, AnswersWithTheSameContent) {
  Harness h(manifest("[[plugin]]\nname = \"echo\"\n"));
  ASSERT_TRUE(h.start());
  boost::json::object body{{"a", 1}, {"b", "two"}};
  Message req = make_message("probe", "", "query", "x/y", body);
  std::string id = req.header.id;
  auto [s, resp] = h.request("echo", std::move(req), 2s);
  ASSERT_TRUE(s) << s.to_string();
  EXPECT_EQ(resp->header.parent_id, id);
  EXPECT_EQ(resp->route.operation, "response");
  EXPECT_EQ(resp->route.resource, "x/y");
  EXPECT_EQ(resp->content, boost::json::value(body));
}

TEST(Ticker, SendsRequestsToItsTargetAndNotifiesItsGroup) {
  // The ticker needs "echo" (a dependency); its target is a capture here.
  Harness h(
      manifest("[[plugin]]\nname = \"echo\"\n[[plugin]]\nname = \"ticker\"\n"
               "[plugin.config]\ntarget = \"probe\"\ninterval_ms = 5\ncount = 3\n"
               "notify_group = \"watchers\"\n"));
  auto& probe = h.capture("probe");
  probe.set_responder([](const Message& m) { return new_response(m, "ok"); });
  auto& watcher = h.capture("watcher", "watchers");
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(probe.wait_count(3));
  ASSERT_TRUE(watcher.wait_count(3));
  auto first = probe.messages()[0];
  EXPECT_EQ(first->route.source, "ticker");
  EXPECT_EQ(first->route.operation, "query");
  EXPECT_EQ(first->route.resource, "demo/tick/1");
  EXPECT_EQ(first->content.at("seq").as_int64(), 1);
  ASSERT_TRUE(Harness::eventually([&] {
    return h.kernel().metrics().prometheus_text().find("kedge_ticker_replies_total 3") !=
           std::string::npos;
  }));
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(probe.count(), 3u);  // count = 3: it stops
}

TEST(Ticker, RejectsABadConfigAtInit) {
  Harness h(
      manifest("[[plugin]]\nname = \"echo\"\n[[plugin]]\nname = \"ticker\"\n"
               "[plugin.config]\ninterval_ms = 0\n"));
  Status s = h.start();
  ASSERT_FALSE(s);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("interval_ms must be > 0"));
}

}  // namespace
}  // namespace kedge
