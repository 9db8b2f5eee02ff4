// Device and DeviceModel between devices.kubeedge.io/v1beta1 (what kedge's
// API serves and its edge acts on, KubeEdge 1.15+) and v1alpha2 (what a
// KubeEdge 1.12–1.14 cloud sends and a 1.12 edge decodes).
//
// KubeEdge 1.12's edge decodes the `resource`-group device/devicemodel
// messages into its v1alpha2 Go types (its DMI worker, its metamanager's
// store); a v1beta1 DeviceModel fails there ("cannot unmarshal string into
// Go struct field DeviceProperty.spec.properties.type"), and a Device
// without a v1alpha2 protocol block has no protocol name. So kedge's
// devicecontroller sends v1alpha2 to edges that are not kedge's, and kedge's
// edge takes either version (it converts v1alpha2 on arrival), so it can run
// under a 1.12 CloudCore too.
//
// The mapping (a v1beta1 protocol's configData <-> a v1alpha2 protocol
// block):
//   modbus     configData {slaveID, ip, port, serialPort, baudRate, dataBits,
//              parity, stopBits, ...} <-> modbus{slaveID} +
//              common{tcp{ip,port}, com{serialPort,...}, customizedValues}
//   opcua      configData {url, userName, ...} <-> opcua{url, userName, ...}
//   bluetooth  configData {macAddress} <-> bluetooth{macAddress}
//   any other  {protocolName, configData} <-> customizedProtocol{...}
// and a property's visitors.configData <-> the visitor block of the same
// protocol (modbus{register, offset, ...}, opcua{nodeID, browseName}, ...).
// The desired values live in spec.properties[].desired (v1beta1) and
// status.twins[].desired (v1alpha2). What one version cannot hold is
// dropped (v1beta1's pushMethod, reportToCloud and methods; v1alpha2's
// data section): a conversion round trip keeps everything a 1.12 edge acts
// on, not everything.
#pragma once

#include <boost/json/value.hpp>

namespace kedge::devices {

inline constexpr const char* kV1alpha2 = "devices.kubeedge.io/v1alpha2";
inline constexpr const char* kV1beta1 = "devices.kubeedge.io/v1beta1";

// True if `obj` says apiVersion devices.kubeedge.io/v1alpha2.
bool is_v1alpha2(const boost::json::value& obj);

// v1beta1 -> v1alpha2 (apiVersion and kind set). Anything that is not an
// object comes back as it is.
boost::json::value device_to_v1alpha2(const boost::json::value& dev);
boost::json::value model_to_v1alpha2(const boost::json::value& model);

// v1alpha2 -> v1beta1 (apiVersion and kind set).
boost::json::value device_from_v1alpha2(const boost::json::value& dev);
boost::json::value model_from_v1alpha2(const boost::json::value& model);

}  // namespace kedge::devices
