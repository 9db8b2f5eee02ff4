#include "kedge/core/router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <thread>

namespace kedge::core {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class RouterTest : public ::testing::Test {
 protected:
  void run_workers(int n) {
    work_.emplace(io_.get_executor());
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  static MessagePtr msg(std::string op = "update", int64_t seq = 0) {
    return share(make_message("test", "", std::move(op), "r", seq));
  }
  // Registers and unpauses.
  void add(const std::string& name, const std::string& group, size_t cap, Router::Handler h) {
    ASSERT_TRUE(router_.add_module(name, group, cap, std::move(h)));
    router_.set_paused(name, false);
  }

  boost::asio::io_context io_;
  MetricsRegistry metrics_;
  Router router_{io_, metrics_};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

TEST_F(RouterTest, DeliversInOrderOneAtATime) {
  constexpr int kN = 20000;
  std::atomic<int> inside{0}, max_inside{0};
  std::vector<int64_t> got;
  std::promise<void> done;
  add("rx", "", 64, [&](const MessagePtr& m) {
    int now = ++inside;
    max_inside = std::max(max_inside.load(), now);
    got.push_back(m->content.as_int64());
    --inside;
    if (got.size() == kN) done.set_value();
  });
  run_workers(2);
  for (int i = 0; i < kN; ++i) ASSERT_TRUE(router_.send("tx", "rx", msg("update", i), 1s));
  ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(max_inside.load(), 1);  // never two handlers of one module at once
  for (int i = 0; i < kN; ++i) ASSERT_EQ(got[i], i);
  auto s = router_.stats("rx");
  EXPECT_EQ(s.delivered, uint64_t{kN});
  EXPECT_EQ(s.rejected, 0u);
}

TEST_F(RouterTest, FullQueueRejectsAtOnceWithoutWait) {
  add("rx", "", 2, [](const MessagePtr&) {});
  // No workers yet: nothing drains.
  EXPECT_TRUE(router_.send("tx", "rx", msg()));
  EXPECT_TRUE(router_.send("tx", "rx", msg()));
  Status s = router_.send("tx", "rx", msg());
  EXPECT_EQ(s.code(), Code::kFull);
  EXPECT_THAT(s.message(), HasSubstr("queue of module 'rx' is full (capacity 2)"));
  EXPECT_EQ(router_.stats("rx").rejected, 1u);
  EXPECT_EQ(router_.stats("rx").queued, 2u);
}

TEST_F(RouterTest, FullQueueWaitsUpToTheDeadline) {
  add("rx", "", 1, [](const MessagePtr&) {});
  ASSERT_TRUE(router_.send("tx", "rx", msg()));
  auto t0 = std::chrono::steady_clock::now();
  Status s = router_.send("tx", "rx", msg(), 50ms);
  EXPECT_EQ(s.code(), Code::kFull);
  EXPECT_THAT(s.message(), HasSubstr("stayed full for 50 ms"));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_EQ(router_.stats("(external)").timed_out, 0u);  // "tx" is not a module: external
  // Now start draining while a sender waits: the wait succeeds.
  std::thread later([this] {
    std::this_thread::sleep_for(20ms);
    run_workers(1);
  });
  EXPECT_TRUE(router_.send("tx", "rx", msg(), 5s));
  later.join();
}

TEST_F(RouterTest, PausedModuleQueuesAndResumesInOrder) {
  std::vector<int64_t> got;
  std::promise<void> done;
  ASSERT_TRUE(router_.add_module("rx", "", 16, [&](const MessagePtr& m) {
    got.push_back(m->content.as_int64());
    if (got.size() == 5) done.set_value();
  }));
  run_workers(1);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(router_.send("tx", "rx", msg("update", i)));
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(got.empty());  // a module starts paused
  router_.set_paused("rx", false);
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(got, (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST_F(RouterTest, ClosedModuleRefuses) {
  add("rx", "", 4, [](const MessagePtr&) {});
  router_.set_closed("rx", true);
  Status s = router_.send("tx", "rx", msg());
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(router_.stats("rx").rejected, 1u);
}

TEST_F(RouterTest, UnknownModuleAndGroup) {
  EXPECT_EQ(router_.send("tx", "nobody", msg()).code(), Code::kNotFound);
  EXPECT_EQ(router_.send_to_group("tx", "nogroup", msg()).code(), Code::kNotFound);
  EXPECT_FALSE(router_.add_module("x", "", 0, nullptr));  // capacity 0
  add("x", "", 1, nullptr);
  EXPECT_FALSE(router_.add_module("x", "", 1, nullptr));  // duplicate
}

TEST_F(RouterTest, GroupFanOutSharesOneImmutableMessage) {
  std::mutex mu;
  std::vector<const Message*> seen;
  std::latch all(4);
  for (int i = 0; i < 4; ++i)
    add("m" + std::to_string(i), "meta", 8, [&](const MessagePtr& m) {
      std::lock_guard lock(mu);
      seen.push_back(m.get());
      all.count_down();
    });
  add("other", "bus", 8, [](const MessagePtr&) { FAIL() << "not in the group"; });
  run_workers(2);
  MessagePtr m = msg();
  ASSERT_TRUE(router_.send_to_group("tx", "meta", m));
  all.wait();
  ASSERT_EQ(seen.size(), 4u);
  for (auto* p : seen) EXPECT_EQ(p, m.get());  // the same object: nothing copied
  EXPECT_EQ(router_.group_members("meta").size(), 4u);
}

TEST_F(RouterTest, GroupSendReportsAFullMemberButDeliversToTheOthers) {
  add("a", "g", 1, [](const MessagePtr&) {});
  add("b", "g", 2, [](const MessagePtr&) {});
  ASSERT_TRUE(router_.send("tx", "a", msg()));  // a is now full (no workers)
  Status s = router_.send_to_group("tx", "g", msg());
  EXPECT_EQ(s.code(), Code::kFull);
  EXPECT_THAT(s.message(), HasSubstr("'a'"));
  EXPECT_EQ(router_.stats("b").queued, 1u);
}

TEST_F(RouterTest, RequestResponse) {
  add("server", "", 8, [this](const MessagePtr& m) {
    (void)router_.respond("server", share(new_response(*m, boost::json::string("pong"))));
  });
  std::promise<std::pair<Status, MessagePtr>> p;
  add("client", "", 8, [](const MessagePtr&) {});
  run_workers(1);
  MessagePtr req = msg("query");
  router_.request("client", "server", req, 5s, [&](Status s, MessagePtr r) {
    p.set_value({s, r});
  });
  auto [s, r] = p.get_future().get();
  ASSERT_TRUE(s) << s.to_string();
  EXPECT_EQ(r->header.parent_id, req->header.id);
  EXPECT_EQ(r->content.as_string(), "pong");
  EXPECT_EQ(router_.stats("client").delivered, 1u);  // the response
  EXPECT_EQ(router_.stats("server").sent, 1u);
}

TEST_F(RouterTest, RequestTimesOutAndALateResponseIsCountedNotLost) {
  std::promise<MessagePtr> held_p;
  add("server", "", 8, [&](const MessagePtr& m) { held_p.set_value(m); });  // never answers
  add("client", "", 8, [](const MessagePtr&) {});
  run_workers(1);
  std::promise<Status> p;
  router_.request("client", "server", msg("query"), 30ms, [&](Status s, MessagePtr r) {
    EXPECT_EQ(r, nullptr);
    p.set_value(s);
  });
  Status s = p.get_future().get();
  EXPECT_EQ(s.code(), Code::kTimeout);
  EXPECT_EQ(router_.stats("client").timed_out, 1u);
  MessagePtr held = held_p.get_future().get();
  Status late = router_.respond("server", share(new_response(*held, nullptr)));
  EXPECT_EQ(late.code(), Code::kNotFound);
  EXPECT_THAT(late.message(), HasSubstr("timed out or was answered already"));
  EXPECT_THAT(metrics_.prometheus_text(), HasSubstr("kedge_router_unmatched_responses_total 1"));
}

TEST_F(RouterTest, RequestToAFullOrUnknownModuleFailsAtOnce) {
  run_workers(1);
  std::promise<Status> p;
  router_.request("client", "nobody", msg("query"), 5s,
                  [&](Status s, MessagePtr) { p.set_value(s); });
  EXPECT_EQ(p.get_future().get().code(), Code::kNotFound);
}

TEST_F(RouterTest, ManyConcurrentRequestsWithMixedTimeouts) {
  // A server that answers only even sequence numbers: odd ones must time out.
  add("server", "", 4096, [this](const MessagePtr& m) {
    if (m->content.as_int64() % 2 == 0)
      (void)router_.respond("server", share(new_response(*m, m->content)));
  });
  add("client", "", 16, [](const MessagePtr&) {});
  run_workers(2);
  constexpr int kN = 400;
  std::atomic<int> ok{0}, timeouts{0};
  std::latch done(kN);
  for (int i = 0; i < kN; ++i)
    router_.request("client", "server", msg("query", i), i % 2 ? 20ms : 5s,
                    [&, i](Status s, MessagePtr r) {
                      if (s) {
                        EXPECT_EQ(r->content.as_int64(), i);
                        ++ok;
                      } else {
                        EXPECT_EQ(s.code(), Code::kTimeout);
                        ++timeouts;
                      }
                      done.count_down();
                    });
  done.wait();
  EXPECT_EQ(ok.load(), kN / 2);
  EXPECT_EQ(timeouts.load(), kN / 2);
}

TEST_F(RouterTest, DuplicateRequestIdIsRefusedAndTheFirstStillCompletes) {
  std::promise<MessagePtr> held_p;
  add("server", "", 8, [&](const MessagePtr& m) { held_p.set_value(m); });
  add("client", "", 8, [](const MessagePtr&) {});
  run_workers(1);
  MessagePtr req = msg("query");
  std::promise<Status> first, second;
  router_.request("client", "server", req, 5s, [&](Status s, MessagePtr) { first.set_value(s); });
  router_.request("client", "server", req, 5s, [&](Status s, MessagePtr) { second.set_value(s); });
  Status s2 = second.get_future().get();
  EXPECT_EQ(s2.code(), Code::kInvalidArgument);
  EXPECT_THAT(s2.message(), HasSubstr("is already waiting"));
  MessagePtr held = held_p.get_future().get();
  ASSERT_TRUE(router_.respond("server", share(new_response(*held, nullptr))));
  EXPECT_TRUE(first.get_future().get());
}

TEST_F(RouterTest, AThrowingHandlerDoesNotWedgeTheMailbox) {
  std::atomic<int> seen{0};
  std::promise<void> done;
  add("rx", "", 8, [&](const MessagePtr& m) {
    if (++seen == 3) done.set_value();
    if (m->content.as_int64() == 0) throw std::runtime_error("boom");
  });
  run_workers(1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(router_.send("tx", "rx", msg("update", i)));
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_THAT(metrics_.prometheus_text(), HasSubstr("kedge_router_handler_errors_total 1"));
}

TEST_F(RouterTest, MisaddressedSendsAreUnroutableNotRejections) {
  add("a", "", 4, [](const MessagePtr&) {});
  EXPECT_EQ(router_.send("a", "nobody", msg()).code(), Code::kNotFound);
  EXPECT_EQ(router_.send_to_group("a", "nogroup", msg()).code(), Code::kNotFound);
  EXPECT_EQ(router_.stats("a").unroutable, 2u);
  EXPECT_EQ(router_.stats("a").rejected, 0u);
}

TEST_F(RouterTest, RetiredInstanceNeverSeesItsResponses) {
  std::atomic<int> called{0};
  std::promise<MessagePtr> held_p;
  add("server", "", 8, [&](const MessagePtr& m) { held_p.set_value(m); });
  add("client", "", 8, [](const MessagePtr&) {});
  run_workers(1);
  router_.request("client", "server", msg("query"), 5s, [&](Status, MessagePtr) { ++called; });
  MessagePtr held = held_p.get_future().get();
  router_.retire_instance("client");
  EXPECT_EQ(router_.respond("server", share(new_response(*held, nullptr))).code(), Code::kNotFound);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(called.load(), 0);
}

}  // namespace
}  // namespace kedge::core
