#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/context.hpp"

namespace nova {

/// What the node and its Novas check before a task goes to the queue
/// service (either one): the session and an explicit task id are valid
/// ids, the payload is within `max_payload` (else `payload_too_large`,
/// counted as `rejected_oversized`). Fills in a generated id when there is
/// none and `created_at`; `created_by` is the caller's.
[[nodiscard]] caf::error prepare_task(task& t, runtime_context& ctx);

/// Spawns the embedded (memory) task queue service for a node.
///
/// Messages:
/// - `(enqueue_atom, task) -> std::string`: queue it; idle workers waiting
///   on a claim get it at once.
/// - `(enqueue_atom, std::vector<task>) -> enqueue_results`: as many
///   enqueues in one message, per task in order its id or its error.
/// - `(claim_atom, worker_id) -> task`: replies when a task is available
///   (the worker waits; no polling). The worker is monitored: its leases are
///   failed if it stops.
/// - `(complete_atom, task_id, worker_id, payload)`,
///   `(fail_atom, task_id, worker_id, reason)`.
/// - `(collect_atom, session, n, timeout) -> std::vector<task_result>`: up to
///   n results (done or dead) of a session; what arrived when the timeout
///   expires. Collected results are handed out once.
/// - `(dead_atom, limit) -> std::vector<task>`; `(redrive_atom, task_id)
///   -> uint64_t` (empty id: all); `(stats_atom) -> queue_stats`.
caf::actor spawn_task_queue(caf::actor_system& sys, context_ptr ctx);

} // namespace nova
