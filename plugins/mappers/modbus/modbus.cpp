// modbus: Modbus TCP devices through libmodbus.
//
// Device: spec.protocol.protocolName "modbus"; configData:
//   ip (required), port (502), slaveID (1), timeout_ms (1000)
// Property visitors (visitors.configData), as KubeEdge's Modbus visitor:
//   register: HoldingRegister | InputRegister | CoilRegister | DiscreteInputRegister
//   offset: the first register or coil (0-65535)
//   limit: how many registers make the value (1, 2 or 4; coils: 1)
//   scale: the register value times scale is the reading (default 1)
//   isSwap: swap the two bytes of each register
//   isRegisterSwap: swap the order of the registers
//   format: uint (default), int (two's complement), float32 (limit 2),
//           float64 (limit 4)
// Desired values are written to HoldingRegister and CoilRegister properties.
#include <modbus.h>

#include <cerrno>
#include <cmath>
#include <map>

#include "kedge/mapper/mapper.h"
#include "modbus_codec.h"

namespace {

using kedge::Code;
using kedge::Status;
using kedge::mapper::Device;
using kedge::mapper::Fields;
using kedge::mapper::Property;
using kedge::modbus::Format;
using kedge::modbus::Visitor;

class ModbusDriver final : public kedge::mapper::Driver {
 public:
  ModbusDriver(std::string ip, int port, int slave, int timeout_ms,
               std::map<std::string, Visitor> visitors)
      : ip_(std::move(ip)),
        port_(port),
        slave_(slave),
        timeout_ms_(timeout_ms),
        visitors_(std::move(visitors)) {}
  ~ModbusDriver() override { disconnect(); }

  Status connect() override {
    disconnect();
    ctx_ = modbus_new_tcp(ip_.c_str(), port_);
    if (!ctx_) return {Code::kInternal, "cannot create a Modbus context: " + err()};
    modbus_set_slave(ctx_, slave_);
    auto sec = static_cast<uint32_t>(timeout_ms_ / 1000);
    auto usec = static_cast<uint32_t>((timeout_ms_ % 1000) * 1000);
    modbus_set_response_timeout(ctx_, sec, usec);
    if (modbus_connect(ctx_) == -1) {
      std::string e = err();
      disconnect();
      return {Code::kUnavailable,
              "cannot connect to Modbus device " + ip_ + ":" + std::to_string(port_) + ": " + e};
    }
    return {};
  }

  void disconnect() override {
    if (!ctx_) return;
    modbus_close(ctx_);
    modbus_free(ctx_);
    ctx_ = nullptr;
  }

  Status health() override {
    if (!ctx_) return {Code::kUnavailable, "not connected"};
    return {};
  }

  Status read(const Property& p, std::string& value) override {
    if (!ctx_) return {Code::kUnavailable, "not connected"};
    const Visitor& v = visitors_.at(p.name);
    double out = 0;
    if (v.table == Visitor::Table::kCoil || v.table == Visitor::Table::kDiscreteInput) {
      uint8_t bit = 0;
      int rc = v.table == Visitor::Table::kCoil ? modbus_read_bits(ctx_, v.offset, 1, &bit)
                                                : modbus_read_input_bits(ctx_, v.offset, 1, &bit);
      if (rc != 1) return failed("read", p);
      out = bit ? 1 : 0;
    } else {
      std::vector<uint16_t> regs(static_cast<size_t>(v.limit));
      int rc = v.table == Visitor::Table::kHolding
                   ? modbus_read_registers(ctx_, v.offset, v.limit, regs.data())
                   : modbus_read_input_registers(ctx_, v.offset, v.limit, regs.data());
      if (rc != v.limit) return failed("read", p);
      if (Status s = kedge::modbus::decode(v, regs, out); !s) return s;
    }
    value = kedge::mapper::format_number(out, p.type == "string" ? "double" : p.type);
    return {};
  }

  Status write(const Property& p, const std::string& text) override {
    if (!ctx_) return {Code::kUnavailable, "not connected"};
    const Visitor& v = visitors_.at(p.name);
    double value = 0;
    if (Status s =
            kedge::mapper::parse_number(text, p.type == "boolean" ? "boolean" : "double", value);
        !s)
      return s;
    if (v.table == Visitor::Table::kCoil) {
      if (modbus_write_bit(ctx_, v.offset, value != 0 ? 1 : 0) != 1) return failed("write", p);
      return {};
    }
    if (v.table != Visitor::Table::kHolding)
      return {Code::kFailedPrecondition, "input registers and discrete inputs cannot be written"};
    std::vector<uint16_t> regs;
    if (Status s = kedge::modbus::encode(v, value, regs); !s) return s;
    int rc = v.limit == 1 ? modbus_write_register(ctx_, v.offset, regs[0])
                          : modbus_write_registers(ctx_, v.offset, v.limit, regs.data());
    if (rc != 1 && rc != v.limit) return failed("write", p);
    return {};
  }

 private:
  static std::string err() { return modbus_strerror(errno); }
  Status failed(const char* what, const Property& p) {
    std::string e = err();
    // A dead connection: let the engine reconnect.
    if (errno == ECONNRESET || errno == EPIPE || errno == EBADF || errno == ETIMEDOUT) disconnect();
    return {Code::kUnavailable, std::string(what) + " of " + p.name + " failed: " + e};
  }

  std::string ip_;
  int port_, slave_, timeout_ms_;
  std::map<std::string, Visitor> visitors_;
  modbus_t* ctx_ = nullptr;
};

Status make_driver(const Device& d, std::unique_ptr<kedge::mapper::Driver>& out) {
  Fields pf(d.protocol_config, "spec.protocol.configData");
  std::string ip = pf.str("ip", "", true);
  int port = static_cast<int>(pf.integer("port", 502, 1, 65535));
  int slave = static_cast<int>(pf.integer("slaveID", 1, 0, 247));
  int timeout = static_cast<int>(pf.integer("timeout_ms", 1000, 10, 60000));
  if (!pf.ok()) return pf.status();
  std::map<std::string, Visitor> visitors;
  for (auto& p : d.properties) {
    Fields f(p.visitor, "property '" + p.name + "' visitors.configData");
    Visitor v;
    std::string table =
        f.one_of("register", "",
                 {"HoldingRegister", "InputRegister", "CoilRegister", "DiscreteInputRegister"});
    v.table = table == "CoilRegister"            ? Visitor::Table::kCoil
              : table == "DiscreteInputRegister" ? Visitor::Table::kDiscreteInput
              : table == "InputRegister"         ? Visitor::Table::kInput
                                                 : Visitor::Table::kHolding;
    v.offset = static_cast<int>(f.integer("offset", 0, 0, 65535, true));
    bool bits = v.table == Visitor::Table::kCoil || v.table == Visitor::Table::kDiscreteInput;
    v.limit = static_cast<int>(f.integer("limit", 1, 1, bits ? 1 : 4));
    v.scale = f.number("scale", 1);
    v.swap_bytes = f.boolean("isSwap", false);
    v.swap_registers = f.boolean("isRegisterSwap", false);
    std::string format = f.one_of("format", "uint", {"uint", "int", "float32", "float64"});
    if (!f.ok()) return f.status();
    v.format = format == "int"       ? Format::kInt
               : format == "float32" ? Format::kFloat32
               : format == "float64" ? Format::kFloat64
                                     : Format::kUint;
    if (v.limit == 3)
      return kedge::invalid_argument("property '" + p.name + "': limit must be 1, 2 or 4");
    if (v.format == Format::kFloat32 && v.limit != 2)
      return kedge::invalid_argument("property '" + p.name + "': format float32 needs limit 2");
    if (v.format == Format::kFloat64 && v.limit != 4)
      return kedge::invalid_argument("property '" + p.name + "': format float64 needs limit 4");
    if (v.scale == 0 || !std::isfinite(v.scale))
      return kedge::invalid_argument("property '" + p.name + "': scale must be a non-zero number");
    visitors[p.name] = v;
  }
  out = std::make_unique<ModbusDriver>(ip, port, slave, timeout, std::move(visitors));
  return {};
}

kedge::mapper::MapperInfo modbus_mapper() {
  return {
      .name = "modbus-mapper", .protocol = "modbus", .version = "0.1.0", .factory = make_driver};
}

}  // namespace

KEDGE_MAPPER(modbus_mapper, "Modbus TCP devices through libmodbus (protocol \"modbus\").")
