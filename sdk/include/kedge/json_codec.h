// JSON codec for messages, byte-compatible with KubeEdge's Go encoding
//: keys in Go's order, optional keys omitted when empty, `content`
// always present, millisecond timestamps, Go's number formatting and its HTML
// escaping of <, > and &.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "kedge/message.h"
#include "kedge/status.h"

namespace kedge::codec {

// Encodes a message as one line of JSON, exactly as Go's json.Marshal would.
KEDGE_EXPORT std::string encode(const Message& m);

// Encodes any JSON value with Go's encoding/json rules.
KEDGE_EXPORT void encode_value(const boost::json::value& v, std::string& out);

// Decodes a message. Errors name the offending field ("header.timestamp: ...").
// A trailing newline is tolerated, unknown keys are ignored (as Go does).
KEDGE_EXPORT Result<Message> decode(std::string_view text);

}  // namespace kedge::codec
