// A CRI (runtime.v1) client over a Unix socket: the generated stubs, a
// deadline per call, and gRPC errors as kedge Status. Blocking calls: edged
// makes them from its own worker thread, never from the plugin's strand.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "cri/api.grpc.pb.h"
#include "kedge/status.h"

namespace kedge::cri {

namespace pb = runtime::v1;

class Client {
 public:
  // endpoint: "unix:///path/to.sock" or a path.
  Client(const std::string& endpoint, std::chrono::milliseconds timeout) : timeout_(timeout) {
    std::string target = endpoint.rfind("unix://", 0) == 0 ? endpoint : "unix://" + endpoint;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    // Reconnect quickly once the runtime comes (back): edged polls it.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    runtime_ = pb::RuntimeService::NewStub(channel_);
    images_ = pb::ImageService::NewStub(channel_);
  }

  // Calls stub->*method with a fresh context and deadline (`timeout` 0: the
  // default); a failed call is a Status naming the method.
  template <typename Stub, typename Req, typename Resp>
  Status call(const char* what, Stub* stub,
              grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*), const Req& req,
              Resp* resp, std::chrono::milliseconds timeout = {}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + (timeout.count() ? timeout : timeout_));
    grpc::Status s = (stub->*method)(&ctx, req, resp);
    if (s.ok()) return {};
    Code c = Code::kInternal;
    switch (s.error_code()) {
      case grpc::StatusCode::UNAVAILABLE: c = Code::kUnavailable; break;
      case grpc::StatusCode::DEADLINE_EXCEEDED: c = Code::kTimeout; break;
      case grpc::StatusCode::NOT_FOUND: c = Code::kNotFound; break;
      case grpc::StatusCode::INVALID_ARGUMENT: c = Code::kInvalidArgument; break;
      default: break;
    }
    return {c, std::string(what) + ": " + s.error_message()};
  }

  pb::RuntimeService::Stub* runtime() { return runtime_.get(); }
  pb::ImageService::Stub* images() { return images_.get(); }

 private:
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::RuntimeService::Stub> runtime_;
  std::unique_ptr<pb::ImageService::Stub> images_;
};

}  // namespace kedge::cri
