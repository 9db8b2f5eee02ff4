#include "kedge/core/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kedge::core {
namespace {

using ::testing::HasSubstr;

ManifestResult parse(std::string_view text) { return parse_manifest_text(text, "m.toml", "/base"); }

// Exactly one error, containing every fragment.
void expect_error(std::string_view text, std::initializer_list<std::string_view> fragments) {
  ManifestResult r = parse(text);
  ASSERT_FALSE(r.ok()) << text;
  ASSERT_EQ(r.errors.size(), 1u) << ::testing::PrintToString(r.errors);
  for (auto f : fragments) EXPECT_THAT(r.errors[0], HasSubstr(std::string(f)));
}

TEST(Manifest, FullManifestParses) {
  ManifestResult r = parse(R"(
[agent]
node_name = "edge-1"
data_dir = "var"
log_level = "debug"
worker_threads = 2
plugin_dirs = ["plugins", "/opt/p"]
queue_capacity = 64
metrics_interval_ms = 1000

[[plugin]]
name = "echo"
library = "libx.so"
required = false
log_level = "warn"
queue_capacity = 8
restart = { policy = "never" }
[plugin.config]
log_every = 3

[[plugin]]
name = "ticker"
enabled = false
[plugin.restart]
initial_backoff_ms = 10
max_backoff_ms = 20
max_restarts = 3
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  const Manifest& m = *r.manifest;
  EXPECT_EQ(m.agent.node_name, "edge-1");
  EXPECT_EQ(m.agent.data_dir, "/base/var");
  EXPECT_EQ(m.agent.log_level, "debug");
  EXPECT_EQ(m.agent.worker_threads, 2);
  ASSERT_EQ(m.agent.plugin_dirs.size(), 2u);
  EXPECT_EQ(m.agent.plugin_dirs[0], "/base/plugins");
  EXPECT_EQ(m.agent.plugin_dirs[1], "/opt/p");
  EXPECT_EQ(m.agent.queue_capacity, 64u);
  ASSERT_EQ(m.plugins.size(), 2u);
  const PluginEntry& echo = m.plugins[0];
  EXPECT_EQ(echo.name, "echo");
  EXPECT_EQ(echo.library, "libx.so");
  EXPECT_FALSE(echo.required);
  EXPECT_EQ(echo.log_level, "warn");
  EXPECT_EQ(echo.queue_capacity, 8u);
  EXPECT_EQ(echo.restart.kind, RestartPolicy::Kind::kNever);
  ASSERT_NE(echo.config, nullptr);
  EXPECT_EQ(echo.loc.str(), "m.toml:11:1");
  const PluginEntry& ticker = m.plugins[1];
  EXPECT_FALSE(ticker.enabled);
  EXPECT_TRUE(ticker.required);
  EXPECT_EQ(ticker.queue_capacity, 64u);  // the agent's default
  EXPECT_EQ(ticker.log_level, "debug");   // the agent's level
  EXPECT_EQ(ticker.restart.initial_backoff.count(), 10);
  EXPECT_EQ(ticker.restart.max_restarts, 3);
}

TEST(Manifest, DefaultsForAnEmptyManifest) {
  ManifestResult r = parse("");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.manifest->agent.node_name.empty());  // the host name
  EXPECT_EQ(r.manifest->agent.data_dir, "/base/data");
  EXPECT_EQ(r.manifest->agent.worker_threads, 1);
  EXPECT_EQ(r.manifest->agent.queue_capacity, 1024u);
  EXPECT_EQ(r.manifest->agent.plugin_dirs.size(), 1u);  // next to the binary
}

TEST(Manifest, SyntaxErrorNamesLineAndColumn) {
  expect_error("[agent]\nnode_name = \"x\"\nworker_threads = = 2\n",
               {"m.toml:3:", "TOML syntax error"});
}

TEST(Manifest, UnknownKeyInAgent) {
  expect_error("[agent]\nnode_name = \"x\"\nworkers = 2\n",
               {"m.toml:3:1", "agent: unknown key 'workers'", "worker_threads"});
}

TEST(Manifest, UnknownTopLevelKey) {
  expect_error("[agnet]\nnode_name = \"x\"\n", {"m.toml:1:", "unknown key 'agnet'"});
}

TEST(Manifest, UnknownKeyInPlugin) {
  expect_error("[[plugin]]\nname = \"echo\"\nenable = true\n",
               {"m.toml:3:1", "plugin 'echo': unknown key 'enable'"});
}

TEST(Manifest, WrongTypes) {
  expect_error("[agent]\nworker_threads = \"two\"\n",
               {"m.toml:2:18", "agent.worker_threads: expected an integer, got string"});
  expect_error("[[plugin]]\nname = \"e\"\nenabled = 1\n",
               {"m.toml:3:11", "enabled: expected a boolean, got integer"});
  expect_error("[agent]\nplugin_dirs = [\"a\", 3]\n",
               {"m.toml:2:21", "agent.plugin_dirs[1]: expected a string, got integer"});
  expect_error("plugin = 3\n", {"m.toml:1:10", "expected an array of tables"});
  expect_error("[[plugin]]\nname = \"e\"\nconfig = 5\n",
               {"m.toml:3:10", "config: expected a table"});
}

TEST(Manifest, OutOfRangeAndBadEnumValues) {
  expect_error("[agent]\nworker_threads = 0\n", {"m.toml:2:18", "out of range [1, 64]"});
  expect_error("[agent]\nlog_level = \"loud\"\n", {"m.toml:2:13", "unknown log level 'loud'"});
  expect_error("[[plugin]]\nname = \"e\"\nrestart = { policy = \"sometimes\" }\n",
               {"m.toml:3:", "unknown restart policy 'sometimes'"});
  expect_error(
      "[[plugin]]\nname = \"e\"\nrestart = { initial_backoff_ms = 100, max_backoff_ms = 10 }\n",
      {"max_backoff_ms is smaller than initial_backoff_ms"});
}

TEST(Manifest, MissingRequiredName) {
  expect_error("[[plugin]]\nlibrary = \"x.so\"\n",
               {"m.toml:1:1", "plugin[0]: missing required key 'name'"});
}

TEST(Manifest, DuplicatePluginName) {
  expect_error("[[plugin]]\nname = \"echo\"\n[[plugin]]\nname = \"echo\"\n",
               {"m.toml:4:8", "duplicate plugin name 'echo'"});
}

TEST(Manifest, InvalidPluginName) {
  expect_error("[[plugin]]\nname = \"Echo Plugin\"\n", {"m.toml:2:8", "invalid name"});
}

TEST(Manifest, AllErrorsAreReportedNotJustTheFirst) {
  ManifestResult r = parse("[agent]\nworker_threads = \"x\"\nfoo = 1\n[[plugin]]\nbar = 2\n");
  EXPECT_EQ(r.errors.size(), 4u) << ::testing::PrintToString(
      r.errors);  // type, unknown, missing name, unknown
}

TEST(Manifest, MissingFile) {
  ManifestResult r = parse_manifest_file("/nonexistent/kedge.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0], HasSubstr("/nonexistent/kedge.toml: cannot open manifest"));
}

}  // namespace
}  // namespace kedge::core
