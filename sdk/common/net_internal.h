// Helpers shared by net.cpp, http_server.cpp and http_client.cpp (not installed).
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

inline Status net_error(const std::string& what, const boost::system::error_code& ec) {
  return {Code::kUnavailable, what + ": " + ec.message()};
}

// SNI for `host`, and (if `verify`) the check that the server's certificate
// names it: a DNS name, or an IP address in its subjectAltName.
inline Status set_peer_host(SSL* ssl, const std::string& host, bool verify) {
  // SSL_set_tlsext_host_name is a macro with a C cast; call what it expands to.
  SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
           const_cast<char*>(host.c_str()));
  if (!verify) return {};
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  boost::system::error_code not_ip;
  boost::asio::ip::make_address(host, not_ip);
  int ok = not_ip ? X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0)
                  : X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  if (ok != 1) return invalid_argument("cannot verify host name " + host);
  return {};
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
