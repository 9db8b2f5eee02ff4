// The cloud's object store: one interface, two backends (SQLite, embedded;
// etcd v3, shared by several cloud replicas). It stores opaque values (the
// apiserver's JSON objects) under keys like /registry/pods/default/nginx, in
// the model of Kubernetes' storage layer over etcd:
//
// * One store-wide revision, raised by every write. An object's
//   resourceVersion is the revision of its last write (mod_rev).
// * Optimistic concurrency: update and remove take the revision the caller
//   read; a different current one is kConflict.
// * Watches from a revision: every change after it, in revision order, then
//   live ones. A start older than the kept history is kGone (HTTP 410), as
//   Kubernetes answers "too old resource version".
//
// A Store is safe to use from several threads. Watch callbacks run on the
// thread that made the write (or the backend's own thread) and must not block
// or call back into the store; post to your own executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kedge/status.h"

namespace kedge::store {

struct Object {
  std::string key;
  std::string value;
  int64_t create_rev = 0;
  int64_t mod_rev = 0;  // the object's resourceVersion
};

struct Event {
  enum class Type { kAdded, kModified, kDeleted };
  Type type = Type::kAdded;
  std::string key;
  std::string value;  // for kDeleted: the value it had
  int64_t rev = 0;    // the revision of this change
};

const char* type_name(Event::Type t);  // ADDED, MODIFIED, DELETED

// The first key after every key that starts with prefix, "" if there is none
// (a prefix of 0xff bytes, or empty): etcd's range_end for a prefix.
std::string prefix_end(std::string prefix);

// Result<T> is kedge::Result (kedge/status.h).
using ::kedge::Result;

struct List {
  std::vector<Object> items;  // in key order
  int64_t rev = 0;            // the store's revision the list was read at
};

class Watch {
 public:
  virtual ~Watch() = default;
  // Stops delivery; no callback runs after it returns.
  virtual void cancel() = 0;
};

class Store {
 public:
  using OnEvent = std::function<void(const Event&)>;
  // Called once if the watch ends from the store's side (backend lost,
  // history compacted under a slow watcher): the watcher re-lists.
  using OnEnd = std::function<void(const Status&)>;

  virtual ~Store() = default;
  virtual std::string backend() const = 0;  // "sqlite", "etcd"

  // kAlreadyExists if the key exists. Returns the new revision.
  virtual Result<int64_t> create(const std::string& key, const std::string& value) = 0;
  // kNotFound if absent.
  virtual Result<Object> get(const std::string& key) = 0;
  // Every key starting with prefix, at one revision.
  virtual Result<List> list(const std::string& prefix) = 0;
  // expected_rev 0: unconditional. kNotFound if absent, kConflict if
  // expected_rev is not the object's mod_rev. Returns the new revision.
  virtual Result<int64_t> update(const std::string& key, const std::string& value,
                                 int64_t expected_rev) = 0;
  // As update; returns the object as it was, with the delete's revision in
  // mod_rev.
  virtual Result<Object> remove(const std::string& key, int64_t expected_rev) = 0;
  // Events for keys starting with prefix with rev > from_rev. from_rev 0:
  // from now. kGone if from_rev is older than the kept history.
  virtual Result<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t from_rev,
                                               OnEvent on_event, OnEnd on_end = {}) = 0;
  virtual int64_t revision() = 0;
};

struct SqliteOptions {
  std::string path;
  // Events kept for watches that resume from a revision (Kubernetes keeps
  // 5 minutes of etcd history by default; this is by count).
  int64_t history = 100000;
  bool synchronous_full = true;
};
Result<std::unique_ptr<Store>> open_sqlite(const SqliteOptions& o);

struct EtcdOptions {
  std::vector<std::string> endpoints;       // host:port of etcd's client URL (plain gRPC)
  std::string prefix = "/kedge";            // every key is stored under it
  int64_t history = 100000;                 // revisions kept before compaction
  std::chrono::milliseconds timeout{5000};  // per request
};
// Fails (naming the endpoint) if etcd does not answer within the timeout.
Result<std::unique_ptr<Store>> open_etcd(const EtcdOptions& o);

}  // namespace kedge::store
