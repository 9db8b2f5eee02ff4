// `kedge mapper new NAME`: a mapper project that builds as it is, against
// the installed SDK, both as a plugin and as a standalone DMI mapper.
#include "mapper_new.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

namespace kedge::cli {

namespace {

namespace fs = std::filesystem;

std::string fill(std::string text, const std::string& name) {
  for (size_t i; (i = text.find("@NAME@")) != std::string::npos;) text.replace(i, 6, name);
  std::string ident = name;
  for (auto& c : ident)
    if (c == '-') c = '_';
  for (size_t i; (i = text.find("@IDENT@")) != std::string::npos;) text.replace(i, 7, ident);
  return text;
}

const char* kCMake = R"(cmake_minimum_required(VERSION 3.25)
project(@IDENT@_mapper VERSION 0.1.0 LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)

find_package(kedge 0.1 REQUIRED COMPONENTS mapper mapper_standalone)
# Builds libkedge_@NAME@-mapper.so (a plugin for the edge agent) and
# kedge-@NAME@-mapper (a standalone mapper speaking DMI over gRPC).
kedge_add_mapper(@IDENT@_mapper @NAME@-mapper driver.cpp)
)";

const char* kDriver = R"(// The @NAME@ mapper: devices whose spec.protocol.protocolName is "@NAME@".
//
// The SDK does the rest: DMI registration, a thread per device, collect and
// report cycles, desired values, MQTT/HTTP push, Device-as-a-Service. What is
// left is the device's own I/O, marked TODO below. As generated, the driver
// keeps its values in memory, so the project runs before you write any.
#include <kedge/mapper/mapper.h>

#include <map>

namespace {

using kedge::Status;
using kedge::mapper::Device;
using kedge::mapper::Fields;
using kedge::mapper::Property;

// How to reach one property, from its visitors.configData.
struct Visitor {
  int64_t address = 0;
  double initial = 0;
};

class Driver final : public kedge::mapper::Driver {
 public:
  Driver(std::string endpoint, std::map<std::string, Visitor> visitors)
      : endpoint_(std::move(endpoint)), visitors_(std::move(visitors)) {
    for (auto& [name, v] : visitors_) memory_[v.address] = v.initial;
  }

  Status connect() override {
    // TODO: open the connection to endpoint_; return an error to retry later.
    return {};
  }
  Status read(const Property& p, std::string& value) override {
    // TODO: read the property from the device.
    value = kedge::mapper::format_number(memory_[visitors_.at(p.name).address], p.type);
    return {};
  }
  Status write(const Property& p, const std::string& value) override {
    // TODO: write the desired value to the device.
    double v = 0;
    if (Status s = kedge::mapper::parse_number(value, p.type, v); !s) return s;
    memory_[visitors_.at(p.name).address] = v;
    return {};
  }
  Status health() override {
    // TODO: a cheap check that the device still answers.
    return {};
  }

 private:
  std::string endpoint_;
  std::map<std::string, Visitor> visitors_;
  std::map<int64_t, double> memory_;  // stands in for the device
};

// Checks a device's settings and makes its driver. Errors name the field;
// the device is then reported unhealthy with that reason.
Status make_driver(const Device& d, std::unique_ptr<kedge::mapper::Driver>& out) {
  Fields protocol(d.protocol_config, "spec.protocol.configData");
  std::string endpoint = protocol.str("endpoint", "localhost");
  if (!protocol.ok()) return protocol.status();
  std::map<std::string, Visitor> visitors;
  for (auto& p : d.properties) {
    Fields f(p.visitor, "property '" + p.name + "' visitors.configData");
    Visitor v;
    v.address = f.integer("address", 0, 0, 65535);
    v.initial = f.number("initial", 0);
    if (!f.ok()) return f.status();
    visitors[p.name] = v;
  }
  out = std::make_unique<Driver>(endpoint, std::move(visitors));
  return {};
}

kedge::mapper::MapperInfo info() {
  return {.name = "@NAME@-mapper", .protocol = "@NAME@", .version = "0.1.0",
          .factory = make_driver};
}

}  // namespace

KEDGE_MAPPER(info, "The @NAME@ mapper.")
)";

const char* kYaml = R"(# A model and a device for the @NAME@ mapper (kedge apply -f device.yaml).
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata:
  name: @NAME@-model
spec:
  protocol: @NAME@
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly, unit: celsius}
  - {name: setpoint, type: INT, accessMode: ReadWrite}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: @NAME@-1
spec:
  deviceModelRef: {name: @NAME@-model}
  nodeName: edge-1                  # your node
  protocol:
    protocolName: @NAME@
    configData: {endpoint: localhost}
  properties:
  - name: temperature
    collectCycle: 1000000000        # nanoseconds: 1 s
    reportCycle: 2000000000
    reportToCloud: true
    visitors: {protocolName: @NAME@, configData: {address: 0, initial: 21.5}}
  - name: setpoint
    desired: {value: "22"}
    reportToCloud: true
    visitors: {protocolName: @NAME@, configData: {address: 1}}
)";

const char* kReadme = R"(# @NAME@-mapper

A kedge mapper for devices with `spec.protocol.protocolName: @NAME@`, made by
`kedge mapper new @NAME@`. Write the device's I/O in `driver.cpp` (the TODOs).

    cmake -S . -B build -DCMAKE_PREFIX_PATH=<kedge install prefix>
    cmake --build build

This builds two things from the same driver:

* `build/kedge-@NAME@-mapper`: a standalone mapper. It registers with the
  edge's DMI socket and serves its own:

      build/kedge-@NAME@-mapper --dmi-socket /etc/kubeedge/dmi.sock \
          --socket /etc/kubeedge/@NAME@.sock --http 127.0.0.1:7777

* `build/libkedge_@NAME@-mapper.so`: a plugin for the edge agent (next to
  the `dmi` plugin), with `plugin_dirs` pointing at `build/`:

      [[plugin]]
      name = "@NAME@-mapper"

Then `kedge apply -f device.yaml` (set your node's name in it).
)";

}  // namespace

int mapper_new(const std::vector<std::string>& args) {
  std::string name, dir;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--dir" && i + 1 < args.size())
      dir = args[++i];
    else if (name.empty() && !args[i].empty() && args[i][0] != '-')
      name = args[i];
    else {
      std::cerr << "error: mapper new: unexpected argument '" << args[i] << "'\n"
                << "usage: kedge mapper new NAME [--dir DIR]\n";
      return 2;
    }
  }
  if (name.empty()) {
    std::cerr << "usage: kedge mapper new NAME [--dir DIR]\n";
    return 2;
  }
  if (!std::regex_match(name, std::regex("[a-z][a-z0-9-]{0,40}"))) {
    std::cerr << "error: mapper name '" << name
              << "': use a lower-case letter, then letters, digits and '-' (the protocol name)\n";
    return 2;
  }
  fs::path out = dir.empty() ? fs::path(name + "-mapper") : fs::path(dir);
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_empty(out, ec)) {
    std::cerr << "error: " << out.string() << " exists and is not empty\n";
    return 1;
  }
  fs::create_directories(out, ec);
  if (ec) {
    std::cerr << "error: cannot create " << out.string() << ": " << ec.message() << "\n";
    return 1;
  }
  for (auto [file, text] : {std::pair{"CMakeLists.txt", kCMake}, std::pair{"driver.cpp", kDriver},
                            std::pair{"device.yaml", kYaml}, std::pair{"README.md", kReadme}}) {
    std::ofstream f(out / file);
    f << fill(text, name);
    if (!f) {
      std::cerr << "error: cannot write " << (out / file).string() << "\n";
      return 1;
    }
  }
  std::cout << "created " << out.string() << "/ (CMakeLists.txt, driver.cpp, device.yaml, "
            << "README.md)\nbuild it: cmake -S " << out.string() << " -B " << out.string()
            << "/build && cmake --build " << out.string() << "/build\n";
  return 0;
}

}  // namespace kedge::cli
