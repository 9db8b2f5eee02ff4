// The channel's reliable queue (cloudhub's per-node queues, edgehub's
// outbox) on a real SQLite file: orderings, window, QPS, ACKs, resends,
// capacity, and what a restart brings back.
#include "reliable_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>

namespace kedge::reliable {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;

class ReliableQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kedge-rq-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    open();
  }
  void TearDown() override {
    close();
    fs::remove_all(dir_);
  }
  void open(Options o = {}) {
    auto db = sqlite::Db::open((dir_ / "q.db").string());
    ASSERT_TRUE(db.status) << db.status.message();
    db_ = std::move(db.value);
    ASSERT_TRUE(db_->migrate("test", {Queues::schema("queue")}));
    commit_ = std::make_unique<sqlite::GroupCommit>(*db_, io_.get_executor());
    q_ = std::make_unique<Queues>(o, *db_, *commit_, "queue");
    ASSERT_TRUE(q_->load([this](const std::string&, Entry& e) {
      loaded_.push_back(e.msg_id);
      return e.msg_id != "drop-me";
    }));
  }
  void close() {
    if (commit_) commit_->flush();
    q_.reset();
    commit_.reset();
    db_.reset();
  }
  void reopen(Options o = {}) {
    close();
    loaded_.clear();
    open(o);
  }
  Added add(const std::string& id, const std::string& key = "", uint64_t rv = 0,
            bool stale_check = false) {
    return q_->add("n1", {key, id, rv, 0, "body-" + id, true}, stale_check);
  }
  void commit() { commit_->flush(); }
  std::vector<std::string> pump(Clock::time_point now = Clock::now()) {
    std::vector<std::string> out;
    last_ = q_->pump(
        "n1",
        [&](const Entry& e) {
          if (out.size() >= link_room_) return false;
          out.push_back(e.msg_id);
          return true;
        },
        now);
    return out;
  }

  boost::asio::io_context io_;
  fs::path dir_;
  std::unique_ptr<sqlite::Db> db_;
  std::unique_ptr<sqlite::GroupCommit> commit_;
  std::unique_ptr<Queues> q_;
  std::vector<std::string> loaded_;
  PumpStats last_;
  size_t link_room_ = 1000;
};

TEST_F(ReliableQueueTest, NothingIsSentBeforeItIsOnDisk) {
  EXPECT_EQ(add("a"), Added::kQueued);
  EXPECT_TRUE(pump().empty());
  commit();
  EXPECT_THAT(pump(), ElementsAre("a"));
}

TEST_F(ReliableQueueTest, KeyedEntriesReplaceFifoEntriesAreKeptInOrder) {
  add("t1");
  add("p1", "pod/a", 5);
  add("t2");
  EXPECT_EQ(add("p2", "pod/a", 6), Added::kReplaced);
  EXPECT_EQ(add("p3", "pod/a", 6, true), Added::kStale);  // not newer
  EXPECT_EQ(add("p4", "pod/a", 4, true), Added::kStale);
  EXPECT_EQ(add("t1"), Added::kDuplicate);
  commit();
  EXPECT_EQ(q_->size("n1"), 3u);
  EXPECT_THAT(pump(), ElementsAre("t1", "t2", "p2"));
  // The replaced version's ACK counts for nothing.
  EXPECT_FALSE(q_->ack("n1", "p1"));
  auto e = q_->ack("n1", "p2");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->body, "body-p2");
  EXPECT_EQ(q_->size("n1"), 2u);
}

TEST_F(ReliableQueueTest, TheWindowBoundsWhatIsInFlight) {
  reopen({.window = 2});
  for (auto id : {"a", "b", "c", "d"}) add(id);
  commit();
  EXPECT_THAT(pump(), ElementsAre("a", "b"));
  EXPECT_TRUE(pump().empty());
  q_->ack("n1", "a");
  EXPECT_THAT(pump(), ElementsAre("c"));
  EXPECT_TRUE(last_.waiting);
}

TEST_F(ReliableQueueTest, UnackedEntriesAreResentWithBackOff) {
  reopen({.ack_timeout = 100ms, .max_backoff = 300ms});
  add("a");
  commit();
  auto t0 = Clock::now();
  EXPECT_THAT(pump(t0), ElementsAre("a"));
  EXPECT_TRUE(pump(t0 + 50ms).empty());
  EXPECT_THAT(pump(t0 + 100ms), ElementsAre("a"));  // after ack_timeout
  EXPECT_EQ(last_.resent, 1u);
  EXPECT_TRUE(pump(t0 + 250ms).empty());  // now waits 200 ms
  EXPECT_THAT(pump(t0 + 300ms), ElementsAre("a"));
  EXPECT_TRUE(pump(t0 + 550ms).empty());  // capped at 300 ms
  EXPECT_THAT(pump(t0 + 600ms), ElementsAre("a"));
  q_->ack("n1", "a");
  EXPECT_TRUE(pump(t0 + 10s).empty());
  EXPECT_FALSE(last_.waiting);
}

TEST_F(ReliableQueueTest, ALostLinkSendsWhatWasInFlightAgainInOrder) {
  for (auto id : {"a", "b", "c"}) add(id);
  commit();
  EXPECT_THAT(pump(), ElementsAre("a", "b", "c"));
  q_->ack("n1", "b");
  q_->link_lost("n1");
  EXPECT_THAT(pump(), ElementsAre("a", "c"));
}

TEST_F(ReliableQueueTest, ABackedUpLinkStopsThePumpAndLosesNothing) {
  for (auto id : {"a", "b", "c"}) add(id);
  commit();
  link_room_ = 1;
  EXPECT_THAT(pump(), ElementsAre("a"));
  link_room_ = 10;
  EXPECT_THAT(pump(), ElementsAre("b", "c"));
}

TEST_F(ReliableQueueTest, TheQpsBudgetSpreadsSends) {
  reopen({.qps = 10, .burst = 2});
  for (auto id : {"a", "b", "c", "d"}) add(id);
  commit();
  auto t0 = Clock::now();
  EXPECT_THAT(pump(t0), ElementsAre("a", "b"));  // the burst
  EXPECT_TRUE(pump(t0 + 50ms).empty());          // half a token
  EXPECT_THAT(pump(t0 + 100ms), ElementsAre("c"));
  EXPECT_THAT(pump(t0 + 200ms), ElementsAre("d"));
}

TEST_F(ReliableQueueTest, CapacityRefusesNewEntriesButNotNewerVersions) {
  reopen({.capacity = 2});
  EXPECT_EQ(add("a", "k1"), Added::kQueued);
  EXPECT_EQ(add("b", "k2"), Added::kQueued);
  EXPECT_EQ(add("c", "k3"), Added::kFull);
  EXPECT_EQ(add("d", "k1"), Added::kReplaced);  // a newer version of a queued object
  commit();
  EXPECT_THAT(pump(), ElementsAre("b", "d"));
}

TEST_F(ReliableQueueTest, EntriesThatExpectNoAckLeaveOnceWritten) {
  q_->add("n1", {"", "x", 0, 0, "bx", false}, false);
  add("y");
  commit();
  EXPECT_THAT(pump(), ElementsAre("x", "y"));
  EXPECT_EQ(q_->size("n1"), 1u);
  reopen();
  EXPECT_THAT(loaded_, ElementsAre("y"));
}

TEST_F(ReliableQueueTest, ARestartBringsBackWhatWasNotAckedInOrderWithItsKeysAndFlags) {
  q_->add("n1", {"", "t1", 0, 7, "b1", true}, false);
  add("p1", "pod/a", 5);
  q_->add("n2", {"", "other", 0, 0, "b", true}, false);
  add("t2");
  add("p2", "pod/a", 6);
  add("t3");
  add("drop-me");
  commit();
  pump();
  q_->ack("n1", "t3");
  reopen();
  EXPECT_THAT(loaded_, ElementsAre("t1", "other", "t2", "p2", "drop-me"));
  EXPECT_EQ(q_->size("n1"), 3u);
  EXPECT_EQ(q_->size("n2"), 1u);
  EXPECT_THAT(q_->names(), ElementsAre("n1", "n2"));
  EXPECT_THAT(pump(), ElementsAre("t1", "t2", "p2"));
  // The key survived: an older version is still stale, a newer replaces.
  EXPECT_EQ(add("p0", "pod/a", 6, true), Added::kStale);
  EXPECT_EQ(add("p3", "pod/a", 7, true), Added::kReplaced);
  auto t1 = q_->ack("n1", "t1");
  ASSERT_TRUE(t1);
  EXPECT_EQ(t1->flags, 7u);
  reopen();
  EXPECT_THAT(loaded_, ElementsAre("other", "t2", "p3"));  // "drop-me" was dropped for good
}

TEST_F(ReliableQueueTest, AFailedCommitDropsTheEntryAndSaysSo) {
  add("a");
  commit();
  ASSERT_TRUE(db_->exec("DROP TABLE queue"));
  Status seen;
  q_->add("n1", {"", "b", 0, 0, "bb", true}, false, [&](Status s) { seen = s; });
  commit();
  EXPECT_FALSE(seen);
  EXPECT_EQ(q_->size("n1"), 1u);
  EXPECT_THAT(pump(), ElementsAre("a"));
}

}  // namespace
}  // namespace kedge::reliable
