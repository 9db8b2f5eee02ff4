#include "kedge/common/net.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "kedge/common/pki.h"
#include "net_internal.h"
#include "tls_socket.h"

namespace kedge::net {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
// The channel's WebSocket runs on TlsSocket (tls_socket.h: no per-connection
// buffers while idle); the short-lived HTTPS exchanges on asio's ssl::stream.
using WsStream = websocket::stream<TlsSocket>;

using detail::lower;
using detail::net_error;
using detail::open_acceptor;
using detail::verified_peer_cn;

namespace {

// Common TLS settings: TLS 1.2 minimum; TLS 1.2 limited to KubeEdge's suite.
Status base_settings(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  // Idle connections give their TLS record buffers back (~34 KiB each).
  SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx.native_handle(), "ECDHE-ECDSA-AES128-GCM-SHA256") != 1)
    return internal_error("cannot set the TLS 1.2 cipher suite");
  return {};
}

Status load_identity(ssl::context& ctx, const TlsMaterial& m) {
  error_code ec;
  if (!m.cert_pem.empty()) {
    ctx.use_certificate_chain(asio::buffer(m.cert_pem), ec);
    if (ec) return invalid_argument("TLS certificate is not usable: " + ec.message());
    ctx.use_private_key(asio::buffer(m.key_pem), ssl::context::pem, ec);
    if (ec) return invalid_argument("TLS private key is not usable: " + ec.message());
  }
  if (!m.ca_pem.empty()) {
    ctx.add_certificate_authority(asio::buffer(m.ca_pem), ec);
    if (ec) return invalid_argument("TLS CA certificate is not usable: " + ec.message());
  }
  return {};
}

std::string remote_of(const tcp::socket& s) {
  error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

class WsConnImpl final : public WsConnection {
 public:
  WsConnImpl(TlsSocket&& tls, WsOptions opts) : ws_(std::move(tls)), opts_(opts) { configure(); }
  WsConnImpl(asio::any_io_executor ex, ssl::context& ctx, WsOptions opts)
      : ws_(ex, ctx), opts_(opts) {
    configure();
  }

  void configure() {
    ws_.read_message_max(0);  // the frame limit is enforced in on_read, with a clear message
    ws_.auto_fragment(false);
    ws_.text(true);
  }

  void start(OnText on_text, OnClose on_close) override {
    on_text_ = std::move(on_text);
    on_close_ = std::move(on_close);
    read();
  }

  Status send(std::string text) override {
    if (!open_) return {Code::kUnavailable, "connection is closed"};
    if (!queue_.empty() && queued_ + text.size() > opts_.max_queued_bytes)
      return {Code::kFull, "write queue is full (" + std::to_string(queued_) + " bytes waiting)"};
    queued_ += text.size();
    queue_.push_back(std::move(text));
    if (!writing_) write_next();
    return {};
  }

  void close(const Status& why) override { close_with(websocket::close_code::going_away, why); }

  void close_with(websocket::close_code code, const Status& why) {
    if (!open_) return;
    open_ = false;
    auto self = me();
    if (!writing_ && ws_.is_open()) {
      std::string reason = why.message().substr(0, 120);  // a close frame holds 123 bytes
      ws_.async_close(websocket::close_reason(code, reason),
                      [self](error_code) { self->shutdown(); });
    } else {
      shutdown();
    }
    if (on_finish_) on_finish_();
    on_finish_ = nullptr;
    if (auto cb = std::move(on_close_)) {
      on_close_ = nullptr;
      on_text_ = nullptr;
      asio::post(ws_.get_executor(), [cb = std::move(cb), why, self] { cb(why); });
    }
  }

  bool open() const override { return open_; }
  size_t queued_bytes() const override { return queued_; }
  const PeerInfo& peer() const override { return peer_; }

  WsStream& stream() { return ws_; }
  std::shared_ptr<WsConnImpl> me() {
    return std::static_pointer_cast<WsConnImpl>(shared_from_this());
  }
  PeerInfo peer_;
  std::function<void()> on_finish_;  // the server's connection count

 private:
  void shutdown() {
    error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }

 public:
  tcp::socket& socket() { return ws_.next_layer().next_layer(); }

 private:
  // Reads in pieces so that an oversized message is refused as soon as it
  // passes the limit, before it is buffered whole.
  void read() {
    ws_.async_read_some(buf_, 4096, [self = me()](error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (ec) {
      if (ec == websocket::error::closed)
        close({Code::kUnavailable,
               "peer closed the connection: " + std::string(ws_.reason().reason.c_str())});
      else if (ec == beast::error::timeout)
        close({Code::kTimeout, "peer silent for " + std::to_string(opts_.idle_timeout.count()) +
                                   " ms (dead or half-open link)"});
      else
        close(net_error("read failed", ec));
      return;
    }
    if (buf_.size() > opts_.max_frame) {
      close_with(websocket::close_code::too_big,
                 {Code::kInvalidArgument,
                  "frame larger than the limit of " + std::to_string(opts_.max_frame) + " bytes"});
      return;
    }
    if (ws_.is_message_done()) {
      std::string text = beast::buffers_to_string(buf_.data());
      buf_.consume(buf_.size());
      if (buf_.capacity() > 16 * 1024) buf_.shrink_to_fit();  // idle nodes keep little
      if (on_text_) on_text_(std::move(text));
    }
    if (open_) read();
  }

  void write_next() {
    writing_ = true;
    ws_.async_write(asio::buffer(queue_.front()),
                    [self = me()](error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(error_code ec) {
    writing_ = false;
    queued_ -= queue_.front().size();
    queue_.pop_front();
    if (ec) {
      close(net_error("write failed", ec));
      return;
    }
    if (!open_) {  // closed while writing: finish with the close frame
      shutdown();
      return;
    }
    if (!queue_.empty()) write_next();
  }

  WsStream ws_;
  WsOptions opts_;
  beast::flat_buffer buf_;
  std::deque<std::string> queue_;
  size_t queued_ = 0;
  bool writing_ = false;
  bool open_ = true;
  OnText on_text_;
  OnClose on_close_;
};

void set_ws_timeouts(WsStream& ws, const WsOptions& o) {
  websocket::stream_base::timeout t;
  t.handshake_timeout = o.handshake_timeout;
  t.idle_timeout = o.idle_timeout;
  t.keep_alive_pings = true;
  ws.set_option(t);
}

void write_refusal(std::shared_ptr<TlsSocket> s, int status, const std::string& reason,
                   std::function<void()> done) {
  auto res =
      std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
  res->set(http::field::content_type, "text/plain");
  res->set(http::field::connection, "close");
  res->body() = reason + "\n";
  res->prepare_payload();
  http::async_write(*s, *res, [s, res, done](error_code, size_t) {
    error_code ec;
    s->notify_close();
    s->next_layer().shutdown(tcp::socket::shutdown_both, ec);
    s->next_layer().close(ec);
    done();
  });
}

class WsServerImpl final : public WsServer {
 public:
  WsServerImpl(asio::any_io_executor ex, SslContext ctx, Options opts)
      : ex_(ex), ctx_(std::move(ctx)), opts_(opts), acceptor_(ex) {}

  Status listen(const std::string& address, uint16_t port, Admit admit,
                OnConnection on_connection) override {
    admit_ = std::move(admit);
    on_connection_ = std::move(on_connection);
    if (Status s = open_acceptor(acceptor_, address, port); !s) return s;
    accept();
    return {};
  }

  uint16_t port() const override {
    error_code ec;
    return acceptor_.local_endpoint(ec).port();
  }
  size_t connections() const override { return connections_; }
  void stop() override {
    stopped_ = true;
    error_code ec;
    acceptor_.close(ec);
    waiting_.clear();
  }

 private:
  void accept() {
    acceptor_.async_accept(ex_, [self = shared(), this](error_code ec, tcp::socket sock) {
      if (stopped_) return;
      if (ec) return accept_later();  // out of descriptors, say: do not spin
      {
        if (waiting_.size() >= opts_.max_waiting) {
          error_code ignore;
          sock.close(ignore);  // overload: the client retries with back-off
        } else {
          waiting_.push_back(std::move(sock));
          pump();
        }
      }
      accept();
    });
  }

  void accept_later() {
    auto t = std::make_shared<asio::steady_timer>(ex_, std::chrono::milliseconds(100));
    t->async_wait([self = shared(), this, t](error_code) {
      if (!stopped_) accept();
    });
  }

  // Starts handshakes while slots are free: a reconnect storm queues here
  // instead of starving established connections of CPU.
  void pump() {
    while (handshaking_ < opts_.max_handshakes && !waiting_.empty()) {
      tcp::socket sock = std::move(waiting_.front());
      waiting_.pop_front();
      ++handshaking_;
      handshake(std::move(sock));
    }
  }

  void handshake_done() {
    --handshaking_;
    if (!stopped_) pump();
  }

  struct Pending {
    explicit Pending(tcp::socket s, ssl::context& ctx)
        : tls(std::move(s), ctx), deadline(tls.get_executor()) {}
    TlsSocket tls;
    asio::steady_timer deadline;  // TLS handshake and upgrade request
    beast::flat_buffer buf;
    http::request_parser<http::empty_body> parser;
  };

  void handshake(tcp::socket sock) {
    auto p = std::make_shared<Pending>(std::move(sock), *ctx_);
    if (p->tls.attach()) return handshake_done();
    p->deadline.expires_after(opts_.ws.handshake_timeout);
    p->deadline.async_wait([p](error_code ec) {
      error_code ignore;
      if (!ec) p->tls.next_layer().close(ignore);  // too slow: the pending step fails
    });
    p->tls.async_handshake(ssl::stream_base::server, [self = shared(), this, p](error_code ec) {
      if (ec) {
        p->deadline.cancel();
        return handshake_done();
      }
      p->parser.body_limit(0);
      p->parser.header_limit(16 * 1024);
      http::async_read(p->tls, p->buf, p->parser, [self, this, p](error_code ec2, size_t) {
        p->deadline.cancel();
        if (ec2) return handshake_done();
        auto& req = p->parser.get();
        if (!websocket::is_upgrade(req)) {
          auto s = std::shared_ptr<TlsSocket>(p, &p->tls);
          return write_refusal(s, 400, "expected a WebSocket upgrade",
                               [self, this] { handshake_done(); });
        }
        PeerInfo peer;
        peer.remote = remote_of(p->tls.next_layer());
        peer.cert_cn = verified_peer_cn(p->tls.native_handle());
        peer.target = std::string(req.target());
        for (auto& f : req)
          peer.headers[lower(std::string(f.name_string()))] = std::string(f.value());
        Admission a = connections_ >= opts_.max_connections
                          ? Admission::refuse(503, "connection limit reached (" +
                                                       std::to_string(opts_.max_connections) + ")")
                          : admit_(peer);
        if (a.http_status) {
          auto s = std::shared_ptr<TlsSocket>(p, &p->tls);
          return write_refusal(s, a.http_status, a.reason, [self, this] { handshake_done(); });
        }
        auto conn = std::make_shared<WsConnImpl>(std::move(p->tls), opts_.ws);
        conn->peer_ = std::move(peer);
        set_ws_timeouts(conn->stream(), opts_.ws);
        conn->stream().async_accept(req, [self, this, conn](error_code ec3) {
          handshake_done();
          if (ec3 || stopped_) return;
          ++connections_;
          std::weak_ptr<WsServerImpl> weak = shared();
          conn->on_finish_ = [weak] {
            if (auto s = weak.lock()) --s->connections_;
          };
          on_connection_(conn);
        });
      });
    });
  }

  std::shared_ptr<WsServerImpl> shared() {
    return std::static_pointer_cast<WsServerImpl>(shared_from_this());
  }

  asio::any_io_executor ex_;
  SslContext ctx_;
  Options opts_;
  tcp::acceptor acceptor_;
  Admit admit_;
  OnConnection on_connection_;
  std::deque<tcp::socket> waiting_;
  size_t handshaking_ = 0;
  size_t connections_ = 0;
  bool stopped_ = false;
};

}  // namespace

SslContextResult server_context(const TlsMaterial& m, ClientCert mode) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  if (Status s = base_settings(*ctx); !s) return {s, nullptr};
  if (m.cert_pem.empty()) return {invalid_argument("a TLS server needs a certificate"), nullptr};
  if (Status s = load_identity(*ctx, m); !s) return {s, nullptr};
  switch (mode) {
    case ClientCert::kNone: ctx->set_verify_mode(ssl::verify_none); break;
    case ClientCert::kOptional: ctx->set_verify_mode(ssl::verify_peer); break;
    case ClientCert::kRequired:
      ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
      break;
  }
  return {{}, ctx};
}

SslContextResult client_context(const TlsMaterial& m, bool verify) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (Status s = base_settings(*ctx); !s) return {s, nullptr};
  if (Status s = load_identity(*ctx, m); !s) return {s, nullptr};
  ctx->set_verify_mode(verify ? ssl::verify_peer : ssl::verify_none);
  return {{}, ctx};
}

std::shared_ptr<WsServer> WsServer::create(asio::any_io_executor ex, SslContext ctx, Options opts) {
  return std::make_shared<WsServerImpl>(ex, std::move(ctx), opts);
}

void ws_connect(asio::any_io_executor ex, SslContext ctx, const std::string& host, uint16_t port,
                const std::string& target, std::map<std::string, std::string> headers,
                const WsClientOptions& opts, std::function<void(Status, WsPtr)> on_done) {
  struct Op {
    Op(asio::any_io_executor e, ssl::context& c, const WsOptions& o)
        : conn(std::make_shared<WsConnImpl>(e, c, o)), resolver(e), deadline(e) {}
    std::shared_ptr<WsConnImpl> conn;
    tcp::resolver resolver;
    asio::steady_timer deadline;  // resolve, connect and TLS handshake
    std::function<void(Status, WsPtr)> done;
    void fail(Status s) {
      deadline.cancel();
      error_code ec;
      conn->socket().close(ec);
      if (auto d = std::move(done)) d(std::move(s), nullptr);
    }
  };
  auto op = std::make_shared<Op>(ex, *ctx, opts.ws);
  op->done = std::move(on_done);
  std::string where = host + ":" + std::to_string(port);
  op->deadline.expires_after(opts.connect_timeout);
  op->deadline.async_wait([op](error_code ec) {
    if (ec) return;
    op->resolver.cancel();
    error_code ignore;
    op->conn->socket().close(ignore);  // the pending step fails with operation_aborted
  });
  bool verify = SSL_CTX_get_verify_mode(ctx->native_handle()) != SSL_VERIFY_NONE;
  auto timed_out = [op] { return op->deadline.expiry() <= asio::steady_timer::clock_type::now(); };
  op->resolver.async_resolve(
      host, std::to_string(port), [=](error_code ec, tcp::resolver::results_type results) {
        if (ec) return op->fail(net_error("cannot resolve " + host, ec));
        asio::async_connect(op->conn->socket(), results, [=](error_code ec2, const tcp::endpoint&) {
          if (ec2)
            return op->fail(net_error("cannot connect to " + where,
                                      timed_out() ? error_code(asio::error::timed_out) : ec2));
          TlsSocket& tls = op->conn->stream().next_layer();
          if (error_code ec3 = tls.attach()) return op->fail(net_error("socket setup", ec3));
          if (Status s = detail::set_peer_host(tls.native_handle(), host, verify); !s)
            return op->fail(s);
          tls.async_handshake(ssl::stream_base::client, [=](error_code ec4) {
            if (ec4)
              return op->fail(net_error("TLS handshake with " + where + " failed",
                                        timed_out() ? error_code(asio::error::timed_out) : ec4));
            op->deadline.cancel();
            auto conn = op->conn;
            set_ws_timeouts(conn->stream(), opts.ws);
            conn->stream().set_option(
                websocket::stream_base::decorator([headers](websocket::request_type& req) {
                  for (auto& [k, v] : headers) req.set(k, v);
                }));
            conn->stream().async_handshake(where, target, [op](error_code ec5) {
              if (ec5) return op->fail(net_error("WebSocket handshake failed", ec5));
              if (auto d = std::move(op->done)) d({}, op->conn);
            });
          });
        });
      });
}

}  // namespace kedge::net
