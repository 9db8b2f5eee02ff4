#include "api_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <chrono>

#include "kedge/common/pki.h"

namespace kedge::cli {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

fs::path config_path() {
  if (const char* p = std::getenv("KEDGE_CONFIG"); p && *p) return p;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : ".") / ".kedge" / "config";
}

Client::Client(Config c) : cfg_(std::move(c)) {
  if (cfg_.server.empty())
    throw Failure{
        "no API server: pass --server https://HOST:PORT or run `kedge config init "
        "--manifest CLOUD.toml` to write " +
        config_path().string()};
  auto u = boost::urls::parse_uri(cfg_.server);
  if (!u || u->scheme() != "https" || u->host().empty())
    throw Failure{"server \"" + cfg_.server + "\" is not an https://HOST:PORT URL"};
  host_ = std::string(u->host());
  if (!host_.empty() && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
  port_ = u->has_port() ? std::string(u->port()) : "443";
  tls_.set_verify_mode(cfg_.insecure ? asio::ssl::verify_none : asio::ssl::verify_peer);
  if (!cfg_.insecure) {
    if (cfg_.ca_file.empty()) {
      tls_.set_default_verify_paths();
    } else {
      auto ca = pki::read_file(cfg_.ca_file);
      if (!ca.ok()) throw Failure{"certificate authority: " + ca.status.message()};
      boost::system::error_code ec;
      tls_.add_certificate_authority(asio::buffer(ca.value), ec);
      if (ec) throw Failure{cfg_.ca_file + ": not a PEM certificate: " + ec.message()};
    }
  }
}

std::unique_ptr<Client::Stream> Client::connect() {
  auto s = std::make_unique<Stream>(io_, tls_);
  boost::system::error_code ec;
  asio::ip::tcp::resolver r(io_);
  auto eps = r.resolve(host_, port_, ec);
  if (ec) throw Failure{"cannot resolve the API server " + host_ + ": " + ec.message()};
  beast::get_lowest_layer(*s).expires_after(std::chrono::seconds(10));
  beast::get_lowest_layer(*s).connect(eps, ec);
  if (ec)
    throw Failure{"cannot reach the API server at " + cfg_.server + ": " + ec.message() +
                  " (is the cloud running? the server comes from " + config_path().string() +
                  " or --server)"};
  // SSL_set_tlsext_host_name is a macro with a C cast; call what it expands to.
  SSL_ctrl(s->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
           const_cast<char*>(host_.c_str()));
  if (!cfg_.insecure) s->set_verify_callback(asio::ssl::host_name_verification(host_));
  s->handshake(asio::ssl::stream_base::client, ec);
  if (ec)
    throw Failure{"TLS handshake with " + cfg_.server + " failed: " + ec.message() +
                  " (check certificate_authority in " + config_path().string() + ")"};
  beast::get_lowest_layer(*s).expires_never();
  return s;
}

http::request<http::string_body> Client::request(const std::string& method,
                                                 const std::string& target, const std::string& body,
                                                 const std::string& content_type) {
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, host_);
  req.set(http::field::user_agent, "kedge-cli");
  if (!cfg_.token.empty()) req.set(http::field::authorization, "Bearer " + cfg_.token);
  if (!body.empty()) req.set(http::field::content_type, content_type);
  req.body() = body;
  req.prepare_payload();
  return req;
}

Reply Client::call(const std::string& method, const std::string& target, const std::string& body,
                   const std::string& content_type) {
  auto s = connect();
  boost::system::error_code ec;
  auto req = request(method, target, body, content_type);
  beast::get_lowest_layer(*s).expires_after(std::chrono::seconds(60));
  http::write(*s, req, ec);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(512 << 20);
  http::read(*s, buf, p, ec);
  if (ec) throw Failure{"no answer from " + cfg_.server + ": " + ec.message()};
  Reply r;
  r.status = static_cast<int>(p.get().result_int());
  r.body = std::move(p.get().body());
  json::error_code jec;
  r.json = json::parse(r.body, jec);
  if (r.status == 401)
    throw Failure{
        "the API server refused the credentials (401 Unauthorized): check the token "
        "in " +
        config_path().string() + " or --token"};
  return r;
}

// Streams a watch: `on_line` for each event line until the server ends it.
void Client::stream(const std::string& target,
                    const std::function<void(const json::value&)>& on_line) {
  auto s = connect();
  auto req = request("GET", target, "", "");
  http::write(*s, req);
  beast::flat_buffer buf;
  http::response_parser<http::empty_body> p;
  http::read_header(*s, buf, p);
  if (p.get().result_int() != 200) {
    http::response_parser<http::string_body> rest(std::move(p));
    boost::system::error_code ec;
    http::read(*s, buf, rest, ec);
    throw Failure{error_text(static_cast<int>(rest.get().result_int()), rest.get().body())};
  }
  std::string pending;
  auto on_chunk = [&](std::uint64_t, beast::string_view data, boost::system::error_code&) {
    pending.append(data.data(), data.size());
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      json::error_code jec;
      auto v = json::parse(pending.substr(0, nl), jec);
      pending.erase(0, nl + 1);
      if (!jec) on_line(v);
    }
    return data.size();
  };
  p.on_chunk_body(on_chunk);
  boost::system::error_code ec;
  while (!ec && !p.is_done()) http::read_some(*s, buf, p, ec);
}

std::string Client::error_text(int status, const std::string& body) {
  json::error_code ec;
  auto v = json::parse(body, ec);
  if (!ec && v.is_object() && v.as_object().contains("message"))
    return std::string(v.at("message").as_string()) + " (" + std::to_string(status) + " " +
           (v.as_object().contains("reason") ? std::string(v.at("reason").as_string()) : "") + ")";
  return "HTTP " + std::to_string(status) + ": " + body;
}

}  // namespace kedge::cli
