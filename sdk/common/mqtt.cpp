#include "kedge/common/mqtt.h"

#include <mosquitto.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <deque>
#include <mutex>
#include <set>
#include <utility>

namespace kedge::mqtt {

Status parse_url(std::string_view url, Options& opts) {
  std::string_view rest = url;
  bool tls = false;
  if (auto p = url.find("://"); p != std::string_view::npos) {
    std::string_view scheme = url.substr(0, p);
    if (scheme == "ssl" || scheme == "tls" || scheme == "mqtts")
      tls = true;
    else if (scheme != "tcp" && scheme != "mqtt")
      return invalid_argument("MQTT broker URL '" + std::string(url) + "': scheme '" +
                              std::string(scheme) + "' is not tcp, mqtt, ssl or mqtts");
    rest = url.substr(p + 3);
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  auto colon = rest.rfind(':');
  if (rest.empty() || colon == 0)
    return invalid_argument("MQTT broker URL '" + std::string(url) + "' names no host");
  std::string host(rest.substr(0, colon));
  int port = tls ? 8883 : 1883;
  if (colon != std::string_view::npos) {
    std::string_view ps = rest.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ec != std::errc() || ptr != ps.data() + ps.size() || port < 1 || port > 65535)
      return invalid_argument("MQTT broker URL '" + std::string(url) + "': port '" +
                              std::string(ps) + "' is not a number in 1-65535");
  }
  if (tls && opts.ca_file.empty())
    return invalid_argument("MQTT broker URL '" + std::string(url) +
                            "' asks for TLS but no CA file is set");
  opts.host = std::move(host);
  opts.port = port;
  return {};
}

struct Client::Impl {
  Options opts;
  OnMessage on_message;
  OnConnection on_connection;
  mosquitto* m = nullptr;
  mutable std::mutex mu;
  std::set<std::pair<std::string, int>> subs;  // topic, qos
  struct Pending {
    std::string topic, payload;
    int qos;
    bool retain;
  };
  std::deque<Pending> queue;
  bool up = false;
  std::atomic<uint64_t> dropped{0};

  static void on_connect(mosquitto*, void* self, int rc) {
    auto* i = static_cast<Impl*>(self);
    if (rc != 0) {
      if (i->on_connection) i->on_connection(false, mosquitto_connack_string(rc));
      return;
    }
    std::deque<Pending> out;
    {
      std::lock_guard lk(i->mu);
      i->up = true;
      for (auto& [t, q] : i->subs) mosquitto_subscribe(i->m, nullptr, t.c_str(), q);
      out.swap(i->queue);
    }
    // In order; one that cannot go now goes back to the front of the queue.
    while (!out.empty()) {
      auto& p = out.front();
      int r = mosquitto_publish(i->m, nullptr, p.topic.c_str(), static_cast<int>(p.payload.size()),
                                p.payload.data(), p.qos, p.retain);
      if (r == MOSQ_ERR_NO_CONN || r == MOSQ_ERR_CONN_LOST) break;
      out.pop_front();
    }
    if (!out.empty()) {
      std::lock_guard lk(i->mu);
      i->up = false;
      for (auto it = out.rbegin(); it != out.rend(); ++it) i->queue.push_front(std::move(*it));
    }
    if (i->on_connection) i->on_connection(true, "connected");
  }
  static void on_disconnect(mosquitto*, void* self, int rc) {
    auto* i = static_cast<Impl*>(self);
    {
      std::lock_guard lk(i->mu);
      i->up = false;
    }
    if (i->on_connection)
      i->on_connection(false, rc == 0 ? "disconnected" : mosquitto_strerror(rc));
  }
  static void on_msg(mosquitto*, void* self, const mosquitto_message* msg) {
    auto* i = static_cast<Impl*>(self);
    if (!i->on_message || !msg || !msg->topic) return;
    std::string payload(static_cast<const char*>(msg->payload),
                        static_cast<size_t>(msg->payloadlen > 0 ? msg->payloadlen : 0));
    i->on_message(msg->topic, std::move(payload));
  }
};

namespace {
std::once_flag lib_init;
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Client>> Client::create(Options opts, OnMessage on_message,
                                               OnConnection on_connection) {
  std::call_once(lib_init, [] { mosquitto_lib_init(); });
  auto impl = std::make_unique<Impl>();
  impl->opts = std::move(opts);
  impl->on_message = std::move(on_message);
  impl->on_connection = std::move(on_connection);
  Options& o = impl->opts;
  if (o.client_id.empty())
    o.client_id = "kedge-" + std::to_string(::getpid()) + "-" +
                  std::to_string(reinterpret_cast<uintptr_t>(impl.get()) & 0xffffff);
  std::string where = o.host + ":" + std::to_string(o.port);
  mosquitto* m = mosquitto_new(o.client_id.c_str(), true, impl.get());
  if (!m) return {internal_error("cannot create an MQTT client for " + where), nullptr};
  impl->m = m;
  auto fail = [&](const std::string& what, int rc) -> Result<std::unique_ptr<Client>> {
    mosquitto_destroy(m);
    impl->m = nullptr;
    return {
        invalid_argument("MQTT client for " + where + ": " + what + ": " + mosquitto_strerror(rc)),
        nullptr};
  };
  if (!o.username.empty())
    if (int rc = mosquitto_username_pw_set(m, o.username.c_str(),
                                           o.password.empty() ? nullptr : o.password.c_str());
        rc != MOSQ_ERR_SUCCESS)
      return fail("username", rc);
  if (!o.ca_file.empty())
    if (int rc = mosquitto_tls_set(m, o.ca_file.c_str(), nullptr,
                                   o.cert_file.empty() ? nullptr : o.cert_file.c_str(),
                                   o.key_file.empty() ? nullptr : o.key_file.c_str(), nullptr);
        rc != MOSQ_ERR_SUCCESS)
      return fail(
          "TLS files (ca " + o.ca_file + ", cert " + o.cert_file + ", key " + o.key_file + ")", rc);
  mosquitto_connect_callback_set(m, &Impl::on_connect);
  mosquitto_disconnect_callback_set(m, &Impl::on_disconnect);
  mosquitto_message_callback_set(m, &Impl::on_msg);
  mosquitto_reconnect_delay_set(m, static_cast<unsigned>(o.reconnect_min_s),
                                static_cast<unsigned>(o.reconnect_max_s), true);
  // The network thread first: it then retries a first connect that fails
  // (a broker not up yet is no error).
  if (int rc = mosquitto_loop_start(m); rc != MOSQ_ERR_SUCCESS) return fail("network thread", rc);
  (void)mosquitto_connect_async(m, o.host.c_str(), o.port, o.keepalive_s);
  return {{}, std::unique_ptr<Client>(new Client(std::move(impl)))};
}

Client::~Client() {
  if (!impl_ || !impl_->m) return;
  mosquitto_disconnect(impl_->m);
  mosquitto_loop_stop(impl_->m, true);
  mosquitto_destroy(impl_->m);
}

Status Client::subscribe(const std::string& topic, int qos) {
  std::lock_guard lk(impl_->mu);
  for (auto it = impl_->subs.begin(); it != impl_->subs.end();)
    it = it->first == topic ? impl_->subs.erase(it) : std::next(it);
  impl_->subs.insert({topic, qos});
  if (!impl_->up) return {};
  int rc = mosquitto_subscribe(impl_->m, nullptr, topic.c_str(), qos);
  if (rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN) return {};  // again on reconnect
  return invalid_argument("MQTT subscribe to '" + topic + "': " + mosquitto_strerror(rc));
}

Status Client::unsubscribe(const std::string& topic) {
  std::lock_guard lk(impl_->mu);
  for (auto it = impl_->subs.begin(); it != impl_->subs.end();)
    it = it->first == topic ? impl_->subs.erase(it) : std::next(it);
  if (!impl_->up) return {};
  int rc = mosquitto_unsubscribe(impl_->m, nullptr, topic.c_str());
  if (rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN) return {};
  return invalid_argument("MQTT unsubscribe from '" + topic + "': " + mosquitto_strerror(rc));
}

Status Client::publish(const std::string& topic, std::string_view payload, int qos, bool retain) {
  std::lock_guard lk(impl_->mu);
  if (impl_->up) {
    int rc = mosquitto_publish(impl_->m, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                               payload.data(), qos, retain);
    if (rc == MOSQ_ERR_SUCCESS) return {};
    if (rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_CONN_LOST)
      return invalid_argument("MQTT publish to '" + topic + "': " + mosquitto_strerror(rc));
  }
  if (impl_->opts.offline_queue == 0) return {Code::kUnavailable, "MQTT broker not connected"};
  if (impl_->queue.size() >= impl_->opts.offline_queue) {
    impl_->queue.pop_front();
    ++impl_->dropped;
  }
  impl_->queue.push_back({topic, std::string(payload), qos, retain});
  return {};
}

bool Client::connected() const {
  std::lock_guard lk(impl_->mu);
  return impl_->up;
}
uint64_t Client::dropped() const { return impl_->dropped.load(); }
size_t Client::queued() const {
  std::lock_guard lk(impl_->mu);
  return impl_->queue.size();
}

}  // namespace kedge::mqtt
