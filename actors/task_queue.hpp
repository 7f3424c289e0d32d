#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "messages/types.hpp"

namespace nova {

/// The task queue's bookkeeping, without actors or threads: priority lanes,
/// leases, retries with exponential backoff, the delivery limit and dead
/// letters. Time is passed in, so tests drive it directly. The memory
/// backend's queue actor delegates to it.
class task_queue {
public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  struct settings {
    uint32_t delivery_limit = 3;
    caf::timespan retry_base = std::chrono::milliseconds(100);
    caf::timespan retry_max = std::chrono::seconds(30);
    caf::timespan task_timeout = std::chrono::seconds(30);
    /// How many completed task ids are remembered to ignore late duplicates.
    size_t remembered_ids = 1'000'000;
  };

  /// What happened to a task whose attempt failed.
  struct failure {
    /// Set when the task reached the delivery limit and is now a dead letter.
    std::optional<task_result> dead;
    /// When the next attempt becomes claimable (unset for dead tasks).
    std::optional<time_point> retry_at;
  };

  explicit task_queue(settings s);

  /// Adds a task to its priority lane. A task id that is queued, claimed,
  /// waiting for a retry, dead or already done is `errc::duplicate_id`.
  caf::error enqueue(task t);

  /// Takes the oldest task of the highest non-empty lane and leases it to
  /// `worker` until `now + task_timeout`; counts one delivery.
  std::optional<task> claim(const std::string& worker, time_point now);

  /// Finishes a task leased to `worker`. `errc::not_found` if it is not
  /// leased to `worker` (already done, never claimed, or its lease expired).
  caf::expected<task_result> complete(const std::string& task_id,
                                      const std::string& worker,
                                      std::string payload, time_point now);

  /// Fails the current attempt of a task leased to `worker` (else
  /// `errc::not_found`): it retries after a backoff
  /// of `retry_base * 2^(attempts-1)` (capped at `retry_max`) or, at the
  /// delivery limit, becomes a dead letter.
  caf::expected<failure> fail(const std::string& task_id,
                              const std::string& worker, std::string reason,
                              time_point now);

  /// Fails every lease of a worker that stopped.
  std::vector<failure> release_worker(const std::string& worker,
                                      time_point now);

  /// Fails leases past their deadline and moves retries whose backoff ended
  /// back into their lanes. Returns the dead letters this produced.
  std::vector<task_result> advance(time_point now);

  /// When `advance` next has work to do, if ever.
  [[nodiscard]] std::optional<time_point> next_deadline() const;

  [[nodiscard]] bool has_ready() const noexcept;

  [[nodiscard]] std::vector<task> dead_letters(size_t limit) const;

  /// Puts a dead letter (or all of them, for an empty id) back into its lane
  /// with a fresh delivery count; returns how many moved.
  caf::expected<size_t> redrive(const std::string& task_id);

  [[nodiscard]] queue_stats stats() const;

  [[nodiscard]] const settings& config() const noexcept {
    return settings_;
  }

  /// The backoff before attempt `attempts + 1`.
  [[nodiscard]] caf::timespan backoff(uint32_t attempts) const noexcept;

private:
  struct lease {
    task t;
    std::string worker;
    time_point deadline;
  };

  struct delayed {
    task t;
    time_point ready_at;
  };

  static size_t lane_of(priority p) noexcept;
  failure fail_lease(lease l, std::string reason, time_point now);
  void remember_done(const std::string& id);

  settings settings_;
  // urgent, high, normal, low
  std::deque<task> lanes_[4];
  std::unordered_set<std::string> queued_ids_;
  std::unordered_map<std::string, lease> leases_;
  std::vector<delayed> delayed_;
  std::deque<task> dead_;
  std::unordered_set<std::string> done_ids_;
  std::deque<std::string> done_order_;
  uint64_t done_ = 0;
  uint64_t retried_ = 0;
  uint64_t enqueued_ = 0;
};

} // namespace nova
