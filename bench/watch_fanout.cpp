// Watch fan-out: WATCHERS watch streams (HTTPS, one thread each) on the
// apiserver, then EVENTS configmaps created one after the other over one
// keep-alive connection; reports how long until every watcher had every
// event, the delivered events per second, and the delay from each create
// being sent to each watcher receiving it (p50, p99).
//
//   kedge_watch_fanout --server https://127.0.0.1:P --token T [--watchers 100]
//                      [--events 1000] [--label NAME]
#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using Stream = beast::ssl_stream<beast::tcp_stream>;

namespace {

std::string host, port, token;

std::unique_ptr<Stream> connect(asio::io_context& io, asio::ssl::context& ctx) {
  auto s = std::make_unique<Stream>(io, ctx);
  asio::ip::tcp::resolver r(io);
  beast::get_lowest_layer(*s).connect(r.resolve(host, port));
  s->handshake(asio::ssl::stream_base::client);
  return s;
}

http::request<http::string_body> req(http::verb v, const std::string& target,
                                     const std::string& body = "") {
  http::request<http::string_body> q(v, target, 11);
  q.set(http::field::host, host);
  q.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) q.set(http::field::content_type, "application/json");
  q.body() = body;
  q.prepare_payload();
  return q;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server, label = "";
  int watchers = 100, events = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--server")
      server = v;
    else if (a == "--token")
      token = v;
    else if (a == "--watchers")
      watchers = std::stoi(v);
    else if (a == "--events")
      events = std::stoi(v);
    else if (a == "--label")
      label = v;
    else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  auto colon = server.rfind(':');
  if (server.rfind("https://", 0) != 0 || colon == std::string::npos || token.empty()) {
    std::cerr << "usage: kedge_watch_fanout --server https://HOST:PORT --token T [--watchers N] "
                 "[--events M]\n";
    return 2;
  }
  host = server.substr(8, colon - 8);
  port = server.substr(colon + 1);
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_verify_mode(asio::ssl::verify_none);
  const std::string base = "/api/v1/namespaces/default/configmaps";

  // The list's version: watches start after it.
  asio::io_context io;
  auto main_conn = connect(io, ctx);
  beast::flat_buffer buf;
  http::write(*main_conn, req(http::verb::get, base + "?labelSelector=bench%3Dfanout"));
  http::response<http::string_body> lr;
  http::read(*main_conn, buf, lr);
  if (lr.result_int() != 200) {
    std::cerr << "list: HTTP " << lr.result_int() << " " << lr.body() << "\n";
    return 1;
  }
  std::string rv(json::parse(lr.body()).at("metadata").at("resourceVersion").as_string());

  std::vector<Clock::time_point> sent(static_cast<size_t>(events));
  std::vector<std::vector<Clock::time_point>> got(static_cast<size_t>(watchers));
  std::atomic<int> ready{0}, done{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < watchers; ++w)
    threads.emplace_back([&, w] {
      asio::io_context wio;
      auto s = connect(wio, ctx);
      http::write(*s, req(http::verb::get,
                          base + "?watch=1&labelSelector=bench%3Dfanout&resourceVersion=" + rv));
      beast::flat_buffer b;
      http::response_parser<http::empty_body> p;
      http::read_header(*s, b, p);
      ++ready;
      auto& mine = got[static_cast<size_t>(w)];
      mine.reserve(static_cast<size_t>(events));
      std::string pending;
      auto on_chunk = [&](std::uint64_t, beast::string_view d, boost::system::error_code&) {
        auto now = Clock::now();
        pending.append(d.data(), d.size());
        size_t nl;
        while ((nl = pending.find('\n')) != std::string::npos) {
          pending.erase(0, nl + 1);
          mine.push_back(now);
        }
        return d.size();
      };
      p.on_chunk_body(on_chunk);
      boost::system::error_code ec;
      while (!ec && static_cast<int>(mine.size()) < events) http::read_some(*s, b, p, ec);
      ++done;
      beast::get_lowest_layer(*s).socket().close(ec);
    });
  while (ready < watchers) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  auto t0 = Clock::now();
  for (int i = 0; i < events; ++i) {
    std::string body = R"({"metadata":{"name":"fanout-)" + std::to_string(i) +
                       R"(","labels":{"bench":"fanout"}},"data":{"i":")" + std::to_string(i) +
                       R"("}})";
    sent[static_cast<size_t>(i)] = Clock::now();
    http::write(*main_conn, req(http::verb::post, base, body));
    http::response<http::string_body> cr;
    http::read(*main_conn, buf, cr);
    if (cr.result_int() != 201) {
      std::cerr << "create " << i << ": HTTP " << cr.result_int() << " " << cr.body() << "\n";
      return 1;
    }
  }
  auto t_created = Clock::now();
  auto deadline = Clock::now() + std::chrono::seconds(120);
  while (done < watchers && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (done < watchers) {
    std::cerr << "only " << done << " of " << watchers << " watchers got every event in 120 s\n";
    std::_Exit(1);
  }
  for (auto& t : threads) t.join();
  Clock::time_point last = t0;
  std::vector<double> delays;
  for (auto& g : got)
    for (size_t i = 0; i < g.size(); ++i) {
      last = std::max(last, g[i]);
      delays.push_back(std::chrono::duration<double, std::milli>(g[i] - sent[i]).count());
    }
  std::sort(delays.begin(), delays.end());
  double span = std::chrono::duration<double>(last - t0).count();
  double create_s = std::chrono::duration<double>(t_created - t0).count();
  std::printf(
      "%-8s fan-out %d events x %d watchers: all delivered in %.2f s (%.0f events/s; creates "
      "%.0f/s); delay p50 %.2f ms, p99 %.2f ms\n",
      label.c_str(), events, watchers, span, static_cast<double>(delays.size()) / span,
      events / create_s, delays[delays.size() / 2], delays[delays.size() * 99 / 100]);
  return 0;
}
