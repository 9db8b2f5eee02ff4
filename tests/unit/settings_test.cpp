// A plugin's config as a struct (kedge/settings.h): the schema comes from
// the fields, and the validated config fills them.
#include "kedge/settings.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace kedge {
namespace {

struct S {
  std::string name;
  int64_t port = 0;
  double ratio = 0;
  bool on = false;
  std::vector<std::string> peers;
  boost::json::object routes;
};

constexpr Setting<S> kSettings[] = {
    {"name", &S::name, "\"x\"", "A name.", true},
    {"port", &S::port, "10000", "A port.", false, 1, 65535},
    {"ratio", &S::ratio, "0.5", "A ratio.", false, 0, 1},
    {"on", &S::on, "true", "A switch."},
    {"peers", &S::peers, "[]", "Peers."},
    {"routes", &S::routes, "{}", "Routes."},
};
constexpr auto kKeys = config_keys(kSettings);

// The schema is built at compile time, its types from the fields.
static_assert(kKeys.size() == 6);
static_assert(kKeys[0].type == ConfigType::kString && kKeys[0].required);
static_assert(kKeys[1].type == ConfigType::kInteger && kKeys[1].min == 1 && kKeys[1].max == 65535);
static_assert(kKeys[2].type == ConfigType::kFloat);
static_assert(kKeys[3].type == ConfigType::kBool);
static_assert(kKeys[4].type == ConfigType::kStringList);
static_assert(kKeys[5].type == ConfigType::kTable);

TEST(Settings, TheSchemaCarriesNamesDefaultsAndDescriptions) {
  EXPECT_STREQ(kKeys[1].name, "port");
  EXPECT_STREQ(kKeys[1].default_value, "10000");
  EXPECT_STREQ(kKeys[3].description, "A switch.");
}

TEST(Settings, TheValidatedConfigFillsTheStruct) {
  Config cfg(boost::json::parse(R"({"name":"edge","port":8080,"ratio":0.25,"on":false,
                                    "peers":["a","b"],"routes":{"resource":"edgecontroller"}})")
                 .as_object());
  S s = read_settings(kSettings, cfg);
  EXPECT_EQ(s.name, "edge");
  EXPECT_EQ(s.port, 8080);
  EXPECT_DOUBLE_EQ(s.ratio, 0.25);
  EXPECT_FALSE(s.on);
  EXPECT_EQ(s.peers, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.routes.at("resource"), "edgecontroller");
}

}  // namespace
}  // namespace kedge
