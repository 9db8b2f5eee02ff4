#include "kedge/common/http_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <optional>

#include "net_internal.h"

namespace kedge::net {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using detail::net_error;

namespace {

// "[::1]" -> "::1": the resolver wants the bare address.
std::string bare_host(const std::string& host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    return host.substr(1, host.size() - 2);
  return host;
}

// The Host header: an IPv6 address in brackets (RFC 7230 §5.4).
std::string host_header(const std::string& host, uint16_t port) {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

// One request on a connection of its own; Stream is a tcp_stream (plain) or
// an ssl_stream over one (TLS).
template <class Stream>
struct Op : std::enable_shared_from_this<Op<Stream>> {
  template <class... A>
  Op(asio::any_io_executor ex, A&&... stream_args)
      : stream(std::forward<A>(stream_args)...), resolver(ex) {}

  Stream stream;
  tcp::resolver resolver;
  beast::flat_buffer buf;
  http::request<http::string_body> req;
  http::response_parser<http::string_body> parser;
  std::function<void(HttpResult)> done;
  std::string host, where;
  std::chrono::milliseconds timeout{};
  bool verify = false;

  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  void fail(Status s) {
    error_code ignored;
    beast::get_lowest_layer(stream).socket().close(ignored);
    if (auto d = std::move(done)) d({std::move(s), 0, {}});
  }

  void start(uint16_t port) {
    auto self = this->shared_from_this();
    resolver.async_resolve(host, std::to_string(port),
                           [self](error_code ec, tcp::resolver::results_type results) {
                             if (ec)
                               return self->fail(net_error("cannot resolve " + self->host, ec));
                             self->connect(results);
                           });
  }

  void connect(const tcp::resolver::results_type& results) {
    auto self = this->shared_from_this();
    beast::get_lowest_layer(stream).expires_after(timeout);
    beast::get_lowest_layer(stream).async_connect(
        results, [self](error_code ec, const tcp::endpoint&) {
          if (ec) return self->fail(net_error("cannot connect to " + self->where, ec));
          if constexpr (kTls) {
            if (Status s =
                    detail::set_peer_host(self->stream.native_handle(), self->host, self->verify);
                !s)
              return self->fail(s);
            self->stream.async_handshake(ssl::stream_base::client, [self](error_code ec2) {
              if (ec2)
                return self->fail(net_error("TLS handshake with " + self->where + " failed", ec2));
              self->exchange();
            });
          } else {
            self->exchange();
          }
        });
  }

  void exchange() {
    auto self = this->shared_from_this();
    beast::get_lowest_layer(stream).expires_after(timeout);
    http::async_write(stream, req, [self](error_code ec, size_t) {
      if (ec) return self->fail(net_error("cannot send the request to " + self->where, ec));
      http::async_read(self->stream, self->buf, self->parser, [self](error_code ec2, size_t) {
        if (ec2) return self->fail(net_error("cannot read the response of " + self->where, ec2));
        HttpResult r;
        r.http_status = static_cast<int>(self->parser.get().result_int());
        r.body = std::move(self->parser.get().body());
        error_code ignored;
        beast::get_lowest_layer(self->stream).socket().close(ignored);
        if (auto d = std::move(self->done)) d(std::move(r));
      });
    });
  }
};

template <class Stream>
void prepare(Op<Stream>& op, const std::string& host, uint16_t port, HttpRequest&& req,
             std::chrono::milliseconds timeout, size_t max_body,
             std::function<void(HttpResult)>&& on_done) {
  op.done = std::move(on_done);
  op.host = bare_host(host);
  op.where = host_header(op.host, port);
  op.timeout = timeout;
  op.req.method_string(req.method);
  op.req.target(req.target);
  op.req.version(11);
  op.req.set(http::field::host, op.where);
  for (auto& [k, v] : req.headers) op.req.set(k, v);
  op.req.body() = std::move(req.body);
  op.req.prepare_payload();
  op.parser.body_limit(max_body);
}

}  // namespace

void http_request(asio::any_io_executor ex, SslContext ctx, const std::string& host, uint16_t port,
                  HttpRequest req, std::chrono::milliseconds timeout, size_t max_body,
                  std::function<void(HttpResult)> on_done) {
  if (!ctx) {
    auto op = std::make_shared<Op<beast::tcp_stream>>(ex, ex);
    prepare(*op, host, port, std::move(req), timeout, max_body, std::move(on_done));
    op->start(port);
    return;
  }
  using TlsStream = beast::ssl_stream<beast::tcp_stream>;
  auto op = std::make_shared<Op<TlsStream>>(ex, ex, *ctx);
  prepare(*op, host, port, std::move(req), timeout, max_body, std::move(on_done));
  op->verify = SSL_CTX_get_verify_mode(ctx->native_handle()) != SSL_VERIFY_NONE;
  op->start(port);
}

HttpResult http_request_sync(SslContext ctx, const std::string& host, uint16_t port,
                             HttpRequest req, std::chrono::milliseconds timeout, size_t max_body) {
  asio::io_context io;
  std::optional<HttpResult> out;
  http_request(io.get_executor(), std::move(ctx), host, port, std::move(req), timeout, max_body,
               [&](HttpResult r) { out = std::move(r); });
  // The stream's own expiry covers connect, handshake and the exchange; a
  // stuck resolve is bounded here.
  io.run_for(timeout + std::chrono::milliseconds(100));
  if (!out)
    return {{Code::kTimeout, "no answer from " + host_header(bare_host(host), port) + " within " +
                                 std::to_string(timeout.count()) + " ms"},
            0,
            {}};
  return std::move(*out);
}

Status tcp_check(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  std::string bare = bare_host(host), where = host_header(bare, port);
  Status out{Code::kTimeout,
             "no connection to " + where + " within " + std::to_string(timeout.count()) + " ms"};
  resolver.async_resolve(bare, std::to_string(port),
                         [&](error_code ec, tcp::resolver::results_type results) {
                           if (ec) {
                             out = net_error("cannot resolve " + bare, ec);
                             return;
                           }
                           stream.expires_after(timeout);
                           stream.async_connect(results, [&](error_code ec2, const tcp::endpoint&) {
                             out = ec2 ? net_error("cannot connect to " + where, ec2) : Status{};
                           });
                         });
  io.run_for(timeout + std::chrono::milliseconds(100));
  return out;
}

}  // namespace kedge::net
