// The cloud CA shared by cloudhub, apiserver and `kedge token create`.
#include "cloud_ca.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace kedge::cloud_ca {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CloudCa : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kedge-ca-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CloudCa, OneCaIsCreatedOnceAndLoadedByEveryone) {
  auto missing = load(dir_ / "cloudhub");
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.status.message(), HasSubstr("has cloudhub run once"));
  auto first = load_or_create(default_dir(dir_));
  ASSERT_TRUE(first.ok()) << first.status.message();
  EXPECT_TRUE(first.value.created);
  auto again = load_or_create(dir_ / "cloudhub");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.value.created);
  EXPECT_EQ(again.value.pem, first.value.pem);
  auto tool = load(dir_ / "cloudhub");
  ASSERT_TRUE(tool.ok()) << tool.status.message();
  EXPECT_EQ(jwt_secret(tool.value), jwt_secret(first.value));
}

TEST_F(CloudCa, TheJoinTokenCarriesTheCaHashAndAVerifiableExpiry) {
  auto ca = load_or_create(dir_);
  ASSERT_TRUE(ca.ok());
  auto t = pki::parse_join_token(join_token(ca.value, std::chrono::hours(1)));
  ASSERT_TRUE(t.ok()) << t.status.message();
  EXPECT_EQ(t.value.ca_hash, pki::sha256_hex(pki::cert_der(ca.value.cert.get())));
  EXPECT_TRUE(pki::jwt_verify(jwt_secret(ca.value), t.value.jwt, std::chrono::system_clock::now()));
  EXPECT_FALSE(pki::jwt_verify(jwt_secret(ca.value), t.value.jwt,
                               std::chrono::system_clock::now() + std::chrono::hours(2)));
}

TEST_F(CloudCa, ServingCertificatesNameTheirAddressesAndChainToTheCa) {
  auto ca = load_or_create(dir_);
  ASSERT_TRUE(ca.ok());
  auto s = serving_cert(ca.value, {"kedge-apiserver", ""}, {"127.0.0.1", "::1"}, {"localhost"});
  ASSERT_TRUE(s.ok()) << s.status.message();
  auto c = pki::cert_from_pem(s.value.cert_pem);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(pki::verify(c.value.get(), ca.value.cert.get()));
  EXPECT_EQ(pki::common_name(c.value.get()), "kedge-apiserver");
  auto bad = serving_cert(ca.value, {"x", ""}, {"not-an-ip"}, {});
  EXPECT_FALSE(bad.ok());
}

TEST_F(CloudCa, ADamagedKeyIsNamed) {
  ASSERT_TRUE(load_or_create(dir_).ok());
  ASSERT_TRUE(pki::write_file((dir_ / "ca.key").string(), "garbage", true));
  auto r = load(dir_);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.status.message(), HasSubstr("ca.key"));
}

}  // namespace
}  // namespace kedge::cloud_ca
