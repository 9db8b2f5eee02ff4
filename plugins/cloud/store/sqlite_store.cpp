// The SQLite backend of the cloud store: one file, WAL, every write its own
// transaction (durable when it returns), an event log for watches that resume
// from a revision, trimmed to `history` events.
#include <map>
#include <mutex>

#include "kedge/common/sqlite.h"
#include "store.h"

namespace kedge::store {

const char* type_name(Event::Type t) {
  switch (t) {
    case Event::Type::kAdded: return "ADDED";
    case Event::Type::kModified: return "MODIFIED";
    case Event::Type::kDeleted: return "DELETED";
  }
  return "?";
}

std::string prefix_end(std::string p) {
  while (!p.empty()) {
    auto c = static_cast<unsigned char>(p.back());
    if (c < 0xff) {
      p.back() = static_cast<char>(c + 1);
      return p;
    }
    p.pop_back();
  }
  return {};
}

namespace {

const std::vector<std::string> kSchema = {
    "CREATE TABLE objects (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    "  create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL);"
    "CREATE TABLE events (rev INTEGER PRIMARY KEY, type INTEGER NOT NULL, key TEXT NOT NULL,"
    "  value TEXT NOT NULL);"
    // revision: the last write's; compacted: events up to it are gone.
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL,"
    "  compacted INTEGER NOT NULL);"
    "INSERT INTO state VALUES (1, 0, 0);",
};

bool has_prefix(const std::string& key, const std::string& prefix) {
  return key.compare(0, prefix.size(), prefix) == 0;
}

// State shared by the store and its watches, so either may go first.
struct Hub {
  std::mutex mu;
  struct Watcher {
    std::string prefix;
    Store::OnEvent on_event;
    Store::OnEnd on_end;
  };
  std::map<uint64_t, Watcher> watchers;
  uint64_t next_id = 1;
  bool closed = false;

  void publish(const Event& e) {  // with mu held
    for (auto& [id, w] : watchers)
      if (has_prefix(e.key, w.prefix)) w.on_event(e);
  }
};

class SqliteWatch final : public Watch {
 public:
  SqliteWatch(std::weak_ptr<Hub> hub, uint64_t id) : hub_(std::move(hub)), id_(id) {}
  ~SqliteWatch() override { cancel(); }
  void cancel() override {
    if (auto h = hub_.lock()) {
      std::lock_guard lock(h->mu);
      h->watchers.erase(id_);
    }
    hub_.reset();
  }

 private:
  std::weak_ptr<Hub> hub_;
  uint64_t id_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<sqlite::Db> db, int64_t history)
      : db_(std::move(db)), history_(history), hub_(std::make_shared<Hub>()) {}

  ~SqliteStore() override {
    std::lock_guard lock(hub_->mu);
    hub_->closed = true;
    for (auto& [id, w] : hub_->watchers)
      if (w.on_end) w.on_end({Code::kUnavailable, "store closed"});
    hub_->watchers.clear();
  }

  Status prepare() {
    auto st = [&](sqlite::Stmt& s, const char* sql) {
      auto p = db_->prepare(sql);
      if (p.status) s = std::move(p.value);
      return p.status;
    };
    Status s;
    if (!(s = st(get_, "SELECT value, create_rev, mod_rev FROM objects WHERE key = ?"))) return s;
    if (!(s = st(list_,
                 "SELECT key, value, create_rev, mod_rev FROM objects WHERE key >= ?1 AND "
                 "(?2 = '' OR key < ?2) ORDER BY key")))
      return s;
    if (!(s = st(put_,
                 "INSERT INTO objects(key, value, create_rev, mod_rev) VALUES(?1, ?2, ?3, ?3) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = ?3")))
      return s;
    if (!(s = st(del_, "DELETE FROM objects WHERE key = ?"))) return s;
    if (!(s = st(event_, "INSERT INTO events(rev, type, key, value) VALUES(?, ?, ?, ?)"))) return s;
    if (!(s = st(state_, "SELECT revision, compacted FROM state WHERE id = 1"))) return s;
    if (!(s = st(set_state_, "UPDATE state SET revision = ?, compacted = ? WHERE id = 1")))
      return s;
    if (!(s = st(trim_, "DELETE FROM events WHERE rev <= ?"))) return s;
    if (!(s = st(since_,
                 "SELECT rev, type, key, value FROM events WHERE rev > ?1 AND key >= ?2 AND "
                 "(?3 = '' OR key < ?3) ORDER BY rev")))
      return s;
    state_.reset();
    auto r = state_.step();
    if (!r.status) return r.status;
    if (!r.row) return internal_error(db_->path() + ": store state row missing");
    revision_ = state_.int64(0);
    compacted_ = state_.int64(1);
    state_.reset();
    return {};
  }

  std::string backend() const override { return "sqlite"; }

  int64_t revision() override {
    std::lock_guard lock(hub_->mu);
    return revision_;
  }

  Result<int64_t> create(const std::string& key, const std::string& value) override {
    std::lock_guard lock(hub_->mu);
    auto cur = read(key);
    if (!cur.status && cur.status.code() != Code::kNotFound) return {cur.status};
    if (cur.ok()) return {{Code::kAlreadyExists, key + " already exists"}};
    return write(Event::Type::kAdded, key, value, 0);
  }

  Result<Object> get(const std::string& key) override {
    std::lock_guard lock(hub_->mu);
    return read(key);
  }

  Result<List> list(const std::string& prefix) override {
    std::lock_guard lock(hub_->mu);
    Result<List> out;
    list_.reset();
    list_.bind(1, prefix).bind(2, prefix_end(prefix));
    for (;;) {
      auto r = list_.step();
      if (!r.status) return {r.status};
      if (!r.row) break;
      out.value.items.push_back({list_.text(0), list_.text(1), list_.int64(2), list_.int64(3)});
    }
    list_.reset();
    out.value.rev = revision_;
    return out;
  }

  Result<int64_t> update(const std::string& key, const std::string& value,
                         int64_t expected_rev) override {
    std::lock_guard lock(hub_->mu);
    auto cur = read(key);
    if (!cur.ok()) return {cur.status};
    if (expected_rev && cur.value.mod_rev != expected_rev)
      return {conflict(key, expected_rev, cur.value.mod_rev)};
    return write(Event::Type::kModified, key, value, cur.value.create_rev);
  }

  Result<Object> remove(const std::string& key, int64_t expected_rev) override {
    std::lock_guard lock(hub_->mu);
    auto cur = read(key);
    if (!cur.ok()) return cur;
    if (expected_rev && cur.value.mod_rev != expected_rev)
      return {conflict(key, expected_rev, cur.value.mod_rev)};
    auto w = write(Event::Type::kDeleted, key, cur.value.value, cur.value.create_rev);
    if (!w.ok()) return {w.status};
    cur.value.mod_rev = w.value;
    return cur;
  }

  Result<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t from_rev,
                                       OnEvent on_event, OnEnd on_end) override {
    std::lock_guard lock(hub_->mu);
    if (from_rev < 0) return {invalid_argument("negative revision")};
    if (from_rev > 0 && from_rev < compacted_)
      return {{Code::kGone, "revision " + std::to_string(from_rev) +
                                " is older than the kept history (oldest resumable: " +
                                std::to_string(compacted_) + ")"}};
    if (from_rev > 0 && from_rev < revision_) {
      since_.reset();
      since_.bind(1, from_rev).bind(2, prefix).bind(3, prefix_end(prefix));
      for (;;) {
        auto r = since_.step();
        if (!r.status) {
          since_.reset();
          return {r.status};
        }
        if (!r.row) break;
        on_event({static_cast<Event::Type>(since_.int64(1)), since_.text(2), since_.text(3),
                  since_.int64(0)});
      }
      since_.reset();
    }
    uint64_t id = hub_->next_id++;
    hub_->watchers[id] = {prefix, std::move(on_event), std::move(on_end)};
    return {{}, std::make_unique<SqliteWatch>(hub_, id)};
  }

 private:
  static Status conflict(const std::string& key, int64_t expected, int64_t actual) {
    return {Code::kConflict, key + ": resourceVersion " + std::to_string(expected) +
                                 " is not the current one (" + std::to_string(actual) + ")"};
  }

  Result<Object> read(const std::string& key) {  // with mu held
    get_.reset();
    get_.bind(1, key);
    auto r = get_.step();
    if (!r.status) return {r.status};
    if (!r.row) return {not_found(key + " not found")};
    Result<Object> o{{}, {key, get_.text(0), get_.int64(1), get_.int64(2)}};
    get_.reset();
    return o;
  }

  // One write in its own transaction, then its event to the watchers.
  Result<int64_t> write(Event::Type type, const std::string& key, const std::string& value,
                        int64_t create_rev) {
    int64_t rev = revision_ + 1;
    int64_t compacted = compacted_;
    sqlite::Transaction tx(*db_);
    if (!tx.status()) return {tx.status()};
    Status s;
    if (type == Event::Type::kDeleted) {
      del_.reset();
      del_.bind(1, key);
      s = del_.run();
    } else {
      put_.reset();
      put_.bind(1, key).bind(2, value).bind(3, rev);
      s = put_.run();
    }
    if (s) {
      event_.reset();
      event_.bind(1, rev).bind(2, static_cast<int64_t>(type)).bind(3, key).bind(4, value);
      s = event_.run();
    }
    if (s && rev - compacted > history_) {
      compacted = rev - history_;
      trim_.reset();
      trim_.bind(1, compacted);
      s = trim_.run();
    }
    if (s) {
      set_state_.reset();
      set_state_.bind(1, rev).bind(2, compacted);
      s = set_state_.run();
    }
    if (s) s = tx.commit();
    if (!s) return {s};
    (void)create_rev;
    revision_ = rev;
    compacted_ = compacted;
    hub_->publish({type, key, value, rev});
    return {{}, rev};
  }

  std::unique_ptr<sqlite::Db> db_;
  int64_t history_;
  std::shared_ptr<Hub> hub_;
  int64_t revision_ = 0, compacted_ = 0;
  sqlite::Stmt get_, list_, put_, del_, event_, state_, set_state_, trim_, since_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite(const SqliteOptions& o) {
  if (o.history < 1) return {invalid_argument("store history must be at least 1 event")};
  sqlite::Options so;
  so.synchronous_full = o.synchronous_full;
  so.cache_kib = 2000;  // the cloud's object store keeps SQLite's default cache
  auto db = sqlite::Db::open(o.path, so);
  if (!db.status) return {db.status};
  if (Status s = db.value->migrate("store", kSchema); !s) return {s};
  auto store = std::make_unique<SqliteStore>(std::move(db.value), o.history);
  if (Status s = store->prepare(); !s) return {s};
  return {{}, std::move(store)};
}

}  // namespace kedge::store
