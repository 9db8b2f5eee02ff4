// The in-process message router.
//
// Every module has a bounded queue (a mailbox) and a strand on the kernel's
// shared io_context. Senders enqueue a MessagePtr; the first message into an
// idle mailbox posts one drain task to the strand, which hands messages to the
// module one at a time, in batches, and re-posts itself while messages remain
// (so one busy module cannot starve the others). A full queue makes the sender
// wait up to its deadline and then fail with kFull; nothing is dropped.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kedge/context.h"
#include "kedge/message.h"
#include "kedge/metrics.h"
#include "kedge/status.h"

namespace kedge::core {

struct ModuleStats {
  uint64_t sent = 0;        // messages this module sent that were accepted
  uint64_t delivered = 0;   // messages (and responses) handed to this module
  uint64_t rejected = 0;    // messages refused by this module's queue (full, closed)
  uint64_t timed_out = 0;   // this module's sends and requests whose deadline passed
  uint64_t unroutable = 0;  // this module's sends to an unknown module or an empty group
  size_t queued = 0;        // messages waiting in this module's queue now
};

class Router {
 public:
  using Handler = std::function<void(const MessagePtr&)>;
  using Clock = std::chrono::steady_clock;

  Router(boost::asio::io_context& io, MetricsRegistry& metrics);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers a module with a queue of `capacity` messages. A module starts
  // paused: messages queue up but are delivered only after set_paused(false).
  Status add_module(const std::string& name, const std::string& group, size_t capacity,
                    Handler handler);
  bool has_module(std::string_view name) const;
  // Paused: accepts into the queue, delivers nothing (a plugin restarting).
  void set_paused(std::string_view name, bool paused);
  // Closed: refuses new messages with kUnavailable (a plugin that gave up).
  void set_closed(std::string_view name, bool closed);
  // Drops the pending requests of the module's current plugin instance and
  // makes sure none of its response handlers runs later (the instance is
  // about to be destroyed).
  void retire_instance(std::string_view name);

  // The module's strand, or the io_context's executor for unknown names.
  boost::asio::any_io_executor executor(std::string_view name);

  // `from` is the sending module's name, or any other string for senders that
  // are not modules (counted as "external").
  Status send(std::string_view from, std::string_view to, MessagePtr msg,
              std::chrono::milliseconds wait = std::chrono::milliseconds{0});
  Status send_to_group(std::string_view from, std::string_view group, MessagePtr msg,
                       std::chrono::milliseconds wait = std::chrono::milliseconds{0});
  void request(std::string_view from, std::string_view to, MessagePtr msg,
               std::chrono::milliseconds timeout, ResponseHandler on_response);
  Status respond(std::string_view from, MessagePtr response);

  ModuleStats stats(std::string_view name) const;
  std::vector<std::string> group_members(std::string_view group) const;
  // Messages left in every queue (for the shutdown report).
  size_t total_queued() const;

 private:
  struct Module;
  struct Pending {
    std::string requester;
    uint64_t generation;
    ResponseHandler handler;
    std::multimap<Clock::time_point, std::string>::iterator deadline_it;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  Module* find(std::string_view name) const;
  Module& sender(std::string_view from) const;
  Status enqueue(Module& dst, Module& src, MessagePtr msg, std::chrono::milliseconds wait);
  void drain(Module& m);
  void complete(Pending p, Status s, MessagePtr msg);
  void arm_timer();
  void on_timer();

  boost::asio::io_context& io_;
  MetricsRegistry& metrics_;
  mutable std::shared_mutex modules_mu_;
  std::unordered_map<std::string, std::unique_ptr<Module>, Hash, std::equal_to<>> modules_;
  std::unordered_map<std::string, std::vector<Module*>, Hash, std::equal_to<>> groups_;
  std::unique_ptr<Module> external_;
  Counter& unmatched_responses_;
  Counter& handler_errors_;

  std::mutex pending_mu_;
  std::unordered_map<std::string, Pending> pending_;
  std::multimap<Clock::time_point, std::string> deadlines_;
  Clock::time_point armed_for_ = Clock::time_point::max();
  boost::asio::strand<boost::asio::io_context::executor_type> timer_strand_;
  boost::asio::steady_timer timer_;
};

}  // namespace kedge::core
