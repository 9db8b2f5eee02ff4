// HttpServer: HTTPS with keep-alive and chunked streaming (for watches), on
// TlsSocket. One connection reads a request, hands it to the handler as an
// HttpExchange, writes the answer, and reads the next one.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <deque>
#include <optional>
#include <set>
#include <sstream>

#include "kedge/common/net.h"
#include "kedge/common/pki.h"
#include "net_internal.h"
#include "tls_socket.h"

namespace kedge::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

class Conn;

// What the server and its connections share; connections may outlive the
// server object (a watch still streaming when the plugin stops).
struct Shared {
  HttpServer::Options opts;
  HttpServer::Handler handler;
  std::set<Conn*> conns;
};

class Exchange final : public HttpExchange {
 public:
  Exchange(std::shared_ptr<Conn> c, HttpRequest r, bool keep_alive, unsigned version)
      : conn_(std::move(c)), req_(std::move(r)), keep_alive_(keep_alive), version_(version) {}
  const HttpRequest& request() const override { return req_; }
  void reply(HttpResponse r) override;
  void begin_stream(int status, const std::string& content_type) override;
  Status write(std::string chunk) override;
  void end() override;
  void on_closed(std::function<void()> f) override;
  bool closed() const override;

  std::shared_ptr<Conn> conn_;
  HttpRequest req_;
  bool keep_alive_;
  unsigned version_;
  bool answered_ = false, streaming_ = false, ended_ = false;
};

class Conn final : public std::enable_shared_from_this<Conn> {
 public:
  // ctx null: plain HTTP.
  Conn(tcp::socket s, asio::ssl::context* ctx, std::shared_ptr<Shared> shared)
      : tls_(ctx ? TlsSocket(std::move(s), *ctx) : TlsSocket(std::move(s), nullptr)),
        timer_(tls_.get_executor()),
        shared_(std::move(shared)),
        opts_(shared_->opts) {
    shared_->conns.insert(this);
  }

  ~Conn() { shared_->conns.erase(this); }

  void start() {
    if (tls_.attach()) return close();
    arm(opts_.handshake_timeout);
    tls_.async_handshake(asio::ssl::stream_base::server,
                         [self = shared_from_this()](error_code ec) {
                           if (ec) return self->close();
                           if (self->tls_.native_handle())
                             self->cn_ = detail::verified_peer_cn(self->tls_.native_handle());
                           self->read_request();
                         });
  }

  // ---- used by Exchange ----
  void send(std::string bytes, bool last_of_exchange, bool keep_alive) {
    if (closed_) return;
    queue_.push_back({std::move(bytes), last_of_exchange, keep_alive});
    queued_ += queue_.back().bytes.size();
    if (!writing_) write_next();
  }
  size_t queued() const { return queued_; }
  bool closed() const { return closed_; }
  void on_closed(std::function<void()> f) {
    if (closed_) {
      asio::post(tls_.get_executor(), std::move(f));
      return;
    }
    on_closed_ = std::move(f);
  }
  // While a stream is open, a read notices the peer going away.
  void watch_peer() {
    tls_.async_read_some(asio::buffer(probe_), [self = shared_from_this()](error_code ec, size_t) {
      if (ec) self->close();
      // Data from a streaming client is ignored; keep watching.
      else if (!self->closed_)
        self->watch_peer();
    });
  }
  const HttpServer::Options& opts() const { return opts_; }

  // After refusing a request whose body is still arriving: stop sending,
  // read and drop what the client still sends (up to 2 s), then close, so
  // the client gets to read the answer instead of a reset.
  bool linger = false;
  void linger_close() {
    error_code ec;
    tls_.next_layer().shutdown(tcp::socket::shutdown_send, ec);
    arm(std::chrono::milliseconds(2000));
    drain();
  }
  void drain() {
    tls_.next_layer().async_read_some(asio::buffer(probe_),
                                      [self = shared_from_this()](error_code ec, size_t) {
                                        if (ec || self->closed_) return self->close();
                                        self->drain();
                                      });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    error_code ec;
    tls_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
    tls_.next_layer().close(ec);
    if (auto f = std::move(on_closed_)) f();
  }

 private:
  struct Out {
    std::string bytes;
    bool last;  // the exchange's answer is complete after it
    bool keep_alive;
  };

  void arm(std::chrono::milliseconds t) {
    timer_.expires_after(t);
    timer_.async_wait([w = weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto self = w.lock()) self->close();
    });
  }

  void read_request() {
    parser_.emplace();
    parser_->body_limit(opts_.max_body);
    parser_->header_limit(64 * 1024);
    arm(opts_.idle_timeout);
    http::async_read(tls_, buf_, *parser_, [self = shared_from_this()](error_code ec, size_t) {
      self->timer_.cancel();
      if (ec == http::error::body_limit) {
        self->linger = true;
        self->send(error_response(413, "request body larger than " +
                                           std::to_string(self->opts_.max_body) + " bytes"),
                   true, false);
        return;
      }
      // A head over 64 KiB (a huge URL or header), or what is not HTTP: an
      // answer that says so, then the connection closes.
      if (ec == http::error::header_limit) {
        self->linger = true;
        self->send(error_response(431, "request head (URL and headers) larger than 65536 bytes"),
                   true, false);
        return;
      }
      if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message) {
        self->linger = true;
        self->send(error_response(400, "malformed HTTP request: " + ec.message()), true, false);
        return;
      }
      if (ec) return self->close();
      self->dispatch();
    });
  }

  static std::string error_response(int status, const std::string& text) {
    http::response<http::string_body> r(static_cast<http::status>(status), 11);
    r.set(http::field::content_type, "text/plain");
    r.set(http::field::connection, "close");
    r.body() = text + "\n";
    r.prepare_payload();
    std::ostringstream o;
    o << r;
    return o.str();
  }

  void dispatch() {
    auto& m = parser_->get();
    HttpRequest req;
    req.method = std::string(m.method_string());
    req.target = std::string(m.target());
    for (auto& f : m)
      req.headers[detail::lower(std::string(f.name_string()))] = std::string(f.value());
    req.body = std::move(m.body());
    req.peer_cert_cn = cn_;
    auto ex =
        std::make_shared<Exchange>(shared_from_this(), std::move(req), m.keep_alive(), m.version());
    if (shared_->handler) shared_->handler(ex);
  }

  void write_next() {
    writing_ = true;
    asio::async_write(tls_, asio::buffer(queue_.front().bytes),
                      [self = shared_from_this()](error_code ec, size_t) {
                        self->writing_ = false;
                        Out done = std::move(self->queue_.front());
                        self->queue_.pop_front();
                        self->queued_ -= done.bytes.size();
                        if (ec) return self->close();
                        if (done.last) {
                          if (!done.keep_alive)
                            return self->linger ? self->linger_close() : self->close();
                          self->read_request();
                        }
                        if (!self->queue_.empty() && !self->closed_) self->write_next();
                      });
  }

  TlsSocket tls_;
  asio::steady_timer timer_;
  std::shared_ptr<Shared> shared_;
  const HttpServer::Options& opts_;
  std::string cn_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::deque<Out> queue_;
  size_t queued_ = 0;
  bool writing_ = false, closed_ = false;
  std::function<void()> on_closed_;
  char probe_[512];
};

std::string head(unsigned version, int status, const std::string& content_type, bool keep_alive,
                 const std::string* body) {
  http::response<http::empty_body> r(static_cast<http::status>(status), version);
  r.set(http::field::content_type, content_type);
  if (body)
    r.content_length(body->size());
  else
    r.chunked(true);
  r.keep_alive(keep_alive);
  http::response_serializer<http::empty_body> sr(r);
  std::ostringstream o;
  o << r.base();
  return o.str();
}

void Exchange::reply(HttpResponse r) {
  if (answered_) return;
  answered_ = true;
  std::string out = head(version_, r.status, r.content_type, keep_alive_, &r.body) + r.body;
  conn_->send(std::move(out), true, keep_alive_);
}

void Exchange::begin_stream(int status, const std::string& content_type) {
  if (answered_) return;
  answered_ = streaming_ = true;
  conn_->send(head(version_, status, content_type, false, nullptr), false, false);
  conn_->watch_peer();
}

Status Exchange::write(std::string chunk) {
  if (!streaming_ || ended_) return {Code::kFailedPrecondition, "not streaming"};
  if (conn_->closed()) return {Code::kUnavailable, "the client has gone"};
  if (conn_->queued() > conn_->opts().max_stream_queue)
    return {Code::kFull,
            "the client reads too slowly (" + std::to_string(conn_->queued()) + " bytes waiting)"};
  if (chunk.empty()) return {};
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  conn_->send(size + chunk + "\r\n", false, false);
  return {};
}

void Exchange::end() {
  if (!streaming_ || ended_) return;
  ended_ = true;
  conn_->send("0\r\n\r\n", true, false);  // streams close their connection
}

void Exchange::on_closed(std::function<void()> f) { conn_->on_closed(std::move(f)); }
bool Exchange::closed() const { return conn_->closed(); }

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(asio::any_io_executor ex, SslContext ctx, Options opts)
      : ex_(ex), ctx_(std::move(ctx)), shared_(std::make_shared<Shared>()), acceptor_(ex) {
    shared_->opts = opts;
  }

  Status listen(const std::string& address, uint16_t port, Handler handler) override {
    shared_->handler = std::move(handler);
    if (Status s = detail::open_acceptor(acceptor_, address, port); !s) return s;
    accept();
    return {};
  }
  uint16_t port() const override {
    error_code ec;
    return acceptor_.local_endpoint(ec).port();
  }
  size_t connections() const override { return shared_->conns.size(); }
  // Closes the listener and every connection (streams end; their owners get
  // on_closed). Call on the server's executor.
  void stop() override {
    stopped_ = true;
    error_code ec;
    acceptor_.close(ec);
    shared_->handler = nullptr;
    std::vector<std::shared_ptr<Conn>> live;
    for (Conn* c : shared_->conns)
      if (auto p = c->weak_from_this().lock()) live.push_back(p);
    for (auto& c : live) c->close();
  }

 private:
  void accept() {
    acceptor_.async_accept(ex_, [self = shared(), this](error_code ec, tcp::socket sock) {
      if (stopped_) return;
      if (ec) {  // out of descriptors, say: do not spin
        auto t = std::make_shared<asio::steady_timer>(ex_, std::chrono::milliseconds(100));
        t->async_wait([self, this, t](error_code) {
          if (!stopped_) accept();
        });
        return;
      }
      if (shared_->conns.size() >= shared_->opts.max_connections) {
        error_code ignore;
        sock.close(ignore);
      } else {
        std::make_shared<Conn>(std::move(sock), ctx_.get(), shared_)->start();
      }
      accept();
    });
  }
  std::shared_ptr<HttpServerImpl> shared() {
    return std::static_pointer_cast<HttpServerImpl>(shared_from_this());
  }

  asio::any_io_executor ex_;
  SslContext ctx_;
  std::shared_ptr<Shared> shared_;
  tcp::acceptor acceptor_;
  bool stopped_ = false;
};

}  // namespace

std::shared_ptr<HttpServer> HttpServer::create(asio::any_io_executor ex, SslContext ctx,
                                               Options opts) {
  return std::make_shared<HttpServerImpl>(ex, std::move(ctx), opts);
}

}  // namespace kedge::net
