#include "kedge/common/pki.h"
#include "kedge/message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace kedge::pki {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono;

struct Ca {
  Key key = generate_key();
  Cert cert = make_ca(key.get(), {"KubeEdge", ""}).value;
};

TEST(Pki, CaIsSelfSignedWithKubeEdgeShape) {
  Ca ca;
  ASSERT_TRUE(ca.cert);
  EXPECT_EQ(common_name(ca.cert.get()), "KubeEdge");
  EXPECT_TRUE(verify(ca.cert.get(), ca.cert.get()))
      << verify(ca.cert.get(), ca.cert.get()).message();
  auto years =
      duration_cast<hours>(not_after(ca.cert.get()) - system_clock::now()).count() / 24 / 365;
  EXPECT_GE(years, 99);
  std::string der = cert_der(ca.cert.get());
  auto back = cert_from_der(der);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(cert_der(back.value.get()), der);
  EXPECT_EQ(sha256_hex(der).size(), 64u);
  auto pem = cert_from_pem(cert_pem(ca.cert.get()));
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(cert_der(pem.value.get()), der);
}

TEST(Pki, CsrSignedByTheCaCarriesTheNodeIdentity) {
  Ca ca;
  Key edge = generate_key();
  auto csr = make_csr(edge.get(), {"system:node:edge-1", "system:nodes"});
  ASSERT_TRUE(csr.ok());
  // Over the wire and back, as the bootstrap endpoint receives it.
  auto parsed = csr_from_der(csr_der(csr.value.get()));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(csr_common_name(parsed.value.get()), "system:node:edge-1");
  auto cert = sign_csr(ca.cert.get(), ca.key.get(), parsed.value.get(), {});
  ASSERT_TRUE(cert.ok()) << cert.status.message();
  EXPECT_EQ(common_name(cert.value.get()), "system:node:edge-1");
  EXPECT_TRUE(verify(cert.value.get(), ca.cert.get()));
  auto days = duration_cast<hours>(not_after(cert.value.get()) - system_clock::now()).count() / 24;
  EXPECT_GE(days, 364);
  EXPECT_LE(days, 365);
  Ca other;
  Status s = verify(cert.value.get(), other.cert.get());
  EXPECT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("certificate does not verify"));
}

TEST(Pki, TamperedCsrIsRefused) {
  Ca ca;
  Key edge = generate_key();
  std::string der = csr_der(make_csr(edge.get(), {"system:node:edge-1", ""}).value.get());
  // Flip one byte of the signature (the end of the DER).
  der[der.size() - 3] ^= 0x55;
  auto parsed = csr_from_der(der);
  if (!parsed.ok()) return;  // a flip may also break the DER itself: refused either way
  auto cert = sign_csr(ca.cert.get(), ca.key.get(), parsed.value.get(), {});
  EXPECT_FALSE(cert.ok());
  EXPECT_THAT(cert.status.message(), HasSubstr("signature does not verify"));
}

TEST(Pki, ServerCertificateHasSansAndVerifies) {
  Ca ca;
  Key k = generate_key();
  SignOptions o;
  o.usages = kServerAuth;
  o.ips = {"127.0.0.1"};
  o.dns_names = {"localhost"};
  auto c = issue(ca.cert.get(), ca.key.get(), k.get(), {"KubeEdge", "KubeEdge"}, o);
  ASSERT_TRUE(c.ok()) << c.status.message();
  EXPECT_TRUE(verify(c.value.get(), ca.cert.get()));
}

TEST(Pki, KeysAreWrittenAsSec1PemAndReadBack) {
  Key k = generate_key();
  std::string pem = key_pem(k.get());
  EXPECT_THAT(pem, StartsWith("-----BEGIN EC PRIVATE KEY-----"));
  auto back = key_from_pem(pem);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(key_sec1_der(back.value.get()), key_sec1_der(k.get()));
  EXPECT_FALSE(key_from_pem("garbage").ok());
  EXPECT_FALSE(cert_from_der("garbage").ok());
  EXPECT_FALSE(csr_from_der("").ok());
}

TEST(Pki, Base64UrlRoundTrips) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\xfe\x00\x01"}) {
    auto d = base64url_decode(base64url_encode(s));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d.value, s);
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_FALSE(base64url_decode("a=b").ok());
  EXPECT_FALSE(base64url_decode("abcde").ok());
}

TEST(Pki, StandardBase64DecodesWhatTheEncoderWrites) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xfb\xff\xfe\x00\x01"}) {
    auto d = base64_decode(kedge::base64_encode(s));
    ASSERT_TRUE(d.ok()) << kedge::base64_encode(s);
    EXPECT_EQ(d.value, s);
  }
  EXPECT_EQ(base64_decode("+/8").value, "\xfb\xff");  // padding optional
  EXPECT_FALSE(base64_decode("-_8=").ok());           // the URL alphabet is not base64
  EXPECT_FALSE(base64_decode("a=b=").ok());
  EXPECT_FALSE(base64_decode("abcde").ok());
  EXPECT_FALSE(base64_decode("YQ===").ok());
}

TEST(Pki, JwtMatchesAnIndependentImplementation) {
  // Computed with Python's hmac/hashlib/base64 for secret "secret", exp 1700000000.
  EXPECT_EQ(jwt_hs256("secret", 1700000000),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDAwMDAwMDB9."
            "mKPdyfWO55aiqr8d3LGZBrCgJzNdTvTpL3JbXGIvPCw");
}

TEST(Pki, JwtVerification) {
  auto now = system_clock::now();
  int64_t exp = duration_cast<seconds>(now.time_since_epoch()).count() + 3600;
  std::string t = jwt_hs256("k1", exp);
  EXPECT_TRUE(jwt_verify("k1", t, now));
  Status bad = jwt_verify("k2", t, now);
  EXPECT_EQ(bad.code(), Code::kFailedPrecondition);
  EXPECT_THAT(bad.message(), HasSubstr("signature is invalid"));
  Status expired = jwt_verify("k1", t, now + hours(2));
  EXPECT_THAT(expired.message(), HasSubstr("expired"));
  EXPECT_THAT(jwt_verify("k1", "garbage", now).message(), HasSubstr("not a JWT"));
  EXPECT_THAT(jwt_verify("k1", "eA.eA.eA", now).message(), HasSubstr("not a JSON object"));
  // alg "none" is refused.
  std::string none = base64url_encode(R"({"alg":"none"})") + "." +
                     base64url_encode("{\"exp\":" + std::to_string(exp) + "}") + ".";
  EXPECT_THAT(jwt_verify("k1", none, now).message(), HasSubstr("not HS256"));
}

TEST(Pki, JoinTokenParses) {
  Ca ca;
  std::string hash = sha256_hex(cert_der(ca.cert.get()));
  std::string token = hash + "." + jwt_hs256(key_sec1_der(ca.key.get()), 1900000000);
  auto t = parse_join_token(token);
  ASSERT_TRUE(t.ok()) << t.status.message();
  EXPECT_EQ(t.value.ca_hash, hash);
  EXPECT_TRUE(jwt_verify(key_sec1_der(ca.key.get()), t.value.jwt, system_clock::now()));
  EXPECT_FALSE(parse_join_token("abc.def").ok());
  EXPECT_FALSE(parse_join_token(std::string(64, 'A') + ".a.b.c").ok());
  EXPECT_FALSE(parse_join_token(hash + ".onlyonepart").ok());
}

TEST(Pki, FilesAreWrittenAtomicallyWithModes) {
  auto dir = std::filesystem::temp_directory_path() / ("kedge-pki-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string key = (dir / "k.pem").string();
  ASSERT_TRUE(write_file(key, "secret", true));
  EXPECT_EQ(std::filesystem::status(key).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(read_file(key).value, "secret");
  EXPECT_EQ(read_file((dir / "none").string()).status.code(), Code::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kedge::pki
