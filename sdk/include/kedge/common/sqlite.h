// A small SQLite helper: open with WAL, per-component versioned migrations,
// prepared statements and transactions. A Db is used from one thread at a
// time (each plugin owns its connection and runs it off the io_context).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kedge/export.h"
#include "kedge/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kedge::sqlite {

class KEDGE_EXPORT Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  ~Stmt();

  // Binding, 1-based like SQLite. Each returns *this; errors surface at step().
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, std::string_view text);
  Stmt& bind_blob(int i, std::string_view bytes);
  Stmt& bind_null(int i);

  // One step: true with a row, false when done.
  struct StepResult {
    Status status;
    bool row = false;
  };
  StepResult step();
  // Steps to completion (for statements without rows).
  Status run();
  void reset();  // also clears bindings

  int64_t int64(int col) const;
  std::string text(int col) const;  // also blobs
  bool is_null(int col) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
};

struct Options {
  // FULL: a commit is on disk when it returns (what "persist before ACK"
  // needs). NORMAL: faster, a power cut may lose the last commits.
  bool synchronous_full = true;
  int busy_timeout_ms = 5000;
  // The page cache of this connection (PRAGMA cache_size), in KiB. An edge
  // keeps it small (reads that miss it come from the OS's page cache);
  // SQLite's own default is 2000.
  int cache_kib = 256;
};

class KEDGE_EXPORT Db {
 public:
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  using OpenResult = Result<std::unique_ptr<Db>>;
  // Opens (creating) the database in WAL mode. Errors name the file.
  static OpenResult open(const std::string& path, const Options& opts = {});

  Status exec(std::string_view sql);  // one or more statements, no results
  using PrepareResult = Result<Stmt>;
  PrepareResult prepare(std::string_view sql);

  // Brings `component`'s schema to version steps.size(), running each missing
  // step in its own transaction. Versions live in table kedge_schema.
  Status migrate(std::string_view component, const std::vector<std::string>& steps);
  int64_t schema_version(std::string_view component);

  Status begin();  // BEGIN IMMEDIATE
  Status commit();
  Status rollback();

  int64_t changes() const;
  int64_t last_insert_rowid() const;
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status error(std::string_view what) const;
  sqlite3* db_;
  std::string path_;
};

// Rolls back unless committed.
class KEDGE_EXPORT Transaction {
 public:
  explicit Transaction(Db& db) : db_(db), status_(db.begin()) {}
  ~Transaction();
  const Status& status() const { return status_; }
  Status commit();

 private:
  Db& db_;
  Status status_;
  bool done_ = false;
};

// Group commit: writes share one transaction, committed `max_delay` after
// the first of them or as soon as `max_batch` have been added; each write's
// `then` runs after that commit, with its status. A plugin that must persist
// before it acknowledges (the ACK goes out in `then`) pays one fsync per
// batch, not per message, for at most `max_delay` of added latency.
class KEDGE_EXPORT GroupCommit {
 public:
  GroupCommit(Db& db, boost::asio::any_io_executor ex,
              std::chrono::microseconds max_delay = std::chrono::microseconds(2000),
              size_t max_batch = 512);
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Call on the executor. `write` runs now, inside the batch's transaction;
  // if it fails, `then` gets its error and the batch goes on without it.
  void add(const std::function<Status()>& write, std::function<void(Status)> then = {});
  // Commits the open batch now (also done by the posted task).
  void flush();
  size_t batches() const { return batches_; }

 private:
  Db& db_;
  boost::asio::any_io_executor ex_;
  std::chrono::microseconds max_delay_;
  size_t max_batch_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  size_t writes_ = 0;
  bool open_ = false;
  std::vector<std::function<void(Status)>> waiting_;
  size_t batches_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kedge::sqlite
