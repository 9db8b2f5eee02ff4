// Networking building blocks on Boost.Beast + OpenSSL, written once for every
// plugin that needs them: TLS contexts, a WebSocket-over-TLS server and client
// (one text frame per message) and small HTTP(S) servers; the client is in
// kedge/common/http_client.h.
//
// Every object runs its handlers on the executor it is given (a plugin passes
// its strand), so a plugin's callbacks never run concurrently with its
// on_message.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "kedge/export.h"
#include "kedge/status.h"

namespace kedge::net {

using namespace std::chrono_literals;
using SslContext = std::shared_ptr<boost::asio::ssl::context>;

// PEM material for a TLS endpoint.
struct TlsMaterial {
  std::string ca_pem;    // peers are verified against it
  std::string cert_pem;  // our certificate (may be empty for a client without one)
  std::string key_pem;
};

enum class ClientCert { kNone, kOptional, kRequired };

using SslContextResult = Result<SslContext>;
// TLS 1.2+; TLS 1.2 limited to ECDHE-ECDSA-AES128-GCM-SHA256 as KubeEdge's
// CloudHub is (TLS 1.3 suites are OpenSSL's defaults).
KEDGE_EXPORT SslContextResult server_context(const TlsMaterial& m, ClientCert mode);
// Verifies the server against m.ca_pem (chain and host name); presents
// m.cert_pem if given. `verify = false` skips verification (only for fetching
// a CA whose hash is then checked by the caller).
KEDGE_EXPORT SslContextResult client_context(const TlsMaterial& m, bool verify = true);

// What the server knows about a connecting peer.
struct PeerInfo {
  std::string remote;                          // "ip:port"
  std::string cert_cn;                         // CN of the verified client certificate, or empty
  std::map<std::string, std::string> headers;  // upgrade request headers, names lower-cased
  std::string target;                          // request path
};

// One WebSocket connection. Thread-compatible: call it on its executor.
class KEDGE_EXPORT WsConnection : public std::enable_shared_from_this<WsConnection> {
 public:
  using OnText = std::function<void(std::string&& text)>;
  using OnClose = std::function<void(const Status& why)>;
  virtual ~WsConnection() = default;

  // Starts the read loop. `on_text` gets each frame; `on_close` is called
  // exactly once, when the connection ends for any reason (read or write
  // error, idle timeout, close()).
  virtual void start(OnText on_text, OnClose on_close) = 0;
  // Queues one text frame. kFull when more than the write-queue bound is
  // already waiting; kUnavailable once closed.
  virtual Status send(std::string text) = 0;
  // Closes (with a close frame carrying `why` when possible) and calls on_close.
  virtual void close(const Status& why) = 0;
  virtual bool open() const = 0;
  virtual size_t queued_bytes() const = 0;
  virtual const PeerInfo& peer() const = 0;
};
using WsPtr = std::shared_ptr<WsConnection>;

struct WsOptions {
  std::chrono::milliseconds handshake_timeout = 30s;
  // No frame from the peer for this long closes the connection; a ping is
  // sent at half of it (so a live but quiet peer answers with a pong).
  std::chrono::milliseconds idle_timeout = 45s;
  size_t max_frame = 8 << 20;          // larger frames close the connection
  size_t max_queued_bytes = 64 << 20;  // bound of the write queue
};

// A decision on an upgrade request: accept, or refuse with an HTTP status.
struct Admission {
  int http_status = 0;  // 0: accept
  std::string reason;
  static Admission accept() { return {}; }
  static Admission refuse(int status, std::string reason) { return {status, std::move(reason)}; }
};

class KEDGE_EXPORT WsServer : public std::enable_shared_from_this<WsServer> {
 public:
  struct Options {
    WsOptions ws;
    size_t max_connections = 1000;  // connections past this are refused (503)
    size_t max_handshakes = 64;     // TLS+upgrade handshakes running at once; more wait
    size_t max_waiting = 4096;      // accepted sockets waiting for a handshake slot
  };
  using Admit = std::function<Admission(const PeerInfo&)>;
  using OnConnection = std::function<void(WsPtr)>;

  static std::shared_ptr<WsServer> create(boost::asio::any_io_executor ex, SslContext ctx,
                                          Options opts);
  virtual ~WsServer() = default;
  // Binds and starts accepting. Port 0 picks a free port (see port()).
  virtual Status listen(const std::string& address, uint16_t port, Admit admit,
                        OnConnection on_connection) = 0;
  virtual uint16_t port() const = 0;
  virtual size_t connections() const = 0;
  virtual void stop() = 0;
};

struct WsClientOptions {
  WsOptions ws;
  std::chrono::milliseconds connect_timeout = 30s;
};
// Connects to wss://host:port/target with extra upgrade headers.
KEDGE_EXPORT void ws_connect(boost::asio::any_io_executor ex, SslContext ctx,
                             const std::string& host, uint16_t port, const std::string& target,
                             std::map<std::string, std::string> headers,
                             const WsClientOptions& opts,
                             std::function<void(Status, WsPtr)> on_done);

// ---- HTTP(S) ----

struct HttpRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string peer_cert_cn;  // verified client certificate CN, if any
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/octet-stream";
  std::string body;
};

// ---- HTTP(S) server with keep-alive and streamed responses ----

// One request being answered. Reply once, or stream: begin_stream() sends
// the head with chunked transfer encoding, write() sends chunks, end() the
// last one. Use it from the server's executor.
class KEDGE_EXPORT HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual const HttpRequest& request() const = 0;
  virtual void reply(HttpResponse r) = 0;
  virtual void begin_stream(int status, const std::string& content_type) = 0;
  // kFull if more than Options::max_stream_queue bytes wait (a slow reader:
  // the caller should end the stream); kUnavailable once the peer is gone.
  virtual Status write(std::string chunk) = 0;
  virtual void end() = 0;
  // Called once when the connection closes while streaming (or at once if
  // it already has).
  virtual void on_closed(std::function<void()> f) = 0;
  virtual bool closed() const = 0;
};
using ExchangePtr = std::shared_ptr<HttpExchange>;

class KEDGE_EXPORT HttpServer : public std::enable_shared_from_this<HttpServer> {
 public:
  using Handler = std::function<void(ExchangePtr)>;
  struct Options {
    std::chrono::milliseconds handshake_timeout = 10s;
    std::chrono::milliseconds idle_timeout = 90s;  // between requests on a kept-alive connection
    size_t max_body = 3 << 20;                     // Kubernetes' request limit
    size_t max_connections = 4096;
    size_t max_stream_queue = 16 << 20;
  };
  // A null `ctx` serves plain HTTP (for loopback-only APIs).
  static std::shared_ptr<HttpServer> create(boost::asio::any_io_executor ex, SslContext ctx,
                                            Options opts);
  virtual ~HttpServer() = default;
  virtual Status listen(const std::string& address, uint16_t port, Handler handler) = 0;
  virtual uint16_t port() const = 0;
  virtual size_t connections() const = 0;
  virtual void stop() = 0;
};

}  // namespace kedge::net
