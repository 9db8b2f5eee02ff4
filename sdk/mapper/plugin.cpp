// A mapper inside the agent: devices from the dmi plugin as messages,
// reports back the same way.
//
// To dmi:   request  op "register", resource "mapper/<name>",
//                    content {name, version, protocol, api_version, module}
//                    -> answer {"models": [...], "devices": [...]} or {"error"}
//           op "report", "device/<ns>/<name>", {"twins": [...]}
//           op "state",  "device/<ns>/<name>", {"state": "online"}
// From dmi: requests op insert/update/delete on "<ns>/device/<name>" and
//           "<ns>/devicemodel/<name>" (content: the object), answered "OK"
//           or {"error": "..."}.
#include <spdlog/logger.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include "kedge/mapper/mapper.h"
#include "kedge/mapper/service.h"

namespace kedge::mapper {

namespace json = boost::json;
using namespace std::chrono_literals;

struct MapperPlugin::Impl : Uplink, std::enable_shared_from_this<Impl> {
  MapperInfo info;
  Context* ctx = nullptr;
  std::string dmi;
  std::shared_ptr<spdlog::logger> log;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<DeviceService> service;
  std::unique_ptr<boost::asio::steady_timer> retry;
  bool stopped = false;

  explicit Impl(MapperInfo i) : info(std::move(i)) {}

  Status send(std::string op, std::string resource, json::object content) {
    auto m =
        make_message(ctx->name(), "dmi", std::move(op), std::move(resource), std::move(content));
    return ctx->send(dmi, share(std::move(m)), 2s);
  }

  Status report_status(const Device& d, const std::vector<Reading>& twins) override {
    json::array arr;
    for (auto& r : twins) {
      json::object t{
          {"propertyName", r.property},
          {"reported",
           json::object{{"value", r.value},
                        {"metadata", json::object{{"timestamp", std::to_string(r.timestamp_ms)},
                                                  {"type", r.type}}}}}};
      if (!r.observed_desired.empty())
        t["observedDesired"] = json::object{{"value", r.observed_desired}};
      arr.push_back(std::move(t));
    }
    return send("report", "device/" + d.ns + "/" + d.name, {{"twins", std::move(arr)}});
  }
  Status report_state(const Device& d, const std::string& state) override {
    return send("state", "device/" + d.ns + "/" + d.name, {{"state", state}});
  }

  void do_register() {
    if (stopped) return;
    json::object me{{"name", info.name},
                    {"version", info.version},
                    {"protocol", info.protocol},
                    {"api_version", "v1beta1"},
                    {"module", ctx->name()}};
    auto m = make_message(ctx->name(), "dmi", "register", "mapper/" + info.name, std::move(me));
    std::weak_ptr<Impl> weak = shared_from_this();
    ctx->request(dmi, share(std::move(m)), 10s, [weak](Status s, MessagePtr r) {
      auto self = weak.lock();
      if (!self || self->stopped) return;
      if (s && r && r->content.is_object()) {
        std::vector<json::value> models, devices;
        auto& o = r->content.as_object();
        if (auto* a = o.if_contains("models"); a && a->is_array())
          models.assign(a->as_array().begin(), a->as_array().end());
        if (auto* a = o.if_contains("devices"); a && a->is_array())
          devices.assign(a->as_array().begin(), a->as_array().end());
        self->engine->reset(models, devices);
        self->log->info("registered with {}: {} device(s), {} model(s)", self->dmi, devices.size(),
                        models.size());
        return;
      }
      std::string why = !s ? s.message()
                        : r && r->content.is_object() && r->content.as_object().contains("error")
                            ? json::serialize(r->content.at("error"))
                            : "unexpected answer";
      self->log->warn("registration with {} failed ({}); retrying in 2 s", self->dmi, why);
      self->retry->expires_after(2s);
      self->retry->async_wait([weak](boost::system::error_code ec) {
        if (auto me2 = weak.lock(); me2 && !ec) me2->do_register();
      });
    });
  }

  void on_message(const MessagePtr& m) {
    if (m->is_response()) return;
    const std::string& r = m->route.resource;
    const std::string& op = m->route.operation;
    if (op == "register") return do_register();  // dmi asks again (it restarted)
    if (op == kedge::op::kQuery) return query(m);
    size_t a = r.find('/');
    size_t b = a == std::string::npos ? a : r.find('/', a + 1);
    if (b == std::string::npos) return reply(m, invalid_argument("bad resource " + r));
    std::string ns = r.substr(0, a), type = r.substr(a + 1, b - a - 1), name = r.substr(b + 1);
    Status s;
    if (type == "device") {
      if (op == kedge::op::kDelete)
        engine->remove_device(ns, name);
      else
        s = engine->upsert_device(m->content);
    } else if (type == "devicemodel") {
      if (op == kedge::op::kDelete)
        engine->remove_model(ns, name);
      else
        s = engine->upsert_model(m->content);
    } else {
      s = invalid_argument("unknown resource type " + type);
    }
    reply(m, s);
  }

  // "<ns>/<name>": the device and its last readings, as GetDevice answers.
  void query(const MessagePtr& m) {
    const std::string& r = m->route.resource;
    size_t slash = r.find('/');
    std::string ns = r.substr(0, slash),
                name = slash == std::string::npos ? "" : r.substr(slash + 1);
    json::value obj = engine->device_object(ns, name);
    auto snap = engine->snapshot(ns, name);
    if (obj.is_null() || !snap) return reply(m, not_found("no device " + r));
    json::array twins;
    if (auto* ps = snap->if_contains("properties"); ps && ps->is_array())
      for (auto& p : ps->as_array())
        if (auto* v = p.as_object().if_contains("value"))
          twins.push_back(json::object{
              {"propertyName", p.at("name")},
              {"reported",
               json::object{{"value", *v},
                            {"metadata",
                             json::object{{"type", p.at("type")},
                                          {"timestamp", json::serialize(p.at("timestamp"))}}}}}});
    Message a =
        new_response(*m, json::object{{"device", obj}, {"status", json::object{{"twins", twins}}}});
    a.route.source = ctx->name();
    (void)ctx->respond(share(std::move(a)));
  }

  void reply(const MessagePtr& m, const Status& s) {
    if (m->header.id.empty()) return;
    Message r = s ? new_response(*m, json::string("OK"))
                  : new_response(*m, json::object{{"error", s.message()}});
    r.route.source = ctx->name();
    (void)ctx->respond(share(std::move(r)));
  }
};

MapperPlugin::MapperPlugin(MapperInfo info) : impl_(std::make_shared<Impl>(std::move(info))) {}
MapperPlugin::~MapperPlugin() { (void)stop(); }

Status MapperPlugin::init(Context& ctx, const Config& config) {
  auto& i = *impl_;
  i.ctx = &ctx;
  i.log = ctx.logger();
  auto set = read_settings(kMapperPluginSettings, config);
  i.dmi = set.dmi;
  if (!i.info.factory) return internal_error("mapper " + i.info.name + " has no driver factory");
  EngineOptions o;
  // Ranges are checked with the manifest (kMapperPluginSettings).
  o.health_cycle = std::chrono::milliseconds(set.health_cycle_ms);
  o.max_threads = static_cast<size_t>(set.max_threads);
  i.engine = std::make_unique<Engine>(i.info, i, i.log, ctx.metrics(), o);
  i.retry = std::make_unique<boost::asio::steady_timer>(ctx.executor());
  if (const std::string& addr = set.http_address; !addr.empty()) {
    i.service = std::make_unique<DeviceService>(*i.engine, ctx.executor(), nullptr);
    if (Status s = i.service->listen(addr); !s) return s;
    i.log->info("Device-as-a-Service on http://{}", addr);
  }
  return {};
}

Status MapperPlugin::start() {
  impl_->do_register();
  return {};
}

Status MapperPlugin::stop() {
  auto& i = *impl_;
  if (i.stopped) return {};
  i.stopped = true;
  if (i.retry) i.retry->cancel();
  if (i.service) i.service->stop();
  if (i.engine) i.engine->stop();
  return {};
}

void MapperPlugin::on_message(const MessagePtr& msg) { impl_->on_message(msg); }

}  // namespace kedge::mapper
