// A plugin's config as a struct: each key is declared once, beside the field
// it fills, and its type comes from the field's, so the schema the kernel
// validates (types, ranges, file:line:col on error) and the values the plugin
// reads cannot disagree, and no key is read back by a string that may be
// mistyped. Read once, in init; then plain fields (no lookups on hot paths).
//
//   struct Settings {
//     std::string server;
//     int64_t heartbeat_s = 0;
//     bool expect_acks = false;
//   };
//   constexpr kedge::Setting<Settings> kSettings[] = {
//       {"server", &Settings::server, "\"127.0.0.1:10000\"", "cloudhub's channel."},
//       {"heartbeat_s", &Settings::heartbeat_s, "15", "Keepalive interval.", false, 1, 3600},
//       {"expect_acks", &Settings::expect_acks, "true", "The cloud ACKs upstream messages."},
//   };
//   constexpr auto kConfig = kedge::config_keys(kSettings);   // for KEDGE_PLUGIN's .config
//   ...
//   Status init(Context& ctx, const Config& cfg) override {
//     s_ = kedge::read_settings(kSettings, cfg);
#pragma once

#include <array>
#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "kedge/config.h"

namespace kedge {

template <class S>
struct Setting {
  using Member = std::variant<std::string S::*, int64_t S::*, double S::*, bool S::*,
                              std::vector<std::string> S::*, boost::json::object S::*>;
  const char* name;
  Member member;
  const char* default_value;  // a TOML literal, or nullptr for none
  const char* description;
  bool required = false;
  double min = 0, max = 0;  // integer and float keys, both ends included, when max > min
};

namespace detail {
constexpr ConfigType setting_type(size_t variant_index) {
  constexpr ConfigType kTypes[] = {ConfigType::kString,  ConfigType::kInteger,
                                   ConfigType::kFloat,   ConfigType::kBool,
                                   ConfigType::kStringList, ConfigType::kTable};
  return kTypes[variant_index];
}
}  // namespace detail

// The schema of KEDGE_PLUGIN's .config, built at compile time.
template <class S, size_t N>
constexpr std::array<ConfigKey, N> config_keys(const Setting<S> (&settings)[N]) {
  std::array<ConfigKey, N> out{};
  for (size_t i = 0; i < N; ++i) {
    const Setting<S>& s = settings[i];
    out[i] = ConfigKey{s.name,     detail::setting_type(s.member.index()),
                       s.default_value, s.description, s.required, s.min, s.max};
  }
  return out;
}

// The validated config (defaults filled by the kernel) as the struct.
// std::visit compiles an assignment for every kind of member, also those the
// struct has none of; for a struct smaller than a std::string GCC 12 then
// warns (-Warray-bounds) about the branch that never runs.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
template <class S, size_t N>
S read_settings(const Setting<S> (&settings)[N], const Config& cfg) {
  S out{};
  for (const Setting<S>& s : settings) {
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(out.*member)>;
          if constexpr (std::is_same_v<T, std::string>)
            out.*member = cfg.get_string(s.name);
          else if constexpr (std::is_same_v<T, int64_t>)
            out.*member = cfg.get_int(s.name);
          else if constexpr (std::is_same_v<T, double>)
            out.*member = cfg.get_float(s.name);
          else if constexpr (std::is_same_v<T, bool>)
            out.*member = cfg.get_bool(s.name);
          else if constexpr (std::is_same_v<T, std::vector<std::string>>)
            out.*member = cfg.get_strings(s.name);
          else
            out.*member = cfg.get_table(s.name);
        },
        s.member);
  }
  return out;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace kedge
