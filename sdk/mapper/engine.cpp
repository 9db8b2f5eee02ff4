// The Mapper SDK's engine: devices are jobs of a small thread pool that runs
// their drivers; readings are pushed (MQTT, HTTP) and reported to the edge.
#include "kedge/mapper/engine.h"

#include <spdlog/logger.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "device_pool.h"
#include "kedge/common/http_client.h"
#include "kedge/common/mqtt.h"
#include "kedge/message.h"

namespace kedge::mapper {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// The object without its properties' desired values: if this changes, the
// device starts over.
// (Kept as an FNV-1a hash of that text: 8 bytes a device.)
uint64_t access_key(const json::value& device) {
  json::value v = device;
  if (auto* spec = v.is_object() ? v.as_object().if_contains("spec") : nullptr;
      spec && spec->is_object())
    if (auto* ps = spec->as_object().if_contains("properties"); ps && ps->is_array())
      for (auto& p : ps->as_array())
        if (p.is_object()) p.as_object().erase("desired");
  if (v.is_object()) {
    v.as_object().erase("status");
    if (auto* md = v.as_object().if_contains("metadata"); md && md->is_object()) {
      md->as_object().erase("resourceVersion");
      md->as_object().erase("managedFields");
      md->as_object().erase("generation");
    }
  }
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : json::serialize(v)) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string key_of(const json::value& obj) {
  std::string ns, name;
  if (auto* md = obj.is_object() ? obj.as_object().if_contains("metadata") : nullptr;
      md && md->is_object()) {
    if (auto* n = md->as_object().if_contains("name"); n && n->is_string()) name = n->as_string();
    if (auto* n = md->as_object().if_contains("namespace"); n && n->is_string())
      ns = n->as_string();
  }
  return (ns.empty() ? "default" : ns) + "/" + name;
}

}  // namespace

// ---- the data plane: MQTT (libmosquitto) and HTTP POST ----

class Engine::Publisher {
 public:
  explicit Publisher(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {}

  Status mqtt(const PushMqtt& p, const std::string& payload) {
    mqtt::Client* c = client(p.host, p.port);
    if (!c) return {Code::kUnavailable, "cannot create an MQTT client"};
    Status s = c->publish(p.topic, payload, p.qos, p.retained);
    if (!s)
      return {s.code(),
              "MQTT publish to " + p.host + ":" + std::to_string(p.port) + ": " + s.message()};
    return {};
  }

  static Status http(const PushHttp& p, const std::string& payload) {
    auto r = net::http_request_sync(
        nullptr, p.host, static_cast<uint16_t>(p.port),
        {"POST", p.path, {{"content-type", "application/json"}}, payload, ""}, p.timeout);
    std::string where = p.host + ":" + std::to_string(p.port);
    if (!r.status) return {r.status.code(), "HTTP push to " + where + ": " + r.status.message()};
    if (r.http_status / 100 != 2)
      return {Code::kUnavailable,
              "HTTP push to " + where + " answered " + std::to_string(r.http_status)};
    return {};
  }

 private:
  // One client per broker, connecting (and reconnecting) in the background;
  // readings published while the broker is away wait in its bounded queue.
  mqtt::Client* client(const std::string& host, int port) {
    std::lock_guard lk(mu_);
    std::string key = host + ":" + std::to_string(port);
    if (auto it = clients_.find(key); it != clients_.end()) return it->second.get();
    mqtt::Options o;
    o.host = host;
    o.port = port;
    o.client_id =
        "kedge-mapper-" + std::to_string(::getpid()) + "-" + std::to_string(kedge::now_ms());
    auto log = log_;
    auto c = mqtt::Client::create(std::move(o), {}, [log, key](bool up, const std::string& why) {
      if (!up) log->warn("MQTT broker {}: {}; retrying in the background", key, why);
    });
    if (!c.ok()) {
      log_->warn("{}", c.status.message());
      return nullptr;
    }
    return (clients_[key] = std::move(c.value)).get();
  }

  std::shared_ptr<spdlog::logger> log_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<mqtt::Client>> clients_;
};

// ---- one device ----

// A device is a job of the engine's pool (device_pool.h): each step connects
// if needed, runs posted tasks, writes desired values, collects and reports
// what is due, checks health, and returns when it is due next.
class Engine::Worker final : public DevicePool::Job {
 public:
  Worker(Engine& e, Device d, std::unique_ptr<Driver> drv, Status refused)
      : e_(e), dev_(std::move(d)), drv_(std::move(drv)), refused_(std::move(refused)) {
    backoff_ = e_.opts_.initial_backoff;
    e_.pool_->wake(this);
  }
  ~Worker() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    e_.pool_->cancel(this);  // waits for a step in progress
    if (connected_) drv_->disconnect();
    for (auto& t : tasks_) t(nullptr);  // refused: the device is gone
  }

  // New desired values (the rest of the device unchanged).
  void update_desired(const Device& d) {
    {
      std::lock_guard lk(mu_);
      for (auto& p : dev_.properties)
        if (auto* np = d.property(p.name)) p.desired = np->desired;
      desired_changed_ = true;
    }
    e_.pool_->wake(this);
  }

  void post(std::function<void(Driver*)> task) {
    {
      std::lock_guard lk(mu_);
      if (!stop_) {
        tasks_.push_back(std::move(task));
        task = nullptr;
      }
    }
    if (task) return task(nullptr);
    e_.pool_->wake(this);
  }

  json::object snapshot() const {
    std::lock_guard lk(mu_);
    json::array props;
    for (auto& p : dev_.properties) {
      json::object o{{"name", p.name}, {"type", p.type}};
      if (auto it = last_.find(p.name); it != last_.end()) {
        o["value"] = it->second.value;
        o["timestamp"] = it->second.timestamp_ms;
      }
      if (p.desired) o["desired"] = *p.desired;
      props.push_back(std::move(o));
    }
    json::object out{{"name", dev_.name},   {"namespace", dev_.ns},
                     {"model", dev_.model}, {"protocol", dev_.protocol},
                     {"state", state_},     {"properties", std::move(props)}};
    if (!reason_.empty()) out["reason"] = reason_;
    return out;
  }

  const Device& device() const { return dev_; }

 private:
  struct Schedule {
    Clock::time_point collect, report;
  };

  void set_state(const std::string& state, const std::string& reason) {
    bool changed;
    {
      std::lock_guard lk(mu_);
      changed = state != state_;
      state_ = state;
      reason_ = reason;
    }
    if (changed) {
      if (state == "online")
        e_.log_->info("device {} is online", dev_.id());
      else
        e_.log_->warn("device {} is {}: {}", dev_.id(), state, reason);
    }
    if (changed || !state_reported_) {
      Status s = e_.uplink_.report_state(dev_, state);
      state_reported_ = s.is_ok();
      if (!s) e_.log_->debug("state of {} not reported: {}", dev_.id(), s.message());
    }
  }

  bool stopping() const {
    std::lock_guard lk(mu_);
    return stop_;
  }

  void run_tasks() {
    std::deque<std::function<void(Driver*)>> tasks;
    {
      std::lock_guard lk(mu_);
      tasks.swap(tasks_);
    }
    for (auto& t : tasks) t(connected_ ? drv_.get() : nullptr);
  }

  void push(const Property& p, const Reading& r) {
    if (!p.mqtt && !p.http) return;
    std::string payload = json::serialize(json::object{{"deviceName", dev_.name},
                                                       {"deviceNamespace", dev_.ns},
                                                       {"propertyName", p.name},
                                                       {"value", r.value},
                                                       {"type", r.type},
                                                       {"timestamp", r.timestamp_ms}});
    if (p.mqtt) {
      Status s = e_.publisher_->mqtt(*p.mqtt, payload);
      (s ? e_.c_.pushes : e_.c_.push_errors)->inc();
      if (!s) e_.log_->debug("{}: {}", dev_.id(), s.message());
    }
    if (p.http) {
      Status s = Publisher::http(*p.http, payload);
      (s ? e_.c_.pushes : e_.c_.push_errors)->inc();
      if (!s) e_.log_->debug("{}: {}", dev_.id(), s.message());
    }
  }

  // Writes desired values not yet written. Returns false if one failed.
  bool write_desired() {
    std::vector<std::pair<const Property*, std::string>> todo;
    {
      std::lock_guard lk(mu_);
      desired_changed_ = false;
      for (auto& p : dev_.properties)
        if (p.desired && written_[p.name] != *p.desired) todo.emplace_back(&p, *p.desired);
    }
    bool ok = true;
    for (auto& [p, value] : todo) {
      double num = 0;
      Status s;
      if (!p->writable)
        s = {Code::kFailedPrecondition, "property is ReadOnly in its model"};
      else if (p->type != "string" && p->type != "bytes")
        s = parse_number(value, p->type, num);
      if (s) s = drv_->write(*p, value);
      if (s) {
        e_.c_.writes->inc();
        e_.log_->info("device {}: wrote {} = {}", dev_.id(), p->name, value);
        std::lock_guard lk(mu_);
        written_[p->name] = value;
      } else {
        e_.c_.write_errors->inc();
        e_.log_->warn("device {}: cannot write {} = {}: {}", dev_.id(), p->name, value,
                      s.message());
        if (s.code() == Code::kFailedPrecondition || s.code() == Code::kInvalidArgument) {
          std::lock_guard lk(mu_);
          written_[p->name] = value;  // will not get better by retrying
        } else {
          ok = false;
        }
      }
    }
    return ok;
  }

  void disconnect(const std::string& why) {
    drv_->disconnect();
    connected_ = false;
    set_state("unhealthy", why);
  }

  Clock::time_point step() override {
    if (stopping()) return DevicePool::kNever;
    if (!drv_) {
      run_tasks();
      if (!state_reported_) set_state("unhealthy", refused_.message());
      return Clock::now() + e_.opts_.health_cycle;
    }
    if (!connected_) {
      Status s = drv_->connect();
      if (!s) {
        set_state("unhealthy", s.message());
        run_tasks();
        auto at = Clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, e_.opts_.max_backoff);
        return at;
      }
      connected_ = true;
      backoff_ = e_.opts_.initial_backoff;
      failures_ = 0;
      {
        std::lock_guard lk(mu_);
        written_.clear();  // (re)write desired values after a reconnect
      }
      auto now = Clock::now();
      sched_.assign(dev_.properties.size(), {});
      for (size_t i = 0; i < sched_.size(); ++i)
        sched_[i] = {now, now + dev_.properties[i].report_cycle};
      next_health_ = now + e_.opts_.health_cycle;
      retry_write_ = now;
      set_state("online", "");
    }
    run_tasks();
    auto now = Clock::now();
    bool write_due;
    {
      std::lock_guard lk(mu_);
      write_due = desired_changed_ || now >= retry_write_;
    }
    if (write_due && !write_desired()) retry_write_ = now + backoff_;
    // Collect.
    for (size_t i = 0; i < sched_.size(); ++i) {
      const Property& p = dev_.properties[i];
      if (now < sched_[i].collect) continue;
      sched_[i].collect += p.collect_cycle;
      if (sched_[i].collect < now) sched_[i].collect = now + p.collect_cycle;  // fell behind
      std::string value;
      Status s = drv_->read(p, value);
      if (!s) {
        e_.c_.read_errors->inc();
        e_.log_->debug("device {}: read of {} failed: {}", dev_.id(), p.name, s.message());
        if (++failures_ >= e_.opts_.max_read_failures) {
          Status h = drv_->health();
          disconnect(h ? s.message() : h.message());
          return Clock::now();  // reconnect now
        }
        continue;
      }
      failures_ = 0;
      e_.c_.reads->inc();
      Reading r{p.name, value, p.type, kedge::now_ms(), {}};
      {
        std::lock_guard lk(mu_);
        if (auto w = written_.find(p.name); w != written_.end()) r.observed_desired = w->second;
        last_[p.name] = r;
      }
      push(p, r);
    }
    // Report.
    std::vector<Reading> batch;
    for (size_t i = 0; i < sched_.size(); ++i) {
      const Property& p = dev_.properties[i];
      if (now < sched_[i].report) continue;
      sched_[i].report += p.report_cycle;
      if (sched_[i].report < now) sched_[i].report = now + p.report_cycle;
      if (!p.report_to_cloud) continue;
      std::lock_guard lk(mu_);
      if (auto it = last_.find(p.name); it != last_.end()) batch.push_back(it->second);
    }
    if (!batch.empty()) {
      Status s = e_.uplink_.report_status(dev_, batch);
      (s ? e_.c_.reports : e_.c_.report_errors)->inc();
      if (!s) e_.log_->debug("device {}: report failed: {}", dev_.id(), s.message());
    }
    // Health.
    if (now >= next_health_) {
      next_health_ = now + e_.opts_.health_cycle;
      if (Status h = drv_->health(); !h) {
        disconnect(h.message());
        return Clock::now();
      }
      if (!state_reported_) set_state("online", "");
    }
    auto next = next_health_;
    for (auto& sc : sched_) next = std::min({next, sc.collect, sc.report});
    if (retry_write_ > now) next = std::min(next, retry_write_);
    return next;
  }

  Engine& e_;
  Device dev_;  // desired values change under mu_
  std::unique_ptr<Driver> drv_;
  Status refused_;
  mutable std::mutex mu_;
  bool stop_ = false;
  bool desired_changed_ = false;
  std::deque<std::function<void(Driver*)>> tasks_;
  std::map<std::string, Reading> last_;
  std::map<std::string, std::string> written_;
  std::string state_ = "unknown", reason_;
  // Steps only (never two at once):
  bool connected_ = false;
  bool state_reported_ = false;
  std::chrono::milliseconds backoff_{500};
  std::vector<Schedule> sched_;
  Clock::time_point next_health_{}, retry_write_{};
  int failures_ = 0;
};

// ---- the engine ----

Engine::Engine(MapperInfo info, Uplink& uplink, std::shared_ptr<spdlog::logger> log,
               MetricsRegistry& m, EngineOptions opts)
    : info_(std::move(info)),
      uplink_(uplink),
      log_(std::move(log)),
      opts_(opts),
      publisher_(std::make_unique<Publisher>(log_)),
      pool_(std::make_unique<DevicePool>(opts.max_threads)) {
  Labels l{{"mapper", info_.name}};
  c_.reads = &m.counter("kedge_mapper_reads_total", "Property reads", l);
  c_.read_errors = &m.counter("kedge_mapper_read_errors_total", "Failed property reads", l);
  c_.writes = &m.counter("kedge_mapper_writes_total", "Desired values written", l);
  c_.write_errors = &m.counter("kedge_mapper_write_errors_total", "Failed writes", l);
  c_.reports = &m.counter("kedge_mapper_reports_total", "Status reports to the edge", l);
  c_.report_errors =
      &m.counter("kedge_mapper_report_errors_total", "Status reports that failed", l);
  c_.pushes = &m.counter("kedge_mapper_pushes_total", "Readings pushed (MQTT, HTTP)", l);
  c_.push_errors = &m.counter("kedge_mapper_push_errors_total", "Pushes that failed", l);
  c_.devices = &m.gauge("kedge_mapper_devices", "Devices run by the mapper", l);
}

Engine::~Engine() { stop(); }

void Engine::stop() {
  std::map<std::string, Entry> devs;
  {
    std::lock_guard lk(mu_);
    devs.swap(devices_);
  }
  devs.clear();  // each waits for a step in progress
  c_.devices->set(0);
}

const json::value* Engine::model_for(const json::value& device) const {
  std::string ns = "default", model;
  if (auto* md = device.as_object().if_contains("metadata"); md && md->is_object())
    if (auto* n = md->as_object().if_contains("namespace");
        n && n->is_string() && !n->as_string().empty())
      ns = n->as_string();
  if (auto* spec = device.as_object().if_contains("spec"); spec && spec->is_object())
    if (auto* ref = spec->as_object().if_contains("deviceModelRef"); ref && ref->is_object())
      if (auto* n = ref->as_object().if_contains("name"); n && n->is_string())
        model = n->as_string();
  auto it = models_.find(ns + "/" + model);
  return it == models_.end() ? nullptr : &it->second;
}

Status Engine::start_device(const std::string& key, Entry& e, const json::value* model) {
  Device d;
  Status s = parse_device(e.object, model, d);
  if (s && d.protocol != info_.protocol)
    s = invalid_argument("device " + key + " uses protocol '" + d.protocol + "', this mapper '" +
                         info_.protocol + "'");
  std::unique_ptr<Driver> drv;
  if (s) s = info_.factory(d, drv);
  if (s && !drv) s = internal_error("the mapper's factory made no driver");
  if (!s) {
    log_->error("device {} refused: {}", key, s.message());
    drv.reset();
    if (d.name.empty()) return s;  // not even a name: nothing to run
  }
  e.worker = std::make_unique<Worker>(*this, std::move(d), std::move(drv), s);
  return s;
}

Status Engine::upsert_model(const json::value& model) {
  if (!model.is_object()) return invalid_argument("a DeviceModel must be a JSON object");
  std::string key = key_of(model);
  std::lock_guard lk(mu_);
  auto it = models_.find(key);
  if (it != models_.end() && json::serialize(it->second) == json::serialize(model)) return {};
  models_[key] = model;
  // Devices of this model start over with its types and access modes.
  for (auto& [dkey, e] : devices_)
    if (model_for(e.object) == &models_[key]) {
      e.worker.reset();  // waits for a step in progress
      (void)start_device(dkey, e, &models_[key]);
    }
  return {};
}

void Engine::remove_model(const std::string& ns, const std::string& name) {
  std::lock_guard lk(mu_);
  models_.erase(ns + "/" + name);
}

Status Engine::upsert_device(const json::value& device) {
  if (!device.is_object()) return invalid_argument("a Device must be a JSON object");
  std::string key = key_of(device);
  uint64_t access = access_key(device);
  std::lock_guard lk(mu_);
  auto it = devices_.find(key);
  if (it != devices_.end() && it->second.worker && it->second.access_key == access) {
    // Only desired values (or nothing) changed.
    it->second.object = device;
    Device d;
    if (Status s = parse_device(device, model_for(device), d); !s) return s;
    it->second.worker->update_desired(d);
    return {};
  }
  Entry& e = devices_[key];
  e.worker.reset();  // waits for a step of the old one
  e.object = device;
  e.access_key = access;
  Status s = start_device(key, e, model_for(device));
  if (!e.worker) devices_.erase(key);
  c_.devices->set(static_cast<int64_t>(devices_.size()));
  return s;
}

void Engine::remove_device(const std::string& ns, const std::string& name) {
  std::unique_ptr<Worker> w;
  {
    std::lock_guard lk(mu_);
    auto it = devices_.find(ns + "/" + name);
    if (it == devices_.end()) return;
    w = std::move(it->second.worker);
    devices_.erase(it);
    c_.devices->set(static_cast<int64_t>(devices_.size()));
  }
  log_->info("device {}/{} removed", ns, name);
}

void Engine::reset(const std::vector<json::value>& models,
                   const std::vector<json::value>& devices) {
  std::set<std::string> keep;
  for (auto& d : devices) keep.insert(key_of(d));
  std::vector<std::pair<std::string, std::string>> gone;
  {
    std::lock_guard lk(mu_);
    models_.clear();
    for (auto& m : models)
      if (m.is_object()) models_[key_of(m)] = m;
    for (auto& [k, e] : devices_)
      if (!keep.count(k)) gone.emplace_back(k.substr(0, k.find('/')), k.substr(k.find('/') + 1));
  }
  for (auto& [ns, name] : gone) remove_device(ns, name);
  for (auto& d : devices) (void)upsert_device(d);
}

std::vector<std::string> Engine::devices() const {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (auto& [k, e] : devices_) out.push_back(k);
  return out;
}

json::value Engine::device_object(const std::string& ns, const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = devices_.find(ns + "/" + name);
  return it == devices_.end() ? json::value() : it->second.object;
}

std::optional<json::object> Engine::snapshot(const std::string& ns, const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = devices_.find(ns + "/" + name);
  if (it == devices_.end() || !it->second.worker) return std::nullopt;
  return it->second.worker->snapshot();
}

void Engine::read_now(const std::string& ns, const std::string& name, const std::string& property,
                      std::function<void(Status, Reading)> done) {
  std::lock_guard lk(mu_);
  auto it = devices_.find(ns + "/" + name);
  if (it == devices_.end() || !it->second.worker)
    return done(not_found("no device " + ns + "/" + name), {});
  Worker* w = it->second.worker.get();
  const Property* p = w->device().property(property);
  if (!p) return done(not_found("device " + ns + "/" + name + " has no property " + property), {});
  Property prop = *p;
  w->post([this, prop, done = std::move(done)](Driver* drv) {
    if (!drv) return done({Code::kUnavailable, "the device is not connected"}, {});
    std::string value;
    Status s = drv->read(prop, value);
    (s ? c_.reads : c_.read_errors)->inc();
    done(s, Reading{prop.name, value, prop.type, kedge::now_ms(), {}});
  });
}

}  // namespace kedge::mapper
