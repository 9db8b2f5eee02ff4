#include "kedge/mapper/service.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include "kedge/common/net.h"

namespace kedge::mapper {

namespace json = boost::json;

struct DeviceService::Impl : std::enable_shared_from_this<Impl> {
  Engine& engine;
  boost::asio::any_io_executor ex;
  MetricsRegistry* metrics;
  std::shared_ptr<net::HttpServer> server;

  Impl(Engine& e, boost::asio::any_io_executor x, MetricsRegistry* m)
      : engine(e), ex(std::move(x)), metrics(m) {}

  static net::HttpResponse reply(int status, const json::value& body) {
    return {status, "application/json", json::serialize(body) + "\n"};
  }
  static net::HttpResponse error(int status, const std::string& what) {
    return reply(status, json::object{{"error", what}});
  }

  static std::vector<std::string> split_path(const std::string& target) {
    std::string path = target.substr(0, target.find('?'));
    std::vector<std::string> out;
    size_t i = 0;
    while (i < path.size()) {
      size_t j = path.find('/', i);
      if (j == std::string::npos) j = path.size();
      if (j > i) out.push_back(path.substr(i, j - i));
      i = j + 1;
    }
    return out;
  }

  void handle(const net::ExchangePtr& x) {
    const auto& req = x->request();
    if (req.method != "GET") return x->reply(error(405, "only GET is served"));
    auto parts = split_path(req.target);
    if (parts.size() == 1 && parts[0] == "metrics" && metrics)
      return x->reply({200, "text/plain; version=0.0.4", metrics->prometheus_text()});
    if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1")
      return x->reply(error(404, "no such path: " + req.target));
    const auto& info = engine.info();
    if (parts.size() == 3 && parts[2] == "ping")
      return x->reply(reply(200, json::object{{"mapper", info.name},
                                              {"protocol", info.protocol},
                                              {"version", info.version},
                                              {"status", "running"}}));
    if (parts.size() == 3 && parts[2] == "devices") {
      json::array all;
      for (auto& id : engine.devices()) {
        auto slash = id.find('/');
        if (auto s = engine.snapshot(id.substr(0, slash), id.substr(slash + 1))) all.push_back(*s);
      }
      return x->reply(reply(200, json::object{{"devices", std::move(all)}}));
    }
    if (parts[2] != "device" || parts.size() < 5 || parts.size() > 6)
      return x->reply(error(404, "no such path: " + req.target));
    const std::string &ns = parts[3], &name = parts[4];
    if (parts.size() == 5) {
      auto s = engine.snapshot(ns, name);
      if (!s) return x->reply(error(404, "no device " + ns + "/" + name));
      return x->reply(reply(200, *s));
    }
    // A fresh read, done on the device's thread; answered here.
    auto self = shared_from_this();
    auto answered = std::make_shared<bool>(false);
    auto timer = std::make_shared<boost::asio::steady_timer>(ex, std::chrono::seconds(10));
    timer->async_wait([x, answered](boost::system::error_code ec) {
      if (ec || *answered) return;
      *answered = true;
      x->reply(error(504, "the device did not answer within 10 s"));
    });
    engine.read_now(ns, name, parts[5], [self, x, answered, timer, ns, name](Status s, Reading r) {
      boost::asio::post(self->ex, [x, answered, timer, s, r, ns, name] {
        if (*answered) return;
        *answered = true;
        timer->cancel();
        if (!s) return x->reply(error(s.code() == Code::kNotFound ? 404 : 503, s.message()));
        x->reply(reply(200, json::object{{"deviceName", name},
                                         {"deviceNamespace", ns},
                                         {"propertyName", r.property},
                                         {"value", r.value},
                                         {"type", r.type},
                                         {"timestamp", r.timestamp_ms}}));
      });
    });
  }
};

DeviceService::DeviceService(Engine& engine, boost::asio::any_io_executor ex,
                             MetricsRegistry* metrics)
    : impl_(std::make_shared<Impl>(engine, std::move(ex), metrics)) {}

DeviceService::~DeviceService() { stop(); }

Status DeviceService::listen(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos)
    return invalid_argument("Device-as-a-Service address '" + address + "': expected host:port");
  int port = 0;
  try {
    size_t used = 0;
    port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1) port = -1;
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535)
    return invalid_argument("Device-as-a-Service address '" + address + "': bad port");
  net::HttpServer::Options o;
  o.max_body = 64 << 10;
  o.max_connections = 256;
  impl_->server = net::HttpServer::create(impl_->ex, nullptr, o);
  std::weak_ptr<Impl> weak = impl_;
  return impl_->server->listen(address.substr(0, colon), static_cast<uint16_t>(port),
                               [weak](net::ExchangePtr x) {
                                 if (auto self = weak.lock()) self->handle(x);
                               });
}

uint16_t DeviceService::port() const { return impl_->server ? impl_->server->port() : 0; }

void DeviceService::stop() {
  if (impl_->server) impl_->server->stop();
}

}  // namespace kedge::mapper
