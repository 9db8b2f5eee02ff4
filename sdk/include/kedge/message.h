// The kedge message: KubeEdge's beehive model (header, route, content), so the
// cloud-edge channel carries it without translation. In-process, messages are
// passed as MessagePtr (shared, immutable): fan-out receivers share one object
// and nothing is copied or serialized.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kedge/export.h"

namespace kedge {

// Values of route.operation used by the kernel and the channel (beehive/pkg/core/model).
namespace op {
inline constexpr std::string_view kInsert = "insert";
inline constexpr std::string_view kUpdate = "update";
inline constexpr std::string_view kDelete = "delete";
inline constexpr std::string_view kQuery = "query";
inline constexpr std::string_view kPatch = "patch";
inline constexpr std::string_view kUpload = "upload";
inline constexpr std::string_view kResponse = "response";
inline constexpr std::string_view kError = "error";
inline constexpr std::string_view kKeepalive = "keepalive";
inline constexpr std::string_view kConnect = "connect";
}  // namespace op

struct Header {
  std::string id;                // header.msg_id, a UUID v4
  std::string parent_id;         // header.parent_msg_id; non-empty means "a response"
  int64_t timestamp_ms = 0;      // header.timestamp, milliseconds since the epoch
  std::string resource_version;  // header.resourceversion
  bool sync = false;             // header.sync
  std::string type;              // header.type (context type; unused on the wire)
};

struct Route {
  std::string source;       // sending module
  std::string destination;  // rarely used
  std::string group;        // destination group
  std::string operation;    // verb, see kedge::op
  std::string resource;     // resource path
};

// Content is any JSON value (null, string, object, ...). Go []byte content is a
// base64 string on the wire; build it with bytes_content().
using Content = boost::json::value;

struct Message {
  Header header;
  Route route;
  Content content;  // never absent: null when empty

  bool is_response() const { return !header.parent_id.empty(); }
};

using MessagePtr = std::shared_ptr<const Message>;

// A fresh UUID v4 string (lower-case, 36 chars).
KEDGE_EXPORT std::string new_uuid();
// Milliseconds since the Unix epoch.
KEDGE_EXPORT int64_t now_ms();

// NewMessage(parent): fresh id, the given parent, timestamp now.
KEDGE_EXPORT Message new_message(std::string parent_id = {});

// Convenience: a new message with route and content set.
KEDGE_EXPORT Message make_message(std::string source, std::string group, std::string operation,
                                  std::string resource, Content content = nullptr);

// NewRespByMessage(req, content): new id; parent = req.id; source and group
// copied from the request (not swapped); same resource; op "response".
KEDGE_EXPORT Message new_response(const Message& req, Content content);

// NewErrorMessage(req, text): new id; parent = req.parent_id (beehive's quirk,
// kept for wire compatibility); resource copied; op "error"; source and group empty.
KEDGE_EXPORT Message new_error(const Message& req, std::string text);

// Clone: new id, everything else copied.
KEDGE_EXPORT Message clone_message(const Message& m);

// Go []byte semantics: the content is the base64 encoding of the bytes.
KEDGE_EXPORT Content bytes_content(std::string_view bytes);
// Standard base64 (RFC 4648 §4, padded): the one encoder of the SDK.
KEDGE_EXPORT std::string base64_encode(std::string_view bytes);

inline MessagePtr share(Message m) { return std::make_shared<const Message>(std::move(m)); }

}  // namespace kedge
