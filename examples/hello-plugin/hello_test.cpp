// The hello plugin under the SDK's harness: a capture module plays its peer.
#include <gtest/gtest.h>

#include <kedge/testing/harness.h>

using namespace std::chrono_literals;

TEST(Hello, GreetsItsPeerCountTimes) {
  kedge::testing::Harness h(R"(
[agent]
plugin_dirs = [")" HELLO_PLUGIN_DIR R"("]
log_level = "warn"
[[plugin]]
name = "hello"
[plugin.config]
peer = "probe"
count = 4
)");
  ASSERT_TRUE(h.errors().empty()) << h.errors()[0];
  auto& probe = h.capture("probe");
  probe.set_responder([](const kedge::Message& m) { return kedge::new_response(m, m.content); });
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(probe.wait_count(4));
  for (const auto& m : probe.messages()) {
    EXPECT_EQ(m->route.source, "hello");
    EXPECT_EQ(m->route.resource, "hello/greeting");
  }
}

TEST(Hello, RefusesAZeroCount) {
  kedge::testing::Harness h(R"(
[agent]
plugin_dirs = [")" HELLO_PLUGIN_DIR R"("]
log_level = "off"
[[plugin]]
name = "hello"
[plugin.config]
count = 0
)");
  kedge::Status s = h.start();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("config.count: 0 is out of range [1, 1000]"), std::string::npos)
      << s.message();
}
