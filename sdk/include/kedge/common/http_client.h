// The one HTTP(S) client of kedge: a single request on a fresh connection,
// plain HTTP when no TLS context is given, TLS otherwise (the server's host
// name or IP address is checked when the context verifies peers). Hosts are
// names, IPv4 or IPv6 addresses ("::1" or "[::1]").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "kedge/common/net.h"

namespace kedge::net {

struct HttpResult {
  Status status;  // transport errors; an HTTP error status is not one
  int http_status = 0;
  std::string body;
};

// Runs on `ex`; `on_done` is called once, there. A GET with a body is
// allowed, as KubeEdge's /edge.crt uses. `ctx` null: plain HTTP.
KEDGE_EXPORT void http_request(boost::asio::any_io_executor ex, SslContext ctx,
                               const std::string& host, uint16_t port, HttpRequest req,
                               std::chrono::milliseconds timeout, size_t max_body,
                               std::function<void(HttpResult)> on_done);

// The same, on an io_context of its own, blocking the calling thread for at
// most `timeout`: for worker threads (edged's probes, a mapper's HTTP push)
// and tools.
KEDGE_EXPORT HttpResult http_request_sync(SslContext ctx, const std::string& host, uint16_t port,
                                          HttpRequest req, std::chrono::milliseconds timeout,
                                          size_t max_body = 1 << 20);

// Whether a TCP connection to host:port opens within `timeout` (a
// tcpSocket probe); the error names the peer.
KEDGE_EXPORT Status tcp_check(const std::string& host, uint16_t port,
                              std::chrono::milliseconds timeout);

}  // namespace kedge::net
