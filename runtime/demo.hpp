#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>

namespace nova {

/// What `run_demo` simulates.
struct demo_options {
  /// At least 4: a watcher, a worker and two Novas that stop.
  size_t novas = 36;
  size_t groups = 4;
  /// Messages each Nova sends: mostly direct, the rest broadcasts,
  /// multicasts, events and requests.
  size_t messages_per_nova = 200;
  size_t tasks = 400;
  /// The share of tasks that always fail, so reach the dead letters.
  double task_failure_rate = 0.05;
  /// Print one JSON object instead of the readable summary.
  bool json = false;
};

/// Percentiles of one latency distribution, in microseconds.
struct latency_summary {
  uint64_t samples = 0;
  double p50_us = 0;
  double p99_us = 0;
  double max_us = 0;
};

/// The numbers `run_demo` printed. Sent and received counts are the node's
/// counters; `expected_*` are the deliveries the senders asked for (the
/// fan-out of each broadcast, multicast and event, as the directory knew it
/// at send time).
struct demo_summary {
  size_t novas = 0;
  size_t groups = 0;
  size_t workers = 0;

  uint64_t sent_direct = 0;
  uint64_t received_direct = 0;
  uint64_t sent_broadcast = 0;
  uint64_t received_broadcast = 0;
  uint64_t expected_broadcast = 0;
  uint64_t sent_multicast = 0;
  uint64_t received_multicast = 0;
  uint64_t expected_multicast = 0;
  uint64_t sent_event = 0;
  uint64_t received_event = 0;
  uint64_t expected_event = 0;
  uint64_t sent_request = 0;
  uint64_t received_request = 0;
  uint64_t sent_response = 0;
  /// Replies that reached the requesting Nova (errors not included).
  uint64_t requests_answered = 0;
  uint64_t request_errors = 0;
  uint64_t sent_emergency = 0;
  uint64_t received_emergency = 0;

  latency_summary request_rtt;
  latency_summary direct_one_way;

  /// Tasks the demo put on the queue, by lane.
  uint64_t tasks = 0;
  uint64_t tasks_urgent = 0;
  uint64_t tasks_high = 0;
  uint64_t tasks_normal = 0;
  uint64_t tasks_low = 0;
  /// Tasks built to fail on every attempt.
  uint64_t tasks_doomed = 0;
  uint64_t tasks_enqueued = 0;
  uint64_t tasks_done = 0;
  uint64_t tasks_retried = 0;
  /// Dead letters as `node::dead_letters` lists them.
  uint64_t tasks_dead = 0;
  /// Results of the demo's session that `node::collect` returned.
  uint64_t task_results = 0;

  /// Presence changes the monitor announced, and the presence updates the
  /// watching Nova received (the state when it began watching, then every
  /// change).
  uint64_t presence_changes = 0;
  uint64_t presence_seen = 0;
  uint64_t offline_seen = 0;
  size_t novas_stopped = 0;

  uint64_t handler_errors = 0;
  /// False when a bounded wait ran out before everything arrived.
  bool completed = false;
  double wall_ms = 0;
};

/// Runs a small embedded simulation: Novas in groups exchanging direct
/// messages, broadcasts, multicasts, events and requests; workers draining a
/// mixed-priority task queue in which some tasks always fail; presence
/// changes, and a couple of Novas stopping. Prints a summary to `out`
/// (readable, or one JSON object) and returns the numbers. Every wait is
/// bounded; it finishes in a few seconds.
demo_summary run_demo(const demo_options& opts, std::ostream& out);

} // namespace nova
