#include "reliable_queue.h"

#include <algorithm>

namespace kedge::reliable {

std::string Queues::schema(const std::string& table) {
  return "CREATE TABLE " + table +
         " (queue TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, msg_id TEXT NOT NULL,"
         "  rv INTEGER NOT NULL, flags INTEGER NOT NULL, body TEXT NOT NULL,"
         "  PRIMARY KEY (queue, seq));";
}

Queues::Queues(Options opts, sqlite::Db& db, sqlite::GroupCommit& commit, std::string table)
    : opts_(opts), db_(db), commit_(commit), table_(std::move(table)) {}

Status Queues::load(const std::function<bool(const std::string&, Entry&)>& admit) {
  auto ins = db_.prepare("INSERT INTO " + table_ +
                         "(queue, seq, key, msg_id, rv, flags, body) VALUES(?,?,?,?,?,?,?)");
  auto del = db_.prepare("DELETE FROM " + table_ + " WHERE queue = ? AND seq = ?");
  auto sel = db_.prepare("SELECT queue, seq, key, msg_id, rv, flags, body FROM " + table_ +
                         " ORDER BY seq");
  for (auto* p : {&ins, &del, &sel})
    if (!p->status) return p->status;
  insert_ = std::move(ins.value);
  delete_ = std::move(del.value);
  std::vector<std::pair<std::string, uint64_t>> dropped;
  for (;;) {
    auto r = sel.value.step();
    if (!r.status) return r.status;
    if (!r.row) break;
    std::string name = sel.value.text(0);
    uint64_t seq = static_cast<uint64_t>(sel.value.int64(1));
    next_seq_ = std::max(next_seq_, seq + 1);
    Entry e{sel.value.text(2),
            sel.value.text(3),
            static_cast<uint64_t>(sel.value.int64(4)),
            static_cast<uint32_t>(sel.value.int64(5)),
            sel.value.text(6),
            true};
    if (!admit(name, e)) {
      dropped.push_back({name, seq});
      continue;
    }
    Queue& q = queues_[name];
    if (!e.key.empty()) {
      // Two rows of one key (a replacement whose delete was not committed):
      // the newer wins.
      if (auto old = q.keys.find(e.key); old != q.keys.end()) {
        dropped.push_back({name, old->second});
        erase(name, q, q.slots.find(old->second));
      }
      q.keys[e.key] = seq;
    }
    q.ids[e.msg_id] = seq;
    Slot& s = q.slots[seq];
    s.e = std::move(e);
    s.ready = true;
    q.unsent.insert(seq);
    ++total_;
  }
  for (auto& [name, seq] : dropped) erase_row(name, seq);
  return {};
}

Added Queues::add(const std::string& name, Entry e, bool stale_check,
                  std::function<void(Status)> persisted) {
  Queue& q = queues_[name];
  if (q.ids.count(e.msg_id)) return Added::kDuplicate;
  Added outcome = Added::kQueued;
  if (!e.key.empty()) {
    if (auto old = q.keys.find(e.key); old != q.keys.end()) {
      auto it = q.slots.find(old->second);
      if (stale_check && e.rv != 0 && e.rv <= it->second.e.rv) return Added::kStale;
      erase_row(name, it->first);
      erase(name, q, it);  // its ACK, if it comes, no longer counts
      outcome = Added::kReplaced;
    }
  }
  if (outcome == Added::kQueued && opts_.capacity && q.slots.size() >= opts_.capacity)
    return Added::kFull;
  uint64_t seq = next_seq_++;
  if (!e.key.empty()) q.keys[e.key] = seq;
  q.ids[e.msg_id] = seq;
  Slot& s = q.slots[seq];
  s.e = std::move(e);
  ++total_;
  const Entry& ref = s.e;
  commit_.add(
      [&] {
        insert_.reset();
        insert_.bind(1, name).bind(2, static_cast<int64_t>(seq)).bind(3, ref.key);
        insert_.bind(4, ref.msg_id).bind(5, static_cast<int64_t>(ref.rv));
        insert_.bind(6, static_cast<int64_t>(ref.flags)).bind(7, ref.body);
        return insert_.run();
      },
      [this, name, seq, persisted = std::move(persisted)](Status st) {
        auto qi = queues_.find(name);
        if (qi != queues_.end()) {
          auto it = qi->second.slots.find(seq);
          if (it != qi->second.slots.end()) {  // not replaced or ACKed meanwhile
            if (st) {
              it->second.ready = true;
              qi->second.unsent.insert(seq);
            } else {
              erase(name, qi->second, it);  // never sent: nobody has seen it
            }
          }
        }
        if (persisted) persisted(st);
      });
  return outcome;
}

std::optional<Entry> Queues::ack(const std::string& name, const std::string& msg_id) {
  auto qi = queues_.find(name);
  if (qi == queues_.end()) return std::nullopt;
  Queue& q = qi->second;
  auto id = q.ids.find(msg_id);
  if (id == q.ids.end()) return std::nullopt;
  auto it = q.slots.find(id->second);
  Entry e = it->second.e;
  erase_row(name, it->first);
  erase(name, q, it);
  return e;
}

void Queues::link_lost(const std::string& name) {
  auto qi = queues_.find(name);
  if (qi == queues_.end()) return;
  Queue& q = qi->second;
  for (uint64_t seq : q.inflight) {
    Slot& s = q.slots.at(seq);
    s.inflight = false;
    s.sent_at = {};
    s.backoff = {};
    q.unsent.insert(seq);
  }
  q.inflight.clear();
}

PumpStats Queues::pump(const std::string& name, const std::function<bool(const Entry&)>& send,
                        Clock::time_point now) {
  PumpStats r;
  auto qi = queues_.find(name);
  if (qi == queues_.end()) return r;
  Queue& q = qi->second;
  if (opts_.qps > 0) {
    q.tokens =
        q.refilled == Clock::time_point{}
            ? opts_.burst
            : std::min(
                  opts_.burst,
                  q.tokens + opts_.qps * std::chrono::duration<double>(now - q.refilled).count());
    q.refilled = now;
  }
  auto take_token = [&] {
    if (opts_.qps <= 0) return true;
    if (q.tokens < 1) return false;
    q.tokens -= 1;
    return true;
  };
  bool blocked = false;
  // Overdue resends first, oldest first.
  for (uint64_t seq : q.inflight) {
    Slot& s = q.slots.at(seq);
    if (now - s.sent_at < s.backoff) continue;
    if (!take_token() || !send(s.e)) {
      blocked = true;
      break;
    }
    ++r.resent;
    s.sent_at = now;
    s.backoff = std::min(s.backoff * 2, opts_.max_backoff);
  }
  while (!blocked && !q.unsent.empty() && (!opts_.window || q.inflight.size() < opts_.window)) {
    auto it = q.slots.find(*q.unsent.begin());
    if (!take_token() || !send(it->second.e)) break;
    ++r.sent;
    q.unsent.erase(q.unsent.begin());
    if (!it->second.e.await_ack) {  // written is all the peer gives
      erase_row(name, it->first);
      erase(name, q, it);
      continue;
    }
    it->second.inflight = true;
    it->second.sent_at = now;
    it->second.backoff = opts_.ack_timeout;
    q.inflight.insert(it->first);
  }
  r.waiting = !q.unsent.empty() || !q.inflight.empty();
  return r;
}

size_t Queues::size(const std::string& name) const {
  auto qi = queues_.find(name);
  return qi == queues_.end() ? 0 : qi->second.slots.size();
}

std::vector<std::string> Queues::names() const {
  std::vector<std::string> out;
  for (auto& [n, q] : queues_)
    if (!q.slots.empty()) out.push_back(n);
  return out;
}

void Queues::erase(const std::string&, Queue& q, std::map<uint64_t, Slot>::iterator it) {
  uint64_t seq = it->first;
  const Entry& e = it->second.e;
  if (!e.key.empty())
    if (auto k = q.keys.find(e.key); k != q.keys.end() && k->second == seq) q.keys.erase(k);
  if (auto i = q.ids.find(e.msg_id); i != q.ids.end() && i->second == seq) q.ids.erase(i);
  q.unsent.erase(seq);
  q.inflight.erase(seq);
  q.slots.erase(it);
  --total_;
}

void Queues::erase_row(const std::string& name, uint64_t seq) {
  commit_.add([this, name, seq] {
    delete_.reset();
    delete_.bind(1, name).bind(2, static_cast<int64_t>(seq));
    return delete_.run();
  });
}

}  // namespace kedge::reliable
