// The store conformance suite: every backend of kedge::store::Store passes
// the same tests (CRUD, optimistic concurrency, lists by prefix, watches from
// a revision, history limits, reopening). Backends register in Backends().
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <thread>

#include "../common/etcd_process.h"
#include "kedge/testing/harness.h"
#include "store.h"

namespace kedge::store {
namespace {

namespace fs = std::filesystem;

// A backend under test: opens a store on some persistent location, again and
// again (reopen = a restart of the cloud).
struct Backend {
  std::string name;
  std::function<Result<std::unique_ptr<Store>>(const fs::path& dir, int64_t history)> open;
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

using kedge::testing::EtcdProcess;

std::vector<Backend> Backends() {
  return {{"sqlite",
           [](const fs::path& dir, int64_t history) {
             return open_sqlite({(dir / "store.db").string(), history, false});
           }},
          {"etcd", [](const fs::path& dir, int64_t history) -> Result<std::unique_ptr<Store>> {
             auto& etcd = EtcdProcess::shared();
             if (!etcd.error().empty()) return {{Code::kUnavailable, etcd.error()}};
             EtcdOptions o;
             o.endpoints = {etcd.endpoint()};
             o.prefix = "/" + dir.filename().string();  // one namespace per test
             o.history = history;
             return open_etcd(o);
           }}};
}

// Collects events from a watch callback (any thread).
struct Recorder {
  std::mutex mu;
  std::vector<Event> events;
  std::vector<Status> ends;
  Store::OnEvent on_event() {
    return [this](const Event& e) {
      std::lock_guard lock(mu);
      events.push_back(e);
    };
  }
  Store::OnEnd on_end() {
    return [this](const Status& s) {
      std::lock_guard lock(mu);
      ends.push_back(s);
    };
  }
  std::vector<Event> snapshot() {
    std::lock_guard lock(mu);
    return events;
  }
  // Backends may deliver on their own thread: wait a little for n events.
  std::vector<Event> wait_for(size_t n) {
    for (int i = 0; i < 500; ++i) {
      if (auto s = snapshot(); s.size() >= n) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return snapshot();
  }
};

class StoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    // (A parametrized test's name is "Name/backend": no slashes in paths.)
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '-');
    dir_ = fs::temp_directory_path() / ("kedge-store-" + std::to_string(::getpid()) + "-" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    reopen();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void reopen(int64_t history = 1000) {
    store_.reset();
    auto r = GetParam().open(dir_, history);
    ASSERT_TRUE(r.ok()) << r.status.message();
    store_ = std::move(r.value);
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformance, CreateGetAndDuplicateCreate) {
  int64_t r0 = store_->revision();
  auto c = store_->create("/registry/pods/default/a", R"({"n":1})");
  ASSERT_TRUE(c.ok()) << c.status.message();
  EXPECT_GT(c.value, r0);
  auto g = store_->get("/registry/pods/default/a");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g.value.value, R"({"n":1})");
  EXPECT_EQ(g.value.mod_rev, c.value);
  EXPECT_EQ(g.value.create_rev, c.value);
  auto again = store_->create("/registry/pods/default/a", "{}");
  EXPECT_EQ(again.status.code(), Code::kAlreadyExists);
  EXPECT_THAT(again.status.message(), ::testing::HasSubstr("/registry/pods/default/a"));
  EXPECT_EQ(store_->get("/registry/pods/default/missing").status.code(), Code::kNotFound);
}

TEST_P(StoreConformance, UpdateIsOptimistic) {
  auto c = store_->create("/k", "v1");
  ASSERT_TRUE(c.ok());
  auto u = store_->update("/k", "v2", c.value);
  ASSERT_TRUE(u.ok()) << u.status.message();
  EXPECT_GT(u.value, c.value);
  // A writer that read v1 loses.
  auto stale = store_->update("/k", "v3", c.value);
  EXPECT_EQ(stale.status.code(), Code::kConflict);
  EXPECT_THAT(stale.status.message(), ::testing::HasSubstr(std::to_string(u.value)));
  auto g = store_->get("/k");
  EXPECT_EQ(g.value.value, "v2");
  EXPECT_EQ(g.value.create_rev, c.value);
  EXPECT_EQ(g.value.mod_rev, u.value);
  // Unconditional update; update of a missing key.
  EXPECT_TRUE(store_->update("/k", "v4", 0).ok());
  EXPECT_EQ(store_->update("/nope", "x", 0).status.code(), Code::kNotFound);
}

TEST_P(StoreConformance, RemoveIsOptimisticAndReturnsTheObject) {
  auto c = store_->create("/k", "v1");
  auto u = store_->update("/k", "v2", 0);
  ASSERT_TRUE(u.ok()) << u.status.message();
  EXPECT_EQ(store_->remove("/k", c.value).status.code(), Code::kConflict);
  auto d = store_->remove("/k", u.value);
  ASSERT_TRUE(d.ok()) << d.status.message();
  EXPECT_EQ(d.value.value, "v2");
  EXPECT_GT(d.value.mod_rev, u.value);
  EXPECT_EQ(store_->get("/k").status.code(), Code::kNotFound);
  EXPECT_EQ(store_->remove("/k", 0).status.code(), Code::kNotFound);
  // The key can be created again, with a new create revision.
  auto again = store_->create("/k", "v3");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(store_->get("/k").value.create_rev, again.value);
}

TEST_P(StoreConformance, ListByPrefixInKeyOrderAtOneRevision) {
  for (auto k : {"/registry/pods/ns1/b", "/registry/pods/ns1/a", "/registry/pods/ns10/c",
                 "/registry/pods/ns2/d", "/registry/services/ns1/a"})
    ASSERT_TRUE(store_->create(k, k).ok());
  auto l = store_->list("/registry/pods/ns1/");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l.value.items.size(), 2u);
  EXPECT_EQ(l.value.items[0].key, "/registry/pods/ns1/a");
  EXPECT_EQ(l.value.items[1].key, "/registry/pods/ns1/b");
  EXPECT_EQ(l.value.rev, store_->revision());
  EXPECT_EQ(store_->list("/registry/pods/").value.items.size(), 4u);
  EXPECT_EQ(store_->list("/registry/").value.items.size(), 5u);
  EXPECT_TRUE(store_->list("/registry/nodes/").value.items.empty());
  // Bytes above 0x7f in keys do not break the prefix range.
  ASSERT_TRUE(store_->create("/x/\xc3\xa9t\xc3\xa9", "e").ok());
  ASSERT_TRUE(store_->create("/x/\xff\xff", "f").ok());
  EXPECT_EQ(store_->list("/x/").value.items.size(), 2u);
  EXPECT_EQ(store_->list("/x/\xff").value.items.size(), 1u);
}

TEST_P(StoreConformance, AListLargerThanGrpcsDefaultMessageLimit) {
  std::string big(1000 * 1000, 'x');  // under etcd's 1.5 MiB request limit
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(store_->create("/big/" + std::to_string(i), big).ok());
  auto l = store_->list("/big/");
  ASSERT_TRUE(l.ok()) << l.status.message();
  EXPECT_EQ(l.value.items.size(), 6u);
}

TEST_P(StoreConformance, WatchFromNowSeesLaterChangesOfItsPrefixInOrder) {
  ASSERT_TRUE(store_->create("/registry/pods/ns/before", "0").ok());
  Recorder rec;
  auto w = store_->watch("/registry/pods/", 0, rec.on_event(), rec.on_end());
  ASSERT_TRUE(w.ok()) << w.status.message();
  auto c = store_->create("/registry/pods/ns/a", "1");
  ASSERT_TRUE(store_->create("/registry/nodes/n1", "other prefix").ok());
  auto u = store_->update("/registry/pods/ns/a", "2", c.value);
  auto d = store_->remove("/registry/pods/ns/a", u.value);
  auto got = rec.wait_for(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].type, Event::Type::kAdded);
  EXPECT_EQ(got[0].rev, c.value);
  EXPECT_EQ(got[0].value, "1");
  EXPECT_EQ(got[1].type, Event::Type::kModified);
  EXPECT_EQ(got[1].rev, u.value);
  EXPECT_EQ(got[2].type, Event::Type::kDeleted);
  EXPECT_EQ(got[2].rev, d.value.mod_rev);
  EXPECT_EQ(got[2].value, "2");  // the last value it had
  EXPECT_STREQ(type_name(got[2].type), "DELETED");
  // Cancelled: nothing more arrives.
  w.value->cancel();
  ASSERT_TRUE(store_->create("/registry/pods/ns/z", "3").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(rec.snapshot().size(), 3u);
}

TEST_P(StoreConformance, WatchResumesFromARevisionWithoutGapsOrRepeats) {
  auto r1 = store_->create("/p/a", "1");
  auto r2 = store_->create("/p/b", "2");
  auto r3 = store_->update("/p/a", "3", 0);
  Recorder rec;
  auto w = store_->watch("/p/", r1.value, rec.on_event());
  ASSERT_TRUE(w.ok());
  auto r4 = store_->create("/p/c", "4");
  auto got = rec.wait_for(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].rev, r2.value);
  EXPECT_EQ(got[1].rev, r3.value);
  EXPECT_EQ(got[1].type, Event::Type::kModified);
  EXPECT_EQ(got[2].rev, r4.value);
  for (size_t i = 1; i < got.size(); ++i) EXPECT_GT(got[i].rev, got[i - 1].rev);
}

TEST_P(StoreConformance, ConcurrentWritersAndAWatcherAgree) {
  Recorder rec;
  auto w = store_->watch("/c/", store_->revision(), rec.on_event());
  ASSERT_TRUE(w.ok());
  constexpr int kThreads = 4, kEach = 50;
  std::vector<std::thread> ts;
  std::atomic<int> conflicts{0};
  ASSERT_TRUE(store_->create("/c/shared", "0").ok());
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        EXPECT_TRUE(store_->create("/c/" + std::to_string(t) + "-" + std::to_string(i), "x").ok());
        // Read-modify-write on one key: losers see kConflict, never a lost update.
        for (;;) {
          auto g = store_->get("/c/shared");
          int n = std::stoi(g.value.value);
          auto u = store_->update("/c/shared", std::to_string(n + 1), g.value.mod_rev);
          if (u.ok()) break;
          EXPECT_EQ(u.status.code(), Code::kConflict);
          ++conflicts;
        }
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(store_->get("/c/shared").value.value, std::to_string(kThreads * kEach));
  auto got = rec.wait_for(1 + 2 * kThreads * kEach);
  ASSERT_EQ(got.size(), static_cast<size_t>(1 + 2 * kThreads * kEach));
  for (size_t i = 1; i < got.size(); ++i) ASSERT_GT(got[i].rev, got[i - 1].rev);
  EXPECT_EQ(got.back().rev, store_->revision());
}

TEST_P(StoreConformance, DataRevisionAndHistorySurviveAReopen) {
  auto c = store_->create("/r/a", "1");
  auto u = store_->update("/r/a", "2", 0);
  int64_t rev = store_->revision();
  reopen();
  EXPECT_EQ(store_->revision(), rev);
  EXPECT_EQ(store_->get("/r/a").value.value, "2");
  EXPECT_EQ(store_->get("/r/a").value.mod_rev, u.value);
  // A watcher that saw c before the restart resumes after it.
  Recorder rec;
  auto w = store_->watch("/r/", c.value, rec.on_event());
  ASSERT_TRUE(w.ok());
  auto got = rec.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rev, u.value);
  // Revisions never go back, even after deletes.
  ASSERT_TRUE(store_->remove("/r/a", 0).ok());
  reopen();
  EXPECT_EQ(store_->revision(), rev + 1);
  EXPECT_GT(store_->create("/r/b", "3").value, rev + 1);
}

TEST_P(StoreConformance, AWatchOlderThanTheHistoryIsGone) {
  reopen(/*history=*/5);
  int64_t first = store_->create("/h/0", "x").value;
  for (int i = 1; i < 20; ++i) ASSERT_TRUE(store_->create("/h/" + std::to_string(i), "x").ok());
  Recorder rec;
  auto old = store_->watch("/h/", first, rec.on_event());
  EXPECT_EQ(old.status.code(), Code::kGone);
  EXPECT_THAT(old.status.message(), ::testing::HasSubstr(std::to_string(first)));
  // Within the history: fine.
  auto recent = store_->watch("/h/", store_->revision() - 3, rec.on_event());
  ASSERT_TRUE(recent.ok()) << recent.status.message();
  EXPECT_EQ(rec.wait_for(3).size(), 3u);
}

// etcd only: what several cloud replicas and etcd's own failures need.
class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(EtcdProcess::shared().error(), ""); }
  static Result<std::unique_ptr<Store>> open(const std::string& prefix) {
    EtcdOptions o;
    o.endpoints = {EtcdProcess::shared().endpoint()};
    o.prefix = prefix;
    o.timeout = std::chrono::milliseconds(3000);
    return open_etcd(o);
  }
};

TEST_F(EtcdStoreTest, TwoStoresOnOneEtcdShareObjectsRevisionsAndWatches) {
  auto a = open("/shared-" + std::to_string(::getpid()));
  auto b = open("/shared-" + std::to_string(::getpid()));
  ASSERT_TRUE(a.ok() && b.ok());
  Recorder seen_by_b;
  auto w = b.value->watch("/registry/", 0, seen_by_b.on_event());
  ASSERT_TRUE(w.ok());
  auto c = a.value->create("/registry/pods/ns/p", "v1");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(b.value->get("/registry/pods/ns/p").value.value, "v1");
  // b updates with the revision a's write produced; a's stale write loses.
  ASSERT_TRUE(b.value->update("/registry/pods/ns/p", "v2", c.value).ok());
  EXPECT_EQ(a.value->update("/registry/pods/ns/p", "v3", c.value).status.code(), Code::kConflict);
  auto got = seen_by_b.wait_for(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "/registry/pods/ns/p");  // without the store prefix
  EXPECT_EQ(got[1].value, "v2");
  // A third store under another prefix sees none of it.
  auto other = open("/other-" + std::to_string(::getpid()));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other.value->list("/registry/").value.items.empty());
}

TEST_F(EtcdStoreTest, AWatchEndsWhenEtcdDiesAndResumesFromItsLastRevisionAfterwards) {
  auto s = open("/restart-" + std::to_string(::getpid()));
  ASSERT_TRUE(s.ok());
  Recorder rec;
  auto w = s.value->watch("/r/", 0, rec.on_event(), rec.on_end());
  ASSERT_TRUE(w.ok());
  auto r1 = s.value->create("/r/a", "1");
  ASSERT_EQ(rec.wait_for(1).size(), 1u);
  EtcdProcess::shared().kill_and_restart(false);
  for (int i = 0; i < 500 &&
                  [&] {
                    std::lock_guard lock(rec.mu);
                    return rec.ends.empty();
                  }();
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  {
    std::lock_guard lock(rec.mu);
    ASSERT_EQ(rec.ends.size(), 1u);
    EXPECT_EQ(rec.ends[0].code(), Code::kUnavailable);
  }
  // Writes fail with a clear error while etcd is down.
  auto down = s.value->create("/r/b", "2");
  EXPECT_FALSE(down.ok());
  EXPECT_THAT(down.status.message(), ::testing::HasSubstr("etcd"));
  EtcdProcess::shared().kill_and_restart(true);
  ASSERT_EQ(EtcdProcess::shared().error(), "");
  // The same store object works again; a new watch from the last revision
  // seen gets exactly what happened since.
  auto r2 = s.value->create("/r/b", "2");
  ASSERT_TRUE(r2.ok()) << r2.status.message();
  Recorder again;
  auto w2 = s.value->watch("/r/", r1.value, again.on_event());
  ASSERT_TRUE(w2.ok()) << w2.status.message();
  auto got = again.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "/r/b");
  EXPECT_EQ(got[0].rev, r2.value);
}

TEST_F(EtcdStoreTest, AnUnreachableEtcdIsAClearError) {
  EtcdOptions o;
  o.endpoints = {"127.0.0.1:" + std::to_string(testing::Harness::free_port())};
  o.timeout = std::chrono::milliseconds(300);
  auto s = open_etcd(o);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.status.message(), ::testing::HasSubstr("cannot reach etcd at " + o.endpoints[0]));
  EXPECT_EQ(open_etcd({}).status.code(), Code::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, ::testing::ValuesIn(Backends()),
                         [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace kedge::store
