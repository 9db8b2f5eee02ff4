#include "kedge/message.h"

#include <gtest/gtest.h>

#include <set>

namespace kedge {
namespace {

// 8-4-4-4-12 lower-case hex, version nibble 4, variant 10xx.
bool is_uuid_v4(const std::string& u) {
  if (u.size() != 36) return false;
  for (size_t i = 0; i < u.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (u[i] == '-')) return false;
    if (!dash && !((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'))) return false;
  }
  return u[14] == '4' && (u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b');
}

TEST(Message, UuidIsVersion4AndUnique) {
  EXPECT_FALSE(is_uuid_v4("726e2a1c-6f0b-3f3e-9a51-0c2d8e7f1a22"));  // version 3
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string u = new_uuid();
    ASSERT_TRUE(is_uuid_v4(u)) << u;
    ASSERT_TRUE(seen.insert(u).second) << "duplicate " << u;
  }
}

TEST(Message, NewMessageHasIdParentAndMillisecondTimestamp) {
  int64_t before = now_ms();
  Message m = new_message("parent-1");
  EXPECT_EQ(m.header.id.size(), 36u);
  EXPECT_EQ(m.header.parent_id, "parent-1");
  EXPECT_GE(m.header.timestamp_ms, before);
  EXPECT_LE(m.header.timestamp_ms, now_ms());
  EXPECT_GT(m.header.timestamp_ms, 1'600'000'000'000);  // milliseconds, not seconds
  EXPECT_TRUE(m.content.is_null());
}

TEST(Message, ResponseCopiesSourceAndGroupWithoutSwapping) {
  Message req = make_message("edgecontroller", "resource", "insert", "default/pod/nginx");
  req.header.type = "channel";
  Message resp = new_response(req, boost::json::string("OK"));
  EXPECT_NE(resp.header.id, req.header.id);
  EXPECT_EQ(resp.header.parent_id, req.header.id);
  EXPECT_EQ(resp.route.source, "edgecontroller");
  EXPECT_EQ(resp.route.group, "resource");
  EXPECT_EQ(resp.route.resource, "default/pod/nginx");
  EXPECT_EQ(resp.route.operation, "response");
  EXPECT_EQ(resp.header.type, "channel");
  EXPECT_EQ(resp.content.as_string(), "OK");
  EXPECT_TRUE(resp.is_response());
}

TEST(Message, ErrorMessageTakesTheRequestsParentNotItsId) {
  Message req = make_message("a", "g", "query", "r");
  req.header.parent_id = "grandparent";
  Message err = new_error(req, "boom");
  EXPECT_EQ(err.header.parent_id, "grandparent");
  EXPECT_EQ(err.route.operation, "error");
  EXPECT_EQ(err.route.resource, "r");
  EXPECT_TRUE(err.route.source.empty());
  EXPECT_TRUE(err.route.group.empty());
  EXPECT_EQ(err.content.as_string(), "boom");
}

TEST(Message, CloneGetsNewIdOnly) {
  Message m = make_message("a", "g", "update", "r", boost::json::object{{"x", 1}});
  m.header.resource_version = "7";
  Message c = clone_message(m);
  EXPECT_NE(c.header.id, m.header.id);
  EXPECT_EQ(c.header.resource_version, "7");
  EXPECT_EQ(c.header.timestamp_ms, m.header.timestamp_ms);
  EXPECT_EQ(c.content, m.content);
}

TEST(Message, BytesContentIsBase64) {
  EXPECT_EQ(bytes_content("{\"x\":1}").as_string(), "eyJ4IjoxfQ==");
  EXPECT_EQ(bytes_content("").as_string(), "");
  EXPECT_EQ(bytes_content("a").as_string(), "YQ==");
  EXPECT_EQ(bytes_content("ab").as_string(), "YWI=");
  EXPECT_EQ(bytes_content("abc").as_string(), "YWJj");
}

}  // namespace
}  // namespace kedge
