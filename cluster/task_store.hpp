#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "cluster/naming.hpp"
#include "cluster/redis_client.hpp"
#include "messages/types.hpp"

namespace nova {

/// A task as one consumer of the group holds it: the entry stays in the
/// group's pending list until `complete`, `fail` or `release`.
struct claimed_task {
  /// `attempts` counts every delivery so far, this one included.
  nova::task task;
  /// The lane the entry was read from.
  nova::priority lane = priority::normal;
  /// The stream entry id in that lane.
  std::string entry_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, claimed_task& x) {
  return f(caf::meta::type_name("nova::claimed_task"), x.task, x.lane,
           x.entry_id);
}

/// The cluster-wide task queue in the store (DragonflyDB, or any server
/// speaking the Redis protocol, restricted to commands Dragonfly supports):
/// one stream per priority lane read through the consumer group
/// `<prefix>.workers`, a sorted set of retries waiting for their backoff, the
/// dead-letter stream and one results stream per session. See docs/tasks.md
/// for the key layout and the delivery semantics.
///
/// Every state change is one Lua script whose keys are all declared, so it
/// is atomic and Dragonfly accepts it. Every member function is thread-safe
/// and blocks for at most one round trip per step (`command_timeout`), or the
/// given timeout for `wait_claim` and `collect`. Times that other nodes must
/// agree on (retry due dates) are unix milliseconds, passed in.
class task_store {
public:
  struct settings {
    /// Deliveries before a task becomes a dead letter; a task's own
    /// `max_attempts` overrides it.
    uint32_t delivery_limit = 3;
    /// The backoff before attempt n + 1 is `retry_base * 2^(n-1)`, capped.
    caf::timespan retry_base = std::chrono::milliseconds(100);
    caf::timespan retry_max = std::chrono::seconds(30);
    /// Tasks waiting or in flight per lane; `enqueue` refuses more with
    /// `queue_full`.
    size_t max_len = 1'000'000;
    /// Approximate bound of the dead-letter stream.
    size_t dead_max_len = 1'000'000;
    /// Approximate bound of one session's results stream.
    size_t results_max_len = 100'000;
    /// A results stream expires this long after its last result.
    caf::timespan results_ttl = std::chrono::hours(24);
    /// How long an id stays taken (the id record) after its enqueue or
    /// redrive, whether its task is queued, waiting, in flight, dead or
    /// done.
    caf::timespan known_ttl = std::chrono::hours(24 * 7);
    /// Entries `reclaim` takes per lane and call; due retries `promote_due`
    /// moves per round.
    size_t batch = 100;
    /// Dedicated connections for `wait_claim` and `collect`, which hold
    /// theirs for the whole wait.
    size_t blocking_connections = 4;
  };

  /// What `complete` did.
  enum class completion : uint8_t {
    /// The ack found the entry pending: the task is done, its result
    /// written, now.
    done,
    /// The entry was no longer pending: another delivery completed it, or
    /// it was retried, dead or released meanwhile. Nothing was written.
    stale,
  };

  /// What `fail` did.
  struct failure {
    /// Set when the task reached its delivery limit: it is a dead letter.
    std::optional<task_result> dead;
    /// Unix ms when the retry becomes claimable (unset for dead tasks).
    std::optional<int64_t> retry_at;
    /// The entry was no longer pending (another delivery completed, retried
    /// or gave up the task): nothing changed.
    bool stale = false;
  };

  /// What `reclaim` took over.
  struct reclaimed {
    /// Claimed for the caller, with their delivery count raised.
    std::vector<claimed_task> tasks;
    /// Entries past their delivery limit, now dead letters.
    std::vector<task_result> dead;
  };

  /// Results read from a session's results stream.
  struct result_batch {
    std::vector<task_result> results;
    /// The id of the last entry read (or the position passed in): pass it
    /// back to continue after it.
    std::string last_id;
  };

  /// A store over `pool`, with keys from `names`. Connects nothing yet.
  /// `invalid_argument` for settings that cannot work (no connections for
  /// blocking reads, a zero bound).
  [[nodiscard]] static caf::expected<std::shared_ptr<task_store>>
  make(std::shared_ptr<redis_pool> pool, naming names, settings s);

  [[nodiscard]] static caf::expected<std::shared_ptr<task_store>>
  make(std::shared_ptr<redis_pool> pool, naming names) {
    return make(std::move(pool), std::move(names), settings{});
  }

  task_store(const task_store&) = delete;
  task_store& operator=(const task_store&) = delete;

  /// Creates the consumer group on every lane (and the lanes themselves),
  /// reading from the start of each stream; an existing group is kept.
  [[nodiscard]] caf::error ensure_groups();

  /// Appends `t` to its lane with `attempts` 0; an empty id gets a new one.
  /// Returns the id. `duplicate_id` while the id is queued, in flight,
  /// waiting for a retry, dead or done; `queue_full` when the lane holds
  /// `max_len` entries; `invalid_id` for an id or session that cannot be
  /// part of a key.
  [[nodiscard]] caf::expected<std::string> enqueue(task t);

  /// As `enqueue` for every task of `ts`, in one script call per 512
  /// tasks or about 4 MiB of payload (all in one pipeline on one
  /// connection; they run in order): per
  /// task, in order, its id or the error `enqueue` would give. The
  /// outer error means the store was not reached, or the connection broke
  /// and it is unknown which tasks were added (enqueueing them again is
  /// safe: an added one is refused as `duplicate_id`). The tasks stay in
  /// `ts` (for such a retry), with their ids and `attempts` 0 set.
  [[nodiscard]] caf::expected<std::vector<caf::expected<std::string>>>
  enqueue_many(std::vector<task>& ts);

  /// Claims the oldest undelivered entry of the highest non-empty lane for
  /// `consumer` (`claim_many` of one); nothing when every lane is drained.
  [[nodiscard]] caf::expected<std::optional<claimed_task>>
  claim(const std::string& consumer);

  /// As `claim`, but waits up to `timeout` for an entry on a dedicated
  /// connection (no polling): strict priority and FIFO hold, and at most one
  /// entry is claimed (see docs/tasks.md).
  [[nodiscard]] caf::expected<std::optional<claimed_task>>
  wait_claim(const std::string& consumer, caf::timespan timeout);

  /// Claims up to `n` undelivered entries for `consumer`, the highest lane
  /// first, the next lanes for what is left (priority order, FIFO within a
  /// lane; see docs/tasks.md for the race with a task that arrives
  /// meanwhile). The lanes down to the one the last call needed (where it
  /// reached its count, else the last that gave) are read in one
  /// XREADGROUP; when a lane above it got entries since, those come too,
  /// so the result can hold up to `n` per lane read that way, ordered by
  /// lane. Empty when every lane is drained. Undecodable entries
  /// are buried on the way.
  [[nodiscard]] caf::expected<std::vector<claimed_task>>
  claim_many(const std::string& consumer, size_t n);

  /// As `claim_many`, waiting up to `timeout` for the first entry as
  /// `wait_claim` does.
  [[nodiscard]] caf::expected<std::vector<claimed_task>>
  wait_claim_many(const std::string& consumer, size_t n,
                  caf::timespan timeout);

  /// Records the task as done once per task id: acks the entry and, if the
  /// ack found it pending, writes the result to the session's results
  /// stream (`done`); otherwise another delivery settled it first and
  /// nothing is written (`stale`). Acked entries are trimmed off the lane.
  [[nodiscard]] caf::expected<completion>
  complete(const claimed_task& c, const std::string& payload,
           const std::string& worker);

  /// One completion of `complete_many`.
  struct completion_request {
    claimed_task claim;
    std::string payload;
    std::string worker;
  };

  /// As `complete` for every request of `xs`, in one script call per 512
  /// requests or about 4 MiB of results, all in one pipeline: per request,
  /// in order, what happened. The outer error means
  /// the store was not reached or it is unknown which completions ran
  /// (running them again is safe: an acked entry is `stale`).
  [[nodiscard]] caf::expected<std::vector<completion>>
  complete_many(const std::vector<completion_request>& xs);

  /// Fails this delivery. Below the delivery limit the entry is acked and
  /// the task waits in the delayed set until `now_ms + backoff(attempts)`;
  /// at the limit it is appended to the dead-letter stream, then acked, and
  /// a dead result goes to the session's results stream.
  [[nodiscard]] caf::expected<failure>
  fail(const claimed_task& c, const std::string& reason, int64_t now_ms,
       const std::string& worker = {});

  /// Gives a claim back without counting its delivery: the task goes to the
  /// end of its lane again. For a claim nobody will run (its worker left
  /// before it arrived). False if it was no longer pending.
  [[nodiscard]] caf::expected<bool> release(const claimed_task& c);

  /// Moves retries due at `now_ms` back to the end of their lanes; returns
  /// how many moved.
  [[nodiscard]] caf::expected<size_t> promote_due(int64_t now_ms);

  /// When the earliest retry is due (unix ms), if any is waiting.
  [[nodiscard]] caf::expected<std::optional<int64_t>> next_due();

  /// Takes over entries pending longer than `min_idle` on any consumer
  /// (XAUTOCLAIM, at most `batch` per lane) for `consumer`; each one's
  /// delivery count rises, and those past the limit become dead letters.
  /// Pass more than the task timeout, or running tasks get taken.
  [[nodiscard]] caf::expected<reclaimed>
  reclaim(const std::string& consumer, caf::timespan min_idle);

  /// The oldest `limit` dead letters, each with its attempts and last error.
  /// An undecodable one is listed with the raw bytes as payload.
  [[nodiscard]] caf::expected<std::vector<task>> dead_letters(size_t limit);

  /// Puts the dead letter `task_id` (all of them for an empty id) back at
  /// the end of its lane with a fresh delivery count; returns how many moved.
  /// `not_found` for an id that is no dead letter.
  [[nodiscard]] caf::expected<size_t> redrive(const std::string& task_id);

  /// Depth per lane (urgent, high, normal, low) = entries not yet delivered;
  /// in flight = pending in the group; delayed; dead; and the cluster-wide
  /// counts of enqueued, done and retried tasks.
  [[nodiscard]] caf::expected<queue_stats> stats();

  /// Pending entries per consumer over all lanes.
  [[nodiscard]] caf::expected<std::map<std::string, uint64_t>>
  pending_per_consumer();

  /// Waits up to `timeout` until `n` results of `session` after position
  /// `from` ("0" or "0-0": from the start) arrived, on a dedicated
  /// connection; returns what arrived by then.
  [[nodiscard]] caf::expected<result_batch>
  collect(const std::string& session, size_t n, caf::timespan timeout,
          const std::string& from = "0-0");

  /// Up to `limit` results of `session` after `last_id`, without waiting.
  [[nodiscard]] caf::expected<result_batch>
  results_since(const std::string& session, const std::string& last_id,
                size_t limit = 1000);

  /// The backoff before attempt `attempts + 1`.
  [[nodiscard]] caf::timespan backoff(uint32_t attempts) const noexcept;

  /// Entries (in lanes, the delayed set or results streams) that could not
  /// be decoded; the task ones were moved to the dead letters.
  [[nodiscard]] uint64_t malformed() const noexcept {
    return malformed_.load(std::memory_order_relaxed);
  }

  /// Calls that failed because the store was unreachable.
  [[nodiscard]] uint64_t store_errors() const noexcept {
    return store_errors_.load(std::memory_order_relaxed);
  }

  [[nodiscard]] const settings& config() const noexcept {
    return settings_;
  }

  [[nodiscard]] const nova::naming& names() const noexcept {
    return names_;
  }

  /// Key of the id records: a sorted set of the ids taken, each scored
  /// with the unix ms when it is free again.
  [[nodiscard]] std::string known_key() const;
  [[nodiscard]] std::string delayed_key() const;
  [[nodiscard]] std::string stats_key() const;

  /// The lanes in claim order: urgent, high, normal, low.
  [[nodiscard]] std::vector<std::string> lanes() const;

private:
  task_store(std::shared_ptr<redis_pool> pool, redis_pool blocking,
             naming names, settings s);

  // One claim of up to `n` entries on `conn`. Without an entry, `positions`
  // receives the last entry id of every lane (what `wait_claim` blocks
  // after); it stays empty when the entries read were all undecodable.
  caf::expected<std::vector<claimed_task>>
  claim_on(redis_connection& conn, const std::string& consumer, size_t n,
           std::vector<std::string>* positions);

  // Moves an undecodable entry of lane `lane` to the dead letters, acked.
  caf::error bury(redis_connection& conn, size_t lane,
                  const std::string& entry_id, const std::string& raw,
                  const std::string& id, const std::string& reason);

  // Decodes the entry `entry_id` of lane index `lane` into a claim at the
  // end of `out`, or buries it when undecodable (false).
  caf::expected<bool> take_entry(redis_connection& conn, size_t lane,
                                 const std::string& entry_id,
                                 const redis_value& fields,
                                 std::vector<claimed_task>& out);

  // Appends the task to the dead letters and its dead result to the
  // session's results, then acks the entry.
  caf::expected<failure> bury_task(redis_connection& conn,
                                   const claimed_task& c, task t,
                                   const std::string& worker);

  // Claims up to `n` entries (see claim_many); `combined`: the lanes down
  // to `claim_hint_` in one read, which can give more than `n`.
  caf::expected<std::vector<claimed_task>>
  read_lanes(const std::string& consumer, size_t n, bool combined);

  // The score of an id taken at `now` (unix ms): when it is free again.
  [[nodiscard]] std::string known_until(int64_t now) const;

  // The key of the lane of `p` (made once: it is part of every batch).
  [[nodiscard]] const std::string& lane_key(priority p) const;

  // Counts a failure to reach the store.
  caf::error track(caf::error err);
  template <class T>
  caf::expected<T> track(caf::expected<T> x) {
    if (!x)
      track(x.error());
    return x;
  }

  settings settings_;
  naming names_;
  // Urgent, high, normal, low.
  std::vector<std::string> lane_keys_;
  std::string stats_key_;
  std::string known_key_;
  std::shared_ptr<redis_pool> pool_;
  redis_pool blocking_;
  // The lane index the last combined claim needed (see claim_many).
  std::atomic<size_t> claim_hint_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> store_errors_{0};
};

[[nodiscard]] const char* to_string(task_store::completion x) noexcept;

} // namespace nova
