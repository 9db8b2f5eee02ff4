// The engine's device pool: devices are jobs on a small bounded set of
// threads, not a thread each. A job's step runs when it is due (or woken),
// does one round of driver calls, and says when it is due next. One job's
// steps never overlap, so a driver is still called one call at a time and
// needs no locks; a blocking call holds one pool thread, not the others.
// Threads are started as work needs them (a job queued while every thread
// is busy), up to the limit, so an engine with no devices has none.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace kedge::mapper {

class DevicePool {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr Clock::time_point kNever = Clock::time_point::max();

  class Job {
   public:
    virtual ~Job() = default;
    // One round of work; returns when the job is due next (kNever: only
    // when woken).
    virtual Clock::time_point step() = 0;

   private:
    friend class DevicePool;
    // Guarded by the pool's mutex.
    std::multimap<Clock::time_point, Job*>::iterator slot_;
    bool queued_ = false, running_ = false, dead_ = false;
    Clock::time_point wake_ = kNever;
  };

  explicit DevicePool(size_t max_threads) : max_threads_(max_threads ? max_threads : 1) {}
  ~DevicePool() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // Makes `j` due at `at` (or earlier, if it already was).
  void wake(Job* j, Clock::time_point at = Clock::now()) {
    std::lock_guard lk(mu_);
    enqueue(j, at);
  }

  // After this returns, `j` is not running and never runs again.
  void cancel(Job* j) {
    std::unique_lock lk(mu_);
    j->dead_ = true;
    if (j->queued_) due_.erase(j->slot_), j->queued_ = false;
    done_.wait(lk, [&] { return !j->running_; });
  }

  size_t threads() const {
    std::lock_guard lk(mu_);
    return threads_.size();
  }

 private:
  void enqueue(Job* j, Clock::time_point at) {
    if (j->dead_ || stop_) return;
    if (j->running_) {  // applied when its step returns
      if (at < j->wake_) j->wake_ = at;
      return;
    }
    if (j->queued_) {
      if (j->slot_->first <= at) return;
      due_.erase(j->slot_);
    }
    j->slot_ = due_.emplace(at, j);
    j->queued_ = true;
    grow();
    cv_.notify_one();
  }

  // One more thread when none is free for what is queued.
  void grow() {
    if (idle_ == 0 && !due_.empty() && threads_.size() < max_threads_) {
      ++idle_;
      threads_.emplace_back([this] { run(); });
    }
  }

  void run() {
    std::unique_lock lk(mu_);
    while (!stop_) {
      if (due_.empty()) {
        cv_.wait(lk);
        continue;
      }
      auto it = due_.begin();
      if (it->first > Clock::now()) {
        // A copy: wait_until reads the time again after the lock is released
        // and retaken, and by then another thread may have erased the entry.
        const Clock::time_point until = it->first;
        cv_.wait_until(lk, until);
        continue;
      }
      Job* j = it->second;
      due_.erase(it);
      j->queued_ = false;
      j->running_ = true;
      --idle_;
      grow();  // others wait while this step runs
      lk.unlock();
      Clock::time_point next = j->step();
      lk.lock();
      ++idle_;
      j->running_ = false;
      Clock::time_point woken = j->wake_;
      j->wake_ = kNever;
      done_.notify_all();
      if (!j->dead_) {
        Clock::time_point at = std::min(next, woken);
        if (at != kNever) enqueue(j, at);
      }
    }
  }

  const size_t max_threads_;
  mutable std::mutex mu_;
  std::condition_variable cv_, done_;
  std::multimap<Clock::time_point, Job*> due_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
};

}  // namespace kedge::mapper
