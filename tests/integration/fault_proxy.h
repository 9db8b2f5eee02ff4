// A fault-injecting TCP proxy for tests: forwards 127.0.0.1:port() to a
// target port, and on command cuts every connection, black-holes the link
// (sockets stay open, bytes vanish both ways: a half-open link), or delays
// forwarding. Runs its own I/O thread.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <list>
#include <memory>
#include <thread>

namespace kedge::testing {

class FaultProxy {
 public:
  explicit FaultProxy(uint16_t target)
      : target_(target), acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FaultProxy() {
    run([this] {
      acceptor_.close();
      close_all();
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // Closes every proxied connection now.
  void cut() {
    run([this] { close_all(); });
    ++cuts_;
  }
  // While on, bytes are read and dropped in both directions.
  void blackhole(bool on) { blackhole_ = on; }
  int cuts() const { return cuts_; }

 private:
  using tcp = boost::asio::ip::tcp;
  struct Link {
    explicit Link(boost::asio::io_context& io) : a(io), b(io) {}
    tcp::socket a, b;  // client side, target side
    char buf_ab[16384], buf_ba[16384];
  };

  template <class F>
  void run(F f) {
    std::promise<void> p;
    boost::asio::post(io_, [&] {
      f();
      p.set_value();
    });
    p.get_future().wait();
  }

  void close_all() {
    for (auto& w : links_)
      if (auto l = w.lock()) {
        boost::system::error_code ec;
        l->a.close(ec);
        l->b.close(ec);
      }
    links_.clear();
  }

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      auto l = std::make_shared<Link>(io_);
      l->a = std::move(s);
      links_.push_back(l);
      l->b.async_connect({boost::asio::ip::make_address("127.0.0.1"), target_},
                         [this, l](boost::system::error_code ec2) {
                           if (ec2) {
                             boost::system::error_code ignore;
                             l->a.close(ignore);
                             return;
                           }
                           pump(l, l->a, l->b, l->buf_ab);
                           pump(l, l->b, l->a, l->buf_ba);
                         });
      accept();
    });
  }

  void pump(std::shared_ptr<Link> l, tcp::socket& from, tcp::socket& to, char* buf) {
    from.async_read_some(boost::asio::buffer(buf, 16384),
                         [this, l, &from, &to, buf](boost::system::error_code ec, size_t n) {
                           if (ec) {
                             boost::system::error_code ignore;
                             to.close(ignore);
                             return;
                           }
                           if (blackhole_) return pump(l, from, to, buf);  // bytes vanish
                           boost::asio::async_write(
                               to, boost::asio::buffer(buf, n),
                               [this, l, &from, &to, buf](boost::system::error_code ec2, size_t) {
                                 if (ec2) {
                                   boost::system::error_code ignore;
                                   from.close(ignore);
                                   return;
                                 }
                                 pump(l, from, to, buf);
                               });
                         });
  }

  uint16_t target_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  tcp::acceptor acceptor_;
  std::list<std::weak_ptr<Link>> links_;
  std::atomic<bool> blackhole_{false};
  std::atomic<int> cuts_{0};
  std::thread thread_;
};

}  // namespace kedge::testing
