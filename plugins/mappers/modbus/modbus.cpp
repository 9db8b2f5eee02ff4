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
#include <memory>
#include <mutex>

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

// One TCP connection per endpoint (ip:port), shared by every device behind
// it, each with its own slave id: a gateway with 1,000 meters behind ten
// Modbus gateways keeps ten connections, not 1,000 (libmodbus waits with
// select(), which cannot watch descriptors past FD_SETSIZE). KubeEdge's
// mappers-go Modbus driver keeps one client per address and slave id (and
// one per serial port, since a bus takes one request at a time); here the
// slaves behind one address share it too. The mutex keeps each
// request/response exchange whole.
class Link {
 public:
  Link(std::string ip, int port) : ip_(std::move(ip)), port_(port) {}
  ~Link() { close(); }

  static std::shared_ptr<Link> get(const std::string& ip, int port) {
    static std::mutex mu;
    static std::map<std::string, std::weak_ptr<Link>> links;
    std::lock_guard lk(mu);
    std::string key = ip + ":" + std::to_string(port);
    if (auto l = links[key].lock()) return l;
    for (auto it = links.begin(); it != links.end();)  // forget the ones gone
      it = it->second.expired() ? links.erase(it) : std::next(it);
    auto l = std::make_shared<Link>(ip, port);
    links[key] = l;
    return l;
  }

  // Connects if the connection is down (the engine calls this, with its
  // back-off).
  Status connect(int timeout_ms) {
    std::lock_guard lk(mu_);
    if (ctx_) return {};
    ctx_ = modbus_new_tcp(ip_.c_str(), port_);
    if (!ctx_) return {Code::kInternal, "cannot create a Modbus context: " + err()};
    set_timeout(timeout_ms);
    if (modbus_connect(ctx_) == -1) {
      std::string e = err();
      close_locked();
      return {Code::kUnavailable,
              "cannot connect to Modbus device " + ip_ + ":" + std::to_string(port_) + ": " + e};
    }
    return {};
  }

  // Runs one exchange `fn` for `slave`; fails at once if the connection is
  // down. `fn` reports a failed libmodbus call with failed(), which keeps
  // its errno: a broken connection is closed for every device behind it; a
  // timeout or a garbled answer (one slave's problem) only flushes what may
  // still arrive, so its neighbours go on.
  template <class Fn>
  Status with(int slave, int timeout_ms, Fn fn) {
    std::lock_guard lk(mu_);
    if (!ctx_)
      return {Code::kUnavailable,
              "connection to " + ip_ + ":" + std::to_string(port_) + " is down"};
    modbus_set_slave(ctx_, slave);
    set_timeout(timeout_ms);
    last_errno() = 0;
    Status s = fn(ctx_);
    int e = last_errno();
    if (!s && (e == ECONNRESET || e == EPIPE || e == EBADF || e == ENOTCONN))
      close_locked();
    else if (!s && e != 0)
      modbus_flush(ctx_);
    return s;
  }

  // errno of the last failed call on this thread (set by failed()).
  static int& last_errno() {
    thread_local int e = 0;
    return e;
  }

  bool up() {
    std::lock_guard lk(mu_);
    return ctx_ != nullptr;
  }

  void close() {
    std::lock_guard lk(mu_);
    close_locked();
  }

 private:
  void set_timeout(int timeout_ms) {
    modbus_set_response_timeout(ctx_, static_cast<uint32_t>(timeout_ms / 1000),
                                static_cast<uint32_t>((timeout_ms % 1000) * 1000));
  }
  void close_locked() {
    if (!ctx_) return;
    modbus_close(ctx_);
    modbus_free(ctx_);
    ctx_ = nullptr;
  }
  static std::string err() { return modbus_strerror(errno); }

  std::string ip_;
  int port_;
  std::mutex mu_;
  modbus_t* ctx_ = nullptr;
};

class ModbusDriver final : public kedge::mapper::Driver {
 public:
  ModbusDriver(std::string ip, int port, int slave, int timeout_ms,
               std::map<std::string, Visitor> visitors)
      : ip_(std::move(ip)),
        port_(port),
        slave_(slave),
        timeout_ms_(timeout_ms),
        visitors_(std::move(visitors)) {}

  Status connect() override {
    link_ = Link::get(ip_, port_);
    return link_->connect(timeout_ms_);
  }

  // The connection stays while other devices use it.
  void disconnect() override { link_.reset(); }

  Status health() override {
    if (!link_ || !link_->up()) return {Code::kUnavailable, "not connected"};
    return {};
  }

  Status read(const Property& p, std::string& value) override {
    if (!link_) return {Code::kUnavailable, "not connected"};
    const Visitor& v = visitors_.at(p.name);
    double out = 0;
    Status s = link_->with(slave_, timeout_ms_, [&](modbus_t* ctx) -> Status {
      if (v.table == Visitor::Table::kCoil || v.table == Visitor::Table::kDiscreteInput) {
        uint8_t bit = 0;
        int rc = v.table == Visitor::Table::kCoil ? modbus_read_bits(ctx, v.offset, 1, &bit)
                                                  : modbus_read_input_bits(ctx, v.offset, 1, &bit);
        if (rc != 1) return failed("read", p);
        out = bit ? 1 : 0;
        return {};
      }
      std::vector<uint16_t> regs(static_cast<size_t>(v.limit));
      int rc = v.table == Visitor::Table::kHolding
                   ? modbus_read_registers(ctx, v.offset, v.limit, regs.data())
                   : modbus_read_input_registers(ctx, v.offset, v.limit, regs.data());
      if (rc != v.limit) return failed("read", p);
      return kedge::modbus::decode(v, regs, out);
    });
    if (!s) return s;
    value = kedge::mapper::format_number(out, p.type == "string" ? "double" : p.type);
    return {};
  }

  Status write(const Property& p, const std::string& text) override {
    if (!link_) return {Code::kUnavailable, "not connected"};
    const Visitor& v = visitors_.at(p.name);
    double value = 0;
    if (Status s =
            kedge::mapper::parse_number(text, p.type == "boolean" ? "boolean" : "double", value);
        !s)
      return s;
    if (v.table != Visitor::Table::kHolding && v.table != Visitor::Table::kCoil)
      return {Code::kFailedPrecondition, "input registers and discrete inputs cannot be written"};
    std::vector<uint16_t> regs;
    if (v.table == Visitor::Table::kHolding)
      if (Status s = kedge::modbus::encode(v, value, regs); !s) return s;
    return link_->with(slave_, timeout_ms_, [&](modbus_t* ctx) -> Status {
      if (v.table == Visitor::Table::kCoil)
        return modbus_write_bit(ctx, v.offset, value != 0 ? 1 : 0) == 1 ? Status{}
                                                                        : failed("write", p);
      int rc = v.limit == 1 ? modbus_write_register(ctx, v.offset, regs[0])
                            : modbus_write_registers(ctx, v.offset, v.limit, regs.data());
      return rc == 1 || rc == v.limit ? Status{} : failed("write", p);
    });
  }

 private:
  static Status failed(const char* what, const Property& p) {
    int e = errno;
    Link::last_errno() = e;
    return {Code::kUnavailable,
            std::string(what) + " of " + p.name + " failed: " + modbus_strerror(e)};
  }

  std::string ip_;
  int port_, slave_, timeout_ms_;
  std::map<std::string, Visitor> visitors_;
  std::shared_ptr<Link> link_;
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
