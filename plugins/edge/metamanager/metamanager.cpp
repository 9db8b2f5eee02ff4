// metamanager: the edge's metadata cache (edge/pkg/metamanager in KubeEdge 1.12).
//
// * What the cloud sends (insert, update, delete through edgehub) is written
//   to the `meta` table — KubeEdge 1.12's exact DDL, so a stock edge could
//   take the database over — in batched transactions (WAL, synchronous
//   FULL), and ACKed only once its batch is committed. Then it is handed to
//   the local consumer of its type (edged for pods, configmaps and secrets,
//   twin for devices), if that plugin runs.
// * Other plugins query it: `<ns>/<type>[/<name>]` answered from the cache as
//   a JSON array of the stored values (KubeEdge's reply format). Configmaps,
//   secrets and the node go to the cloud first while it is connected (the
//   answer is stored), and come from the cache when it is not.
// * What local plugins report (updates, patches, deletes of their own
//   objects) is saved and sent to the cloud through edgehub; a sync
//   request's answer goes back to the requester.
// * Restarted without the cloud, everything is still in the database:
//   plugins query their state back (offline autonomy).
#include <spdlog/logger.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <set>

#include "contracts/modules.h"
#include "contracts/wire.h"
#include "device_versions.h"
#include "kedge/common/json.h"
#include "kedge/common/sqlite.h"
#include "kedge/plugin.h"

namespace {

namespace json = boost::json;
using kedge::Code;
using kedge::Message;
using kedge::MessagePtr;
using kedge::Status;
using namespace std::chrono_literals;

// KubeEdge 1.12's meta table, as its edgecore creates it (edge/pkg/common/dbm).
const std::vector<std::string> kSchema = {
    "CREATE TABLE IF NOT EXISTS `meta` (`key` varchar(256) NOT NULL PRIMARY KEY, "
    "`type` varchar(32) NOT NULL DEFAULT '', `value` text);",
};

struct Parts {
  std::string ns, type, name;
};
// <ns>/<type>[/<name>] (edge view); device-style resources have other shapes.
Parts split(const std::string& r) {
  Parts p;
  size_t a = r.find('/');
  if (a == std::string::npos) return p;
  size_t b = r.find('/', a + 1);
  p.ns = r.substr(0, a);
  p.type = r.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
  if (b != std::string::npos) p.name = r.substr(b + 1);
  return p;
}

namespace peers = kedge::contracts;
namespace wire = kedge::contracts::wire;

struct Settings {
  std::string db_path;
  int64_t remote_query_timeout_ms = 0;
  bool local_queries_only = false;
  std::string edgehub, edged, twin, metaserver;
};

constexpr kedge::Setting<Settings> kSettings[] = {
    {"db_path", &Settings::db_path, "\"\"",
     "SQLite database (default <data_dir>/edgecore.db); its `meta` table is KubeEdge's."},
    {"remote_query_timeout_ms", &Settings::remote_query_timeout_ms, "60000",
     "How long a query or report waits for the cloud's answer.", false, 1, 3600000},
    {"local_queries_only", &Settings::local_queries_only, "false",
     "Answer every query from the cache, even while the cloud is connected."},
    peers::peer_setting(peers::kEdgeHub, &Settings::edgehub, "The module the cloud is reached by."),
    peers::peer_setting(peers::kEdged, &Settings::edged,
                        "The module pods, configmaps and secrets are handed to."),
    peers::peer_setting(peers::kTwin, &Settings::twin,
                        "The module devices, models and memberships are handed to."),
    peers::peer_setting(peers::kMetaServer, &Settings::metaserver,
                        "The module that serves watches from the stored changes."),
};
constexpr auto kConfig = kedge::config_keys(kSettings);
constexpr kedge::PeerDecl kPeers[] = {
    {peers::kEdgeHub.key, "ACKs (response), reports and queries up to the cloud (sync)", true},
    {peers::kEdged.key, "stored pod/configmap/secret changes", true},
    {peers::kTwin.key, "stored device/devicemodel/membership changes", true},
    {peers::kMetaServer.key, "every stored change, for watches", true},
};

std::string uid_of(const json::value& v) {
  auto* o = v.if_object();
  if (!o) return {};
  auto* md = o->if_contains("metadata");
  if (!md || !md->is_object()) return {};
  auto* uid = md->as_object().if_contains("uid");
  return uid && uid->is_string() ? std::string(uid->as_string()) : std::string();
}

class MetaManager final : public kedge::Plugin {
 public:
  Status init(kedge::Context& ctx, const kedge::Config& cfg) override {
    ctx_ = &ctx;
    log_ = ctx.logger();
    s_ = kedge::read_settings(kSettings, cfg);
    std::string path = s_.db_path;
    if (path.empty()) path = (ctx.data_dir() / "edgecore.db").string();
    kedge::sqlite::Options o;
    o.synchronous_full = true;  // the ACK promises the object is on disk
    auto db = kedge::sqlite::Db::open(path, o);
    if (!db.status) return db.status;
    db_ = std::move(db.value);
    if (Status s = db_->migrate("metamanager", kSchema); !s) return s;
    auto prep = [&](kedge::sqlite::Stmt& st, const char* sql) {
      auto p = db_->prepare(sql);
      if (p.status) st = std::move(p.value);
      return p.status;
    };
    Status s;
    if (!(s = prep(put_, "INSERT OR REPLACE INTO meta(key, type, value) VALUES(?, ?, ?)")))
      return s;
    if (!(s = prep(del_, "DELETE FROM meta WHERE key = ?"))) return s;
    if (!(s = prep(get_, "SELECT value FROM meta WHERE key = ?"))) return s;
    if (!(s = prep(by_type_, "SELECT value FROM meta WHERE type = ? AND key LIKE ? ORDER BY key")))
      return s;
    if (!(s = prep(count_, "SELECT COUNT(*) FROM meta"))) return s;
    commit_ = std::make_unique<kedge::sqlite::GroupCommit>(*db_, ctx.executor());
    auto& m = ctx.metrics();
    stored_ = &m.counter("kedge_metamanager_stored_total", "Objects written to the cache");
    queries_ = &m.counter("kedge_metamanager_queries_total", "Queries answered");
    remote_ = &m.counter("kedge_metamanager_remote_queries_total", "Queries sent to the cloud");
    objects_ = &m.gauge("kedge_metamanager_objects", "Rows in the meta table");
    update_count();
    return {};
  }
  Status start() override { return {}; }
  Status stop() override {
    commit_->flush();
    return {};
  }

  void on_message(const MessagePtr& m) override {
    const std::string& op = m->route.operation;
    if (op == kedge::op::kConnect) {
      connected_ = m->content == json::value("cloud_connected");
      log_->info("cloud {}", connected_ ? "connected" : "disconnected");
      return;
    }
    if (op == kedge::op::kQuery || op == "get") return query(m);
    if (m->is_response()) return;
    if (from_cloud(*m))
      cloud_change(m);
    else
      local_report(m);
  }

 private:
  // edgehub hands over what came from the cloud with the cloud side's
  // source module (edgecontroller, devicecontroller, ...).
  static bool from_cloud(const Message& m) { return wire::is_cloud_source(m.route.source); }

  void update_count() {
    count_.reset();
    auto r = count_.step();
    if (r.status && r.row) objects_->set(count_.int64(0));
    count_.reset();
  }

  void ack(const MessagePtr& m) {
    (void)ctx_->send(s_.edgehub, kedge::share(kedge::new_response(*m, json::string("OK"))), 5s);
  }

  // Hands a stored change to the plugin that acts on it, if it runs.
  void hand_over(const MessagePtr& m, const std::string& type) {
    std::string to =
        type == "device" || type == "devicemodel" || type == "membership" ? s_.twin : s_.edged;
    Message copy = *m;
    copy.route.source = ctx_->name();
    Status s = ctx_->send(to, kedge::share(std::move(copy)));
    if (!s && s.code() != Code::kNotFound)
      log_->warn("{} {} not handed to {}: {}", m->route.operation, m->route.resource, to,
                 s.message());
  }

  // metaserver (if it runs) serves watches from this feed of stored changes.
  void publish(const MessagePtr& m) {
    Message copy = *m;
    copy.route.source = ctx_->name();
    Status s = ctx_->send(s_.metaserver, kedge::share(std::move(copy)));
    if (!s && s.code() != Code::kNotFound)
      log_->warn("change of {} not passed to metaserver: {}", m->route.resource, s.message());
  }

  void cloud_change(MessagePtr m) {
    // A KubeEdge 1.12–1.14 cloud sends v1alpha2 devices and models: they
    // are stored, served and acted on as v1beta1 (what the twin, dmi and
    // mappers read).
    if (const auto& c = m->content; kedge::devices::is_v1alpha2(c)) {
      Message copy = *m;
      copy.content = kedge::json_path::string_at(c, {"kind"}) == "DeviceModel"
                         ? kedge::devices::model_from_v1alpha2(c)
                         : kedge::devices::device_from_v1alpha2(c);
      m = kedge::share(std::move(copy));
    }
    const std::string& key = m->route.resource;
    Parts p = split(key);
    const std::string& op = m->route.operation;
    std::string value = json::serialize(m->content);
    auto done = [this, m, type = p.type](Status s) {
      if (!s) {
        // Not ACKed: the cloud sends it again.
        log_->error("cannot store {} {}: {}", m->route.operation, m->route.resource, s.message());
        return;
      }
      stored_->inc();
      update_count();
      ack(m);
      hand_over(m, type);
      publish(m);
    };
    if (op == kedge::op::kDelete) {
      // A pod goes only if it is the one stored (same UID), with its status
      // and patch entries.
      std::vector<std::string> keys = {key};
      if (p.type == "pod") {
        std::string stored_uid = uid_of(read(key));
        std::string uid = uid_of(m->content);
        if (m->content.is_string()) uid = std::string(m->content.as_string());
        if (!uid.empty() && !stored_uid.empty() && uid != stored_uid) {
          log_->info("delete of {} for UID {} ignored: the stored pod is {}", key, uid, stored_uid);
          ack(m);
          return;
        }
        keys.push_back(p.ns + "/podstatus/" + p.name);
        keys.push_back(p.ns + "/podpatch/" + p.name);
      }
      commit_->add(
          [this, keys] {
            for (auto& k : keys) {
              del_.reset();
              del_.bind(1, k);
              if (Status s = del_.run(); !s) return s;
            }
            return Status{};
          },
          done);
      return;
    }
    if (op != kedge::op::kInsert && op != kedge::op::kUpdate && op != kedge::op::kPatch &&
        op != kedge::op::kResponse) {
      log_->debug("{} on {} from the cloud: nothing to store", op, key);
      ack(m);
      return;
    }
    commit_->add([this, key, type = p.type, value] { return put(key, type, value); }, done);
  }

  Status put(const std::string& key, const std::string& type, const std::string& value) {
    put_.reset();
    put_.bind(1, key).bind(2, type).bind(3, value);
    return put_.run();
  }

  json::value read(const std::string& key) {
    get_.reset();
    get_.bind(1, key);
    auto r = get_.step();
    json::value v;
    if (r.status && r.row) {
      json::error_code ec;
      v = json::parse(get_.text(0), ec);
      if (ec) v = json::string(get_.text(0));
    }
    get_.reset();
    return v;
  }

  // Stored values for a query, as KubeEdge answers: a JSON array of the
  // value strings.
  json::array local(const Parts& p, const std::string& key) {
    json::array out;
    if (!p.name.empty()) {
      get_.reset();
      get_.bind(1, key);
      auto r = get_.step();
      if (r.status && r.row) out.push_back(json::string(get_.text(0)));
      get_.reset();
      return out;
    }
    by_type_.reset();
    // "*/<type>": every namespace.
    by_type_.bind(1, p.type).bind(2, p.ns == "*" ? std::string("%") : p.ns + "/%");
    for (;;) {
      auto r = by_type_.step();
      if (!r.status || !r.row) break;
      out.push_back(json::string(by_type_.text(0)));
    }
    by_type_.reset();
    return out;
  }

  void reply(const MessagePtr& req, json::value content) {
    Message r = kedge::new_response(*req, std::move(content));
    r.route.source = ctx_->name();
    (void)ctx_->respond(kedge::share(std::move(r)));
  }

  void query(const MessagePtr& m) {
    const std::string& key = m->route.resource;
    Parts p = split(key);
    queries_->inc();
    static const std::set<std::string> kRemote = {"configmap", "secret", "node",
                                                  "serviceaccounttoken", "lease"};
    bool remote = connected_ && kRemote.count(p.type) && !p.name.empty() && !s_.local_queries_only;
    if (!remote) return reply(m, local(p, key));
    // Ask the cloud; store and return its answer; the cache if it fails.
    remote_->inc();
    Message q = kedge::make_message(ctx_->name(), std::string(wire::group::kResource), "query", key,
                                    m->content);
    q.header.sync = true;
    ctx_->request(
        s_.edgehub, kedge::share(std::move(q)),
        std::chrono::milliseconds(s_.remote_query_timeout_ms),
        [this, m, p, key](Status s, MessagePtr r) {
          json::value obj;
          if (s && r && r->content.is_object()) {
            auto& o = r->content.as_object();
            obj = o.contains("Object") ? o.at("Object") : r->content;  // node answers wrap it
            if (o.contains("Err") && !o.at("Err").is_null()) obj = nullptr;
          }
          if (obj.is_null() || !obj.is_object()) {
            log_->debug("remote query of {} failed ({}); answering from the cache", key,
                        s ? "no object" : s.message());
            return reply(m, local(p, key));
          }
          std::string value = json::serialize(obj);
          commit_->add([this, key, type = p.type, value] { return put(key, type, value); },
                       [this](Status) { update_count(); });
          reply(m, json::array{json::string(value)});
        });
  }

  // A local plugin's own report (node registration, pod status, ...): saved
  // (except leases), then sent up; a sync request's answer goes back to it.
  void local_report(const MessagePtr& m) {
    Parts p = split(m->route.resource);
    if (m->route.operation == kedge::op::kDelete) {
      del_.reset();
      del_.bind(1, m->route.resource);
      (void)del_.run();
    } else if (p.type != "lease") {
      std::string value = json::serialize(m->content);
      commit_->add(
          [this, key = m->route.resource, type = p.type, value] { return put(key, type, value); },
          [this](Status) { update_count(); });
    }
    Message up = *m;
    up.route.source = ctx_->name();
    if (!m->header.sync) {
      (void)ctx_->send(s_.edgehub, kedge::share(std::move(up)), 5s);
      return;
    }
    up.header.id = kedge::new_uuid();
    ctx_->request(
        s_.edgehub, kedge::share(std::move(up)),
        std::chrono::milliseconds(s_.remote_query_timeout_ms), [this, m](Status s, MessagePtr r) {
          if (!s || !r) {
            // An answer (parent = the request), with op "error".
            Message err =
                kedge::new_response(*m, json::string("no answer from the cloud: " +
                                                     (s ? std::string("empty") : s.message())));
            err.route.operation = std::string(kedge::op::kError);
            (void)ctx_->respond(kedge::share(std::move(err)));
            return;
          }
          reply(m, r->content);
        });
  }

  kedge::Context* ctx_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
  Settings s_;
  std::unique_ptr<kedge::sqlite::Db> db_;
  std::unique_ptr<kedge::sqlite::GroupCommit> commit_;
  kedge::sqlite::Stmt put_, del_, get_, by_type_, count_;
  bool connected_ = false;
  kedge::Counter *stored_ = nullptr, *queries_ = nullptr, *remote_ = nullptr;
  kedge::Gauge* objects_ = nullptr;
};

}  // namespace

KEDGE_PLUGIN(MetaManager, {.name = "metamanager",
                           .version = "0.1.0",
                           .group = "meta",
                           .description = "The edge's metadata cache: persists what the cloud "
                                          "sends before ACKing it, answers queries, offline.",
                           .config = kConfig,
                           .peers = kPeers})
