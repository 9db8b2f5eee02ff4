#include "kedge/testing/harness.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <future>
#include <random>
#include <thread>

#include "kedge/core/kernel.h"
#include "kedge/core/manifest.h"
#include "kedge/core/resolve.h"

namespace kedge::testing {

namespace fs = std::filesystem;

void Capture::on_message(const MessagePtr& m) {
  Responder r;
  {
    std::lock_guard lock(mu_);
    all_.push_back(m);
    taken_.push_back(false);
    r = responder_;
  }
  cv_.notify_all();
  if (r && !m->is_response()) {
    if (auto resp = r(*m)) {
      if (resp->header.parent_id.empty()) resp->header.parent_id = m->header.id;
      (void)respond_(share(std::move(*resp)));
    }
  }
}

MessagePtr Capture::wait_for(Predicate pred, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  MessagePtr found;
  cv_.wait_for(lock, timeout, [&] {
    for (size_t i = 0; i < all_.size(); ++i)
      if (!taken_[i] && (!pred || pred(*all_[i]))) {
        taken_[i] = true;
        found = all_[i];
        return true;
      }
    return false;
  });
  return found;
}

bool Capture::wait_count(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return all_.size() >= n; });
}

size_t Capture::count() const {
  std::lock_guard lock(mu_);
  return all_.size();
}

std::vector<MessagePtr> Capture::messages() const {
  std::lock_guard lock(mu_);
  return all_;
}

void Capture::set_responder(Responder r) {
  std::lock_guard lock(mu_);
  responder_ = std::move(r);
}

Harness::Harness(std::string manifest_toml, fs::path base_dir) : base_dir_(std::move(base_dir)) {
  if (base_dir_.empty()) {
    std::random_device rd;
    base_dir_ = fs::temp_directory_path() / ("kedge-harness-" + std::to_string(rd()));
    fs::create_directories(base_dir_);
    own_dir_ = true;
  }
  auto mr = core::parse_manifest_text(manifest_toml, "harness.toml", base_dir_);
  if (!mr.ok()) {
    errors_ = mr.errors;
    return;
  }
  manifest_ = std::make_unique<core::Manifest>(std::move(*mr.manifest));
  auto res = core::resolve(*manifest_);
  if (!res.ok()) {
    errors_ = res.errors;
    return;
  }
  kernel_ = std::make_unique<core::Kernel>(*manifest_, std::move(res.order));
}

Harness::~Harness() {
  stop();
  kernel_.reset();
  if (own_dir_) {
    std::error_code ec;
    fs::remove_all(base_dir_, ec);
  }
}

Capture& Harness::capture(const std::string& name, const std::string& group) {
  Capture& c = captures_.emplace_back();
  c.name_ = name;
  if (kernel_) {
    auto* k = kernel_.get();
    c.respond_ = [k, name](MessagePtr m) { return k->router().respond(name, std::move(m)); };
    Status s = kernel_->add_module(name, group, [&c](const MessagePtr& m) { c.on_message(m); });
    if (!s) errors_.push_back(s.message());
  }
  return c;
}

Status Harness::start() {
  if (!kernel_) {
    std::string all;
    for (auto& e : errors_) all += e + "\n";
    return invalid_argument("harness manifest is invalid:\n" + all);
  }
  return kernel_->start();
}

void Harness::stop() {
  if (kernel_) kernel_->stop();
}

Status Harness::send(const std::string& to, Message m, std::chrono::milliseconds wait) {
  return kernel_->router().send(m.route.source, to, share(std::move(m)), wait);
}

Status Harness::send_to_group(const std::string& group, Message m) {
  return kernel_->router().send_to_group(m.route.source, group, share(std::move(m)));
}

std::pair<Status, MessagePtr> Harness::request(const std::string& to, Message m,
                                               std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<std::pair<Status, MessagePtr>>>();
  auto f = p->get_future();
  std::string from = m.route.source.empty() ? "(harness)" : m.route.source;
  kernel_->router().request(from, to, share(std::move(m)), timeout, [p](Status s, MessagePtr r) {
    p->set_value({std::move(s), std::move(r)});
  });
  return f.get();
}

core::Kernel& Harness::kernel() { return *kernel_; }

// A port below Linux's ephemeral range (32768-60999): the kernel never hands
// it out for a connect() or a bind to port 0 in the meantime, so another test
// cannot take it between this check and the server's own bind.
uint16_t Harness::free_port() {
  static std::mt19937 rng{std::random_device{}() ^ static_cast<unsigned>(::getpid())};
  std::uniform_int_distribution<int> pick(20000, 32000);
  boost::asio::io_context io;
  for (int i = 0; i < 500; ++i) {
    auto port = static_cast<uint16_t>(pick(rng));
    boost::system::error_code ec;
    boost::asio::ip::tcp::acceptor a(io);
    a.open(boost::asio::ip::tcp::v4(), ec);
    if (!ec) a.bind({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
    if (!ec) return port;
  }
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

bool Harness::eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

}  // namespace kedge::testing
