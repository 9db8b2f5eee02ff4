#include "kedge/common/sqlite.h"

#include <sqlite3.h>

#include <boost/asio/post.hpp>

namespace kedge::sqlite {

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(s_);
    db_ = o.db_;
    s_ = o.s_;
    o.s_ = nullptr;
  }
  return *this;
}

Stmt::~Stmt() { sqlite3_finalize(s_); }

Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view t) {
  sqlite3_bind_text(s_, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_blob(int i, std::string_view b) {
  sqlite3_bind_blob(s_, i, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

Stmt::StepResult Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return {{}, true};
  if (rc == SQLITE_DONE) return {{}, false};
  return {internal_error(std::string("sqlite: ") + sqlite3_errmsg(db_) +
                         " (in: " + sqlite3_sql(s_) + ")"),
          false};
}

Status Stmt::run() {
  for (;;) {
    auto r = step();
    if (!r.status || !r.row) {
      sqlite3_reset(s_);
      return r.status;
    }
  }
}

void Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

int64_t Stmt::int64(int col) const { return sqlite3_column_int64(s_, col); }
std::string Stmt::text(int col) const {
  const void* p = sqlite3_column_blob(s_, col);
  int n = sqlite3_column_bytes(s_, col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}
bool Stmt::is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

Db::~Db() { sqlite3_close_v2(db_); }

Status Db::error(std::string_view what) const {
  return internal_error("sqlite " + path_ + ": " + std::string(what) + ": " + sqlite3_errmsg(db_));
}

Db::OpenResult Db::open(const std::string& path, const Options& opts) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Db> db(new Db(raw, path));
  if (rc != SQLITE_OK)
    return {internal_error("cannot open database " + path + ": " +
                           (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc))),
            nullptr};
  sqlite3_busy_timeout(raw, opts.busy_timeout_ms);
  std::string pragmas = "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=";
  pragmas += opts.synchronous_full ? "FULL;" : "NORMAL;";
  pragmas += " PRAGMA cache_size=-" + std::to_string(opts.cache_kib) + ";";
  if (Status s = db->exec(pragmas); !s) return {s, nullptr};
  return {{}, std::move(db)};
}

Status Db::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return internal_error("sqlite " + path_ + ": " + msg + " (in: " + s.substr(0, 120) + ")");
  }
  return {};
}

Db::PrepareResult Db::prepare(std::string_view sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &st, nullptr) != SQLITE_OK)
    return {error("cannot prepare \"" + std::string(sql.substr(0, 120)) + "\""), {}};
  return {{}, Stmt(db_, st)};
}

int64_t Db::schema_version(std::string_view component) {
  auto p = prepare("SELECT version FROM kedge_schema WHERE component = ?");
  if (!p.status) return 0;
  p.value.bind(1, component);
  auto r = p.value.step();
  return r.row ? p.value.int64(0) : 0;
}

Status Db::migrate(std::string_view component, const std::vector<std::string>& steps) {
  if (Status s = exec("CREATE TABLE IF NOT EXISTS kedge_schema ("
                      "component TEXT PRIMARY KEY, version INTEGER NOT NULL)");
      !s)
    return s;
  int64_t have = schema_version(component);
  if (have > static_cast<int64_t>(steps.size()))
    return {Code::kFailedPrecondition, "database " + path_ + " has schema version " +
                                           std::to_string(have) + " of '" + std::string(component) +
                                           "', newer than this build knows (" +
                                           std::to_string(steps.size()) + ")"};
  for (size_t v = static_cast<size_t>(have); v < steps.size(); ++v) {
    Transaction tx(*this);
    if (!tx.status()) return tx.status();
    if (Status s = exec(steps[v]); !s) return s;
    auto up = prepare(
        "INSERT INTO kedge_schema(component, version) VALUES(?, ?) "
        "ON CONFLICT(component) DO UPDATE SET version = excluded.version");
    if (!up.status) return up.status;
    up.value.bind(1, component).bind(2, static_cast<int64_t>(v + 1));
    if (Status s = up.value.run(); !s) return s;
    if (Status s = tx.commit(); !s) return s;
  }
  return {};
}

Status Db::begin() { return exec("BEGIN IMMEDIATE"); }
Status Db::commit() { return exec("COMMIT"); }
Status Db::rollback() { return exec("ROLLBACK"); }
int64_t Db::changes() const { return sqlite3_changes64(db_); }
int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

Transaction::~Transaction() {
  if (status_ && !done_) (void)db_.rollback();
}

Status Transaction::commit() {
  if (!status_) return status_;
  done_ = true;
  return db_.commit();
}

GroupCommit::~GroupCommit() {
  *alive_ = false;
  // Commit what is open, but run no callbacks: they belong to an owner that
  // is being destroyed (owners flush() in their stop()).
  waiting_.clear();
  flush();
}

GroupCommit::GroupCommit(Db& db, boost::asio::any_io_executor ex,
                         std::chrono::microseconds max_delay, size_t max_batch)
    : db_(db),
      ex_(std::move(ex)),
      max_delay_(max_delay),
      max_batch_(max_batch),
      timer_(std::make_unique<boost::asio::steady_timer>(ex_)) {}

void GroupCommit::add(const std::function<Status()>& write, std::function<void(Status)> then) {
  if (!open_) {
    if (Status s = db_.begin(); !s) {
      if (then) then(s);
      return;
    }
    open_ = true;
    writes_ = 0;
    timer_->expires_after(max_delay_);
    timer_->async_wait([this, alive = alive_](boost::system::error_code ec) {
      if (!ec && *alive) flush();
    });
  }
  Status s = write();
  if (!s) {
    if (then) then(s);
  } else if (then) {
    waiting_.push_back(std::move(then));
  }
  // A full batch is committed by a posted task, never inside add(): its
  // callbacks must not run inside the caller's own code.
  if (++writes_ == max_batch_)
    boost::asio::post(ex_, [this, alive = alive_] {
      if (*alive) flush();
    });
}

void GroupCommit::flush() {
  if (!open_) return;
  open_ = false;
  timer_->cancel();
  Status s = db_.commit();
  if (!s) (void)db_.rollback();
  ++batches_;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting) w(s);
}

}  // namespace kedge::sqlite
