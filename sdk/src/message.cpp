#include "kedge/message.h"

#include <array>
#include <chrono>
#include <random>

#include "kedge/status.h"

namespace kedge {

const char* code_name(Code c) {
  switch (c) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kFull: return "queue full";
    case Code::kTimeout: return "timeout";
    case Code::kUnavailable: return "unavailable";
    case Code::kFailedPrecondition: return "failed precondition";
    case Code::kInternal: return "internal error";
    case Code::kAlreadyExists: return "already exists";
    case Code::kConflict: return "conflict";
    case Code::kGone: return "gone";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(code_name(code_)) + ": " + message_;
}

namespace {

// xoshiro256**: fast, good-quality 64-bit generator; one per thread.
struct Xoshiro {
  uint64_t s[4];
  Xoshiro() {
    std::random_device rd;
    for (auto& w : s) w = (uint64_t{rd()} << 32) ^ rd();
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
};

}  // namespace

std::string new_uuid() {
  thread_local Xoshiro rng;
  std::array<uint8_t, 16> b{};
  uint64_t hi = rng.next(), lo = rng.next();
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<uint8_t>(hi >> (8 * i));
    b[8 + i] = static_cast<uint8_t>(lo >> (8 * i));
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  size_t pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++pos;
    out[pos++] = kHex[b[i] >> 4];
    out[pos++] = kHex[b[i] & 0xf];
  }
  return out;
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

Message new_message(std::string parent_id) {
  Message m;
  m.header.id = new_uuid();
  m.header.parent_id = std::move(parent_id);
  m.header.timestamp_ms = now_ms();
  return m;
}

Message make_message(std::string source, std::string group, std::string operation,
                     std::string resource, Content content) {
  Message m = new_message();
  m.route.source = std::move(source);
  m.route.group = std::move(group);
  m.route.operation = std::move(operation);
  m.route.resource = std::move(resource);
  m.content = std::move(content);
  return m;
}

Message new_response(const Message& req, Content content) {
  Message m = new_message(req.header.id);
  m.header.type = req.header.type;
  m.route.source = req.route.source;
  m.route.group = req.route.group;
  m.route.resource = req.route.resource;
  m.route.operation = std::string(op::kResponse);
  m.content = std::move(content);
  return m;
}

Message new_error(const Message& req, std::string text) {
  Message m = new_message(req.header.parent_id);
  m.route.resource = req.route.resource;
  m.route.operation = std::string(op::kError);
  m.content = boost::json::string(text);
  return m;
}

Message clone_message(const Message& src) {
  Message m = src;
  m.header.id = new_uuid();
  return m;
}

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t n = byte(i) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

Content bytes_content(std::string_view in) { return boost::json::string(base64_encode(in)); }

}  // namespace kedge
