// Router throughput and latency, each against a baseline measured in the same
// run: a plain mutex + condition-variable hand-off between two threads.
//
//   build/bin/kedge_router_bench --benchmark_min_time=1
//
// Figures: items_per_second = messages (or deliveries, or round trips) per
// second; p50_us / p99_us = one hop (send -> handler) or one round trip, at no
// load (one message in flight).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "kedge/core/router.h"

namespace {

using kedge::MessagePtr;
using kedge::core::Router;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kCapacity = 1024;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

MessagePtr small_message(int64_t v = 0) {
  return kedge::share(kedge::make_message("tx", "", "update", "r", v));
}

void percentiles(benchmark::State& state, std::vector<int64_t>& ns) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  state.counters["p50_us"] = static_cast<double>(ns[ns.size() / 2]) / 1000.0;
  state.counters["p99_us"] = static_cast<double>(ns[ns.size() * 99 / 100]) / 1000.0;
}

// ---------------------------------------------------------------- baseline
// A bounded queue: mutex + two condition variables, one consumer thread.
class HandOff {
 public:
  template <class F>
  explicit HandOff(F consume)
      : consumer_([this, consume] {
          for (;;) {
            std::unique_lock lock(mu_);
            not_empty_.wait(lock, [&] { return !q_.empty() || done_; });
            if (q_.empty()) return;
            MessagePtr m = std::move(q_.front());
            q_.pop_front();
            lock.unlock();
            not_full_.notify_one();
            consume(m);
          }
        }) {}
  ~HandOff() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    not_empty_.notify_all();
    consumer_.join();
  }
  void push(MessagePtr m) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return q_.size() < kCapacity; });
    q_.push_back(std::move(m));
    lock.unlock();
    not_empty_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<MessagePtr> q_;
  bool done_ = false;
  std::thread consumer_;
};

void wait_until(const std::atomic<int64_t>& counter, int64_t target) {
  while (counter.load(std::memory_order_acquire) < target) std::this_thread::yield();
}

void BM_Baseline_OneWay(benchmark::State& state) {
  std::atomic<int64_t> got{0};
  HandOff q([&](const MessagePtr&) { got.fetch_add(1, std::memory_order_release); });
  MessagePtr m = small_message();
  int64_t sent = 0;
  for (auto _ : state) {
    q.push(m);
    ++sent;
  }
  wait_until(got, sent);
  state.SetItemsProcessed(sent);
}

void BM_Baseline_FanOut4(benchmark::State& state) {
  // The same four deliveries per send, handed to one consumer.
  std::atomic<int64_t> got{0};
  HandOff q([&](const MessagePtr&) { got.fetch_add(1, std::memory_order_release); });
  MessagePtr m = small_message();
  int64_t sent = 0;
  for (auto _ : state) {
    for (int i = 0; i < 4; ++i) q.push(m);
    sent += 4;
  }
  wait_until(got, sent);
  state.SetItemsProcessed(sent);
}

void BM_Baseline_HopLatency(benchmark::State& state) {
  std::atomic<int64_t> got{0};
  std::vector<int64_t> lat;
  lat.reserve(1 << 20);
  HandOff q([&](const MessagePtr& m) {
    lat.push_back(now_ns() - m->content.as_int64());
    got.fetch_add(1, std::memory_order_release);
  });
  int64_t sent = 0;
  for (auto _ : state) {
    q.push(small_message(now_ns()));
    wait_until(got, ++sent);
  }
  state.SetItemsProcessed(sent);
  percentiles(state, lat);
}

void BM_Baseline_RoundTrip(benchmark::State& state) {
  const int64_t inflight = state.range(0);
  std::atomic<int64_t> answered{0};
  std::vector<int64_t> lat;
  lat.reserve(1 << 20);
  HandOff responses([&](const MessagePtr& m) {
    if (inflight == 1) lat.push_back(now_ns() - m->content.as_int64());
    answered.fetch_add(1, std::memory_order_release);
  });
  HandOff requests([&](const MessagePtr& m) {
    responses.push(kedge::share(kedge::new_response(*m, m->content)));
  });
  int64_t sent = 0;
  for (auto _ : state) {
    wait_until(answered, sent - inflight + 1);
    requests.push(small_message(now_ns()));
    ++sent;
  }
  wait_until(answered, sent);
  state.SetItemsProcessed(sent);
  percentiles(state, lat);
}

// ------------------------------------------------------------------ router
struct Kernelette {
  explicit Kernelette(int n) : router(io, metrics), workers(n) {}
  void start() {
    for (int i = 0; i < workers; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~Kernelette() {
    work.reset();
    io.stop();
    for (auto& t : threads) t.join();
  }
  void add(const std::string& name, const std::string& group, Router::Handler h) {
    (void)router.add_module(name, group, kCapacity, std::move(h));
    router.set_paused(name, false);
  }
  boost::asio::io_context io;
  kedge::MetricsRegistry metrics;
  Router router;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::vector<std::thread> threads;
  int workers;
};

void BM_Router_OneWay(benchmark::State& state) {
  Kernelette k(static_cast<int>(state.range(0)));
  std::atomic<int64_t> got{0};
  k.add("rx", "", [&](const MessagePtr&) { got.fetch_add(1, std::memory_order_release); });
  k.start();
  MessagePtr m = small_message();
  int64_t sent = 0;
  for (auto _ : state) {
    if (!k.router.send("tx", "rx", m, 10s)) state.SkipWithError("send failed");
    ++sent;
  }
  wait_until(got, sent);
  state.SetItemsProcessed(sent);
}

void BM_Router_OneWayNewMessage(benchmark::State& state) {
  // Includes building each message: a UUID, a timestamp, one allocation.
  Kernelette k(static_cast<int>(state.range(0)));
  std::atomic<int64_t> got{0};
  k.add("rx", "", [&](const MessagePtr&) { got.fetch_add(1, std::memory_order_release); });
  k.start();
  int64_t sent = 0;
  for (auto _ : state) {
    if (!k.router.send("tx", "rx", small_message(sent), 10s)) state.SkipWithError("send failed");
    ++sent;
  }
  wait_until(got, sent);
  state.SetItemsProcessed(sent);
}

// The common in-process case: the sender is itself a plugin on the pool. A
// "pump" module builds and sends messages to "rx" until rx's queue is full,
// then re-posts itself to its strand so rx can drain; nothing blocks and, with
// one worker, no thread is ever woken.
void BM_Router_OneWayOnPool(benchmark::State& state) {
  Kernelette k(static_cast<int>(state.range(0)));
  constexpr int64_t kBatch = 100000;
  int64_t got = 0, target = 0, remaining = 0;  // each touched by one strand at a time
  std::promise<void>* done = nullptr;
  k.add("rx", "", [&](const MessagePtr&) {
    if (++got == target) done->set_value();
  });
  std::function<void()> pump = [&] {
    while (remaining > 0) {
      if (!k.router.send("pump", "rx", small_message(remaining))) {
        boost::asio::post(k.router.executor("pump"), pump);  // full: let rx drain
        return;
      }
      --remaining;
    }
  };
  k.add("pump", "", [&](const MessagePtr&) { pump(); });
  k.start();
  for (auto _ : state) {
    std::promise<void> p;
    done = &p;
    target += kBatch;
    remaining = kBatch;
    (void)k.router.send("bench", "pump", small_message());
    p.get_future().wait();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_Router_FanOut4(benchmark::State& state) {
  Kernelette k(static_cast<int>(state.range(0)));
  std::atomic<int64_t> got{0};
  for (int i = 0; i < 4; ++i)
    k.add("m" + std::to_string(i), "meta",
          [&](const MessagePtr&) { got.fetch_add(1, std::memory_order_release); });
  k.start();
  MessagePtr m = small_message();
  int64_t sent = 0;
  for (auto _ : state) {
    if (!k.router.send_to_group("tx", "meta", m, 10s)) state.SkipWithError("send failed");
    sent += 4;
  }
  wait_until(got, sent);
  state.SetItemsProcessed(sent);
}

void BM_Router_HopLatency(benchmark::State& state) {
  Kernelette k(static_cast<int>(state.range(0)));
  std::atomic<int64_t> got{0};
  std::vector<int64_t> lat;
  lat.reserve(1 << 20);
  k.add("rx", "", [&](const MessagePtr& m) {
    lat.push_back(now_ns() - m->content.as_int64());
    got.fetch_add(1, std::memory_order_release);
  });
  k.start();
  int64_t sent = 0;
  for (auto _ : state) {
    (void)k.router.send("tx", "rx", small_message(now_ns()), 10s);
    wait_until(got, ++sent);
  }
  state.SetItemsProcessed(sent);
  percentiles(state, lat);
}

void BM_Router_RoundTrip(benchmark::State& state) {
  Kernelette k(static_cast<int>(state.range(0)));
  const int64_t inflight = state.range(1);
  std::atomic<int64_t> answered{0};
  std::vector<int64_t> lat;
  lat.reserve(1 << 20);
  Router& r = k.router;
  k.add("server", "", [&](const MessagePtr& m) {
    (void)r.respond("server", kedge::share(kedge::new_response(*m, m->content)));
  });
  k.add("client", "", [](const MessagePtr&) {});
  k.start();
  auto on_response = [&](kedge::Status s, MessagePtr m) {
    if (s && inflight == 1) lat.push_back(now_ns() - m->content.as_int64());
    answered.fetch_add(1, std::memory_order_release);
  };
  int64_t sent = 0;
  for (auto _ : state) {
    wait_until(answered, sent - inflight + 1);
    r.request("client", "server", small_message(now_ns()), 10s, on_response);
    ++sent;
  }
  wait_until(answered, sent);
  state.SetItemsProcessed(sent);
  percentiles(state, lat);
}

// Round trips between two plugins on the pool: "client" keeps 64 requests in
// flight, each response handler (on client's strand) sends the next request.
void BM_Router_RoundTripOnPool(benchmark::State& state) {
  Kernelette k(static_cast<int>(state.range(0)));
  constexpr int64_t kBatch = 100000, kInflight = 64;
  Router& r = k.router;
  int64_t answered = 0, target = 0, to_send = 0;  // client's strand only
  std::promise<void>* done = nullptr;
  k.add("server", "", [&](const MessagePtr& m) {
    (void)r.respond("server", kedge::share(kedge::new_response(*m, m->content)));
  });
  std::function<void()> ask = [&] {
    --to_send;
    r.request("client", "server", small_message(to_send), 10s, [&](kedge::Status s, MessagePtr) {
      if (!s) std::abort();
      if (++answered == target) done->set_value();
      if (to_send > 0) ask();
    });
  };
  k.add("client", "", [&](const MessagePtr&) {
    for (int64_t i = 0; i < kInflight && to_send > 0; ++i) ask();
  });
  k.start();
  for (auto _ : state) {
    std::promise<void> p;
    done = &p;
    target += kBatch;
    to_send = kBatch;
    (void)r.send("bench", "client", small_message());
    p.get_future().wait();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

}  // namespace

BENCHMARK(BM_Baseline_OneWay)->UseRealTime();
BENCHMARK(BM_Router_OneWay)->Arg(1)->Arg(2)->ArgName("workers")->UseRealTime();
BENCHMARK(BM_Router_OneWayNewMessage)->Arg(1)->Arg(2)->ArgName("workers")->UseRealTime();
BENCHMARK(BM_Router_OneWayOnPool)->Arg(1)->Arg(2)->ArgName("workers")->UseRealTime();
BENCHMARK(BM_Baseline_FanOut4)->UseRealTime();
BENCHMARK(BM_Router_FanOut4)->Arg(1)->Arg(2)->ArgName("workers")->UseRealTime();
BENCHMARK(BM_Baseline_HopLatency)->UseRealTime();
BENCHMARK(BM_Router_HopLatency)->Arg(1)->Arg(2)->ArgName("workers")->UseRealTime();
BENCHMARK(BM_Baseline_RoundTrip)->Arg(1)->Arg(64)->ArgName("inflight")->UseRealTime();
BENCHMARK(BM_Router_RoundTripOnPool)->Arg(1)->Arg(2)->ArgName("workers")->UseRealTime();
BENCHMARK(BM_Router_RoundTrip)
    ->ArgsProduct({{1, 2}, {1, 64}})
    ->ArgNames({"workers", "inflight"})
    ->UseRealTime();

BENCHMARK_MAIN();
