#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/timespan.hpp>

#include "actors/bus.hpp"
#include "actors/counters.hpp"
#include "actors/directory.hpp"
#include "actors/tap.hpp"

namespace nova {

class durable_service;

/// Limits and intervals every actor of a node shares.
struct limits {
  size_t max_payload = 1024 * 1024;
  caf::timespan request_timeout = std::chrono::seconds(5);
  caf::timespan heartbeat_interval = std::chrono::seconds(30);
  uint32_t delivery_limit = 3;
  /// Envelopes that may wait for a lost connection before sends fail.
  size_t outbox_capacity = 100'000;
  caf::timespan retry_base = std::chrono::milliseconds(100);
  caf::timespan retry_max = std::chrono::seconds(30);
  /// A claimed task not completed within this time counts as failed.
  caf::timespan task_timeout = std::chrono::seconds(30);
  /// With a store: how long a task id stays taken after its enqueue or
  /// redrive (its record in `nova.tasks.known`).
  caf::timespan task_id_ttl = std::chrono::hours(24 * 7);
  /// Envelope ids each Nova remembers to drop durable redeliveries.
  size_t dedup_window = 10'000;
};

/// What a node shares with its actors: created by `nova::node`, held by every
/// agent through a shared pointer, never touched by callbacks of C libraries.
struct runtime_context {
  std::string node_id;
  nova::limits limits;
  nova::directory directory;
  nova::counters stats;
  /// The task queue service (memory queue in embedded mode).
  caf::actor tasks;
  /// The presence monitor.
  caf::actor presence;
  /// The gateway actor: answers requests to Novas on other nodes and hands
  /// inbound requests to local Novas. Invalid when running embedded.
  caf::actor gateway;
  /// The path to other nodes; null when running embedded.
  std::shared_ptr<remote_bus> bus;
  /// Durable delivery (`send_options::durable`); null without a store.
  std::shared_ptr<durable_service> durable;
  /// Spreads `send_any` over local Novas when running embedded.
  std::atomic<uint64_t> round_robin{0};
  /// False once shutdown began: no new work is accepted from outside.
  std::atomic<bool> accepting{true};
  /// False while the presence store (`--store redis`) is unreachable and the
  /// presence monitor answers from memory; health reports `degraded` then.
  std::atomic<bool> presence_store_ok{true};
  /// Replies to requests made by Novas and through the node, by latency.
  latency_histogram request_latency;
  /// Messages waiting in the Novas' mailboxes: each Nova adds what it saw
  /// at its last heartbeat (a sampled gauge, never read on a hot path).
  std::atomic<int64_t> mailbox_depth{0};
  /// Observers of the envelopes this node sends and receives (the HTTP
  /// feed); set before the first Nova starts, null when nobody can watch.
  std::shared_ptr<envelope_tap> tap;
};

/// Hands `env` to the node's observers, if any are watching.
inline void tap_envelope(runtime_context& ctx, const envelope& env,
                         std::string_view wire_subject = {}) {
  if (auto* t = ctx.tap.get(); t != nullptr && t->wants(env.kind))
    t->observe(env, !wire_subject.empty(), wire_subject);
}

using context_ptr = std::shared_ptr<runtime_context>;

} // namespace nova
