#include "kedge/core/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kedge::core {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path kFixtures = KEDGE_FIXTURE_DIR;

TEST(Loader, LoadsAGoodPlugin) {
  LoadResult r = load_plugin(kFixtures / "libkedge_alpha.so");
  ASSERT_TRUE(r.status) << r.status.message();
  EXPECT_STREQ(r.value.descriptor->name, "alpha");
  EXPECT_STREQ(r.value.descriptor->version, "1.2.3");
  EXPECT_EQ(r.value.descriptor->abi_version, kAbiVersion);
}

TEST(Loader, FileNotFound) {
  LoadResult r = load_plugin(kFixtures / "libkedge_missing.so");
  EXPECT_EQ(r.status.code(), Code::kNotFound);
  EXPECT_THAT(r.status.message(), HasSubstr("libkedge_missing.so: file not found"));
}

TEST(Loader, NotASharedObject) {
  LoadResult r = load_plugin(kFixtures / "libkedge_notelf.so");
  EXPECT_FALSE(r.status);
  EXPECT_THAT(r.status.message(), HasSubstr("libkedge_notelf.so: not a shared object"));
}

TEST(Loader, NoEntryPoint) {
  LoadResult r = load_plugin(kFixtures / "libkedge_noentry.so");
  EXPECT_FALSE(r.status);
  EXPECT_THAT(r.status.message(),
              HasSubstr("libkedge_noentry.so: no entry point 'kedge_plugin_entry'"));
}

TEST(Loader, AbiMismatchNamesBothVersions) {
  LoadResult r = load_plugin(kFixtures / "libkedge_abi.so");
  EXPECT_EQ(r.status.code(), Code::kFailedPrecondition);
  EXPECT_THAT(r.status.message(), HasSubstr("libkedge_abi.so: ABI version mismatch"));
  EXPECT_THAT(r.status.message(), HasSubstr("built for ABI 999"));
  EXPECT_THAT(r.status.message(),
              HasSubstr("this kedge speaks ABI " + std::to_string(kAbiVersion)));
}

TEST(Loader, BuildMismatchNamesBothFingerprints) {
  // Built with -D_GLIBCXX_USE_CXX11_ABI=0 (another std::string layout).
  LoadResult r = load_plugin(kFixtures / "libkedge_other-build.so");
  EXPECT_EQ(r.status.code(), Code::kFailedPrecondition);
  EXPECT_THAT(r.status.message(), HasSubstr("libkedge_other-build.so: build mismatch"));
  EXPECT_THAT(r.status.message(), HasSubstr("built with [abi=2;"));
  EXPECT_THAT(r.status.message(), HasSubstr("cxx11abi=0;"));
  EXPECT_THAT(r.status.message(), HasSubstr("this kedge with [" KEDGE_BUILD_FINGERPRINT "]"));
  EXPECT_THAT(KEDGE_BUILD_FINGERPRINT, HasSubstr("cxx11abi=1;"));
}

TEST(Loader, BadDefaultInSchemaIsRefused) {
  LoadResult r = load_plugin(kFixtures / "libkedge_bad-default.so");
  EXPECT_FALSE(r.status);
  EXPECT_THAT(r.status.message(),
              HasSubstr("default of config key 'port' is invalid: expected integer, got string"));
}

TEST(Loader, ScanFindsEveryLibraryAndReportsTheBrokenOnes) {
  auto found = scan_plugins({kFixtures});
  int good = 0, bad = 0;
  for (auto& r : found) (r.status ? good : bad)++;
  EXPECT_GE(good, 8);
  EXPECT_EQ(bad, 5);  // notelf, noentry, abi, other-build, bad-default
}

TEST(Loader, DescribeListsKeysWithTypeDefaultAndDescription) {
  LoadResult r = load_plugin(kFixtures / "libkedge_beta.so");
  ASSERT_TRUE(r.status);
  std::string d = describe_plugin(r.value);
  EXPECT_THAT(d, HasSubstr("name:         beta"));
  EXPECT_THAT(d, HasSubstr("ABI version:  " + std::to_string(kAbiVersion)));
  EXPECT_THAT(d, HasSubstr("build:        " KEDGE_BUILD_FINGERPRINT));
  EXPECT_THAT(d, HasSubstr("dependencies: alpha"));
  EXPECT_THAT(
      d, HasSubstr("fail_start_times (integer), default 0, range [0, 100]\n      Fail the first N "
                   "starts."));
  EXPECT_THAT(d, HasSubstr("tags (array of strings), default []"));
}

}  // namespace
}  // namespace kedge::core
