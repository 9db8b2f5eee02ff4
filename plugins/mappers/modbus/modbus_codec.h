// Modbus register values <-> numbers: byte and word swaps, formats, scale.
// Pure functions, unit-tested without a device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kedge/status.h"

namespace kedge::modbus {

enum class Format { kUint, kInt, kFloat32, kFloat64 };

struct Visitor {
  enum class Table { kCoil, kDiscreteInput, kInput, kHolding } table = Table::kHolding;
  int offset = 0;
  int limit = 1;  // registers (1, 2 or 4) or coils (1)
  double scale = 1;
  bool swap_bytes = false;      // isSwap: the two bytes of each register
  bool swap_registers = false;  // isRegisterSwap: the order of the registers
  Format format = Format::kUint;
};

// Registers as read (first register first) -> the value, times scale.
Status decode(const Visitor& v, const std::vector<uint16_t>& regs, double& out);
// A value -> the registers to write (divided by scale, rounded for integer
// formats); out of range for the format is an error.
Status encode(const Visitor& v, double value, std::vector<uint16_t>& regs);

}  // namespace kedge::modbus
