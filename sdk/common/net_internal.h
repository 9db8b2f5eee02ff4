// Helpers shared by net.cpp and http_server.cpp (not installed).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ip/tcp.hpp>
#include <string>

#include "kedge/common/pki.h"
#include "kedge/status.h"

namespace kedge::net::detail {

inline std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// CN of the peer's certificate, if one was presented and verified.
inline std::string verified_peer_cn(SSL* ssl) {
  X509* c = SSL_get1_peer_certificate(ssl);
  if (!c) return {};
  std::string cn = SSL_get_verify_result(ssl) == X509_V_OK ? pki::common_name(c) : std::string();
  X509_free(c);
  return cn;
}

// Opens, binds and listens; the error names the address.
inline Status open_acceptor(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address,
                            uint16_t port) {
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(address, ec);
  if (ec) return invalid_argument("invalid listen address '" + address + "'");
  boost::asio::ip::tcp::endpoint ep(addr, port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec)
    return {Code::kUnavailable,
            "cannot listen on " + address + ":" + std::to_string(port) + ": " + ec.message()};
  return {};
}

}  // namespace kedge::net::detail
