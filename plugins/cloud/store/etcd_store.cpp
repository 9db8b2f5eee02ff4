// The etcd v3 backend of the cloud store, over gRPC (proto/etcd: the subset
// of etcd's own protos that is used). Several cloud processes pointed at one
// etcd see the same objects, revisions and watches; nothing is shared in
// memory. Keys live under `prefix` (several clusters may share one etcd).
//
// * create/update/remove are etcd transactions comparing the key's
//   create_revision or mod_revision, so optimistic concurrency is etcd's.
// * Watches share one bidirectional Watch stream per store, read by one
//   thread. A start revision older than etcd's compaction is kGone, checked
//   with a Range at that revision before the watch is created; a compaction
//   that overtakes a slow watch ends it with on_end(kGone).
// * The store compacts etcd's history to the last `history` revisions, as
//   kube-apiserver does periodically.
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "etcd/rpc.grpc.pb.h"
#include "store.h"

namespace kedge::store {
namespace {

namespace pb = etcdserverpb;

// etcd's range_end for a prefix: "\0" means every key.
std::string range_end_of(const std::string& p) {
  std::string e = prefix_end(p);
  return e.empty() ? std::string(1, '\0') : e;
}

Status grpc_error(const std::string& what, const grpc::Status& s) {
  Code c = Code::kUnavailable;
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) c = Code::kTimeout;
  if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) c = Code::kInvalidArgument;
  if (s.error_code() == grpc::StatusCode::OUT_OF_RANGE) c = Code::kGone;
  return {c, what + ": etcd: " + s.error_message()};
}

// Watch-side state, shared with the Watch objects so either may go first.
struct WatchHub {
  struct Watcher {
    size_t strip = 0;  // length of the store prefix to remove from keys
    Store::OnEvent on_event;
    Store::OnEnd on_end;
  };
  struct PendingCreate {
    Watcher w;
    bool done = false;
    int64_t id = -1;
    Status status;
  };

  std::mutex mu;  // held while delivering: cancel() returning means no more callbacks
  std::condition_variable cv;
  std::map<int64_t, Watcher> watchers;
  std::deque<std::shared_ptr<PendingCreate>> creating;  // answered in order by etcd
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream;
  std::mutex write_mu;
  std::thread reader;
  bool alive = false;
  bool closing = false;

  // Ends every watch (stream lost or store closing).
  void end_all(const Status& why) {  // mu held
    for (auto& [id, w] : watchers)
      if (w.on_end) w.on_end(why);
    watchers.clear();
    for (auto& p : creating) {
      p->done = true;
      p->status = why;
    }
    creating.clear();
    alive = false;
    cv.notify_all();
  }

  void read_loop() {
    pb::WatchResponse r;
    while (stream->Read(&r)) {
      std::lock_guard lock(mu);
      if (r.created()) {
        if (creating.empty()) continue;
        auto p = creating.front();
        creating.pop_front();
        p->done = true;
        if (r.canceled()) {
          p->status = {Code::kInvalidArgument, "etcd refused the watch: " + r.cancel_reason()};
        } else {
          p->id = r.watch_id();
          watchers[r.watch_id()] = std::move(p->w);
        }
        cv.notify_all();
        if (r.canceled() || r.events_size() == 0) continue;
      }
      auto it = watchers.find(r.watch_id());
      if (it == watchers.end()) continue;  // cancelled by us
      for (const auto& e : r.events()) {
        Event ev;
        const auto& kv = e.kv();
        ev.rev = kv.mod_revision();
        ev.key = kv.key().substr(std::min(it->second.strip, kv.key().size()));
        if (e.type() == mvccpb::Event::DELETE) {
          ev.type = Event::Type::kDeleted;
          ev.value = e.prev_kv().value();
        } else {
          ev.type = kv.create_revision() == kv.mod_revision() ? Event::Type::kAdded
                                                              : Event::Type::kModified;
          ev.value = kv.value();
        }
        it->second.on_event(ev);
      }
      if (r.canceled()) {
        Status why =
            r.compact_revision()
                ? Status{Code::kGone, "watch overtaken by etcd compaction at revision " +
                                          std::to_string(r.compact_revision())}
                : Status{Code::kUnavailable, "etcd cancelled the watch: " + r.cancel_reason()};
        if (it->second.on_end) it->second.on_end(why);
        watchers.erase(it);
      }
    }
    grpc::Status s = stream->Finish();
    std::lock_guard lock(mu);
    end_all(closing ? Status{Code::kUnavailable, "store closed"}
                    : Status{Code::kUnavailable, "etcd watch stream ended: " + s.error_message()});
  }
};

class EtcdWatch final : public Watch {
 public:
  EtcdWatch(std::weak_ptr<WatchHub> hub, int64_t id) : hub_(std::move(hub)), id_(id) {}
  ~EtcdWatch() override { cancel(); }
  void cancel() override {
    auto h = hub_.lock();
    hub_.reset();
    if (!h) return;
    bool was;
    {
      std::lock_guard lock(h->mu);
      was = h->watchers.erase(id_) > 0;
      if (!h->alive) return;
    }
    if (was) {
      pb::WatchRequest req;
      req.mutable_cancel_request()->set_watch_id(id_);
      std::lock_guard w(h->write_mu);
      (void)h->stream->Write(req);
    }
  }

 private:
  std::weak_ptr<WatchHub> hub_;
  int64_t id_;
};

class EtcdStore final : public Store {
 public:
  explicit EtcdStore(const EtcdOptions& o) : opts_(o), hub_(std::make_shared<WatchHub>()) {
    std::string target = o.endpoints.size() == 1 ? o.endpoints[0] : "ipv4:";
    if (o.endpoints.size() > 1)
      for (size_t i = 0; i < o.endpoints.size(); ++i) target += (i ? "," : "") + o.endpoints[i];
    target_ = target;
    grpc::ChannelArguments args;
    // Back quickly after an etcd restart; notice a dead or black-holed etcd
    // on the watch stream within ~15 s (etcd permits pings every 5 s).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // Lists of many objects exceed gRPC's default 4 MiB per message.
    args.SetMaxReceiveMessageSize(-1);
    channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    kv_ = pb::KV::NewStub(channel_);
    watch_ = pb::Watch::NewStub(channel_);
  }

  ~EtcdStore() override {
    std::unique_lock lock(hub_->mu);
    hub_->closing = true;
    if (hub_->ctx) hub_->ctx->TryCancel();
    lock.unlock();
    if (hub_->reader.joinable()) hub_->reader.join();
  }

  Status check() {
    auto r = range(opts_.prefix, true, 0);
    if (!r.ok())
      return {r.status.code(), "cannot reach etcd at " + target_ + ": " + r.status.message()};
    return {};
  }

  std::string backend() const override { return "etcd"; }

  int64_t revision() override {
    auto r = range(opts_.prefix, true, 0);
    return r.ok() ? r.value.header().revision() : 0;
  }

  Result<int64_t> create(const std::string& key, const std::string& value) override {
    std::string full = opts_.prefix + key;
    pb::TxnRequest t;
    auto* c = t.add_compare();
    c->set_key(full);
    c->set_target(pb::Compare::CREATE);
    c->set_result(pb::Compare::EQUAL);
    c->set_create_revision(0);
    auto* put = t.add_success()->mutable_request_put();
    put->set_key(full);
    put->set_value(value);
    auto r = txn(t, "create " + key);
    if (!r.ok()) return {r.status};
    if (!r.value.succeeded()) return {{Code::kAlreadyExists, key + " already exists"}};
    int64_t rev = r.value.header().revision();
    compact_after(rev);
    return {{}, rev};
  }

  Result<Object> get(const std::string& key) override {
    auto r = range(opts_.prefix + key, false, 0, /*exact=*/true);
    if (!r.ok()) return {r.status};
    if (r.value.kvs_size() == 0) return {not_found(key + " not found")};
    const auto& kv = r.value.kvs(0);
    return {{}, {key, kv.value(), kv.create_revision(), kv.mod_revision()}};
  }

  Result<List> list(const std::string& prefix) override {
    auto r = range(opts_.prefix + prefix, false, 0);
    if (!r.ok()) return {r.status};
    Result<List> out;
    out.value.rev = r.value.header().revision();
    for (const auto& kv : r.value.kvs())
      out.value.items.push_back({kv.key().substr(opts_.prefix.size()), kv.value(),
                                 kv.create_revision(), kv.mod_revision()});
    return out;
  }

  Result<int64_t> update(const std::string& key, const std::string& value,
                         int64_t expected_rev) override {
    std::string full = opts_.prefix + key;
    pb::TxnRequest t;
    guard(t, full, expected_rev);
    auto* put = t.add_success()->mutable_request_put();
    put->set_key(full);
    put->set_value(value);
    t.add_failure()->mutable_request_range()->set_key(full);
    auto r = txn(t, "update " + key);
    if (!r.ok()) return {r.status};
    if (!r.value.succeeded()) return {refused(r.value, key, expected_rev)};
    int64_t rev = r.value.header().revision();
    compact_after(rev);
    return {{}, rev};
  }

  Result<Object> remove(const std::string& key, int64_t expected_rev) override {
    std::string full = opts_.prefix + key;
    pb::TxnRequest t;
    guard(t, full, expected_rev);
    auto* del = t.add_success()->mutable_request_delete_range();
    del->set_key(full);
    del->set_prev_kv(true);
    t.add_failure()->mutable_request_range()->set_key(full);
    auto r = txn(t, "delete " + key);
    if (!r.ok()) return {r.status};
    if (!r.value.succeeded()) return {refused(r.value, key, expected_rev)};
    const auto& d = r.value.responses(0).response_delete_range();
    if (d.prev_kvs_size() == 0) return {not_found(key + " not found")};
    const auto& kv = d.prev_kvs(0);
    int64_t rev = r.value.header().revision();
    compact_after(rev);
    return {{}, {key, kv.value(), kv.create_revision(), rev}};
  }

  Result<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t from_rev,
                                       OnEvent on_event, OnEnd on_end) override {
    if (from_rev < 0) return {invalid_argument("negative revision")};
    std::string full = opts_.prefix + prefix;
    if (from_rev > 0) {
      // A read at from_rev fails if etcd has compacted it away.
      auto at = range(full, true, from_rev);
      if (!at.ok() && at.status.code() == Code::kGone &&
          at.status.message().find("compacted") != std::string::npos)
        return {{Code::kGone, "revision " + std::to_string(from_rev) +
                                  " is older than the kept history (" + at.status.message() + ")"}};
    }
    if (Status s = ensure_stream(); !s) return {s};
    auto p = std::make_shared<WatchHub::PendingCreate>();
    p->w = {opts_.prefix.size(), std::move(on_event), std::move(on_end)};
    pb::WatchRequest req;
    auto* c = req.mutable_create_request();
    c->set_key(full);
    c->set_range_end(range_end_of(full));
    c->set_start_revision(from_rev ? from_rev + 1 : 0);
    c->set_prev_kv(true);
    {
      // Queued and written under one lock: etcd answers creates in order.
      std::lock_guard lock(hub_->mu);
      std::lock_guard w(hub_->write_mu);
      hub_->creating.push_back(p);
      if (!hub_->stream->Write(req)) {
        hub_->creating.pop_back();
        return {{Code::kUnavailable, "cannot send the watch to etcd at " + target_}};
      }
    }
    std::unique_lock lock(hub_->mu);
    if (!hub_->cv.wait_for(lock, opts_.timeout, [&] { return p->done; })) {
      std::erase(hub_->creating, p);
      return {{Code::kTimeout, "etcd at " + target_ + " did not confirm the watch"}};
    }
    if (!p->status) return {p->status};
    return {{}, std::make_unique<EtcdWatch>(hub_, p->id)};
  }

 private:
  // Compare: the key exists (expected 0) or has mod_revision expected.
  static void guard(pb::TxnRequest& t, const std::string& full, int64_t expected) {
    auto* c = t.add_compare();
    c->set_key(full);
    if (expected) {
      c->set_target(pb::Compare::MOD);
      c->set_result(pb::Compare::EQUAL);
      c->set_mod_revision(expected);
    } else {
      c->set_target(pb::Compare::CREATE);
      c->set_result(pb::Compare::GREATER);
      c->set_create_revision(0);
    }
  }

  static Status refused(const pb::TxnResponse& r, const std::string& key, int64_t expected) {
    const auto& got = r.responses(0).response_range();
    if (got.kvs_size() == 0) return not_found(key + " not found");
    return {Code::kConflict, key + ": resourceVersion " + std::to_string(expected) +
                                 " is not the current one (" +
                                 std::to_string(got.kvs(0).mod_revision()) + ")"};
  }

  std::unique_ptr<grpc::ClientContext> context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + opts_.timeout);
    ctx->set_wait_for_ready(true);  // a reconnecting channel waits, up to the deadline
    return ctx;
  }

  Result<pb::RangeResponse> range(const std::string& key, bool count_only, int64_t rev,
                                  bool exact = false) {
    pb::RangeRequest q;
    q.set_key(key);
    if (!exact) q.set_range_end(range_end_of(key));
    q.set_count_only(count_only);
    q.set_revision(rev);
    Result<pb::RangeResponse> out;
    auto ctx = context();
    grpc::Status s = kv_->Range(ctx.get(), q, &out.value);
    if (!s.ok()) out.status = grpc_error("read " + key, s);
    return out;
  }

  Result<pb::TxnResponse> txn(const pb::TxnRequest& t, const std::string& what) {
    Result<pb::TxnResponse> out;
    auto ctx = context();
    grpc::Status s = kv_->Txn(ctx.get(), t, &out.value);
    if (!s.ok()) out.status = grpc_error(what, s);
    return out;
  }

  void compact_after(int64_t rev) {
    int64_t target = rev - opts_.history;
    int64_t seen = compacted_.load();
    if (target <= seen || !compacted_.compare_exchange_strong(seen, target)) return;
    pb::CompactionRequest c;
    c.set_revision(target);
    pb::CompactionResponse r;
    auto ctx = context();
    (void)kv_->Compact(ctx.get(), c, &r);  // "already compacted" from a peer is fine
  }

  Status ensure_stream() {
    std::unique_lock lock(hub_->mu);
    if (hub_->alive) return {};
    if (hub_->reader.joinable()) {  // the previous stream ended: reap its reader
      lock.unlock();
      hub_->reader.join();
      lock.lock();
      if (hub_->alive) return {};
    }
    hub_->ctx = std::make_unique<grpc::ClientContext>();
    // etcd only serves watches on a leader-backed stream with this header.
    hub_->ctx->AddMetadata("hasleader", "true");
    hub_->stream = watch_->Watch(hub_->ctx.get());
    if (!hub_->stream) return {Code::kUnavailable, "cannot open a watch stream to " + target_};
    hub_->alive = true;
    hub_->reader = std::thread([h = hub_.get()] { h->read_loop(); });
    return {};
  }

  EtcdOptions opts_;
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::KV::Stub> kv_;
  std::unique_ptr<pb::Watch::Stub> watch_;
  std::shared_ptr<WatchHub> hub_;
  std::atomic<int64_t> compacted_{0};
};

}  // namespace

Result<std::unique_ptr<Store>> open_etcd(const EtcdOptions& o) {
  if (o.endpoints.empty()) return {invalid_argument("etcd: no endpoints given")};
  if (o.history < 1) return {invalid_argument("store history must be at least 1 revision")};
  auto s = std::make_unique<EtcdStore>(o);
  if (Status st = s->check(); !st) return {st};
  return {{}, std::move(s)};
}

}  // namespace kedge::store
