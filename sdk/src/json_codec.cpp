#include "kedge/json_codec.h"

#include <boost/json/parse.hpp>
#include <charconv>
#include <cmath>

namespace kedge::codec {

namespace bj = boost::json;

namespace {

// Go's encoding/json string escaping with HTML escaping on (json.Marshal's
// default), as the Go releases KubeEdge 1.12 is built with (before Go 1.22,
// which added \b and \f): short escapes for \" \\ \n \r \t, \u00XX for other control bytes,
// \u003c \u003e \u0026 for < > &, \u2028 \u2029, and U+FFFD for invalid UTF-8.
void encode_string(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t i = 0;
  const size_t n = s.size();
  auto u = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < n) {
    unsigned char c = u(i);
    if (c < 0x80) {
      if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
        out += static_cast<char>(c);
      } else {
        switch (c) {
          case '"': out += "\\\""; break;
          case '\\': out += "\\\\"; break;
          case '\n': out += "\\n"; break;
          case '\r': out += "\\r"; break;
          case '\t': out += "\\t"; break;
          default:
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
      }
      ++i;
      continue;
    }
    // Multi-byte UTF-8: validate, pass through, escape U+2028/U+2029.
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    }
    bool valid = len != 0 && i + len <= n;
    for (size_t k = 1; valid && k < len; ++k) {
      if ((u(i + k) & 0xc0) != 0x80)
        valid = false;
      else
        cp = (cp << 6) | (u(i + k) & 0x3f);
    }
    if (valid) {
      // Reject overlong forms, surrogates and out-of-range code points like Go.
      if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
          (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        valid = false;
    }
    if (!valid) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) {
      out += cp == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.data() + i, len);
    }
    i += len;
  }
  out += '"';
}

// Go formats float64 with the shortest digits that round-trip, written out in
// 'f' form (padded with zeros, never the exact binary value) unless the
// magnitude is below 1e-6 or at least 1e21, where it uses 'e' form and trims
// "e-07" to "e-7" (encoding/json's floatEncoder).
void encode_double(double d, std::string& out) {
  if (!std::isfinite(d)) {  // Go refuses these; we write null rather than fail.
    out += "null";
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));  // -d.ddde+XX
  double a = std::fabs(d);
  if (a != 0 && (a < 1e-6 || a >= 1e21)) {
    size_t len = sci.size();
    if (len >= 4 && sci[len - 4] == 'e' && sci[len - 3] == '-' && sci[len - 2] == '0') {
      out.append(sci.substr(0, len - 2));
      out += sci[len - 1];
    } else {
      out.append(sci);
    }
    return;
  }
  // Expand the shortest digits to 'f' form.
  size_t e = sci.find('e');
  int exp = 0;
  const char* p = sci.data() + e + 1;
  if (*p == '+') ++p;
  std::from_chars(p, sci.data() + sci.size(), exp);
  std::string digits;
  bool negative = false;
  for (char c : sci.substr(0, e)) {
    if (c == '-')
      negative = true;
    else if (c != '.')
      digits += c;
  }
  if (negative) out += '-';
  int point = exp + 1;  // digits before the decimal point
  int n = static_cast<int>(digits.size());
  if (point <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-point), '0');
    out += digits;
  } else if (point >= n) {
    out += digits;
    out.append(static_cast<size_t>(point - n), '0');
  } else {
    out.append(digits, 0, static_cast<size_t>(point));
    out += '.';
    out.append(digits, static_cast<size_t>(point));
  }
}

}  // namespace

void encode_value(const bj::value& v, std::string& out) {
  switch (v.kind()) {
    case bj::kind::null: out += "null"; break;
    case bj::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case bj::kind::int64: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.get_int64());
      out.append(buf, r.ptr);
      break;
    }
    case bj::kind::uint64: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
      out.append(buf, r.ptr);
      break;
    }
    case bj::kind::double_: encode_double(v.get_double(), out); break;
    case bj::kind::string: encode_string(v.get_string(), out); break;
    case bj::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        encode_value(e, out);
      }
      out += ']';
      break;
    }
    case bj::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ',';
        first = false;
        encode_string(kv.key(), out);
        out += ':';
        encode_value(kv.value(), out);
      }
      out += '}';
      break;
    }
  }
}

std::string encode(const Message& m) {
  std::string out;
  out.reserve(256);
  const Header& h = m.header;
  out += "{\"header\":{\"msg_id\":";
  encode_string(h.id, out);
  if (!h.parent_id.empty()) {
    out += ",\"parent_msg_id\":";
    encode_string(h.parent_id, out);
  }
  out += ",\"timestamp\":";
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, h.timestamp_ms);
  out.append(buf, r.ptr);
  if (!h.resource_version.empty()) {
    out += ",\"resourceversion\":";
    encode_string(h.resource_version, out);
  }
  if (h.sync) out += ",\"sync\":true";
  if (!h.type.empty()) {
    out += ",\"type\":";
    encode_string(h.type, out);
  }
  out += "},\"route\":{";
  bool first = true;
  auto field = [&](const char* key, const std::string& val) {
    if (val.empty()) return;
    if (!first) out += ',';
    first = false;
    out += '"';
    out += key;
    out += "\":";
    encode_string(val, out);
  };
  const Route& rt = m.route;
  field("source", rt.source);
  field("destination", rt.destination);
  field("group", rt.group);
  field("operation", rt.operation);
  field("resource", rt.resource);
  out += "},\"content\":";
  encode_value(m.content, out);
  out += '}';
  return out;
}

namespace {

Status field_error(std::string_view path, std::string_view expected, const bj::value& got) {
  static constexpr const char* kNames[] = {"null",   "boolean", "integer", "integer",
                                           "number", "string",  "array",   "object"};
  return invalid_argument(std::string(path) + ": expected " + std::string(expected) + ", got " +
                          kNames[static_cast<int>(got.kind())]);
}

Status get_string(const bj::object& o, std::string_view key, std::string_view path,
                  std::string& out) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return {};
  if (!it->value().is_string()) return field_error(path, "string", it->value());
  out.assign(it->value().get_string().data(), it->value().get_string().size());
  return {};
}

}  // namespace

Result<Message> decode(std::string_view text) {
  Result<Message> res;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  boost::system::error_code ec;
  bj::parse_options opts;
  opts.max_depth = 256;  // Kubernetes objects (managedFields) nest deeper than the default 32
  bj::value root = bj::parse(text, ec, {}, opts);
  if (ec) {
    res.status = invalid_argument("message is not valid JSON: " + ec.message());
    return res;
  }
  if (!root.is_object()) {
    res.status = field_error("message", "object", root);
    return res;
  }
  auto& obj = root.get_object();
  Message& m = res.value;
  if (auto it = obj.find("header"); it != obj.end() && !it->value().is_null()) {
    if (!it->value().is_object()) {
      res.status = field_error("header", "object", it->value());
      return res;
    }
    const auto& h = it->value().get_object();
    for (auto [key, path, dst] :
         {std::tuple{"msg_id", "header.msg_id", &m.header.id},
          std::tuple{"parent_msg_id", "header.parent_msg_id", &m.header.parent_id},
          std::tuple{"resourceversion", "header.resourceversion", &m.header.resource_version},
          std::tuple{"type", "header.type", &m.header.type}}) {
      if (Status s = get_string(h, key, path, *dst); !s) {
        res.status = s;
        return res;
      }
    }
    if (auto t = h.find("timestamp"); t != h.end() && !t->value().is_null()) {
      if (t->value().is_int64())
        m.header.timestamp_ms = t->value().get_int64();
      else {
        res.status = field_error("header.timestamp", "integer milliseconds", t->value());
        return res;
      }
    }
    if (auto s = h.find("sync"); s != h.end() && !s->value().is_null()) {
      if (!s->value().is_bool()) {
        res.status = field_error("header.sync", "boolean", s->value());
        return res;
      }
      m.header.sync = s->value().get_bool();
    }
  }
  if (auto it = obj.find("route"); it != obj.end() && !it->value().is_null()) {
    if (!it->value().is_object()) {
      res.status = field_error("route", "object", it->value());
      return res;
    }
    const auto& r = it->value().get_object();
    for (auto [key, path, dst] :
         {std::tuple{"source", "route.source", &m.route.source},
          std::tuple{"destination", "route.destination", &m.route.destination},
          std::tuple{"group", "route.group", &m.route.group},
          std::tuple{"operation", "route.operation", &m.route.operation},
          std::tuple{"resource", "route.resource", &m.route.resource}}) {
      if (Status s = get_string(r, key, path, *dst); !s) {
        res.status = s;
        return res;
      }
    }
  }
  if (auto it = obj.find("content"); it != obj.end()) m.content = std::move(it->value());
  return res;
}

}  // namespace kedge::codec
