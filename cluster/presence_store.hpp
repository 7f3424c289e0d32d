#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "cluster/naming.hpp"
#include "cluster/redis_client.hpp"
#include "messages/types.hpp"

namespace nova {

/// Cluster-wide presence in the store (DragonflyDB, or any server speaking
/// the Redis protocol, restricted to commands Dragonfly supports).
///
/// Keys (prefix `p`, default `nova`):
/// - hash `p.presence.<nova_id>` (wire contract): fields `id`, `status`,
///   `node`, `capabilities` (comma-joined), `current_task`, `last_seen`,
///   `started`, `groups` (comma-joined) and `data` (the protobuf
///   `Presence`); expires after 3 heartbeat intervals without a heartbeat.
///   `status`, `current_task` and `last_seen` are authoritative: `leave` and
///   `sweep` change them without rewriting `data`.
/// - stream `p.presence.updates` (wire contract): one entry per change, with
///   fields `id`, `status`, `node`, `current_task`, `capabilities`,
///   `last_seen`, `data`, `reason` (`heartbeat`, `leave`, `timeout`);
///   approximately bounded to `updates_max_len`.
/// - sorted set `p.index.presence`: every Nova not offline, scored by its
///   last heartbeat (unix ms).
/// - sorted sets `p.index.capability.<capability>`: the same, per capability.
/// - hash `p.index.presence.capabilities`: Nova id -> capabilities indexed for
///   it (what lets a script know which capability sets to clean up).
///
/// Every change is one Lua script whose keys are all declared (Dragonfly
/// refuses others), so concurrent heartbeats, leaves and sweeps of several
/// nodes report each change exactly once. A heartbeat is one EVALSHA; a batch
/// of heartbeats is one EVALSHA per `batch` Novas, all sent in one pipeline.
/// Only when a Nova's capabilities changed on another store instance does a
/// script ask for a second round trip (it must declare the old capability
/// sets). Every member function is thread-safe. Times are unix ms, passed in.
class presence_store {
public:
  struct settings {
    /// How often every Nova heartbeats. A hash lives 3 intervals; a Nova is
    /// offline after 1.5 intervals without a heartbeat.
    caf::timespan heartbeat_interval = std::chrono::seconds(5);
    /// Approximate bound of the updates stream.
    size_t updates_max_len = 100'000;
    /// Novas per script in `heartbeat_batch` and `sweep`.
    size_t batch = 500;
  };

  /// A store over `pool`, with keys from `names`. Connects nothing yet.
  /// `invalid_argument` for settings that cannot work.
  [[nodiscard]] static caf::expected<std::shared_ptr<presence_store>>
  make(std::shared_ptr<redis_pool> pool, naming names, settings s);

  [[nodiscard]] static caf::expected<std::shared_ptr<presence_store>>
  make(std::shared_ptr<redis_pool> pool, naming names) {
    return make(std::move(pool), std::move(names), settings{});
  }

  presence_store(const presence_store&) = delete;
  presence_store& operator=(const presence_store&) = delete;

  /// Records a heartbeat of `p` at `now_ms` (which becomes its `last_seen`).
  /// True when it is a change others should hear of (new Nova, or other
  /// status, current task or node): then it is also on the updates stream.
  /// `invalid_id` for a Nova id, node id, capability or group that cannot be
  /// part of a key.
  [[nodiscard]] caf::expected<bool> heartbeat(const presence& p,
                                              int64_t now_ms);

  /// `heartbeat` for many Novas (of one node) in one round trip; returns
  /// the changes. Nothing is written when one presence is invalid.
  [[nodiscard]] caf::expected<std::vector<presence>>
  heartbeat_batch(std::vector<presence> ps, int64_t now_ms);

  /// Marks a Nova offline because it stopped: out of the indexes, status
  /// `offline`, an update on the stream. Returns the change, nothing when it
  /// was unknown or offline already.
  [[nodiscard]] caf::expected<std::optional<presence>>
  leave(const std::string& nova_id, int64_t now_ms);

  /// Marks Novas offline whose last heartbeat is more than 1.5 intervals
  /// before `now_ms`; returns the changes. Safe with several nodes sweeping
  /// at once: each change is reported by exactly one of them.
  [[nodiscard]] caf::expected<std::vector<presence>> sweep(int64_t now_ms);

  /// Novas not offline, heard of within 1.5 intervals before `now_ms`, with
  /// `capability` (all of them when empty), most recently seen first.
  [[nodiscard]] caf::expected<std::vector<presence>>
  discover(const std::string& capability, int64_t now_ms);

  /// The presence of `nova_id` while its hash lives (offline ones too).
  [[nodiscard]] caf::expected<std::optional<presence>>
  get(const std::string& nova_id);

  /// Up to `limit` Novas not offline, most recently seen first (without a
  /// staleness check: `sweep` is what removes the stale ones).
  [[nodiscard]] caf::expected<std::vector<presence>> list(size_t limit);

  /// Stored presences that could not be decoded (skipped).
  [[nodiscard]] uint64_t malformed() const noexcept {
    return malformed_.load(std::memory_order_relaxed);
  }

  /// Calls that failed because the store was unreachable.
  [[nodiscard]] uint64_t store_errors() const noexcept {
    return store_errors_.load(std::memory_order_relaxed);
  }

  /// Scripts sent to the store (EVALSHA, and SCRIPT LOAD): what a benchmark
  /// divides by heartbeats.
  [[nodiscard]] uint64_t scripts_run() const noexcept {
    return scripts_run_.load(std::memory_order_relaxed);
  }

  [[nodiscard]] const settings& config() const noexcept {
    return settings_;
  }

  [[nodiscard]] const nova::naming& names() const noexcept {
    return names_;
  }

  /// 1.5 heartbeat intervals, in ms.
  [[nodiscard]] int64_t offline_after_ms() const noexcept;

  /// 3 heartbeat intervals, in ms.
  [[nodiscard]] int64_t ttl_ms() const noexcept;

  [[nodiscard]] std::string index_key() const;
  [[nodiscard]] std::string capabilities_key() const;
  /// The capability must be a valid id.
  [[nodiscard]] std::string capability_key(const std::string& cap) const;

private:
  presence_store(std::shared_ptr<redis_pool> pool, naming names, settings s);

  // Runs the script `src` once per call in `calls` ({keys, args}), all in
  // one pipeline of EVALSHA (loading the script first when needed).
  caf::expected<std::vector<redis_value>>
  run_scripts(const std::string& src,
              const std::vector<std::pair<std::vector<std::string>,
                                          std::vector<std::string>>>& calls);

  caf::expected<std::string> script_sha(const std::string& src, bool reload);

  // Decodes the reply of HMGET data status current_task last_seen.
  std::optional<presence> from_fields(const redis_value& fields);

  caf::error track(caf::error err);

  settings settings_;
  naming names_;
  std::shared_ptr<redis_pool> pool_;
  std::mutex sha_mtx_;
  std::map<const std::string*, std::string> shas_;
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> store_errors_{0};
  std::atomic<uint64_t> scripts_run_{0};
};

} // namespace nova
