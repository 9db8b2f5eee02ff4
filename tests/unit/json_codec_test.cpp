#include "kedge/json_codec.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <fstream>
#include <sstream>

namespace kedge::codec {
namespace {

std::string golden(const std::string& name) {
  std::ifstream in(std::string(KEDGE_TESTDATA_DIR) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

TEST(JsonCodec, KeepaliveMatchesSpecSample) {
  Message m;
  m.header.id = "726e2a1c-6f0b-4f3e-9a51-0c2d8e7f1a22";
  m.header.timestamp_ms = 1795559381988;
  m.route.source = "websocket";
  m.route.group = "resource";
  m.route.operation = "keepalive";
  m.route.resource = "node";
  m.content = boost::json::string("ping");
  EXPECT_EQ(encode(m), golden("keepalive.json"));
}

TEST(JsonCodec, AckMatchesSpecSample) {
  Message req;
  req.header.id = "0c0b5d2e-1f4a-4c7b-8e9d-3a2b1c0d9e8f";
  req.route = {"edgecontroller", "", "resource", "insert", "default/pod/nginx"};
  Message ack = new_response(req, boost::json::string("OK"));
  ack.header.id = "2be4f7a9-8c3d-4e21-b5f6-7a8b9c0d1e2f";
  ack.header.timestamp_ms = 1795559382050;
  EXPECT_EQ(encode(ack), golden("ack.json"));
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, DecodeThenEncodeIsByteIdentical) {
  std::string text = golden(GetParam());
  auto r = decode(text + "\n");  // a trailing newline is tolerated
  ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_EQ(encode(r.value), text);
}

INSTANTIATE_TEST_SUITE_P(SpecSamples, Golden,
                         ::testing::Values("keepalive.json", "pod_insert.json", "ack.json"));

TEST(JsonCodec, PodInsertFieldsDecode) {
  auto r = decode(golden("pod_insert.json"));
  ASSERT_TRUE(r.status);
  const Message& m = r.value;
  EXPECT_EQ(m.header.resource_version, "123");
  EXPECT_EQ(m.header.timestamp_ms, 1795559382001);
  EXPECT_FALSE(m.header.sync);
  EXPECT_EQ(m.route.resource, "node/edge1/default/pod/nginx");
  EXPECT_EQ(m.content.at("spec").at("nodeName").as_string(), "edge1");
}

TEST(JsonCodec, ContentIsAlwaysPresentAndOptionalKeysAreOmitted) {
  Message m;
  m.header.id = "x";
  m.header.timestamp_ms = 1;
  EXPECT_EQ(encode(m), R"({"header":{"msg_id":"x","timestamp":1},"route":{},"content":null})");
  m.header.sync = true;
  m.header.type = "channel";
  m.route.destination = "d";
  EXPECT_EQ(
      encode(m),
      R"({"header":{"msg_id":"x","timestamp":1,"sync":true,"type":"channel"},"route":{"destination":"d"},"content":null})");
}

TEST(JsonCodec, StringsEscapeLikeGo) {
  boost::json::value v =
      boost::json::string("<a href=\"x\">&</a>\n\t\r\x01\\ \xe2\x80\xa8 \xc3\xa9");
  std::string out;
  encode_value(v, out);
  EXPECT_EQ(out, R"("\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e\n\t\r\u0001\\ \u2028 é")");
  out.clear();
  encode_value(boost::json::string("bad \xff utf8"), out);
  EXPECT_EQ(out, R"("bad \ufffd utf8")");
}

TEST(JsonCodec, NumbersFormatLikeGo) {
  auto enc = [](boost::json::value v) {
    std::string out;
    encode_value(v, out);
    return out;
  };
  EXPECT_EQ(enc(1.5), "1.5");
  EXPECT_EQ(enc(1795559381988.0), "1795559381988");
  EXPECT_EQ(enc(1e21), "1e+21");
  EXPECT_EQ(enc(1e-7), "1e-7");
  EXPECT_EQ(enc(0.000001), "0.000001");
  EXPECT_EQ(enc(int64_t{-42}), "-42");
  EXPECT_EQ(enc(uint64_t{18446744073709551615ull}), "18446744073709551615");
  EXPECT_EQ(enc(0.0), "0");
  EXPECT_EQ(enc(-0.0), "-0");
  EXPECT_EQ(enc(-2.5), "-2.5");
  EXPECT_EQ(enc(0.1), "0.1");
  EXPECT_EQ(enc(123.456), "123.456");
  // Shortest digits padded with zeros, not the exact binary value.
  EXPECT_EQ(enc(12345678901234567890.0), "12345678901234567000");
  EXPECT_EQ(enc(1e20), "100000000000000000000");
  EXPECT_EQ(enc(9.999999999999999e20), "999999999999999900000");
  EXPECT_EQ(enc(1.5e-7), "1.5e-7");
  EXPECT_EQ(enc(1e-10), "1e-10");
  EXPECT_EQ(enc(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(enc(0.000123), "0.000123");
}

TEST(JsonCodec, ObjectKeyOrderIsPreserved) {
  auto v = boost::json::parse(R"({"z":1,"a":{"y":true,"b":null},"m":[1,"x"]})");
  std::string out;
  encode_value(v, out);
  EXPECT_EQ(out, R"({"z":1,"a":{"y":true,"b":null},"m":[1,"x"]})");
}

TEST(JsonCodec, DecodeErrorsNameTheField) {
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {"not json", "not valid JSON"},
      {"[1,2]", "message: expected object, got array"},
      {R"({"header":"x"})", "header: expected object, got string"},
      {R"({"header":{"msg_id":5}})", "header.msg_id: expected string, got integer"},
      {R"({"header":{"timestamp":"now"}})",
       "header.timestamp: expected integer milliseconds, got string"},
      {R"({"header":{"timestamp":1.5}})",
       "header.timestamp: expected integer milliseconds, got number"},
      {R"({"header":{"sync":"yes"}})", "header.sync: expected boolean, got string"},
      {R"({"route":{"resource":[]}})", "route.resource: expected string, got array"},
      {R"({"route":7})", "route: expected object, got integer"},
  };
  for (const auto& c : cases) {
    auto r = decode(c.text);
    ASSERT_FALSE(r.status) << c.text;
    EXPECT_EQ(r.status.code(), Code::kInvalidArgument);
    EXPECT_NE(r.status.message().find(c.expect), std::string::npos)
        << c.text << " -> " << r.status.message();
  }
}

TEST(JsonCodec, DeeplyNestedContentDecodes) {
  std::string deep = std::string(100, '[') + std::string(100, ']');
  auto r = decode(R"({"header":{"msg_id":"a"},"content":)" + deep + "}");
  ASSERT_TRUE(r.status) << r.status.to_string();
  std::string out;
  encode_value(r.value.content, out);
  EXPECT_EQ(out, deep);
  // Beyond the limit: an error, not a stack overflow.
  std::string too_deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_FALSE(decode(R"({"content":)" + too_deep + "}").status);
}

TEST(JsonCodec, MissingPartsDecodeAsEmpty) {
  auto r = decode(R"({"header":{"msg_id":"a"},"extra":1})");
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.value.header.id, "a");
  EXPECT_TRUE(r.value.content.is_null());
  EXPECT_TRUE(r.value.route.operation.empty());
}

TEST(JsonCodec, BytesContentRoundTripsAsString) {
  Message m = make_message("s", "g", "update", "r", bytes_content("{\"x\":1}"));
  std::string text = encode(m);
  EXPECT_NE(text.find(R"("content":"eyJ4IjoxfQ==")"), std::string::npos) << text;
  auto r = decode(text);
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.value.content.as_string(), "eyJ4IjoxfQ==");
}

TEST(JsonCodec, RoundTripOfEveryHeaderField) {
  Message m = make_message("metamanager", "meta", "update", "default/configmap/c",
                           boost::json::object{{"data", boost::json::object{{"k", "v"}}}});
  m.header.parent_id = "p";
  m.header.resource_version = "42";
  m.header.sync = true;
  m.header.type = "channel";
  m.route.destination = "edged";
  auto r = decode(encode(m));
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.value.header.id, m.header.id);
  EXPECT_EQ(r.value.header.parent_id, "p");
  EXPECT_EQ(r.value.header.timestamp_ms, m.header.timestamp_ms);
  EXPECT_EQ(r.value.header.resource_version, "42");
  EXPECT_TRUE(r.value.header.sync);
  EXPECT_EQ(r.value.header.type, "channel");
  EXPECT_EQ(r.value.route.destination, "edged");
  EXPECT_EQ(r.value.content, m.content);
  EXPECT_EQ(encode(r.value), encode(m));
}

}  // namespace
}  // namespace kedge::codec
