#include "actors/counters.hpp"

namespace nova {

const char* to_string(counter x) noexcept {
  switch (x) {
    case counter::sent_direct: return "sent_direct";
    case counter::sent_broadcast: return "sent_broadcast";
    case counter::sent_multicast: return "sent_multicast";
    case counter::sent_event: return "sent_event";
    case counter::sent_request: return "sent_request";
    case counter::sent_response: return "sent_response";
    case counter::sent_emergency: return "sent_emergency";
    case counter::received_direct: return "received_direct";
    case counter::received_broadcast: return "received_broadcast";
    case counter::received_multicast: return "received_multicast";
    case counter::received_event: return "received_event";
    case counter::received_request: return "received_request";
    case counter::received_emergency: return "received_emergency";
    case counter::received_presence: return "received_presence";
    case counter::dead_letters: return "dead_letters";
    case counter::handler_errors: return "handler_errors";
    case counter::request_timeouts: return "request_timeouts";
    case counter::rejected_invalid_id: return "rejected_invalid_id";
    case counter::rejected_oversized: return "rejected_oversized";
    case counter::rejected_unknown_nova: return "rejected_unknown_nova";
    case counter::tasks_enqueued: return "tasks_enqueued";
    case counter::tasks_done: return "tasks_done";
    case counter::tasks_retried: return "tasks_retried";
    case counter::tasks_dead: return "tasks_dead";
    case counter::presence_changes: return "presence_changes";
    case counter::wire_in: return "wire_in";
    case counter::wire_out: return "wire_out";
    case counter::decode_errors: return "decode_errors";
    case counter::wire_rejected: return "wire_rejected";
    case counter::slow_consumer_drops: return "slow_consumer_drops";
    case counter::reconnects: return "reconnects";
    case counter::outbox_full: return "outbox_full";
    case counter::durable_sent: return "durable_sent";
    case counter::durable_received: return "durable_received";
    case counter::durable_duplicates: return "durable_duplicates";
    case counter::count_: break;
  }
  return "unknown";
}

size_t counters::shard_index() noexcept {
  static std::atomic<size_t> next{0};
  thread_local size_t idx = next.fetch_add(1, std::memory_order_relaxed)
                            % num_shards;
  return idx;
}

void latency_histogram::record(std::chrono::nanoseconds d) noexcept {
  auto s = std::chrono::duration<double>(d).count();
  size_t i = 0;
  while (i < bounds.size() && s > bounds[i])
    ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(d.count() < 0 ? 0 : d.count()),
                    std::memory_order_relaxed);
}

latency_histogram::snapshot latency_histogram::read() const noexcept {
  snapshot r;
  uint64_t acc = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    acc += counts_[i].load(std::memory_order_relaxed);
    r.buckets[i] = acc;
  }
  r.count = acc + counts_[bounds.size()].load(std::memory_order_relaxed);
  r.sum_s = static_cast<double>(sum_ns_.load(std::memory_order_relaxed))
            / 1e9;
  return r;
}

} // namespace nova
