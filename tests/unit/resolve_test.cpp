#include "kedge/core/resolve.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kedge::core {
namespace {

using ::testing::HasSubstr;

struct Resolved {
  ManifestResult m;
  Resolution r;
};

// Parsing must succeed; resolution may fail.
std::unique_ptr<Resolved> run(const std::string& plugins) {
  auto out = std::make_unique<Resolved>();
  std::string text = "[agent]\nplugin_dirs = [\"" KEDGE_FIXTURE_DIR "\"]\n" + plugins;
  out->m = parse_manifest_text(text, "m.toml", "/tmp");
  EXPECT_TRUE(out->m.ok()) << ::testing::PrintToString(out->m.errors);
  if (out->m.ok()) out->r = resolve(*out->m.manifest);
  return out;
}

std::vector<std::string> names(const Resolution& r) {
  std::vector<std::string> n;
  for (auto& p : r.order) n.push_back(p.entry->name);
  return n;
}

void expect_one_error(const Resolution& r, std::initializer_list<std::string_view> fragments) {
  ASSERT_EQ(r.errors.size(), 1u) << ::testing::PrintToString(r.errors);
  for (auto f : fragments) EXPECT_THAT(r.errors[0], HasSubstr(std::string(f)));
}

TEST(Resolve, StartOrderFollowsDependenciesThenManifestOrder) {
  auto x =
      run("[[plugin]]\nname = \"gamma\"\n[[plugin]]\nname = \"faulty\"\n"
          "[[plugin]]\nname = \"beta\"\n[[plugin]]\nname = \"alpha\"\n");
  ASSERT_TRUE(x->r.ok()) << ::testing::PrintToString(x->r.errors);
  EXPECT_EQ(names(x->r), (std::vector<std::string>{"faulty", "alpha", "beta", "gamma"}));
}

TEST(Resolve, DefaultsAreFilledAndValuesTyped) {
  auto x =
      run("[[plugin]]\nname = \"alpha\"\n[plugin.config]\nratio = 2\ntags = [\"a\", \"b\"]\n"
          "extra = { k = \"v\", n = 1 }\n");
  ASSERT_TRUE(x->r.ok()) << ::testing::PrintToString(x->r.errors);
  const Config& c = x->r.order[0].config;
  EXPECT_FALSE(c.get_bool("fail_init", true));     // default false
  EXPECT_EQ(c.get_int("fail_start_times", 9), 0);  // default 0
  EXPECT_DOUBLE_EQ(c.get_float("ratio"), 2.0);     // an integer is accepted as float
  EXPECT_EQ(c.get_strings("tags"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.get_table("extra").at("k").as_string(), "v");
  EXPECT_FALSE(c.has("label"));  // no default, not set
}

TEST(Resolve, UnknownPlugin) {
  auto x = run("[[plugin]]\nname = \"nosuch\"\n");
  expect_one_error(x->r, {"m.toml:3:1", "unknown plugin 'nosuch'", "libkedge_nosuch.so"});
}

TEST(Resolve, DisabledPluginsAreNotLoaded) {
  auto x = run("[[plugin]]\nname = \"nosuch\"\nenabled = false\n[[plugin]]\nname = \"alpha\"\n");
  ASSERT_TRUE(x->r.ok()) << ::testing::PrintToString(x->r.errors);
  EXPECT_EQ(names(x->r), (std::vector<std::string>{"alpha"}));
}

TEST(Resolve, LibraryThatFailsToLoadIsReportedAtItsEntry) {
  auto x = run("[[plugin]]\nname = \"alpha\"\nlibrary = \"libkedge_abi.so\"\n");
  expect_one_error(x->r, {"m.toml:3:1", "plugin 'alpha'", "ABI version mismatch"});
  x = run("[[plugin]]\nname = \"alpha\"\nlibrary = \"libkedge_notelf.so\"\n");
  expect_one_error(x->r, {"m.toml:3:1", "not a shared object"});
  x = run("[[plugin]]\nname = \"alpha\"\nlibrary = \"/no/such/lib.so\"\n");
  expect_one_error(x->r, {"m.toml:3:1", "/no/such/lib.so: file not found"});
}

TEST(Resolve, LibraryProvidingAnotherPlugin) {
  auto x = run("[[plugin]]\nname = \"alpha\"\nlibrary = \"libkedge_beta.so\"\n");
  expect_one_error(x->r, {"provides plugin 'beta', not 'alpha'"});
}

TEST(Resolve, MissingDependency) {
  auto x = run("[[plugin]]\nname = \"lonely\"\n");
  expect_one_error(x->r,
                   {"m.toml:3:1", "plugin 'lonely' depends on 'absent'", "not in the manifest"});
}

TEST(Resolve, DependencyOnADisabledPlugin) {
  auto x = run("[[plugin]]\nname = \"alpha\"\nenabled = false\n[[plugin]]\nname = \"beta\"\n");
  expect_one_error(
      x->r, {"m.toml:6:1", "plugin 'beta' depends on 'alpha', which is disabled (at m.toml:3:1)"});
}

TEST(Resolve, DependencyCycleIsPrinted) {
  auto x = run(
      "[[plugin]]\nname = \"cyc-a\"\n[[plugin]]\nname = \"cyc-b\"\n[[plugin]]\nname = \"cyc-c\"\n");
  expect_one_error(x->r, {"dependency cycle: cyc-a -> cyc-b -> cyc-c -> cyc-a"});
}

TEST(Resolve, UnknownConfigKey) {
  auto x = run("[[plugin]]\nname = \"alpha\"\n[plugin.config]\nfail_int = true\n");
  expect_one_error(x->r, {"m.toml:6:1", "plugin 'alpha': config: unknown key 'fail_int'",
                          "known keys: extra, fail_init"});
}

TEST(Resolve, MistypedConfigValues) {
  auto x = run("[[plugin]]\nname = \"alpha\"\n[plugin.config]\nfail_start_times = \"3\"\n");
  expect_one_error(x->r, {"m.toml:6:20",
                          "plugin 'alpha': config.fail_start_times: expected integer, got string"});
  x = run("[[plugin]]\nname = \"alpha\"\n[plugin.config]\ntags = [\"a\", 1]\n");
  expect_one_error(x->r, {"m.toml:6:8", "config.tags: element [1]: expected string, got integer"});
  x = run("[[plugin]]\nname = \"alpha\"\n[plugin.config]\nextra = 1\n");
  expect_one_error(x->r, {"config.extra: expected table, got integer"});
}

TEST(Resolve, MissingRequiredConfigKey) {
  auto x = run("[[plugin]]\nname = \"needy\"\n");
  expect_one_error(x->r,
                   {"m.toml:3:1", "plugin 'needy': config: missing required key 'label' (string"});
  x = run("[[plugin]]\nname = \"needy\"\n[plugin.config]\nlabel = \"x\"\n");
  EXPECT_TRUE(x->r.ok()) << ::testing::PrintToString(x->r.errors);
}

}  // namespace
}  // namespace kedge::core
