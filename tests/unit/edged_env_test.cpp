// edged's pure env/object logic: a configmap's and a secret's data as a
// container sees it, and a container's environment.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "env.h"
#include "kedge/message.h"

namespace kedge::edged {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

json::value obj(const std::string& text) { return json::parse(text); }

struct Objects {
  std::map<std::string, json::value> by_key;  // kind/name
  ObjectLookup lookup() {
    return [this](const std::string& kind, const std::string& name) -> std::optional<json::value> {
      auto it = by_key.find(kind + "/" + name);
      if (it == by_key.end()) return std::nullopt;
      return it->second;
    };
  }
};

TEST(EdgedEnv, SecretsAndBinaryDataAreDecodedConfigmapDataIsNot) {
  auto s =
      object_data("secret", "db", obj(R"({"data":{"user":"YWRtaW4=","pw":"czNjcmV0"}})"), true);
  ASSERT_EQ(s.status.message(), "");
  EXPECT_EQ(s.value, (std::map<std::string, std::string>{{"pw", "s3cret"}, {"user", "admin"}}));
  auto cm = object_data(
      "configmap", "cfg",
      obj(R"({"data":{"a":"YWRtaW4="},"binaryData":{"b":")" + base64_encode("\x01\x02") + R"("}})"),
      true);
  ASSERT_EQ(cm.status.message(), "");
  EXPECT_EQ(cm.value.at("a"), "YWRtaW4=");
  EXPECT_EQ(cm.value.at("b"), "\x01\x02");
  EXPECT_EQ(
      object_data("configmap", "cfg", obj(R"({"binaryData":{"b":"AQI="}})"), false).value.size(),
      0u);
  auto bad = object_data("secret", "db", obj(R"({"data":{"pw":"not base64!"}})"), true);
  EXPECT_EQ(bad.status.message(), "secret \"db\": key pw is not base64");
}

TEST(EdgedEnv, BuildsTheEnvironmentFromValuesFieldsAndReferences) {
  Objects o;
  o.by_key["configmap/cfg"] = obj(R"({"data":{"LEVEL":"debug","MODE":"fast"}})");
  o.by_key["secret/db"] = obj(R"({"data":{"password":"czNjcmV0"}})");
  auto c = obj(R"({
    "envFrom":[{"configMapRef":{"name":"cfg"},"prefix":"APP_"},
               {"secretRef":{"name":"absent","optional":true}}],
    "env":[{"name":"PLAIN","value":"v"},
           {"name":"POD","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},
           {"name":"NS","valueFrom":{"fieldRef":{"fieldPath":"metadata.namespace"}}},
           {"name":"UID","valueFrom":{"fieldRef":{"fieldPath":"metadata.uid"}}},
           {"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}},
           {"name":"IP","valueFrom":{"fieldRef":{"fieldPath":"status.podIP"}}},
           {"name":"HOST","valueFrom":{"fieldRef":{"fieldPath":"status.hostIP"}}},
           {"name":"PW","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}},
           {"name":"LVL","valueFrom":{"configMapKeyRef":{"name":"cfg","key":"LEVEL"}}},
           {"name":"OPT","valueFrom":{"configMapKeyRef":{"name":"cfg","key":"none","optional":true}}}]})");
  auto r = container_env(c, {"web", "prod", "u-1", "edge-1", "fd00::5", "10.0.0.2"}, o.lookup());
  ASSERT_EQ(r.status.message(), "");
  EXPECT_EQ(r.value, (Env{{"APP_LEVEL", "debug"},
                          {"APP_MODE", "fast"},
                          {"PLAIN", "v"},
                          {"POD", "web"},
                          {"NS", "prod"},
                          {"UID", "u-1"},
                          {"NODE", "edge-1"},
                          {"IP", "fd00::5"},
                          {"HOST", "10.0.0.2"},
                          {"PW", "s3cret"},
                          {"LVL", "debug"}}));
}

TEST(EdgedEnv, MissingReferencesNameTheVariableAndTheObject) {
  Objects o;
  o.by_key["configmap/cfg"] = obj(R"({"data":{"LEVEL":"debug"}})");
  o.by_key["secret/bad"] = obj(R"({"data":{"k":"%%%"}})");
  PodFields pod{"web", "prod", "u-1", "edge-1", "", ""};
  auto err = [&](const char* c) { return container_env(obj(c), pod, o.lookup()).status.message(); };
  EXPECT_EQ(err(R"({"envFrom":[{"configMapRef":{"name":"nope"}}]})"),
            "configmap \"nope\" not found (envFrom)");
  EXPECT_EQ(
      err(R"({"env":[{"name":"X","valueFrom":{"configMapKeyRef":{"name":"cfg","key":"K"}}}]})"),
      "env X: configmap \"cfg\" has no key \"K\"");
  EXPECT_EQ(err(R"({"env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"gone","key":"K"}}}]})"),
            "env X: secret \"gone\" has no key \"K\"");
  EXPECT_EQ(err(R"({"env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"bad","key":"k"}}}]})"),
            "env X: secret \"bad\": key k is not base64");
  EXPECT_THAT(err(R"({"env":[{"name":"X","valueFrom":{"resourceFieldRef":{}}}]})"),
              HasSubstr("env X: valueFrom is not supported"));
  EXPECT_TRUE(container_env(obj(R"({"env":[{"name":"X","valueFrom":{"resourceFieldRef":{}}}]})"),
                            pod, o.lookup())
                  .value.empty());
}

}  // namespace
}  // namespace kedge::edged
