// Status: the error type of every fallible kedge call. A default-constructed
// Status is success; an error carries a code and a message meant for people.
#pragma once

#include <string>
#include <utility>

#include "kedge/export.h"

namespace kedge {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // bad input: config, message, manifest
  kNotFound,         // unknown module, plugin, file
  kFull,             // a bounded queue is full
  kTimeout,          // a deadline passed
  kUnavailable,      // the target exists but cannot take work now (stopped, failed)
  kFailedPrecondition,
  kInternal,
  kAlreadyExists,  // create of something that exists
  kConflict,       // optimistic concurrency: the version given is not the current one
  kGone,           // a version older than what is kept (e.g. a compacted watch start)
};

KEDGE_EXPORT const char* code_name(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code: message", or "ok".
  KEDGE_EXPORT std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value, or the error that prevented it: kedge's one result type. `value`
// is meaningful only when `ok()`.
template <class T>
struct Result {
  Status status;
  T value{};
  bool ok() const { return status.is_ok(); }
};

inline Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status internal_error(std::string m) { return {Code::kInternal, std::move(m)}; }

}  // namespace kedge
