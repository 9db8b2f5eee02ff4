// An MQTT client on libmosquitto (library kedge::mqtt): connects in the
// background and keeps reconnecting with back-off, subscribes again to every
// topic it was asked for after each reconnect, and keeps what is published
// while the broker is away in a bounded queue that is sent, in order, once
// it is back (the oldest dropped past the bound, and counted).
//
//   auto c = kedge::mqtt::Client::create(opts, [](std::string topic, std::string payload) {...});
//   c.value->subscribe("$hw/events/device/+/twin/update", 1);
//   c.value->publish("a/b", "{}", 1, false);
//
// Callbacks run on the client's own network thread: post to an executor to
// get back to a plugin's strand. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "kedge/export.h"
#include "kedge/status.h"

namespace kedge::mqtt {

struct Options {
  std::string host = "127.0.0.1";
  int port = 1883;
  std::string client_id;  // "" = generated
  std::string username, password;
  // TLS to the broker when ca_file is set (client certificate optional).
  std::string ca_file, cert_file, key_file;
  int keepalive_s = 30;
  int reconnect_min_s = 1, reconnect_max_s = 30;
  // Messages published while disconnected that are kept for the reconnect.
  size_t offline_queue = 1000;
};

// "tcp://host:port", "ssl://host:port", "mqtt://", "mqtts://" or
// "host:port" into opts.host/port; a TLS scheme without ca_file is refused.
KEDGE_EXPORT Status parse_url(std::string_view url, Options& opts);

class KEDGE_EXPORT Client {
 public:
  using OnMessage = std::function<void(std::string topic, std::string payload)>;
  using OnConnection = std::function<void(bool connected, const std::string& why)>;

  // Starts connecting at once; fails only on bad options (TLS files, ...).
  static Result<std::unique_ptr<Client>> create(Options opts, OnMessage on_message,
                                                OnConnection on_connection = {});
  ~Client();  // disconnects and joins the network thread
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Remembered and (re)sent on every connect.
  Status subscribe(const std::string& topic, int qos);
  Status unsubscribe(const std::string& topic);
  // Sent now if connected, else queued for the reconnect.
  Status publish(const std::string& topic, std::string_view payload, int qos, bool retain);

  bool connected() const;
  uint64_t dropped() const;  // queued messages dropped past offline_queue
  size_t queued() const;

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kedge::mqtt
