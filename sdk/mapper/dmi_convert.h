// DMI v1beta1 messages <-> the Device and DeviceModel objects
// (devices.kubeedge.io/v1beta1 JSON). Shared by the edge's dmi plugin (JSON
// to protobuf) and the Mapper SDK's standalone runtime (protobuf to JSON),
// so both ends agree field by field.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "dmi/v1beta1/api.pb.h"
#include "kedge/export.h"

namespace kedge::dmi {

namespace pb = ::v1beta1;

KEDGE_EXPORT pb::Device device_to_proto(const boost::json::value& device);
KEDGE_EXPORT pb::DeviceModel model_to_proto(const boost::json::value& model);
KEDGE_EXPORT boost::json::value device_from_proto(const pb::Device& d);
KEDGE_EXPORT boost::json::value model_from_proto(const pb::DeviceModel& m);

// Free-form settings: JSON scalars as google.protobuf wrappers in Any
// (strings: StringValue; integers: Int32Value or Int64Value; other numbers:
// DoubleValue... see the .cpp; booleans: BoolValue; objects and lists:
// their JSON text in a StringValue).
KEDGE_EXPORT void to_customized(const boost::json::object& in, pb::CustomizedValue& out);
KEDGE_EXPORT boost::json::object from_customized(const pb::CustomizedValue& in);

// ReportDeviceStatus's twins as the JSON the in-process path uses:
// {"twins":[{"propertyName","reported":{"value","metadata"},"observedDesired":{...}}]}.
KEDGE_EXPORT boost::json::object status_to_json(const pb::DeviceStatus& s);
KEDGE_EXPORT pb::DeviceStatus status_from_json(const boost::json::value& v);

}  // namespace kedge::dmi
