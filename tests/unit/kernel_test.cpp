// The supervisor, through the SDK's test harness and the fixture plugins.
#include "kedge/core/kernel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "kedge/testing/harness.h"

namespace kedge {
namespace {

using namespace std::chrono_literals;
using core::PluginState;
using testing::Harness;
using ::testing::HasSubstr;

std::string manifest(const std::string& plugins) {
  return "[agent]\nplugin_dirs = [\"" KEDGE_FIXTURE_DIR "\"]\nlog_level = \"warn\"\n" + plugins;
}

std::vector<std::string> events(const Harness& h) {
  std::ifstream in(h.base_dir() / "data" / "events.log");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Kernel, StartsInDependencyOrderAndStopsInReverse) {
  Harness h(manifest(
      "[[plugin]]\nname = \"gamma\"\n[[plugin]]\nname = \"beta\"\n[[plugin]]\nname = \"alpha\"\n"));
  ASSERT_TRUE(h.start());
  EXPECT_EQ(h.kernel().state("alpha"), PluginState::kRunning);
  h.stop();
  EXPECT_EQ(events(h), (std::vector<std::string>{"alpha init", "alpha start", "beta init",
                                                 "beta start", "gamma init", "gamma start",
                                                 "gamma stop", "beta stop", "alpha stop"}));
  EXPECT_EQ(h.kernel().state("alpha"), PluginState::kStopped);
}

TEST(Kernel, RequiredPluginFailingInitFailsTheAgentAndStopsTheOthers) {
  Harness h(
      manifest("[[plugin]]\nname = \"alpha\"\n[[plugin]]\nname = \"faulty\"\n"
               "[plugin.config]\nfail_init = true\n"));
  Status s = h.start();
  ASSERT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("required plugin 'faulty' failed to start: init failed: "
                                     "configured to fail at init"));
  EXPECT_EQ(events(h),
            (std::vector<std::string>{"alpha init", "alpha start", "faulty init", "alpha stop"}));
}

TEST(Kernel, RequiredPluginFailingStartFailsTheAgent) {
  Harness h(manifest("[[plugin]]\nname = \"faulty\"\n[plugin.config]\nfail_start_times = 1\n"));
  Status s = h.start();
  ASSERT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("start failed: configured to fail start #1"));
}

TEST(Kernel, OptionalPluginIsRestartedWithBackoffUntilItStarts) {
  Harness h(
      manifest("[[plugin]]\nname = \"faulty\"\nrequired = false\n"
               "restart = { initial_backoff_ms = 5, max_backoff_ms = 20 }\n"
               "[plugin.config]\nfail_start_times = 3\n"));
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(
      Harness::eventually([&] { return h.kernel().state("faulty") == PluginState::kRunning; }));
  std::string m = h.kernel().metrics().prometheus_text();
  EXPECT_THAT(m, HasSubstr("kedge_plugin_restarts_total{plugin=\"faulty\"} 3"));
  EXPECT_THAT(m, HasSubstr("kedge_plugin_failures_total{plugin=\"faulty\"} 3"));
  EXPECT_THAT(m, HasSubstr("kedge_plugin_state{plugin=\"faulty\",state=\"running\"} 1"));
  EXPECT_THAT(m, HasSubstr("kedge_plugin_state{plugin=\"faulty\",state=\"backing_off\"} 0"));
}

TEST(Kernel, OptionalPluginGivesUpAfterMaxRestartsAndRefusesMessages) {
  Harness h(
      manifest("[[plugin]]\nname = \"faulty\"\nrequired = false\n"
               "restart = { initial_backoff_ms = 1, max_backoff_ms = 2, max_restarts = 2 }\n"
               "[plugin.config]\nfail_start_times = 100\n[[plugin]]\nname = \"alpha\"\n"));
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(
      Harness::eventually([&] { return h.kernel().state("faulty") == PluginState::kFailed; }));
  EXPECT_EQ(h.kernel().state("alpha"), PluginState::kRunning);  // the agent goes on
  EXPECT_EQ(events(h).size(), 2u /*alpha*/ + 3 * 2 /*faulty: init+start, 3 times*/);
  Status s = h.send("faulty", make_message("t", "", "update", "r"));
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_FALSE(h.kernel().shutdown_requested());
}

TEST(Kernel, PolicyNeverDoesNotRestart) {
  Harness h(
      manifest("[[plugin]]\nname = \"faulty\"\nrequired = false\nrestart = { policy = \"never\" }\n"
               "[plugin.config]\nfail_start_times = 1\n"));
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(
      Harness::eventually([&] { return h.kernel().state("faulty") == PluginState::kFailed; }));
  EXPECT_THAT(h.kernel().metrics().prometheus_text(),
              HasSubstr("kedge_plugin_restarts_total{plugin=\"faulty\"} 0"));
}

TEST(Kernel, RuntimeFailureRestartsAndMessagesWaitingMeanwhileAreDelivered) {
  Harness h(manifest("[[plugin]]\nname = \"faulty\"\nrestart = { initial_backoff_ms = 50 }\n"));
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(h.send("faulty", make_message("t", "", "fail", "r")));
  ASSERT_TRUE(
      Harness::eventually([&] { return h.kernel().state("faulty") == PluginState::kBackingOff; }));
  // Sent while the plugin is down: queued, answered once it is back.
  auto [s, resp] = h.request("faulty", make_message("t", "", "query", "r"), 5s);
  ASSERT_TRUE(s) << s.to_string();
  EXPECT_EQ(resp->content.as_string(), "faulty");
  EXPECT_EQ(h.kernel().state("faulty"), PluginState::kRunning);
  EXPECT_EQ(events(h), (std::vector<std::string>{"faulty init", "faulty start", "faulty stop",
                                                 "faulty init", "faulty start"}));
}

TEST(Kernel, ExceptionInAHandlerIsAFailureNotACrash) {
  Harness h(manifest("[[plugin]]\nname = \"faulty\"\nrestart = { initial_backoff_ms = 1 }\n"));
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(h.send("faulty", make_message("t", "", "throw", "r")));
  ASSERT_TRUE(Harness::eventually([&] {
    return h.kernel().metrics().prometheus_text().find(
               "kedge_plugin_restarts_total{plugin=\"faulty\"} 1") != std::string::npos;
  }));
  auto [s, resp] = h.request("faulty", make_message("t", "", "query", "r"), 5s);
  EXPECT_TRUE(s) << s.to_string();
}

TEST(Kernel, ExceptionInAResponseHandlerIsTheRequestersFailure) {
  Harness h(manifest("[[plugin]]\nname = \"faulty\"\nrestart = { initial_backoff_ms = 1 }\n"));
  auto& probe = h.capture("probe");
  probe.set_responder([](const Message& m) { return new_response(m, "ok"); });
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(h.send("faulty", make_message("t", "", "ask-then-throw", "r", "probe")));
  ASSERT_TRUE(Harness::eventually([&] {
    return h.metrics_text().find("kedge_plugin_restarts_total{plugin=\"faulty\"} 1") !=
           std::string::npos;
  }));
  auto [s, resp] = h.request("faulty", make_message("t", "", "query", "r"), 5s);
  EXPECT_TRUE(s) << s.to_string();
}

TEST(Kernel, ExceptionInAPluginsOwnHandlerDoesNotStopTheAgent) {
  Harness h(manifest("[[plugin]]\nname = \"faulty\"\n"));
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(h.send("faulty", make_message("t", "", "throw-later", "r")));
  auto [s, resp] = h.request("faulty", make_message("t", "", "query", "r"), 5s);
  EXPECT_TRUE(s) << s.to_string();
  EXPECT_EQ(h.kernel().state("faulty"), PluginState::kRunning);
}

TEST(Kernel, OneFailureReportedTwiceCostsOneRestart) {
  Harness h(
      manifest("[[plugin]]\nname = \"faulty\"\n"
               "restart = { initial_backoff_ms = 1, max_restarts = 1 }\n"));
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(h.send("faulty", make_message("t", "", "fail-twice", "r")));
  ASSERT_TRUE(Harness::eventually([&] {
    return h.metrics_text().find("kedge_plugin_restarts_total{plugin=\"faulty\"} 1") !=
           std::string::npos;
  }));
  auto [s, resp] = h.request("faulty", make_message("t", "", "query", "r"), 5s);
  EXPECT_TRUE(s) << s.to_string();
  EXPECT_EQ(h.kernel().state("faulty"), PluginState::kRunning);
  EXPECT_FALSE(h.kernel().shutdown_requested());
}

TEST(Kernel, UncreatableDataDirFailsStartWithoutHanging) {
  Harness h("[agent]\ndata_dir = \"/proc/kedge-cannot-exist\"\nplugin_dirs = [\"" KEDGE_FIXTURE_DIR
            "\"]\nlog_level = \"off\"\n[[plugin]]\nname = \"alpha\"\n");
  Status s = h.start();
  ASSERT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("cannot create data_dir /proc/kedge-cannot-exist"));
}  // the harness's destructor must return

TEST(Kernel, ModuleNameClashFailsStartWithoutHanging) {
  Harness h(manifest("[[plugin]]\nname = \"alpha\"\n"));
  h.capture("alpha");
  Status s = h.start();
  ASSERT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("module 'alpha' is already registered"));
}

TEST(Kernel, RequiredPluginThatGivesUpShutsTheAgentDownWithAnError) {
  Harness h(manifest("[[plugin]]\nname = \"faulty\"\nrestart = { policy = \"never\" }\n"));
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(h.send("faulty", make_message("t", "", "fail", "r")));
  EXPECT_EQ(h.kernel().wait_for_shutdown(), 1);
  EXPECT_EQ(h.kernel().state("faulty"), PluginState::kFailed);
}

TEST(Kernel, FailingStopIsLoggedAndShutdownContinues) {
  Harness h(
      manifest("[[plugin]]\nname = \"alpha\"\n[[plugin]]\nname = \"faulty\"\n"
               "[plugin.config]\nfail_stop = true\n"));
  ASSERT_TRUE(h.start());
  h.stop();
  auto ev = events(h);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back(), "alpha stop");
}

TEST(Kernel, MetricsFileIsWritten) {
  Harness h(manifest("[[plugin]]\nname = \"alpha\"\n"));
  ASSERT_TRUE(h.start());
  h.stop();
  std::ifstream in(h.base_dir() / "data" / "metrics.prom");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_THAT(ss.str(), HasSubstr("kedge_plugin_state{plugin=\"alpha\",state=\"stopped\"} 1"));
  EXPECT_THAT(ss.str(), HasSubstr("# TYPE kedge_router_sent_total counter"));
}

TEST(Kernel, HarnessReportsManifestErrors) {
  Harness h(manifest("[[plugin]]\nname = \"nosuch\"\n"));
  ASSERT_FALSE(h.errors().empty());
  EXPECT_THAT(h.errors()[0], HasSubstr("unknown plugin 'nosuch'"));
  EXPECT_FALSE(h.start());
}

}  // namespace
}  // namespace kedge
