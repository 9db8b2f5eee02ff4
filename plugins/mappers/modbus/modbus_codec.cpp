#include "modbus_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace kedge::modbus {

namespace {

uint16_t swap16(uint16_t r) { return static_cast<uint16_t>((r << 8) | (r >> 8)); }

// Applies the swaps (they are their own inverse).
std::vector<uint16_t> arrange(const Visitor& v, std::vector<uint16_t> regs) {
  if (v.swap_bytes)
    for (auto& r : regs) r = swap16(r);
  if (v.swap_registers) std::reverse(regs.begin(), regs.end());
  return regs;
}

uint64_t join(const std::vector<uint16_t>& regs) {
  uint64_t x = 0;
  for (uint16_t r : regs) x = (x << 16) | r;
  return x;
}

}  // namespace

Status decode(const Visitor& v, const std::vector<uint16_t>& in, double& out) {
  if (in.size() != static_cast<size_t>(v.limit))
    return internal_error("expected " + std::to_string(v.limit) + " registers, got " +
                          std::to_string(in.size()));
  auto regs = arrange(v, in);
  uint64_t x = join(regs);
  int bits = 16 * v.limit;
  double raw = 0;
  switch (v.format) {
    case Format::kUint: raw = static_cast<double>(x); break;
    case Format::kInt:
      if (bits < 64 && (x >> (bits - 1)) & 1) x |= ~0ULL << bits;  // sign-extend
      raw = static_cast<double>(static_cast<int64_t>(x));
      break;
    case Format::kFloat32: {
      if (v.limit != 2) return invalid_argument("float32 needs limit 2");
      uint32_t u = static_cast<uint32_t>(x);
      float f;
      std::memcpy(&f, &u, sizeof f);
      raw = f;
      break;
    }
    case Format::kFloat64: {
      if (v.limit != 4) return invalid_argument("float64 needs limit 4");
      double d;
      std::memcpy(&d, &x, sizeof d);
      raw = d;
      break;
    }
  }
  out = raw * v.scale;
  return {};
}

Status encode(const Visitor& v, double value, std::vector<uint16_t>& out) {
  if (v.scale == 0) return invalid_argument("scale is 0");
  double raw = value / v.scale;
  int bits = 16 * v.limit;
  uint64_t x = 0;
  switch (v.format) {
    case Format::kUint: {
      double r = std::round(raw);
      double max = bits >= 64 ? 1.8446744073709552e19 : std::ldexp(1.0, bits) - 1;
      if (r < 0 || r > max)
        return invalid_argument(std::to_string(value) + " does not fit " + std::to_string(bits) +
                                " unsigned bits (scale " + std::to_string(v.scale) + ")");
      x = static_cast<uint64_t>(r);
      break;
    }
    case Format::kInt: {
      double r = std::round(raw);
      double lim = std::ldexp(1.0, bits - 1);
      if (r < -lim || r > lim - 1)
        return invalid_argument(std::to_string(value) + " does not fit " + std::to_string(bits) +
                                " signed bits (scale " + std::to_string(v.scale) + ")");
      x = static_cast<uint64_t>(static_cast<int64_t>(r));
      if (bits < 64) x &= (1ULL << bits) - 1;
      break;
    }
    case Format::kFloat32: {
      if (v.limit != 2) return invalid_argument("float32 needs limit 2");
      float f = static_cast<float>(raw);
      uint32_t u;
      std::memcpy(&u, &f, sizeof u);
      x = u;
      break;
    }
    case Format::kFloat64: {
      if (v.limit != 4) return invalid_argument("float64 needs limit 4");
      std::memcpy(&x, &raw, sizeof x);
      break;
    }
  }
  std::vector<uint16_t> regs(static_cast<size_t>(v.limit));
  for (int i = v.limit - 1; i >= 0; --i) {
    regs[static_cast<size_t>(i)] = static_cast<uint16_t>(x & 0xffff);
    x >>= 16;
  }
  out = arrange(v, regs);
  return {};
}

}  // namespace kedge::modbus
