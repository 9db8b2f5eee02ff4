// The kedge CLI's connection to the API server: the configuration it comes
// from (~/.kedge/config, or flags), one HTTPS request, and a streamed watch.
// Errors are thrown as Failure with a message that says what to check.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace kedge::cli {

inline constexpr int kUsage = 2;  // the exit code of a usage error

// A command's error: printed, and the process exits with `code`.
struct Failure {
  std::string message;
  int code = 1;
};

struct Config {
  std::string server;  // https://host:port
  std::string token;
  std::string ca_file;
  std::string ns = "default";
  bool insecure = false;
};

// $KEDGE_CONFIG, or ~/.kedge/config.
std::filesystem::path config_path();

struct Reply {
  int status = 0;
  std::string body;
  boost::json::value json;  // null if the body is not JSON
};

class Client {
 public:
  explicit Client(Config c);

  // One request on a connection of its own; 401 throws a Failure naming the
  // token's source.
  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::string& content_type = "application/json");
  // Streams a watch: `on_line` for each event line until the server ends it.
  void stream(const std::string& target,
              const std::function<void(const boost::json::value&)>& on_line);
  // "message (code reason)" from a Kubernetes Status body, or the body.
  static std::string error_text(int status, const std::string& body);
  const Config& config() const { return cfg_; }

 private:
  using Stream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
  std::unique_ptr<Stream> connect();
  boost::beast::http::request<boost::beast::http::string_body> request(
      const std::string& method, const std::string& target, const std::string& body,
      const std::string& content_type);

  Config cfg_;
  boost::asio::io_context io_;
  boost::asio::ssl::context tls_{boost::asio::ssl::context::tls_client};
  std::string host_, port_;
};

}  // namespace kedge::cli
