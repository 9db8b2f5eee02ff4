// TlsSocket: TLS over a TCP socket with OpenSSL doing the socket I/O itself
// (SSL_set_fd, non-blocking), driven by Asio readiness waits.
//
// Why not asio::ssl::stream: it keeps four 17 KiB buffers per connection for
// its whole life (two in its stream core and a BIO pair), ~70 KiB per idle
// connection. Here OpenSSL's own record buffers are the only ones, and with
// SSL_MODE_RELEASE_BUFFERS they are freed while the connection is idle, which
// is the common state of an edge node's channel. Used for the WebSocket
// channel; short-lived HTTPS requests keep asio::ssl::stream.
//
// Models Asio's AsyncReadStream and AsyncWriteStream (for Beast's websocket
// and http), with handshake and Beast's websocket teardown.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cerrno>
#include <string>
#include <utility>

namespace kedge::net {

class TlsSocket {
 public:
  using executor_type = boost::asio::any_io_executor;
  using next_layer_type = boost::asio::ip::tcp::socket;
  using lowest_layer_type = next_layer_type;

  // A connected socket (server side).
  TlsSocket(next_layer_type sock, boost::asio::ssl::context& ctx)
      : sock_(std::move(sock)), ssl_(SSL_new(ctx.native_handle())) {
    setup();
  }
  // Plain TCP through the same interface (no TLS at all): for servers that
  // serve plain HTTP on loopback.
  TlsSocket(next_layer_type sock, std::nullptr_t) : sock_(std::move(sock)), ssl_(nullptr) {}
  // A socket to connect; call attach() once it is connected.
  TlsSocket(const executor_type& ex, boost::asio::ssl::context& ctx)
      : sock_(ex), ssl_(SSL_new(ctx.native_handle())) {
    setup();
  }
  TlsSocket(TlsSocket&& o) noexcept
      : sock_(std::move(o.sock_)), ssl_(std::exchange(o.ssl_, nullptr)) {}
  TlsSocket& operator=(TlsSocket&&) = delete;
  TlsSocket(const TlsSocket&) = delete;
  ~TlsSocket() {
    if (ssl_) SSL_free(ssl_);
  }

  executor_type get_executor() { return sock_.get_executor(); }
  next_layer_type& next_layer() { return sock_; }
  next_layer_type& lowest_layer() { return sock_; }
  SSL* native_handle() { return ssl_; }

  // Binds the TLS session to the socket's descriptor (after connect/accept).
  boost::system::error_code attach() {
    boost::system::error_code ec;
    sock_.non_blocking(true, ec);
    if (ec) return ec;
    // Messages go out as they are written (Nagle would hold small frames
    // back until the previous one is ACKed, halving the message rate).
    sock_.set_option(boost::asio::ip::tcp::no_delay(true), ec);
    if (ec || !ssl_) return ec;
    BIO* bio = BIO_new(socket_bio());
    if (!bio) return boost::asio::error::no_memory;
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(sock_.native_handle())));
    SSL_set_bio(ssl_, bio, bio);
    return ec;
  }

  template <class Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, Token&& token) {
    if (!ssl_)
      return boost::asio::post(sock_.get_executor(),
                               [h = std::forward<Token>(token)]() mutable { h({}); });
    if (type == boost::asio::ssl::stream_base::client)
      SSL_set_connect_state(ssl_);
    else
      SSL_set_accept_state(ssl_);
    return start<false>(
        [](SSL* ssl, size_t& n) {
          n = 0;
          return SSL_do_handshake(ssl);
        },
        std::forward<Token>(token));
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (!ssl_) return sock_.async_read_some(buffers, std::forward<Token>(token));
    boost::asio::mutable_buffer b;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it)
      if ((*it).size()) {
        b = *it;
        break;
      }
    return start(
        [b](SSL* ssl, size_t& n) {
          if (b.size() == 0) return 1;
          return SSL_read_ex(ssl, b.data(), b.size(), &n);
        },
        std::forward<Token>(token));
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (!ssl_) return sock_.async_write_some(buffers, std::forward<Token>(token));
    // One TLS record per call: small pieces (a frame header and its payload)
    // are gathered into one, up to a record's size.
    const size_t kRecord = 16 * 1024;
    auto it = boost::asio::buffer_sequence_begin(buffers);
    auto end = boost::asio::buffer_sequence_end(buffers);
    while (it != end && boost::asio::buffer_size(*it) == 0) ++it;
    boost::asio::const_buffer first =
        it != end ? boost::asio::const_buffer(*it) : boost::asio::const_buffer();
    std::string gathered;
    if (it != end && first.size() < kRecord && std::next(it) != end) {
      for (; it != end && gathered.size() < kRecord; ++it) {
        size_t take = std::min(boost::asio::buffer_size(*it), kRecord - gathered.size());
        gathered.append(static_cast<const char*>((*it).data()), take);
      }
    }
    return start(
        [first, gathered = std::move(gathered), kRecord](SSL* ssl, size_t& n) {
          const void* p = gathered.empty() ? first.data() : gathered.data();
          size_t len = gathered.empty() ? std::min(first.size(), kRecord) : gathered.size();
          if (len == 0) return 1;
          return SSL_write_ex(ssl, p, len, &n);
        },
        std::forward<Token>(token));
  }

  // Sends close_notify if the socket takes it now (best effort, never waits).
  void notify_close() {
    if (!ssl_ || !SSL_is_init_finished(ssl_)) return;
    ERR_clear_error();
    (void)SSL_shutdown(ssl_);
    ERR_clear_error();
  }

 private:
  void setup() {
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                           SSL_MODE_RELEASE_BUFFERS);
    SSL_set_options(ssl_, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_set_read_ahead(ssl_, 1);  // one recv per record, not two
  }

  // Runs `io` until it succeeds or fails, waiting for the socket between
  // tries. Completes with (error_code) for the handshake, with
  // (error_code, bytes) for reads and writes; never inside the initiating call.
  template <bool WithSize = true, class Io, class Token>
  auto start(Io io, Token&& token) {
    using Signature = std::conditional_t<WithSize, void(boost::system::error_code, size_t),
                                         void(boost::system::error_code)>;
    return boost::asio::async_compose<Token, Signature>(
        Op<Io, WithSize>{this, std::move(io), 0, {}, 0}, token, sock_);
  }

  template <class Io, bool WithSize>
  struct Op {
    TlsSocket* s;
    Io io;
    int state = 0;  // 0: first try, 1: after a wait, 2: completing (posted)
    boost::system::error_code result;
    size_t bytes = 0;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (state == 2) return done(self, result, bytes);
      if (ec) return finish(self, ec, 0);
      ERR_clear_error();
      size_t n = 0;
      int r = io(s->ssl_, n);
      if (r > 0) return finish(self, {}, n);
      int err = SSL_get_error(s->ssl_, r);
      int sys = errno;
      switch (err) {
        case SSL_ERROR_WANT_READ:
          state = 1;
          return s->sock_.async_wait(next_layer_type::wait_read, std::move(self));
        case SSL_ERROR_WANT_WRITE:
          state = 1;
          return s->sock_.async_wait(next_layer_type::wait_write, std::move(self));
        case SSL_ERROR_ZERO_RETURN: return finish(self, boost::asio::error::eof, 0);
        case SSL_ERROR_SYSCALL:
          if (unsigned long e = ERR_get_error())
            return finish(self, {static_cast<int>(e), boost::asio::error::get_ssl_category()}, 0);
          return finish(self,
                        sys ? boost::system::error_code(sys, boost::system::system_category())
                            : boost::system::error_code(boost::asio::error::eof),
                        0);
        default: {
          unsigned long e = ERR_get_error();
          return finish(self,
                        e ? boost::system::error_code(static_cast<int>(e),
                                                      boost::asio::error::get_ssl_category())
                          : boost::system::error_code(boost::asio::error::connection_aborted),
                        0);
        }
      }
    }

    template <class Self>
    void finish(Self& self, boost::system::error_code ec, size_t n) {
      if (state == 1) return done(self, ec, n);
      state = 2;  // completed at once: complete from the executor, not inline
      result = ec;
      bytes = n;
      boost::asio::post(s->sock_.get_executor(), std::move(self));
    }

    template <class Self>
    static void done(Self& self, boost::system::error_code ec, size_t n) {
      if constexpr (WithSize)
        self.complete(ec, n);
      else
        self.complete(ec);
    }
  };

  // OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE on a
  // reset connection; this one uses send(MSG_NOSIGNAL), as Asio does.
  static BIO_METHOD* socket_bio() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kedge socket");
      BIO_meth_set_write_ex(m, [](BIO* b, const char* data, size_t len, size_t* done) -> int {
        BIO_clear_retry_flags(b);
        ssize_t n = ::send(fd_of(b), data, len, MSG_NOSIGNAL);
        if (n >= 0) {
          *done = static_cast<size_t>(n);
          return 1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
        return 0;
      });
      BIO_meth_set_read_ex(m, [](BIO* b, char* data, size_t len, size_t* done) -> int {
        BIO_clear_retry_flags(b);
        ssize_t n = ::recv(fd_of(b), data, len, 0);
        if (n > 0) {
          *done = static_cast<size_t>(n);
          return 1;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
          BIO_set_retry_read(b);
        return 0;  // n == 0: end of stream
      });
      BIO_meth_set_ctrl(
          m, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
      BIO_meth_set_create(m, [](BIO* b) -> int {
        BIO_set_init(b, 1);
        return 1;
      });
      return m;
    }();
    return method;
  }
  static int fd_of(BIO* b) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))); }

  next_layer_type sock_;
  SSL* ssl_;
};

// Beast's websocket close: close_notify, then the TCP teardown.
inline void teardown(boost::beast::role_type role, TlsSocket& s, boost::system::error_code& ec) {
  s.notify_close();
  boost::beast::websocket::teardown(role, s.next_layer(), ec);
}

template <class Handler>
void async_teardown(boost::beast::role_type role, TlsSocket& s, Handler&& handler) {
  s.notify_close();
  boost::beast::websocket::async_teardown(role, s.next_layer(), std::forward<Handler>(handler));
}

}  // namespace kedge::net
