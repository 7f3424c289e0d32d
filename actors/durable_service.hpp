#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/timespan.hpp>

#include "actors/context.hpp"
#include "cluster/durable_store.hpp"
#include "messages/types.hpp"

namespace nova {

/// To a Nova: `(durable_atom)` says its durable inbox has new entries;
/// `(durable_atom, std::vector<stored_envelope>, bool more)` hands it the
/// next ones (`more`: the batch was full, ask again).
using durable_atom = caf::atom_constant<caf::atom("durable")>;

/// To a Nova: `(replay_atom, token, std::vector<stored_envelope>)` or
/// `(replay_atom, token, caf::error)`, the answer to `durable_service::replay`.
using replay_atom = caf::atom_constant<caf::atom("replay")>;

/// What to read back from a durable stream (see `durable_store::replay`).
struct replay_query {
  /// A full stream key, e.g. `nova.inbox.bob`.
  std::string stream;
  /// An entry id, unix ms, or "-"/empty for the start.
  std::string from;
  /// NATS wildcards over the envelope subject; empty: all.
  std::string subject_pattern;
  size_t limit = 1000;
};

/// The envelope header of the NATS notification that follows a durable
/// send to a Nova on another node: the stream entry id. Receivers that know
/// about durable inboxes read the stream instead of using the copy.
constexpr const char* durable_header = "Nova-Durable";

/// The durable delivery class of a node with `--store redis` (see
/// ARCHITECTURE.md): XADD to the stream first, then notify; the receiving
/// Nova reads its durable inbox after its cursor, in order, deduplicates
/// by envelope id and settles (moves the cursor). A Nova that was offline, or
/// not spawned yet, catches up when it comes up.
///
/// Two threads do the store I/O, so that no actor ever waits for the store:
/// a writer takes every envelope waiting when it wakes and XADDs them in one
/// pipeline (two in flight: it sends the next before it reads the older
/// one's replies), then notifies (a local Nova gets `(durable_atom)`, a Nova on
/// another node the envelope over the bus with `durable_header`, fan-out
/// kinds go out as usual); a reader serves catch-ups and acks in the order
/// asked. While the store is unreachable both retry with backoff, the node
/// reports `degraded`, and up to `capacity` envelopes wait; beyond that
/// `append` is `queue_full`. Every member function is thread-safe.
class durable_service {
public:
  struct settings {
    /// Envelopes per XADD pipeline and entries per catch-up read.
    size_t batch = 2048;
    /// Envelopes that may wait for the store before `append` fails.
    size_t capacity = 100'000;
    caf::timespan retry_min = std::chrono::milliseconds(100);
    caf::timespan retry_max = std::chrono::seconds(2);
  };

  durable_service(runtime_context* ctx, std::shared_ptr<durable_store> store,
                  settings s);

  durable_service(const durable_service&) = delete;
  durable_service& operator=(const durable_service&) = delete;

  /// Stops both threads; the writer first writes what waits, for at most
  /// `drain` while the store is reachable.
  ~durable_service();

  void stop(caf::timespan drain);

  /// Takes `env` (checked, with its id) for durable delivery. `queue_full`
  /// when `capacity` envelopes wait; `shutting_down` after `stop`.
  caf::error append(envelope env);

  /// Reads the next entries of `nova_id`'s durable inbox (first those it was
  /// given but did not ack, with `with_pending`) and sends them to `nova`.
  void catch_up(const std::string& nova_id, caf::actor nova,
                bool with_pending);

  /// Settles entries of `nova_id`'s durable inbox.
  void ack(const std::string& nova_id, std::vector<std::string> entry_ids);

  /// Reads `q` on the reader thread and sends the result to `to` as
  /// `(replay_atom, token, ...)`.
  void replay(replay_query q, caf::actor to, uint64_t token);

  [[nodiscard]] const std::shared_ptr<durable_store>& store() const noexcept {
    return store_;
  }

  /// Envelopes accepted and not written yet.
  [[nodiscard]] size_t backlog() const noexcept {
    return backlog_.load(std::memory_order_relaxed);
  }

  /// False while the last store call failed.
  [[nodiscard]] bool store_ok() const noexcept {
    return store_ok_.load(std::memory_order_relaxed);
  }

private:
  struct read_job {
    std::string nova_id;
    caf::actor nova;      // invalid for an ack
    bool with_pending = false;
    std::vector<std::string> acks; // for a read: acked with it
    std::optional<replay_query> replay; // set for a replay
    uint64_t token = 0;
  };

  void run_writer();
  void run_reader();
  // Moves the acks of `job`'s Nova waiting in `to_read_` into `job`.
  // Requires `read_mtx_`.
  void take_acks(read_job& job);
  // `woken`: the ids of the local receivers woken for this batch.
  void notify(const envelope& env, const std::string& entry_id,
              std::vector<std::string>& woken);
  void failed(const caf::error& err, const char* what);
  void recovered();
  caf::timespan next_delay(caf::timespan current) const;

  runtime_context* ctx_;
  std::shared_ptr<durable_store> store_;
  settings settings_;

  std::mutex write_mtx_;
  std::condition_variable write_cv_;
  std::deque<envelope> to_write_;
  bool stopping_ = false;
  caf::timespan drain_{0};

  std::mutex read_mtx_;
  std::condition_variable read_cv_;
  std::deque<read_job> to_read_;
  bool reader_stopping_ = false;

  std::atomic<size_t> backlog_{0};
  std::atomic<bool> store_ok_{true};
  std::atomic<bool> outage_logged_{false};

  std::thread writer_;
  std::thread reader_;
};

} // namespace nova
