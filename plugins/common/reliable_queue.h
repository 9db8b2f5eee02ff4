// The reliable queue of the cloud-edge channel, written once for both ends:
// cloudhub keeps one per node (downstream), edgehub one for its outbox
// (upstream). What it guarantees:
//
// * Persisted before it is sent: an entry becomes sendable only once its
//   row is committed (SQLite, through the plugin's group commit), so a
//   restart never forgets what the peer may already have seen.
// * Two orderings in one queue: keyed entries (an object's version, a whole
//   status report), where a newer entry replaces the queued one of the same
//   key (optionally refusing one whose resourceVersion is not newer), and
//   FIFO entries (key ""), all kept in order.
// * A send window (entries in flight, unACKed) and a QPS budget with burst.
// * ACKs matched by message id (KubeEdge 1.12 matches a response to its
//   request by parentID); an entry not ACKed within ack_timeout is sent
//   again, with the wait doubling up to max_backoff. Entries that expect no
//   ACK leave once written.
// * A capacity: an add beyond it is refused (kFull), never queued at the
//   cost of an older entry; the caller decides (cloudhub marks the node for
//   a full resync).
//
// Not thread-safe: use it on the plugin's strand.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "kedge/common/sqlite.h"
#include "kedge/status.h"

namespace kedge::reliable {

using Clock = std::chrono::steady_clock;

struct Entry {
  std::string key;        // "" : FIFO; otherwise a newer entry of the key replaces this one
  std::string msg_id;     // what an ACK names (its parent id)
  uint64_t rv = 0;        // keyed: the version, for the staleness check
  uint32_t flags = 0;     // the caller's, persisted (sync, delete, ...)
  std::string body;       // the frame sent
  bool await_ack = true;  // false: leaves the queue once written (not persisted: set by the caller)
};

struct Options {
  size_t window = 0;  // entries in flight at once; 0: no limit
  double qps = 0;     // sends (and resends) per second; 0: no limit
  double burst = 1;   // the QPS budget's bucket
  std::chrono::milliseconds ack_timeout{10000};
  std::chrono::milliseconds max_backoff{60000};
  size_t capacity = 0;  // entries per queue; 0: no limit
};

enum class Added { kQueued, kReplaced, kStale, kFull, kDuplicate };

struct PumpStats {
  size_t sent = 0, resent = 0;
  bool waiting = false;  // entries remain to send or to be ACKed
};

// Named queues (one per node on the cloud; one on the edge) in one table.
class Queues {
 public:
  // The table's schema, for the caller's migrations (its own component).
  static std::string schema(const std::string& table);

  Queues(Options opts, sqlite::Db& db, sqlite::GroupCommit& commit, std::string table);

  // Prepares the statements and reads the rows in order; `admit` sees each
  // entry (and may set its key or await_ack from the body), false drops it.
  Status load(const std::function<bool(const std::string& queue, Entry&)>& admit);

  // Queues `e`. `stale_check`: a keyed entry whose rv is not newer than the
  // queued one's is refused (kStale). `persisted` runs once the row is
  // committed (with its status), after which the entry is sendable.
  Added add(const std::string& queue, Entry e, bool stale_check,
            std::function<void(Status)> persisted = {});

  // An ACK (or a reply) for `msg_id`: the entry leaves; nullopt if no entry
  // has that id (an old version's ACK, a duplicate).
  std::optional<Entry> ack(const std::string& queue, const std::string& msg_id);

  // The link went down: everything in flight is sent again, in order, on the
  // next link.
  void link_lost(const std::string& queue);

  // Sends what is due: overdue resends, then new entries while the window
  // and the QPS budget allow. `send` false: the link is backed up; stop.
  PumpStats pump(const std::string& queue, const std::function<bool(const Entry&)>& send,
                  Clock::time_point now = Clock::now());

  size_t size(const std::string& queue) const;
  size_t total() const { return total_; }
  std::vector<std::string> names() const;
  const Options& options() const { return opts_; }

 private:
  struct Slot {
    Entry e;
    bool ready = false;  // committed
    bool inflight = false;
    Clock::time_point sent_at{};
    std::chrono::milliseconds backoff{};
  };
  struct Queue {
    std::map<uint64_t, Slot> slots;                  // by seq
    std::unordered_map<std::string, uint64_t> keys;  // keyed entries
    std::unordered_map<std::string, uint64_t> ids;   // msg_id -> seq
    std::set<uint64_t> unsent;                       // ready, not in flight
    std::set<uint64_t> inflight;
    double tokens = 0;
    Clock::time_point refilled{};
  };
  void erase(const std::string& name, Queue& q, std::map<uint64_t, Slot>::iterator it);
  void erase_row(const std::string& name, uint64_t seq);

  Options opts_;
  sqlite::Db& db_;
  sqlite::GroupCommit& commit_;
  std::string table_;
  sqlite::Stmt insert_, delete_;
  std::map<std::string, Queue> queues_;
  uint64_t next_seq_ = 1;
  size_t total_ = 0;
};

}  // namespace kedge::reliable
