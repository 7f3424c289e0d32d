#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/timespan.hpp>

#include "actors/context.hpp"
#include "cluster/task_store.hpp"

namespace nova {

/// What the clustered task queue service reports about the store, for a
/// node's health: written by the service's threads, read from any thread.
struct stream_task_queue_health {
  /// False from the first call that could not reach the store until one
  /// gets through again.
  std::atomic<bool> store_reachable{true};
  /// Tasks accepted while the store was unreachable, not written yet.
  std::atomic<uint64_t> outbox_depth{0};
};

/// Tuning of the clustered task queue service; zero values derive from the
/// node's limits.
struct stream_task_queue_settings {
  /// Longest single blocking read of the claim helper thread: how long
  /// stopping the service may wait for it.
  caf::timespan claim_slice = std::chrono::seconds(1);
  /// How often stale claims of other nodes are reclaimed; 0: task_timeout/2.
  caf::timespan reclaim_interval{0};
  /// How long a claim must be idle to be reclaimed; 0: 1.5 * task_timeout.
  caf::timespan min_idle{0};
  /// Longest wait between attempts while the store is unreachable.
  caf::timespan store_retry_max = std::chrono::seconds(5);
  /// Most tasks claimed ahead of the workers' requests. The service claims
  /// ahead about what its workers finish in `prefetch_window` (nothing for
  /// slow tasks), at most this many; 0 turns it off.
  size_t prefetch = 512;
  caf::timespan prefetch_window = std::chrono::milliseconds(15);
  /// Tasks that may wait in memory while the store is unreachable; 0: the
  /// node's `outbox_capacity`.
  size_t outbox_capacity = 0;
  /// Shared with the node for its health report; the service makes its own
  /// when null.
  std::shared_ptr<stream_task_queue_health> health;
};

/// Asks the service for `(bool store_reachable, uint64_t outbox_depth)`.
using store_health_atom = caf::atom_constant<caf::atom("sqhealth")>;

/// The store settings that give the clustered queue the retry behaviour the
/// memory queue has under `l` (delivery limit, backoff base and cap).
[[nodiscard]] task_store::settings task_store_settings(const limits& l);

/// Spawns the clustered task queue service of a node: the same messages as
/// `spawn_task_queue` (see actors/task_queue_actor.hpp), over the queue that
/// `store` keeps in DragonflyDB, shared by every node of the cluster.
///
/// - `(enqueue_atom, task) -> std::string`: appends the task to its lane;
///   `duplicate_id`, `queue_full` or `invalid_id` otherwise. Enqueues that
///   arrive together are written in one round trip. While the store is
///   unreachable a task is accepted into a bounded outbox (its id is the
///   reply; `queue_full` once the outbox is full) and written in order once
///   the store answers again; later enqueues queue behind it.
/// - `(enqueue_atom, std::vector<task>) -> enqueue_results`: as many
///   enqueues in one message (one mailbox hop, one hand-over to the store
///   thread), per task in order its id or its error.
/// - `(claim_atom, worker_id) -> task`: replies once this node claimed a
///   task for the worker. Claims are made in batches for every waiting
///   worker, plus a few ahead when the workers are fast (`prefetch`); a
///   helper thread blocks on the store while workers wait and the queue is
///   empty. The worker is monitored: when it stops, its tasks are failed
///   (retried after the backoff), as the memory queue does.
/// - `(complete_atom, task_id, worker_id, payload)`,
///   `(fail_atom, task_id, worker_id, reason)`: for tasks this node handed
///   to that worker; anything else is ignored. Completions that arrive
///   together are written in one round trip. A task not completed within
///   `task_timeout` is failed.
/// - `(collect_atom, session, n, timeout) -> std::vector<task_result>`: up to
///   n results of the session's results stream (done or dead, from any node);
///   each result is handed out once per node.
/// - `(dead_atom, limit) -> std::vector<task>`; `(redrive_atom, task_id)
///   -> uint64_t` (empty id: all); `(stats_atom) -> queue_stats`
///   (cluster-wide); `(store_health_atom) -> (bool, uint64_t)`.
///
/// Claims made here belong to the consumer named after the node id. Claims
/// of nodes that died are reclaimed every `reclaim_interval`; retries are
/// promoted when due. An unreachable store is logged and retried with
/// backoff; requests that need it (stats, dead letters, redrive) fail with
/// `backend_unavailable`.
caf::actor spawn_stream_task_queue(caf::actor_system& sys, context_ptr ctx,
                                   std::shared_ptr<task_store> store,
                                   stream_task_queue_settings cfg);

caf::actor spawn_stream_task_queue(caf::actor_system& sys, context_ptr ctx,
                                   std::shared_ptr<task_store> store);

} // namespace nova
