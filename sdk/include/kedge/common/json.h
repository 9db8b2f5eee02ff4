// Reading fields out of JSON documents (Kubernetes objects, message
// contents) by a path of object keys, without exceptions: a missing key, or
// a step through something that is not an object, reads as absent.
//
//   kedge::json_path::text(pod, {"metadata", "name"})
//
// Header-only: it needs nothing beyond Boost.JSON.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace kedge::json_path {

using Path = std::initializer_list<std::string_view>;

// The value at `path`, or nullptr.
inline const boost::json::value* find(const boost::json::value& v, Path path) {
  const boost::json::value* cur = &v;
  for (std::string_view p : path) {
    auto* o = cur->if_object();
    if (!o) return nullptr;
    cur = o->if_contains(p);
    if (!cur) return nullptr;
  }
  return cur;
}

// A string at `path`; anything else (absent, a number, an object) is "".
inline std::string string_at(const boost::json::value& v, Path path) {
  auto* x = find(v, path);
  return x && x->is_string() ? std::string(x->as_string()) : std::string();
}

// A scalar at `path` as text: a string as it is, a number or boolean as its
// JSON text; absent, null, objects and arrays are "".
inline std::string scalar_text(const boost::json::value& v, Path path) {
  auto* x = find(v, path);
  if (!x) return {};
  if (x->is_string()) return std::string(x->as_string());
  if (x->is_number() || x->is_bool()) return boost::json::serialize(*x);
  return {};
}

// Any value at `path` as text: a string as it is, null or absent as "",
// anything else as its JSON text.
inline std::string text(const boost::json::value& v, Path path) {
  auto* x = find(v, path);
  if (!x || x->is_null()) return {};
  if (x->is_string()) return std::string(x->as_string());
  return boost::json::serialize(*x);
}

// A number at `path` as an integer (doubles truncated), else `fallback`.
inline int64_t integer_at(const boost::json::value& v, Path path, int64_t fallback = 0) {
  auto* x = find(v, path);
  if (!x) return fallback;
  if (x->is_int64()) return x->as_int64();
  if (x->is_uint64()) return static_cast<int64_t>(x->as_uint64());
  if (x->is_double()) return static_cast<int64_t>(x->as_double());
  return fallback;
}

// The array at `path`, or an empty one.
inline const boost::json::array& array_at(const boost::json::value& v, Path path) {
  static const boost::json::array kEmpty;
  auto* x = find(v, path);
  return x && x->is_array() ? x->as_array() : kEmpty;
}

}  // namespace kedge::json_path
